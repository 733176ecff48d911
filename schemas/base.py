"""Common base of the message models: frozen, tolerant of fields added by newer producers."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_serializer


class Message(BaseModel):
    """A message contract; unknown fields are ignored so older consumers read newer messages."""

    model_config = ConfigDict(extra="ignore", frozen=True)


UtcDatetime = AwareDatetime
"""A timestamp with a time zone; naive timestamps are rejected because their instant is unknown."""


def to_utc_iso(value: datetime) -> str:
    """Format an aware timestamp as ISO 8601 in UTC with microseconds, e.g. '2026-01-02T03:04:05.000006Z'."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


__all__ = ["Message", "UtcDatetime", "field_serializer", "to_utc_iso"]
