"""Causes of a drift episode: how far each metric moved, in units a quality engineer reads."""

from __future__ import annotations

import math
from collections.abc import Sequence

from defectline.schemas.drift import Direction, DriftCause, Metric

# Absolute floors of the reference standard deviation on the detector scale, so a metric that
# never varied in the reference (no clipped pixels at all) does not turn noise into huge scores.
STD_FLOORS: dict[Metric, float] = {
    Metric.BRIGHTNESS: 1.0,  # grey levels
    Metric.CONTRAST: 0.005,  # standard deviation divided by the mean
    Metric.SHARPNESS: 0.05,  # natural log of the normalized Laplacian variance
    Metric.CLIPPED: 0.5,  # percent of pixels
}

_NAMES = {
    Metric.BRIGHTNESS: "brightness",
    Metric.CONTRAST: "contrast",
    Metric.SHARPNESS: "sharpness",
    Metric.CLIPPED: "clipped pixels",
    Metric.CONFIDENCE: "confidence",
    Metric.CLASS_MIX: "class mix",
    Metric.UNCERTAIN: "uncertain share",
}


def image_cause(metric: Metric, reference_mean: float, current_mean: float) -> DriftCause:
    """Describe the move of an image metric given on the detector scale."""
    if metric is Metric.CLIPPED:
        magnitude = current_mean - reference_mean
    elif metric is Metric.SHARPNESS:
        magnitude = (math.exp(current_mean - reference_mean) - 1.0) * 100.0
    else:
        magnitude = (current_mean - reference_mean) / max(abs(reference_mean), 1e-9) * 100.0
    return DriftCause(
        metric=metric,
        direction=Direction.UP if current_mean >= reference_mean else Direction.DOWN,
        magnitude=round(magnitude, 3),
        reference_value=reference_mean,
        current_value=current_mean,
    )


def describe(cause: DriftCause) -> str:
    """One phrase per cause, e.g. 'brightness 31% below reference'."""
    name = _NAMES[cause.metric]
    if cause.metric in (Metric.CONFIDENCE, Metric.CLASS_MIX):
        return f"{name} PSI {cause.magnitude:.2f}"
    if cause.metric in (Metric.CLIPPED, Metric.UNCERTAIN):
        word = "up" if cause.direction is Direction.UP else "down"
        return f"{name} {word} {abs(cause.magnitude):.1f} points from {cause.reference_value:.1f}%"
    side = "above" if cause.direction is Direction.UP else "below"
    return f"{name} {abs(cause.magnitude):.0f}% {side} reference"


def start_message(
    causes: Sequence[DriftCause], onset_sequence: int, confidence_psi: float | None
) -> str:
    """Compose the alert text: the main cause with its onset, the other causes, then the PSI."""
    parts = [f"{describe(causes[0])} since frame {_frame(onset_sequence)}"]
    parts.extend(describe(cause) for cause in causes[1:])
    mentions_confidence = any(cause.metric is Metric.CONFIDENCE for cause in causes)
    if confidence_psi is not None and not mentions_confidence:
        parts.append(f"confidence PSI {confidence_psi:.2f}")
    return "; ".join(parts)


def recovery_message(
    causes: Sequence[DriftCause], calm_frames: int, start_sequence: int, sequence: int
) -> str:
    names = ", ".join(dict.fromkeys(_NAMES[cause.metric] for cause in causes))
    return (
        f"{names} back at reference for {calm_frames} frames; the episode ran from frame "
        f"{_frame(start_sequence)} to {_frame(sequence)}"
    )


def _frame(sequence: int) -> str:
    # Digits grouped by three with spaces, as in '18 204'.
    return f"{sequence:,}".replace(",", " ")
