"""Deadlines of triggered parts: the fail-safe for a part whose verdict never reaches routing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial

from defectline.config.models import PlantConfig, StationConfig
from defectline.connectors.plc.handshake import (
    PART_HISTORY,
    SETTLED_BY_FAIL_SAFE,
    PartTrigger,
    StationHandshake,
)
from defectline.schemas.plc_writes import PlcWriteResult
from defectline.streams.routing import PlcRouter

logger = logging.getLogger(__name__)

Emit = Callable[[PlcWriteResult], Awaitable[None]]


class PartDeadlines:
    """Watches the triggers of stations with a handshake and a `result_deadline_ms`.

    Each trigger starts a timer of the station's result deadline, measured from the time the
    trigger was seen. When it runs out and no verdict was routed for the part, the station's
    fail-safe values are written once through the router, and each result goes to `emit`.
    A verdict for that part that arrives later is not written.
    """

    def __init__(
        self,
        config: PlantConfig,
        router: PlcRouter,
        handshakes: Mapping[str, StationHandshake],
        emit: Emit,
    ) -> None:
        self._router = router
        self._emit = emit
        self._handshakes = dict(handshakes)
        self._timers: set[asyncio.Task[None]] = set()
        self._stopped = False
        for station in config.stations:
            handshake = self._handshakes.get(station.id)
            if handshake is not None and station.result_deadline_ms is not None:
                handshake.add_trigger_listener(partial(self._on_trigger, station))

    def _on_trigger(self, station: StationConfig, trigger: PartTrigger) -> None:
        if self._stopped:
            return
        if len(self._timers) >= PART_HISTORY:
            # Bounded like the trigger history: more parts than that within one deadline means
            # the trigger input is faulty, and each skipped part is logged.
            logger.error(
                "part deadline not watched station=%s part=%s pending=%d",
                station.id,
                trigger.part_id,
                len(self._timers),
            )
            return
        timer = asyncio.create_task(
            self._expire(station, trigger), name=f"part-deadline-{station.id}-{trigger.number}"
        )
        self._timers.add(timer)
        timer.add_done_callback(partial(self._done, station, trigger))

    def _done(
        self, station: StationConfig, trigger: PartTrigger, timer: asyncio.Task[None]
    ) -> None:
        self._timers.discard(timer)
        if timer.cancelled() or timer.exception() is None:
            return
        logger.error(
            "part fail-safe not recorded station=%s part=%s error=%s",
            station.id,
            trigger.part_id,
            timer.exception(),
        )

    async def _expire(self, station: StationConfig, trigger: PartTrigger) -> None:
        deadline_ms = station.result_deadline_ms or 0
        due = trigger.triggered_at + timedelta(milliseconds=deadline_ms)
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        if not self._handshakes[station.id].settle(trigger, SETTLED_BY_FAIL_SAFE):
            return  # a verdict was routed for this part in time
        for result in await self._router.fail_safe_part(station, trigger):
            await self._emit(result)

    async def stop(self) -> None:
        """Cancel the running timers; their parts get no fail-safe from this worker."""
        self._stopped = True
        timers, self._timers = set(self._timers), set()
        for timer in timers:
            timer.cancel()
        if timers:
            await asyncio.wait(timers)
