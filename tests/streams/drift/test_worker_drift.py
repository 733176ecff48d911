"""Drift detection through the real worker: one alert and one recovery across a restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import cv2
import numpy as np
import psycopg
import pytest

from defectline.connectors.cameras.publisher import FramePublisher
from defectline.connectors.cameras.render import render_surface
from defectline.schemas import topics
from defectline.schemas.drift import DriftEvent, EventKind, Metric
from defectline.schemas.frames import FrameMeta

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(290)]

DRIFT = {"reference_frames": 150, "window_frames": 100, "recovery_frames": 40}
DARK_GAIN = 0.8
SIZE_PX = 128


def publish_frames(line, rng: np.random.Generator, first: int, count: int, gain: float) -> None:
    publisher = FramePublisher(line.config.kafka, "cam-1")
    for sequence in range(first, first + count):
        image = render_surface(rng, SIZE_PX, SIZE_PX, None, brightness_gain=gain)
        meta = FrameMeta(
            camera_id="cam-1", station_id="station-1", frame_id=f"drift-{sequence}",
            sequence=sequence, captured_at=datetime.now(UTC), encoding="png",
            width_px=SIZE_PX, height_px=SIZE_PX,
        )  # fmt: skip
        publisher.publish(meta, cv2.imencode(".png", image)[1].tobytes())
    publisher.flush(30)


def drift_events(messages) -> list[DriftEvent]:
    return [DriftEvent.from_json(message.value()) for message in messages]


def has_recovery(messages) -> bool:
    return any(event.kind is EventKind.RECOVERY for event in drift_events(messages))


def test_worker_restart_mid_episode_keeps_one_alert(start_line, consume) -> None:
    line = start_line({"drift": DRIFT})
    drift_topic = line.topic(topics.DRIFT)
    rng = np.random.default_rng(11)

    # 150 frames build the reference, 100 more are stable, then the light drops by 20%.
    publish_frames(line, rng, 0, 250, gain=1.0)
    publish_frames(line, rng, 250, 70, gain=DARK_GAIN)
    first = drift_events(consume(drift_topic, lambda messages: len(messages) >= 1, 120))
    assert [event.kind for event in first] == [EventKind.START]
    assert first[0].metric is Metric.BRIGHTNESS
    assert first[0].camera_id == "cam-1"
    assert 250 <= first[0].sequence <= 310
    assert "brightness" in first[0].message

    # Restart in the middle of the episode; the frames after it are still dark, then bright.
    line.worker.stop()
    line.worker.start(ready_timeout_s=120)
    publish_frames(line, rng, 320, 80, gain=DARK_GAIN)
    publish_frames(line, rng, 400, 200, gain=1.0)

    events = drift_events(consume(drift_topic, has_recovery, 150))
    starts = [event for event in events if event.kind is EventKind.START]
    recoveries = [event for event in events if event.kind is EventKind.RECOVERY]
    assert len(starts) == 1, [event.message for event in starts]
    assert len(recoveries) == 1
    assert recoveries[0].episode_id == starts[0].episode_id
    assert recoveries[0].sequence >= 400
    assert "brightness" in recoveries[0].message

    # The recorder stores the episode with its start and end.
    database = line.config.database
    conninfo = f"host={database.host} port={database.port} dbname={database.dbname} user=defectline"
    rows: list[tuple] = []
    for _attempt in range(40):
        with psycopg.connect(conninfo) as conn:
            rows = conn.execute(
                "SELECT episode_id, camera_id, station_id, metric, direction, message, ended_at"
                " FROM drift_events"
            ).fetchall()
        if rows and rows[0][6] is not None:
            break
        time.sleep(0.5)
    assert len(rows) == 1
    episode_id, camera_id, station_id, metric, direction, message, ended_at = rows[0]
    assert episode_id == starts[0].episode_id
    assert (camera_id, station_id) == ("cam-1", "station-1")
    assert (metric, direction) == ("brightness", "down")
    assert "brightness" in message
    assert ended_at is not None
