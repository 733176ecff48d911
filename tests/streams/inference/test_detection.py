"""YOLO detection: raw and NMS-inside exports, metadata, NMS, and boxes mapped back to the frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectline.config.models import PreprocessConfig
from defectline.schemas.verdicts import Outcome, Verdict
from defectline.streams.inference.adapters import DetectionAdapter, FrameGeometry
from defectline.streams.inference.errors import (
    ModelInputMismatchError,
    ModelLoadError,
    ModelOutputError,
)
from defectline.streams.inference.inspector import Inspector
from defectline.streams.inference.preprocess import compute_letterbox

# The field case: 4 box values, 2 classes, 4 anchors; anchor 2 holds the only real box.
GOLDEN_RAW = np.array(
    [
        [
            [10, 30, 100, 50],  # centre x
            [10, 30, 200, 50],  # centre y
            [4, 4, 50, 4],  # width
            [4, 4, 40, 4],  # height
            [0.01, 0.03, 0.05, 0.00],  # class 0 score
            [0.02, 0.01, 0.90, 0.10],  # class 1 score
        ]
    ],
    np.float32,
)


def detector(tmp_path: Path, output: np.ndarray, size: int = 640, **model: object) -> Inspector:
    kit = KIT[0]
    model.setdefault("class_names", ["crack", "dent"])
    path = kit.constant_model(
        tmp_path / "yolo.onnx",
        ["N", 3, size, size],
        {"output0": output},
        model.pop("metadata", None),
    )
    return Inspector(
        kit.family_config(path, task="detection", width_px=size, height_px=size, **model),
        warm_up=False,
    )


def decode(inspector: Inspector, output: np.ndarray, geometry: FrameGeometry):
    return inspector.adapter.decode({"output0": output}, 0, geometry, None)


KIT: list = []


@pytest.fixture(autouse=True)
def _kit(kit) -> None:
    KIT[:] = [kit]


def identity(size: int = 640) -> FrameGeometry:
    config = PreprocessConfig(width_px=size, height_px=size, resize="letterbox")
    return FrameGeometry(size, size, size, size, compute_letterbox(size, size, config))


def test_raw_output_golden_anchor_decodes(tmp_path: Path) -> None:
    inspector = detector(tmp_path, GOLDEN_RAW)
    findings = decode(inspector, GOLDEN_RAW, identity())

    assert isinstance(inspector.adapter, DetectionAdapter)
    assert inspector.adapter.format == "raw"
    assert len(findings.candidates) == 1
    [box] = findings.candidates
    assert box.class_name == "dent"
    assert box.class_code == 2  # 0 is the pass label "ok"
    assert box.confidence == pytest.approx(0.90, abs=1e-6)
    assert box.box == pytest.approx((75, 180, 125, 220), abs=1e-4)


def test_anchors_first_layout_gives_same_box(tmp_path: Path) -> None:
    transposed = GOLDEN_RAW.transpose(0, 2, 1).copy()  # (1, 4 anchors, 6 values)
    inspector = detector(tmp_path, transposed, detection={"format": "raw"})
    [box] = decode(inspector, transposed, identity()).candidates

    assert inspector.adapter.anchors_first is True
    assert box.box == pytest.approx((75, 180, 125, 220), abs=1e-4)


def test_class_score_above_one_fails_loudly(tmp_path: Path) -> None:
    broken = GOLDEN_RAW.copy()
    broken[0, 5, 2] = 1.7
    inspector = detector(tmp_path, broken)
    with pytest.raises(ModelOutputError, match=r"class scores in \[0, 1.7\].*probabilities"):
        decode(inspector, broken, identity())


def test_logit_scores_get_sigmoid(tmp_path: Path) -> None:
    logits = GOLDEN_RAW.copy()
    logits[0, 4:] = -10.0
    logits[0, 5, 2] = np.log(0.9 / 0.1)
    inspector = detector(tmp_path, logits, detection={"scores": "logits"})
    [box] = decode(inspector, logits, identity()).candidates
    assert box.confidence == pytest.approx(0.9, abs=1e-6)


def test_letterbox_inverse_full_hd_golden(tmp_path: Path) -> None:
    output = KIT[0].raw_yolo_output(2, [(320, 320, 64, 32, [0.8, 0.1])])
    inspector = detector(tmp_path, output)
    config = inspector.config.model.preprocess
    geometry = FrameGeometry(1920, 1080, 640, 640, compute_letterbox(1920, 1080, config))
    [box] = decode(inspector, output, geometry).candidates
    assert box.box == pytest.approx((864, 492, 1056, 588), abs=1e-3)


@pytest.mark.parametrize(
    ("width_px", "height_px", "expected"),
    [
        # 320x240 into 64x64: scale 0.2, 64x48 content, 8 px padding above and below.
        (320, 240, (120.0, 100.0, 200.0, 140.0)),
        # 240x320 into 64x64: scale 0.2, 48x64 content, 8 px padding left and right.
        (240, 320, (120.0, 120.0, 200.0, 160.0)),
    ],
)
def test_real_frame_box_maps_back_within_half_pixel(
    tmp_path: Path, width_px: int, height_px: int, expected: tuple[float, ...]
) -> None:
    # Model space box: centre (32, 32), 16 x 8 -> (24, 28, 40, 36).
    output = KIT[0].raw_yolo_output(2, [(32, 32, 16, 8, [0.95, 0.0])])
    inspector = detector(tmp_path, output, size=64)
    frame = np.zeros((height_px, width_px, 3), np.uint8)
    [verdict] = inspector.inspect_batch(
        [(KIT[0].frame_meta(1, width_px, height_px), KIT[0].png(frame))]
    )

    assert isinstance(verdict, Verdict)
    assert verdict.outcome is Outcome.REJECT
    assert verdict.class_name == "crack"
    [region] = verdict.regions
    got = (region.box.x1, region.box.y1, region.box.x2, region.box.y2)
    if width_px == 320:
        assert got == pytest.approx(expected, abs=0.5)
    else:
        # Tall frame: pad 8 left; y has no padding: (28 / 0.2, 36 / 0.2) = (140, 180).
        assert got == pytest.approx((80.0, 140.0, 160.0, 180.0), abs=0.5)


def test_nms_keeps_best_box_per_class(tmp_path: Path) -> None:
    output = KIT[0].raw_yolo_output(
        2,
        [
            (100, 100, 40, 40, [0.90, 0.0]),  # kept: best crack
            (102, 101, 40, 40, [0.80, 0.0]),  # IoU ~0.9 with the first crack: suppressed
            (101, 100, 40, 40, [0.0, 0.70]),  # same place, other class: kept
            (300, 300, 40, 40, [0.60, 0.0]),  # crack elsewhere: kept
            (120, 100, 40, 40, [0.85, 0.0]),  # IoU 1/3 with the first crack: kept at IoU 0.45
            (500, 500, 40, 40, [0.10, 0.0]),  # below the 0.25 confidence threshold
        ],
    )
    inspector = detector(tmp_path, output)
    kept = decode(inspector, output, identity()).candidates

    assert [(c.class_name, round(c.confidence, 2)) for c in kept] == [
        ("crack", 0.90),
        ("crack", 0.85),
        ("dent", 0.70),
        ("crack", 0.60),
    ]


def test_per_class_iou_threshold(tmp_path: Path) -> None:
    output = KIT[0].raw_yolo_output(
        2,
        [
            (100, 100, 40, 40, [0.90, 0.0]),
            (120, 100, 40, 40, [0.85, 0.0]),  # IoU 1/3 with the first
        ],
    )
    inspector = detector(tmp_path, output, detection={"class_iou_thresholds": {"crack": 0.3}})
    kept = decode(inspector, output, identity()).candidates
    assert [round(c.confidence, 2) for c in kept] == [0.90]


def test_export_with_nms_inside(tmp_path: Path) -> None:
    output = np.zeros((1, 5, 6), np.float32)
    output[0, 0] = (75, 180, 125, 220, 0.9, 1)
    output[0, 1] = (10, 20, 30, 40, 0.4, 0)
    inspector = detector(tmp_path, output)
    kept = decode(inspector, output, identity()).candidates

    assert inspector.adapter.format == "nms"
    assert [(c.class_name, c.box) for c in kept] == [
        ("dent", (75.0, 180.0, 125.0, 220.0)),
        ("crack", (10.0, 20.0, 30.0, 40.0)),
    ]


def test_nms_export_bad_class_index_fails(tmp_path: Path) -> None:
    output = np.zeros((1, 2, 6), np.float32)
    output[0, 0] = (1, 1, 5, 5, 0.9, 7)
    inspector = detector(tmp_path, output)
    with pytest.raises(ModelOutputError, match="class index 7"):
        decode(inspector, output, identity())


def test_names_imgsz_and_task_read_from_metadata(tmp_path: Path) -> None:
    metadata = {
        "names": "{0: 'crack', 1: 'dent'}",
        "imgsz": "[640, 640]",
        "stride": "32",
        "task": "detect",
    }
    inspector = detector(tmp_path, GOLDEN_RAW, class_names=[], metadata=metadata)
    inspector_auto = detector(tmp_path, GOLDEN_RAW, class_names=[], metadata=metadata)

    assert inspector.adapter.labels == ("ok", "crack", "dent")
    assert inspector_auto.adapter.task == "detection"


def test_auto_task_from_ultralytics_metadata(tmp_path: Path) -> None:
    path = KIT[0].constant_model(
        tmp_path / "y.onnx",
        ["N", 3, 640, 640],
        {"output0": GOLDEN_RAW},
        {"names": "{0: 'crack', 1: 'dent'}", "task": "detect"},
    )
    inspector = Inspector(
        KIT[0].family_config(path, task="auto", width_px=640, height_px=640), warm_up=False
    )
    assert isinstance(inspector.adapter, DetectionAdapter)


def test_imgsz_mismatch_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ModelInputMismatchError, match=r"imgsz is \[320, 320\].*640x640"):
        detector(tmp_path, GOLDEN_RAW, metadata={"imgsz": "[320, 320]"})


def test_missing_class_names_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no 'names' metadata"):
        detector(tmp_path, GOLDEN_RAW, class_names=[])


def test_output_not_matching_class_count_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ModelInputMismatchError, match=r"\['N', 6, 4\].*3 classes"):
        detector(tmp_path, GOLDEN_RAW, class_names=["a", "b", "c"])


def test_fixed_batch_detector_runs_per_frame(tmp_path: Path) -> None:
    output = KIT[0].raw_yolo_output(2, [(32, 32, 16, 8, [0.95, 0.0])])
    path = KIT[0].constant_model(tmp_path / "fixed.onnx", [1, 3, 64, 64], {"output0": output})
    inspector = Inspector(
        KIT[0].family_config(
            path, task="detection", width_px=64, height_px=64, class_names=["crack", "dent"]
        ),
        warm_up=False,
    )
    frames = [
        (KIT[0].frame_meta(i, 64, 64), KIT[0].png(np.zeros((64, 64, 3), np.uint8)))
        for i in range(4)
    ]
    results = inspector.inspect_batch(frames)

    assert inspector.model.session_calls == 4
    assert [r.frame_id for r in results] == ["f0", "f1", "f2", "f3"]
    assert all(r.outcome is Outcome.REJECT for r in results)
