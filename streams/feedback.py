"""Operator feedback: publish reports to the feedback topic, accept them over HTTP, store them.

A report reaches the database one way: the CLI or the worker's POST /feedback page sends it to
the feedback topic, and the worker's `record-feedback` agent stores it. The topic is the record,
so a database outage delays the rows but loses none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import faust
from confluent_kafka import KafkaException, Producer
from faust.web import View
from pydantic import ValidationError

from defectline.config.models import PlantConfig
from defectline.connectors.kafka_admin import KafkaUnavailableError, client_settings
from defectline.connectors.store.errors import StoreError
from defectline.errors import DefectlineError
from defectline.schemas import topics
from defectline.schemas.feedback import Feedback
from defectline.streams.batching import processed_batches
from defectline.streams.dead_letters import build_dead_letter, send_dead_letter

if TYPE_CHECKING:
    from defectline.connectors.store.postgres import PostgresStore
    from defectline.streams.worker import Worker

logger = logging.getLogger(__name__)

FEEDBACK_PATH = "/feedback"
RECORD_BATCH_WAIT_S = 0.2
MAX_BODY_BYTES = 16_384


class FeedbackRejectedError(DefectlineError):
    """A feedback report names a camera the plant does not have, or is otherwise invalid."""


def check_feedback(config: PlantConfig, feedback: Feedback) -> None:
    """Raise `FeedbackRejectedError` when the report names a camera or class the plant lacks."""
    known = sorted(camera.id for camera in config.cameras)
    if feedback.camera_id is not None and known and feedback.camera_id not in known:
        raise FeedbackRejectedError(
            f"camera '{feedback.camera_id}' is not in the plant configuration; use one of {known}"
        )
    classes = list(config.model.class_names)
    if feedback.class_name is not None and classes and feedback.class_name not in classes:
        raise FeedbackRejectedError(
            f"class '{feedback.class_name}' is not a class of model "
            f"'{config.model.name or config.model.path}'; use one of {classes}"
        )


def publish_feedback(config: PlantConfig, feedback: Feedback, timeout_s: float = 15.0) -> None:
    """Send one report to the feedback topic and wait until the broker acknowledged it."""
    check_feedback(config, feedback)
    topic = topics.topic_name(topics.FEEDBACK, config.kafka.topic_prefix)
    settings = client_settings(config.kafka) | {"acks": "all", "enable.idempotence": True}
    producer = Producer(settings)
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    key = (feedback.camera_id or feedback.part_id or "").encode()
    try:
        producer.produce(topic, key=key, value=feedback.to_json(), on_delivery=on_delivery)
    except (KafkaException, BufferError) as exc:
        raise KafkaUnavailableError(f"cannot send feedback to topic {topic}: {exc}") from exc
    remaining = producer.flush(timeout_s)
    if remaining or failures:
        reason = failures[0] if failures else f"not acknowledged within {timeout_s:.0f} s"
        raise KafkaUnavailableError(
            f"feedback {feedback.feedback_id} was not stored on topic {topic} at "
            f"{config.kafka.bootstrap_servers}: {reason}; check that the broker runs and retry"
        )
    logger.info(
        "feedback sent id=%s label=%s camera=%s frame=%s part=%s",
        feedback.feedback_id,
        feedback.label,
        feedback.camera_id,
        feedback.frame_id,
        feedback.part_id,
    )


_FEEDBACK_KEYS = {
    name
    for field_name, field in Feedback.model_fields.items()
    for name in (field_name, field.alias)
    if name is not None and not name.endswith("_")
}


def parse_feedback_body(body: bytes) -> Feedback:
    """Validate a POST body as a report sent over HTTP, raising `FeedbackRejectedError`."""
    if len(body) > MAX_BODY_BYTES:
        raise FeedbackRejectedError(
            f"request body has {len(body)} bytes, more than the {MAX_BODY_BYTES} allowed"
        )
    try:
        document = json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        raise FeedbackRejectedError(f"request body is not JSON: {exc}") from exc
    if document is None:
        raise FeedbackRejectedError("request body is empty; send a JSON object")
    if not isinstance(document, dict):
        raise FeedbackRejectedError("request body must be a JSON object")
    # Reports come from people and scripts, not newer producers, so an unknown key is a typo.
    unknown = sorted(set(document) - _FEEDBACK_KEYS)
    if unknown:
        raise FeedbackRejectedError(
            f"unknown key(s) {unknown} in the request body; allowed: {sorted(_FEEDBACK_KEYS)}"
        )

    document.setdefault("source", "http")
    try:
        return Feedback.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise FeedbackRejectedError(f"invalid feedback: {problems}") from exc


def attach_feedback(worker: Worker, store: PostgresStore) -> faust.TopicT:
    """Add the feedback topic, the `record-feedback` agent and the POST /feedback page."""
    app = worker.app
    topic = app.topic(
        topics.topic_name(topics.FEEDBACK, worker.config.kafka.topic_prefix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(topic, name="record-feedback")
    async def record_feedback(stream: faust.StreamT) -> None:
        async for events in processed_batches(
            stream, worker.config.database.batch_size, RECORD_BATCH_WAIT_S
        ):
            await _record_batch(worker, store, events)

    @app.page(FEEDBACK_PATH)
    class FeedbackPage(View):
        async def post(self, request: Any) -> Any:
            body = await self.read_request_content(request)
            try:
                feedback = parse_feedback_body(body)
                check_feedback(worker.config, feedback)
            except FeedbackRejectedError as exc:
                return self.json({"error": str(exc)}, status=400)

            key = (feedback.camera_id or feedback.part_id or "").encode()
            await topic.send(key=key, value=feedback.to_json())
            logger.info(
                "feedback accepted id=%s label=%s source=http", feedback.feedback_id, feedback.label
            )
            accepted = {"feedback_id": feedback.feedback_id, "status": "accepted"}
            return self.json(accepted, status=202)

    return topic


async def _record_batch(
    worker: Worker, store: PostgresStore, events: Sequence[faust.types.EventT]
) -> None:
    reports = []
    for event in events:
        try:
            reports.append(Feedback.from_json(event.message.value))
        except ValidationError as exc:
            await send_dead_letter(
                worker.topics.dead_letters, build_dead_letter(event, "recorder", exc)
            )

    try:
        await worker.recorder.store("operator_feedback", reports, store.write_feedback)
    except StoreError as exc:
        logger.error("feedback rejected by the database rows=%d error=%s", len(reports), exc)
        for event in events:
            await send_dead_letter(
                worker.topics.dead_letters, build_dead_letter(event, "recorder", exc)
            )
