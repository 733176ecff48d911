"""Synchronous entry points of the migrations: reading the SQL files and `migrate_sync`."""

from __future__ import annotations

from defectline.config.models import DatabaseConfig
from defectline.connectors.store.migrations import load_migrations
from defectline.connectors.store.postgres import migrate_sync

EXPECTED_VERSIONS = ["0001", "0002", "0003"]


def test_load_migrations_ordered_by_version() -> None:
    migrations = load_migrations()

    assert [m.version for m in migrations] == EXPECTED_VERSIONS
    assert [m.name for m in migrations] == ["inspections", "plc_writes", "dead_letters"]


def test_migrate_sync_applies_migrations(database_config: DatabaseConfig) -> None:
    assert migrate_sync(database_config) == EXPECTED_VERSIONS
    assert migrate_sync(database_config) == EXPECTED_VERSIONS
