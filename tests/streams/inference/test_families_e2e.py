"""Each model family end to end: Kafka, the real worker process, PLCs and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pymodbus.client import ModbusTcpClient

from defectline.config import load_config
from defectline.config.models import ModbusPlcConfig
from defectline.connectors.cameras.publisher import FramePublisher
from defectline.schemas import topics
from defectline.schemas.frames import FrameMeta
from defectline.schemas.plc_writes import PlcWriteResult
from defectline.schemas.verdicts import Outcome, Verdict

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def demo_stations(decision: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    stations = load_config(environ={}).model_dump(mode="json")["stations"]
    if decision is not None:
        stations[0]["decision"] = decision
    return stations


def model_override(
    path: Path, task: str, width_px: int, height_px: int, resize: str, **model: Any
) -> dict[str, Any]:
    # The override is merged into the demo model section, so every inherited key is reset here.
    model.setdefault("class_names", [])
    model.setdefault("pass_classes", [])
    return {
        "path": str(path),
        "name": f"e2e-{task}",
        "task": task,
        "version": "e2e",
        **model,
        "preprocess": {
            "width_px": width_px,
            "height_px": height_px,
            "resize": resize,
            "interpolation": "linear",
            "color": "rgb",
            "scale": 1 / 255,
            "mean": [0.0],
            "std": [1.0],
        },
    }


def run_frame(line, consume, image: np.ndarray, sequence: int = 1) -> Verdict:
    import cv2

    meta = FrameMeta(
        camera_id="cam-1",
        station_id="station-1",
        frame_id=f"e2e-{sequence}",
        sequence=sequence,
        captured_at=datetime.now(UTC),
        encoding="png",
        width_px=image.shape[1],
        height_px=image.shape[0],
    )
    publisher = FramePublisher(line.config.kafka, "cam-1")
    publisher.publish(meta, cv2.imencode(".png", image)[1].tobytes())
    publisher.flush(10)
    messages = consume(line.topic(topics.VERDICTS), lambda found: len(found) >= 1)
    assert len(messages) == 1
    return Verdict.from_json(messages[0].value())


def stored_row(line, frame_id: str, timeout_s: float = 30.0) -> tuple:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(line.config.database.conninfo(), autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT outcome, class_name, evidence_uri FROM inspections WHERE frame_id = %s",
                (frame_id,),
            ).fetchone()
            if row is not None:
                return row
            time.sleep(0.3)
    raise AssertionError(f"no inspections row for frame {frame_id} within {timeout_s} s")


def check_evidence(line, verdict: Verdict, archive: Path) -> None:
    assert verdict.evidence_uri is not None
    assert verdict.evidence_uri.startswith(archive.as_uri())
    assert Path(verdict.evidence_uri.removeprefix("file://")).stat().st_size > 0
    assert stored_row(line, verdict.frame_id)[2] == verdict.evidence_uri


def test_classification_uncertain_routes_to_manual_check(start_line, consume, kit, tmp_path):
    path = kit.constant_model(
        tmp_path / "cls.onnx", ["N", 3, 8, 8], {"probs": np.array([[0.3, 0.7]], np.float32)}
    )
    line = start_line(
        {
            "model": model_override(
                path,
                "classification",
                8,
                8,
                "stretch",
                output="probabilities",
                class_names=["ok", "crack"],
                pass_classes=["ok"],
            ),
            "stations": demo_stations({"thresholds": {"crack": 0.8}, "uncertain_margin": 0.2}),
            "archive": {"store": {"type": "local", "path": str(tmp_path / "archive")}},
        }
    )
    verdict = run_frame(line, consume, np.zeros((16, 16, 3), np.uint8))

    assert verdict.outcome is Outcome.UNCERTAIN
    assert verdict.class_name == "crack"
    assert verdict.confidence == pytest.approx(0.7, abs=1e-6)
    writes = consume(line.topic(topics.PLC_WRITES), lambda found: len(found) >= 2)
    assert {PlcWriteResult.from_json(m.value()).status.value for m in writes} == {"ok"}

    modbus = next(plc for plc in line.config.plcs if isinstance(plc, ModbusPlcConfig))
    client = ModbusTcpClient(modbus.host, port=modbus.port)
    assert client.connect()
    coils = client.read_coils(0, count=1, device_id=modbus.unit_id)
    client.close()
    assert coils.bits[0] is True  # uncertain parts leave the line for manual inspection
    assert stored_row(line, verdict.frame_id)[:2] == ("uncertain", "crack")
    check_evidence(line, verdict, tmp_path / "archive")


def test_yolo_detection_end_to_end(start_line, consume, kit, tmp_path):
    output = kit.raw_yolo_output(2, [(32, 32, 16, 8, [0.95, 0.01]), (5, 5, 2, 2, [0.1, 0.1])])
    path = kit.constant_model(
        tmp_path / "yolo.onnx",
        ["N", 3, 64, 64],
        {"output0": output},
        {"names": "{0: 'crack', 1: 'dent'}", "imgsz": "[64, 64]", "stride": "32", "task": "detect"},
    )
    line = start_line(
        {
            "model": model_override(path, "auto", 64, 64, "letterbox"),
            "stations": demo_stations(),
            "archive": {"store": {"type": "local", "path": str(tmp_path / "archive")}},
        }
    )
    verdict = run_frame(line, consume, np.zeros((240, 320, 3), np.uint8))

    assert verdict.outcome is Outcome.REJECT
    assert (verdict.class_name, verdict.class_code) == ("crack", 1)
    [region] = verdict.regions
    box = (region.box.x1, region.box.y1, region.box.x2, region.box.y2)
    assert box == pytest.approx((120, 100, 200, 140), abs=0.5)
    check_evidence(line, verdict, tmp_path / "archive")


def test_segmentation_end_to_end(start_line, consume, kit, tmp_path):
    path = kit.brightness_segmenter(tmp_path / "unet.onnx", 48, 64)
    line = start_line(
        {
            "model": model_override(
                path, "segmentation", 64, 48, "stretch", class_names=["defect"]
            ),
            "stations": demo_stations(),
            "archive": {"store": {"type": "local", "path": str(tmp_path / "archive")}},
        }
    )
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[5:15, 10:20] = 255
    frame[30:35, 40:44] = 255
    verdict = run_frame(line, consume, frame)

    assert verdict.outcome is Outcome.REJECT
    assert sorted(region.area_px for region in verdict.regions) == [20, 100]
    check_evidence(line, verdict, tmp_path / "archive")


def test_anomaly_end_to_end(start_line, consume, kit, tmp_path):
    metadata = {"image_threshold": "0.4", "pixel_threshold": "0.4", "min": "0", "max": "0.8"}
    path = kit.brightness_anomaly(tmp_path / "padim.onnx", 32, 32, metadata)
    line = start_line(
        {
            "model": model_override(path, "anomaly", 32, 32, "stretch"),
            "stations": demo_stations(),
            "archive": {"store": {"type": "local", "path": str(tmp_path / "archive")}},
        }
    )
    frame = np.full((32, 32, 3), 51, np.uint8)
    frame[4:10, 20:28] = 204
    verdict = run_frame(line, consume, frame)

    assert verdict.outcome is Outcome.REJECT
    assert verdict.class_name == "anomaly"
    assert [region.area_px for region in verdict.regions] == [48]
    check_evidence(line, verdict, tmp_path / "archive")
