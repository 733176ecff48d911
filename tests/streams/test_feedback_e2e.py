"""Operator feedback and database outages through the real worker process.

The module starts its own PostgreSQL cluster, because the outage test stops the server for 30 s
and the session cluster serves other tests.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from confluent_kafka import Producer

from defectline.cli.main import main
from defectline.deploy.local.ports import free_port
from defectline.deploy.local.postgres import PostgresCluster
from defectline.schemas import topics
from defectline.schemas.verdicts import ModelRef, Outcome, StageTimings, Verdict

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(280)]

OUTAGE_S = 30


@pytest.fixture(scope="module")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A cluster of this module only, which the outage test may stop and start."""
    data_dir = tmp_path_factory.mktemp("postgres-outage")
    cluster = PostgresCluster(data_dir / "data", port=free_port(), log_path=data_dir / "pg.log")
    cluster.start()
    yield cluster
    cluster.remove()


def make_verdict(index: int, camera_id: str = "cam-1", station_id: str = "station-1") -> Verdict:
    captured_at = datetime.now(UTC) - timedelta(seconds=1)
    reject = index % 4 == 0
    return Verdict(
        plant="demo-plant",
        station_id=station_id,
        camera_id=camera_id,
        frame_id=f"fb-{index:05d}",
        sequence=index,
        part_id=f"part-{index}",
        captured_at=captured_at,
        decided_at=captured_at + timedelta(milliseconds=30),
        outcome=Outcome.REJECT if reject else Outcome.PASS,
        class_name="scratch" if reject else "ok",
        class_code=1 if reject else 0,
        confidence=0.9,
        scores={"ok": 0.1, "scratch": 0.9} if reject else {"ok": 0.9, "scratch": 0.1},
        model=ModelRef(name="surface-demo", version="1"),
        timings=StageTimings(decode_ms=1, preprocess_ms=1, inference_ms=4),
    )


def send_verdicts(line, verdicts: list[Verdict]) -> None:
    producer = Producer({"bootstrap.servers": line.config.kafka.bootstrap_servers})
    topic = line.topic(topics.VERDICTS)
    for verdict in verdicts:
        producer.produce(topic, key=verdict.camera_id.encode(), value=verdict.to_json())
    assert producer.flush(15) == 0


def count_rows(line, query: str) -> int:
    database = line.config.database
    conninfo = f"host={database.host} port={database.port} dbname={database.dbname} user=defectline"
    try:
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            return int(conn.execute(query).fetchone()[0])
    except psycopg.OperationalError:
        return -1


def wait_for_rows(line, query: str, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        count = count_rows(line, query)
        if count >= expected:
            return count
        time.sleep(0.5)
    return count


def post_feedback(line, body: dict) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{line.config.worker.web_port}/feedback"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_feedback_over_http_and_cli_stored(start_line, tmp_path: Path) -> None:
    line = start_line()
    send_verdicts(line, [make_verdict(index) for index in range(8)])
    assert wait_for_rows(line, "SELECT count(*) FROM inspections", 8, 60) == 8

    status, body = post_feedback(
        line, {"label": "false-reject", "camera_id": "cam-1", "frame_id": "fb-00004"}
    )
    assert status == 202
    assert body["status"] == "accepted"
    unknown, error = post_feedback(line, {"label": "escape", "camera_id": "cam-9", "frame_id": "x"})
    assert unknown == 400
    assert "camera 'cam-9' is not in the plant configuration" in error["error"]
    missing, error = post_feedback(line, {"label": "escape"})
    assert missing == 400
    assert "give camera_id and frame_id, or part_id" in error["error"]

    config_path = tmp_path / "plant.yaml"
    config_path.write_text(yaml.safe_dump(line.config.model_dump(mode="json"), sort_keys=False))
    code = main(
        [
            "--config",
            str(config_path),
            "feedback",
            "--part",
            "part-3",
            "--label",
            "escape",
            "--class",
            "pit",
            "--note",
            "found at packing",
        ]
    )
    assert code == 0

    assert wait_for_rows(line, "SELECT count(*) FROM operator_feedback", 2, 60) == 2
    assert (
        count_rows(
            line,
            "SELECT count(*) FROM feedback_inspections WHERE label = 'false-reject'"
            " AND frame_id = 'fb-00004' AND outcome = 'reject'",
        )
        == 1
    )
    assert (
        count_rows(
            line,
            "SELECT count(*) FROM feedback_inspections WHERE label = 'escape'"
            " AND class_name = 'pit' AND frame_id = 'fb-00003' AND outcome = 'pass'",
        )
        == 1
    )
    # The worker records the model it runs, once per station.
    assert count_rows(line, "SELECT count(*) FROM model_deployments") == 2


def test_database_outage_loses_no_row(start_line, postgres_cluster: PostgresCluster) -> None:
    line = start_line()
    send_verdicts(line, [make_verdict(index) for index in range(100)])
    assert wait_for_rows(line, "SELECT count(*) FROM inspections", 100, 60) == 100

    postgres_cluster.stop()
    try:
        send_verdicts(line, [make_verdict(index) for index in range(100, 250)])
        status, _body = post_feedback(
            line, {"label": "false-reject", "camera_id": "cam-1", "frame_id": "fb-00120"}
        )
        assert status == 202
        time.sleep(OUTAGE_S)
    finally:
        postgres_cluster.start()

    assert wait_for_rows(line, "SELECT count(*) FROM inspections", 250, 120) == 250
    assert count_rows(line, "SELECT count(DISTINCT frame_id) FROM inspections") == 250
    assert wait_for_rows(line, "SELECT count(*) FROM operator_feedback", 1, 60) == 1
    # The recorders share one connection and lock, so while one batch is retried the others
    # wait: consumption pauses instead of dropping batches.
    log = (line.tmp_path / "worker.log").read_text(errors="replace")
    assert log.count("database write failed table=") >= 2
