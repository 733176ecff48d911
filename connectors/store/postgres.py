"""PostgreSQL store: writes verdicts, PLC write results and dead letters through psycopg 3."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

import psycopg
import psycopg.errors

from defectline.config.models import DatabaseConfig
from defectline.connectors.store.base import InspectionStore
from defectline.connectors.store.errors import MigrationError, StoreError, StoreUnavailableError
from defectline.connectors.store.migrator import migrate_schema
from defectline.connectors.store.quality_rows import (
    CLOSE_DRIFT_EPISODE,
    DEPLOYMENT_COLUMNS,
    DRIFT_START_COLUMNS,
    FEEDBACK_COLUMNS,
    REGION_COLUMNS,
    deployment_row,
    feedback_row,
    region_rows,
    split_drift_events,
)
from defectline.connectors.store.rollups import RECORD_DEPLOYMENT, refresh_rollups
from defectline.connectors.store.rows import (
    DEAD_LETTER_COLUMNS,
    INSPECTION_COLUMNS,
    PLC_WRITE_COLUMNS,
    Row,
    chunk_rows,
    dead_letter_row,
    insert_statement,
    plc_write_row,
    verdict_row,
)
from defectline.connectors.store.summary import (
    LatencyPercentiles,
    count_inspections,
    count_rejects_by_class,
    plc_latency_percentiles,
)
from defectline.connectors.store.timescale import StorageMode
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.drift import DriftEvent
from defectline.schemas.feedback import Feedback
from defectline.schemas.plc_writes import PlcWriteResult
from defectline.schemas.verdicts import Verdict

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Time allowed on top of the server-side timeout before the client gives up on a silent network.
CLIENT_MARGIN_S = 1.0


class PostgresStore(InspectionStore):
    """Store on PostgreSQL, with TimescaleDB hypertables when `use_timescaledb` selects them.

    One autocommit connection carries the writes; each write call is one transaction. When the
    connection is lost or a statement times out, the call raises `StoreUnavailableError` and the
    next call reconnects, so the caller pauses and retries the same batch.

    statement_timeout_s: server-side limit of one write or query, also the client-side limit of
        one call (plus a 1 s margin).
    migration_timeout_s: limit of `migrate`, including the wait for another worker's migration.
    """

    def __init__(
        self,
        config: DatabaseConfig,
        *,
        statement_timeout_s: float = 30.0,
        migration_timeout_s: float = 600.0,
    ) -> None:
        self._config = config
        self._statement_timeout_s = statement_timeout_s
        self._migration_timeout_s = migration_timeout_s
        self._conn: psycopg.AsyncConnection | None = None
        self.storage_mode: StorageMode | None = None

    @property
    def address(self) -> str:
        """Server and database as `host:port/dbname`, safe to log."""
        return f"{self._config.host}:{self._config.port}/{self._config.dbname}"

    @property
    def is_connected(self) -> bool:
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    async def connect(self) -> None:
        if self.is_connected:
            return
        await self._drop_connection()
        self._conn = await self._open(self._statement_timeout_s)
        logger.info("store connected address=%s user=%s", self.address, self._config.user)

    async def close(self) -> None:
        if self._conn is None:
            return
        await self._drop_connection()
        logger.info("store closed address=%s", self.address)

    async def migrate(self) -> list[str]:
        """Apply pending migrations on a separate connection and log the storage mode."""
        conn = await self._open(self._migration_timeout_s)
        try:
            async with asyncio.timeout(self._migration_timeout_s):
                versions, mode = await migrate_schema(
                    conn,
                    self._config.use_timescaledb,
                    compress_after_days=self._config.compress_after_days,
                    retention_days=self._config.retention_days,
                )
        except TimeoutError as exc:
            raise MigrationError(
                f"migrating {self.address} timed out after {self._migration_timeout_s:.0f} s; "
                "another worker may hold the migration lock, check pg_stat_activity and retry"
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"migrating {self.address} failed: {self._scrub(exc)}; "
                "retry once the database is back"
            ) from exc
        except psycopg.Error as exc:
            raise MigrationError(f"migrating {self.address} failed: {self._scrub(exc)}") from exc
        finally:
            await conn.close()

        self.storage_mode = mode
        logger.info(
            "storage mode=%s use_timescaledb=%s address=%s schema_version=%s",
            mode,
            self._config.use_timescaledb,
            self.address,
            versions[-1] if versions else "none",
        )
        return versions

    async def write_verdicts(self, verdicts: Sequence[Verdict]) -> int:
        """Store verdicts and their defect regions in one transaction; return new verdict rows."""
        rows = [verdict_row(verdict) for verdict in verdicts]
        regions = [row for verdict in verdicts for row in region_rows(verdict)]
        extra = [("defect_regions", REGION_COLUMNS, regions)]
        return await self._insert("inspections", INSPECTION_COLUMNS, rows, extra=extra)

    async def write_feedback(self, reports: Sequence[Feedback]) -> int:
        """Store operator feedback, keyed by (feedback_id, reported_at)."""
        rows = [feedback_row(report) for report in reports]
        return await self._insert("operator_feedback", FEEDBACK_COLUMNS, rows)

    async def write_drift_events(self, events: Sequence[DriftEvent]) -> int:
        """Insert episode starts and close episodes on recovery; return rows inserted or closed."""
        starts, recoveries = split_drift_events(events)
        if not starts and not recoveries:
            return 0

        async def write_all(conn: psycopg.AsyncConnection) -> int:
            changed = 0
            async with conn.transaction():
                for chunk in chunk_rows(starts, len(DRIFT_START_COLUMNS), self._config.batch_size):
                    statement, parameters = insert_statement(
                        "drift_events", DRIFT_START_COLUMNS, chunk
                    )
                    changed += (await conn.execute(statement, parameters)).rowcount
                for recovery in recoveries:
                    changed += (await conn.execute(CLOSE_DRIFT_EPISODE, recovery)).rowcount
            return changed

        return await self._run("write drift events", write_all)

    async def record_deployment(
        self,
        deployed_at: datetime,
        station_id: str,
        model_name: str,
        model_version: str,
        model_sha256: str | None = None,
    ) -> bool:
        """Record that a station runs this model from `deployed_at`, unless it already did.

        Returns True when a row was added, False when the station's latest deployment is the
        same model name and version.
        """
        row = deployment_row(deployed_at, station_id, model_name, model_version, model_sha256)
        parameters = dict(zip(DEPLOYMENT_COLUMNS, row, strict=True))

        async def record(conn: psycopg.AsyncConnection) -> int:
            return (await conn.execute(RECORD_DEPLOYMENT, parameters)).rowcount

        return await self._run("record model deployment", record) == 1

    async def refresh_rollups(self) -> list[str]:
        """Refresh the rollup materialized views concurrently; return the views refreshed."""
        return await self._run("refresh rollups", refresh_rollups)

    async def write_plc_results(self, results: Sequence[PlcWriteResult]) -> int:
        rows = [plc_write_row(result) for result in results]
        return await self._insert("plc_writes", PLC_WRITE_COLUMNS, rows)

    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        rows = [dead_letter_row(letter) for letter in letters]
        return await self._insert("dead_letters", DEAD_LETTER_COLUMNS, rows)

    async def count_inspections(
        self,
        *,
        station_id: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
    ) -> int:
        """Count stored inspections, optionally filtered by station, outcome and capture time."""
        return await self._run(
            "count inspections",
            lambda conn: count_inspections(
                conn, station_id=station_id, outcome=outcome, since=since
            ),
        )

    async def count_rejects_by_class(
        self, *, station_id: str | None = None, since: datetime | None = None
    ) -> dict[str, int]:
        """Count rejected inspections per class name, most frequent first."""
        return await self._run(
            "count rejects",
            lambda conn: count_rejects_by_class(conn, station_id=station_id, since=since),
        )

    async def plc_latency_percentiles(
        self, *, plc: str | None = None, since: datetime | None = None
    ) -> LatencyPercentiles:
        """Compute p50 and p99 of capture-to-PLC latency over successful writes."""
        return await self._run(
            "read PLC latency",
            lambda conn: plc_latency_percentiles(conn, plc=plc, since=since),
        )

    async def _insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Row],
        extra: Sequence[tuple[str, Sequence[str], Sequence[Row]]] = (),
    ) -> int:
        """Insert `rows`, then the `extra` (table, columns, rows) in the same transaction.

        Returns the number of new rows in `table`; rows of `extra` are not counted.
        """
        if not rows:
            return 0

        async def insert_all(conn: psycopg.AsyncConnection) -> int:
            inserted = 0
            async with conn.transaction():
                for chunk in chunk_rows(rows, len(columns), self._config.batch_size):
                    statement, parameters = insert_statement(table, columns, chunk)
                    cursor = await conn.execute(statement, parameters)
                    inserted += cursor.rowcount
                for extra_table, extra_columns, extra_rows in extra:
                    batch_size = self._config.batch_size
                    for chunk in chunk_rows(extra_rows, len(extra_columns), batch_size):
                        statement, parameters = insert_statement(extra_table, extra_columns, chunk)
                        await conn.execute(statement, parameters)
            return inserted

        inserted = await self._run(f"insert into {table}", insert_all)
        logger.debug("batch stored table=%s rows=%d new=%d", table, len(rows), inserted)
        return inserted

    async def _run(self, action: str, work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` on the live connection and turn driver errors into store errors."""
        await self.connect()
        conn = self._conn
        if conn is None:
            raise StoreUnavailableError(f"{action} on {self.address}: no connection")

        limit_s = self._statement_timeout_s + CLIENT_MARGIN_S
        retry_hint = "retrying the batch is safe because rows already stored are skipped"
        try:
            async with asyncio.timeout(limit_s):
                return await work(conn)
        except TimeoutError as exc:
            await self._drop_connection()
            raise StoreUnavailableError(
                f"{action} on {self.address} timed out after {limit_s:.1f} s; {retry_hint}"
            ) from exc
        except psycopg.OperationalError as exc:
            if conn.broken:
                await self._drop_connection()
            raise StoreUnavailableError(
                f"{action} on {self.address} failed: {self._scrub(exc)}; {retry_hint}"
            ) from exc
        except psycopg.errors.UndefinedTable as exc:
            raise StoreError(
                f"{action} on {self.address} failed: {self._scrub(exc)}; "
                "create the tables with `defectline db migrate`"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"{action} on {self.address} failed: {self._scrub(exc)}") from exc

    async def _open(self, statement_timeout_s: float) -> psycopg.AsyncConnection:
        limit_s = self._config.connect_timeout_s + CLIENT_MARGIN_S
        where = f"PostgreSQL at {self.address} as user {self._config.user}"
        try:
            async with asyncio.timeout(limit_s):
                return await psycopg.AsyncConnection.connect(
                    self._config.conninfo(),
                    autocommit=True,
                    application_name="defectline",
                    options=f"-c statement_timeout={round(statement_timeout_s * 1000)}",
                )
        except TimeoutError as exc:
            raise StoreUnavailableError(
                f"connecting to {where} timed out after {limit_s:.1f} s; "
                "check that the server runs and that host and port in the database config are right"
            ) from exc
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"cannot connect to {where}: {self._scrub(exc)}; "
                "check host, port, dbname, user and password in the database config"
            ) from exc

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()

    def _scrub(self, exc: BaseException) -> str:
        """Return the error text with the password masked, in case a driver message repeats it."""
        text = str(exc).strip()
        password = self._config.password
        if password is not None and password.get_secret_value():
            text = text.replace(password.get_secret_value(), "***")
        return text


def migrate_sync(config: DatabaseConfig) -> list[str]:
    """Apply pending migrations from synchronous code such as the CLI; return applied versions."""
    return asyncio.run(_migrate_once(config))


async def _migrate_once(config: DatabaseConfig) -> list[str]:
    store = PostgresStore(config)
    return await store.migrate()
