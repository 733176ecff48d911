"""Preprocessing: channel order, resize modes, letterbox parameters and normalisation values."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from defectline.config.models import PreprocessConfig
from defectline.streams.inference.errors import InferenceError
from defectline.streams.inference.preprocess import (
    compute_letterbox,
    preprocess,
    preprocess_batch,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def red_bgr_frame(width_px: int = 8, height_px: int = 6) -> np.ndarray:
    frame = np.zeros((height_px, width_px, 3), np.uint8)
    frame[:, :] = (0, 0, 255)
    return frame


def config(**values: object) -> PreprocessConfig:
    base: dict[str, object] = {"width_px": 4, "height_px": 4}
    base.update(values)
    return PreprocessConfig.model_validate(base)


def test_red_frame_rgb_model() -> None:
    tensor, letterbox = preprocess(red_bgr_frame(), config(color="rgb"))

    assert tensor.dtype == np.float32
    assert tensor.shape == (3, 4, 4)
    assert letterbox is None
    np.testing.assert_array_equal(tensor[0], np.ones((4, 4)))
    np.testing.assert_array_equal(tensor[1], np.zeros((4, 4)))
    np.testing.assert_array_equal(tensor[2], np.zeros((4, 4)))


def test_red_frame_imagenet_normalisation_golden_values() -> None:
    tensor, _ = preprocess(
        red_bgr_frame(), config(color="rgb", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    )

    pixel = tensor[:, 2, 3]
    np.testing.assert_allclose(pixel, [2.2489, -2.0357, -1.8044], atol=1e-4)
    np.testing.assert_allclose(tensor.reshape(3, -1).std(axis=1), 0.0, atol=1e-6)


def test_bgr_model_keeps_decoded_order() -> None:
    tensor, _ = preprocess(red_bgr_frame(), config(color="bgr"))

    np.testing.assert_array_equal(tensor[:, 0, 0], [0.0, 0.0, 1.0])


def test_gray_model_converts_colour_frame_to_one_plane() -> None:
    tensor, _ = preprocess(red_bgr_frame(), config(color="gray", scale=1.0))

    assert tensor.shape == (1, 4, 4)
    # OpenCV's BGR→gray weights: 0.299 R + 0.587 G + 0.114 B, so pure red 255 becomes 76.
    np.testing.assert_array_equal(tensor, np.full((1, 4, 4), 76.0))


def test_gray_frame_for_rgb_model_is_replicated() -> None:
    frame = np.full((6, 6), 51, np.uint8)
    tensor, _ = preprocess(frame, config(color="rgb"))

    assert tensor.shape == (3, 4, 4)
    np.testing.assert_allclose(tensor, 0.2, atol=1e-7)


def test_nhwc_layout_puts_channels_last() -> None:
    tensor, _ = preprocess(red_bgr_frame(), config(color="rgb", layout="nhwc"))

    assert tensor.shape == (4, 4, 3)
    np.testing.assert_array_equal(tensor[1, 2], [1.0, 0.0, 0.0])


def test_per_channel_mean_and_std_applied_in_order() -> None:
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[:, :] = (30, 20, 10)  # BGR, so RGB is (10, 20, 30)
    tensor, _ = preprocess(
        frame, config(color="rgb", scale=1.0, mean=(1.0, 2.0, 3.0), std=(3.0, 6.0, 9.0))
    )

    np.testing.assert_allclose(tensor[:, 0, 0], [3.0, 3.0, 3.0])


def test_stretch_uses_configured_interpolation() -> None:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)
    area, _ = preprocess(frame, config(color="bgr", scale=1.0, interpolation="area",
                                       width_px=50, height_px=40))
    nearest, _ = preprocess(frame, config(color="bgr", scale=1.0, interpolation="nearest",
                                          width_px=50, height_px=40))

    expected_area = cv2.resize(frame, (50, 40), interpolation=cv2.INTER_AREA)
    expected_nearest = cv2.resize(frame, (50, 40), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(area, expected_area.transpose(2, 0, 1).astype(np.float32))
    np.testing.assert_array_equal(nearest, expected_nearest.transpose(2, 0, 1).astype(np.float32))
    assert not np.array_equal(area, nearest)


def test_letterbox_full_hd_into_640_square() -> None:
    params = compute_letterbox(1920, 1080, config(width_px=640, height_px=640, resize="letterbox"))

    assert params.scale == pytest.approx(1 / 3)
    assert (params.resized_width_px, params.resized_height_px) == (640, 360)
    assert params.pad_top_px == 140
    assert params.pad_bottom_px == 140
    assert params.pad_left_px == 0
    assert params.pad_right_px == 0
    assert params.to_source(320.0, 140.0) == pytest.approx((960.0, 0.0))
    assert params.to_source(640.0, 500.0) == pytest.approx((1920.0, 1080.0))


def test_letterbox_pads_with_fill_and_centres_content() -> None:
    frame = np.full((1080, 1920, 3), 200, np.uint8)
    settings = config(width_px=640, height_px=640, resize="letterbox", letterbox_fill=114,
                      color="bgr", scale=1.0)
    tensor, params = preprocess(frame, settings)

    assert params is not None
    assert params.pad_top_px == 140
    assert tensor.shape == (3, 640, 640)
    np.testing.assert_array_equal(tensor[:, :140, :], 114.0)
    np.testing.assert_array_equal(tensor[:, 500:, :], 114.0)
    np.testing.assert_array_equal(tensor[:, 140:500, :], 200.0)


def test_letterbox_tall_frame_pads_left_and_right() -> None:
    frame = np.full((300, 100), 9, np.uint8)
    tensor, params = preprocess(
        frame, config(width_px=60, height_px=60, resize="letterbox", letterbox_fill=0,
                      color="gray", scale=1.0)
    )

    assert params is not None
    assert params.scale == pytest.approx(0.2)
    assert (params.pad_left_px, params.pad_right_px) == (20, 20)
    np.testing.assert_array_equal(tensor[0, :, :20], 0.0)
    np.testing.assert_array_equal(tensor[0, :, 20:40], 9.0)


def test_preprocess_batch_stacks_samples() -> None:
    frames = [red_bgr_frame(), red_bgr_frame(20, 10), np.zeros((5, 5, 3), np.uint8)]
    batch, letterboxes = preprocess_batch(frames, config(color="rgb"))

    assert batch.shape == (3, 3, 4, 4)
    assert batch.dtype == np.float32
    assert letterboxes == [None, None, None]
    np.testing.assert_array_equal(batch[1, :, 0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(batch[2], 0.0)


def test_preprocess_batch_empty_raises() -> None:
    with pytest.raises(InferenceError, match="no images"):
        preprocess_batch([], config())


def test_preprocess_rejects_non_uint8_image() -> None:
    with pytest.raises(InferenceError, match="float64"):
        preprocess(np.zeros((4, 4, 3)), config())
