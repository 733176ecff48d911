"""The local stack against a real broker and cluster, and its messages when programs are missing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from defectline.deploy.local.errors import JarFetchError, ToolMissingError
from defectline.deploy.local.kafka import KafkaBroker, fetch_kafka_jars
from defectline.deploy.local.paths import cache_dir
from defectline.deploy.local.ports import LOOPBACK, free_port
from defectline.deploy.local.postgres import (
    PostgresCluster,
    find_postgres_bin,
    remove_orphaned_clusters,
)
from defectline.deploy.local.process import is_alive
from defectline.deploy.local.stack import LocalStack, StackPorts, main


def _broker_ids(bootstrap: str) -> list[int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return sorted(metadata.brokers)


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_stack_lifecycle(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind((LOOPBACK, 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    postgres_port = free_port()
    stack = LocalStack(tmp_path, cache_dir=cache_dir(),
                       preferred_ports=StackPorts(busy_port, free_port(), postgres_port))
    try:
        # First start: the preferred Kafka port is held by another socket, so a free one is used.
        info = stack.start()
        busy.close()
        kafka_port = int(info.kafka_bootstrap.rsplit(":", 1)[1])
        assert kafka_port != busy_port
        assert info.postgres_port == postgres_port
        assert json.loads((tmp_path / "stack" / "state.json").read_text())["kafka"] == kafka_port
        assert info.kafka_running
        assert info.postgres_running
        assert _broker_ids(info.kafka_bootstrap) == [1]
        with psycopg.connect(info.conninfo) as conn:
            row = conn.execute("SELECT current_user, current_database()").fetchone()
            conn.execute("CREATE TABLE kept (id int)")
        assert row == ("defectline", "defectline")
        assert info.kafka_log == tmp_path / "stack" / "logs" / "kafka.log"
        assert info.kafka_log.stat().st_size > 0
        assert info.postgres_log.stat().st_size > 0

        # Second start and a fresh object: the same processes, found again through the state.
        again = stack.start()
        assert again.kafka_pid == info.kafka_pid
        assert again.postgres_pid == info.postgres_pid
        seen = LocalStack(tmp_path, cache_dir=cache_dir()).status()
        assert seen is not None
        assert seen.kafka_bootstrap == info.kafka_bootstrap
        assert seen.postgres_pid == info.postgres_pid
        assert "running pid=" in seen.describe()

        stack.stop()
        assert stack.status() is None
        assert not is_alive(info.kafka_pid)
        assert not is_alive(info.postgres_pid)

        # Restart after stop keeps the ports and the data.
        restarted = stack.start()
        assert restarted.kafka_bootstrap == info.kafka_bootstrap
        assert restarted.kafka_pid != info.kafka_pid
        with psycopg.connect(restarted.conninfo) as conn:
            assert conn.execute("SELECT to_regclass('kept')::text").fetchone() == ("kept",)
    finally:
        busy.close()
        stack.remove()
    assert not (tmp_path / "stack" / "state.json").exists()
    assert not restarted.postgres_data_dir.exists()


def test_stack_cli_status_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["status", "--home", str(tmp_path)])
    assert code == 3
    assert "not running" in capsys.readouterr().out


def test_kafka_without_java_names_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    broker = KafkaBroker(tmp_path / "kafka", tmp_path / "kafka.log", free_port(), free_port(),
                         cache_dir=tmp_path / "cache")
    with pytest.raises(ToolMissingError) as excinfo:
        broker.start()
    assert "`java` not found on PATH" in str(excinfo.value)
    assert "apt-get install default-jdk-headless" in str(excinfo.value)


def test_jar_fetch_without_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = Path(os.path.realpath(_require_program("java")))
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ToolMissingError) as excinfo:
        fetch_kafka_jars(tmp_path / "cache")
    assert "`mvn` not found on PATH" in str(excinfo.value)
    assert "apt-get install maven" in str(excinfo.value)


def test_jar_fetch_maven_failure_shows_output(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # A local repository below a regular file cannot be created, so Maven itself fails.
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("MAVEN_OPTS", f"-Dmaven.repo.local={tmp_path / 'not-a-dir' / 'repo'}")
    with pytest.raises(JarFetchError) as excinfo:
        fetch_kafka_jars(tmp_path / "cache")
    message = str(excinfo.value)
    assert "Maven failed to fetch the Kafka 4.1.1 jars" in message
    assert "Last lines of its output" in message
    assert "[ERROR]" in message
    assert not (tmp_path / "cache" / "kafka-4.1.1" / "libs").exists()


def test_postgres_bin_missing_names_package(tmp_path: Path) -> None:
    with pytest.raises(ToolMissingError) as excinfo:
        find_postgres_bin(path_env="", lib_root=tmp_path)
    assert "initdb and pg_ctl not found" in str(excinfo.value)
    assert "apt-get install postgresql" in str(excinfo.value)


def test_postgres_bin_prefers_newest_version(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for program in ("initdb", "pg_ctl"):
            (bin_dir / program).write_text("#!/bin/sh\n")
            (bin_dir / program).chmod(stat.S_IRWXU)
    assert find_postgres_bin(path_env="", lib_root=tmp_path) == tmp_path / "16" / "bin"


def _require_program(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is required for this test; install default-jdk-headless")
    return path


@pytest.mark.postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="clusters are relocated to /var/tmp only for root")
def test_orphaned_cluster_removed(tmp_path: Path) -> None:
    requested = tmp_path / "gone" / "data"
    cluster = PostgresCluster(requested, free_port(), tmp_path / "postgres.log")
    cluster.start()
    pid = cluster.pid
    try:
        shutil.rmtree(tmp_path / "gone")
        removed = remove_orphaned_clusters()
        assert cluster.data_dir.parent in removed
        assert not cluster.data_dir.parent.exists()
        assert not is_alive(pid)
    finally:
        cluster.remove()
