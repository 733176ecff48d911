"""Kafka producer of a camera connector: frames to the frames topic, rejects to the dead letters."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from defectline.config.models import KafkaConfig
from defectline.connectors.cameras.errors import PublishError
from defectline.connectors.kafka_admin import client_settings
from defectline.schemas import topics
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.frames import FrameMeta

logger = logging.getLogger(__name__)

LINGER_MS = 5
QUEUE_FULL_TIMEOUT_S = 30.0

OnDelivered = Callable[[], None]


def producer_settings(kafka: KafkaConfig, client_id: str) -> dict[str, str | int | bool]:
    """Return librdkafka producer settings: idempotent, acks=all, sized for whole frames."""
    settings: dict[str, str | int | bool] = dict(client_settings(kafka))
    settings.update(
        {
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": LINGER_MS,
            "message.max.bytes": kafka.max_message_bytes,
        }
    )
    return settings


class FramePublisher:
    """Sends frames keyed by camera id, with `FrameMeta` in the headers and the image as the value.

    Delivery reports arrive in `poll()` and `flush()`, on the calling thread.
    """

    def __init__(self, kafka: KafkaConfig, camera_id: str) -> None:
        self.camera_id = camera_id
        self.frames_topic = topics.topic_name(topics.FRAMES, kafka.topic_prefix)
        self.dead_letter_topic = topics.topic_name(topics.DEAD_LETTER, kafka.topic_prefix)
        self.max_message_bytes = kafka.max_message_bytes
        self.delivered = 0
        self.failed = 0
        # librdkafka's own log lines (connection failures) go to this module's logger, not stderr.
        self._producer = Producer(
            producer_settings(kafka, f"defectline-camera-{camera_id}"), logger=logger
        )
        logger.info(
            "producer created camera=%s bootstrap=%s security=%s sasl_mechanism=%s "
            "sasl_user=%s topic=%s",
            camera_id,
            kafka.bootstrap_servers,
            kafka.security_protocol,
            kafka.sasl_mechanism,
            kafka.sasl_username,
            self.frames_topic,
        )

    def publish(
        self, meta: FrameMeta, payload: bytes, on_delivered: OnDelivered | None = None
    ) -> None:
        """Queue one frame; `on_delivered` runs once the broker acknowledged it."""
        self._produce(
            self.frames_topic,
            meta.camera_id,
            payload,
            meta.to_headers(),
            self._delivery_callback(meta.camera_id, meta.frame_id, "frame", on_delivered),
        )

    def publish_dead_letter(
        self, letter: DeadLetter, on_delivered: OnDelivered | None = None
    ) -> None:
        """Queue one dead letter, keyed by its camera id like the frames."""
        key = letter.camera_id or self.camera_id
        self._produce(
            self.dead_letter_topic,
            key,
            letter.to_json(),
            [("schema", letter.schema_.encode())],
            self._delivery_callback(key, letter.frame_id, "dead letter", on_delivered),
        )

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports that have arrived."""
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float) -> None:
        """Wait until every queued message is delivered or failed; `PublishError` on timeout."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise PublishError(
                f"camera '{self.camera_id}': {remaining} message(s) still undelivered after "
                f"{timeout_s:.0f} s; "
                "check that the Kafka brokers are reachable and the topics exist"
            )

    def _produce(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]],
        callback: Callable[[KafkaError | None, Message], None],
    ) -> None:
        deadline = time.monotonic() + QUEUE_FULL_TIMEOUT_S
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key.encode(), headers=headers, on_delivery=callback
                )
                break
            except BufferError as exc:
                # The local queue is full: serve delivery reports to free it, up to a limit.
                if time.monotonic() > deadline:
                    raise PublishError(
                        f"camera '{self.camera_id}': the producer queue stayed full for "
                        f"{QUEUE_FULL_TIMEOUT_S:.0f} s; the brokers are not accepting messages"
                    ) from exc
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise PublishError(
                    f"camera '{self.camera_id}': cannot send a {len(value)}-byte message "
                    f"to {topic}: "
                    f"{exc.args[0].str() if exc.args else exc}"
                ) from exc
        self._producer.poll(0)

    def _delivery_callback(
        self, camera_id: str, frame_id: str | None, what: str, on_delivered: OnDelivered | None
    ) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self.failed += 1
                logger.error(
                    "%s delivery failed camera=%s frame=%s topic=%s error=%s",
                    what,
                    camera_id,
                    frame_id,
                    message.topic(),
                    error.str(),
                )
                return
            self.delivered += 1
            logger.debug(
                "%s delivered camera=%s frame=%s %s[%s]@%s",
                what,
                camera_id,
                frame_id,
                message.topic(),
                message.partition(),
                message.offset(),
            )
            if on_delivered is not None:
                on_delivered()

        return report
