"""Modbus register codec: verdict values to coils and 16-bit registers and back, grouped into runs.

The Modbus Application Protocol Specification V1.1b3 defines only 16-bit registers, sent
big-endian. A 32-bit value spans two registers, and vendors disagree on how its four bytes
A B C D (most significant first) are laid out:

- ABCD: big-endian, registers [AB, CD]
- CDAB: word swap, registers [CD, AB]
- BADC: byte swap inside each register, registers [BA, DC]
- DCBA: both swaps, registers [DC, BA]

A 16-bit value has only bytes A B, so BADC and DCBA swap its two bytes and CDAB equals ABCD.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from defectline.config.models import BIT_TABLES, ModbusPoint, ModbusTable, VerdictField
from defectline.connectors.plc.errors import PlcCodecError

Value = bool | int | float

# Largest run in one request, from the same specification: Write Multiple Registers takes 123
# registers and Write Multiple Coils 1968 coils. Reads allow 125 and 2000, so a run sized for a
# write can also be read back in one request.
MAX_REGISTERS_PER_REQUEST = 123
MAX_COILS_PER_REQUEST = 1968

_STRUCT_FORMATS = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}
_INTEGER_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_FLOAT32_MAX = struct.unpack(">f", bytes.fromhex("7f7fffff"))[0]


def register_count(dtype: str) -> int:
    """Return how many coils or registers a value of `dtype` occupies."""
    return 2 if dtype in ("int32", "uint32", "float32") else 1


def encode_registers(
    value: Value,
    dtype: str,
    word_order: str = "ABCD",
    scale: float = 1.0,
    field: str = "value",
) -> list[int]:
    """Encode one numeric value into 16-bit registers in `word_order`.

    `value` is multiplied by `scale` first; integer dtypes round the product to the nearest
    integer. `field` names the value in error messages.
    """
    if dtype not in _STRUCT_FORMATS:
        raise PlcCodecError(
            f"{field}: dtype '{dtype}' is not a register type; use one of {sorted(_STRUCT_FORMATS)}"
        )
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int | float):
        raise PlcCodecError(
            f"{field}: value {value!r} of type {type(value).__name__} is not a number "
            f"and cannot be written as {dtype}"
        )

    raw = _scaled(value, dtype, scale, field)
    data = struct.pack(">" + _STRUCT_FORMATS[dtype], raw)
    return _bytes_to_registers(_reorder(data, word_order))


def decode_registers(
    registers: Sequence[int], dtype: str, word_order: str = "ABCD", scale: float = 1.0
) -> int | float:
    """Decode registers written by `encode_registers`; a scale other than 1 returns a float."""
    expected = register_count(dtype)
    if len(registers) != expected:
        raise PlcCodecError(
            f"dtype {dtype} takes {expected} register(s) but {len(registers)} were given"
        )
    data = _reorder(b"".join(int(word).to_bytes(2, "big") for word in registers), word_order)
    raw = struct.unpack(">" + _STRUCT_FORMATS[dtype], data)[0]
    if scale != 1.0:
        return raw / scale
    return raw


def encode_bool(value: Value, field: str = "value") -> bool:
    """Convert a value for a coil: a bool, or the integers 0 and 1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise PlcCodecError(
        f"{field}: value {value!r} cannot be written to a coil; coils take true/false or 0/1"
    )


@dataclass(frozen=True)
class PointRun:
    """Points of one table at contiguous addresses, written or read in one request."""

    table: ModbusTable
    address: int
    count: int
    points: tuple[ModbusPoint, ...]

    @property
    def target(self) -> str:
        """The address range for messages, e.g. 'holding_register 1..4'."""
        return f"{self.table.value} {self.address}..{self.address + self.count - 1}"


def plan_runs(points: Sequence[ModbusPoint]) -> list[PointRun]:
    """Group points into runs of contiguous addresses per table, in address order.

    Raises PlcCodecError when two points of one table overlap.
    """
    runs: list[PointRun] = []
    ordered = sorted(points, key=lambda point: (point.table.value, point.address))
    current: list[ModbusPoint] = []

    for point in ordered:
        if current and current[-1].table is point.table:
            previous = current[-1]
            previous_end = previous.address + register_count(previous.dtype)
            if point.address < previous_end:
                raise PlcCodecError(
                    f"points '{previous.field.value}' and '{point.field.value}' overlap at "
                    f"{point.table.value} {point.address}; give each point its own addresses"
                )
            size_after = previous_end - current[0].address + register_count(point.dtype)
            if point.address == previous_end and size_after <= _max_run(point.table):
                current.append(point)
                continue
        if current:
            runs.append(_make_run(current))
        current = [point]

    if current:
        runs.append(_make_run(current))
    return runs


def encode_run(run: PointRun, values: Mapping[VerdictField, Value]) -> list[int] | list[bool]:
    """Return the coil or register values of one run, in address order."""
    if run.table in BIT_TABLES:
        return [encode_bool(_value_for(point, values), point.field.value) for point in run.points]

    registers: list[int] = []
    for point in run.points:
        registers.extend(
            encode_registers(
                _value_for(point, values),
                point.dtype,
                point.word_order,
                point.scale,
                point.field.value,
            )
        )
    return registers


def decode_run(run: PointRun, words: Sequence[int] | Sequence[bool]) -> dict[VerdictField, Value]:
    """Decode the values read from one run, keyed by field."""
    decoded: dict[VerdictField, Value] = {}
    for point in run.points:
        offset = point.address - run.address
        if run.table in BIT_TABLES:
            decoded[point.field] = bool(words[offset])
            continue
        size = register_count(point.dtype)
        chunk = [int(word) for word in words[offset : offset + size]]
        decoded[point.field] = decode_registers(chunk, point.dtype, point.word_order, point.scale)
    return decoded


def _max_run(table: ModbusTable) -> int:
    return MAX_COILS_PER_REQUEST if table in BIT_TABLES else MAX_REGISTERS_PER_REQUEST


def _make_run(points: list[ModbusPoint]) -> PointRun:
    last = points[-1]
    end = last.address + register_count(last.dtype)
    return PointRun(points[0].table, points[0].address, end - points[0].address, tuple(points))


def _value_for(point: ModbusPoint, values: Mapping[VerdictField, Value]) -> Value:
    if point.field not in values:
        raise PlcCodecError(
            f"no value for field '{point.field.value}' mapped at {point.table.value} "
            f"{point.address}; the writer received fields {sorted(str(key) for key in values)}"
        )
    return values[point.field]


def _scaled(value: int | float, dtype: str, scale: float, field: str) -> int | float:
    scaled = value * scale if scale != 1.0 else value
    described = f"{value!r}" if scale == 1.0 else f"{value!r} x scale {scale:g} = {scaled!r}"

    if dtype == "float32":
        if math.isfinite(scaled) and abs(scaled) > _FLOAT32_MAX:
            raise PlcCodecError(
                f"{field}: value {described} is outside the float32 range +-{_FLOAT32_MAX:.6g}"
            )
        return float(scaled)

    if not math.isfinite(scaled):
        raise PlcCodecError(
            f"{field}: value {described} is not finite and cannot be written as {dtype}"
        )
    raw = round(scaled)
    low, high = _INTEGER_RANGES[dtype]
    if not low <= raw <= high:
        raise PlcCodecError(
            f"{field}: value {described} is outside the {dtype} range {low}..{high}; "
            f"use a wider dtype or a smaller scale"
        )
    return raw


def _reorder(data: bytes, word_order: str) -> bytes:
    """Convert between big-endian bytes and `word_order`; the mapping is its own inverse."""
    if word_order not in ("ABCD", "CDAB", "BADC", "DCBA"):
        raise PlcCodecError(f"word order '{word_order}' is not one of ABCD, CDAB, BADC, DCBA")
    words = [data[index : index + 2] for index in range(0, len(data), 2)]
    if word_order in ("CDAB", "DCBA"):
        words.reverse()
    if word_order in ("BADC", "DCBA"):
        words = [word[::-1] for word in words]
    return b"".join(words)


def _bytes_to_registers(data: bytes) -> list[int]:
    return [int.from_bytes(data[index : index + 2], "big") for index in range(0, len(data), 2)]
