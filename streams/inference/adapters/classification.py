"""Classification adapter: one score row per frame, logits or probabilities, any class count."""

from __future__ import annotations

import logging

import numpy as np

from defectline.config.models import ModelConfig
from defectline.streams.inference.adapters.base import (
    Candidate,
    Findings,
    FrameGeometry,
    ModelAdapter,
)
from defectline.streams.inference.classify import classify
from defectline.streams.inference.errors import ModelInputMismatchError, ModelOutputError
from defectline.streams.inference.session import OnnxModel

logger = logging.getLogger(__name__)


class ClassificationAdapter(ModelAdapter):
    """Top-1 classification; a single-output binary model is read as P(class_names[1]).

    A binary model with one output column and two class names gets a sigmoid when its output is
    logits; its probability p becomes the row (1 - p, p).
    """

    task = "classification"

    def __init__(self, model: OnnxModel, config: ModelConfig) -> None:
        super().__init__(model, config)
        self.binary = self._is_binary()
        if not self.binary:
            model.check_classification_output()

    def _is_binary(self) -> bool:
        shape = self.model.output_shape
        if len(self.config.class_names) != 2 or len(shape) not in (1, 2):
            return False
        width = shape[-1] if len(shape) == 2 else 1
        if width == 1:
            return True
        if len(shape) == 1:
            raise ModelInputMismatchError(
                f"model output '{self.model.output_name}' has shape {shape}; expected "
                "['batch', classes] or ['batch', 1] for a binary model"
            )
        return False

    @property
    def output_names(self) -> list[str]:
        return [self.model.output_name]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.class_names

    @property
    def default_threshold(self) -> float:
        return 0.0

    def decode(
        self,
        outputs: dict[str, np.ndarray],
        index: int,
        geometry: FrameGeometry,
        allowed: np.ndarray | None,
    ) -> Findings:
        row = np.asarray(outputs[self.model.output_name][index], dtype=np.float64).reshape(-1)
        if self.binary:
            row = self._binary_row(row)
        result = classify(row, self.config)
        whole_frame = (0.0, 0.0, float(geometry.width_px), float(geometry.height_px))
        top = Candidate(
            kind="class",
            class_name=result.class_name,
            class_code=result.class_code,
            confidence=result.confidence,
            box=whole_frame,
            area_px=float(geometry.area_px),
            area_pct=100.0,
        )
        return Findings(
            labels=self.labels,
            scores=result.scores,
            top=top,
            pass_classes=self.config.pass_classes,
        )

    def _binary_row(self, row: np.ndarray) -> np.ndarray:
        if row.shape != (1,):
            raise ModelOutputError(
                f"binary model output row has {row.size} values, expected 1 (P of "
                f"'{self.config.class_names[1]}')"
            )
        value = float(row[0])
        if self.config.output == "logits":
            # classify() applies a softmax, and softmax(0, z) = (1 - sigmoid(z), sigmoid(z)).
            return np.array([0.0, value])
        return np.array([1.0 - value, value])
