"""The station handshake against simulated PLCs that raise triggers and acks, Modbus and OPC UA."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from defectline.config.models import (
    HandshakeConfig,
    ModbusPlcConfig,
    ModbusPoint,
    OpcUaNode,
    OpcUaPlcConfig,
    PlcOutput,
    StationConfig,
    VerdictField,
)
from defectline.connectors.plc.base import ReconnectPolicy, create_writer
from defectline.connectors.plc.handshake import PartTrigger, StationHandshake
from defectline.connectors.plc.sim.modbus_server import ModbusSimulator
from defectline.connectors.plc.sim.opcua_server import OpcUaSimulator
from defectline.deploy.local.ports import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST_RECONNECT = ReconnectPolicy(initial_delay_s=0.05, max_delay_s=0.2)
F = VerdictField


def point(field: VerdictField, reference: str, dtype: str = "uint16") -> ModbusPoint:
    return ModbusPoint.model_validate({"field": field, "reference": reference, "dtype": dtype})


RESULT = PlcOutput(
    plc="press",
    points=(
        point(F.REJECT, "00001", "bool"),
        point(F.CLASS_CODE, "40001"),
        point(F.PART_ID, "40002", "uint32"),
    ),
)
MODBUS_HANDSHAKE = HandshakeConfig(
    plc="press",
    points=(
        point(F.TRIGGER, "40021"),
        point(F.PART_ID, "40022", "uint32"),
        point(F.ACK, "40024"),
        point(F.RESULT_VALID, "00011", "bool"),
        point(F.RESULT_SEQUENCE, "40025"),
        point(F.HEARTBEAT, "40026"),
    ),
    poll_interval_ms=10,
    ack_timeout_ms=2000,
    heartbeat_interval_ms=50,
)
VALUES = {F.REJECT: True, F.CLASS_CODE: 3, F.PART_ID: 1001}


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float = 3.0) -> bool:
    """Poll `check` every 10 ms until it returns True; False when `timeout_s` passes first."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + timeout_s
    while loop.time() < give_up_at:
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


def hs_point(field: VerdictField) -> ModbusPoint:
    found = MODBUS_HANDSHAKE.find(field)
    assert isinstance(found, ModbusPoint)
    return found


async def test_modbus_handshake_sequence() -> None:
    plc = ModbusPlcConfig(name="press", port=free_port(), timeout_ms=500)
    station = StationConfig(id="s1", outputs=(RESULT,), handshake=MODBUS_HANDSHAKE)
    simulator = ModbusSimulator(plc, {"s1": [RESULT]}, handshakes={"s1": MODBUS_HANDSHAKE})
    await simulator.start()
    writer = create_writer(plc, [RESULT], reconnect=FAST_RECONNECT)
    await writer.connect()
    handshake = StationHandshake(station, writer)
    await handshake.start()
    try:
        # The PLC program: part number first, then the trigger counter.
        await asyncio.sleep(0.05)
        await simulator.set_point(hs_point(F.PART_ID), 1001)
        await simulator.set_point(hs_point(F.TRIGGER), 1)

        async def part_seen() -> bool:
            return len(handshake.parts) == 1

        assert await wait_for(part_seen)
        assert handshake.part_for(datetime.now(UTC)) == "1001"

        simulator.requests.clear()
        sequence = await handshake.publish(RESULT, VALUES)
        assert sequence == 1
        assert await simulator.get_point(hs_point(F.RESULT_VALID)) is True
        assert await simulator.get_point(hs_point(F.RESULT_SEQUENCE)) == 1
        assert await simulator.get_point(RESULT.points[1]) == 3
        assert await simulator.get_point(RESULT.points[2]) == 1001
        # The strobe is the last request, after the values and the sequence.
        assert simulator.requests[-1].function_code == 15
        assert simulator.requests[-1].address == 10
        assert simulator.requests[-1].values == (True,)

        # The PLC acknowledges by copying the result sequence; the strobe drops soon after.
        await simulator.set_point(hs_point(F.ACK), 1)

        async def strobe_cleared() -> bool:
            return await simulator.get_point(hs_point(F.RESULT_VALID)) is False

        assert await wait_for(strobe_cleared, timeout_s=1.0)

        beat_before = await simulator.get_point(hs_point(F.HEARTBEAT))
        await asyncio.sleep(0.2)
        beat_after = await simulator.get_point(hs_point(F.HEARTBEAT))
        assert beat_after != beat_before
    finally:
        await handshake.stop()
        await writer.close()
        await simulator.stop()


async def test_modbus_handshake_survives_reconnect() -> None:
    plc = ModbusPlcConfig(name="press", port=free_port(), timeout_ms=300)
    station = StationConfig(id="s1", outputs=(RESULT,), handshake=MODBUS_HANDSHAKE)
    simulator = ModbusSimulator(plc, {"s1": [RESULT]}, handshakes={"s1": MODBUS_HANDSHAKE})
    await simulator.start()
    writer = create_writer(plc, [RESULT], reconnect=FAST_RECONNECT)
    await writer.connect()
    handshake = StationHandshake(station, writer)
    await handshake.start()
    try:
        await asyncio.sleep(0.05)
        await simulator.stop()

        async def disconnected() -> bool:
            return not writer.is_connected

        assert await wait_for(disconnected)
        with pytest.raises(Exception, match="PLC is disconnected|failed"):
            await handshake.publish(RESULT, VALUES)

        restarted = ModbusSimulator(plc, {"s1": [RESULT]}, handshakes={"s1": MODBUS_HANDSHAKE})
        await restarted.start()
        simulator = restarted
        assert await writer.wait_connected(3.0)
        await asyncio.sleep(0.1)
        await restarted.set_point(hs_point(F.PART_ID), 7)
        await restarted.set_point(hs_point(F.TRIGGER), 5)

        async def part_seen() -> bool:
            return any(part.part_id == "7" for part in handshake.parts)

        assert await wait_for(part_seen)
        assert await handshake.publish(RESULT, VALUES) == 1
        assert await restarted.get_point(hs_point(F.RESULT_VALID)) is True
    finally:
        await handshake.stop()
        await writer.close()
        await simulator.stop()


def node(field: VerdictField, name: str) -> OpcUaNode:
    return OpcUaNode(field=field, browse_path=f"2:s1/2:{name}")


OPCUA_RESULT = PlcOutput(
    plc="press-ua",
    nodes=(
        OpcUaNode(field=F.REJECT, node_id="ns=2;s=s1.Reject"),
        OpcUaNode(field=F.CLASS_CODE, node_id="ns=2;s=s1.ClassCode"),
        node(F.PART_ID, "PartIdResult"),
    ),
)
OPCUA_HANDSHAKE = HandshakeConfig(
    plc="press-ua",
    nodes=(
        node(F.TRIGGER, "Trigger"),
        node(F.PART_ID, "PartId"),
        node(F.ACK, "Ack"),
        node(F.RESULT_VALID, "ResultValid"),
        node(F.RESULT_SEQUENCE, "ResultSequence"),
        node(F.HEARTBEAT, "Heartbeat"),
    ),
    poll_interval_ms=20,
    ack_timeout_ms=300,
    heartbeat_interval_ms=50,
)


async def test_opcua_handshake_by_browse_path() -> None:
    plc = OpcUaPlcConfig(
        name="press-ua", endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc/", timeout_ms=1000
    )
    station = StationConfig(id="s1", outputs=(OPCUA_RESULT,), handshake=OPCUA_HANDSHAKE)
    simulator = OpcUaSimulator(plc, {"s1": [OPCUA_RESULT]}, handshakes={"s1": OPCUA_HANDSHAKE})
    await simulator.start()
    writer = create_writer(plc, [OPCUA_RESULT], reconnect=FAST_RECONNECT)
    await writer.connect()
    handshake = StationHandshake(station, writer)
    await handshake.start()
    path = "path 2:s1/2:"
    try:
        await asyncio.sleep(0.1)
        await simulator.set_value(path + "PartId", 42)
        await simulator.set_value(path + "Trigger", 1)

        async def part_seen() -> bool:
            return len(handshake.parts) == 1

        assert await wait_for(part_seen)
        assert handshake.part_for(datetime.now(UTC)) == "42"

        assert await handshake.publish(OPCUA_RESULT, {**VALUES, F.PART_ID: 42}) == 1
        assert await simulator.get_value(path + "ResultValid") is True
        assert await simulator.get_value(path + "ResultSequence") == 1
        assert await simulator.get_value(path + "PartIdResult") == 42
        assert await simulator.get_value("ns=2;s=s1.Reject") is True

        # A bool ack: the PLC sets it, the inspector drops the strobe.
        await simulator.set_value(path + "Ack", True)

        async def strobe_cleared() -> bool:
            return await simulator.get_value(path + "ResultValid") is False

        assert await wait_for(strobe_cleared, timeout_s=1.0)

        # No ack for the next result: the strobe drops after ack_timeout_ms all the same.
        await simulator.set_value(path + "Ack", False)
        assert await handshake.publish(OPCUA_RESULT, {**VALUES, F.PART_ID: 43}) == 2
        assert await simulator.get_value(path + "ResultValid") is True
        await asyncio.sleep(0.15)
        assert await simulator.get_value(path + "ResultValid") is True
        assert await wait_for(strobe_cleared, timeout_s=1.0)

        beat_before = await simulator.get_value(path + "Heartbeat")
        await asyncio.sleep(0.2)
        assert await simulator.get_value(path + "Heartbeat") != beat_before
    finally:
        await handshake.stop()
        await writer.close()
        await simulator.stop()


async def test_part_for_window() -> None:
    station = StationConfig(
        id="s1",
        outputs=(RESULT,),
        handshake=MODBUS_HANDSHAKE.model_copy(update={"part_window_ms": 500}),
    )
    handshake = StationHandshake(station, create_writer(ModbusPlcConfig(name="press")))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    handshake.parts.append(PartTrigger("1", start))
    handshake.parts.append(PartTrigger("2", start + timedelta(seconds=1)))
    assert handshake.part_for(start - timedelta(seconds=1)) is None
    assert handshake.part_for(start + timedelta(milliseconds=100)) == "1"
    assert handshake.part_for(start + timedelta(milliseconds=700)) is None
    # Seen up to one poll interval after the capture: still the same part.
    assert handshake.part_for(start + timedelta(milliseconds=995)) == "2"
    assert handshake.part_for(start + timedelta(milliseconds=1200)) == "2"
