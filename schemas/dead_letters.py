"""Dead-letter messages: input that could not be processed, kept whole with the reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import Field, field_serializer

from defectline.schemas.base import Message, UtcDatetime, to_utc_iso

SCHEMA = "dead-letter.v1"


class SourceRecord(Message):
    topic: str
    partition: int
    offset: int


class DeadLetter(Message):
    """One rejected input: which stage rejected it, why, and the original bytes and headers."""

    schema_: str = Field(SCHEMA, alias="schema")
    stage: str = Field(..., description="camera, inference, routing or recorder")
    reason: str = Field(..., description="Human-readable error message naming what was wrong")
    error_type: str
    camera_id: str | None = None
    frame_id: str | None = None
    source: SourceRecord | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    payload_b64: str = Field("", description="The original message value, base64-encoded")
    occurred_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))

    model_config = Message.model_config | {"populate_by_name": True}

    @field_serializer("occurred_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    @staticmethod
    def encode_payload(payload: bytes | None) -> str:
        return base64.b64encode(payload or b"").decode()

    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> DeadLetter:
        return cls.model_validate_json(payload)
