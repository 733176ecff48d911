"""Preprocessing of decoded frames into the model's float32 input tensor, as configured."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from defectline.config.models import ColorOrder, Interpolation, Layout, PreprocessConfig, ResizeMode
from defectline.streams.inference.errors import InferenceError

logger = logging.getLogger(__name__)

CV2_INTERPOLATION: dict[Interpolation, int] = {
    Interpolation.NEAREST: cv2.INTER_NEAREST,
    Interpolation.LINEAR: cv2.INTER_LINEAR,
    Interpolation.CUBIC: cv2.INTER_CUBIC,
    Interpolation.AREA: cv2.INTER_AREA,
}


@dataclass(frozen=True)
class LetterboxParams:
    """Scale and padding of a letterboxed input, for mapping model coordinates back to the frame.

    A source pixel (x, y) lands at (x * scale + pad_left_px, y * scale + pad_top_px) in the input.
    """

    scale: float
    pad_left_px: int
    pad_top_px: int
    pad_right_px: int
    pad_bottom_px: int
    resized_width_px: int
    resized_height_px: int

    def to_source(self, x_px: float, y_px: float) -> tuple[float, float]:
        """Map a point in model input coordinates back to source frame coordinates."""
        return ((x_px - self.pad_left_px) / self.scale, (y_px - self.pad_top_px) / self.scale)


def preprocess(
    image: np.ndarray, config: PreprocessConfig
) -> tuple[np.ndarray, LetterboxParams | None]:
    """Turn one decoded uint8 frame into a float32 sample without the batch axis.

    `image` is H×W (gray) or H×W×3 in BGR order, as `decode_image` returns it. The result is
    C×H×W for layout nchw or H×W×C for nhwc; the letterbox parameters are None for stretch.
    """
    image = _convert_channels(image, config.color)

    letterbox: LetterboxParams | None = None
    if config.resize is ResizeMode.LETTERBOX:
        image, letterbox = _letterbox(image, config)
    else:
        image = _stretch(image, config)

    tensor = _normalize(image, config)
    if config.layout is Layout.NCHW:
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor, dtype=np.float32), letterbox


def preprocess_batch(
    images: Sequence[np.ndarray], config: PreprocessConfig
) -> tuple[np.ndarray, list[LetterboxParams | None]]:
    """Preprocess several frames into one N×C×H×W (or N×H×W×C) float32 batch."""
    if not images:
        raise InferenceError("preprocess_batch got no images; pass at least one decoded frame")

    samples: list[np.ndarray] = []
    letterboxes: list[LetterboxParams | None] = []
    for image in images:
        sample, letterbox = preprocess(image, config)
        samples.append(sample)
        letterboxes.append(letterbox)
    return np.stack(samples), letterboxes


def compute_letterbox(
    width_px: int, height_px: int, config: PreprocessConfig
) -> LetterboxParams:
    """Compute the scale and centred padding that fit a width_px × height_px frame in the input."""
    scale = min(config.width_px / width_px, config.height_px / height_px)
    resized_width_px = max(1, min(config.width_px, round(width_px * scale)))
    resized_height_px = max(1, min(config.height_px, round(height_px * scale)))

    pad_x_px = config.width_px - resized_width_px
    pad_y_px = config.height_px - resized_height_px
    pad_left_px = pad_x_px // 2
    pad_top_px = pad_y_px // 2
    return LetterboxParams(
        scale=scale,
        pad_left_px=pad_left_px,
        pad_top_px=pad_top_px,
        pad_right_px=pad_x_px - pad_left_px,
        pad_bottom_px=pad_y_px - pad_top_px,
        resized_width_px=resized_width_px,
        resized_height_px=resized_height_px,
    )


def _convert_channels(image: np.ndarray, color: ColorOrder) -> np.ndarray:
    """Bring a decoded frame to the channel order the model expects: RGB, BGR, or one gray plane."""
    if image.dtype != np.uint8:
        raise InferenceError(
            f"preprocess expects an 8-bit image, got dtype {image.dtype}; decode with decode_image"
        )

    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise InferenceError(
            f"preprocess expects an H×W gray or H×W×3 BGR image, got shape {list(image.shape)}"
        )
    if image.ndim == 3 and channels == 1:
        image = image[:, :, 0]
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)

    if color is ColorOrder.GRAY:
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if color is ColorOrder.RGB:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _stretch(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    height_px, width_px = image.shape[:2]
    if (width_px, height_px) == (config.width_px, config.height_px):
        return image
    return cv2.resize(
        image,
        (config.width_px, config.height_px),
        interpolation=CV2_INTERPOLATION[config.interpolation],
    )


def _letterbox(
    image: np.ndarray, config: PreprocessConfig
) -> tuple[np.ndarray, LetterboxParams]:
    height_px, width_px = image.shape[:2]
    params = compute_letterbox(width_px, height_px, config)

    if (params.resized_width_px, params.resized_height_px) != (width_px, height_px):
        image = cv2.resize(
            image,
            (params.resized_width_px, params.resized_height_px),
            interpolation=CV2_INTERPOLATION[config.interpolation],
        )
    fill = config.letterbox_fill if image.ndim == 2 else (config.letterbox_fill,) * 3
    padded = cv2.copyMakeBorder(
        image,
        params.pad_top_px,
        params.pad_bottom_px,
        params.pad_left_px,
        params.pad_right_px,
        cv2.BORDER_CONSTANT,
        value=fill,
    )
    return padded, params


def _normalize(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Apply x = pixel * scale, then (x - mean) / std per channel; returns H×W×C float32."""
    pixels = image.astype(np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]

    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    pixels *= np.float32(config.scale)
    pixels -= mean
    pixels /= std
    return pixels
