"""The contract every inspection store implements: migrate, write batches idempotently, close."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.plc_writes import PlcWriteResult
from defectline.schemas.verdicts import Verdict


class InspectionStore(ABC):
    """Durable storage of verdicts, PLC write results and dead letters.

    Every write method takes a whole batch and stores it in one transaction, or raises and stores
    nothing. Writes are idempotent: a replayed message with the same key is skipped, so a caller
    that retries a batch after `StoreUnavailableError` never creates duplicates. The return value
    is the number of rows that were new.

    Example::

        store = PostgresStore(config.database)
        async with store:
            await store.migrate()
            inserted = await store.write_verdicts(verdicts)
    """

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection, raising `StoreUnavailableError` if the database is unreachable."""

    @abstractmethod
    async def migrate(self) -> list[str]:
        """Bring the schema up to date and return every applied migration version, in order."""

    @abstractmethod
    async def write_verdicts(self, verdicts: Sequence[Verdict]) -> int:
        """Store one row per verdict, keyed by (camera_id, frame_id, captured_at)."""

    @abstractmethod
    async def write_plc_results(self, results: Sequence[PlcWriteResult]) -> int:
        """Store one row per PLC write result, keyed by (plc, camera_id, frame_id, captured_at)."""

    @abstractmethod
    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        """Store one row per dead letter, keyed by its source topic, partition and offset."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection. Calling it again or before `connect` does nothing."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
