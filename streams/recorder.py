"""Recording stage: store verdicts, PLC write results and dead letters in the database.

A database outage pauses the stage: the batch is retried with capped backoff and its events are
acknowledged only once stored, so consumption stops and resumes where it was, losing nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import faust
from pydantic import ValidationError

from defectline.connectors.store.base import InspectionStore
from defectline.connectors.store.errors import StoreError, StoreUnavailableError
from defectline.streams.batching import processed_batches
from defectline.streams.dead_letters import build_dead_letter, send_dead_letter
from defectline.streams.metrics import ROWS_STORED, STORE_FAILURES

if TYPE_CHECKING:
    from defectline.streams.worker import Worker

logger = logging.getLogger(__name__)

T = TypeVar("T")

RECORD_BATCH_WAIT_S = 0.2
MIN_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 30.0


class Recorder:
    """Writes batches to an `InspectionStore`, retrying until they are stored."""

    def __init__(self, store: InspectionStore) -> None:
        self._store = store
        self._connected = False
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._connected

    async def store(
        self, table: str, rows: Sequence[T], write: Callable[[Sequence[T]], Awaitable[int]]
    ) -> int:
        """Store `rows` with `write`, retrying with capped backoff while the database is unreachable.

        A `StoreError` other than unavailability (rows the database rejects) is raised to the
        caller, which dead-letters the batch instead of retrying it forever.
        """
        if not rows:
            return 0
        delay_s = MIN_RETRY_DELAY_S
        async with self._lock:
            while True:
                try:
                    if not self._connected:
                        await self._store.connect()
                        self._connected = True
                        logger.info("database connected")
                    inserted = await write(rows)
                except StoreUnavailableError as exc:
                    self._connected = False
                    STORE_FAILURES.labels(table=table).inc()
                    logger.warning(
                        "database write failed table=%s rows=%d error=%s; retrying in %.1f s",
                        table,
                        len(rows),
                        exc,
                        delay_s,
                    )
                    await self._close_quietly()
                    await asyncio.sleep(delay_s * random.uniform(0.8, 1.2))
                    delay_s = min(MAX_RETRY_DELAY_S, delay_s * 2)
                    continue
                ROWS_STORED.labels(table=table).inc(inserted)
                if inserted < len(rows):
                    logger.debug(
                        "skipped rows already stored table=%s skipped=%d",
                        table,
                        len(rows) - inserted,
                    )
                return inserted

    async def close(self) -> None:
        async with self._lock:
            await self._close_quietly()

    async def _close_quietly(self) -> None:
        try:
            await self._store.close()
        except StoreError as exc:
            logger.debug("database close failed error=%s", exc)


def attach_recorder(
    worker: Worker,
    topic: faust.TopicT,
    table: str,
    parse: Callable[[bytes], Any],
    write: Callable[[Sequence[Any]], Awaitable[int]],
) -> None:
    """Add an agent storing `topic`'s messages in `table`; malformed ones are dead-lettered."""

    @worker.app.agent(topic, name=f"record-{table.replace('_', '-')}")
    async def record(stream: faust.StreamT) -> None:
        async for events in processed_batches(
            stream, worker.config.database.batch_size, RECORD_BATCH_WAIT_S
        ):
            rows = []
            for event in events:
                try:
                    rows.append(parse(event.message.value))
                except ValidationError as exc:
                    letter = build_dead_letter(event, "recorder", exc)
                    await send_dead_letter(worker.topics.dead_letters, letter)
            await store_or_dead_letter(worker, table, rows, write, events)


async def store_or_dead_letter(
    worker: Worker,
    table: str,
    rows: list,
    write: Callable[[Sequence[Any]], Awaitable[int]],
    events: Sequence[faust.types.EventT],
) -> None:
    """Store `rows`; when the database rejects them, dead-letter the batch's events instead."""
    try:
        await worker.recorder.store(table, rows, write)
    except StoreError as exc:
        logger.error(
            "rows rejected by the database table=%s rows=%d error=%s", table, len(rows), exc
        )
        for event in events:
            letter = build_dead_letter(event, "recorder", exc)
            await send_dead_letter(worker.topics.dead_letters, letter)
