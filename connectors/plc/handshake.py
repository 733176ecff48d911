"""Station handshake with a PLC: part triggers in; result, sequence and strobe out; ack; heartbeat.

The signal sequence, register map and node set are documented in docs/plc.md. In short:

1. The PLC raises `trigger` for each part (a counter that changes, or a bool that rises) and
   puts the part's number into `part_id`. Over Modbus the inspector polls both (and the ack)
   every `poll_interval_ms`; over OPC UA it subscribes to their data changes, so a bool that
   rises and falls between two publish responses is still seen.
2. For each verdict the inspector writes the station's result values and `result_sequence`
   (1..65535, then 1 again), and only then sets `result_valid`.
3. With an `ack` point the PLC confirms the result (a bool set to true, or an integer set to
   the result_sequence it took); the inspector then clears `result_valid`. Without an ack, or
   when no ack comes within `ack_timeout_ms`, the strobe is cleared after the hold time.
4. `heartbeat` is written every `heartbeat_interval_ms`; a PLC that sees it stand still for a
   few periods treats the inspector as dead and rejects parts on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from defectline.config.models import (
    HandshakeConfig,
    ModbusPoint,
    OpcUaNode,
    PlcOutput,
    StationConfig,
    VerdictField,
)
from defectline.connectors.plc.base import InputSubscription, PlcWriter, Value
from defectline.connectors.plc.errors import PlcError, PlcWriteError

logger = logging.getLogger(__name__)

# Triggers kept for matching frames to parts; at 10 parts per second this covers 25 s.
PART_HISTORY = 256
SEQUENCE_MAX = 65535
# Heartbeat counters wrap below 2**15, so they fit every integer type a PLC may use for them.
HEARTBEAT_MODULUS = 32768


@dataclass(frozen=True)
class PartTrigger:
    """One part announced by the PLC: its id (None without a part_id point) and when it was seen.

    `number` counts the triggers of one handshake from 1, so parts without a part id can be
    told apart.
    """

    part_id: str | None
    triggered_at: datetime
    number: int = 0


# How a part was settled: a verdict was routed for it, or its fail-safe was written instead.
SETTLED_BY_VERDICT = "verdict"
SETTLED_BY_FAIL_SAFE = "fail_safe"


class StationHandshake:
    """Runs the handshake of one station over the writer of its handshake PLC.

    `start()` launches the trigger polling and heartbeat tasks; `publish()` writes one result
    with its sequence number and strobe; `part_for()` matches a capture time to a part.
    """

    def __init__(self, station: StationConfig, writer: PlcWriter) -> None:
        if station.handshake is None:
            raise PlcError(f"station '{station.id}' has no handshake configured")
        self.station_id = station.id
        self.config: HandshakeConfig = station.handshake
        self._writer = writer
        self._inputs = self._output(VerdictField.TRIGGER, VerdictField.PART_ID)
        # OPC UA inputs come by subscription (trigger, part id and ack in one); Modbus polls.
        self._subscribed = bool(self.config.nodes)
        self._watched = self._output(VerdictField.TRIGGER, VerdictField.PART_ID, VerdictField.ACK)
        self._ack = self._output(VerdictField.ACK)
        self._strobe = self._output(VerdictField.RESULT_VALID)
        self._heartbeat = self._output(VerdictField.HEARTBEAT)
        self._sequence_item = self.config.find(VerdictField.RESULT_SEQUENCE)

        self.parts: deque[PartTrigger] = deque(maxlen=PART_HISTORY)
        self.result_sequence = 0
        self._last_trigger: Value | None = None
        self._part_value: Value | None = None
        self._triggers = 0
        self._settled: OrderedDict[int, str] = OrderedDict()
        self._listeners: list[Callable[[PartTrigger], None]] = []
        self._awaited_sequence: int | None = None
        self._acked = asyncio.Event()
        self._strobe_up = False
        self._lock = asyncio.Lock()
        self._release_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def plc(self) -> str:
        return self.config.plc

    @property
    def input_lag_ms(self) -> int:
        """How long after the PLC changed an input the inspector may see it, at most."""
        if self._subscribed:
            return max(self.config.sampling_interval_ms, 1)
        return self.config.poll_interval_ms

    def add_trigger_listener(self, listener: Callable[[PartTrigger], None]) -> None:
        """Call `listener` with every new part trigger, on the event loop, right when it is seen."""
        self._listeners.append(listener)

    def settle(self, trigger: PartTrigger, by: str) -> bool:
        """Record how `trigger`'s part got its result; False when its fail-safe came first.

        A part settled by its fail-safe takes no verdict afterwards, and a part settled by a
        verdict gets no fail-safe; further verdicts of the same part are allowed.
        """
        settled = self._settled.get(trigger.number)
        if settled == SETTLED_BY_FAIL_SAFE or (settled is not None and by == SETTLED_BY_FAIL_SAFE):
            return False
        self._settled[trigger.number] = by
        while len(self._settled) > PART_HISTORY:
            self._settled.popitem(last=False)
        return True

    async def start(self) -> None:
        """Start reading the trigger (subscribed or polled) and, when mapped, the heartbeat."""
        loop = self._subscription_loop() if self._subscribed else self._poll_loop()
        self._tasks.append(asyncio.create_task(loop, name=f"handshake-inputs-{self.station_id}"))
        if self._heartbeat is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._heartbeat_loop(), name=f"handshake-heartbeat-{self.station_id}"
                )
            )
        logger.info(
            "handshake started station=%s plc=%s inputs=%s interval_ms=%d",
            self.station_id,
            self.plc,
            "subscription" if self._subscribed else "polling",
            self.config.sampling_interval_ms if self._subscribed else self.config.poll_interval_ms,
        )

    async def stop(self) -> None:
        """Stop every task. The strobe is left as it is; the stopped heartbeat is the PLC's signal."""
        tasks = [*self._tasks, *([self._release_task] if self._release_task else [])]
        self._tasks, self._release_task = [], None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        logger.info("handshake stopped station=%s plc=%s", self.station_id, self.plc)

    def part_for(self, captured_at: datetime) -> str | None:
        """Return the part id of the latest trigger before `captured_at`, within the window."""
        trigger = self.trigger_for(captured_at)
        return None if trigger is None else trigger.part_id

    def trigger_for(self, captured_at: datetime) -> PartTrigger | None:
        """Return the latest trigger before `captured_at`, within the part window.

        A trigger is seen up to one poll (or sampling) interval after the PLC raised it, so a
        frame captured that much before the trigger was seen still belongs to it.
        """
        lag = timedelta(milliseconds=self.input_lag_ms)
        window = timedelta(milliseconds=self.config.part_window_ms)
        for trigger in reversed(self.parts):
            if trigger.triggered_at - lag <= captured_at:
                if captured_at - trigger.triggered_at <= window:
                    return trigger
                return None
        return None

    async def publish(self, output: PlcOutput, values: Mapping[VerdictField, Value]) -> int:
        """Write `output` with the next result_sequence, then raise result_valid.

        Returns the result sequence written. Raises PlcWriteError when either write fails; the
        strobe is then not raised, so the PLC never sees result_valid over partial values.
        """
        async with self._lock:
            await self._cancel_release()
            if self._strobe_up:
                # The previous result was not released yet; drop the strobe first so the PLC
                # sees a new rising edge for this result.
                await self._writer.write(self._strobe_or_fail(), {VerdictField.RESULT_VALID: False})
                self._strobe_up = False

            sequence = self.result_sequence % SEQUENCE_MAX + 1
            # Acks count from here on, so one that comes before the strobe write returns is kept.
            self._awaited_sequence = sequence
            self._acked.clear()
            result = self._with_sequence(output)
            await self._writer.write(result, {**values, VerdictField.RESULT_SEQUENCE: sequence})
            self.result_sequence = sequence
            await self._writer.write(self._strobe_or_fail(), {VerdictField.RESULT_VALID: True})
            self._strobe_up = True

            self._release_task = asyncio.create_task(
                self._release(sequence), name=f"handshake-release-{self.station_id}"
            )
        logger.debug("handshake result published station=%s sequence=%d", self.station_id, sequence)
        return sequence

    # --- tasks ----------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        interval_s = self.config.poll_interval_ms / 1000
        while True:
            if not self._writer.is_connected:
                # The writer logs its reconnects; wait for one instead of spinning.
                await self._writer.wait_connected(max(interval_s, 1.0))
                continue
            try:
                values = await self._writer.read(self._inputs)
            except PlcWriteError as exc:
                logger.debug("handshake poll failed station=%s error=%s", self.station_id, exc)
                await asyncio.sleep(interval_s)
                continue

            self._part_value = values.get(VerdictField.PART_ID)
            self._on_trigger_value(values.get(VerdictField.TRIGGER))
            await asyncio.sleep(interval_s)

    async def _subscription_loop(self) -> None:
        """Subscribe to trigger, part id and ack; subscribe again with every new client."""
        interval_s = max(self.config.sampling_interval_ms, 20) / 1000
        watched = self._watched
        if watched is None:
            return
        while True:
            if not self._writer.is_connected:
                await self._writer.wait_connected(max(interval_s, 1.0))
                continue
            connection = self._writer.connections
            try:
                subscription = await self._writer.subscribe(
                    watched, self.config.sampling_interval_ms
                )
            except PlcError as exc:
                logger.warning(
                    "handshake subscription failed station=%s plc=%s error=%s; retrying",
                    self.station_id,
                    self.plc,
                    exc,
                )
                await asyncio.sleep(max(interval_s, 1.0))
                continue
            try:
                await self._follow(subscription, connection, interval_s)
            except PlcError as exc:
                logger.warning(
                    "handshake subscription ended station=%s plc=%s error=%s",
                    self.station_id,
                    self.plc,
                    exc,
                )
            finally:
                await subscription.close()

    async def _follow(
        self, subscription: InputSubscription, connection: int, interval_s: float
    ) -> None:
        """Apply the changes of `subscription` until the writer's client changes or drops."""
        while self._writer.is_connected and self._writer.connections == connection:
            for field, value in await subscription.next_changes(interval_s):
                if field is VerdictField.PART_ID:
                    self._part_value = value
                elif field is VerdictField.TRIGGER:
                    self._on_trigger_value(value)
                elif field is VerdictField.ACK:
                    self._on_ack_value(value)

    def _on_trigger_value(self, value: Value | None) -> None:
        from defectline.streams.metrics import HANDSHAKE_EVENTS

        if not self._is_new_part(value):
            return
        part = self._part_value
        self._triggers += 1
        trigger = PartTrigger(
            None if part is None else str(part), datetime.now(UTC), self._triggers
        )
        self.parts.append(trigger)
        HANDSHAKE_EVENTS.labels(station=self.station_id, event="trigger").inc()
        logger.debug("part triggered station=%s part=%s", self.station_id, trigger.part_id)
        for listener in self._listeners:
            listener(trigger)

    def _on_ack_value(self, value: Value | None) -> None:
        sequence = self._awaited_sequence
        if sequence is not None and _is_ack(value, sequence):
            self._acked.set()

    def _is_new_part(self, trigger: Value | None) -> bool:
        previous, self._last_trigger = self._last_trigger, trigger
        if previous is None or trigger is None:
            return False  # the first read only sets the baseline
        if isinstance(trigger, bool):
            return trigger and not previous
        return trigger != previous

    async def _release(self, sequence: int) -> None:
        """Wait for the ack (or the hold time), then clear result_valid."""
        from defectline.streams.metrics import HANDSHAKE_EVENTS

        if self._ack is None:
            await asyncio.sleep(self.config.result_valid_hold_ms / 1000)
        elif await self._wait_ack(sequence):
            HANDSHAKE_EVENTS.labels(station=self.station_id, event="ack").inc()
        else:
            HANDSHAKE_EVENTS.labels(station=self.station_id, event="ack_timeout").inc()
            logger.warning(
                "handshake ack missing station=%s plc=%s sequence=%d ack_timeout_ms=%d; "
                "clearing result_valid",
                self.station_id,
                self.plc,
                sequence,
                self.config.ack_timeout_ms,
            )

        async with self._lock:
            try:
                await self._writer.write(self._strobe_or_fail(), {VerdictField.RESULT_VALID: False})
            except PlcWriteError as exc:
                logger.warning(
                    "handshake strobe not cleared station=%s error=%s; cleared before the next "
                    "result",
                    self.station_id,
                    exc,
                )
                return
            self._strobe_up = False

    async def _wait_ack(self, sequence: int) -> bool:
        if self._ack is None:
            return False
        if self._subscribed:
            # A bool ack still true from the previous result does not count: only a change
            # reported after this result's values were written does.
            try:
                await asyncio.wait_for(self._acked.wait(), self.config.ack_timeout_ms / 1000)
            except TimeoutError:
                return False
            return True
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.config.ack_timeout_ms / 1000
        while loop.time() < give_up_at:
            with contextlib.suppress(PlcWriteError):
                values = await self._writer.read(self._ack)
                if _is_ack(values.get(VerdictField.ACK), sequence):
                    return True
            await asyncio.sleep(self.config.poll_interval_ms / 1000)
        return False

    async def _heartbeat_loop(self) -> None:
        from defectline.streams.metrics import HEARTBEATS

        if self._heartbeat is None:
            return
        interval_s = self.config.heartbeat_interval_ms / 1000
        is_bit = _is_bit(self.config.find(VerdictField.HEARTBEAT))
        counter = 0
        while True:
            counter = (counter + 1) % HEARTBEAT_MODULUS
            value: Value = bool(counter % 2) if is_bit else counter
            try:
                await self._writer.write(self._heartbeat, {VerdictField.HEARTBEAT: value})
            except PlcWriteError as exc:
                HEARTBEATS.labels(plc=self.plc, status="failed").inc()
                logger.debug("heartbeat not written station=%s error=%s", self.station_id, exc)
            else:
                HEARTBEATS.labels(plc=self.plc, status="ok").inc()
            await asyncio.sleep(interval_s)

    # --- helpers --------------------------------------------------------------------------------

    async def _cancel_release(self) -> None:
        task, self._release_task = self._release_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def _output(self, *fields: VerdictField) -> PlcOutput | None:
        items = [item for field in fields if (item := self.config.find(field)) is not None]
        if not items:
            return None
        return _make_output(self.plc, items)

    def _strobe_or_fail(self) -> PlcOutput:
        if self._strobe is None:
            raise PlcError(f"station '{self.station_id}' handshake has no result_valid")
        return self._strobe

    def _with_sequence(self, output: PlcOutput) -> PlcOutput:
        if self._sequence_item is None:
            return output
        items = [*output.points, *output.nodes, self._sequence_item]
        return _make_output(self.plc, items)


def _make_output(plc: str, items: list[ModbusPoint | OpcUaNode]) -> PlcOutput:
    points = tuple(item for item in items if isinstance(item, ModbusPoint))
    nodes = tuple(item for item in items if isinstance(item, OpcUaNode))
    return PlcOutput(plc=plc, points=points, nodes=nodes)


def _is_ack(value: Value | None, sequence: int) -> bool:
    if isinstance(value, bool):
        return value
    return value is not None and int(value) == sequence


def _is_bit(item: ModbusPoint | OpcUaNode | None) -> bool:
    return isinstance(item, ModbusPoint) and item.dtype == "bool"
