"""Simulated Modbus TCP PLC: a pymodbus server with every station's points and a write history."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from defectline.config.models import ModbusPlcConfig, ModbusTable, PlcOutput, VerdictField
from defectline.connectors.plc.codec import decode_registers, register_count
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


@dataclass(frozen=True)
class ModbusWriteRequest:
    """One write request the simulator accepted."""

    function_code: int
    address: int
    count: int
    values: tuple[int, ...] | tuple[bool, ...]


class ModbusSimulator:
    """A Modbus TCP server at the PLC's host and port, sized for every configured point.

    `stations` maps a station id to its outputs for this PLC. Each write request that covers a
    station's `sequence` point appends the decoded sequence to `history[station]`, so one write
    per verdict shows up as one entry per verdict.
    """

    def __init__(
        self,
        plc: ModbusPlcConfig,
        stations: Mapping[str, Sequence[PlcOutput]],
        *,
        port: int | None = None,
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
        self._coil_count, self._register_count = _table_sizes(stations, plc.name)
        self._server: ModbusTcpServer | None = None

    @property
    def endpoint(self) -> str:
        return f"modbus://{self.plc.host}:{self.port} unit {self.plc.unit_id}"

    async def start(self) -> None:
        """Bind the port and serve in the background."""
        device = SimDevice(
            id=self.plc.unit_id,
            simdata=(
                [SimData(0, count=self._coil_count, values=False, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=self._register_count, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
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
            self._coil_count,
            self._register_count,
        )

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


def _table_sizes(stations: Mapping[str, Sequence[PlcOutput]], plc_name: str) -> tuple[int, int]:
    """Return (coils, holding registers) covering every configured point plus a few spare."""
    coil_end = 0
    register_end = 0
    for outputs in stations.values():
        for output in outputs:
            if output.plc != plc_name:
                continue
            for point in output.points:
                end = point.address + register_count(point.dtype)
                if point.table is ModbusTable.COIL:
                    coil_end = max(coil_end, end)
                else:
                    register_end = max(register_end, end)
    return coil_end + _SPARE_ADDRESSES, register_end + _SPARE_ADDRESSES
