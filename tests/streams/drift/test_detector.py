"""The drift detector on rendered frames: stable stream, lighting drop, recovery, restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from defectline.config.models import DriftConfig
from defectline.connectors.cameras.render import DEFECT_KINDS, render_surface
from defectline.schemas.drift import DriftEvent, EventKind, Metric
from defectline.streams.drift.detector import DriftDetector
from defectline.streams.drift.image_stats import measure_image
from defectline.streams.drift.observation import Observation
from defectline.streams.drift.state import CameraState

# The settings the tests run with; the lighting test relies on the documented delay bound.
CONFIG = DriftConfig(reference_frames=200, window_frames=100, recovery_frames=50)
MAX_BRIGHTNESS_DELAY_FRAMES = 60
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def stream(
    seed: int, count: int, gain_from: dict[int, float] | None = None, start: int = 0
) -> Iterator[Observation]:
    """Observations of rendered frames; `gain_from` maps a frame index to a brightness gain.

    The class and confidence stand in for a model that keeps working, so only the image
    statistics can move.
    """
    rng = np.random.default_rng(seed)
    gain = 1.0
    for index in range(start, start + count):
        gain = (gain_from or {}).get(index, gain)
        kind = DEFECT_KINDS[int(rng.integers(4))] if rng.random() < 0.3 else None
        image = render_surface(rng, 128, 128, kind, brightness_gain=gain)
        yield Observation(
            plant="p", station_id="station-1", camera_id="cam-1", frame_id=f"f{index}",
            sequence=index, captured_at=BASE_TIME + index * timedelta(milliseconds=50),
            model_name="demo", model_version="1", class_name=kind or "ok",
            confidence=float(rng.uniform(0.97, 1.0)), image_stats=measure_image(image),
        )  # fmt: skip


def feed(detector: DriftDetector, state: CameraState, observations) -> list[DriftEvent]:
    events: list[DriftEvent] = []
    for observation in observations:
        events.extend(detector.observe(state, observation).events)
    return events


def test_reference_learned_from_first_frames() -> None:
    detector = DriftDetector(CONFIG)
    state = CameraState()
    learned = [detector.observe(state, o).learned for o in stream(1, CONFIG.reference_frames)]

    assert all(profile is None for profile in learned[:-1])
    profile = learned[-1]
    assert profile is not None
    assert profile.version == 1
    assert profile.frames == CONFIG.reference_frames
    assert profile.source == "live"
    assert set(profile.image) == {"brightness", "contrast", "sharpness", "clipped"}
    assert 95 < profile.image["brightness"].mean < 165
    assert sum(profile.class_fractions.values()) == pytest.approx(1.0)
    assert profile.uncertain_fraction == 0.0


def test_stable_stream_raises_no_alert() -> None:
    detector = DriftDetector(CONFIG)
    state = CameraState()

    events = feed(detector, state, stream(2, CONFIG.reference_frames + 2000))

    assert events == []
    assert state.episode is None


def test_lighting_shift_one_alert_then_recovery() -> None:
    detector = DriftDetector(CONFIG)
    state = CameraState()
    onset, back = 600, 1000
    events = feed(detector, state, stream(3, 1400, gain_from={onset: 0.8, back: 1.0}))

    starts = [event for event in events if event.kind is EventKind.START]
    recoveries = [event for event in events if event.kind is EventKind.RECOVERY]
    assert len(starts) == 1
    start = starts[0]
    assert start.metric is Metric.BRIGHTNESS
    assert start.direction.value == "down"
    assert "brightness" in start.message
    assert onset <= start.sequence <= onset + MAX_BRIGHTNESS_DELAY_FRAMES
    assert -30 < start.magnitude < -10
    assert abs(start.onset_sequence - onset) <= 5

    assert len(recoveries) == 1
    recovery = recoveries[0]
    assert recovery.episode_id == start.episode_id
    assert back < recovery.sequence <= back + 300
    assert "brightness" in recovery.message
    assert state.episode is None


def test_state_round_trip_mid_episode_keeps_one_alert() -> None:
    detector = DriftDetector(CONFIG)
    state = CameraState()
    onset = 400
    before = feed(detector, state, stream(4, 500, gain_from={onset: 0.7}))
    assert [event.kind for event in before] == [EventKind.START]

    # A restarted worker reads the state back from the changelog as JSON and gets the same
    # uncommitted frames again.
    restored = CameraState.from_dict(state.to_dict())
    replayed = feed(DriftDetector(CONFIG), restored, stream(4, 500, gain_from={onset: 0.7}))
    later = feed(
        DriftDetector(CONFIG), restored, stream(5, 400, gain_from={500: 0.7, 600: 1.0}, start=500)
    )

    assert replayed == []
    assert [event.kind for event in later] == [EventKind.RECOVERY]
    assert later[0].episode_id == before[0].episode_id


def test_model_change_relearns_reference() -> None:
    detector = DriftDetector(CONFIG)
    state = CameraState()
    feed(detector, state, stream(6, CONFIG.reference_frames))
    assert state.profile() is not None

    newer = [
        Observation(**{**o.__dict__, "model_version": "2"})
        for o in stream(6, 10, start=CONFIG.reference_frames)
    ]
    events = feed(detector, state, newer)

    assert events == []
    assert state.profile() is None
    assert state.profile_builder().frames == 10
    assert state.profile_builder().model_version == "2"


def test_hysteresis_levels_validated() -> None:
    with pytest.raises(ValueError, match="psi_recover"):
        DriftConfig(psi_alert=0.2, psi_recover=0.3)
