"""The Faust application and the topics the worker reads and writes."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import faust

from defectline.config.models import KafkaConfig, PlantConfig
from defectline.schemas import topics


@dataclass(frozen=True)
class WorkerTopics:
    frames: faust.TopicT
    verdicts: faust.TopicT
    plc_writes: faust.TopicT
    dead_letters: faust.TopicT


def create_app(config: PlantConfig) -> faust.App:
    """Build the Faust app; agents are attached by `defectline.streams.worker.build_worker`."""
    kafka = config.kafka
    worker = config.worker
    app = faust.App(
        worker.app_id,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=_credentials(kafka),
        store="memory://",
        datadir=str(worker.data_dir),
        topic_partitions=kafka.topic_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        # Offsets are committed only for events the agents have acknowledged, and agents
        # acknowledge only after their effect (a sent verdict, a PLC write, a stored row) is done.
        broker_commit_every=100,
        broker_commit_interval=1.0,
        producer_acks=-1,
        # A worker that dies is replaced after this long instead of the 60 s default, because
        # its partitions' frames wait for the group to notice.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        producer_max_request_size=kafka.max_message_bytes,
        consumer_max_fetch_size=kafka.max_message_bytes,
        web_enabled=True,
        web_host=worker.web_host,
        web_port=worker.web_port,
        web_bind=worker.web_host,
        # In-flight events are not waited for at shutdown: they are not acknowledged, so their
        # offsets stay uncommitted and the next worker processes them again.
        stream_wait_empty=False,
        logging_config=None,
    )
    return app


def declare_topics(app: faust.App, config: PlantConfig) -> WorkerTopics:
    prefix = config.kafka.topic_prefix
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    return WorkerTopics(
        frames=app.topic(topics.topic_name(topics.FRAMES, prefix), **raw),
        verdicts=app.topic(topics.topic_name(topics.VERDICTS, prefix), **raw),
        plc_writes=app.topic(topics.topic_name(topics.PLC_WRITES, prefix), **raw),
        dead_letters=app.topic(topics.topic_name(topics.DEAD_LETTER, prefix), **raw),
    )


def _credentials(kafka: KafkaConfig) -> Any:
    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if kafka.security_protocol.endswith("SSL") else None
    if kafka.sasl_mechanism is None:
        return context
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    return faust.SASLCredentials(
        username=kafka.sasl_username or "",
        password=password,
        mechanism=kafka.sasl_mechanism,
        ssl_context=context,
    )
