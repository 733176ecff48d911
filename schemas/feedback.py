"""Operator feedback messages: a reject that was actually good, or a defect found downstream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field, field_serializer, model_validator

from defectline.schemas.base import Message, UtcDatetime, to_utc_iso
from defectline.schemas.frames import ID_PATTERN

SCHEMA = "feedback.v1"


class FeedbackLabel(StrEnum):
    FALSE_REJECT = "false-reject"
    ESCAPE = "escape"


class Feedback(Message):
    """One operator report about one inspected frame, named by camera and frame id or by part id.

    `feedback_id` identifies the report: a replayed message or a repeated request with the same
    id is stored once.
    """

    schema_: str = Field(SCHEMA, alias="schema")
    feedback_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=128)
    label: FeedbackLabel
    camera_id: str | None = Field(None, pattern=ID_PATTERN)
    frame_id: str | None = Field(None, min_length=1, max_length=256)
    part_id: str | None = Field(None, min_length=1, max_length=256)
    class_name: str | None = Field(
        None, max_length=128, description="Defect class found downstream, for an escape"
    )
    operator: str | None = Field(None, max_length=128)
    note: str | None = Field(None, max_length=2000)
    source: str = Field("cli", max_length=32, description="cli, http or another sender name")
    reported_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))

    model_config = Message.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _check_target(self) -> Feedback:
        has_frame = self.camera_id is not None and self.frame_id is not None
        if self.frame_id is not None and self.camera_id is None:
            raise ValueError(
                "frame_id needs camera_id too, because frame ids are unique per camera"
            )
        if not has_frame and self.part_id is None:
            raise ValueError("name the inspected part: give camera_id and frame_id, or part_id")
        return self

    @field_serializer("reported_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> Feedback:
        return cls.model_validate_json(payload)
