"""Row building without a database: time zone checks and statement chunking."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pydantic
import pytest

from defectline.connectors.store.errors import StoreError
from defectline.connectors.store.rows import (
    INSPECTION_COLUMNS,
    MAX_PARAMETERS,
    chunk_rows,
    insert_statement,
    plc_write_row,
)
from defectline.schemas.plc_writes import PlcWriteResult
from defectline.schemas.verdicts import Verdict


def test_verdict_schema_rejects_naive_timestamp(verdict_factory: Callable[..., Verdict]) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        verdict_factory(0, captured_at=datetime(2026, 3, 2, 8, 0, 0))

    assert "captured_at" in str(caught.value)
    assert "timezone" in str(caught.value)


def test_plc_write_row_rejects_unvalidated_naive_timestamp(
    plc_result_factory: Callable[..., PlcWriteResult],
) -> None:
    valid = plc_result_factory(4)
    naive = PlcWriteResult.model_construct(**{**dict(valid), "written_at": datetime(2026, 3, 2, 8)})

    with pytest.raises(StoreError) as caught:
        plc_write_row(naive)

    assert "plc=line-plc camera=cam-1 frame=frame-00004" in str(caught.value)
    assert "written_at=2026-03-02T08:00:00 has no time zone" in str(caught.value)


def test_chunk_rows_respects_batch_size() -> None:
    rows = [(i,) for i in range(10)]

    chunks = list(chunk_rows(rows, column_count=1, batch_size=4))

    assert [len(chunk) for chunk in chunks] == [4, 4, 2]
    assert [row for chunk in chunks for row in chunk] == rows


def test_chunk_rows_respects_parameter_limit() -> None:
    column_count = len(INSPECTION_COLUMNS)
    rows = [tuple(range(column_count))] * 10_000

    chunks = list(chunk_rows(rows, column_count=column_count, batch_size=10_000))

    assert sum(len(chunk) for chunk in chunks) == 10_000
    assert all(len(chunk) * column_count <= MAX_PARAMETERS for chunk in chunks)
    rows_per_chunk = MAX_PARAMETERS // column_count
    assert len(chunks) == -(-10_000 // rows_per_chunk)
    assert len(chunks[0]) == rows_per_chunk


def test_insert_statement_flattens_parameters() -> None:
    statement, parameters = insert_statement(
        "plc_writes", ["plc", "frame_id"], [("a", "1"), ("b", "2")]
    )

    text = statement.as_string(None)
    assert text == (
        'INSERT INTO "plc_writes" ("plc", "frame_id") VALUES (%s, %s), (%s, %s) '
        "ON CONFLICT DO NOTHING"
    )
    assert parameters == ["a", "1", "b", "2"]
