"""Evidence overlays: the frame with boxes, mask outlines or a heatmap drawn on it, as JPEG."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from defectline.schemas.verdicts import Outcome
from defectline.streams.inference.decision import Decision
from defectline.streams.inference.errors import InferenceError

logger = logging.getLogger(__name__)

HEATMAP_ALPHA = 0.45
MASK_ALPHA = 0.5
OUTCOME_COLOURS = {  # BGR
    Outcome.REJECT: (0, 0, 255),
    Outcome.UNCERTAIN: (0, 200, 255),
    Outcome.PASS: (0, 200, 0),
}


def draw_overlay(image: np.ndarray, decision: Decision, heatmap: np.ndarray | None) -> np.ndarray:
    """Return a BGR copy of a decoded frame with the decision's evidence drawn on it.

    `heatmap` is a frame-sized map in [0, 1] (segmentation or anomaly scores), blended in with
    the JET colour map; regions get filled masks or box outlines with class and confidence.
    """
    canvas = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    colour = OUTCOME_COLOURS[decision.outcome]

    if heatmap is not None:
        heat = cv2.applyColorMap(
            np.clip(heatmap * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET
        )
        canvas = cv2.addWeighted(canvas, 1.0 - HEATMAP_ALPHA, heat, HEATMAP_ALPHA, 0.0)

    for region in decision.regions:
        x1, y1, x2, y2 = (int(round(value)) for value in region.box)
        if region.mask is not None:
            window = canvas[y1 : y1 + region.mask.shape[0], x1 : x1 + region.mask.shape[1]]
            tinted = window.copy()
            tinted[region.mask] = colour
            window[:] = cv2.addWeighted(window, 1.0 - MASK_ALPHA, tinted, MASK_ALPHA, 0.0)
        cv2.rectangle(canvas, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, 2)
        _label(canvas, f"{region.class_name} {region.confidence:.2f}", x1, y1, colour)

    banner = f"{decision.outcome.value}: {decision.class_name} {decision.confidence:.2f}"
    _label(canvas, banner, 0, 0, colour, inside=True)
    return canvas


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Encode a BGR image as JPEG."""
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InferenceError(f"JPEG encoding of a {image.shape} evidence image failed")
    return buffer.tobytes()


def _label(
    canvas: np.ndarray,
    text: str,
    x_px: int,
    y_px: int,
    colour: tuple[int, int, int],
    *,
    inside: bool = False,
) -> None:
    scale = max(0.4, min(canvas.shape[:2]) / 800)
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = y_px if inside or y_px < height + baseline else y_px - height - baseline
    cv2.rectangle(canvas, (x_px, top), (x_px + width, top + height + baseline), colour, -1)
    cv2.putText(
        canvas,
        text,
        (x_px, top + height),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
