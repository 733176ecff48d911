"""OpenCV camera source: video files, looping, max_fps, missing files, reconnects, URL scrubbing."""

from __future__ import annotations

import logging
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from defectline.connectors.cameras.base import create_source
from defectline.connectors.cameras.errors import CameraOpenError
from defectline.connectors.cameras.opencv import OpenCvSource, scrub_uri

FRAME_COUNT = 12
WIDTH_PX, HEIGHT_PX = 64, 48


def frame_colour(index: int) -> tuple[int, int, int]:
    return (20 * index % 256, 255 - 20 * index, 128)


@pytest.fixture
def video_path(tmp_path):
    """A 12-frame MJPG .avi whose frame i is filled with `frame_colour(i)`."""
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (WIDTH_PX, HEIGHT_PX)
    )
    assert writer.isOpened()
    for index in range(FRAME_COUNT):
        writer.write(np.full((HEIGHT_PX, WIDTH_PX, 3), frame_colour(index), dtype=np.uint8))
    writer.release()
    return path


def opencv_camera(make_plant, uri, encoding="png", **source):
    plant = make_plant(
        [
            {
                "id": "cv-1",
                "station": "station-1",
                "encoding": encoding,
                "source": {"type": "opencv", "uri": str(uri), **source},
            }
        ]
    )
    return plant.camera("cv-1")


def test_opencv_reads_every_frame_of_video(make_plant, video_path, tmp_path):
    source = create_source(opencv_camera(make_plant, video_path), state_dir=tmp_path)
    assert isinstance(source, OpenCvSource)
    with source:
        frames = list(source.frames())

    assert len(frames) == FRAME_COUNT
    for index, frame in enumerate(frames):
        assert frame.encoding == "png"
        assert frame.payload.startswith(b"\x89PNG")
        assert (frame.width_px, frame.height_px) == (WIDTH_PX, HEIGHT_PX)
        assert frame.source == str(video_path)
        assert frame.frame_id is None
        image = cv2.imdecode(np.frombuffer(frame.payload, np.uint8), cv2.IMREAD_COLOR)
        assert np.abs(image.reshape(-1, 3).mean(axis=0) - frame_colour(index)).max() < 8


def test_opencv_jpeg_encoding(make_plant, video_path, tmp_path):
    with create_source(
        opencv_camera(make_plant, video_path, encoding="jpeg"), state_dir=tmp_path
    ) as source:
        frame = source.read()
    assert frame.encoding == "jpeg"
    assert frame.payload.startswith(b"\xff\xd8\xff")


def test_opencv_loop_file_restarts(make_plant, video_path, tmp_path):
    camera = opencv_camera(make_plant, video_path, loop_file=True)
    with create_source(camera, state_dir=tmp_path) as source:
        frames = [source.read() for _ in range(FRAME_COUNT + 3)]
    assert all(frame is not None for frame in frames)
    first = cv2.imdecode(np.frombuffer(frames[0].payload, np.uint8), cv2.IMREAD_COLOR)
    again = cv2.imdecode(np.frombuffer(frames[FRAME_COUNT].payload, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(first, again)


def test_opencv_max_fps_paces_file(make_plant, video_path, tmp_path):
    camera = opencv_camera(make_plant, video_path, max_fps=25)
    with create_source(camera, state_dir=tmp_path) as source:
        started = time.monotonic()
        frames = [source.read() for _ in range(6)]
        elapsed_s = time.monotonic() - started
    assert all(frame is not None for frame in frames)
    assert elapsed_s >= 5 / 25 * 0.95


def test_opencv_missing_file_raises(make_plant, tmp_path):
    source = create_source(opencv_camera(make_plant, tmp_path / "missing.avi"), state_dir=tmp_path)
    with pytest.raises(CameraOpenError, match=r"video file .*missing\.avi not found"):
        source.open()


def test_opencv_unreadable_file_raises(make_plant, tmp_path):
    bogus = tmp_path / "bogus.avi"
    bogus.write_bytes(b"this is not a video")
    source = create_source(opencv_camera(make_plant, bogus), state_dir=tmp_path)
    with pytest.raises(CameraOpenError, match="OpenCV cannot open video file"):
        source.open()


def test_opencv_stream_reconnects_without_secrets(make_plant, tmp_path, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://viewer:s3cret@127.0.0.1:{port}/stream.mjpg"
    stop = threading.Event()
    source = create_source(
        opencv_camera(make_plant, uri, reconnect_delay_ms=100), stop=stop, state_dir=tmp_path
    )

    caplog.set_level(logging.INFO, logger="defectline.connectors.cameras.opencv")
    source.open()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    try:
        assert source.read() is None
    finally:
        timer.cancel()
        source.close()

    reconnects = [
        record for record in caplog.records if "reconnecting in 100 ms" in record.getMessage()
    ]
    assert len(reconnects) >= 2
    assert f"uri=http://***@127.0.0.1:{port}/stream.mjpg" in reconnects[0].getMessage()
    assert "s3cret" not in caplog.text
    assert "viewer" not in caplog.text


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("rtsp://admin:pa55@10.1.2.3:554/live", "rtsp://***@10.1.2.3:554/live"),
        (
            "rtsp://10.1.2.3/live?user=cam&password=pa55",
            "rtsp://10.1.2.3/live?user=cam&password=***",
        ),
        ("http://cam.local/video.mjpg", "http://cam.local/video.mjpg"),
        ("/data/line.avi", "/data/line.avi"),
        ("0", "0"),
    ],
)
def test_scrub_uri_hides_credentials(uri, expected):
    assert scrub_uri(uri) == expected
