"""Register codec: word orders, scale, range checks and grouping of points into requests."""

from __future__ import annotations

import pytest

from defectline.config.models import ModbusPoint, ModbusTable, VerdictField
from defectline.connectors.plc.codec import (
    MAX_REGISTERS_PER_REQUEST,
    decode_registers,
    decode_run,
    encode_bool,
    encode_registers,
    encode_run,
    plan_runs,
)
from defectline.connectors.plc.errors import PlcCodecError

FLOAT_12_5 = {
    "ABCD": [0x4148, 0x0000],
    "CDAB": [0x0000, 0x4148],
    "BADC": [0x4841, 0x0000],
    "DCBA": [0x0000, 0x4841],
}

# 0x12345678 has four distinct bytes, so every order gives a different register pair.
INT_0X12345678 = {
    "ABCD": [0x1234, 0x5678],
    "CDAB": [0x5678, 0x1234],
    "BADC": [0x3412, 0x7856],
    "DCBA": [0x7856, 0x3412],
}


@pytest.mark.parametrize("word_order", sorted(FLOAT_12_5))
def test_float32_word_orders(word_order: str) -> None:
    registers = encode_registers(12.5, "float32", word_order)
    assert registers == FLOAT_12_5[word_order]
    assert decode_registers(registers, "float32", word_order) == 12.5


@pytest.mark.parametrize("word_order", sorted(INT_0X12345678))
@pytest.mark.parametrize("dtype", ["int32", "uint32"])
def test_32bit_integer_word_orders(dtype: str, word_order: str) -> None:
    registers = encode_registers(0x12345678, dtype, word_order)
    assert registers == INT_0X12345678[word_order]
    assert decode_registers(registers, dtype, word_order) == 0x12345678


def test_int32_negative_round_trip() -> None:
    registers = encode_registers(-2, "int32", "CDAB")
    assert registers == [0xFFFE, 0xFFFF]
    assert decode_registers(registers, "int32", "CDAB") == -2


def test_16bit_byte_swap_orders() -> None:
    assert encode_registers(0x1234, "uint16", "ABCD") == [0x1234]
    assert encode_registers(0x1234, "uint16", "CDAB") == [0x1234]
    assert encode_registers(0x1234, "uint16", "BADC") == [0x3412]
    assert encode_registers(0x1234, "uint16", "DCBA") == [0x3412]
    assert encode_registers(-1, "int16") == [0xFFFF]


def test_scale_confidence_to_uint16() -> None:
    assert encode_registers(0.9731, "uint16", scale=10000) == [9731]
    assert decode_registers([9731], "uint16", scale=10000) == pytest.approx(0.9731)


def test_bool_values_become_integers() -> None:
    assert encode_registers(True, "uint16") == [1]


def test_range_error_names_field_value_and_range() -> None:
    with pytest.raises(PlcCodecError) as caught:
        encode_registers(70000, "uint16", field="sequence")
    message = str(caught.value)
    assert "sequence" in message
    assert "70000" in message
    assert "0..65535" in message


def test_scaled_range_error_shows_product() -> None:
    with pytest.raises(PlcCodecError) as caught:
        encode_registers(4.0, "int16", scale=10000, field="confidence")
    message = str(caught.value)
    assert "confidence" in message
    assert "40000" in message
    assert "-32768..32767" in message


@pytest.mark.parametrize(("value", "dtype"), [(-1, "uint32"), (2**31, "int32"), (2**32, "uint32")])
def test_32bit_range_errors(value: int, dtype: str) -> None:
    with pytest.raises(PlcCodecError, match=dtype):
        encode_registers(value, dtype)


def test_float32_overflow_rejected() -> None:
    with pytest.raises(PlcCodecError, match="float32 range"):
        encode_registers(1e39, "float32", field="confidence")


def test_non_number_rejected() -> None:
    with pytest.raises(PlcCodecError, match="not a number"):
        encode_registers("7", "uint16", field="class_code")  # type: ignore[arg-type]


def test_coil_values() -> None:
    assert encode_bool(True) is True
    assert encode_bool(0) is False
    with pytest.raises(PlcCodecError, match="coils take true/false or 0/1"):
        encode_bool(2, "reject")


def _point(field: str, table: str, address: int, dtype: str = "uint16") -> ModbusPoint:
    return ModbusPoint(field=field, table=table, address=address, dtype=dtype)


def test_plan_runs_groups_contiguous_points() -> None:
    points = [
        _point("sequence", "holding_register", 3, "uint32"),
        _point("reject", "coil", 0, "bool"),
        _point("class_code", "holding_register", 0),
        _point("confidence", "holding_register", 1, "float32"),
    ]
    runs = plan_runs(points)
    assert [(run.table, run.address, run.count) for run in runs] == [
        (ModbusTable.COIL, 0, 1),
        (ModbusTable.HOLDING_REGISTER, 0, 5),
    ]
    assert [point.field for point in runs[1].points] == [
        VerdictField.CLASS_CODE,
        VerdictField.CONFIDENCE,
        VerdictField.SEQUENCE,
    ]


def test_plan_runs_splits_at_gaps() -> None:
    runs = plan_runs(
        [_point("class_code", "holding_register", 0), _point("sequence", "holding_register", 5)]
    )
    assert [(run.address, run.count) for run in runs] == [(0, 1), (5, 1)]


def test_plan_runs_splits_at_request_limit() -> None:
    points = [
        _point("sequence", "holding_register", address)
        for address in range(MAX_REGISTERS_PER_REQUEST + 2)
    ]
    runs = plan_runs(points)
    assert [run.count for run in runs] == [MAX_REGISTERS_PER_REQUEST, 2]


def test_plan_runs_rejects_overlap() -> None:
    points = [
        _point("confidence", "holding_register", 1, "float32"),
        _point("class_code", "holding_register", 2),
    ]
    with pytest.raises(PlcCodecError, match="overlap at holding_register 2"):
        plan_runs(points)


def test_encode_and_decode_run() -> None:
    points = [
        _point("class_code", "holding_register", 10),
        ModbusPoint(
            field="confidence",
            table="holding_register",
            address=11,
            dtype="float32",
            word_order="CDAB",
        ),
    ]
    (run,) = plan_runs(points)
    words = encode_run(run, {VerdictField.CLASS_CODE: 4, VerdictField.CONFIDENCE: 12.5})
    assert words == [4, 0x0000, 0x4148]
    assert decode_run(run, words) == {VerdictField.CLASS_CODE: 4, VerdictField.CONFIDENCE: 12.5}


def test_encode_run_missing_field() -> None:
    (run,) = plan_runs([_point("class_code", "holding_register", 0)])
    with pytest.raises(PlcCodecError, match="no value for field 'class_code'"):
        encode_run(run, {VerdictField.SEQUENCE: 1})
