"""Rollup views: refresh on plain PostgreSQL, daily rollups in the plant's time zone.

The per-minute and per-hour rollups are created by migration 0006. On plain PostgreSQL they are
materialized views that only change when refreshed, so the worker calls `refresh_rollups` every
`database.rollup_refresh_s` seconds. In TimescaleDB mode they are continuous aggregates that a
refresh policy keeps current, and `refresh_rollups` finds nothing to refresh.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg import sql

from defectline.connectors.store.errors import StoreError

logger = logging.getLogger(__name__)

ROLLUP_VIEWS = ("inspection_rollup_1m", "inspection_rollup_1h", "plc_write_rollup_1m")

# Adds a deployment row unless the station's latest one names the same model and version, so
# every worker start can call it.
RECORD_DEPLOYMENT = """
INSERT INTO model_deployments
    (deployed_at, station_id, model_name, model_version, model_sha256, note)
SELECT %(deployed_at)s, %(station_id)s, %(model_name)s, %(model_version)s,
       %(model_sha256)s, %(note)s
WHERE NOT EXISTS (
    SELECT 1
    FROM (
        SELECT model_name, model_version
        FROM model_deployments
        WHERE station_id = %(station_id)s
        ORDER BY deployed_at DESC
        LIMIT 1
    ) latest
    WHERE latest.model_name = %(model_name)s AND latest.model_version = %(model_version)s
)
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True)
class DailyCount:
    """Inspections of one local calendar day, station, camera and class."""

    day: date
    day_start: datetime
    day_end: datetime
    day_hours: float
    station_id: str
    camera_id: str
    class_name: str
    inspected: int
    rejected: int
    uncertain: int


async def refresh_rollups(conn: psycopg.AsyncConnection) -> list[str]:
    """Refresh every rollup that is a materialized view, without blocking readers.

    REFRESH ... CONCURRENTLY recomputes the whole view and swaps in the changed rows, so
    dashboards keep reading the previous contents meanwhile. A row written late (a replay, a
    catch-up after an outage) lands in its bucket at the next refresh.
    """
    cursor = await conn.execute(
        "SELECT matviewname FROM pg_matviews"
        " WHERE schemaname = current_schema() AND matviewname = ANY(%s)",
        (list(ROLLUP_VIEWS),),
    )
    views = sorted(name for (name,) in await cursor.fetchall())
    for view in views:
        started = time.monotonic()
        await conn.execute(
            sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(sql.Identifier(view))
        )
        took_ms = 1000 * (time.monotonic() - started)
        logger.debug("rollup refreshed view=%s took_ms=%.0f", view, took_ms)
    return views


async def daily_counts(
    conn: psycopg.AsyncConnection, timezone: str, start: datetime, end: datetime
) -> list[DailyCount]:
    """Count inspections per local day of `timezone` for captures in [start, end).

    Both bounds must carry a time zone: a naive bound would be read in the session's time zone.
    """
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise StoreError(
                f"daily_counts {name}={value.isoformat()} has no time zone; "
                "pass an aware datetime such as datetime(..., tzinfo=UTC)"
            )
    cursor = await conn.execute(
        "SELECT * FROM inspection_daily(%s, %s, %s)"
        " ORDER BY day, station_id, camera_id, class_name",
        (timezone, start, end),
    )
    return [DailyCount(*row) for row in await cursor.fetchall()]
