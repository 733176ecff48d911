"""PLC write results: one message per verdict and PLC, sent after the write succeeded or failed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_serializer

from defectline.schemas.base import Message, UtcDatetime, to_utc_iso

SCHEMA = "plc-write.v1"


class WriteStatus(StrEnum):
    """Outcome of one verdict at one PLC."""

    OK = "ok"
    FAILED = "failed"
    # The station's result deadline passed first: the fail-safe values were sent instead of the
    # verdict (`error` is set when the PLC was unreachable and they could not be written).
    FAIL_SAFE = "fail_safe"
    # The deadline passed and the verdict was not delivered in time: it reached the PLC after
    # the deadline, or the station's fail-safe action is `none`.
    LATE = "late"


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
    part_id: str | None = Field(None, description="Part id of the PLC trigger, when matched")
    deadline_at: UtcDatetime | None = Field(None, description="The station's result deadline")

    model_config = Message.model_config | {"populate_by_name": True}

    @field_serializer("captured_at", "written_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    @property
    def late(self) -> bool:
        """True when the station's result deadline passed before the verdict was written."""
        return self.status in (WriteStatus.LATE, WriteStatus.FAIL_SAFE)

    @property
    def fail_safe(self) -> bool:
        """True when the station's fail-safe values were sent in place of the verdict."""
        return self.status is WriteStatus.FAIL_SAFE

    @field_serializer("deadline_at")
    def _serialize_deadline(self, value: datetime | None) -> str | None:
        return None if value is None else to_utc_iso(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> PlcWriteResult:
        return cls.model_validate_json(payload)
