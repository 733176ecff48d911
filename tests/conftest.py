"""Session fixtures shared by every test: a real Kafka broker and a real PostgreSQL cluster.

Both run on 127.0.0.1 with free ports in the session's temporary folder and start only when a
test requests them. The Kafka jars come from the cache under $DEFECTLINE_HOME (Maven downloads
them on first use).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from defectline.deploy.local.kafka import KafkaBroker
from defectline.deploy.local.ports import free_port
from defectline.deploy.local.postgres import PostgresCluster, remove_orphaned_clusters

logger = logging.getLogger(__name__)

_KAFKA_FIXTURES = {"kafka_bootstrap", "kafka_broker"}
_POSTGRES_FIXTURES = {"postgres_cluster", "database_conninfo"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the services their fixtures start, so `-m "not kafka"` skips the broker."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _KAFKA_FIXTURES:
            item.add_marker(pytest.mark.kafka)
        if names & _POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A running single-node KRaft broker, stopped at the end of the session."""
    data_dir = tmp_path_factory.mktemp("kafka")
    broker = KafkaBroker(data_dir, data_dir / "kafka.log", port=free_port(),
                         controller_port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """Bootstrap servers of the session broker, as "127.0.0.1:PORT"."""
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A running PostgreSQL cluster with role and database `defectline`, removed at the end."""
    remove_orphaned_clusters()
    data_dir = tmp_path_factory.mktemp("postgres")
    cluster = PostgresCluster(data_dir / "data", port=free_port(),
                              log_path=data_dir / "postgres.log")
    cluster.start()
    yield cluster
    cluster.remove()


@pytest.fixture
def database_conninfo(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A new empty database owned by `defectline` for one test. Yields its conninfo string."""
    dbname = f"test_{uuid.uuid4().hex[:12]}"
    conninfo = postgres_cluster.ensure_database(dbname)
    yield conninfo
    postgres_cluster.drop_database(dbname)
