"""Rebuilding a reference: a calibration run on the synthetic camera, sent through real Kafka."""

from __future__ import annotations

import uuid

import pytest

from defectline.config import load_config
from defectline.connectors.kafka_admin import ensure_topics
from defectline.schemas.drift import ReferenceUpdate
from defectline.streams.drift.agent import apply_reference_update
from defectline.streams.drift.calibration import (
    CalibrationError,
    calibrate,
    latest_reference_version,
    publish_reference,
)
from defectline.streams.drift.detector import DriftDetector
from defectline.streams.drift.state import CameraState

FRAMES = 40


@pytest.fixture
def config(kafka_bootstrap: str):
    base = load_config(environ={})
    cameras = base.model_dump(mode="json")["cameras"]
    for camera in cameras:
        camera["source"]["fps"] = 1000
    overrides = {
        "kafka": {"bootstrap_servers": kafka_bootstrap, "topic_partitions": 2,
                  "topic_prefix": f"c{uuid.uuid4().hex[:8]}."},
        "cameras": cameras,
    }  # fmt: skip
    return load_config(environ={}, overrides=overrides)


def test_calibration_profile_versions_on_topic(config) -> None:
    ensure_topics(config.kafka)
    assert latest_reference_version(config, "cam-1") == 0

    first = calibrate(config, "cam-1", FRAMES, version=1)
    publish_reference(config, "cam-1", first)
    second = calibrate(config, "cam-1", FRAMES, version=2)
    publish_reference(config, "cam-1", second)

    assert first.source == "calibration"
    assert first.frames == FRAMES
    assert first.station_id == "station-1"
    assert first.model_name == "surface-demo"
    assert set(first.image) == {"brightness", "contrast", "sharpness", "clipped"}
    assert latest_reference_version(config, "cam-1") == 2
    assert latest_reference_version(config, "cam-2") == 0


def test_unknown_camera_rejected(config) -> None:
    with pytest.raises(CalibrationError, match="cam-9"):
        calibrate(config, "cam-9", FRAMES, version=1)


def test_reference_update_adopted_once(config) -> None:
    detector = DriftDetector(config.drift)
    state = CameraState()
    profile = calibrate(config, "cam-1", FRAMES, version=3)
    update = ReferenceUpdate(camera_id="cam-1", profile=profile, requested_at=profile.built_at)

    assert apply_reference_update(detector, state, update) is True
    assert state.profile() == profile
    # The same profile read again after a restart changes nothing; an older one is ignored.
    assert apply_reference_update(detector, state, update) is False
    older = update.model_copy(update={"profile": profile.model_copy(update={"version": 2})})
    assert apply_reference_update(detector, state, older) is False
    assert state.profile() == profile

    relearn = ReferenceUpdate(camera_id="cam-1", profile=None, requested_at=profile.built_at)
    assert apply_reference_update(detector, state, relearn) is True
    assert state.profile() is None
