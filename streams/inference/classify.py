"""Turning one model output row into a classification: probabilities, top-1 class and outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from defectline.config.models import ModelConfig
from defectline.schemas.verdicts import Outcome
from defectline.streams.inference.errors import ModelOutputError

logger = logging.getLogger(__name__)

# float32 rounding puts a valid probability slightly outside [0, 1] and its row sum off by ~1e-7.
PROBABILITY_RANGE_TOLERANCE = 1e-5
PROBABILITY_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Classification:
    """Top-1 decision for one frame, with `scores` mapping every class name to its probability."""

    class_name: str
    class_code: int
    confidence: float
    scores: dict[str, float]
    outcome: Outcome


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D row, computed in float64."""
    shifted = logits.astype(np.float64) - np.max(logits)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum()


def classify(output_row: np.ndarray, model: ModelConfig) -> Classification:
    """Classify one output row: softmax for logits models, validation for probabilities models."""
    row = np.asarray(output_row)
    classes = len(model.class_names)
    if row.shape != (classes,):
        raise ModelOutputError(
            f"model output row has shape {list(row.shape)}, expected [{classes}] "
            f"for class_names {list(model.class_names)}"
        )
    if not np.all(np.isfinite(row)):
        raise ModelOutputError(
            f"model output row contains NaN or infinity: {_format_row(row)}; "
            "the model or its input is broken"
        )

    if model.output == "logits":
        probabilities = softmax(row)
    else:
        probabilities = _check_probabilities(row)

    code = int(np.argmax(probabilities))
    name = model.class_names[code]
    outcome = Outcome.PASS if name in model.pass_classes else Outcome.REJECT
    return Classification(
        class_name=name,
        class_code=code,
        confidence=float(probabilities[code]),
        scores=dict(zip(model.class_names, map(float, probabilities), strict=True)),
        outcome=outcome,
    )


def _check_probabilities(row: np.ndarray) -> np.ndarray:
    """Validate a probabilities row and return it as float64 clipped to [0, 1]."""
    values = row.astype(np.float64)
    low, high, total = values.min(), values.max(), values.sum()

    if low < -PROBABILITY_RANGE_TOLERANCE or high > 1 + PROBABILITY_RANGE_TOLERANCE:
        raise ModelOutputError(
            f"model.output is 'probabilities' but the output row {_format_row(row)} has values "
            f"outside [0, 1] (min {low:.6g}, max {high:.6g}); set model.output to 'logits' if the "
            "model returns raw scores"
        )
    if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        raise ModelOutputError(
            f"model.output is 'probabilities' but the output row {_format_row(row)} sums to "
            f"{total:.6g}, not 1; set model.output to 'logits' if the model returns raw scores"
        )
    return np.clip(values, 0.0, 1.0)


def _format_row(row: np.ndarray) -> str:
    return "[" + ", ".join(f"{value:.6g}" for value in row.tolist()) + "]"
