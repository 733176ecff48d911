"""End to end through the real worker: Kafka in, Modbus, OPC UA and PostgreSQL out."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import urllib.request
from datetime import UTC, datetime

import cv2
import numpy as np
import onnxruntime as ort
import psycopg
import pytest
from asyncua import Client
from pymodbus.client import ModbusTcpClient

from defectline.config.models import ModbusPlcConfig
from defectline.connectors.cameras.publisher import FramePublisher
from defectline.connectors.cameras.render import render_surface
from defectline.models import demo_model_path
from defectline.schemas import topics
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.frames import FrameMeta
from defectline.schemas.plc_writes import PlcWriteResult
from defectline.schemas.verdicts import Verdict

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

DEMO_CLASSES = ["ok", "scratch", "pit", "inclusion", "stain"]


def expected_demo_scores(png: bytes) -> np.ndarray:
    """Run the bundled model directly, with the demo config's preprocessing written out here."""
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    resized = cv2.resize(rgb, (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32)
    tensor = ((resized / 255.0 - 0.5) / 0.25).transpose(2, 0, 1)[None]
    session = ort.InferenceSession(str(demo_model_path()), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: tensor})[0][0].astype(np.float64)
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def publish(line, camera_id: str, sequence: int, payload: bytes, encoding: str = "png") -> FrameMeta:
    config = line.config
    station = config.camera(camera_id).station
    meta = FrameMeta(camera_id=camera_id, station_id=station, frame_id=f"test-{sequence}",
                     sequence=sequence, captured_at=datetime.now(UTC), encoding=encoding,
                     width_px=256, height_px=256)
    publisher = FramePublisher(config.kafka, camera_id)
    publisher.publish(meta, payload)
    publisher.flush(10)
    return meta


def test_frame_reaches_plcs_and_database(start_line, consume, kafka_bootstrap):
    line = start_line()
    image = render_surface(np.random.default_rng(7), 256, 256, "scratch")
    png = cv2.imencode(".png", image)[1].tobytes()
    meta = publish(line, "cam-1", 41, png)

    verdicts = consume(line.topic(topics.VERDICTS), lambda messages: len(messages) >= 1)
    assert len(verdicts) == 1
    verdict = Verdict.from_json(verdicts[0].value())
    scores = expected_demo_scores(png)
    assert verdict.frame_id == meta.frame_id
    assert verdict.class_name == DEMO_CLASSES[int(scores.argmax())]
    assert verdict.confidence == pytest.approx(float(scores.max()), abs=1e-5)
    assert verdict.outcome.value == ("pass" if verdict.class_name == "ok" else "reject")

    writes = consume(line.topic(topics.PLC_WRITES), lambda messages: len(messages) >= 2)
    results = {PlcWriteResult.from_json(m.value()).plc: PlcWriteResult.from_json(m.value())
               for m in writes}
    assert {result.status.value for result in results.values()} == {"ok"}
    assert set(results) == {"line1-modbus", "line1-opcua"}

    # Modbus, read with a plain pymodbus client: coil 0, class code at 0, float32 at 1-2,
    # uint32 sequence at 3-4 (the embedded demo map of station-1).
    modbus = next(plc for plc in line.config.plcs if isinstance(plc, ModbusPlcConfig))
    client = ModbusTcpClient(modbus.host, port=modbus.port)
    assert client.connect()
    coils = client.read_coils(0, count=1, device_id=modbus.unit_id)
    registers = client.read_holding_registers(0, count=5, device_id=modbus.unit_id).registers
    client.close()
    assert coils.bits[0] is (verdict.class_name != "ok")
    assert registers[0] == verdict.class_code
    confidence = struct.unpack(">f", struct.pack(">HH", registers[1], registers[2]))[0]
    assert confidence == pytest.approx(verdict.confidence, abs=1e-6)
    assert (registers[3] << 16) | registers[4] == 41

    opcua = next(plc for plc in line.config.plcs if plc.type == "opcua")
    values = asyncio.run(read_opcua(opcua.endpoint, "station-1"))
    assert values["Reject"] is (verdict.class_name != "ok")
    assert values["ClassCode"] == verdict.class_code
    assert values["Confidence"] == pytest.approx(verdict.confidence, abs=1e-6)
    assert values["Sequence"] == 41

    row = wait_for_row(line.config.database.conninfo(), meta.frame_id)
    assert row[0] == verdict.class_name
    assert row[1] == pytest.approx(verdict.confidence, abs=1e-12)

    base_url = f"http://127.0.0.1:{line.config.worker.web_port}"
    with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
        health = json.loads(response.read())
    assert health["status"] == "ok"
    assert health["plcs"] == {"line1-modbus": "connected", "line1-opcua": "connected"}
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        assert response.status == 200
        metrics = response.read().decode()
    assert 'defectline_frames_in_total{camera="cam-1"} 1.0' in metrics
    outcome = verdict.outcome.value
    assert (
        f'defectline_verdicts_total{{class_name="{verdict.class_name}",outcome="{outcome}",'
        'station="station-1"} 1.0'
    ) in metrics
    assert 'defectline_plc_writes_total{plc="line1-opcua",status="ok"} 1.0' in metrics


async def read_opcua(endpoint: str, station: str) -> dict[str, object]:
    async with Client(endpoint, timeout=5) as client:
        values = {}
        for name in ("Reject", "ClassCode", "Confidence", "Sequence"):
            node = client.get_node(f"ns=2;s={station}.{name}")
            values[name] = await node.read_value()
        return values


def wait_for_row(conninfo: str, frame_id: str, timeout_s: float = 30.0) -> tuple:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(conninfo, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT class_name, confidence FROM inspections WHERE frame_id = %s", (frame_id,)
            ).fetchone()
            if row is not None:
                return row
            time.sleep(0.3)
    raise AssertionError(f"no inspections row for frame {frame_id} within {timeout_s} s")


def test_corrupt_frame_is_dead_lettered_and_next_flows(start_line, consume):
    line = start_line()
    good = cv2.imencode(".png", render_surface(np.random.default_rng(3), 256, 256, None))[1].tobytes()
    truncated = good[: len(good) // 2]
    publish(line, "cam-1", 1, truncated)
    publish(line, "cam-1", 2, good)

    letters = consume(line.topic(topics.DEAD_LETTER), lambda messages: len(messages) >= 1)
    letter = DeadLetter.from_json(letters[0].value())
    assert letter.stage == "inference"
    assert letter.frame_id == "test-1"
    assert "PNG" in letter.reason or "png" in letter.reason
    assert letter.payload() == truncated

    verdicts = consume(line.topic(topics.VERDICTS), lambda messages: len(messages) >= 1)
    assert [Verdict.from_json(m.value()).frame_id for m in verdicts] == ["test-2"]


def test_wrong_header_is_dead_lettered(start_line, consume, kafka_bootstrap):
    from confluent_kafka import Producer

    line = start_line()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(line.topic(topics.FRAMES), key=b"cam-1", value=b"\x89PNG\r\n\x1a\nxx",
                     headers=[("schema", b"frame.v1"), ("camera_id", b"cam-1")])
    producer.flush(10)

    letters = consume(line.topic(topics.DEAD_LETTER), lambda messages: len(messages) >= 1)
    letter = DeadLetter.from_json(letters[0].value())
    assert letter.stage == "inference"
    assert letter.error_type == "FrameHeaderError"
    assert "station_id" in letter.reason
    assert letter.source is not None and letter.source.offset == 0


def test_frame_larger_than_1mb_is_inspected(start_line, consume):
    line = start_line()
    noise = np.random.default_rng(11).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    png = cv2.imencode(".png", noise)[1].tobytes()
    assert len(png) > 3_000_000
    publish(line, "cam-2", 5, png)

    verdicts = consume(line.topic(topics.VERDICTS), lambda messages: len(messages) >= 1)
    verdict = Verdict.from_json(verdicts[0].value())
    assert verdict.frame_id == "test-5"
    assert verdict.class_name == DEMO_CLASSES[int(expected_demo_scores(png).argmax())]
