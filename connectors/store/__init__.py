"""Stores that keep verdicts, PLC write results and dead letters for dashboards and reports."""

from defectline.connectors.store.base import InspectionStore
from defectline.connectors.store.errors import (
    MigrationError,
    StoreError,
    StoreUnavailableError,
    TimescaleUnavailableError,
)

__all__ = [
    "InspectionStore",
    "MigrationError",
    "StoreError",
    "StoreUnavailableError",
    "TimescaleUnavailableError",
]
