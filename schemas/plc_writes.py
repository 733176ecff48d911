"""PLC write results: one message per verdict and PLC, sent after the write succeeded or failed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_serializer

from defectline.schemas.base import Message, UtcDatetime, to_utc_iso

SCHEMA = "plc-write.v1"


class WriteStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"


class PlcWriteResult(Message):
    schema_: str = Field(SCHEMA, alias="schema")
    plc: str
    station_id: str
    camera_id: str
    frame_id: str
    sequence: int = Field(..., ge=0)
    status: WriteStatus
    attempts: int = Field(..., ge=1)
    captured_at: UtcDatetime
    written_at: UtcDatetime
    latency_ms: float = Field(..., description="Capture until the write was acknowledged")
    error: str | None = None

    model_config = Message.model_config | {"populate_by_name": True}

    @field_serializer("captured_at", "written_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> PlcWriteResult:
        return cls.model_validate_json(payload)
