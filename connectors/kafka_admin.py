"""Create the topics of the message contracts with confluent-kafka's admin client."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from defectline.config.models import KafkaConfig
from defectline.errors import DefectlineError
from defectline.schemas import topics

logger = logging.getLogger(__name__)


class KafkaUnavailableError(DefectlineError):
    """The Kafka cluster did not respond or rejected an administrative request."""


def client_settings(kafka: KafkaConfig) -> dict[str, str | int]:
    """Return librdkafka settings shared by producers, consumers and the admin client."""
    settings: dict[str, str | int] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        settings["sasl.mechanism"] = kafka.sasl_mechanism
        settings["sasl.username"] = kafka.sasl_username or ""
        settings["sasl.password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        )
    return settings


def ensure_topics(kafka: KafkaConfig, timeout_s: float = 15.0) -> list[str]:
    """Create the missing contract topics with `kafka.topic_partitions` partitions; return those created."""
    admin = AdminClient(client_settings(kafka))
    names = [topics.topic_name(base, kafka.topic_prefix) for base in topics.ALL]
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"Kafka at {kafka.bootstrap_servers} did not respond within {timeout_s:.0f} s: {exc}; "
            "check kafka.bootstrap_servers and that the broker runs (defectline stack status)"
        ) from exc

    missing = [name for name in names if name not in existing]
    if not missing:
        return []
    compacted = {topics.topic_name(base, kafka.topic_prefix) for base in topics.COMPACTED}
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=kafka.topic_partitions,
                replication_factor=-1,
                config=_topic_settings(kafka, compacted=name in compacted),
            )
            for name in missing
        ],
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaUnavailableError(f"cannot create topic {name}: {exc}") from exc
        created.append(name)
        logger.info("topic created topic=%s partitions=%d", name, kafka.topic_partitions)
    return created


def _topic_settings(kafka: KafkaConfig, compacted: bool) -> dict[str, str]:
    # Frames and dead letters carry whole images: the topic must accept the producer's
    # largest message, which the broker default of about 1 MB would reject.
    settings = {"max.message.bytes": str(kafka.max_message_bytes)}
    if compacted:
        settings["cleanup.policy"] = "compact"
    return settings
