"""Read-side queries for the demo summary: rows stored, rejects by class, capture-to-PLC latency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class LatencyPercentiles:
    """Capture-to-PLC latency of successful writes. The percentiles are None when `count` is 0."""

    count: int
    p50_ms: float | None
    p99_ms: float | None


def _filters(**conditions: object) -> tuple[sql.Composable, list[object]]:
    """Build a WHERE clause from `column=value` pairs that are not None.

    The pair `since=value` compares captured_at.
    """
    clauses: list[sql.Composable] = []
    parameters: list[object] = []
    for column, value in conditions.items():
        if value is None:
            continue
        if column == "since":
            clauses.append(sql.SQL("captured_at >= %s"))
        else:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
        parameters.append(value)

    if not clauses:
        return sql.SQL(""), parameters
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses), parameters


async def count_inspections(
    conn: psycopg.AsyncConnection,
    *,
    station_id: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
) -> int:
    where, parameters = _filters(station_id=station_id, outcome=outcome, since=since)
    cursor = await conn.execute(sql.SQL("SELECT count(*) FROM inspections") + where, parameters)
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def count_rejects_by_class(
    conn: psycopg.AsyncConnection,
    *,
    station_id: str | None = None,
    since: datetime | None = None,
) -> dict[str, int]:
    where, parameters = _filters(outcome="reject", station_id=station_id, since=since)
    query = (
        sql.SQL("SELECT class_name, count(*) FROM inspections")
        + where
        + sql.SQL(" GROUP BY class_name ORDER BY count(*) DESC, class_name")
    )
    cursor = await conn.execute(query, parameters)
    return {class_name: int(count) for class_name, count in await cursor.fetchall()}


async def plc_latency_percentiles(
    conn: psycopg.AsyncConnection,
    *,
    plc: str | None = None,
    since: datetime | None = None,
) -> LatencyPercentiles:
    # Failed writes are left out: their latency_ms measures the time until giving up.
    where, parameters = _filters(status="ok", plc=plc, since=since)
    query = (
        sql.SQL(
            "SELECT count(*),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)"
            " FROM plc_writes"
        )
        + where
    )
    cursor = await conn.execute(query, parameters)
    row = await cursor.fetchone()
    if row is None or row[0] == 0:
        return LatencyPercentiles(count=0, p50_ms=None, p99_ms=None)
    return LatencyPercentiles(count=int(row[0]), p50_ms=float(row[1]), p99_ms=float(row[2]))
