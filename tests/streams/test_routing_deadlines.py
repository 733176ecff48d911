"""PlcRouter deadlines against a real Modbus TCP simulator: in time, late, PLC down, fail-safe."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from defectline.config.loader import load_config
from defectline.config.models import ModbusPlcConfig, PlantConfig
from defectline.connectors.plc.base import ReconnectPolicy, create_writer
from defectline.connectors.plc.sim.modbus_server import ModbusSimulator
from defectline.deploy.local.ports import free_port
from defectline.schemas.plc_writes import WriteStatus
from defectline.schemas.verdicts import ModelRef, Outcome, StageTimings, Verdict
from defectline.streams.routing import PlcRouter

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEADLINE_MS = 300
FAST_RECONNECT = ReconnectPolicy(initial_delay_s=0.05, max_delay_s=0.1)


def plant(port: int, **station: Any) -> PlantConfig:
    points = [
        {"field": "reject", "reference": "00001", "dtype": "bool"},
        {"field": "class_code", "reference": "40001"},
        {"field": "sequence", "reference": "40002", "dtype": "uint32"},
    ]
    return load_config(
        environ={},
        overrides={
            "stations": [
                {
                    "id": "s1",
                    "outputs": [{"plc": "press", "points": points}],
                    "result_deadline_ms": DEADLINE_MS,
                    **station,
                }
            ],
            "cameras": [],
            "plcs": [{"name": "press", "type": "modbus", "port": port, "timeout_ms": 200}],
        },
    )


def verdict(sequence: int, age_ms: float = 0.0) -> Verdict:
    captured_at = datetime.now(UTC) - timedelta(milliseconds=age_ms)
    return Verdict(
        plant="p",
        station_id="s1",
        camera_id="cam-1",
        frame_id=f"f{sequence}",
        sequence=sequence,
        captured_at=captured_at,
        decided_at=captured_at,
        outcome=Outcome.PASS,
        class_name="ok",
        class_code=0,
        confidence=0.9,
        scores={"ok": 0.9},
        model=ModelRef(name="m", version="1"),
        timings=StageTimings(decode_ms=1, preprocess_ms=1, inference_ms=1),
    )


class Line:
    """A router, its Modbus writer and the simulated PLC on one free port."""

    def __init__(self, **station: Any) -> None:
        self.config = plant(free_port(), **station)
        self.plc = self.config.plc("press")
        assert isinstance(self.plc, ModbusPlcConfig)
        outputs = self.config.station("s1").outputs
        self.simulator = ModbusSimulator(self.plc, {"s1": outputs})
        self.writer = create_writer(self.plc, outputs, reconnect=FAST_RECONNECT)
        self.router = PlcRouter(self.config, {"press": self.writer}, retry_delay_ms=50)

    async def registers(self) -> tuple[bool, int, int]:
        """Return (reject, class_code, sequence) as stored in the PLC."""
        points = self.config.station("s1").outputs[0].points
        reject = await self.simulator.get_point(points[0])
        class_code = await self.simulator.get_point(points[1])
        sequence = await self.simulator.get_point(points[2])
        return bool(reject), int(class_code), int(sequence)


async def test_verdict_in_time_written() -> None:
    line = Line()
    await line.simulator.start()
    try:
        await line.writer.connect()
        [result] = await line.router.route(verdict(5))
        assert result.status is WriteStatus.OK
        assert result.error is None
        assert result.deadline_at is not None
        assert line.simulator.history["s1"] == [5]
        assert await line.registers() == (False, 0, 5)
    finally:
        await line.writer.close()
        await line.simulator.stop()


async def test_expired_deadline_one_fail_safe_no_late_write() -> None:
    line = Line()
    await line.simulator.start()
    try:
        await line.writer.connect()
        [result] = await line.router.route(verdict(6, age_ms=DEADLINE_MS + 500))
        await asyncio.sleep(0.3)

        assert result.status is WriteStatus.FAIL_SAFE
        assert result.fail_safe
        assert result.late
        assert "fail-safe reject written" in (result.error or "")
        # Exactly one result reached the PLC: the fail-safe reject, never the pass verdict.
        assert line.simulator.history["s1"] == [6]
        assert await line.registers() == (True, 65535, 6)
        coil_writes = [r for r in line.simulator.requests if r.function_code == 15]
        assert [r.values for r in coil_writes] == [(True,)]
    finally:
        await line.writer.close()
        await line.simulator.stop()


async def test_plc_down_until_deadline_then_fail_safe_recorded() -> None:
    line = Line()
    with pytest.raises(Exception, match="cannot connect"):
        await line.writer.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    [result] = await line.router.route(verdict(7))
    elapsed_s = loop.time() - started

    assert result.status is WriteStatus.FAIL_SAFE
    assert "not written" in (result.error or "")
    assert result.attempts >= 2
    assert DEADLINE_MS / 1000 - 0.05 <= elapsed_s < DEADLINE_MS / 1000 + 1.0

    # The PLC comes back: the expired verdict is not written late.
    await line.simulator.start()
    try:
        assert await line.writer.wait_connected(3.0)
        await asyncio.sleep(0.2)
        assert line.simulator.requests == []
        assert line.simulator.history["s1"] == []
    finally:
        await line.writer.close()
        await line.simulator.stop()


async def test_fail_safe_none_records_late_and_writes_nothing() -> None:
    line = Line(fail_safe_action="none")
    await line.simulator.start()
    try:
        await line.writer.connect()
        [result] = await line.router.route(verdict(8, age_ms=DEADLINE_MS * 2))
        assert result.status is WriteStatus.LATE
        assert result.late
        assert not result.fail_safe
        assert line.simulator.requests == []
    finally:
        await line.writer.close()
        await line.simulator.stop()


async def test_fail_safe_pass_action_writes_pass() -> None:
    line = Line(fail_safe_action="pass", fail_safe_class_code=999)
    await line.simulator.start()
    try:
        await line.writer.connect()
        [result] = await line.router.route(verdict(9, age_ms=DEADLINE_MS * 2))
        assert result.status is WriteStatus.FAIL_SAFE
        assert await line.registers() == (False, 999, 9)
    finally:
        await line.writer.close()
        await line.simulator.stop()


async def test_no_deadline_disconnected_fails_fast() -> None:
    line = Line(result_deadline_ms=None)
    with pytest.raises(Exception, match="cannot connect"):
        await line.writer.connect()
    [result] = await line.router.route(verdict(10, age_ms=60_000))
    await line.writer.close()
    # Without a deadline a disconnected PLC fails the write at once instead of retrying, so
    # the verdicts behind it are not delayed while the writer reconnects in the background.
    assert result.status is WriteStatus.FAILED
    assert result.attempts == 1
    assert result.deadline_at is None
