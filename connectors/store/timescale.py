"""Storage mode selection and the TimescaleDB hypertable step that runs after the SQL migrations.

The SQL files create plain tables, so they run unchanged on PostgreSQL without TimescaleDB. In
TimescaleDB mode this module turns the time-series tables into hypertables afterwards.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Literal

import psycopg
from psycopg import sql

from defectline.connectors.store.errors import TimescaleUnavailableError

logger = logging.getLogger(__name__)

# by_range() and the create_hypertable() form that takes it appeared in TimescaleDB 2.13.
MIN_TIMESCALEDB_VERSION = (2, 13)

# Table name -> partitioning column. Every unique index of these tables contains the column,
# which TimescaleDB requires. dead_letters and model_deployments stay plain tables: the first
# has a key without a time column and the second is small.
HYPERTABLE_TIME_COLUMNS = {
    "inspections": "captured_at",
    "plc_writes": "captured_at",
    "defect_regions": "captured_at",
    "drift_events": "started_at",
    "operator_feedback": "reported_at",
}

CHUNK_INTERVAL = "1 day"


class StorageMode(StrEnum):
    TIMESCALEDB = "timescaledb"
    POSTGRESQL = "postgresql"


async def resolve_storage_mode(
    conn: psycopg.AsyncConnection, setting: Literal["auto", "on", "off"]
) -> StorageMode:
    """Pick the storage mode for `use_timescaledb` and create the extension when it is used.

    auto uses TimescaleDB when the server offers the extension and falls back to plain tables
    otherwise. on raises `TimescaleUnavailableError` when the extension cannot be used.
    """
    if setting == "off":
        return StorageMode.POSTGRESQL

    offered, problem = await _enable_timescaledb(conn)
    if problem is None:
        return StorageMode.TIMESCALEDB

    if setting == "on":
        raise TimescaleUnavailableError(
            f"use_timescaledb is 'on' but {problem}; install TimescaleDB "
            f"{'.'.join(map(str, MIN_TIMESCALEDB_VERSION))} or later on the server, "
            "or set database.use_timescaledb to 'auto' or 'off'"
        )
    if offered:
        logger.warning("timescaledb not used, falling back to plain tables: %s", problem)
    return StorageMode.POSTGRESQL


async def _enable_timescaledb(conn: psycopg.AsyncConnection) -> tuple[bool, str | None]:
    """Create the extension if needed. Return whether the server offers it and what blocks it."""
    cursor = await conn.execute(
        "SELECT installed_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    row = await cursor.fetchone()
    if row is None:
        return (
            False,
            "the server does not offer the timescaledb extension (pg_available_extensions)",
        )

    installed_version = row[0]
    if installed_version is None:
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            if conn.broken:
                raise
            # A common cause: timescaledb is missing from shared_preload_libraries.
            return True, f"CREATE EXTENSION timescaledb failed: {exc}"

        cursor = await conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )
        version_row = await cursor.fetchone()
        installed_version = version_row[0] if version_row else "unknown"

    if _parse_version(installed_version) < MIN_TIMESCALEDB_VERSION:
        return True, f"the installed timescaledb is version {installed_version}, older than 2.13"
    return True, None


def _parse_version(text: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


async def create_hypertables(conn: psycopg.AsyncConnection) -> None:
    """Turn the time-series tables into hypertables; tables that already are ones are kept.

    migrate_data moves rows written while the database ran in plain PostgreSQL mode into chunks,
    which holds a lock on the table for as long as the copy takes.
    """
    # NOTE: this step has not run against a TimescaleDB server in the test suite, which only has
    # plain PostgreSQL 15; it follows the create_hypertable(by_range(...)) form of TimescaleDB 2.13.
    for table, column in HYPERTABLE_TIME_COLUMNS.items():
        statement = sql.SQL(
            "SELECT create_hypertable({table}, by_range({column}, {interval}::interval),"
            " if_not_exists => TRUE, migrate_data => TRUE)"
        ).format(
            table=sql.Literal(table),
            column=sql.Literal(column),
            interval=sql.Literal(CHUNK_INTERVAL),
        )
        async with conn.transaction():
            await conn.execute(statement)
        logger.debug("hypertable ready table=%s time_column=%s", table, column)
