"""Real photographs through the running system with a user's model, against onnxruntime directly."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from defectline.connectors.cameras.runner import run_camera
from defectline.schemas import topics
from defectline.schemas.frames import FrameMeta
from defectline.schemas.verdicts import Verdict

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL_FILE = "neu_cls_smallcnn_gray128"


def direct_scores(session: ort.InferenceSession, sidecar: dict, image_path) -> np.ndarray:
    """Class probabilities with the preprocessing the sidecar states, written out independently."""
    pre = sidecar["preprocessing"]
    size = (pre["resize"]["width"], pre["resize"]["height"])
    gray = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
    resized = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    x = (resized / 255.0 - pre["mean"][0]) / pre["std"][0]
    logits = session.run(None, {sidecar["input"]["name"]: x[None, None].astype(np.float32)})[0][0]
    logits = logits.astype(np.float64)
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def test_real_photographs_match_direct_onnxruntime(start_line, consume, shared_dir, tmp_path):
    sidecar = json.loads((shared_dir / "models" / f"{MODEL_FILE}.json").read_text())
    model_path = shared_dir / "models" / sidecar["file"]
    pre = sidecar["preprocessing"]
    images = sorted((shared_dir / "real-sample").glob("*/*.jpg"))
    assert len(images) == 60

    # The user's configuration: a folder camera and their own model, preprocessing from the sidecar.
    line = start_line({
        "model": {
            "path": str(model_path),
            "name": sidecar["name"],
            "class_names": sidecar["class_names"],
            "pass_classes": [],
            "output": "logits",
            "preprocess": {
                "width_px": pre["resize"]["width"], "height_px": pre["resize"]["height"],
                "resize": "stretch", "interpolation": "area", "color": "gray",
                "scale": pre["scale"], "mean": pre["mean"], "std": pre["std"], "layout": "nchw",
            },
        },
        "cameras": [{
            "id": "real-1", "station": "station-1",
            "source": {"type": "folder", "path": str(shared_dir / "real-sample"),
                       "recursive": True, "watch": False, "settle_ms": 0, "patterns": ["*.jpg"]},
        }],
    })
    stats = run_camera(line.config, "real-1", state_dir=tmp_path / "camera-state")
    assert stats.frames_sent == 60

    frames = consume(line.topic(topics.FRAMES), lambda messages: len(messages) >= 60)
    source_of = {}
    for message in frames:
        meta = FrameMeta.from_headers(message.headers())
        source_of[meta.frame_id] = meta.source
    verdict_messages = consume(line.topic(topics.VERDICTS), lambda messages: len(messages) >= 60,
                               timeout_s=120)
    verdicts = [Verdict.from_json(message.value()) for message in verdict_messages]
    assert len(verdicts) == 60

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    by_file = {image.name: image for image in images}
    max_difference = 0.0
    for verdict in verdicts:
        image = by_file[source_of[verdict.frame_id].split("/")[-1]]
        scores = direct_scores(session, sidecar, image)
        assert verdict.class_name == sidecar["class_names"][int(scores.argmax())], image.name
        difference = abs(verdict.confidence - float(scores.max()))
        assert difference <= 1e-4, image.name
        max_difference = max(max_difference, difference)
    correct = sum(verdict.class_name == by_file[source_of[verdict.frame_id].split("/")[-1]].parent.name
                  for verdict in verdicts)
    assert correct >= 57
    print(f"real input: 60 images, max confidence difference {max_difference:.2e}, "
          f"{correct}/60 match their folder")
