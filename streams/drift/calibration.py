"""Rebuilding a camera's reference profile: from a calibration run, or by relearning live.

A calibration run reads frames from the camera's configured source, inspects them with the
configured model in this process and builds the profile from them. Either way the result goes
to the compacted references topic, keyed by camera id, where the worker picks it up.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, KafkaException, Producer

from defectline.config.models import PlantConfig
from defectline.connectors.cameras.base import create_source
from defectline.connectors.kafka_admin import KafkaUnavailableError, client_settings
from defectline.errors import DefectlineError
from defectline.schemas import topics
from defectline.schemas.drift import ReferenceProfile, ReferenceUpdate
from defectline.schemas.frames import FrameMeta
from defectline.schemas.verdicts import Verdict
from defectline.streams.drift.observation import observation_from_verdict
from defectline.streams.drift.profile import ProfileBuilder

if TYPE_CHECKING:
    from defectline.streams.inference.inspector import Inspector

logger = logging.getLogger(__name__)

CALIBRATION_SOURCE = "calibration"
BATCH_SIZE = 16


class CalibrationError(DefectlineError):
    """A calibration run could not produce a reference profile."""


def calibrate(config: PlantConfig, camera_id: str, frames: int, version: int) -> ReferenceProfile:
    """Inspect `frames` frames of the camera's source and build reference profile `version`."""
    from defectline.streams.inference.inspector import Inspector

    try:
        camera = config.camera(camera_id)
    except KeyError as exc:
        known = [camera.id for camera in config.cameras]
        raise CalibrationError(
            f"camera '{camera_id}' is not in the configuration; choose one of {known}"
        ) from exc

    inspector = Inspector(config)
    builder = ProfileBuilder()
    batch: list[tuple[FrameMeta, bytes]] = []
    failures = 0
    with create_source(camera) as source:
        for index, frame in enumerate(source.frames()):
            if index >= frames:
                break
            meta = FrameMeta(
                camera_id=camera.id, station_id=camera.station,
                frame_id=frame.frame_id or f"calibration-{index}", sequence=index,
                captured_at=frame.captured_at, encoding=frame.encoding,
                width_px=frame.width_px, height_px=frame.height_px,
            )  # fmt: skip
            batch.append((meta, frame.payload))
            if len(batch) == BATCH_SIZE:
                failures += _inspect(inspector, batch, builder, config)
    failures += _inspect(inspector, batch, builder, config)
    inspector.close()

    if builder.frames == 0:
        raise CalibrationError(
            f"camera '{camera_id}' gave no frame that could be inspected ({failures} failed); "
            "check the camera source and the model"
        )
    if builder.frames < frames:
        logger.warning(
            "calibration ended early camera=%s frames=%d requested=%d failed=%d",
            camera_id, builder.frames, frames, failures,
        )  # fmt: skip
    return builder.build(camera_id, version, CALIBRATION_SOURCE, config.drift.uncertain_below)


def _inspect(
    inspector: Inspector,
    batch: list[tuple[FrameMeta, bytes]],
    builder: ProfileBuilder,
    config: PlantConfig,
) -> int:
    failures = 0
    for result in inspector.inspect_batch(batch):
        if isinstance(result, Verdict):
            builder.add(observation_from_verdict(result), config.drift.uncertain_below)
        else:
            failures += 1
            logger.warning("calibration frame failed frame=%s error=%s",
                           result.meta.frame_id, result.error)  # fmt: skip
    batch.clear()
    return failures


def publish_reference(
    config: PlantConfig, camera_id: str, profile: ReferenceProfile | None, timeout_s: float = 15.0
) -> None:
    """Send a reference profile, or a request to relearn if None, to the references topic."""
    topic = topics.topic_name(topics.DRIFT_REFERENCES, config.kafka.topic_prefix)
    update = ReferenceUpdate(camera_id=camera_id, profile=profile, requested_at=datetime.now(UTC))
    settings = dict(client_settings(config.kafka))
    # murmur2 is the partitioner of the worker's producer, so the update lands on the partition
    # of this camera's verdicts and reaches the worker that owns the camera's drift state.
    settings.update({"partitioner": "murmur2_random", "acks": "all"})
    producer = Producer(settings)
    errors: list[str] = []

    def report(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            errors.append(str(error))

    try:
        producer.produce(topic, key=camera_id.encode(), value=update.to_json(), on_delivery=report)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"cannot send the reference to topic {topic}: {exc}") from exc
    remaining = producer.flush(timeout_s)
    if remaining or errors:
        raise KafkaUnavailableError(
            f"the reference of camera '{camera_id}' was not stored on topic {topic} within "
            f"{timeout_s:.0f} s ({errors or 'no acknowledgement'}); check that Kafka runs"
        )
    logger.info("drift reference sent camera=%s topic=%s version=%s", camera_id, topic,
                profile.version if profile else "relearn")  # fmt: skip


def latest_reference_version(config: PlantConfig, camera_id: str, timeout_s: float = 15.0) -> int:
    """Read the references topic to its end; return the camera's highest profile version, or 0."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = topics.topic_name(topics.DRIFT_REFERENCES, config.kafka.topic_prefix)
    settings = dict(client_settings(config.kafka))
    settings.update({"group.id": "defectline-drift-cli", "enable.auto.commit": False})
    consumer = Consumer(settings)
    latest = 0
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        for partition in partitions:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            if high <= 0:
                continue
            consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
            while True:
                message = consumer.poll(timeout_s)
                if message is None:
                    raise KafkaUnavailableError(
                        f"reading topic {topic}[{partition}] timed out after {timeout_s:.0f} s"
                    )
                if message.error() is not None:
                    raise KafkaUnavailableError(f"reading topic {topic}: {message.error()}")
                if message.key() == camera_id.encode():
                    update = ReferenceUpdate.from_json(message.value())
                    if update.profile is not None:
                        latest = max(latest, update.profile.version)
                if message.offset() >= high - 1:
                    break
    except KafkaException as exc:
        raise KafkaUnavailableError(f"cannot read topic {topic}: {exc}") from exc
    finally:
        consumer.close()
    return latest
