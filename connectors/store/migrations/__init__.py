"""Versioned SQL migrations of the PostgreSQL store, read from the `NNNN_name.sql` files here."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from defectline.connectors.store.errors import MigrationError

FILE_PATTERN = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One SQL file: `version` orders it, `checksum` detects edits after it was applied."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """Read every migration file of this package, ordered by version.

    Raises `MigrationError` for a `.sql` file whose name does not match `NNNN_name.sql` or for
    two files with the same version, because either would make the applied order ambiguous.
    """
    migrations: dict[str, Migration] = {}
    for entry in resources.files(__package__).iterdir():
        if not entry.name.endswith(".sql"):
            continue

        match = FILE_PATTERN.match(entry.name)
        if match is None:
            raise MigrationError(
                f"migration file '{entry.name}' is not named NNNN_name.sql "
                "(four digits, underscore, lowercase name); rename it"
            )

        version = match["version"]
        if version in migrations:
            raise MigrationError(
                f"migration version {version} is used by both '{migrations[version].name}' "
                f"and '{match['name']}'; give one of them the next free number"
            )
        migrations[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))

    return [migrations[version] for version in sorted(migrations)]
