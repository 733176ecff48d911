"""Folder camera source: order, bytes, stable ids, settling, rejected files and remembered state."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

import pytest

from defectline.connectors.cameras.base import create_source
from defectline.connectors.cameras.errors import CameraOpenError, FrameRejectedError
from defectline.connectors.cameras.folder import FolderSource


def folder_camera(make_plant, path, **source):
    plant = make_plant(
        [
            {
                "id": "aoi-1",
                "station": "station-1",
                "source": {"type": "folder", "path": str(path), "watch": False, **source},
            }
        ]
    )
    return plant.camera("aoi-1")


def test_folder_sends_existing_files_oldest_first(tmp_path, make_plant, write_image):
    folder = tmp_path / "aoi"
    folder.mkdir()
    now = time.time()
    newest = write_image(folder / "a.png", 40, 30, seed=1, mtime_s=now - 10)
    oldest = write_image(folder / "b.jpg", 64, 48, seed=2, mtime_s=now - 30)
    middle = write_image(folder / "c.bmp", 20, 10, seed=3, mtime_s=now - 20)
    (folder / "notes.txt").write_text("not an image")

    source = create_source(folder_camera(make_plant, folder), state_dir=tmp_path / "state")
    assert isinstance(source, FolderSource)
    with source:
        frames = list(source.frames())

    assert [frame.source for frame in frames] == ["b.jpg", "c.bmp", "a.png"]
    assert [frame.payload for frame in frames] == [oldest, middle, newest]
    assert [frame.encoding for frame in frames] == ["jpeg", "bmp", "png"]
    assert [(frame.width_px, frame.height_px) for frame in frames] == [(64, 48), (20, 10), (40, 30)]
    assert frames[0].captured_at == datetime.fromtimestamp(
        (folder / "b.jpg").stat().st_mtime_ns / 1e9, UTC
    )
    assert all(frame.truth is None and frame.part_id is None for frame in frames)


def test_folder_frame_ids_stable_and_unique(tmp_path, make_plant, write_image):
    folder = tmp_path / "aoi"
    folder.mkdir()
    write_image(folder / "x.png", seed=1, mtime_s=time.time() - 5)
    write_image(folder / "y.png", seed=2, mtime_s=time.time() - 5)
    camera = folder_camera(make_plant, folder)

    with create_source(camera, state_dir=tmp_path / "s1") as first:
        first_ids = [frame.frame_id for frame in first.frames()]
    with create_source(camera, state_dir=tmp_path / "s2") as second:
        second_ids = [frame.frame_id for frame in second.frames()]

    assert first_ids == second_ids
    assert len(set(first_ids)) == 2
    assert first_ids[0].startswith("x.png@")

    write_image(folder / "x.png", seed=3, mtime_s=time.time() - 1)
    with create_source(camera, state_dir=tmp_path / "s3") as third:
        rewritten = {frame.source: frame.frame_id for frame in third.frames()}
    assert rewritten["x.png"] != first_ids[0]


def test_folder_restart_skips_delivered_files(tmp_path, make_plant, write_image):
    folder = tmp_path / "aoi"
    folder.mkdir()
    write_image(folder / "one.png", seed=1, mtime_s=time.time() - 5)
    write_image(folder / "two.png", seed=2, mtime_s=time.time() - 4)
    camera = folder_camera(make_plant, folder)

    with create_source(camera, state_dir=tmp_path / "state") as source:
        first = source.read()
        source.mark_delivered(first.frame_id)
    with create_source(camera, state_dir=tmp_path / "state") as restarted:
        remaining = [frame.source for frame in restarted.frames()]

    assert first.source == "one.png"
    assert remaining == ["two.png"]


def test_folder_corrupt_file_rejected_then_next(tmp_path, make_plant, write_image):
    folder = tmp_path / "aoi"
    folder.mkdir()
    now = time.time()
    write_image(folder / "1-good.png", seed=1, mtime_s=now - 30)
    (folder / "2-bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "3-text.jpg").write_bytes(b"hello, not a jpeg")
    (folder / "4-empty.png").write_bytes(b"")
    for index, name in enumerate(["2-bad.png", "3-text.jpg", "4-empty.png"]):
        os.utime(folder / name, (now - 20 + index, now - 20 + index))
    write_image(folder / "5-good.png", seed=2, mtime_s=now - 10)

    outcomes = []
    with create_source(folder_camera(make_plant, folder), state_dir=tmp_path / "state") as source:
        while True:
            try:
                frame = source.read()
            except FrameRejectedError as exc:
                outcomes.append(("rejected", exc.source, exc.reason, exc.payload, exc.frame_id))
                continue
            if frame is None:
                break
            outcomes.append(("frame", frame.source))

    assert [outcome[:2] for outcome in outcomes] == [
        ("frame", "1-good.png"),
        ("rejected", "2-bad.png"),
        ("rejected", "3-text.jpg"),
        ("rejected", "4-empty.png"),
        ("frame", "5-good.png"),
    ]
    assert "could not be decoded" in outcomes[1][2]
    assert outcomes[1][3] == (folder / "2-bad.png").read_bytes()
    assert outcomes[1][4].startswith("2-bad.png@")
    assert "is not a JPEG, PNG, BMP or TIFF image" in outcomes[2][2]
    assert "is empty" in outcomes[3][2]


def test_folder_waits_for_new_file_to_settle(tmp_path, make_plant, write_image):
    folder = tmp_path / "aoi"
    folder.mkdir()
    write_image(folder / "old.png", seed=1, mtime_s=time.time() - 5)
    camera = folder_camera(make_plant, folder, watch=True, poll_interval_ms=20, settle_ms=300)
    stop = threading.Event()
    source = create_source(camera, stop=stop, state_dir=tmp_path / "state")
    source.open()
    assert source.read().source == "old.png"

    payload = write_image(folder / "new.png", seed=2)
    written_at = time.monotonic()
    frame = source.read()
    waited_s = time.monotonic() - written_at
    assert frame.source == "new.png"
    assert frame.payload == payload
    assert waited_s >= 0.25

    threading.Timer(0.2, stop.set).start()
    assert source.read() is None
    source.close()


def test_folder_watch_false_ignores_later_files(tmp_path, make_plant, write_image):
    folder = tmp_path / "aoi"
    folder.mkdir()
    write_image(folder / "first.png", seed=1, mtime_s=time.time() - 5)
    with create_source(folder_camera(make_plant, folder), state_dir=tmp_path / "state") as source:
        assert source.read().source == "first.png"
        write_image(folder / "later.png", seed=2, mtime_s=time.time() - 5)
        assert source.read() is None


def test_folder_missing_folder_raises(tmp_path, make_plant):
    source = create_source(
        folder_camera(make_plant, tmp_path / "nowhere"), state_dir=tmp_path / "s"
    )
    with pytest.raises(CameraOpenError, match="nowhere.*does not exist"):
        source.open()
