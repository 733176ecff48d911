"""Decoding of encoded frame payloads (JPEG, PNG, BMP, TIFF, ...) into OpenCV arrays."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from defectline.config.models import ColorOrder
from defectline.streams.inference.errors import FrameDecodeError

logger = logging.getLogger(__name__)

JPEG_SOI = b"\xff\xd8\xff"
JPEG_SOS = b"\xff\xda"
JPEG_EOI = b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The IEND chunk always has length 0, so its type and CRC are these fixed 8 bytes.
PNG_IEND = b"IEND\xaeB`\x82"
BMP_SIGNATURE = b"BM"
BMP_HEADER_BYTES = 14


def decode_image(payload: bytes, color: ColorOrder, *, label: str = "image") -> np.ndarray:
    """Decode an encoded image to uint8: H×W for gray models, else H×W×3 in BGR order.

    Truncated JPEG, PNG and BMP files are rejected before decoding, because libjpeg fills the
    missing rows of a truncated JPEG with grey and returns a partial image without an error.
    `label` names the frame in error messages, e.g. 'frame cam-1/42'.
    """
    if not payload:
        raise FrameDecodeError(f"{label}: payload is empty; the camera sent no image bytes")

    _check_complete(payload, label)

    flags = cv2.IMREAD_GRAYSCALE if color is ColorOrder.GRAY else cv2.IMREAD_COLOR
    buffer = np.frombuffer(payload, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as exc:
        raise FrameDecodeError(
            f"{label}: OpenCV failed to decode {len(payload)} bytes: {exc}"
        ) from exc

    if image is None or image.size == 0:
        raise FrameDecodeError(
            f"{label}: {len(payload)} bytes starting {payload[:8].hex(' ')} are not a decodable "
            "image (expected JPEG, PNG, BMP or TIFF); the payload is corrupt or in an "
            "unsupported format"
        )
    return image


def _check_complete(payload: bytes, label: str) -> None:
    """Raise `FrameDecodeError` when a JPEG, PNG or BMP payload ends before its last byte."""
    size = len(payload)

    if payload.startswith(JPEG_SOI):
        # Scan data byte-stuffs every 0xFF, so an EOI after the last SOS marker can only be the
        # real end of the image; EXIF thumbnails and trailers after the EOI do not confuse this.
        last_scan = payload.rfind(JPEG_SOS)
        if last_scan == -1 or payload.rfind(JPEG_EOI) < last_scan:
            raise FrameDecodeError(
                f"{label}: JPEG of {size} bytes is truncated (no end-of-image marker FFD9 "
                "after the last scan); the file was cut off while being written or sent"
            )
        return

    if payload.startswith(PNG_SIGNATURE):
        if payload.rfind(PNG_IEND) == -1:
            raise FrameDecodeError(
                f"{label}: PNG of {size} bytes is truncated (no IEND chunk); "
                "the file was cut off while being written or sent"
            )
        return

    if payload.startswith(BMP_SIGNATURE) and size >= BMP_HEADER_BYTES:
        declared = int.from_bytes(payload[2:6], "little")
        if size < declared:
            raise FrameDecodeError(
                f"{label}: BMP header declares {declared} bytes but the payload has {size}; "
                "the file was cut off while being written or sent"
            )
