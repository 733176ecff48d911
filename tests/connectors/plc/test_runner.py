"""run_simulators with the demo plant: every PLC served, one history entry per verdict."""

from __future__ import annotations

import asyncio

import pytest

from defectline.config.loader import load_config
from defectline.config.models import PlantConfig, VerdictField
from defectline.connectors.plc.base import ReconnectPolicy, create_writer
from defectline.connectors.plc.errors import PlcError
from defectline.connectors.plc.readback import read_output
from defectline.connectors.plc.sim.runner import SimulatorSet, run_simulators
from defectline.deploy.local.ports import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _demo_on_free_ports() -> PlantConfig:
    environ = {
        "DEFECTLINE_PLCS__0__PORT": str(free_port()),
        "DEFECTLINE_PLCS__1__ENDPOINT": f"opc.tcp://127.0.0.1:{free_port()}/defectline/",
    }
    return load_config(environ=environ)


def _verdict(sequence: int, reject: bool) -> dict[VerdictField, bool | int | float]:
    return {
        VerdictField.REJECT: reject,
        VerdictField.CLASS_CODE: 2 if reject else 0,
        VerdictField.CONFIDENCE: 0.875,
        VerdictField.SEQUENCE: sequence,
        VerdictField.FRAME_SEQUENCE: sequence,
    }


async def test_demo_plant_two_stations_both_plcs(fast_reconnect: ReconnectPolicy) -> None:
    config = _demo_on_free_ports()
    stop = asyncio.Event()
    ready = asyncio.Event()
    runner = asyncio.create_task(run_simulators(config, stop, ready))
    await asyncio.wait_for(ready.wait(), timeout=30)

    outputs = [output for station in config.stations for output in station.outputs]
    writers = {
        plc.name: create_writer(plc, outputs, reconnect=fast_reconnect) for plc in config.plcs
    }
    try:
        for writer in writers.values():
            await writer.connect()
        for sequence in range(1, 4):
            for station in config.stations:
                for output in station.outputs:
                    await writers[output.plc].write(output, _verdict(sequence, sequence % 2 == 1))

        station_2 = config.station("station-2")
        for output in station_2.outputs:
            values = await read_output(config.plc(output.plc), output)
            assert values[VerdictField.SEQUENCE] == 3
            assert values[VerdictField.REJECT] is True
            assert values[VerdictField.CLASS_CODE] == 2
            assert values[VerdictField.CONFIDENCE] == pytest.approx(0.875)
    finally:
        for writer in writers.values():
            await writer.close()
        stop.set()
    simulators = await asyncio.wait_for(runner, timeout=30)

    assert isinstance(simulators, SimulatorSet)
    expected = {"station-1": [1, 2, 3], "station-2": [1, 2, 3]}
    assert simulators.histories() == {"line1-modbus": expected, "line1-opcua": expected}
    assert simulators.write_history("line1-modbus", "station-2") == [1, 2, 3]


async def test_write_history_unknown_plc() -> None:
    simulators = SimulatorSet(_demo_on_free_ports())
    with pytest.raises(KeyError, match="no simulated PLC named 'press-9'"):
        simulators.write_history("press-9", "station-1")


async def test_port_in_use_stops_started_simulators() -> None:
    config = _demo_on_free_ports()
    modbus = config.plc("line1-modbus")
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    opcua_endpoint = f"opc.tcp://127.0.0.1:{port}/defectline/"
    config = load_config(
        environ={
            "DEFECTLINE_PLCS__0__PORT": str(modbus.port),
            "DEFECTLINE_PLCS__1__ENDPOINT": opcua_endpoint,
        }
    )
    simulators = SimulatorSet(config)
    try:
        with pytest.raises(PlcError, match=f"cannot listen at {opcua_endpoint}"):
            await simulators.start()
    finally:
        blocker.close()
        await blocker.wait_closed()
    # The Modbus simulator started first and must have been stopped again, freeing its port.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", modbus.port)
    server.close()
    await server.wait_closed()
