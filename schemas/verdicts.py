"""Verdict messages: the inspection result for one frame, as JSON on the verdicts topic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_serializer

from defectline.schemas.base import Message, UtcDatetime, to_utc_iso
from defectline.schemas.drift import ImageStats
from defectline.schemas.frames import ID_PATTERN

SCHEMA = "verdict.v1"


class Outcome(StrEnum):
    PASS = "pass"
    REJECT = "reject"
    UNCERTAIN = "uncertain"  # routed to manual inspection


class BoxPx(Message):
    """An axis-aligned box in source frame pixels: (x1, y1) top-left, (x2, y2) bottom-right."""

    x1: float = Field(..., ge=0)
    y1: float = Field(..., ge=0)
    x2: float = Field(..., ge=0)
    y2: float = Field(..., ge=0)


class Region(Message):
    """One finding in a frame: a detector box or a connected mask component."""

    kind: str = Field(..., description="'box' for detector boxes, 'mask' for mask components")
    class_name: str
    class_code: int = Field(..., ge=0)
    confidence: float = Field(..., ge=0, le=1, description="Box score, or mean mask score")
    box: BoxPx
    area_px: float = Field(..., ge=0, description="Mask pixels, or box area for boxes")
    area_pct: float = Field(..., ge=0, le=100, description="area_px as % of the frame")


class ModelRef(Message):
    name: str
    version: str


class StageTimings(Message):
    """Milliseconds spent in each step of the inference agent for this frame."""

    decode_ms: float = Field(..., ge=0)
    preprocess_ms: float = Field(..., ge=0)
    inference_ms: float = Field(..., ge=0)
    queue_ms: float = Field(0.0, ge=0, description="Capture until the worker started on the frame")


class Verdict(Message):
    """The decision for one frame; (camera_id, frame_id) identifies it across replays."""

    schema_: str = Field(SCHEMA, alias="schema")
    plant: str
    station_id: str = Field(..., pattern=ID_PATTERN)
    camera_id: str = Field(..., pattern=ID_PATTERN)
    frame_id: str = Field(..., min_length=1, max_length=256)
    sequence: int = Field(..., ge=0)
    part_id: str | None = None
    captured_at: UtcDatetime
    decided_at: UtcDatetime
    outcome: Outcome
    class_name: str
    class_code: int = Field(..., ge=0, description="Index of class_name in the model's class list")
    confidence: float = Field(..., ge=0, le=1)
    scores: dict[str, float] = Field(..., description="Probability of every class, by class name")
    model: ModelRef
    timings: StageTimings
    regions: list[Region] = Field(
        default_factory=list, description="Findings that decided the outcome, in frame pixels"
    )
    evidence_uri: str | None = Field(None, description="Overlay image in the frame archive")
    image_stats: ImageStats | None = Field(
        None, description="Brightness, contrast, sharpness and clipping of the decoded frame"
    )

    model_config = Message.model_config | {"populate_by_name": True}

    @field_serializer("captured_at", "decided_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> Verdict:
        return cls.model_validate_json(payload)

    @property
    def key(self) -> tuple[str, str]:
        return (self.camera_id, self.frame_id)
