"""Per-station decision rules: findings to pass, reject or uncertain, with ROI and ignore areas."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from defectline.config.models import DecisionRules
from defectline.schemas.verdicts import Outcome
from defectline.streams.inference.adapters.base import Candidate, Findings
from defectline.streams.inference.errors import InferenceError, ModelLoadError

logger = logging.getLogger(__name__)


class StationMaskError(InferenceError):
    """A station's ROI or ignore mask image is missing or does not match the frame size."""


@dataclass(frozen=True)
class Decision:
    """The outcome of one frame with the findings behind it."""

    outcome: Outcome
    class_name: str
    class_code: int
    confidence: float
    scores: dict[str, float]
    regions: list[Candidate] = field(default_factory=list)


class StationRules:
    """Compiled decision rules of one station; ROI masks are built once per frame size."""

    def __init__(self, station_id: str, rules: DecisionRules, default_threshold: float) -> None:
        self.station_id = station_id
        self.rules = rules
        self.default_threshold = default_threshold
        self._masks: dict[tuple[int, int], np.ndarray | None] = {}
        self._roi_image = _load_mask(rules.roi_mask_path, station_id, "roi_mask_path")
        self._ignore_image = _load_mask(rules.ignore_mask_path, station_id, "ignore_mask_path")

    def threshold(self, class_name: str) -> float:
        """Minimum confidence for a finding of `class_name` to reject."""
        if class_name in self.rules.thresholds:
            return self.rules.thresholds[class_name]
        return max(self.rules.default_threshold, self.default_threshold)

    def min_area_px(self, class_name: str) -> int:
        return self.rules.min_area_px.get(class_name, self.rules.default_min_area_px)

    def allowed_mask(self, width_px: int, height_px: int) -> np.ndarray | None:
        """Frame-sized boolean mask of inspected pixels, or None when the whole frame is."""
        size = (width_px, height_px)
        if size not in self._masks:
            self._masks[size] = self._build_mask(width_px, height_px)
        return self._masks[size]

    def _build_mask(self, width_px: int, height_px: int) -> np.ndarray | None:
        rules = self.rules
        if not (
            rules.roi_polygons
            or rules.ignore_polygons
            or self._roi_image is not None
            or self._ignore_image is not None
        ):
            return None

        allowed = np.ones((height_px, width_px), dtype=bool)
        if rules.roi_polygons:
            allowed = _fill(rules.roi_polygons, width_px, height_px)
        if self._roi_image is not None:
            allowed &= self._sized(self._roi_image, width_px, height_px, "roi_mask_path")
        if rules.ignore_polygons:
            allowed &= ~_fill(rules.ignore_polygons, width_px, height_px)
        if self._ignore_image is not None:
            allowed &= ~self._sized(self._ignore_image, width_px, height_px, "ignore_mask_path")
        return allowed

    def _sized(self, mask: np.ndarray, width_px: int, height_px: int, key: str) -> np.ndarray:
        if mask.shape != (height_px, width_px):
            raise StationMaskError(
                f"station '{self.station_id}' decision.{key} is {mask.shape[1]}x{mask.shape[0]} "
                f"px but the frame is {width_px}x{height_px} px; draw the mask at the camera's "
                "frame size"
            )
        return mask

    def decide(self, findings: Findings) -> Decision:
        """Apply thresholds, minimum areas and the uncertain band to a frame's findings."""
        if findings.top is not None:
            return self._decide_class(findings.top, findings)

        rejecting: list[Candidate] = []
        uncertain: list[Candidate] = []
        for candidate in findings.candidates:
            verdict = self._judge(candidate)
            if verdict is Outcome.REJECT:
                rejecting.append(candidate)
            elif verdict is Outcome.UNCERTAIN:
                uncertain.append(candidate)

        deciding = rejecting or uncertain
        if not deciding:
            highest = max((c.confidence for c in findings.candidates), default=0.0)
            return Decision(Outcome.PASS, findings.labels[0], 0, 1.0 - highest, findings.scores)

        outcome = Outcome.REJECT if rejecting else Outcome.UNCERTAIN
        worst = max(deciding, key=lambda candidate: candidate.confidence)
        regions = [c for c in deciding if c.kind != "image"]
        # Image-level findings (anomaly scores) show the map's regions that pass the area rules.
        if any(c.kind == "image" for c in deciding):
            regions += [c for c in findings.regions if self._is_large_enough(c)]
        return Decision(
            outcome, worst.class_name, worst.class_code, worst.confidence, findings.scores, regions
        )

    def _judge(self, candidate: Candidate) -> Outcome:
        if not self._is_large_enough(candidate):
            return Outcome.PASS
        threshold = self.threshold(candidate.class_name)
        if candidate.confidence >= threshold:
            return Outcome.REJECT
        if candidate.confidence >= threshold - self.rules.uncertain_margin:
            return Outcome.UNCERTAIN
        return Outcome.PASS

    def _is_large_enough(self, candidate: Candidate) -> bool:
        return (
            candidate.area_px >= self.min_area_px(candidate.class_name)
            and candidate.area_pct >= self.rules.min_area_pct
        )

    def _decide_class(self, top: Candidate, findings: Findings) -> Decision:
        if top.class_name in findings.pass_classes:
            outcome = (
                Outcome.UNCERTAIN
                if top.confidence < self.rules.pass_min_confidence
                else Outcome.PASS
            )
        else:
            outcome = self._judge(top)
        return Decision(outcome, top.class_name, top.class_code, top.confidence, findings.scores)


def _fill(
    polygons: tuple[tuple[tuple[float, float], ...], ...], width_px: int, height_px: int
) -> np.ndarray:
    canvas = np.zeros((height_px, width_px), dtype=np.uint8)
    points = [
        np.round(np.asarray(polygon, dtype=np.float64)).astype(np.int32) for polygon in polygons
    ]
    cv2.fillPoly(canvas, points, 1)
    return canvas.astype(bool)


def _load_mask(path: Path | None, station_id: str, key: str) -> np.ndarray | None:
    if path is None:
        return None
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ModelLoadError(
            f"station '{station_id}' decision.{key} {path} is missing or not an image; give a "
            "PNG of the frame size with non-zero pixels marking the area"
        )
    return image > 0
