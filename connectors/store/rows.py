"""Row layout of the PostgreSQL tables: message to row tuple, and multi-row INSERT statements."""

from __future__ import annotations

import binascii
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from defectline.connectors.store.errors import StoreError
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.plc_writes import PlcWriteResult
from defectline.schemas.verdicts import Verdict

# PostgreSQL's wire protocol counts bind parameters in a 16-bit field.
MAX_PARAMETERS = 65_535

INSPECTION_COLUMNS = (
    "captured_at", "decided_at", "plant", "station_id", "camera_id", "frame_id", "sequence",
    "part_id", "outcome", "class_name", "class_code", "confidence", "scores", "model_name",
    "model_version", "decode_ms", "preprocess_ms", "inference_ms", "queue_ms", "evidence_uri",
)  # fmt: skip

PLC_WRITE_COLUMNS = (
    "captured_at", "written_at", "plc", "station_id", "camera_id", "frame_id", "sequence",
    "status", "attempts", "latency_ms", "error", "late", "fail_safe",
)  # fmt: skip

DEAD_LETTER_COLUMNS = (
    "occurred_at", "stage", "reason", "error_type", "camera_id", "frame_id", "source_topic",
    "source_partition", "source_offset", "headers", "payload_bytes",
)  # fmt: skip

Row = tuple[Any, ...]


def verdict_row(verdict: Verdict) -> Row:
    where = f"verdict camera={verdict.camera_id} frame={verdict.frame_id}"
    timings = verdict.timings
    return (
        aware(verdict.captured_at, "captured_at", where),
        aware(verdict.decided_at, "decided_at", where),
        verdict.plant,
        verdict.station_id,
        verdict.camera_id,
        verdict.frame_id,
        verdict.sequence,
        verdict.part_id,
        str(verdict.outcome),
        verdict.class_name,
        verdict.class_code,
        verdict.confidence,
        Jsonb(verdict.scores),
        verdict.model.name,
        verdict.model.version,
        timings.decode_ms,
        timings.preprocess_ms,
        timings.inference_ms,
        timings.queue_ms,
        verdict.evidence_uri,
    )


def plc_write_row(result: PlcWriteResult) -> Row:
    where = f"PLC write plc={result.plc} camera={result.camera_id} frame={result.frame_id}"
    return (
        aware(result.captured_at, "captured_at", where),
        aware(result.written_at, "written_at", where),
        result.plc,
        result.station_id,
        result.camera_id,
        result.frame_id,
        result.sequence,
        str(result.status),
        result.attempts,
        result.latency_ms,
        result.error,
        result.late,
        result.fail_safe,
    )


def dead_letter_row(letter: DeadLetter) -> Row:
    where = f"dead letter stage={letter.stage} camera={letter.camera_id} frame={letter.frame_id}"
    source = letter.source
    return (
        aware(letter.occurred_at, "occurred_at", where),
        letter.stage,
        letter.reason,
        letter.error_type,
        letter.camera_id,
        letter.frame_id,
        source.topic if source else None,
        source.partition if source else None,
        source.offset if source else None,
        Jsonb(letter.headers),
        _payload_size_bytes(letter, where),
    )


def _payload_size_bytes(letter: DeadLetter, where: str) -> int:
    try:
        return len(letter.payload())
    except binascii.Error as exc:
        raise StoreError(
            f"{where}: payload_b64 is not valid base64 ({exc}); "
            "encode the payload with DeadLetter.encode_payload"
        ) from exc


def aware(value: datetime, field: str, where: str) -> datetime:
    # The schemas reject naive timestamps, but model_construct() skips validation. PostgreSQL
    # would read a naive value in the session TimeZone and so store a shifted instant.
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(
            f"{where}: {field}={value.isoformat()} has no time zone; "
            "build the message through its schema, which requires an aware timestamp"
        )
    return value


def chunk_rows(rows: Sequence[Row], column_count: int, batch_size: int) -> Iterator[Sequence[Row]]:
    """Split rows into chunks of at most `batch_size` rows and MAX_PARAMETERS values each."""
    rows_per_statement = max(1, min(batch_size, MAX_PARAMETERS // column_count))
    for start in range(0, len(rows), rows_per_statement):
        yield rows[start : start + rows_per_statement]


def insert_statement(
    table: str, columns: Sequence[str], rows: Sequence[Row]
) -> tuple[sql.Composed, list[Any]]:
    """Build one multi-row INSERT that skips rows whose key is already stored."""
    placeholders = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    statement = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT DO NOTHING"
    ).format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join([placeholders] * len(rows)),
    )
    parameters = [value for row in rows for value in row]
    return statement, parameters
