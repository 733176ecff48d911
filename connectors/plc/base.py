"""The PLC writer contract: connection state, reconnect with backoff, ordered writes, a registry."""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import ClassVar

from defectline.config.models import PlcConfig, PlcOutput, VerdictField
from defectline.connectors.plc.errors import (
    PlcConnectError,
    PlcConnectionLostError,
    PlcError,
    PlcNotConnectedError,
    PlcValueError,
)

logger = logging.getLogger(__name__)

Value = bool | int | float

# Opening a connection takes several round trips (TCP, and for OPC UA the hello, secure channel,
# session and a read of the node data types), so it gets this many request timeouts in total.
CONNECT_TIMEOUT_REQUESTS = 4

# Fields that a PLC watches for "a new result is there" are written after the values they
# announce, in this order; every other field has rank 0.
WRITE_RANKS = {
    VerdictField.SEQUENCE: 1,
    VerdictField.RESULT_SEQUENCE: 2,
    VerdictField.RESULT_VALID: 3,
}


class ConnectionState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True)
class ReconnectPolicy:
    """Capped exponential backoff with jitter between reconnect attempts."""

    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    multiplier: float = 2.0
    jitter_pct: float = 20.0

    def delay_s(self, attempt: int) -> float:
        """Return the delay before reconnect attempt `attempt` (0-based), jitter included."""
        base_s = min(self.max_delay_s, self.initial_delay_s * self.multiplier**attempt)
        spread_s = base_s * self.jitter_pct / 100
        return min(self.max_delay_s, max(0.0, base_s + random.uniform(-spread_s, spread_s)))


class PlcWriter(ABC):
    """One connection to one PLC that writes verdict values for any number of stations.

    `connect()` makes one attempt. When it fails, or when a write later loses the connection,
    the writer closes its client and reconnects in the background with a fresh client object,
    using `ReconnectPolicy` backoff. Writes while disconnected fail fast with
    `PlcNotConnectedError`. Writes are serialised, so the values of one PLC arrive in call order.

    Usage::

        writer = create_writer(config.plc("line1-modbus"), outputs)
        try:
            await writer.connect()
        except PlcConnectError as exc:
            logger.warning("plc down, writes fail until it is back: %s", exc)
        ...
        try:
            await writer.write(output, {VerdictField.REJECT: True, VerdictField.SEQUENCE: 42})
        except PlcWriteError as exc:
            record_failed_write(exc.plc, exc.target, exc.reason)
        ...
        await writer.close()

    A new protocol subclasses PlcWriter, sets `type_key` to the config's `type` value, implements
    `endpoint`, `_open`, `_write`, `_read` and `_discard_client`, and is decorated with
    `register_writer`.
    """

    type_key: ClassVar[str]

    def __init__(
        self,
        config: PlcConfig,
        outputs: Iterable[PlcOutput] = (),
        *,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        self._config = config
        self._outputs = tuple(output for output in outputs if output.plc == config.name)
        self._reconnect = reconnect or ReconnectPolicy()
        self._state = ConnectionState.DISCONNECTED
        self._connected = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._last_error = "never connected"
        self._connections = 0

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def is_connected(self) -> bool:
        return self._state is ConnectionState.CONNECTED

    @property
    def connections(self) -> int:
        """How many times a client was connected; a new value means a new client and session."""
        return self._connections

    @property
    def timeout_s(self) -> float:
        """Time allowed for one request, from the PLC's `timeout_ms`."""
        return self._config.timeout_ms / 1000

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """Where the PLC is, for log lines and error messages (never includes a password)."""

    async def connect(self) -> None:
        """Open the connection once; on failure raise PlcConnectError and retry in background."""
        if self._state is ConnectionState.CLOSED:
            raise PlcError(f"PLC writer '{self.name}' is closed; create a new writer to reconnect")
        if self._state is ConnectionState.CONNECTED:
            return

        # A background attempt may be half-way through opening a client; stop it so that only
        # one client exists at a time.
        await self._cancel_reconnect_loop()
        try:
            await self._attempt_connect()
        except PlcConnectError:
            self._start_reconnect_loop()
            raise

    async def write(self, output: PlcOutput, values: Mapping[VerdictField, Value]) -> None:
        """Write one verdict's values to the points or nodes of `output`.

        Raises a PlcWriteError subclass: PlcNotConnectedError (nothing sent),
        PlcValueError (nothing sent), PlcConnectionLostError or PlcWriteRejectedError.
        """
        if output.plc != self.name:
            raise PlcValueError(
                self.name,
                self.endpoint,
                "output",
                f"the output names PLC '{output.plc}' but this writer serves '{self.name}'",
            )

        async with self._write_lock:
            if self._state is not ConnectionState.CONNECTED:
                raise PlcNotConnectedError(
                    self.name,
                    self.endpoint,
                    self._describe(output),
                    f"PLC is {self._state.value} (last error: {self._last_error}); "
                    "a reconnect is running in the background",
                )
            try:
                await self._write(output, values)
            except PlcConnectionLostError as exc:
                self._last_error = exc.reason
                await self._lose_connection()
                raise

    async def read(self, output: PlcOutput) -> dict[VerdictField, Value]:
        """Read the current values of the points or nodes of `output`, in one pass.

        Used by the handshake to poll the PLC's trigger, part id and ack. Raises
        PlcNotConnectedError, PlcConnectionLostError or PlcWriteRejectedError like `write`.
        """
        async with self._write_lock:
            if self._state is not ConnectionState.CONNECTED:
                raise PlcNotConnectedError(
                    self.name,
                    self.endpoint,
                    self._describe(output),
                    f"PLC is {self._state.value} (last error: {self._last_error}); "
                    "a reconnect is running in the background",
                )
            try:
                return await self._read(output)
            except PlcConnectionLostError as exc:
                self._last_error = exc.reason
                await self._lose_connection()
                raise

    async def subscribe(self, output: PlcOutput, interval_ms: int) -> InputSubscription:
        """Subscribe to changes of the points or nodes of `output` on the current client.

        Only protocols with subscriptions implement it (OPC UA); the subscription lives as long
        as the client, so after a reconnect (`connections` changed) the caller subscribes again.
        """
        raise PlcError(
            f"PLC '{self.name}' ({self.type_key}) has no subscriptions; poll it with read()"
        )

    async def connection_lost(self, client: object, reason: str) -> None:
        """Drop `client` and reconnect, when a protocol library reports it dead between requests."""
        async with self._write_lock:
            if self._state is not ConnectionState.CONNECTED or not self._is_current(client):
                return
            self._last_error = reason
            await self._lose_connection()

    def _is_current(self, client: object) -> bool:
        """True when `client` is the writer's current client; protocols with callbacks override."""
        return False

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until the writer is connected; return False when `timeout_s` passes first."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop reconnecting and close the client; the writer cannot be used afterwards."""
        if self._state is ConnectionState.CLOSED:
            return
        self._state = ConnectionState.CLOSED
        self._connected.clear()

        await self._cancel_reconnect_loop()
        await self._discard_client_quietly()
        logger.info("plc writer closed plc=%s", self.name)

    async def __aenter__(self) -> PlcWriter:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- protocol hooks -------------------------------------------------------------------------

    @abstractmethod
    async def _open(self) -> None:
        """Create a fresh client and connect it; raise PlcConnectError on failure."""

    @abstractmethod
    async def _write(self, output: PlcOutput, values: Mapping[VerdictField, Value]) -> None:
        """Send the values; raise PlcConnectionLostError when the transport fails or times out."""

    @abstractmethod
    async def _read(self, output: PlcOutput) -> dict[VerdictField, Value]:
        """Read the values; raise PlcConnectionLostError when the transport fails or times out."""

    @abstractmethod
    async def _discard_client(self) -> None:
        """Close and forget the current client; called after failures and on close."""

    def _describe(self, output: PlcOutput) -> str:
        """The points or nodes of `output`, for error messages."""
        if output.points:
            return ", ".join(f"{p.table.value} {p.address}" for p in output.points)
        return ", ".join(node.target for node in output.nodes)

    # --- connection state -----------------------------------------------------------------------

    async def _attempt_connect(self) -> None:
        self._state = ConnectionState.CONNECTING
        connect_timeout_s = self.timeout_s * CONNECT_TIMEOUT_REQUESTS
        try:
            await asyncio.wait_for(self._open(), timeout=connect_timeout_s)
        except TimeoutError as exc:
            error = PlcConnectError(
                self.name, self.endpoint, f"no answer within {connect_timeout_s:g} s"
            )
            await self._fail_connect(error)
            raise error from exc
        except PlcConnectError as exc:
            await self._fail_connect(exc)
            raise
        except asyncio.CancelledError:
            await self._discard_client_quietly()
            if self._state is ConnectionState.CONNECTING:
                self._state = ConnectionState.DISCONNECTED
            raise

        if self._state is ConnectionState.CLOSED:
            await self._discard_client_quietly()
            return
        self._state = ConnectionState.CONNECTED
        self._connections += 1
        self._connected.set()
        logger.info("plc connected plc=%s endpoint=%s", self.name, self.endpoint)

    async def _fail_connect(self, error: PlcConnectError) -> None:
        self._last_error = error.reason
        if self._state is not ConnectionState.CLOSED:
            self._state = ConnectionState.DISCONNECTED
        await self._discard_client_quietly()

    async def _lose_connection(self) -> None:
        logger.warning(
            "plc connection lost plc=%s endpoint=%s error=%s",
            self.name,
            self.endpoint,
            self._last_error,
        )
        self._state = ConnectionState.DISCONNECTED
        self._connected.clear()
        await self._discard_client_quietly()
        self._start_reconnect_loop()

    async def _discard_client_quietly(self) -> None:
        try:
            await asyncio.wait_for(self._discard_client(), timeout=self.timeout_s)
        except (TimeoutError, OSError, PlcError) as exc:
            logger.debug("plc client close failed plc=%s error=%s", self.name, exc)

    async def _cancel_reconnect_loop(self) -> None:
        task, self._reconnect_task = self._reconnect_task, None
        if task is None or task.done() or task is asyncio.current_task():
            return
        task.cancel()
        # asyncio.wait does not raise the task's CancelledError, so a cancel of the caller
        # itself still propagates.
        await asyncio.wait({task})

    def _start_reconnect_loop(self) -> None:
        if self._state is ConnectionState.CLOSED:
            return
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return
        self._reconnect_task = asyncio.create_task(
            self._reconnect_loop(), name=f"plc-reconnect-{self.name}"
        )

    async def _reconnect_loop(self) -> None:
        attempt = 0
        while self._state is not ConnectionState.CLOSED:
            delay_s = self._reconnect.delay_s(attempt)
            logger.warning(
                "plc reconnect scheduled plc=%s endpoint=%s attempt=%d delay_s=%.2f error=%s",
                self.name,
                self.endpoint,
                attempt + 1,
                delay_s,
                self._last_error,
            )
            await asyncio.sleep(delay_s)
            if self._state is ConnectionState.CLOSED:
                return
            try:
                await self._attempt_connect()
            except PlcConnectError:
                attempt += 1
                continue
            return


class InputSubscription(ABC):
    """Value changes of a PLC's input points or nodes, in the order the PLC reported them."""

    @abstractmethod
    async def next_changes(self, timeout_s: float) -> list[tuple[VerdictField, Value | None]]:
        """Return the changes that arrived, waiting up to `timeout_s`; [] when none came."""

    @abstractmethod
    async def close(self) -> None:
        """End the subscription; quiet when the client is already gone."""


_REGISTRY: dict[str, type[PlcWriter]] = {}

# Built-in protocols are imported on first use, so a plant without OPC UA never imports asyncua.
_BUILTIN_MODULES = {
    "modbus": "defectline.connectors.plc.modbus",
    "opcua": "defectline.connectors.plc.opcua",
}


def register_writer(cls: type[PlcWriter]) -> type[PlcWriter]:
    """Class decorator that makes `create_writer` build `cls` for configs of its `type_key`."""
    _REGISTRY[cls.type_key] = cls
    return cls


def create_writer(
    plc: PlcConfig,
    outputs: Iterable[PlcOutput] = (),
    *,
    reconnect: ReconnectPolicy | None = None,
) -> PlcWriter:
    """Build the writer for `plc.type`; `outputs` lets it check its points or nodes at connect."""
    if plc.type not in _REGISTRY and plc.type in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[plc.type])
    writer_class = _REGISTRY.get(plc.type)
    if writer_class is None:
        raise PlcError(
            f"PLC '{plc.name}' has type '{plc.type}', which has no writer; "
            f"registered types are {sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))}"
        )
    return writer_class(plc, outputs, reconnect=reconnect)
