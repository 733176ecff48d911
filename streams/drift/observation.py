"""What the drift detectors read from one verdict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from defectline.schemas.drift import ImageStats
from defectline.schemas.verdicts import Verdict

UNCERTAIN_OUTCOME = "uncertain"


@dataclass(frozen=True)
class Observation:
    """One inspected frame of one camera, reduced to what drift detection compares."""

    plant: str
    station_id: str
    camera_id: str
    frame_id: str
    sequence: int
    captured_at: datetime
    model_name: str
    model_version: str
    class_name: str
    confidence: float
    image_stats: ImageStats | None = None
    marked_uncertain: bool = False

    def is_uncertain(self, uncertain_below: float) -> bool:
        return self.marked_uncertain or self.confidence < uncertain_below


def observation_from_verdict(verdict: Verdict) -> Observation:
    """Reduce a verdict; verdicts without image statistics feed only the output detectors."""
    return Observation(
        plant=verdict.plant,
        station_id=verdict.station_id,
        camera_id=verdict.camera_id,
        frame_id=verdict.frame_id,
        sequence=verdict.sequence,
        captured_at=verdict.captured_at,
        model_name=verdict.model.name,
        model_version=verdict.model.version,
        class_name=verdict.class_name,
        confidence=verdict.confidence,
        image_stats=getattr(verdict, "image_stats", None),
        marked_uncertain=str(verdict.outcome) == UNCERTAIN_OUTCOME,
    )
