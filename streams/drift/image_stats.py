"""Image statistics of a decoded frame, and the scale the drift detectors watch them on."""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from defectline.schemas.drift import ImageStats, Metric

logger = logging.getLogger(__name__)

# Statistics are measured on a copy no longer than this on its long side, so a 20 MP frame
# costs the same few milliseconds as a small one. Sharpness depends on the scale, so the
# reference and the live frames are measured the same way.
MAX_SIDE_PX = 512

# A frame darker than this mean grey level is treated as this level when contrast and
# sharpness are divided by the brightness, so a black frame does not divide by zero.
MIN_BRIGHTNESS = 1.0


def measure_image(image: np.ndarray) -> ImageStats:
    """Measure brightness, contrast, sharpness and clipping of a BGR or grey uint8 image."""
    if image.ndim == 3:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 2:
        grey = image
    else:
        raise ValueError(f"image has shape {list(image.shape)}; expected H x W or H x W x 3")

    height_px, width_px = grey.shape
    scale = MAX_SIDE_PX / max(height_px, width_px)
    if scale < 1:
        size = (max(1, round(width_px * scale)), max(1, round(height_px * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)

    mean, std = cv2.meanStdDev(grey)
    laplacian = cv2.Laplacian(grey, cv2.CV_64F)
    clipped = np.count_nonzero((grey == 0) | (grey == 255))
    return ImageStats(
        brightness=float(mean[0, 0]),
        contrast=float(std[0, 0]),
        sharpness=float(laplacian.var()),
        clipped_pct=100.0 * clipped / grey.size,
    )


def detector_values(stats: ImageStats) -> dict[Metric, float]:
    """Map image statistics onto the scale the detectors compare, one value per image metric.

    A change of lighting gain scales the grey levels, their standard deviation and the
    Laplacian together. Contrast is therefore divided by the brightness and sharpness by its
    square, so a darker frame moves only the brightness and the alert names one cause.
    Sharpness is taken as a natural logarithm because blur shrinks it by orders of magnitude.
    """
    brightness = max(stats.brightness, MIN_BRIGHTNESS)
    return {
        Metric.BRIGHTNESS: stats.brightness,
        Metric.CONTRAST: stats.contrast / brightness,
        Metric.SHARPNESS: math.log(stats.sharpness / brightness**2 + 1e-9),
        Metric.CLIPPED: stats.clipped_pct,
    }
