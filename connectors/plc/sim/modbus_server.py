"""Simulated Modbus TCP PLC: a pymodbus server with every station's points and a write history."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from defectline.config.models import (
    BIT_TABLES,
    HandshakeConfig,
    ModbusPlcConfig,
    ModbusPoint,
    ModbusTable,
    PlcOutput,
    VerdictField,
)
from defectline.connectors.plc.codec import (
    decode_registers,
    encode_bool,
    encode_registers,
    register_count,
)
from defectline.connectors.plc.errors import PlcError

logger = logging.getLogger(__name__)

# Function codes that change coils or holding registers (Modbus Application Protocol V1.1b3).
WRITE_FUNCTION_CODES = {
    5: "write_coil",
    6: "write_register",
    15: "write_coils",
    16: "write_registers",
}
_REGISTER_WRITES = {6, 16}
_SPARE_ADDRESSES = 16

# Read function code of each table; the server's data store picks the table by function code.
_READ_FUNCTION_CODES = {
    ModbusTable.COIL: 1,
    ModbusTable.DISCRETE_INPUT: 2,
    ModbusTable.HOLDING_REGISTER: 3,
    ModbusTable.INPUT_REGISTER: 4,
}


@dataclass(frozen=True)
class ModbusWriteRequest:
    """One write request the simulator accepted."""

    function_code: int
    address: int
    count: int
    values: tuple[int, ...] | tuple[bool, ...]


class ModbusSimulator:
    """A Modbus TCP server at the PLC's host and port, sized for every configured point.

    `stations` maps a station id to its outputs for this PLC, and `handshakes` a station id to
    its handshake with this PLC. Each write request that covers a station's `sequence` point
    appends the decoded sequence to `history[station]`, so one write per verdict shows up as one
    entry per verdict. `set_point` and `get_point` act as the PLC program: they change and read
    the data store directly, as a PLC does with its own memory.
    """

    def __init__(
        self,
        plc: ModbusPlcConfig,
        stations: Mapping[str, Sequence[PlcOutput]],
        *,
        port: int | None = None,
        handshakes: Mapping[str, HandshakeConfig] | None = None,
    ) -> None:
        self.plc = plc
        self.port = plc.port if port is None else port
        self.requests: list[ModbusWriteRequest] = []
        self.history: dict[str, list[int]] = {station: [] for station in stations}
        self._sequence_points = {
            station: point
            for station, outputs in stations.items()
            for output in outputs
            if output.plc == plc.name
            for point in output.points
            if point.field is VerdictField.SEQUENCE and point.table is ModbusTable.HOLDING_REGISTER
        }
        points = [
            point
            for outputs in stations.values()
            for output in outputs
            if output.plc == plc.name
            for point in output.points
        ]
        for handshake in (handshakes or {}).values():
            if handshake.plc == plc.name:
                points.extend(handshake.points)
        self._sizes = _table_sizes(points)
        self._server: ModbusTcpServer | None = None

    @property
    def endpoint(self) -> str:
        return f"modbus://{self.plc.host}:{self.port} unit {self.plc.unit_id}"

    async def start(self) -> None:
        """Bind the port and serve in the background."""
        device = SimDevice(
            id=self.plc.unit_id,
            simdata=(
                [_bits(self._sizes[ModbusTable.COIL])],
                [_bits(self._sizes[ModbusTable.DISCRETE_INPUT])],
                [_registers(self._sizes[ModbusTable.HOLDING_REGISTER])],
                [_registers(self._sizes[ModbusTable.INPUT_REGISTER])],
            ),
            action=self._on_access,
        )
        self._server = ModbusTcpServer(device, address=(self.plc.host, self.port))
        try:
            await self._server.serve_forever(background=True)
        except OSError as exc:
            raise PlcError(
                f"simulated Modbus PLC '{self.plc.name}' cannot listen on "
                f"{self.plc.host}:{self.port}: {exc}; free the port or change it in plcs"
            ) from exc
        logger.info(
            "modbus simulator started plc=%s endpoint=%s coils=%d holding_registers=%d",
            self.plc.name,
            self.endpoint,
            self._sizes[ModbusTable.COIL],
            self._sizes[ModbusTable.HOLDING_REGISTER],
        )

    async def set_point(self, point: ModbusPoint, value: bool | int | float) -> None:
        """Store `value` at `point` as the PLC program would, encoded with its dtype."""
        server = self._require_server()
        words: list[int] | list[bool]
        if point.table in BIT_TABLES:
            words = [encode_bool(value, point.field.value)]
        else:
            words = encode_registers(value, point.dtype, point.word_order, point.scale)
        code = _READ_FUNCTION_CODES[point.table]
        await server.async_setValues(self.plc.unit_id, code, point.address, words)

    async def get_point(self, point: ModbusPoint) -> bool | int | float:
        """Return the value stored at `point`, decoded with its dtype."""
        server = self._require_server()
        code = _READ_FUNCTION_CODES[point.table]
        words = await server.async_getValues(
            self.plc.unit_id, code, point.address, register_count(point.dtype)
        )
        if point.table in BIT_TABLES:
            return bool(words[0])
        return decode_registers([int(word) for word in words], point.dtype, point.word_order)

    def _require_server(self) -> ModbusTcpServer:
        if self._server is None:
            raise PlcError(f"simulated Modbus PLC '{self.plc.name}' is not started")
        return self._server

    async def stop(self) -> None:
        """Close the listening socket and every client connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            logger.info("modbus simulator stopped plc=%s", self.plc.name)

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        """Record writes; pymodbus calls this before it stores `set_values`."""
        if function_code not in WRITE_FUNCTION_CODES or set_values is None:
            return
        values = tuple(set_values)
        self.requests.append(ModbusWriteRequest(function_code, address, len(values), values))
        logger.debug(
            "modbus write received plc=%s function=%s address=%d values=%s",
            self.plc.name,
            WRITE_FUNCTION_CODES[function_code],
            address,
            list(values),
        )
        if function_code in _REGISTER_WRITES:
            after = list(registers)
            offset = address - start_address
            after[offset : offset + len(values)] = [int(value) for value in values]
            self._record_sequences(address, len(values), after, start_address)

    def _record_sequences(
        self, address: int, count: int, registers: list[int], start_address: int
    ) -> None:
        for station, point in self._sequence_points.items():
            size = register_count(point.dtype)
            if point.address + size <= address or point.address >= address + count:
                continue
            offset = point.address - start_address
            sequence = decode_registers(
                registers[offset : offset + size], point.dtype, point.word_order, point.scale
            )
            self.history[station].append(int(sequence))


def _table_sizes(points: Sequence[ModbusPoint]) -> dict[ModbusTable, int]:
    """Return the size of each table: every configured point plus a few spare addresses."""
    ends = dict.fromkeys(ModbusTable, 0)
    for point in points:
        ends[point.table] = max(ends[point.table], point.address + register_count(point.dtype))
    return {table: end + _SPARE_ADDRESSES for table, end in ends.items()}


def _bits(count: int) -> SimData:
    return SimData(0, count=count, values=False, datatype=DataType.BITS)


def _registers(count: int) -> SimData:
    return SimData(0, count=count, values=0, datatype=DataType.REGISTERS)
