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
from typing import Any

import faust

logger = logging.getLogger(__name__)

# Times one missing offset range is read again before the gap is accepted as real (a topic
# with transactions or compaction has offsets that never arrive).
MAX_REREADS = 3
# How long to wait for a range asked for again before asking once more.
REREAD_WAIT_S = 10.0


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
        expected: dict[Any, int] = {}
        rereads: dict[tuple[Any, int], tuple[int, float]] = {}
        try:
            async for event in source.events():
                if await _reread_if_skipped(stream, event, expected, rereads):
                    continue
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


async def _reread_if_skipped(
    stream: faust.StreamT,
    event: faust.types.EventT,
    expected: dict[Any, int],
    rereads: dict[tuple[Any, int], tuple[int, float]],
) -> bool:
    """Seek back when the stream skipped offsets; return True when `event` must be dropped.

    faust-streaming 0.15 drops the messages it fetched while its flow was suspended for a
    rebalance, and a later acknowledgement can then commit past them. The skipped range is read
    again instead: events after it are dropped until it arrives, and they arrive again after it.
    """
    message = event.message
    tp, offset = message.tp, message.offset
    want = expected.get(tp)
    if want is None:
        # The first event of a partition must be the committed offset, the consumer's start.
        committed = getattr(stream.app.consumer, "_committed_offset", {}).get(tp)
        want = committed if isinstance(committed, int) else None
    if want is None or offset <= want:
        expected[tp] = offset + 1
        return False

    loop = asyncio.get_running_loop()
    attempt, sought_at = rereads.get((tp, want), (0, 0.0))
    if attempt and loop.time() - sought_at < REREAD_WAIT_S:
        return True  # Still waiting for the range asked for; later events come again after it.
    if attempt >= MAX_REREADS:
        logger.error(
            "offsets never arrived topic=%s[%d] from=%d to=%d after %d rereads; continuing",
            tp.topic, tp.partition, want, offset - 1, MAX_REREADS,
        )  # fmt: skip
        expected[tp] = offset + 1
        return False
    rereads[(tp, want)] = (attempt + 1, loop.time())
    logger.warning(
        "messages skipped by the consumer topic=%s[%d] from=%d to=%d; reading them again",
        tp.topic, tp.partition, want, offset - 1,
    )  # fmt: skip
    await stream.app.consumer.seek(tp, want)
    return True
