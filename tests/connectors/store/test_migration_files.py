"""Synchronous entry points of the migrations: reading the SQL files and `migrate_sync`."""

from __future__ import annotations

from defectline.config.models import DatabaseConfig
from defectline.connectors.store.migrations import load_migrations
from defectline.connectors.store.postgres import migrate_sync

# Every shipped file, in version order; a new migration file gets added here.
EXPECTED_FILES = [
    ("0001", "inspections"),
    ("0002", "plc_writes"),
    ("0003", "dead_letters"),
    ("0004", "quality_tables"),
    ("0005", "operator_feedback"),
    ("0006", "rollups"),
    ("0007", "plc_write_status"),
]
EXPECTED_VERSIONS = [version for version, _name in EXPECTED_FILES]


def test_load_migrations_ordered_by_version() -> None:
    migrations = load_migrations()

    assert [(m.version, m.name) for m in migrations] == EXPECTED_FILES


def test_migrate_sync_applies_migrations(database_config: DatabaseConfig) -> None:
    assert migrate_sync(database_config) == EXPECTED_VERSIONS
    assert migrate_sync(database_config) == EXPECTED_VERSIONS
