"""Parts triggered by the PLC whose verdict never comes: one fail-safe at the deadline."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from defectline.config.loader import load_config
from defectline.config.models import ModbusPlcConfig, ModbusPoint, PlantConfig, VerdictField
from defectline.connectors.plc.base import ReconnectPolicy, create_writer
from defectline.connectors.plc.handshake import StationHandshake
from defectline.connectors.plc.sim.modbus_server import ModbusSimulator
from defectline.deploy.local.ports import free_port
from defectline.schemas.plc_writes import PlcWriteResult, WriteStatus
from defectline.schemas.verdicts import ModelRef, Outcome, StageTimings, Verdict
from defectline.streams.metrics import PLC_DEADLINE_MISSES
from defectline.streams.part_deadlines import PartDeadlines
from defectline.streams.routing import PlcRouter

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEADLINE_MS = 300


def plant(port: int) -> PlantConfig:
    return load_config(
        environ={},
        overrides={
            "stations": [
                {
                    "id": "s1",
                    "result_deadline_ms": DEADLINE_MS,
                    "outputs": [
                        {
                            "plc": "press",
                            "points": [
                                {"field": "reject", "reference": "00001", "dtype": "bool"},
                                {"field": "class_code", "reference": "40001"},
                                {"field": "part_id", "reference": "40002", "dtype": "uint32"},
                            ],
                        }
                    ],
                    "handshake": {
                        "plc": "press",
                        "poll_interval_ms": 10,
                        "result_valid_hold_ms": 20,
                        "points": [
                            {"field": "trigger", "reference": "40021"},
                            {"field": "part_id", "reference": "40022", "dtype": "uint32"},
                            {"field": "result_valid", "reference": "00011", "dtype": "bool"},
                            {"field": "result_sequence", "reference": "40025"},
                        ],
                    },
                }
            ],
            "cameras": [],
            "plcs": [{"name": "press", "type": "modbus", "port": port, "timeout_ms": 200}],
        },
    )


def verdict(captured_at: datetime, frame: str) -> Verdict:
    return Verdict(
        plant="p",
        station_id="s1",
        camera_id="cam-1",
        frame_id=frame,
        sequence=1,
        captured_at=captured_at,
        decided_at=captured_at,
        outcome=Outcome.PASS,
        class_name="ok",
        class_code=4,
        confidence=0.9,
        scores={"ok": 0.9},
        model=ModelRef(name="m", version="1"),
        timings=StageTimings(decode_ms=1, preprocess_ms=1, inference_ms=1),
    )


class Line:
    """A handshake station on a simulated Modbus PLC, its router and the part watcher."""

    def __init__(self) -> None:
        self.config = plant(free_port())
        self.station = self.config.station("s1")
        plc = self.config.plc("press")
        assert isinstance(plc, ModbusPlcConfig) and self.station.handshake is not None
        self.handshake_config = self.station.handshake
        self.simulator = ModbusSimulator(
            plc, {"s1": self.station.outputs}, handshakes={"s1": self.handshake_config}
        )
        self.writer = create_writer(
            plc, self.station.outputs, reconnect=ReconnectPolicy(initial_delay_s=0.05)
        )
        self.handshake = StationHandshake(self.station, self.writer)
        self.router = PlcRouter(
            self.config, {"press": self.writer}, handshakes={"s1": self.handshake}
        )
        self.emitted: list[PlcWriteResult] = []
        self.deadlines = PartDeadlines(self.config, self.router, {"s1": self.handshake}, self._emit)

    async def _emit(self, result: PlcWriteResult) -> None:
        self.emitted.append(result)

    async def start(self) -> None:
        await self.simulator.start()
        await self.writer.connect()
        await self.handshake.start()
        await asyncio.sleep(0.05)  # the first poll sets the trigger baseline

    async def stop(self) -> None:
        await self.deadlines.stop()
        await self.handshake.stop()
        await self.writer.close()
        await self.simulator.stop()

    def handshake_point(self, field: VerdictField) -> ModbusPoint:
        found = self.handshake_config.find(field)
        assert isinstance(found, ModbusPoint)
        return found

    async def trigger(self, part_id: int, counter: int) -> datetime:
        """The PLC program: part number, then the trigger counter; returns when it was seen."""
        await self.simulator.set_point(self.handshake_point(VerdictField.PART_ID), part_id)
        await self.simulator.set_point(self.handshake_point(VerdictField.TRIGGER), counter)
        for _ in range(100):
            if any(part.part_id == str(part_id) for part in self.handshake.parts):
                return self.handshake.parts[-1].triggered_at
            await asyncio.sleep(0.01)
        raise AssertionError(f"trigger of part {part_id} not seen")

    async def result(self) -> tuple[bool, int, int]:
        """(reject, class_code, part_id echo) as stored in the PLC."""
        reject, class_code, part = self.station.outputs[0].points
        return (
            bool(await self.simulator.get_point(reject)),
            int(await self.simulator.get_point(class_code)),
            int(await self.simulator.get_point(part)),
        )


def misses(status: str) -> float:
    return PLC_DEADLINE_MISSES.labels(station="s1", plc="press", status=status)._value.get()


async def test_part_without_verdict_gets_one_fail_safe() -> None:
    line = Line()
    await line.start()
    try:
        before = misses("fail_safe")
        triggered_at = await line.trigger(part_id=77, counter=1)
        await asyncio.sleep(DEADLINE_MS / 1000 / 2)
        assert line.emitted == []  # not before the deadline

        await asyncio.sleep(DEADLINE_MS / 1000 / 2 + 0.2)
        [result] = line.emitted
        assert result.status is WriteStatus.FAIL_SAFE
        assert result.part_id == "77"
        assert result.error == "no verdict by the deadline; fail-safe reject written"
        assert result.deadline_at == triggered_at + timedelta(milliseconds=DEADLINE_MS)
        assert await line.result() == (True, 65535, 77)
        assert misses("fail_safe") == before + 1
        # One result was published for the part.
        assert line.handshake.result_sequence == 1

        # The verdict of that part comes late: it is reported, never written.
        requests_before = len(line.simulator.requests)
        [late] = await line.router.route(verdict(triggered_at, "f-late"))
        assert late.status is WriteStatus.LATE
        assert "fail-safe" in (late.error or "")
        assert late.part_id == "77"
        await asyncio.sleep(0.1)
        assert len(line.simulator.requests) == requests_before
        assert await line.result() == (True, 65535, 77)
        assert len(line.emitted) == 1
    finally:
        await line.stop()


async def test_part_with_verdict_in_time_gets_no_fail_safe() -> None:
    line = Line()
    await line.start()
    try:
        before = misses("fail_safe")
        triggered_at = await line.trigger(part_id=78, counter=1)
        [result] = await line.router.route(verdict(triggered_at + timedelta(milliseconds=5), "f1"))
        assert result.status is WriteStatus.OK
        assert result.part_id == "78"

        await asyncio.sleep(DEADLINE_MS / 1000 + 0.2)
        assert line.emitted == []
        assert misses("fail_safe") == before
        assert await line.result() == (False, 4, 78)
        assert line.handshake.result_sequence == 1
    finally:
        await line.stop()
