"""Synthetic camera source and renderer: defect rate, kinds, seeding, lighting and pacing."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from defectline.connectors.cameras.base import create_source
from defectline.connectors.cameras.errors import CameraOpenError
from defectline.connectors.cameras.render import DEFECT_KINDS, render_surface
from defectline.connectors.cameras.synthetic import SyntheticSource, lighting_at


def synthetic_camera(make_plant, encoding="png", **source):
    settings = {"type": "synthetic", "fps": 1000, "width_px": 64, "height_px": 64, **source}
    plant = make_plant(
        [{"id": "sim-1", "station": "station-1", "encoding": encoding, "source": settings}]
    )
    return plant.camera("sim-1")


def read_frames(camera, count, tmp_path):
    with create_source(camera, state_dir=tmp_path) as source:
        return [source.read() for _ in range(count)]


def decode(frame):
    return cv2.imdecode(np.frombuffer(frame.payload, np.uint8), cv2.IMREAD_COLOR)


def test_synthetic_defect_rate_close_to_config(make_plant, tmp_path):
    count, rate_pct = 400, 30.0
    frames = read_frames(
        synthetic_camera(make_plant, defect_rate_pct=rate_pct, seed=7), count, tmp_path
    )
    defects = sum(frame.truth != "ok" for frame in frames)

    expected = count * rate_pct / 100
    spread = 4 * math.sqrt(count * 0.3 * 0.7)
    assert abs(defects - expected) <= spread
    assert {frame.truth for frame in frames} == {"ok", *DEFECT_KINDS}


def test_synthetic_same_seed_same_frames(make_plant, tmp_path):
    first = read_frames(synthetic_camera(make_plant, seed=3), 12, tmp_path)
    second = read_frames(synthetic_camera(make_plant, seed=3), 12, tmp_path)
    other = read_frames(synthetic_camera(make_plant, seed=4), 12, tmp_path)

    assert [frame.truth for frame in first] == [frame.truth for frame in second]
    assert [frame.payload for frame in first] == [frame.payload for frame in second]
    assert [frame.payload for frame in first] != [frame.payload for frame in other]


def test_synthetic_frame_fields(make_plant, tmp_path):
    frames = read_frames(
        synthetic_camera(make_plant, encoding="jpeg", width_px=80, height_px=48), 3, tmp_path
    )

    for frame in frames:
        assert frame.encoding == "jpeg"
        assert frame.payload.startswith(b"\xff\xd8\xff")
        assert decode(frame).shape == (48, 80, 3)
        assert (frame.width_px, frame.height_px) == (80, 48)
        assert frame.frame_id is None
        assert frame.part_id is None
        assert frame.captured_at.utcoffset().total_seconds() == 0


def test_synthetic_only_selected_kinds(make_plant, tmp_path):
    frames = read_frames(
        synthetic_camera(make_plant, defect_rate_pct=100, defect_kinds=["pit", "stain"]),
        40,
        tmp_path,
    )
    assert {frame.truth for frame in frames} == {"pit", "stain"}


def test_synthetic_zero_rate_all_ok(make_plant, tmp_path):
    frames = read_frames(synthetic_camera(make_plant, defect_rate_pct=0), 30, tmp_path)
    assert {frame.truth for frame in frames} == {"ok"}


def test_synthetic_schedule_changes_brightness_and_blur(make_plant, tmp_path):
    schedule = [
        {"from_frame": 20, "brightness_gain": 1.6},
        {"from_frame": 40, "brightness_gain": 1.0, "blur_sigma_px": 3.0},
    ]
    camera = synthetic_camera(
        make_plant, defect_rate_pct=0, width_px=128, height_px=128, schedule=schedule
    )
    images = [decode(frame).astype(np.float64) for frame in read_frames(camera, 60, tmp_path)]

    normal = np.mean([image.mean() for image in images[:20]])
    brighter = np.mean([image.mean() for image in images[20:40]])
    assert brighter / normal > 1.35

    def sharpness(image):
        return cv2.Laplacian(image, cv2.CV_64F).var()

    sharp = np.mean([sharpness(image) for image in images[:20]])
    blurred = np.mean([sharpness(image) for image in images[40:]])
    assert blurred < sharp / 10


def test_lighting_at_uses_last_started_step(make_plant):
    camera = synthetic_camera(
        make_plant,
        schedule=[
            {"from_frame": 10, "brightness_gain": 0.5},
            {"from_frame": 5, "brightness_gain": 2.0, "blur_sigma_px": 1.0},
        ],
    )
    schedule = camera.source.schedule
    assert lighting_at(schedule, 0) == (1.0, 0.0)
    assert lighting_at(schedule, 5) == (2.0, 1.0)
    assert lighting_at(schedule, 9) == (2.0, 1.0)
    assert lighting_at(schedule, 10) == (0.5, 0.0)


def test_synthetic_paced_at_fps(make_plant, tmp_path):
    camera = synthetic_camera(make_plant, fps=50)
    started = time.monotonic()
    read_frames(camera, 11, tmp_path)
    assert time.monotonic() - started >= 10 / 50 * 0.95


def test_synthetic_unknown_kind_rejected(make_plant, tmp_path):
    source = create_source(
        synthetic_camera(make_plant, defect_kinds=["pit", "dent"]), state_dir=tmp_path
    )
    assert isinstance(source, SyntheticSource)
    with pytest.raises(CameraOpenError, match=r"\['dent'\] are unknown"):
        source.open()


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_render_defect_differs_from_ok(kind):
    # Same random stream up to the defect, so the backgrounds match and only the defect differs.
    ok = render_surface(np.random.default_rng(11), 128, 128, None).astype(np.int16)
    defect = render_surface(np.random.default_rng(11), 128, 128, kind).astype(np.int16)
    changed_px = int((np.abs(defect - ok).max(axis=2) > 12).sum())
    assert changed_px > 20


def test_render_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown defect kind 'dent'"):
        render_surface(np.random.default_rng(0), 64, 64, "dent")
