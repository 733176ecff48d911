"""Modbus TCP writer: verdict values to coils and holding registers through pymodbus."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from defectline.config.models import (
    BIT_TABLES,
    ModbusPlcConfig,
    ModbusTable,
    PlcOutput,
    VerdictField,
)
from defectline.connectors.plc.base import (
    WRITE_RANKS,
    PlcWriter,
    ReconnectPolicy,
    Value,
    register_writer,
)
from defectline.connectors.plc.codec import PointRun, decode_run, encode_run, plan_runs
from defectline.connectors.plc.errors import (
    PlcCodecError,
    PlcConnectError,
    PlcConnectionLostError,
    PlcValueError,
    PlcWriteRejectedError,
)

logger = logging.getLogger(__name__)

# pymodbus 3.16 calls the unit id argument `device_id`; earlier 3.x releases called it `slave`.
UNIT_KWARG = (
    "device_id"
    if "device_id" in inspect.signature(AsyncModbusTcpClient.write_registers).parameters
    else "slave"
)


def unit_kwargs(unit_id: int) -> dict[str, Any]:
    """Return the keyword argument that addresses `unit_id` in this pymodbus version."""
    return {UNIT_KWARG: unit_id}


def new_client(config: ModbusPlcConfig) -> AsyncModbusTcpClient:
    """Build a pymodbus client with its own retries and reconnects off; callers handle both."""
    return AsyncModbusTcpClient(
        config.host,
        port=config.port,
        timeout=config.timeout_ms / 1000,
        retries=0,
        reconnect_delay=0,
    )


def describe_response(response: ModbusPDU) -> str:
    """Name the exception code of an error response, e.g. 'exception code 2 (ILLEGAL_ADDRESS)'."""
    code = int(getattr(response, "exception_code", 0))
    try:
        name = ExcCodes(code).name
    except ValueError:
        name = "unknown"
    return f"exception code {code} ({name})"


@register_writer
class ModbusWriter(PlcWriter):
    """Writes coils and holding registers with Write Multiple Coils/Registers (functions 15, 16).

    Points at contiguous addresses of one table go in one request. The run that contains the
    `sequence` field is written last, so a PLC that reacts to a new sequence number finds the
    other values of the same verdict already in place.
    """

    type_key = "modbus"

    def __init__(
        self,
        config: ModbusPlcConfig,
        outputs: Iterable[PlcOutput] = (),
        *,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        super().__init__(config, outputs, reconnect=reconnect)
        self._modbus = config
        self._client: AsyncModbusTcpClient | None = None
        self._plans: dict[PlcOutput, list[PointRun]] = {}
        for output in self._outputs:
            self._plan(output)

    @property
    def endpoint(self) -> str:
        return f"modbus://{self._modbus.host}:{self._modbus.port} unit {self._modbus.unit_id}"

    async def _open(self) -> None:
        client = new_client(self._modbus)
        self._client = client
        try:
            is_connected = await client.connect()
        except (OSError, ModbusException) as exc:
            raise PlcConnectError(self.name, self.endpoint, str(exc)) from exc
        if not is_connected:
            raise PlcConnectError(
                self.name, self.endpoint, "connection refused or timed out; is the PLC reachable?"
            )

    async def _discard_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _write(self, output: PlcOutput, values: Mapping[VerdictField, Value]) -> None:
        runs = self._plan(output)
        requests: list[tuple[PointRun, list[int] | list[bool]]] = []
        for run in runs:
            try:
                requests.append((run, encode_run(run, values)))
            except PlcCodecError as exc:
                raise PlcValueError(self.name, self.endpoint, run.target, str(exc)) from exc

        for run, words in _sequence_last(requests):
            await self._send(run, words)
            logger.debug("modbus write plc=%s target=%s words=%s", self.name, run.target, words)

    async def _send(self, run: PointRun, words: Sequence[int] | Sequence[bool]) -> None:
        client = self._client
        if client is None:
            raise PlcConnectionLostError(self.name, self.endpoint, run.target, "client is closed")

        unit = unit_kwargs(self._modbus.unit_id)
        if run.table is ModbusTable.COIL:
            write = client.write_coils
        else:
            write = client.write_registers
        await self._request(
            run, partial(write, run.address, list(words), **unit), "the PLC answered"
        )

    async def _request(
        self, run: PointRun, send: Callable[[], Awaitable[Any]], answered: str
    ) -> Any:
        """Await one Modbus request for `run`; raise a PlcError on a failure or an error reply."""
        try:
            async with asyncio.timeout(self.timeout_s):
                # pymodbus raises ConnectionException already on the call, so it is made here.
                response = await send()
        except TimeoutError as exc:
            reason = f"no response within {self._modbus.timeout_ms} ms"
            raise PlcConnectionLostError(self.name, self.endpoint, run.target, reason) from exc
        except (ConnectionException, ModbusIOException, OSError) as exc:
            raise PlcConnectionLostError(self.name, self.endpoint, run.target, str(exc)) from exc
        except ModbusException as exc:
            raise PlcWriteRejectedError(self.name, self.endpoint, run.target, str(exc)) from exc

        if response.isError():
            raise PlcWriteRejectedError(
                self.name,
                self.endpoint,
                run.target,
                f"{answered} {describe_response(response)}; "
                "check the addresses and unit id against the PLC's register map",
            )
        return response

    async def _read(self, output: PlcOutput) -> dict[VerdictField, Value]:
        values: dict[VerdictField, Value] = {}
        for run in self._plan(output):
            words = await self._fetch(run)
            try:
                values.update(decode_run(run, words[: run.count]))
            except PlcCodecError as exc:
                raise PlcValueError(self.name, self.endpoint, run.target, str(exc)) from exc
        return values

    async def _fetch(self, run: PointRun) -> list[int] | list[bool]:
        client = self._client
        if client is None:
            raise PlcConnectionLostError(self.name, self.endpoint, run.target, "client is closed")

        read = {
            ModbusTable.COIL: client.read_coils,
            ModbusTable.DISCRETE_INPUT: client.read_discrete_inputs,
            ModbusTable.HOLDING_REGISTER: client.read_holding_registers,
            ModbusTable.INPUT_REGISTER: client.read_input_registers,
        }[run.table]
        unit = unit_kwargs(self._modbus.unit_id)
        send = partial(read, run.address, count=run.count, **unit)
        response = await self._request(run, send, "the PLC answered the read with")
        if run.table in BIT_TABLES:
            return list(response.bits)
        return list(response.registers)

    def _plan(self, output: PlcOutput) -> list[PointRun]:
        runs = self._plans.get(output)
        if runs is None:
            try:
                runs = plan_runs(output.points)
            except PlcCodecError as exc:
                raise PlcValueError(self.name, self.endpoint, "points", str(exc)) from exc
            self._plans[output] = runs
        return runs


def _sequence_last(
    requests: list[tuple[PointRun, list[int] | list[bool]]],
) -> list[tuple[PointRun, list[int] | list[bool]]]:
    """Order runs so that the sequence, then result_sequence, then result_valid go last."""

    def rank(item: tuple[PointRun, list[int] | list[bool]]) -> int:
        return max(WRITE_RANKS.get(point.field, 0) for point in item[0].points)

    return sorted(requests, key=rank)
