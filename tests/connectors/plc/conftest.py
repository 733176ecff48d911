"""Fixtures for PLC tests: point maps and simulated Modbus TCP and OPC UA PLCs on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from defectline.config.models import (
    ModbusPlcConfig,
    ModbusPoint,
    OpcUaNode,
    OpcUaPlcConfig,
    PlcOutput,
    VerdictField,
)
from defectline.connectors.plc.base import ReconnectPolicy
from defectline.connectors.plc.sim.modbus_server import ModbusSimulator
from defectline.connectors.plc.sim.opcua_server import OpcUaSimulator
from defectline.deploy.local.ports import free_port

# Short delays so reconnect tests finish in about a second.
FAST_RECONNECT = ReconnectPolicy(initial_delay_s=0.05, max_delay_s=0.2)


def modbus_output(plc: str = "press-modbus") -> PlcOutput:
    """The demo map of station-1: reject coil 0, then holding registers 0..4 back to back."""
    return PlcOutput(
        plc=plc,
        points=(
            ModbusPoint(field=VerdictField.REJECT, table="coil", address=0, dtype="bool"),
            ModbusPoint(field=VerdictField.CLASS_CODE, table="holding_register", address=0),
            ModbusPoint(
                field=VerdictField.CONFIDENCE, table="holding_register", address=1, dtype="float32"
            ),
            ModbusPoint(
                field=VerdictField.SEQUENCE, table="holding_register", address=3, dtype="uint32"
            ),
        ),
    )


def opcua_output(plc: str = "press-opcua", station: str = "station-1") -> PlcOutput:
    return PlcOutput(
        plc=plc,
        nodes=(
            OpcUaNode(field=VerdictField.REJECT, node_id=f"ns=2;s={station}.Reject"),
            OpcUaNode(field=VerdictField.CLASS_CODE, node_id=f"ns=2;s={station}.ClassCode"),
            OpcUaNode(field=VerdictField.CONFIDENCE, node_id=f"ns=2;s={station}.Confidence"),
            OpcUaNode(field=VerdictField.SEQUENCE, node_id=f"ns=2;s={station}.Sequence"),
        ),
    )


@pytest.fixture
def modbus_plc() -> ModbusPlcConfig:
    return ModbusPlcConfig(name="press-modbus", host="127.0.0.1", port=free_port(), timeout_ms=500)


@pytest.fixture
async def modbus_sim(modbus_plc: ModbusPlcConfig) -> AsyncIterator[ModbusSimulator]:
    simulator = ModbusSimulator(modbus_plc, {"station-1": [modbus_output()]})
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def opcua_plc() -> OpcUaPlcConfig:
    return OpcUaPlcConfig(
        name="press-opcua", endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc/", timeout_ms=1000
    )


@pytest.fixture(scope="module")
async def opcua_server() -> AsyncIterator[OpcUaSimulator]:
    """One OPC UA simulator per module, because an asyncua server takes seconds to start."""
    plc = OpcUaPlcConfig(
        name="press-opcua", endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc/", timeout_ms=1000
    )
    simulator = OpcUaSimulator(plc, {"station-1": [opcua_output()]})
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def opcua_sim(opcua_server: OpcUaSimulator) -> OpcUaSimulator:
    """The module's OPC UA simulator with an empty write history."""
    opcua_server.clear_history()
    return opcua_server


@pytest.fixture
def modbus_map() -> PlcOutput:
    return modbus_output()


@pytest.fixture
def opcua_map() -> PlcOutput:
    return opcua_output()


@pytest.fixture
def fast_reconnect() -> ReconnectPolicy:
    return FAST_RECONNECT
