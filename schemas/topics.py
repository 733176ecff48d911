"""Kafka topic names; each carries the major version of the message contract it holds."""

from __future__ import annotations

FRAMES = "inspection.frames.v1"
VERDICTS = "inspection.verdicts.v1"
PLC_WRITES = "inspection.plc-writes.v1"
DEAD_LETTER = "inspection.dead-letter.v1"
DRIFT = "inspection.drift.v1"
# Reference profiles keyed by camera id; compacted, so it keeps the latest profile of each camera.
DRIFT_REFERENCES = "inspection.drift-references.v1"
FEEDBACK = "inspection.feedback.v1"

ALL = (FRAMES, VERDICTS, PLC_WRITES, DEAD_LETTER, DRIFT, DRIFT_REFERENCES, FEEDBACK)
COMPACTED = frozenset({DRIFT_REFERENCES})


def topic_name(base: str, prefix: str = "") -> str:
    """Return the topic name with the plant's optional prefix, e.g. 'plant1.inspection.frames.v1'."""
    return f"{prefix}{base}"
