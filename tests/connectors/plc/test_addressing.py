"""Modbus addressing: 1-based references to 0-based addresses, and read-only tables over TCP."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from defectline.config.models import (
    ModbusPlcConfig,
    ModbusPoint,
    ModbusTable,
    PlcOutput,
    VerdictField,
)
from defectline.connectors.plc.addressing import parse_reference
from defectline.connectors.plc.base import ReconnectPolicy, create_writer
from defectline.connectors.plc.modbus import new_client, unit_kwargs
from defectline.connectors.plc.sim.modbus_server import ModbusSimulator
from defectline.deploy.local.ports import free_port


@pytest.mark.parametrize(
    ("reference", "table", "address"),
    [
        ("40001", "holding_register", 0),
        ("40002", "holding_register", 1),
        ("49999", "holding_register", 9998),
        ("400001", "holding_register", 0),
        ("465536", "holding_register", 65535),
        ("30001", "input_register", 0),
        ("10001", "discrete_input", 0),
        ("00001", "coil", 0),
        (40101, "holding_register", 100),
    ],
)
def test_reference_converted(reference: str | int, table: str, address: int) -> None:
    assert parse_reference(reference) == (table, address)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("40000", "references are 1-based"),
        ("400000", "references are 1-based"),
        ("465537", "references are 1-based"),
        ("20001", "names no table"),
        ("4001", "5 or 6 digits"),
        ("4x001", "5 or 6 digits"),
    ],
)
def test_invalid_reference_rejected(reference: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_reference(reference)
    assert reference in str(caught.value)


def test_point_from_reference_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="defectline.connectors.plc.addressing"):
        point = ModbusPoint.model_validate({"field": "class_code", "reference": "40001"})
    assert point.table is ModbusTable.HOLDING_REGISTER
    assert point.address == 0
    assert point.reference == "40001"
    assert "reference=40001 table=holding_register address=0" in caplog.text


def test_point_40000_rejected() -> None:
    with pytest.raises(ValidationError, match="'40000' is invalid"):
        ModbusPoint.model_validate({"field": "class_code", "reference": "40000"})


def test_string_address_rejected() -> None:
    with pytest.raises(ValidationError, match='reference: "40001"'):
        ModbusPoint.model_validate(
            {"field": "class_code", "table": "holding_register", "address": "40001"}
        )


def test_reference_table_mismatch_rejected() -> None:
    with pytest.raises(ValidationError, match="is a input_register but table is 'coil'"):
        ModbusPoint.model_validate(
            {"field": "trigger", "reference": "30001", "table": "coil", "dtype": "bool"}
        )


def test_address_and_reference_rejected() -> None:
    with pytest.raises(ValidationError, match="give only one"):
        ModbusPoint.model_validate({"field": "class_code", "address": 0, "reference": "40001"})


@pytest.mark.asyncio(loop_scope="session")
async def test_input_register_read_with_function_4() -> None:
    """'30001' reads input register 0 over TCP, the table a client cannot write."""
    plc = ModbusPlcConfig(name="press", port=free_port(), timeout_ms=500)
    part = ModbusPoint.model_validate({"field": "part_id", "reference": "30001", "dtype": "uint32"})
    trigger = ModbusPoint.model_validate(
        {"field": "trigger", "reference": "10001", "dtype": "bool"}
    )
    output = PlcOutput(plc=plc.name, points=(part, trigger))
    simulator = ModbusSimulator(plc, {"s1": [output]})
    await simulator.start()
    try:
        await simulator.set_point(part, 123_456)
        await simulator.set_point(trigger, True)
        writer = create_writer(plc, [output], reconnect=ReconnectPolicy(initial_delay_s=0.05))
        async with writer:
            values = await writer.read(output)

        client = new_client(plc)
        assert await client.connect()
        try:
            registers = await client.read_input_registers(0, count=2, **unit_kwargs(1))
            holding = await client.read_holding_registers(0, count=2, **unit_kwargs(1))
            written = await client.write_registers(0, [1], **unit_kwargs(1))
        finally:
            client.close()
    finally:
        await simulator.stop()

    assert values == {VerdictField.PART_ID: 123_456, VerdictField.TRIGGER: True}
    assert registers.registers == [0x0001, 0xE240]
    assert holding.registers == [0, 0]
    assert not written.isError()


def test_docs_example_map_loads() -> None:
    """The register map example in docs/plc.md is a valid station configuration."""
    import re
    from pathlib import Path

    import yaml

    from defectline.config.loader import load_config

    docs = Path(__file__).resolve().parents[3] / "docs" / "plc.md"
    blocks = re.findall(r"```yaml\n(.*?)```", docs.read_text(), flags=re.DOTALL)
    example = yaml.safe_load(next(block for block in blocks if "handshake:" in block))
    config = load_config(
        environ={},
        overrides={
            **example,
            "cameras": [],
            "plcs": [{"name": "line1-modbus", "type": "modbus"}],
        },
    )
    station = config.station("station-1")
    assert station.handshake is not None
    trigger = station.handshake.find(VerdictField.TRIGGER)
    assert isinstance(trigger, ModbusPoint)
    assert (trigger.table, trigger.address) == (ModbusTable.HOLDING_REGISTER, 20)
    assert station.result_deadline_ms == 800
