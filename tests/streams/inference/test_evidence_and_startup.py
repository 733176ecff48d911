"""Evidence overlays in the archive, golden-image parity and start-up input checks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from defectline.schemas.verdicts import Outcome, Verdict
from defectline.streams.inference.errors import ModelInputMismatchError, ProviderUnavailableError
from defectline.streams.inference.inspector import Inspector
from defectline.streams.inference.parity import GoldenParityError, record_outputs


def detector_config(kit, tmp_path: Path, **options):
    output = kit.raw_yolo_output(1, [(32, 32, 16, 8, [0.95])])
    path = kit.constant_model(tmp_path / "det.onnx", ["N", 3, 64, 64], {"output0": output})
    return kit.family_config(
        path, task="detection", width_px=64, height_px=64, class_names=["crack"], **options
    )


def test_reject_stores_overlay_linked_from_verdict(kit, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    inspector = Inspector(detector_config(kit, tmp_path, archive_dir=archive), warm_up=False)
    frame = np.full((64, 64, 3), 128, np.uint8)
    [verdict] = inspector.inspect_batch([(kit.frame_meta(7, 64, 64), kit.png(frame))])

    assert isinstance(verdict, Verdict)
    assert verdict.outcome is Outcome.REJECT
    assert verdict.evidence_uri is not None
    assert verdict.evidence_uri.startswith("file://")
    stored = inspector.archive.get(verdict.evidence_uri)
    overlay = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape == (64, 64, 3)
    # The box outline (24..40, 28..36) is drawn in red over the grey frame.
    blue, green, red = overlay[28, 32].astype(int)
    assert red > 200 and green < 80 and blue < 80
    assert list(archive.rglob("f7.jpg"))


def test_pass_stores_no_evidence(kit, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    config = detector_config(
        kit, tmp_path, archive_dir=archive, decision={"thresholds": {"crack": 0.99}}
    )
    inspector = Inspector(config, warm_up=False)
    [verdict] = inspector.inspect_batch(
        [(kit.frame_meta(1, 64, 64), kit.png(np.zeros((64, 64, 3), np.uint8)))]
    )
    assert verdict.outcome is Outcome.PASS
    assert verdict.evidence_uri is None
    assert not list(archive.rglob("*.jpg"))


def test_golden_parity_passes_and_detects_drift(kit, tmp_path: Path) -> None:
    image = tmp_path / "golden.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 200, np.uint8))
    path = kit.brightness_segmenter(tmp_path / "unet.onnx", 64, 64)
    plain = kit.family_config(
        path, task="segmentation", width_px=64, height_px=64, class_names=["defect"]
    )
    inspector = Inspector(plain, warm_up=False)
    recorded = tmp_path / "golden.npz"
    record_outputs(
        inspector.model, inspector.adapter.config, image, recorded, inspector.adapter.output_names
    )

    parity = {"images": [{"image": str(image), "outputs": str(recorded)}]}
    Inspector(
        kit.family_config(
            path,
            task="segmentation",
            width_px=64,
            height_px=64,
            class_names=["defect"],
            parity=parity,
        ),
        warm_up=False,
    )

    # Same model, drifted preprocessing: BGR scale differs, so the logits differ.
    drifted = kit.family_config(
        path, task="segmentation", width_px=64, height_px=64, class_names=["defect"], parity=parity
    )
    drifted = drifted.model_copy(
        update={
            "model": drifted.model.model_copy(
                update={
                    "preprocess": drifted.model.preprocess.model_copy(update={"scale": 1 / 128})
                }
            )
        }
    )
    with pytest.raises(
        GoldenParityError, match=r"golden.png: output 'logits' differs.*4096 of 4096"
    ):
        Inspector(drifted, warm_up=False)


def test_wrong_input_rank_names_both_shapes(kit, tmp_path: Path) -> None:
    output = kit.raw_yolo_output(1, [(32, 32, 16, 8, [0.95])])
    path = kit.constant_model(tmp_path / "rank3.onnx", ["N", 64, 64], {"output0": output})
    config = kit.family_config(
        path, task="detection", width_px=64, height_px=64, class_names=["crack"]
    )
    with pytest.raises(ModelInputMismatchError) as error:
        Inspector(config, warm_up=False)
    message = str(error.value)
    assert "['N', 64, 64] (rank 3)" in message
    assert "['batch', 3, 64, 64] (rank 4" in message


def test_missing_gpu_provider_names_package(kit, tmp_path: Path) -> None:
    config = detector_config(kit, tmp_path, providers=["TensorrtExecutionProvider"])
    with pytest.raises(
        ProviderUnavailableError, match="TensorrtExecutionProvider.*onnxruntime-gpu"
    ):
        Inspector(config, warm_up=False)
