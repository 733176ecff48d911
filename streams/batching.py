"""Batches of stream events that are acknowledged only after the agent has processed them.

Faust's own iterators (`Stream.events`, `Stream.take_events`, faust-streaming 0.15) acknowledge
the events in flight when the agent is cancelled or raises, so a worker stopped mid-batch
commits offsets of events whose effects never happened. Here a batch is acknowledged only when
the agent requests the next one. A batch interrupted by shutdown or an error stays
unacknowledged, and the next worker processes it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import faust

logger = logging.getLogger(__name__)


class _SourceStopped:
    """Queue item put by the pump when the source stream ends or fails."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


async def processed_batches(
    stream: faust.StreamT, max_size: int, max_wait_s: float
) -> AsyncIterator[list[faust.types.EventT]]:
    """Yield lists of up to `max_size` events, waiting at most `max_wait_s` to fill one.

    Each batch is acknowledged when the caller requests the next batch, so after its loop body
    completed, and never when the body raised or was cancelled. Events keep the order in which
    the stream delivered them.
    """
    source = stream.noack()
    queue: asyncio.Queue[faust.types.EventT | _SourceStopped] = asyncio.Queue(maxsize=max_size)

    async def pump() -> None:
        error: BaseException | None = None
        try:
            async for event in source.events():
                await queue.put(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the consuming side below
            error = exc
        await queue.put(_SourceStopped(error))

    pump_task = asyncio.create_task(pump(), name="processed-batches-pump")
    loop = asyncio.get_running_loop()
    try:
        while True:
            first = await queue.get()
            if isinstance(first, _SourceStopped):
                if first.error is not None:
                    raise first.error
                return
            batch = [first]
            stopped: _SourceStopped | None = None
            deadline = loop.time() + max_wait_s
            while len(batch) < max_size:
                remaining_s = deadline - loop.time()
                if remaining_s <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), remaining_s)
                except TimeoutError:
                    break
                if isinstance(item, _SourceStopped):
                    stopped = item
                    break
                batch.append(item)

            yield batch
            for event in batch:
                await source.ack(event)
            if stopped is not None:
                if stopped.error is not None:
                    raise stopped.error
                return
    finally:
        pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task
