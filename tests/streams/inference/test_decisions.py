"""Decision rules per station: thresholds, uncertain band, binary classifiers, ROI masks."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from defectline.schemas.verdicts import Outcome, Verdict
from defectline.streams.inference.decision import StationMaskError
from defectline.streams.inference.inspector import Inspector


def classifier(kit, tmp_path: Path, row: list[float], **options) -> Inspector:
    output = np.asarray([row], np.float32)
    path = kit.constant_model(tmp_path / "cls.onnx", ["N", 3, 8, 8], {"scores": output})
    config = kit.family_config(
        path, task="classification", width_px=8, height_px=8, resize="stretch", **options
    )
    return Inspector(config, warm_up=False)


def inspect(kit, inspector: Inspector) -> Verdict:
    [verdict] = inspector.inspect_batch(
        [(kit.frame_meta(1, 8, 8), kit.png(np.zeros((8, 8, 3), np.uint8)))]
    )
    assert isinstance(verdict, Verdict)
    return verdict


def test_binary_sigmoid_logit(kit, tmp_path: Path) -> None:
    inspector = classifier(
        kit, tmp_path, [math.log(3.0)], class_names=["good", "bad"], pass_classes=["good"]
    )
    verdict = inspect(kit, inspector)
    assert verdict.class_name == "bad"
    assert verdict.confidence == pytest.approx(0.75, abs=1e-6)
    assert verdict.outcome is Outcome.REJECT


def test_binary_probability_output(kit, tmp_path: Path) -> None:
    inspector = classifier(
        kit,
        tmp_path,
        [0.2],
        class_names=["good", "bad"],
        pass_classes=["good"],
        output="probabilities",
    )
    verdict = inspect(kit, inspector)
    assert (verdict.class_name, verdict.outcome) == ("good", Outcome.PASS)
    assert verdict.confidence == pytest.approx(0.8, abs=1e-6)


def test_reject_within_margin_is_uncertain(kit, tmp_path: Path) -> None:
    inspector = classifier(
        kit,
        tmp_path,
        [0.3, 0.7],
        class_names=["ok", "crack"],
        pass_classes=["ok"],
        output="probabilities",
        decision={"thresholds": {"crack": 0.8}, "uncertain_margin": 0.2},
    )
    verdict = inspect(kit, inspector)
    assert verdict.outcome is Outcome.UNCERTAIN
    assert verdict.class_name == "crack"


def test_reject_below_band_passes(kit, tmp_path: Path) -> None:
    inspector = classifier(
        kit,
        tmp_path,
        [0.45, 0.55],
        class_names=["ok", "crack"],
        pass_classes=["ok"],
        output="probabilities",
        decision={"thresholds": {"crack": 0.8}, "uncertain_margin": 0.2},
    )
    assert inspect(kit, inspector).outcome is Outcome.PASS


def test_weak_pass_is_uncertain(kit, tmp_path: Path) -> None:
    inspector = classifier(
        kit,
        tmp_path,
        [0.6, 0.4],
        class_names=["ok", "crack"],
        pass_classes=["ok"],
        output="probabilities",
        decision={"pass_min_confidence": 0.9},
    )
    assert inspect(kit, inspector).outcome is Outcome.UNCERTAIN


def test_roi_mask_file_of_wrong_size_fails(kit, tmp_path: Path) -> None:
    mask_path = tmp_path / "roi.png"
    cv2.imwrite(str(mask_path), np.full((4, 4), 255, np.uint8))
    output = np.zeros((1, 1, 8, 8), np.float32)
    path = kit.constant_model(tmp_path / "seg.onnx", ["N", 3, 8, 8], {"mask": output})
    config = kit.family_config(
        path,
        task="segmentation",
        width_px=8,
        height_px=8,
        resize="stretch",
        class_names=["defect"],
        decision={"roi_mask_path": str(mask_path)},
    )
    inspector = Inspector(config, warm_up=False)
    [result] = inspector.inspect_batch(
        [(kit.frame_meta(1, 8, 8), kit.png(np.zeros((8, 8, 3), np.uint8)))]
    )
    assert isinstance(result.error, StationMaskError)
    assert "4x4 px but the frame is 8x8 px" in str(result.error)


def test_roi_polygon_keeps_only_inside_box(kit, tmp_path: Path) -> None:
    output = kit.raw_yolo_output(1, [(10, 10, 4, 4, [0.9]), (50, 50, 4, 4, [0.8])])
    path = kit.constant_model(tmp_path / "det.onnx", ["N", 3, 64, 64], {"output0": output})
    config = kit.family_config(
        path,
        task="detection",
        width_px=64,
        height_px=64,
        class_names=["crack"],
        decision={"roi_polygons": [[[40, 40], [63, 40], [63, 63], [40, 63]]]},
    )
    inspector = Inspector(config, warm_up=False)
    [verdict] = inspector.inspect_batch(
        [(kit.frame_meta(1, 64, 64), kit.png(np.zeros((64, 64, 3), np.uint8)))]
    )
    assert [round(region.confidence, 2) for region in verdict.regions] == [0.8]


def test_uncertain_plc_values_follow_station_setting(kit, tmp_path: Path) -> None:
    from defectline.config.models import VerdictField
    from defectline.streams.routing import verdict_values

    inspector = classifier(
        kit,
        tmp_path,
        [0.3, 0.7],
        class_names=["ok", "crack"],
        pass_classes=["ok"],
        output="probabilities",
        decision={"thresholds": {"crack": 0.8}, "uncertain_margin": 0.2},
    )
    verdict = inspect(kit, inspector)

    routed_out = verdict_values(verdict, uncertain_reject=True)
    kept_on_line = verdict_values(verdict, uncertain_reject=False)
    assert routed_out[VerdictField.REJECT] is True
    assert routed_out[VerdictField.UNCERTAIN] is True
    assert kept_on_line[VerdictField.REJECT] is False
    assert kept_on_line[VerdictField.UNCERTAIN] is True
