"""Camera runner against the real broker: frames, headers, keys, dead letters and restarts."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time

import pytest

from defectline.config.models import KafkaConfig
from defectline.connectors.cameras.errors import CameraError, PublishError
from defectline.connectors.cameras.publisher import FramePublisher
from defectline.connectors.cameras.runner import run_camera
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.frames import FrameMeta

LIVE_FRAME_ID = re.compile(r"^\d{8}T\d{6}Z-\d+$")


def folder_plant(make_plant, kafka_bootstrap, topic_prefix, folder, **source):
    settings = {
        "type": "folder",
        "path": str(folder),
        "poll_interval_ms": 50,
        "settle_ms": 100,
        **source,
    }
    return make_plant(
        [{"id": "aoi-1", "station": "station-2", "source": settings}],
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
    )


def test_folder_camera_sends_existing_then_new_file(
    make_plant, kafka_bootstrap, topic_prefix, camera_topics, consume, write_image, tmp_path
):
    folder = tmp_path / "aoi"
    folder.mkdir()
    now = time.time()
    payloads = {
        "old.png": write_image(folder / "old.png", 40, 30, seed=1, mtime_s=now - 20),
        "older.jpg": write_image(folder / "older.jpg", 50, 20, seed=2, mtime_s=now - 40),
    }
    plant = folder_plant(make_plant, kafka_bootstrap, topic_prefix, folder)
    stop = threading.Event()
    result = {}

    def run() -> None:
        result["stats"] = run_camera(
            plant, "aoi-1", max_frames=3, stop=stop, state_dir=tmp_path / "state"
        )

    runner = threading.Thread(target=run)
    runner.start()
    first_two = consume(camera_topics["frames"], 2)
    payloads["new.png"] = write_image(folder / "new.png", 33, 22, seed=3)
    runner.join(timeout=60)
    assert not runner.is_alive()
    messages = consume(camera_topics["frames"], 4, timeout_s=5)

    assert len(first_two) == 2
    assert len(messages) == 3
    metas = [FrameMeta.from_headers(message.headers()) for message in messages]
    assert [meta.source for meta in metas] == ["older.jpg", "old.png", "new.png"]
    assert [message.value() for message in messages] == [payloads[meta.source] for meta in metas]
    assert {message.key() for message in messages} == {b"aoi-1"}
    assert [meta.sequence for meta in metas] == [0, 1, 2]
    assert {meta.camera_id for meta in metas} == {"aoi-1"}
    assert {meta.station_id for meta in metas} == {"station-2"}
    assert [meta.encoding for meta in metas] == ["jpeg", "png", "png"]
    assert [(meta.width_px, meta.height_px) for meta in metas] == [(50, 20), (40, 30), (33, 22)]
    assert metas[0].frame_id.startswith("older.jpg@")
    assert result["stats"].frames_sent == 3
    assert result["stats"].dead_letters == 0


def test_corrupt_file_goes_to_dead_letter_topic(
    make_plant, kafka_bootstrap, topic_prefix, camera_topics, consume, write_image, tmp_path, caplog
):
    folder = tmp_path / "aoi"
    folder.mkdir()
    now = time.time()
    write_image(folder / "a.png", seed=1, mtime_s=now - 30)
    corrupt = b"\xff\xd8\xff\xe0" + b"\x13" * 64
    (folder / "b.jpg").write_bytes(corrupt)
    os.utime(folder / "b.jpg", (now - 20, now - 20))
    good = write_image(folder / "c.png", seed=2, mtime_s=now - 10)
    plant = folder_plant(make_plant, kafka_bootstrap, topic_prefix, folder, watch=False)

    caplog.set_level(logging.WARNING, logger="defectline.connectors.cameras.runner")
    stats = run_camera(plant, "aoi-1", state_dir=tmp_path / "state")

    frames = consume(camera_topics["frames"], 3, timeout_s=5)
    letters = consume(camera_topics["dead_letter"], 1)
    assert [FrameMeta.from_headers(message.headers()).source for message in frames] == [
        "a.png",
        "c.png",
    ]
    assert frames[1].value() == good
    assert [FrameMeta.from_headers(message.headers()).sequence for message in frames] == [0, 1]

    assert len(letters) == 1
    letter = DeadLetter.from_json(letters[0].value())
    assert letters[0].key() == b"aoi-1"
    assert letter.stage == "camera"
    assert letter.camera_id == "aoi-1"
    assert letter.frame_id.startswith("b.jpg@")
    assert letter.error_type == "FrameRejectedError"
    assert "b.jpg" in letter.reason
    assert letter.payload() == corrupt
    assert letter.headers["source"] == "b.jpg"

    warnings = [
        record.getMessage() for record in caplog.records if record.levelno == logging.WARNING
    ]
    assert any("camera=aoi-1" in message and "file=b.jpg" in message for message in warnings)
    assert (stats.frames_sent, stats.dead_letters, stats.delivery_failures) == (2, 1, 0)


def test_folder_restart_sends_nothing_twice(
    make_plant, kafka_bootstrap, topic_prefix, camera_topics, consume, write_image, tmp_path
):
    folder = tmp_path / "aoi"
    folder.mkdir()
    write_image(folder / "a.png", seed=1, mtime_s=time.time() - 30)
    (folder / "bad.png").write_bytes(b"garbage")
    plant = folder_plant(make_plant, kafka_bootstrap, topic_prefix, folder, watch=False)

    first = run_camera(plant, "aoi-1", state_dir=tmp_path / "state")
    write_image(folder / "b.png", seed=2, mtime_s=time.time() - 10)
    second = run_camera(plant, "aoi-1", state_dir=tmp_path / "state")

    frames = consume(camera_topics["frames"], 3, timeout_s=5)
    assert (first.frames_sent, first.dead_letters) == (1, 1)
    assert (second.frames_sent, second.dead_letters) == (1, 0)
    assert [FrameMeta.from_headers(message.headers()).source for message in frames] == [
        "a.png",
        "b.png",
    ]


def test_synthetic_camera_live_frame_ids(
    make_plant, kafka_bootstrap, topic_prefix, camera_topics, consume, tmp_path
):
    source = {"type": "synthetic", "fps": 200, "width_px": 64, "height_px": 64, "seed": 5}
    plant = make_plant(
        [{"id": "sim-1", "station": "station-1", "source": source}],
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
    )
    truths = {}

    def remember(meta, frame):
        truths[meta.frame_id] = frame.truth

    first = run_camera(plant, "sim-1", max_frames=4, state_dir=tmp_path, on_frame=remember)
    second = run_camera(plant, "sim-1", max_frames=2, state_dir=tmp_path, on_frame=remember)
    messages = consume(camera_topics["frames"], 6)

    metas = [FrameMeta.from_headers(message.headers()) for message in messages]
    assert (first.frames_sent, second.frames_sent) == (4, 2)
    assert [meta.sequence for meta in metas] == [0, 1, 2, 3, 0, 1]
    assert all(LIVE_FRAME_ID.match(meta.frame_id) for meta in metas)
    assert len({meta.frame_id for meta in metas}) == 6
    assert metas[0].frame_id.rsplit("-", 1)[0] < metas[4].frame_id.rsplit("-", 1)[0]
    assert set(truths) == {meta.frame_id for meta in metas}
    assert all(message.value().startswith(b"\x89PNG") for message in messages)
    assert all(b"truth" not in dict(message.headers()) for message in messages)


def test_stop_event_ends_watching_camera(
    make_plant, kafka_bootstrap, topic_prefix, camera_topics, tmp_path
):
    folder = tmp_path / "aoi"
    folder.mkdir()
    plant = folder_plant(make_plant, kafka_bootstrap, topic_prefix, folder)
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()

    started = time.monotonic()
    stats = run_camera(plant, "aoi-1", stop=stop, state_dir=tmp_path / "state")

    assert time.monotonic() - started < 10
    assert stats.frames_sent == 0


def test_unknown_camera_raises(make_plant, tmp_path):
    plant = make_plant([])
    with pytest.raises(CameraError, match="camera 'cam-9' is not in the configuration"):
        run_camera(plant, "cam-9", state_dir=tmp_path)


def test_flush_raises_when_broker_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kafka = KafkaConfig(bootstrap_servers=f"127.0.0.1:{port}")
    publisher = FramePublisher(kafka, "cam-1")
    meta = FrameMeta(
        camera_id="cam-1",
        station_id="station-1",
        frame_id="f-1",
        sequence=0,
        captured_at="2026-01-01T00:00:00Z",
        encoding="png",
        width_px=1,
        height_px=1,
    )

    publisher.publish(meta, b"\x89PNG\r\n\x1a\n")
    with pytest.raises(PublishError, match=r"1 message\(s\) still undelivered after 1 s"):
        publisher.flush(1.0)
