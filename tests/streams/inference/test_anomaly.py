"""Anomaly models: normalisation from metadata or config, image score, map regions, thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectline.schemas.verdicts import Outcome
from defectline.streams.inference.adapters import AnomalyAdapter
from defectline.streams.inference.errors import ModelLoadError
from defectline.streams.inference.inspector import Inspector

# Raw scores are pixel brightness in [0, 1]; threshold 0.4 and span 0.8 give
# normalised = (x - 0.4) / 0.8 + 0.5.
METADATA = {"image_threshold": "0.4", "pixel_threshold": "0.4", "min": "0.0", "max": "0.8"}


def anomaly(kit, tmp_path: Path, metadata=METADATA, **options) -> Inspector:
    path = kit.brightness_anomaly(tmp_path / "padim.onnx", 32, 32, metadata)
    config = kit.family_config(
        path, task="anomaly", width_px=32, height_px=32, resize="stretch", **options
    )
    return Inspector(config, warm_up=False)


def grey_frame(level: int, patch: int | None = None) -> np.ndarray:
    frame = np.full((32, 32, 3), level, np.uint8)
    if patch is not None:
        frame[4:10, 20:28] = patch  # 48 px
    return frame


def test_thresholds_and_bounds_read_from_metadata(kit, tmp_path: Path) -> None:
    inspector = anomaly(kit, tmp_path)
    adapter = inspector.adapter
    assert isinstance(adapter, AnomalyAdapter)
    assert (adapter.image_threshold, adapter.min_score, adapter.max_score) == (0.4, 0.0, 0.8)


def test_anomalous_patch_rejects_with_region(kit, tmp_path: Path) -> None:
    inspector = anomaly(kit, tmp_path)
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 32, 32), kit.png(grey_frame(51, 204)))])

    # Patch 204/255 = 0.8 -> (0.8 - 0.4) / 0.8 + 0.5 = 1.0; background 0.2 -> 0.25.
    assert verdict.outcome is Outcome.REJECT
    assert verdict.class_name == "anomaly"
    assert verdict.confidence == pytest.approx(1.0, abs=1e-5)
    [region] = verdict.regions
    assert region.area_px == 48
    assert (region.box.x1, region.box.y1, region.box.x2, region.box.y2) == (20, 4, 28, 10)


def test_normal_frame_passes_with_normalised_score(kit, tmp_path: Path) -> None:
    inspector = anomaly(kit, tmp_path)
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 32, 32), kit.png(grey_frame(51)))])

    assert verdict.outcome is Outcome.PASS
    assert verdict.scores["anomaly"] == pytest.approx(0.25, abs=1e-5)
    assert verdict.confidence == pytest.approx(0.75, abs=1e-5)


def test_config_overrides_metadata_threshold(kit, tmp_path: Path) -> None:
    # With the threshold at 0.1, a 0.2 background normalises to 0.625: anomalous.
    inspector = anomaly(kit, tmp_path, anomaly={"image_threshold": 0.1, "pixel_threshold": 0.1})
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 32, 32), kit.png(grey_frame(51)))])
    assert verdict.outcome is Outcome.REJECT
    assert verdict.confidence == pytest.approx(0.625, abs=1e-5)


def test_uncertain_band_below_station_threshold(kit, tmp_path: Path) -> None:
    inspector = anomaly(
        kit, tmp_path, decision={"thresholds": {"anomaly": 0.7}, "uncertain_margin": 0.2}
    )
    # 0.5 raw -> 0.625 normalised: below 0.7 but within 0.2 of it.
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 32, 32), kit.png(grey_frame(51, 128)))])
    assert verdict.outcome is Outcome.UNCERTAIN


def test_missing_normalisation_values_fail_at_start(kit, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"\['image_threshold', 'min_score', 'max_score'\]"):
        anomaly(kit, tmp_path, metadata={})


def test_auto_task_from_output_names(kit, tmp_path: Path) -> None:
    path = kit.brightness_anomaly(tmp_path / "auto.onnx", 32, 32, METADATA)
    config = kit.family_config(path, task="auto", width_px=32, height_px=32, resize="stretch")
    assert isinstance(Inspector(config, warm_up=False).adapter, AnomalyAdapter)


def test_warm_up_runs_every_output(kit, tmp_path: Path) -> None:
    path = kit.brightness_anomaly(tmp_path / "warm.onnx", 32, 32, METADATA)
    config = kit.family_config(path, task="anomaly", width_px=32, height_px=32, resize="stretch")
    inspector = Inspector(config)  # warm-up on: must not apply classification output checks

    assert inspector.model.session_calls == 1
