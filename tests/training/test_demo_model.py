"""Bundled demo model: the sidecar matches the ONNX file and the model classifies fresh renders."""

from __future__ import annotations

import hashlib
import json
import sys

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from defectline.config import load_config
from defectline.connectors.cameras.render import render_surface
from defectline.errors import DependencyMissingError
from defectline.models import DEMO_MODEL, demo_model_path, demo_sidecar_path
from defectline.training.dataset import DatasetSpec, preprocess_bgr, render_split
from defectline.training.train_demo import import_torch

CLASSES = ["ok", "scratch", "pit", "inclusion", "stain"]


@pytest.fixture(scope="module")
def sidecar():
    return json.loads(demo_sidecar_path().read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def session():
    return ort.InferenceSession(str(demo_model_path()), providers=["CPUExecutionProvider"])


def preprocess(image_bgr: np.ndarray) -> np.ndarray:
    """The demo preprocessing, written out independently of the training package."""
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    resized = cv2.resize(rgb, (96, 96), interpolation=cv2.INTER_AREA)
    scaled = (resized.astype(np.float32) / 255.0 - 0.5) / 0.25
    return scaled.transpose(2, 0, 1)


def test_sidecar_matches_onnx_file(sidecar, session):
    path = demo_model_path()
    inputs = session.get_inputs()
    outputs = session.get_outputs()

    assert path.name == DEMO_MODEL
    assert sidecar["model_file"] == DEMO_MODEL
    assert sidecar["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stat().st_size < 5 * 1024 * 1024
    assert sidecar["class_names"] == CLASSES
    assert [item.name for item in inputs] == [sidecar["input"]["name"]] == ["images"]
    assert inputs[0].shape[1:] == sidecar["input"]["shape"][1:] == [3, 96, 96]
    assert isinstance(inputs[0].shape[0], str)
    assert inputs[0].type == "tensor(float)"
    assert [item.name for item in outputs] == ["logits"]
    assert outputs[0].shape[1] == len(CLASSES)
    assert sidecar["opset"] in (17, 18)


def test_sidecar_preprocess_matches_demo_config(sidecar):
    model = load_config(environ={}).model
    recorded = sidecar["preprocess"]

    assert list(model.class_names) == sidecar["class_names"]
    assert (model.preprocess.width_px, model.preprocess.height_px) == (
        recorded["width_px"],
        recorded["height_px"],
    )
    assert model.preprocess.resize.value == recorded["resize"]
    assert model.preprocess.interpolation.value == recorded["interpolation"]
    assert model.preprocess.color.value == recorded["color"]
    assert model.preprocess.scale == pytest.approx(recorded["scale"])
    assert list(model.preprocess.mean) == recorded["mean"]
    assert list(model.preprocess.std) == recorded["std"]
    assert model.preprocess.layout.value == recorded["layout"]


def test_demo_model_accuracy_on_fresh_renders(sidecar, session):
    # A seed far from the training one, with the lighting ranges the model was trained for.
    dataset = sidecar["training"]["dataset"]
    rng = np.random.default_rng(987_654_321)
    per_class = 40
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    batch = []
    for label in labels:
        gain = rng.uniform(dataset["brightness_gain_min"], dataset["brightness_gain_max"])
        blur = rng.uniform(0.0, dataset["blur_sigma_max_px"]) if rng.random() < 0.5 else 0.0
        kind = None if label == 0 else CLASSES[label]
        batch.append(preprocess(render_surface(rng, 256, 256, kind, gain, blur)))

    (logits,) = session.run(["logits"], {"images": np.stack(batch)})
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))

    recorded = sidecar["test"]["accuracy"]
    assert recorded >= 0.97
    assert accuracy >= recorded - 0.04


def test_demo_model_dynamic_batch(session):
    rng = np.random.default_rng(5)
    for size in (1, 7):
        images = rng.standard_normal((size, 3, 96, 96)).astype(np.float32)
        (logits,) = session.run(["logits"], {"images": images})
        assert logits.shape == (size, len(CLASSES))


def test_training_preprocess_matches_independent_one():
    rng = np.random.default_rng(3)
    frames = [render_surface(rng, 256, 200, "scratch"), render_surface(rng, 120, 96, None)]
    expected = np.stack([preprocess(frame) for frame in frames])
    np.testing.assert_allclose(preprocess_bgr(frames), expected, rtol=0, atol=1e-6)


def test_dataset_splits_reproducible_and_distinct():
    spec = DatasetSpec(seed=42, train_per_class=2, val_per_class=2, test_per_class=2)
    train_a, labels_a = render_split(spec, "train")
    train_b, labels_b = render_split(spec, "train")
    test, _ = render_split(spec, "test")

    assert np.array_equal(train_a, train_b)
    assert np.array_equal(labels_a, labels_b)
    assert sorted(labels_a.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert train_a.shape == (10, 96, 96, 3)
    assert not np.array_equal(train_a, test)


def test_train_demo_without_torch_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(DependencyMissingError, match=r"pip install 'defectline\[train\]'"):
        import_torch()
