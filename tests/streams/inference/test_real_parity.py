"""Real input: a user's steel-surface model on real photographs, compared with plain onnxruntime.

The reference side decodes, resizes and normalises in a few lines written from the model's JSON
sidecar and runs onnxruntime directly. The system side only gets an ordinary plant configuration.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from defectline.config.models import PlantConfig
from defectline.schemas.frames import FrameMeta
from defectline.schemas.verdicts import Verdict
from defectline.streams.inference.inspector import Inspector

MODEL_STEM = "neu_cls_smallcnn_gray128"
BATCH_SIZE = 8


@pytest.fixture(scope="module")
def sidecar(shared_dir: Path) -> dict:  # type: ignore[type-arg]
    path = shared_dir / "models" / f"{MODEL_STEM}.json"
    if not path.is_file():
        pytest.skip(f"reference model sidecar {path} is absent")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def model_path(shared_dir: Path, sidecar: dict) -> Path:  # type: ignore[type-arg]
    return shared_dir / "models" / sidecar["file"]


def plant_config_from_sidecar(model_path: Path, sidecar: dict) -> PlantConfig:  # type: ignore[type-arg]
    pre = sidecar["preprocessing"]
    interpolation = {"cv2.INTER_AREA": "area", "cv2.INTER_LINEAR": "linear"}
    document = {
        "model": {
            "path": str(model_path),
            "name": sidecar["name"],
            "class_names": sidecar["class_names"],
            "pass_classes": [],
            "output": "logits",
            "output_name": sidecar["output"]["name"],
            "preprocess": {
                "width_px": pre["resize"]["width"],
                "height_px": pre["resize"]["height"],
                "resize": "letterbox" if pre["resize"]["keep_aspect"] else "stretch",
                "interpolation": interpolation[pre["resize"]["interpolation"]],
                "color": pre["channel_order"].lower(),
                "scale": pre["scale"],
                "mean": pre["mean"],
                "std": pre["std"],
                "layout": sidecar["input"]["layout"].lower(),
            },
        },
        "stations": [{"id": "rolling-mill"}],
    }
    return PlantConfig.model_validate(document)


def reference_predictions(
    model_path: Path, images: list[Path], sidecar: dict  # type: ignore[type-arg]
) -> list[tuple[int, float]]:
    pre = sidecar["preprocessing"]
    size = (pre["resize"]["width"], pre["resize"]["height"])
    mean, std = pre["mean"][0], pre["std"][0]
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

    predictions = []
    for image_path in images:
        gray = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
        resized = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        x = (resized.astype(np.float32) / 255.0 - mean) / std
        logits = session.run(None, {sidecar["input"]["name"]: x[None, None, :, :]})[0][0]
        exponentials = np.exp(logits.astype(np.float64) - logits.max())
        probabilities = exponentials / exponentials.sum()
        predictions.append((int(np.argmax(probabilities)), float(probabilities.max())))
    return predictions


def test_real_photographs_match_direct_onnxruntime(
    model_path: Path, sidecar: dict, real_sample_dir: Path  # type: ignore[type-arg]
) -> None:
    images = sorted(real_sample_dir.glob("*/*.jpg"))
    assert len(images) == 60

    inspector = Inspector(plant_config_from_sidecar(model_path, sidecar))
    frames = []
    for sequence, image_path in enumerate(images):
        frame_meta = FrameMeta(
            camera_id="cam-neu",
            station_id="rolling-mill",
            frame_id=image_path.name,
            sequence=sequence,
            captured_at=datetime.now(UTC),
            encoding="jpeg",
            width_px=200,
            height_px=200,
            source=str(image_path),
        )
        frames.append((frame_meta, image_path.read_bytes()))

    verdicts: list[Verdict] = []
    for start in range(0, len(frames), BATCH_SIZE):
        for result in inspector.inspect_batch(frames[start:start + BATCH_SIZE]):
            assert isinstance(result, Verdict), f"{result.meta.frame_id}: {result.error}"
            verdicts.append(result)

    references = reference_predictions(model_path, images, sidecar)
    correct = 0
    for image_path, verdict, (class_code, confidence) in zip(
        images, verdicts, references, strict=True
    ):
        assert verdict.frame_id == image_path.name
        assert verdict.class_code == class_code, image_path.name
        assert verdict.class_name == sidecar["class_names"][class_code]
        assert verdict.confidence == pytest.approx(confidence, abs=1e-4), image_path.name
        assert verdict.model.name == MODEL_STEM
        correct += verdict.class_name == image_path.parent.name

    assert correct / len(images) >= 0.95, f"{correct} of {len(images)} match their folder"
