"""The inspector: encoded frames with metadata in, verdicts or per-frame failures out."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from defectline.config.models import PlantConfig
from defectline.schemas.frames import FrameMeta
from defectline.schemas.verdicts import Outcome, Verdict
from defectline.streams.inference.errors import FrameDecodeError, ModelOutputError
from defectline.streams.inference.inspector import InferenceFailure, Inspector

CLASSES = ["red", "green", "blue"]
# Logits are 10 × the channel mean in [0, 1], so a pure colour frame scores 10 for its class.
WEIGHTS = np.eye(3, dtype=np.float32) * 10
CAPTURED_AT = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def plant_config(model_path: Path, **model: object) -> PlantConfig:
    document = {
        "plant": "test-plant",
        "model": {
            "path": str(model_path),
            "version": "7",
            "class_names": CLASSES,
            "pass_classes": ["green"],
            "preprocess": {"width_px": 16, "height_px": 12, "color": "rgb", "scale": 1 / 255},
            **model,
        },
        "stations": [{"id": "station-1"}],
    }
    return PlantConfig.model_validate(document)


def colour_frame(bgr: tuple[int, int, int]) -> np.ndarray:
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :] = bgr
    return frame


def encode(frame: np.ndarray, encoding: str) -> bytes:
    ok, buffer = cv2.imencode(".png" if encoding == "png" else ".jpg", frame)
    assert ok
    return buffer.tobytes()


def meta(sequence: int, encoding: str = "png", **values: object) -> FrameMeta:
    document: dict[str, object] = {
        "camera_id": "cam-1",
        "station_id": "station-1",
        "frame_id": f"f-{sequence}",
        "sequence": sequence,
        "captured_at": CAPTURED_AT + timedelta(milliseconds=sequence),
        "encoding": encoding,
        "width_px": 64,
        "height_px": 48,
    }
    document.update(values)
    return FrameMeta.model_validate(document)


@pytest.fixture
def inspector(mean_linear_model: Callable[..., Path]) -> Inspector:
    path = mean_linear_model(WEIGHTS, height_px=12, width_px=16)
    return Inspector(plant_config(path, name="colour-check"))


def test_verdict_carries_frame_ids_and_known_scores(inspector: Inspector) -> None:
    frame_meta = meta(3, part_id="P-0042", source="line1/cam1")
    before = datetime.now(UTC)
    [result] = inspector.inspect_batch([(frame_meta, encode(colour_frame((0, 0, 255)), "png"))])
    after = datetime.now(UTC)

    assert isinstance(result, Verdict)
    assert result.plant == "test-plant"
    assert (result.station_id, result.camera_id, result.frame_id) == ("station-1", "cam-1", "f-3")
    assert result.sequence == 3
    assert result.part_id == "P-0042"
    assert result.captured_at == frame_meta.captured_at
    assert before <= result.decided_at <= after
    assert result.class_name == "red"
    assert result.class_code == 0
    assert result.outcome is Outcome.REJECT
    expected = math.exp(10) / (math.exp(10) + 2)
    assert result.confidence == pytest.approx(expected, abs=1e-5)
    assert result.scores["green"] == pytest.approx(1 / (math.exp(10) + 2), abs=1e-6)
    assert result.model.name == "colour-check"
    assert result.model.version == "7"
    assert Verdict.from_json(result.to_json()) == result


def test_verdict_timings_and_queue_delay(inspector: Inspector) -> None:
    captured_at = datetime.now(UTC) - timedelta(milliseconds=250)
    frame_meta = meta(1, captured_at=captured_at)
    [result] = inspector.inspect_batch([(frame_meta, encode(colour_frame((0, 255, 0)), "png"))])

    assert isinstance(result, Verdict)
    assert result.outcome is Outcome.PASS
    assert result.timings.decode_ms > 0
    assert result.timings.preprocess_ms > 0
    assert result.timings.inference_ms > 0
    assert 250 <= result.timings.queue_ms < 5000


def test_bad_frames_fail_alone_in_batch(inspector: Inspector) -> None:
    jpeg = encode(colour_frame((255, 0, 0)), "jpeg")
    png = encode(colour_frame((0, 255, 0)), "png")
    corrupt_jpeg = jpeg[:3] + b"\x00" * 300 + jpeg[-2:]
    frames = [
        (meta(0), encode(colour_frame((0, 0, 255)), "png")),
        (meta(1, "jpeg"), jpeg[: len(jpeg) // 2]),
        (meta(2, "jpeg"), jpeg),
        (meta(3), png[:-40]),
        (meta(4, "jpeg"), corrupt_jpeg),
        (meta(5), png),
    ]
    results = inspector.inspect_batch(frames)

    assert len(results) == 6
    assert [type(result).__name__ for result in results] == [
        "Verdict", "InferenceFailure", "Verdict", "InferenceFailure", "InferenceFailure", "Verdict",
    ]
    assert [result.frame_id for result in results if isinstance(result, Verdict)] == [
        "f-0", "f-2", "f-5",
    ]
    assert [result.class_name for result in results if isinstance(result, Verdict)] == [
        "red", "blue", "green",
    ]
    failures = [result for result in results if isinstance(result, InferenceFailure)]
    assert [failure.meta.frame_id for failure in failures] == ["f-1", "f-3", "f-4"]
    assert all(isinstance(failure.error, FrameDecodeError) for failure in failures)
    assert "frame cam-1/f-1: JPEG" in str(failures[0].error)
    assert "truncated" in str(failures[1].error)


def test_payload_not_matching_header_encoding_fails(inspector: Inspector) -> None:
    payload = encode(colour_frame((0, 0, 255)), "jpeg")
    [result] = inspector.inspect_batch([(meta(0, "png"), payload)])

    assert isinstance(result, InferenceFailure)
    assert isinstance(result.error, FrameDecodeError)
    assert "header gives encoding 'png'" in str(result.error)


def test_empty_batch_returns_empty_list(inspector: Inspector) -> None:
    assert inspector.inspect_batch([]) == []


def test_model_name_defaults_to_file_stem(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=12, width_px=16)
    inspector = Inspector(plant_config(path), warm_up=False)
    result = inspector.inspect(meta(0), encode(colour_frame((255, 0, 0)), "png"))

    assert isinstance(result, Verdict)
    assert result.model.name == path.stem
    assert inspector.model.session_calls == 1


def test_invalid_probabilities_fail_each_frame(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=12, width_px=16)
    inspector = Inspector(plant_config(path, output="probabilities"))
    results = inspector.inspect_batch(
        [(meta(0), encode(colour_frame((0, 0, 255)), "png")),
         (meta(1), encode(colour_frame((0, 255, 0)), "png"))]
    )

    assert len(results) == 2
    for result in results:
        assert isinstance(result, InferenceFailure)
        assert isinstance(result.error, ModelOutputError)
        assert "outside [0, 1]" in str(result.error)


def test_softmax_model_with_probabilities_output(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=12, width_px=16, softmax=True)
    inspector = Inspector(plant_config(path, output="probabilities"))
    result = inspector.inspect(meta(0), encode(colour_frame((255, 0, 0)), "png"))

    assert isinstance(result, Verdict)
    assert result.class_name == "blue"
    assert result.confidence == pytest.approx(math.exp(10) / (math.exp(10) + 2), abs=1e-5)
