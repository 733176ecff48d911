"""Errors raised by the inspection stores."""

from defectline.errors import DefectlineError


class StoreError(DefectlineError):
    """A store rejected a write, a query or a migration."""


class StoreUnavailableError(StoreError):
    """The database is unreachable or the connection was lost, so the caller pauses and retries."""


class MigrationError(StoreError):
    """A schema migration failed and was rolled back. The versions applied before it stay."""


class TimescaleUnavailableError(StoreError):
    """TimescaleDB was requested with `use_timescaledb: on` but cannot be used in this database."""
