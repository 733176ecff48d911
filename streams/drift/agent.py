"""Faust wiring of drift detection: verdicts in, drift events out, state in a changelog table.

The state of each camera lives in the `drift-state` table, keyed by the camera id as raw bytes
like the verdicts, so a restarted worker recovers it from the changelog topic and resumes an
open episode instead of alerting again. Reference profiles arrive on the compacted references
topic, from the worker itself when it learns one and from `defectline drift rebuild-reference`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust
from pydantic import ValidationError

from defectline.schemas import topics
from defectline.schemas.drift import ReferenceUpdate
from defectline.schemas.verdicts import Verdict
from defectline.streams.drift.detector import DriftDetector
from defectline.streams.drift.observation import observation_from_verdict
from defectline.streams.drift.state import CameraState

if TYPE_CHECKING:
    from defectline.streams.worker import Worker

logger = logging.getLogger(__name__)

RECORD_BATCH_SIZE = 100
RECORD_BATCH_WAIT_S = 0.5

_RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def attach_drift(worker: Worker) -> None:
    """Add the drift, reference and drift-recording agents to the worker's app."""
    config = worker.config
    if not config.drift.enabled:
        logger.info("drift detection disabled")
        return

    app = worker.app
    prefix = config.kafka.topic_prefix
    drift_topic = app.topic(topics.topic_name(topics.DRIFT, prefix), **_RAW)
    references_topic = app.topic(topics.topic_name(topics.DRIFT_REFERENCES, prefix), **_RAW)
    # use_partitioner puts each camera's state on the changelog partition that the verdicts'
    # partitioner picks for the same key, whichever topic's event updated it.
    table = app.Table(
        "drift-state",
        default=dict,
        key_type=bytes,
        partitions=config.kafka.topic_partitions,
        use_partitioner=True,
    )
    detector = DriftDetector(config.drift)

    @app.agent(worker.topics.verdicts, name="drift")
    async def drift(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                verdict = Verdict.from_json(event.message.value)
            except ValidationError:
                # The recorder dead-letters malformed verdicts; drift detection skips them.
                continue
            key = verdict.camera_id.encode()
            state = CameraState.from_dict(table[key])
            update = detector.observe(state, observation_from_verdict(verdict))
            table[key] = state.to_dict()

            for drift_event in update.events:
                await drift_topic.send(key=key, value=drift_event.to_json())
            if update.learned is not None:
                message = ReferenceUpdate(
                    camera_id=verdict.camera_id,
                    profile=update.learned,
                    requested_at=datetime.now(UTC),
                )
                await references_topic.send(key=key, value=message.to_json())

    @app.agent(references_topic, name="drift-references")
    async def references(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                update = ReferenceUpdate.from_json(event.message.value)
            except ValidationError as exc:
                logger.error(
                    "malformed drift reference skipped source=%s[%d]@%d error=%s",
                    event.message.topic, event.message.partition, event.message.offset, exc,
                )  # fmt: skip
                continue
            key = update.camera_id.encode()
            state = CameraState.from_dict(table[key])
            apply_reference_update(detector, state, update)
            table[key] = state.to_dict()


def apply_reference_update(
    detector: DriftDetector, state: CameraState, update: ReferenceUpdate
) -> bool:
    """Adopt or drop a camera's reference as `update` requests; return whether the state changed.

    The worker reads back the profiles it published itself, so a profile equal to the current
    one is ignored.
    """
    profile = update.profile
    if profile is None:
        detector.relearn(state)
        logger.info("drift reference dropped, relearning from live frames camera=%s",
                    update.camera_id)  # fmt: skip
        return True

    current = state.profile()
    if current is not None and (profile.version, profile.built_at) <= (
        current.version,
        current.built_at,
    ):
        # An older or the same profile, read again after a restart or echoed back.
        return False
    detector.adopt(state, profile)
    logger.info(
        "drift reference adopted camera=%s version=%d source=%s frames=%d",
        profile.camera_id, profile.version, profile.source, profile.frames,
    )  # fmt: skip
    return True
