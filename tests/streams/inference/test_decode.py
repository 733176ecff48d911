"""Frame decoding: valid images decode, corrupt and truncated ones raise FrameDecodeError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from defectline.config.models import ColorOrder
from defectline.streams.inference.decode import decode_image
from defectline.streams.inference.errors import FrameDecodeError


def gradient_frame() -> np.ndarray:
    x = np.linspace(0, 255, 96, dtype=np.float32)
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[:, :, 0] = x.astype(np.uint8)
    frame[:, :, 1] = 128
    frame[:, :, 2] = (255 - x).astype(np.uint8)
    return frame


def encode(frame: np.ndarray, extension: str) -> bytes:
    ok, buffer = cv2.imencode(extension, frame)
    assert ok
    return buffer.tobytes()


def test_png_decodes_to_bgr_pixels() -> None:
    frame = gradient_frame()
    image = decode_image(encode(frame, ".png"), ColorOrder.RGB)

    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, frame)


def test_gray_model_decodes_one_plane() -> None:
    image = decode_image(encode(gradient_frame(), ".png"), ColorOrder.GRAY)

    assert image.shape == (64, 96)


def test_jpeg_with_trailer_after_end_marker_decodes() -> None:
    payload = encode(gradient_frame(), ".jpg") + b"\x00\x00vendor-trailer"
    image = decode_image(payload, ColorOrder.BGR)

    assert image.shape == (64, 96, 3)


def test_bmp_decodes() -> None:
    image = decode_image(encode(gradient_frame(), ".bmp"), ColorOrder.BGR)

    np.testing.assert_array_equal(image, gradient_frame())


def test_empty_payload_raises() -> None:
    with pytest.raises(FrameDecodeError, match="cam-1/7: payload is empty"):
        decode_image(b"", ColorOrder.RGB, label="cam-1/7")


def test_garbage_bytes_raise_with_leading_bytes() -> None:
    with pytest.raises(FrameDecodeError, match="not a decodable image") as caught:
        decode_image(b"hello, this is not an image", ColorOrder.RGB)

    assert "68 65 6c 6c" in str(caught.value)


def test_corrupt_jpeg_raises() -> None:
    payload = bytearray(encode(gradient_frame(), ".jpg"))
    # Keep SOI and the trailing EOI but wipe the headers, so the end-of-image check passes.
    payload[2:200] = b"\x00" * 198
    with pytest.raises(FrameDecodeError):
        decode_image(bytes(payload), ColorOrder.RGB)


@pytest.mark.parametrize("keep_pct", [30, 60, 95])
def test_truncated_jpeg_raises(keep_pct: int) -> None:
    payload = encode(gradient_frame(), ".jpg")
    cut = payload[: len(payload) * keep_pct // 100]

    with pytest.raises(FrameDecodeError, match="JPEG of .* bytes is truncated"):
        decode_image(cut, ColorOrder.RGB, label="frame cam-1/3")


def test_truncated_real_photograph_jpeg_raises(real_sample_dir) -> None:  # type: ignore[no-untyped-def]
    payload = sorted(real_sample_dir.glob("*/*.jpg"))[0].read_bytes()
    cut = payload[: len(payload) * 3 // 4]

    with pytest.raises(FrameDecodeError, match="truncated"):
        decode_image(cut, ColorOrder.GRAY)


@pytest.mark.parametrize("drop_bytes", [12, 500])
def test_truncated_png_raises(drop_bytes: int) -> None:
    payload = encode(gradient_frame(), ".png")

    with pytest.raises(FrameDecodeError, match="PNG of .* bytes is truncated"):
        decode_image(payload[:-drop_bytes], ColorOrder.RGB)


def test_truncated_bmp_raises() -> None:
    payload = encode(gradient_frame(), ".bmp")

    with pytest.raises(FrameDecodeError, match="BMP header declares"):
        decode_image(payload[:-100], ColorOrder.RGB)
