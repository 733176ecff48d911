"""OPC UA handshake inputs by subscription against the asyncua simulator: pulses, ack, reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from asyncua import ua

from defectline.config.models import (
    HandshakeConfig,
    OpcUaNode,
    OpcUaPlcConfig,
    PlcOutput,
    StationConfig,
    VerdictField,
)
from defectline.connectors.plc.base import ReconnectPolicy, create_writer
from defectline.connectors.plc.handshake import StationHandshake
from defectline.connectors.plc.sim.opcua_server import OpcUaSimulator
from defectline.deploy.local.ports import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

F = VerdictField
FAST_RECONNECT = ReconnectPolicy(initial_delay_s=0.05, max_delay_s=0.2)
PATH = "path 2:s1/2:"


def node(field: VerdictField, name: str) -> OpcUaNode:
    return OpcUaNode(field=field, browse_path=f"2:s1/2:{name}")


RESULT = PlcOutput(
    plc="press-ua", nodes=(node(F.REJECT, "Reject"), node(F.PART_ID, "PartIdResult"))
)
# A poll interval of 1 s: a 5 ms pulse would be missed by polling nearly every time.
HANDSHAKE = HandshakeConfig(
    plc="press-ua",
    nodes=(
        node(F.TRIGGER, "Trigger"),
        node(F.PART_ID, "PartId"),
        node(F.ACK, "Ack"),
        node(F.RESULT_VALID, "ResultValid"),
        node(F.RESULT_SEQUENCE, "ResultSequence"),
    ),
    poll_interval_ms=1000,
    sampling_interval_ms=50,
    ack_timeout_ms=2000,
)
BOOL_TRIGGER = {PATH + "Trigger": ua.VariantType.Boolean}


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float = 3.0) -> bool:
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + timeout_s
    while loop.time() < give_up_at:
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


def simulator_for(plc: OpcUaPlcConfig) -> OpcUaSimulator:
    return OpcUaSimulator(
        plc, {"s1": [RESULT]}, handshakes={"s1": HANDSHAKE}, data_types=BOOL_TRIGGER
    )


async def pulse(simulator: OpcUaSimulator, part_id: int) -> None:
    """The PLC program: part number, then the trigger up and down again within 5 ms."""
    await simulator.set_value(PATH + "PartId", part_id)
    await simulator.set_value(PATH + "Trigger", True)
    await asyncio.sleep(0.005)
    await simulator.set_value(PATH + "Trigger", False)


async def test_short_pulse_seen_and_part_correlated() -> None:
    plc = OpcUaPlcConfig(
        name="press-ua", endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc/", timeout_ms=1000
    )
    simulator = simulator_for(plc)
    await simulator.start()
    writer = create_writer(plc, [RESULT], reconnect=FAST_RECONNECT)
    await writer.connect()
    handshake = StationHandshake(
        StationConfig(id="s1", outputs=(RESULT,), handshake=HANDSHAKE), writer
    )
    await handshake.start()
    try:
        await asyncio.sleep(0.3)  # the subscription's first notifications set the baseline
        await pulse(simulator, 501)
        await asyncio.sleep(0.05)
        await pulse(simulator, 502)

        async def two_parts() -> bool:
            return len(handshake.parts) == 2

        assert await wait_for(two_parts, timeout_s=2.0)
        assert [part.part_id for part in handshake.parts] == ["501", "502"]
        assert [part.number for part in handshake.parts] == [1, 2]
        assert handshake.part_for(datetime.now(UTC)) == "502"

        # The ack comes by subscription: the PLC sets it and the strobe drops well before
        # ack_timeout_ms (2 s) and before one poll interval (1 s) has passed.
        assert await handshake.publish(RESULT, {F.REJECT: True, F.PART_ID: 502}) == 1
        assert await simulator.get_value(PATH + "ResultValid") is True
        loop = asyncio.get_running_loop()
        acked_at = loop.time()
        await simulator.set_value(PATH + "Ack", True)

        async def strobe_cleared() -> bool:
            return await simulator.get_value(PATH + "ResultValid") is False

        assert await wait_for(strobe_cleared, timeout_s=2.0)
        assert loop.time() - acked_at < 0.5
    finally:
        await handshake.stop()
        await writer.close()
        await simulator.stop()


async def test_subscription_renewed_after_plc_restart() -> None:
    plc = OpcUaPlcConfig(
        name="press-ua", endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc/", timeout_ms=500
    )
    simulator = simulator_for(plc)
    await simulator.start()
    writer = create_writer(plc, [RESULT], reconnect=FAST_RECONNECT)
    await writer.connect()
    handshake = StationHandshake(
        StationConfig(id="s1", outputs=(RESULT,), handshake=HANDSHAKE), writer
    )
    await handshake.start()
    try:
        await asyncio.sleep(0.3)
        await pulse(simulator, 7)

        async def first_part() -> bool:
            return [part.part_id for part in handshake.parts] == ["7"]

        assert await wait_for(first_part)
        connections = writer.connections
        await simulator.stop()

        # No write is pending: asyncua's session watchdog reports the dead server.
        async def disconnected() -> bool:
            return not writer.is_connected

        assert await wait_for(disconnected, timeout_s=5.0)

        simulator = simulator_for(plc)
        await simulator.start()
        assert await writer.wait_connected(5.0)
        assert writer.connections == connections + 1
        await asyncio.sleep(0.5)
        await pulse(simulator, 8)

        async def second_part() -> bool:
            return [part.part_id for part in handshake.parts] == ["7", "8"]

        assert await wait_for(second_part)
    finally:
        await handshake.stop()
        await writer.close()
        await simulator.stop()
