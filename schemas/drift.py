"""Drift contracts: image statistics, reference profiles and drift events, as JSON on Kafka."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_serializer, model_validator

from defectline.schemas.base import Message, UtcDatetime, to_utc_iso
from defectline.schemas.frames import ID_PATTERN

EVENT_SCHEMA = "drift-event.v1"
REFERENCE_SCHEMA = "drift-reference.v1"


class ImageStats(Message):
    """Statistics of one decoded frame, measured on its grey-level image (0-255)."""

    brightness: float = Field(..., ge=0, le=255, description="Mean grey level")
    contrast: float = Field(..., ge=0, description="Standard deviation of the grey levels")
    sharpness: float = Field(..., ge=0, description="Variance of the Laplacian of the grey image")
    clipped_pct: float = Field(
        ..., ge=0, le=100, description="Share of pixels at grey level 0 or 255, in percent"
    )


class Metric(StrEnum):
    """What a drift detector watches; the image metrics come from `ImageStats`."""

    BRIGHTNESS = "brightness"
    CONTRAST = "contrast"
    SHARPNESS = "sharpness"
    CLIPPED = "clipped"
    CONFIDENCE = "confidence"
    CLASS_MIX = "class_mix"
    UNCERTAIN = "uncertain"


IMAGE_METRICS = (Metric.BRIGHTNESS, Metric.CONTRAST, Metric.SHARPNESS, Metric.CLIPPED)


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    CHANGED = "changed"


class EventKind(StrEnum):
    START = "start"
    RECOVERY = "recovery"


class MetricSummary(Message):
    """Mean and standard deviation of one image metric over the reference frames."""

    mean: float
    std: float = Field(..., ge=0)


class ReferenceProfile(Message):
    """What one camera's frames and verdicts looked like while the model was known to work.

    A profile belongs to one camera and one model version; `version` counts the profiles of
    the camera, so a rebuilt profile gets the next number.
    """

    schema_: str = Field(REFERENCE_SCHEMA, alias="schema")
    camera_id: str = Field(..., pattern=ID_PATTERN)
    station_id: str = Field(..., pattern=ID_PATTERN)
    model_name: str
    model_version: str
    version: int = Field(..., ge=1)
    source: str = Field(..., description="'live' (first frames of the model) or 'calibration'")
    built_at: UtcDatetime
    frames: int = Field(..., ge=1)
    first_sequence: int = Field(..., ge=0)
    last_sequence: int = Field(..., ge=0)
    confidence_edges: tuple[float, ...] = Field(..., min_length=2)
    confidence_fractions: tuple[float, ...]
    confidence_mean: float = Field(..., ge=0, le=1)
    class_fractions: dict[str, float]
    uncertain_below: float = Field(..., gt=0, le=1)
    uncertain_fraction: float = Field(..., ge=0, le=1)
    image: dict[str, MetricSummary] = Field(
        default_factory=dict, description="Summary per image metric; empty without image stats"
    )

    model_config = Message.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _check_bins(self) -> ReferenceProfile:
        if len(self.confidence_fractions) != len(self.confidence_edges) - 1:
            raise ValueError(
                f"confidence_fractions has {len(self.confidence_fractions)} values but "
                f"{len(self.confidence_edges)} edges make {len(self.confidence_edges) - 1} bins"
            )
        return self

    @field_serializer("built_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> ReferenceProfile:
        return cls.model_validate_json(payload)


class ReferenceUpdate(Message):
    """A message on the references topic: adopt `profile`, or relearn from live frames if None."""

    camera_id: str = Field(..., pattern=ID_PATTERN)
    profile: ReferenceProfile | None = None
    requested_at: UtcDatetime

    @field_serializer("requested_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> ReferenceUpdate:
        return cls.model_validate_json(payload)


class DriftCause(Message):
    """One metric that moved: where it is now against the reference.

    `magnitude` is a percent change of the mean for image metrics, the population stability
    index for confidence and class mix, and percentage points for the uncertain share.
    """

    metric: Metric
    direction: Direction
    magnitude: float
    reference_value: float
    current_value: float


class DriftEvent(Message):
    """Start or end of one drift episode of a camera; (episode_id, kind) identifies it."""

    schema_: str = Field(EVENT_SCHEMA, alias="schema")
    kind: EventKind
    episode_id: str = Field(..., min_length=1, max_length=256)
    plant: str
    station_id: str = Field(..., pattern=ID_PATTERN)
    camera_id: str = Field(..., pattern=ID_PATTERN)
    model_name: str
    model_version: str
    reference_version: int = Field(..., ge=1)
    occurred_at: UtcDatetime = Field(..., description="Capture time of the frame that decided it")
    frame_id: str
    sequence: int = Field(..., ge=0)
    onset_sequence: int = Field(..., ge=0, description="First frame of the shift, as estimated")
    metric: Metric = Field(..., description="The cause with the largest shift")
    direction: Direction
    magnitude: float
    causes: tuple[DriftCause, ...] = Field(..., min_length=1)
    message: str

    model_config = Message.model_config | {"populate_by_name": True}

    @field_serializer("occurred_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> DriftEvent:
        return cls.model_validate_json(payload)
