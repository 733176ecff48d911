"""Values our writers put into the simulators, read back by independent clients.

mbpoll (Debian package mbpoll, built on libmodbus) reads the Modbus map; asyncua's own
`uaread` command reads the OPC UA nodes. Each test is skipped only when its tool is missing;
deploy/local/setup.sh installs mbpoll.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from defectline.config.models import ModbusPlcConfig, ModbusPoint, PlcOutput, VerdictField
from defectline.connectors.plc.base import ReconnectPolicy, create_writer
from defectline.connectors.plc.sim.modbus_server import ModbusSimulator
from defectline.connectors.plc.sim.opcua_server import OpcUaSimulator
from defectline.deploy.local.ports import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

MBPOLL = shutil.which("mbpoll")
UAREAD = shutil.which("uaread") or str(Path(sys.executable).with_name("uaread"))
HAS_UAREAD = Path(UAREAD).exists()
FAST_RECONNECT = ReconnectPolicy(initial_delay_s=0.05, max_delay_s=0.2)


async def run_tool(*args: str) -> str:
    """Run a client tool without blocking the loop that serves the simulator; return stdout."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, f"{args[0]} failed: {stderr.decode()}"
    return stdout.decode()


def point(field: VerdictField, reference: str, dtype: str, word_order: str = "ABCD") -> ModbusPoint:
    return ModbusPoint.model_validate(
        {"field": field, "reference": reference, "dtype": dtype, "word_order": word_order}
    )


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll is not installed (apt-get install mbpoll)")
async def test_mbpoll_reads_modbus_map() -> None:
    plc = ModbusPlcConfig(name="press", port=free_port(), timeout_ms=500)
    output = PlcOutput(
        plc="press",
        points=(
            point(VerdictField.REJECT, "00001", "bool"),
            point(VerdictField.CLASS_CODE, "40001", "uint16"),
            point(VerdictField.CONFIDENCE, "40002", "float32", "ABCD"),
            point(VerdictField.SEQUENCE, "40004", "int32", "CDAB"),
        ),
    )
    simulator = ModbusSimulator(plc, {"s1": [output]})
    await simulator.start()
    try:
        async with create_writer(plc, [output], reconnect=FAST_RECONNECT) as writer:
            await writer.write(
                output,
                {
                    VerdictField.REJECT: True,
                    VerdictField.CLASS_CODE: 3,
                    VerdictField.CONFIDENCE: 12.5,
                    VerdictField.SEQUENCE: 70_000,
                },
            )
        base = [str(MBPOLL), "-1", "-p", str(plc.port), "-a", str(plc.unit_id)]
        coil = await run_tool(*base, "-t", "0", "-r", "1", "127.0.0.1")
        code = await run_tool(*base, "-t", "4", "-r", "1", "127.0.0.1")
        # mbpoll reads 32-bit values in CDAB order unless -B selects ABCD.
        confidence = await run_tool(*base, "-t", "4:float", "-B", "-r", "2", "127.0.0.1")
        sequence = await run_tool(*base, "-t", "4:int", "-r", "4", "127.0.0.1")
    finally:
        await simulator.stop()

    assert "[1]: \t1" in coil
    assert "[1]: \t3" in code
    assert "[2]: \t12.5" in confidence
    assert "[4]: \t70000" in sequence


@pytest.mark.skipif(not HAS_UAREAD, reason="uaread is missing; it comes with asyncua")
async def test_uaread_reads_opcua_nodes(opcua_sim: OpcUaSimulator, opcua_map: PlcOutput) -> None:
    plc = opcua_sim.plc
    async with create_writer(plc, [opcua_map], reconnect=FAST_RECONNECT) as writer:
        await writer.write(
            opcua_map,
            {
                VerdictField.REJECT: True,
                VerdictField.CLASS_CODE: 2,
                VerdictField.CONFIDENCE: 12.5,
                VerdictField.SEQUENCE: 99,
            },
        )

    read = [UAREAD, "-u", plc.endpoint, "-n"]
    reject = await run_tool(*read, "ns=2;s=station-1.Reject")
    confidence = await run_tool(*read, "ns=2;s=station-1.Confidence")
    sequence = await run_tool(*read, "ns=2;s=station-1.Sequence", "-t", "variant")

    assert reject.strip() == "True"
    assert confidence.strip() == "12.5"
    assert "99" in sequence
    assert "UInt32" in sequence
