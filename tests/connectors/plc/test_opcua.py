"""OpcUaWriter against a real asyncua server: data types, conversion, errors, reconnect."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import Client, ua

from defectline.config.models import OpcUaNode, OpcUaPlcConfig, PlcOutput, VerdictField
from defectline.connectors.plc.base import ConnectionState, ReconnectPolicy, create_writer
from defectline.connectors.plc.errors import (
    PlcConnectError,
    PlcConnectionLostError,
    PlcNotConnectedError,
    PlcValueError,
)
from defectline.connectors.plc.opcua import OpcUaWriter
from defectline.connectors.plc.readback import read_output
from defectline.connectors.plc.sim.opcua_server import OpcUaSimulator

# The simulator fixtures run on the session event loop, so the tests must run there too.
pytestmark = pytest.mark.asyncio(loop_scope="session")

VERDICT = {
    VerdictField.REJECT: True,
    VerdictField.CLASS_CODE: 3,
    VerdictField.CONFIDENCE: 0.9731,
    VerdictField.SEQUENCE: 70_000,
}


async def _read_raw(endpoint: str, node_ids: list[str]) -> list[ua.DataValue]:
    client = Client(endpoint, timeout=2)
    async with client:
        nodes = [client.get_node(node_id) for node_id in node_ids]
        return await client.read_attributes(nodes)


async def test_write_read_back_with_node_types(
    opcua_sim: OpcUaSimulator, opcua_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    writer = create_writer(opcua_sim.plc, [opcua_map], reconnect=fast_reconnect)
    assert isinstance(writer, OpcUaWriter)
    async with writer:
        await writer.write(opcua_map, VERDICT)

    results = await _read_raw(opcua_sim.endpoint, [node.node_id for node in opcua_map.nodes])
    reject, class_code, confidence, sequence = (result.Value for result in results)
    assert reject.Value is True
    assert reject.VariantType is ua.VariantType.Boolean
    assert class_code.Value == 3
    assert class_code.VariantType is ua.VariantType.UInt16
    assert confidence.Value == pytest.approx(0.9731)
    assert confidence.VariantType is ua.VariantType.Double
    assert sequence.Value == 70_000
    assert sequence.VariantType is ua.VariantType.UInt32


async def test_one_write_call_per_verdict(
    opcua_sim: OpcUaSimulator, opcua_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    async with create_writer(opcua_sim.plc, [opcua_map], reconnect=fast_reconnect) as writer:
        for sequence in (1, 2, 3):
            await writer.write(opcua_map, {**VERDICT, VerdictField.SEQUENCE: sequence})

    assert opcua_sim.history == {"station-1": [1, 2, 3]}
    assert len(opcua_sim.requests) == 3
    first = opcua_sim.requests[0]
    assert len(first) == 4
    assert first[-1].NodeId.to_string() == "ns=2;s=station-1.Sequence"
    assert all(item.Value.SourceTimestamp is None for item in first)
    assert all(item.Value.ServerTimestamp is None for item in first)


async def test_readback_returns_values(
    opcua_sim: OpcUaSimulator, opcua_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    async with create_writer(opcua_sim.plc, [opcua_map], reconnect=fast_reconnect) as writer:
        await writer.write(opcua_map, VERDICT)
    assert await read_output(opcua_sim.plc, opcua_map) == VERDICT


async def test_int_to_boolean_converted_or_rejected(
    opcua_sim: OpcUaSimulator, opcua_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    async with create_writer(opcua_sim.plc, [opcua_map], reconnect=fast_reconnect) as writer:
        await writer.write(opcua_map, {**VERDICT, VerdictField.REJECT: 1})
        assert (await read_output(opcua_sim.plc, opcua_map))[VerdictField.REJECT] is True

        with pytest.raises(PlcValueError) as caught:
            await writer.write(opcua_map, {**VERDICT, VerdictField.REJECT: 5})
    message = str(caught.value)
    assert "ns=2;s=station-1.Reject" in message
    assert "value 5 cannot be written to a Boolean node" in message
    assert opcua_sim.history == {"station-1": [70_000]}


async def test_conversion_to_other_node_types(
    opcua_plc: OpcUaPlcConfig, fast_reconnect: ReconnectPolicy
) -> None:
    output = PlcOutput(
        plc=opcua_plc.name,
        nodes=(
            OpcUaNode(field="class_code", node_id="ns=2;s=cell.ClassCode"),
            OpcUaNode(field="confidence", node_id="ns=2;s=cell.Confidence"),
            OpcUaNode(field="reject", node_id="ns=2;s=cell.Reject"),
            OpcUaNode(field="sequence", node_id="ns=2;s=cell.Sequence"),
        ),
    )
    types = {
        "ns=2;s=cell.ClassCode": ua.VariantType.Int16,
        "ns=2;s=cell.Confidence": ua.VariantType.Float,
        "ns=2;s=cell.Reject": ua.VariantType.String,
        "ns=2;s=cell.Sequence": ua.VariantType.UInt64,
    }
    simulator = OpcUaSimulator(opcua_plc, {"cell": [output]}, data_types=types)
    await simulator.start()
    try:
        async with create_writer(opcua_plc, [output], reconnect=fast_reconnect) as writer:
            await writer.write(output, VERDICT)
            with pytest.raises(PlcValueError, match="outside the Int16 range -32768..32767"):
                await writer.write(output, {**VERDICT, VerdictField.CLASS_CODE: 40_000})
            with pytest.raises(PlcValueError, match="has a fraction"):
                await writer.write(output, {**VERDICT, VerdictField.SEQUENCE: 2.5})
        results = await _read_raw(opcua_plc.endpoint, list(types))
    finally:
        await simulator.stop()

    class_code, confidence, reject, sequence = (result.Value for result in results)
    assert (class_code.Value, class_code.VariantType) == (3, ua.VariantType.Int16)
    assert confidence.VariantType is ua.VariantType.Float
    assert confidence.Value == pytest.approx(0.9731, abs=1e-6)
    assert (reject.Value, reject.VariantType) == ("True", ua.VariantType.String)
    assert (sequence.Value, sequence.VariantType) == (70_000, ua.VariantType.UInt64)


async def test_unknown_node_fails_connect(
    opcua_sim: OpcUaSimulator, fast_reconnect: ReconnectPolicy
) -> None:
    output = PlcOutput(
        plc=opcua_sim.plc.name,
        nodes=(OpcUaNode(field="reject", node_id="ns=2;s=station-1.Missing"),),
    )
    writer = create_writer(opcua_sim.plc, [output], reconnect=fast_reconnect)
    try:
        with pytest.raises(PlcConnectError) as caught:
            await writer.connect()
    finally:
        await writer.close()
    message = str(caught.value)
    assert "ns=2;s=station-1.Missing" in message
    assert "BadNodeIdUnknown" in message


async def test_plc_down_then_reconnects(
    opcua_plc: OpcUaPlcConfig, opcua_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    writer = create_writer(opcua_plc, [opcua_map], reconnect=fast_reconnect)
    with pytest.raises(PlcConnectError) as connect_error:
        await writer.connect()
    assert "'press-opcua'" in str(connect_error.value)
    assert opcua_plc.endpoint in str(connect_error.value)

    with pytest.raises(PlcNotConnectedError) as write_error:
        await writer.write(opcua_map, VERDICT)
    assert "'press-opcua'" in str(write_error.value)
    assert opcua_plc.endpoint in str(write_error.value)

    simulator = OpcUaSimulator(opcua_plc, {"station-1": [opcua_map]})
    await simulator.start()
    try:
        assert await writer.wait_connected(timeout_s=10)
        await writer.write(opcua_map, VERDICT)
        assert simulator.history == {"station-1": [70_000]}
    finally:
        await writer.close()
        await simulator.stop()


async def test_connection_lost_then_reconnects(
    opcua_plc: OpcUaPlcConfig, opcua_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    first = OpcUaSimulator(opcua_plc, {"station-1": [opcua_map]})
    await first.start()
    writer = create_writer(opcua_plc, [opcua_map], reconnect=fast_reconnect)
    await writer.connect()
    await first.stop()
    await asyncio.sleep(0.1)

    # asyncua's session watchdog may report the dead server before the write is sent.
    with pytest.raises((PlcConnectionLostError, PlcNotConnectedError)) as lost:
        await writer.write(opcua_map, VERDICT)
    assert opcua_plc.endpoint in str(lost.value)
    assert writer.state is not ConnectionState.CONNECTED

    second = OpcUaSimulator(opcua_plc, {"station-1": [opcua_map]})
    await second.start()
    try:
        assert await writer.wait_connected(timeout_s=10)
        await writer.write(opcua_map, VERDICT)
        assert second.history == {"station-1": [70_000]}
    finally:
        await writer.close()
        await second.stop()


async def test_username_password(opcua_map: PlcOutput, fast_reconnect: ReconnectPolicy) -> None:
    from defectline.deploy.local.ports import free_port

    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/plc/"
    secured = OpcUaPlcConfig(
        name="press-opcua", endpoint=endpoint, username="line", password="s3cret"
    )
    wrong = secured.model_copy(update={"password": None})
    simulator = OpcUaSimulator(secured, {"station-1": [opcua_map]})
    await simulator.start()
    try:
        rejected = create_writer(wrong, [opcua_map], reconnect=fast_reconnect)
        with pytest.raises(PlcConnectError) as caught:
            await rejected.connect()
        await rejected.close()
        assert "'press-opcua'" in str(caught.value)

        async with create_writer(secured, [opcua_map], reconnect=fast_reconnect) as writer:
            await writer.write(opcua_map, VERDICT)
        assert simulator.history == {"station-1": [70_000]}
    finally:
        await simulator.stop()
