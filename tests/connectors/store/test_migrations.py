"""Migration runner against a real PostgreSQL server: versions, locking, rollback, storage mode."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

from defectline.config.models import DatabaseConfig
from defectline.connectors.store.errors import MigrationError, TimescaleUnavailableError
from defectline.connectors.store.migrations import Migration, load_migrations
from defectline.connectors.store.migrator import migrate_schema
from defectline.connectors.store.postgres import PostgresStore
from defectline.connectors.store.timescale import StorageMode

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXPECTED_VERSIONS = [migration.version for migration in load_migrations()]


async def _tables(conn: psycopg.AsyncConnection) -> set[str]:
    cursor = await conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    return {name for (name,) in await cursor.fetchall()}


async def _unique_index_columns(conn: psycopg.AsyncConnection, table: str) -> dict[str, str]:
    """Map each unique index of `table` to its definition text."""
    cursor = await conn.execute(
        """
        SELECT index_class.relname, pg_get_indexdef(ix.indexrelid)
        FROM pg_index ix
        JOIN pg_class index_class ON index_class.oid = ix.indexrelid
        WHERE ix.indrelid = %s::regclass AND ix.indisunique
        """,
        (table,),
    )
    return dict(await cursor.fetchall())


async def test_migrate_twice_returns_same_versions(
    database_config: DatabaseConfig, database: psycopg.AsyncConnection
) -> None:
    store = PostgresStore(database_config)

    first = await store.migrate()
    second = await store.migrate()

    assert first == EXPECTED_VERSIONS
    assert second == EXPECTED_VERSIONS
    cursor = await database.execute("SELECT version FROM schema_migrations ORDER BY version")
    assert [version for (version,) in await cursor.fetchall()] == EXPECTED_VERSIONS


async def test_migrate_concurrent_workers_both_succeed(
    database_config: DatabaseConfig, database: psycopg.AsyncConnection
) -> None:
    stores = [PostgresStore(database_config) for _ in range(3)]

    results = await asyncio.gather(*(store.migrate() for store in stores))

    assert results == [EXPECTED_VERSIONS] * 3
    cursor = await database.execute("SELECT count(*) FROM schema_migrations")
    assert (await cursor.fetchone()) == (len(EXPECTED_VERSIONS),)


async def test_migrate_creates_tables_with_unique_keys(
    database_config: DatabaseConfig, database: psycopg.AsyncConnection
) -> None:
    await PostgresStore(database_config).migrate()

    assert {"inspections", "plc_writes", "dead_letters", "schema_migrations"} <= await _tables(
        database
    )

    inspections = await _unique_index_columns(database, "inspections")
    assert "(camera_id, frame_id, captured_at)" in inspections["inspections_frame_key"]

    plc_writes = await _unique_index_columns(database, "plc_writes")
    assert "(plc, camera_id, frame_id, captured_at)" in plc_writes["plc_writes_frame_key"]

    dead_letters = await _unique_index_columns(database, "dead_letters")
    source_key = dead_letters["dead_letters_source_key"]
    assert "(source_topic, source_partition, source_offset)" in source_key
    assert "WHERE (source_topic IS NOT NULL)" in source_key


async def test_migrate_logs_postgresql_mode(
    database_config: DatabaseConfig, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore(database_config)

    with caplog.at_level(logging.INFO, logger="defectline.connectors.store.postgres"):
        await store.migrate()

    mode_lines = [r.getMessage() for r in caplog.records if "storage mode=" in r.getMessage()]
    assert len(mode_lines) == 1
    assert mode_lines[0].startswith("storage mode=postgresql use_timescaledb=auto")
    assert store.storage_mode is StorageMode.POSTGRESQL


async def test_migrate_timescaledb_off_uses_postgresql(
    database_config: DatabaseConfig, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore(database_config.model_copy(update={"use_timescaledb": "off"}))

    with caplog.at_level(logging.INFO, logger="defectline.connectors.store.postgres"):
        versions = await store.migrate()

    assert versions == EXPECTED_VERSIONS
    assert "storage mode=postgresql use_timescaledb=off" in caplog.text


async def test_migrate_timescaledb_on_without_extension_fails(
    database_config: DatabaseConfig, database: psycopg.AsyncConnection
) -> None:
    store = PostgresStore(database_config.model_copy(update={"use_timescaledb": "on"}))

    with pytest.raises(TimescaleUnavailableError) as caught:
        await store.migrate()

    message = str(caught.value)
    assert "use_timescaledb is 'on'" in message
    assert "does not offer the timescaledb extension" in message
    assert "'auto' or 'off'" in message
    assert "inspections" not in await _tables(database)


async def test_failed_migration_rolls_back_only_itself(database_conninfo: str) -> None:
    good = Migration("0001", "widgets", "CREATE TABLE widgets (id int PRIMARY KEY);")
    broken = Migration(
        "0002",
        "broken",
        "CREATE TABLE gadgets (id int); INSERT INTO widgets VALUES ('not a number');",
    )

    async with await psycopg.AsyncConnection.connect(database_conninfo, autocommit=True) as conn:
        with pytest.raises(MigrationError) as caught:
            await migrate_schema(conn, "off", [good, broken])

        assert "0002_broken.sql failed and was rolled back" in str(caught.value)
        assert "invalid input syntax for type integer" in str(caught.value)
        tables = await _tables(conn)
        assert "widgets" in tables
        assert "gadgets" not in tables
        cursor = await conn.execute("SELECT version FROM schema_migrations")
        assert [version for (version,) in await cursor.fetchall()] == ["0001"]

        # The lock is released after the failure, so fixing the file and re-running works.
        fixed = Migration("0002", "broken", "CREATE TABLE gadgets (id int);")
        versions, mode = await asyncio.wait_for(migrate_schema(conn, "off", [good, fixed]), 10)
        assert versions == ["0001", "0002"]
        assert mode is StorageMode.POSTGRESQL


async def test_changed_applied_migration_logs_warning(
    database_conninfo: str, caplog: pytest.LogCaptureFixture
) -> None:
    original = Migration("0001", "widgets", "CREATE TABLE widgets (id int);")
    edited = Migration("0001", "widgets", "CREATE TABLE widgets (id bigint);")

    async with await psycopg.AsyncConnection.connect(database_conninfo, autocommit=True) as conn:
        await migrate_schema(conn, "off", [original])
        with caplog.at_level(logging.WARNING, logger="defectline.connectors.store.migrator"):
            versions, _ = await migrate_schema(conn, "off", [edited])

    assert versions == ["0001"]
    assert "migration file changed after it was applied" in caplog.text
    assert "version=0001" in caplog.text
