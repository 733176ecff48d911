"""Migration runner: applies the versioned SQL files once each, under a cluster-wide lock."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import psycopg
from psycopg import sql

from defectline.connectors.store.errors import MigrationError, StoreError
from defectline.connectors.store.migrations import Migration, load_migrations
from defectline.connectors.store.timescale import (
    StorageMode,
    create_hypertables,
    resolve_storage_mode,
)
from defectline.connectors.store.timescale_policies import (
    add_storage_policies,
    create_continuous_aggregates,
)

logger = logging.getLogger(__name__)

# Key of the session-level advisory lock that serializes migrations; the bytes spell "defectln".
# Two workers starting at once both call migrate, and the second waits here until the first is
# done, then finds nothing left to apply.
ADVISORY_LOCK_KEY = 0x6465666563746C6E

CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate_schema(
    conn: psycopg.AsyncConnection,
    use_timescaledb: Literal["auto", "on", "off"],
    migrations: Sequence[Migration] | None = None,
    *,
    compress_after_days: int = 7,
    retention_days: int = 365,
) -> tuple[list[str], StorageMode]:
    """Apply pending migrations and return every applied version plus the storage mode.

    `conn` must be in autocommit mode, because each migration runs in its own transaction and the
    advisory lock has to outlive them. Safe to call again: applied versions are skipped.
    """
    if not conn.autocommit:
        raise StoreError("migrate_schema needs a connection opened with autocommit=True")
    pending = load_migrations() if migrations is None else list(migrations)

    await conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        mode = await resolve_storage_mode(conn, use_timescaledb)
        versions = await _apply_pending(conn, pending)
        if mode is StorageMode.TIMESCALEDB:
            await create_hypertables(conn)
            # The rollups and policies refer to tables of the shipped migrations, which a
            # caller passing its own `migrations` may not have.
            if migrations is None:
                await create_continuous_aggregates(conn)
                await add_storage_policies(conn, compress_after_days, retention_days)
    finally:
        # A broken connection has already released its session lock on the server side.
        if not conn.broken:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))

    return versions, mode


async def _apply_pending(
    conn: psycopg.AsyncConnection, migrations: Sequence[Migration]
) -> list[str]:
    async with conn.transaction():
        await conn.execute(CREATE_VERSION_TABLE)
    applied = await _read_applied(conn)

    for migration in migrations:
        checksum = applied.get(migration.version)
        if checksum is None:
            await _apply_one(conn, migration)
            applied[migration.version] = migration.checksum
        elif checksum != migration.checksum:
            logger.warning(
                "migration file changed after it was applied, the change is not applied "
                "version=%s name=%s; put schema changes in a new migration file",
                migration.version,
                migration.name,
            )

    known = {migration.version for migration in migrations}
    for version in sorted(set(applied) - known):
        logger.warning(
            "database has migration version=%s that this release does not ship; "
            "a newer defectline release migrated it",
            version,
        )
    return sorted(applied)


async def _read_applied(conn: psycopg.AsyncConnection) -> dict[str, str]:
    cursor = await conn.execute("SELECT version, checksum FROM schema_migrations")
    return {version: checksum for version, checksum in await cursor.fetchall()}


async def _apply_one(conn: psycopg.AsyncConnection, migration: Migration) -> None:
    # The file may hold several statements; psycopg sends a query without parameters through
    # the simple query protocol, which accepts that.
    try:
        async with conn.transaction():
            await conn.execute(sql.SQL(migration.sql))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as exc:
        if conn.broken:
            raise
        raise MigrationError(
            f"migration {migration.version}_{migration.name}.sql failed and was rolled back: "
            f"{exc}; the versions before it stay applied, fix the cause and run the migration again"
        ) from exc

    logger.info("migration applied version=%s name=%s", migration.version, migration.name)
