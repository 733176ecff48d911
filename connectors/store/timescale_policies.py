"""TimescaleDB extras after the migrations: continuous aggregates, compression and retention.

Runs only in TimescaleDB mode. The plain materialized rollups of migration 0006 are replaced by
continuous aggregates with the same names and columns, so dashboards and queries run unchanged
in both modes.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

# NOTE: this module has not run against a TimescaleDB server, because the test suite only has
# plain PostgreSQL 15. Whether TimescaleDB 2.13+ accepts percentile_cont with FILTER in a
# continuous aggregate is unverified; if it rejects them, `db migrate` fails in that mode.

# Hypertables that get compression and retention, with the column that segments compressed data.
COMPRESSED_TABLES = {
    "inspections": "camera_id",
    "plc_writes": "plc",
    "defect_regions": "camera_id",
}

_INSPECTION_AGGREGATES = """
    count(*) AS inspected,
    count(*) FILTER (WHERE outcome = 'reject') AS rejected,
    count(*) FILTER (WHERE outcome = 'uncertain') AS uncertain,
    percentile_cont(0.05) WITHIN GROUP (ORDER BY confidence) AS confidence_p05,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY confidence) AS confidence_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY confidence) AS confidence_p95,
    percentile_cont(0.5) WITHIN GROUP (
        ORDER BY extract(epoch FROM decided_at - captured_at) * 1000) AS latency_p50_ms,
    percentile_cont(0.99) WITHIN GROUP (
        ORDER BY extract(epoch FROM decided_at - captured_at) * 1000) AS latency_p99_ms
"""

_PLC_AGGREGATES = """
    count(*) AS writes,
    count(*) FILTER (WHERE status = 'failed') AS failures,
    count(*) FILTER (WHERE late) AS late,
    count(*) FILTER (WHERE fail_safe) AS fail_safe,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE status = 'ok') AS latency_p50_ms,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE status = 'ok') AS latency_p99_ms
"""

# View name -> (bucket width, source table, grouping columns, aggregate list).
CONTINUOUS_AGGREGATES = {
    "inspection_rollup_1m": (
        "1 minute",
        "inspections",
        "station_id, camera_id, class_name",
        _INSPECTION_AGGREGATES,
    ),
    "inspection_rollup_1h": (
        "1 hour",
        "inspections",
        "station_id, camera_id, class_name",
        _INSPECTION_AGGREGATES,
    ),
    "plc_write_rollup_1m": ("1 minute", "plc_writes", "station_id, plc", _PLC_AGGREGATES),
}


def continuous_aggregate_sql(view: str) -> str:
    """Return the CREATE statement of one continuous aggregate."""
    width, table, groups, aggregates = CONTINUOUS_AGGREGATES[view]
    return (
        f"CREATE MATERIALIZED VIEW {view} WITH (timescaledb.continuous) AS"
        f" SELECT time_bucket('{width}', captured_at) AS bucket, {groups}, {aggregates}"
        f" FROM {table} GROUP BY 1, {groups} WITH NO DATA"
    )


async def create_continuous_aggregates(conn: psycopg.AsyncConnection) -> None:
    """Replace the plain rollup views by continuous aggregates refreshed every minute.

    The refresh policy has no start offset, so rows written late, even days late after an
    outage, invalidate their buckets and the next run recomputes those buckets; the aggregates
    then agree with the raw rows again.
    """
    for view in CONTINUOUS_AGGREGATES:
        cursor = await conn.execute(
            "SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = %s",
            (view,),
        )
        if await cursor.fetchone() is not None:
            continue

        async with conn.transaction():
            await conn.execute(
                sql.SQL("DROP MATERIALIZED VIEW IF EXISTS {}").format(sql.Identifier(view))
            )
            await conn.execute(sql.SQL(continuous_aggregate_sql(view)))  # type: ignore[arg-type]
        # A refresh cannot run inside a transaction block; the connection is in autocommit.
        await conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (view,))
        await conn.execute(
            "SELECT add_continuous_aggregate_policy(%s, start_offset => NULL,"
            " end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute',"
            " if_not_exists => TRUE)",
            (view,),
        )
        logger.info("continuous aggregate created view=%s", view)


async def add_storage_policies(
    conn: psycopg.AsyncConnection, compress_after_days: int, retention_days: int
) -> None:
    """Compress chunks older than `compress_after_days` and drop those older than `retention_days`.

    Retention drops whole chunks of the raw tables only; the continuous aggregates keep their
    buckets, so long-term trends survive the raw rows.
    """
    for table, segment_by in COMPRESSED_TABLES.items():
        async with conn.transaction():
            await conn.execute(
                sql.SQL(
                    "ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {})"
                ).format(sql.Identifier(table), sql.Literal(segment_by))
            )
            await conn.execute(
                "SELECT add_compression_policy(%s, make_interval(days => %s),"
                " if_not_exists => TRUE)",
                (table, compress_after_days),
            )
            await conn.execute(
                "SELECT add_retention_policy(%s, make_interval(days => %s), if_not_exists => TRUE)",
                (table, retention_days),
            )
        logger.info(
            "timescaledb policies table=%s compress_after_days=%d retention_days=%d",
            table,
            compress_after_days,
            retention_days,
        )
