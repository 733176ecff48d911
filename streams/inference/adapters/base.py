"""The model adapter contract: raw ONNX outputs of one frame in, findings in frame pixels out."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import cv2
import numpy as np

from defectline.config.models import ModelConfig
from defectline.streams.inference.preprocess import LetterboxParams
from defectline.streams.inference.session import OnnxModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameGeometry:
    """Sizes of one frame and its model input, for mapping model coordinates back to the frame."""

    width_px: int
    height_px: int
    input_width_px: int
    input_height_px: int
    letterbox: LetterboxParams | None = None

    @property
    def area_px(self) -> int:
        return self.width_px * self.height_px

    def box_to_frame(
        self, x1: float, y1: float, x2: float, y2: float
    ) -> tuple[float, float, float, float]:
        """Map a box from model input pixels to frame pixels: undo letterbox or stretch, clip."""
        if self.letterbox is not None:
            x1, y1 = self.letterbox.to_source(x1, y1)
            x2, y2 = self.letterbox.to_source(x2, y2)
        else:
            scale_x = self.width_px / self.input_width_px
            scale_y = self.height_px / self.input_height_px
            x1, x2 = x1 * scale_x, x2 * scale_x
            y1, y2 = y1 * scale_y, y2 * scale_y
        return (
            float(np.clip(x1, 0, self.width_px)),
            float(np.clip(y1, 0, self.height_px)),
            float(np.clip(x2, 0, self.width_px)),
            float(np.clip(y2, 0, self.height_px)),
        )

    def plane_to_frame(self, plane: np.ndarray) -> np.ndarray:
        """Resize an H×W map over the model input to the frame, dropping letterbox padding."""
        plane = np.asarray(plane, dtype=np.float32)
        if plane.shape != (self.input_height_px, self.input_width_px):
            # Lower-resolution outputs (stride > 1) cover the whole input, padding included.
            plane = cv2.resize(
                plane, (self.input_width_px, self.input_height_px), interpolation=cv2.INTER_LINEAR
            )
        if self.letterbox is not None:
            box = self.letterbox
            plane = plane[
                box.pad_top_px : box.pad_top_px + box.resized_height_px,
                box.pad_left_px : box.pad_left_px + box.resized_width_px,
            ]
        if plane.shape != (self.height_px, self.width_px):
            plane = cv2.resize(
                plane, (self.width_px, self.height_px), interpolation=cv2.INTER_LINEAR
            )
        return plane


@dataclass(frozen=True)
class Candidate:
    """One possible defect before the station's decision rules: a box, a mask component, a class.

    `box` is (x1, y1, x2, y2) in frame pixels. `mask` is the component's boolean pixels inside
    `box` (rounded outward to whole pixels), kept for evidence overlays; None for boxes.
    """

    kind: str  # "box", "mask", "image" (whole-frame score) or "class" (classification)
    class_name: str
    class_code: int
    confidence: float
    box: tuple[float, float, float, float]
    area_px: float
    area_pct: float
    mask: np.ndarray | None = None


@dataclass
class Findings:
    """What a model saw in one frame, before the station's decision rules."""

    labels: tuple[str, ...]  # verdict class names; a verdict's class_code indexes this tuple
    scores: dict[str, float]  # per label: probability, or highest score of any candidate
    candidates: list[Candidate] = field(default_factory=list)
    regions: list[Candidate] = field(default_factory=list)  # shown, decided through candidates
    top: Candidate | None = None  # classification: the top-1 class, pass classes included
    heatmap: np.ndarray | None = None  # frame-sized scores in [0, 1] for overlays
    pass_classes: tuple[str, ...] = ()


class ModelAdapter(ABC):
    """Reads one model family's outputs; subclasses register under their `task` name.

    Usage by the inspector::

        adapter = create_adapter(OnnxModel(config.model), config.model)
        outputs = adapter.model.run_outputs(batch, adapter.output_names)
        findings = adapter.decode(outputs, 0, geometry, allowed=None)
    """

    task: ClassVar[str]
    registry: ClassVar[dict[str, type[ModelAdapter]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "task" in cls.__dict__:
            ModelAdapter.registry[cls.task] = cls

    def __init__(self, model: OnnxModel, config: ModelConfig) -> None:
        self.model = model
        self.config = config

    @property
    @abstractmethod
    def output_names(self) -> list[str]:
        """Model outputs `decode` reads."""

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Verdict class names in class-code order."""

    @property
    @abstractmethod
    def default_threshold(self) -> float:
        """Confidence a candidate needs to reject when the station sets no threshold."""

    @abstractmethod
    def decode(
        self,
        outputs: dict[str, np.ndarray],
        index: int,
        geometry: FrameGeometry,
        allowed: np.ndarray | None,
    ) -> Findings:
        """Turn row `index` of the batch outputs into findings in frame pixels.

        `allowed` is a frame-sized boolean mask of inspected pixels (ROI minus ignore areas),
        or None for the whole frame.
        """

    def describe(self) -> str:
        """One line for the start-up log."""
        return f"task={self.task} labels={list(self.labels)}"


def max_scores(labels: tuple[str, ...], candidates: list[Candidate]) -> dict[str, float]:
    """Highest candidate score per class; the pass label gets 1 - the highest of all."""
    scores = dict.fromkeys(labels[1:], 0.0)
    for candidate in candidates:
        scores[candidate.class_name] = max(scores[candidate.class_name], candidate.confidence)
    highest = max(scores.values(), default=0.0)
    return {labels[0]: 1.0 - highest, **scores}
