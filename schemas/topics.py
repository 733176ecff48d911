"""Kafka topic names; each carries the major version of the message contract it holds."""

from __future__ import annotations

FRAMES = "inspection.frames.v1"
VERDICTS = "inspection.verdicts.v1"
PLC_WRITES = "inspection.plc-writes.v1"
DEAD_LETTER = "inspection.dead-letter.v1"

ALL = (FRAMES, VERDICTS, PLC_WRITES, DEAD_LETTER)


def topic_name(base: str, prefix: str = "") -> str:
    """Return the topic name with the plant's optional prefix, e.g. 'plant1.inspection.frames.v1'."""
    return f"{prefix}{base}"
