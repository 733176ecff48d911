"""ModbusWriter against a real pymodbus TCP server: values, request grouping, errors, reconnect."""

from __future__ import annotations

import asyncio

import pytest
from pymodbus.client import AsyncModbusTcpClient

from defectline.config.models import ModbusPlcConfig, ModbusPoint, PlcOutput, VerdictField
from defectline.connectors.plc.base import ConnectionState, ReconnectPolicy, create_writer
from defectline.connectors.plc.codec import decode_registers
from defectline.connectors.plc.errors import (
    PlcConnectError,
    PlcConnectionLostError,
    PlcNotConnectedError,
    PlcValueError,
    PlcWriteRejectedError,
)
from defectline.connectors.plc.modbus import ModbusWriter, new_client, unit_kwargs
from defectline.connectors.plc.readback import read_output
from defectline.connectors.plc.sim.modbus_server import ModbusSimulator

# The simulator fixtures run on the session event loop, so the tests must run there too.
pytestmark = pytest.mark.asyncio(loop_scope="session")

VERDICT = {
    VerdictField.REJECT: True,
    VerdictField.CLASS_CODE: 3,
    VerdictField.CONFIDENCE: 12.5,
    VerdictField.SEQUENCE: 70_000,
}


async def test_client_contract_matches_writer(modbus_sim: ModbusSimulator) -> None:
    """Calls the pymodbus client exactly as ModbusWriter and readback do."""
    client = new_client(modbus_sim.plc)
    assert await client.connect()
    try:
        unit = unit_kwargs(modbus_sim.plc.unit_id)
        written = await client.write_registers(0, [7, 8], **unit)
        coils = await client.write_coils(0, [True], **unit)
        registers = await client.read_holding_registers(0, count=2, **unit)
        bits = await client.read_coils(0, count=1, **unit)
    finally:
        client.close()
    assert not written.isError()
    assert not coils.isError()
    assert registers.registers == [7, 8]
    assert bits.bits[0] is True


async def test_write_values_read_back_by_plain_client(
    modbus_sim: ModbusSimulator, modbus_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    plc = modbus_sim.plc
    writer = create_writer(plc, [modbus_map], reconnect=fast_reconnect)
    assert isinstance(writer, ModbusWriter)
    await writer.connect()
    await writer.write(modbus_map, VERDICT)
    await writer.close()

    client = AsyncModbusTcpClient(plc.host, port=plc.port)
    assert await client.connect()
    try:
        coils = await client.read_coils(0, count=1, device_id=plc.unit_id)
        registers = await client.read_holding_registers(0, count=5, device_id=plc.unit_id)
    finally:
        client.close()
    assert coils.bits[0] is True
    assert registers.registers[0] == 3
    assert registers.registers[1:3] == [0x4148, 0x0000]
    assert decode_registers(registers.registers[3:5], "uint32") == 70_000
    assert registers.registers[3:5] == [0x0001, 0x1170]


async def test_contiguous_points_one_request(
    modbus_sim: ModbusSimulator, modbus_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    async with create_writer(modbus_sim.plc, [modbus_map], reconnect=fast_reconnect) as writer:
        await writer.write(modbus_map, VERDICT)

    requests = [(r.function_code, r.address, r.count) for r in modbus_sim.requests]
    assert requests == [(15, 0, 1), (16, 0, 5)]
    assert modbus_sim.history == {"station-1": [70_000]}


async def test_gap_splits_requests_sequence_last(
    modbus_plc: ModbusPlcConfig, fast_reconnect: ReconnectPolicy
) -> None:
    output = PlcOutput(
        plc=modbus_plc.name,
        points=(
            ModbusPoint(field="sequence", table="holding_register", address=0, dtype="uint32"),
            ModbusPoint(field="class_code", table="holding_register", address=8),
        ),
    )
    simulator = ModbusSimulator(modbus_plc, {"station-9": [output]})
    await simulator.start()
    try:
        async with create_writer(modbus_plc, [output], reconnect=fast_reconnect) as writer:
            await writer.write(output, {VerdictField.SEQUENCE: 5, VerdictField.CLASS_CODE: 2})
            await writer.write(output, {VerdictField.SEQUENCE: 6, VerdictField.CLASS_CODE: 1})
    finally:
        await simulator.stop()

    addresses = [request.address for request in simulator.requests]
    assert addresses == [8, 0, 8, 0]
    assert simulator.history == {"station-9": [5, 6]}


async def test_readback_decodes_points(
    modbus_sim: ModbusSimulator, modbus_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    async with create_writer(modbus_sim.plc, [modbus_map], reconnect=fast_reconnect) as writer:
        await writer.write(modbus_map, VERDICT)
    assert await read_output(modbus_sim.plc, modbus_map) == VERDICT


async def test_bad_value_sends_nothing(
    modbus_sim: ModbusSimulator, modbus_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    values = dict(VERDICT) | {VerdictField.SEQUENCE: -1}
    async with create_writer(modbus_sim.plc, [modbus_map], reconnect=fast_reconnect) as writer:
        with pytest.raises(PlcValueError) as caught:
            await writer.write(modbus_map, values)
        assert writer.state is ConnectionState.CONNECTED
    message = str(caught.value)
    assert "press-modbus" in message
    assert "sequence: value -1 is outside the uint32 range 0..4294967295" in message
    assert modbus_sim.requests == []


async def test_illegal_address_rejected(
    modbus_sim: ModbusSimulator, fast_reconnect: ReconnectPolicy
) -> None:
    output = PlcOutput(
        plc=modbus_sim.plc.name,
        points=(ModbusPoint(field="class_code", table="holding_register", address=4000),),
    )
    async with create_writer(modbus_sim.plc, [output], reconnect=fast_reconnect) as writer:
        with pytest.raises(PlcWriteRejectedError) as caught:
            await writer.write(output, {VerdictField.CLASS_CODE: 1})
        assert writer.state is ConnectionState.CONNECTED
    message = str(caught.value)
    assert "holding_register 4000..4000" in message
    assert "exception code 2 (ILLEGAL_ADDRESS)" in message


async def test_plc_down_then_reconnects(
    modbus_plc: ModbusPlcConfig, modbus_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    writer = create_writer(modbus_plc, [modbus_map], reconnect=fast_reconnect)
    endpoint = f"modbus://127.0.0.1:{modbus_plc.port} unit 1"
    with pytest.raises(PlcConnectError) as connect_error:
        await writer.connect()
    assert "press-modbus" in str(connect_error.value)
    assert endpoint in str(connect_error.value)

    with pytest.raises(PlcNotConnectedError) as write_error:
        await writer.write(modbus_map, VERDICT)
    assert "'press-modbus'" in str(write_error.value)
    assert endpoint in str(write_error.value)

    simulator = ModbusSimulator(modbus_plc, {"station-1": [modbus_map]})
    await simulator.start()
    try:
        assert await writer.wait_connected(timeout_s=5)
        await writer.write(modbus_map, VERDICT)
        assert simulator.history == {"station-1": [70_000]}
    finally:
        await writer.close()
        await simulator.stop()


async def test_connection_lost_then_reconnects(
    modbus_plc: ModbusPlcConfig, modbus_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    first = ModbusSimulator(modbus_plc, {"station-1": [modbus_map]})
    await first.start()
    writer = create_writer(modbus_plc, [modbus_map], reconnect=fast_reconnect)
    await writer.connect()
    await writer.write(modbus_map, VERDICT)
    await first.stop()
    await asyncio.sleep(0.1)

    with pytest.raises(PlcConnectionLostError) as lost:
        await writer.write(modbus_map, VERDICT)
    assert "press-modbus" in str(lost.value)
    assert writer.state is not ConnectionState.CONNECTED
    with pytest.raises(PlcNotConnectedError, match="reconnect is running"):
        await writer.write(modbus_map, VERDICT)

    second = ModbusSimulator(modbus_plc, {"station-1": [modbus_map]})
    await second.start()
    try:
        assert await writer.wait_connected(timeout_s=5)
        await writer.write(modbus_map, {**VERDICT, VerdictField.SEQUENCE: 70_001})
        assert second.history == {"station-1": [70_001]}
    finally:
        await writer.close()
        await second.stop()


async def test_output_of_other_plc_rejected(
    modbus_sim: ModbusSimulator, fast_reconnect: ReconnectPolicy
) -> None:
    other = PlcOutput(
        plc="other-plc",
        points=(ModbusPoint(field="class_code", table="holding_register", address=0),),
    )
    async with create_writer(modbus_sim.plc, reconnect=fast_reconnect) as writer:
        with pytest.raises(PlcValueError, match="names PLC 'other-plc'"):
            await writer.write(other, {VerdictField.CLASS_CODE: 1})


async def test_concurrent_writes_stay_ordered(
    modbus_plc: ModbusPlcConfig, modbus_map: PlcOutput, fast_reconnect: ReconnectPolicy
) -> None:
    second_map = PlcOutput(
        plc=modbus_plc.name,
        points=(
            ModbusPoint(field="reject", table="coil", address=1, dtype="bool"),
            ModbusPoint(field="sequence", table="holding_register", address=13, dtype="uint32"),
        ),
    )
    simulator = ModbusSimulator(modbus_plc, {"station-1": [modbus_map], "station-2": [second_map]})
    await simulator.start()
    try:
        async with create_writer(modbus_plc, reconnect=fast_reconnect) as writer:
            writes = []
            for sequence in range(1, 21):
                values = {**VERDICT, VerdictField.SEQUENCE: sequence}
                writes.append(writer.write(modbus_map, values))
                writes.append(writer.write(second_map, values))
            await asyncio.gather(*writes)
    finally:
        await simulator.stop()

    assert simulator.history["station-1"] == list(range(1, 21))
    assert simulator.history["station-2"] == list(range(1, 21))
