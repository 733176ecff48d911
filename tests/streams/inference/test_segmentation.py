"""Segmentation: per-pixel logits or probabilities to connected regions with areas and scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectline.schemas.verdicts import Outcome, Verdict
from defectline.streams.inference.adapters import FrameGeometry, SegmentationAdapter
from defectline.streams.inference.errors import ModelInputMismatchError, ModelOutputError
from defectline.streams.inference.inspector import Inspector


def two_blob_frame() -> np.ndarray:
    """64x48 black frame with a 10x10 white square and a 4x5 white patch."""
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[5:15, 10:20] = 255  # 100 px
    frame[30:35, 40:44] = 255  # 20 px
    return frame


def segmenter(kit, tmp_path: Path, **options: object) -> Inspector:
    path = kit.brightness_segmenter(tmp_path / "unet.onnx", 48, 64)
    options.setdefault("class_names", ["defect"])
    config = kit.family_config(
        path, task="segmentation", width_px=64, height_px=48, resize="stretch", **options
    )
    return Inspector(config, warm_up=False)


def test_two_blobs_give_two_regions_with_areas(kit, tmp_path: Path) -> None:
    inspector = segmenter(kit, tmp_path)
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 64, 48), kit.png(two_blob_frame()))])

    assert isinstance(verdict, Verdict)
    assert verdict.outcome is Outcome.REJECT
    regions = sorted(verdict.regions, key=lambda region: -region.area_px)
    assert [region.area_px for region in regions] == [100, 20]
    assert [region.area_pct for region in regions] == pytest.approx(
        [100 * 100 / 3072, 100 * 20 / 3072]
    )
    big, small = regions
    assert (big.box.x1, big.box.y1, big.box.x2, big.box.y2) == (10, 5, 20, 15)
    assert (small.box.x1, small.box.y1, small.box.x2, small.box.y2) == (40, 30, 44, 35)
    sigmoid_10 = 1 / (1 + np.exp(-10.0))
    assert big.confidence == pytest.approx(sigmoid_10, abs=1e-6)
    assert big.kind == "mask"
    assert verdict.class_name == "defect"
    assert verdict.class_code == 1


def test_min_area_per_class_drops_small_blob(kit, tmp_path: Path) -> None:
    inspector = segmenter(kit, tmp_path, decision={"min_area_px": {"defect": 50}})
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 64, 48), kit.png(two_blob_frame()))])
    assert [region.area_px for region in verdict.regions] == [100]


def test_min_area_above_every_blob_passes(kit, tmp_path: Path) -> None:
    inspector = segmenter(kit, tmp_path, decision={"default_min_area_px": 101})
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 64, 48), kit.png(two_blob_frame()))])
    assert verdict.outcome is Outcome.PASS
    assert verdict.class_name == "ok"
    assert verdict.regions == []


def test_ignore_polygon_removes_blob(kit, tmp_path: Path) -> None:
    ignore = [[[0, 0], [30, 0], [30, 20], [0, 20]]]
    inspector = segmenter(kit, tmp_path, decision={"ignore_polygons": ignore})
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 64, 48), kit.png(two_blob_frame()))])
    assert [region.area_px for region in verdict.regions] == [20]


def test_letterboxed_map_maps_to_frame_pixels(kit, tmp_path: Path) -> None:
    path = kit.brightness_segmenter(tmp_path / "square.onnx", 64, 64)
    config = kit.family_config(
        path, task="segmentation", width_px=64, height_px=64, class_names=["defect"]
    )
    inspector = Inspector(config, warm_up=False)
    frame = np.zeros((96, 128, 3), np.uint8)  # scale 0.5, 16 px padding above and below
    frame[20:60, 40:80] = 255
    [verdict] = inspector.inspect_batch([(kit.frame_meta(1, 128, 96), kit.png(frame))])

    [region] = verdict.regions
    assert (region.box.x1, region.box.y1, region.box.x2, region.box.y2) == (40, 20, 80, 60)
    assert region.area_px == 1600


def test_softmax_with_background_channel(kit, tmp_path: Path) -> None:
    logits = np.zeros((1, 3, 8, 8), np.float32)
    logits[0, 0] = 5.0  # background everywhere
    logits[0, 1, 0:2, 0:3] = 10.0  # 6 px of "scratch"
    logits[0, 2, 6:8, 6:8] = 10.0  # 4 px of "pit"
    path = kit.constant_model(tmp_path / "multi.onnx", ["N", 3, 8, 8], {"masks": logits})
    config = kit.family_config(
        path,
        task="segmentation",
        width_px=8,
        height_px=8,
        resize="stretch",
        class_names=["background", "scratch", "pit"],
    )
    inspector = Inspector(config, warm_up=False)
    adapter = inspector.adapter
    findings = adapter.decode({"masks": logits}, 0, FrameGeometry(8, 8, 8, 8), None)

    assert isinstance(adapter, SegmentationAdapter)
    assert adapter.labels == ("ok", "scratch", "pit")
    assert sorted((c.class_name, c.area_px, c.class_code) for c in findings.candidates) == [
        ("pit", 4, 2),
        ("scratch", 6, 1),
    ]


def test_probabilities_out_of_range_fail_loudly(kit, tmp_path: Path) -> None:
    values = np.full((1, 1, 8, 8), 3.0, np.float32)
    path = kit.constant_model(tmp_path / "p.onnx", ["N", 3, 8, 8], {"mask": values})
    config = kit.family_config(
        path,
        task="segmentation",
        width_px=8,
        height_px=8,
        class_names=["defect"],
        segmentation={"output": "probabilities"},
    )
    inspector = Inspector(config, warm_up=False)
    with pytest.raises(ModelOutputError, match=r"values in \[3, 3\]"):
        inspector.adapter.decode({"mask": values}, 0, FrameGeometry(8, 8, 8, 8), None)


def test_class_names_must_match_channels(kit, tmp_path: Path) -> None:
    with pytest.raises(ModelInputMismatchError, match="1 channel.*has 2"):
        segmenter(kit, tmp_path, class_names=["a", "b"])
