"""Fixtures that run the real worker process against the session's Kafka and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from defectline.config import PlantConfig, load_config
from defectline.connectors.kafka_admin import ensure_topics
from defectline.demo.processes import SimulatorThread, WorkerProcess
from defectline.deploy.local.ports import free_port
from defectline.deploy.local.postgres import PostgresCluster
from defectline.schemas import topics

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"


def line_config(
    kafka_bootstrap: str,
    postgres: PostgresCluster,
    tmp_path: Path,
    overrides: dict[str, Any] | None = None,
) -> PlantConfig:
    """The embedded demo plant on the session services, with its own topics, database and ports."""
    run_id = uuid.uuid4().hex[:8]
    dbname = f"line_{run_id}"
    postgres.ensure_database(dbname)
    base = load_config(environ={})
    plcs = []
    for plc in base.model_dump(mode="json")["plcs"]:
        if plc["type"] == "modbus":
            plc["port"] = free_port()
        else:
            plc["endpoint"] = f"opc.tcp://127.0.0.1:{free_port()}/defectline/"
        plcs.append(plc)
    document: dict[str, Any] = {
        "kafka": {"bootstrap_servers": kafka_bootstrap, "topic_prefix": f"t{run_id}.",
                  "topic_partitions": 2},
        "database": {"host": postgres.host, "port": postgres.port, "dbname": dbname},
        "plcs": plcs,
        "worker": {"app_id": f"worker-{run_id}", "web_port": free_port(),
                   "data_dir": str(tmp_path / "worker")},
    }
    for key, value in (overrides or {}).items():
        document[key] = value
    return load_config(environ={}, overrides=document)


class RunningLine:
    """A worker process and PLC simulators serving one configuration."""

    def __init__(self, config: PlantConfig, tmp_path: Path) -> None:
        self.config = config
        self.tmp_path = tmp_path
        config_path = tmp_path / "plant.yaml"
        config_path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        self.worker = WorkerProcess(config_path, tmp_path / "worker.log", config.worker.web_port)
        self.simulators = SimulatorThread(config)

    def start(self) -> None:
        from defectline.connectors.store.postgres import migrate_sync

        migrate_sync(self.config.database)
        ensure_topics(self.config.kafka)
        self.simulators.start()
        self.worker.start(ready_timeout_s=120)

    def stop(self) -> None:
        self.worker.stop()
        self.simulators.stop()

    def topic(self, base: str) -> str:
        return topics.topic_name(base, self.config.kafka.topic_prefix)


@pytest.fixture
def start_line(
    kafka_bootstrap: str, postgres_cluster: PostgresCluster, tmp_path: Path
) -> Iterator[Callable[..., RunningLine]]:
    """Start a line with optional config section overrides; stopped after the test."""
    lines: list[RunningLine] = []

    def start(overrides: dict[str, Any] | None = None) -> RunningLine:
        config = line_config(kafka_bootstrap, postgres_cluster, tmp_path, overrides)
        line = RunningLine(config, tmp_path)
        lines.append(line)
        line.start()
        return line

    yield start
    for line in lines:
        line.stop()


@pytest.fixture
def consume(kafka_bootstrap: str) -> Callable[..., list[Any]]:
    """Return a function reading a topic from the beginning until a condition holds."""

    def read(topic: str, until: Callable[[list[Any]], bool], timeout_s: float = 60.0) -> list[Any]:
        return _consume_all(kafka_bootstrap, topic, until, timeout_s)

    return read


@pytest.fixture
def shared_dir() -> Path:
    """The material beside the checkout: real photographs and a user-style model."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing; the real-input tests need ../shared beside the checkout")
    return SHARED


def _consume_all(
    bootstrap: str, topic: str, until: Callable[[list[Any]], bool], timeout_s: float
) -> list[Any]:
    """Read `topic` from the beginning until `until(messages)` is true or the timeout passes."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    consumer.assign([TopicPartition(topic, partition, 0) for partition in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(messages):
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                messages.append(message)
    finally:
        consumer.close()
    return messages
