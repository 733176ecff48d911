"""Quality records of the worker: drift events and model deployments stored, rollups refreshed.

The rollup refresh runs on its own database connection, so a long REFRESH never holds up the
verdict writes, and only on plain PostgreSQL (TimescaleDB refreshes its continuous aggregates
itself). A failed refresh is logged and retried at the next interval.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import faust

from defectline.connectors.store.errors import StoreError
from defectline.connectors.store.postgres import PostgresStore
from defectline.schemas import topics
from defectline.schemas.drift import DriftEvent
from defectline.streams.recorder import attach_recorder

if TYPE_CHECKING:
    from defectline.streams.worker import Worker

logger = logging.getLogger(__name__)

RECORD_BATCH_WAIT_S = 0.2
# One refresh of all rollups may take this long before the statement is cancelled.
REFRESH_TIMEOUT_S = 300.0


def attach_quality_records(worker: Worker, store: PostgresStore) -> None:
    """Add the drift event recorder, the deployment record at start and the rollup refresh."""
    _attach_drift_recorder(worker, store)
    _attach_deployment_record(worker, store)
    refresh_s = worker.config.database.rollup_refresh_s
    if refresh_s > 0:
        _attach_rollup_refresh(worker, refresh_s)


def _attach_drift_recorder(worker: Worker, store: PostgresStore) -> None:
    topic = worker.app.topic(
        topics.topic_name(topics.DRIFT, worker.config.kafka.topic_prefix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    attach_recorder(worker, topic, "drift_events", DriftEvent.from_json, store.write_drift_events)


def _attach_deployment_record(worker: Worker, store: PostgresStore) -> None:
    model = worker.inspector.model
    config_path = worker.config.model.path
    digest = _file_sha256(config_path)

    @worker.app.task
    async def record_deployment() -> None:
        started_at = datetime.now(UTC)
        for station in worker.config.stations:

            async def record(_rows: object, station_id: str = station.id) -> int:
                added = await store.record_deployment(
                    started_at, station_id, model.name, model.version, digest
                )
                return int(added)

            try:
                added = await worker.recorder.store("model_deployments", [station.id], record)
            except StoreError as exc:
                logger.error("model deployment not recorded station=%s error=%s", station.id, exc)
                continue
            if added:
                logger.info(
                    "model deployment recorded station=%s model=%s version=%s",
                    station.id,
                    model.name,
                    model.version,
                )


def _attach_rollup_refresh(worker: Worker, refresh_s: float) -> None:
    refresher = PostgresStore(worker.config.database, statement_timeout_s=REFRESH_TIMEOUT_S)

    @worker.app.timer(interval=refresh_s)
    async def refresh_rollups() -> None:
        try:
            views = await refresher.refresh_rollups()
        except StoreError as exc:
            logger.warning("rollup refresh failed error=%s; retrying in %.0f s", exc, refresh_s)
            return
        logger.debug("rollups refreshed views=%s", ",".join(views) or "none")

    @worker.app.on_before_shutdown.connect
    async def close_refresher(app: faust.App, **_: object) -> None:
        await refresher.close()


def _file_sha256(path: str) -> str | None:
    """Return the SHA-256 of a model file, or None for a built-in model or a missing file."""
    file = Path(path)
    if path.startswith("builtin:") or not file.is_file():
        return None
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
