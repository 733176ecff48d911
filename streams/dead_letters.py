"""Build dead-letter records from consumed Kafka events and send them to the dead-letter topic."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import faust

from defectline.schemas.dead_letters import DeadLetter, SourceRecord
from defectline.streams.metrics import DEAD_LETTERS

logger = logging.getLogger(__name__)


def event_headers(event: faust.types.EventT) -> list[tuple[str, bytes]]:
    """Return the event's Kafka headers as (key, bytes) pairs, whatever form Faust gives them in."""
    raw: Any = event.message.headers or ()
    items: Iterable[tuple[str, Any]] = raw.items() if isinstance(raw, Mapping) else raw
    return [
        (str(key), value if isinstance(value, bytes) else str(value).encode())
        for key, value in items
        if value is not None
    ]


def build_dead_letter(
    event: faust.types.EventT,
    stage: str,
    error: BaseException,
    camera_id: str | None = None,
    frame_id: str | None = None,
) -> DeadLetter:
    message = event.message
    headers = {key: value.decode("utf-8", errors="replace") for key, value in event_headers(event)}
    return DeadLetter(
        stage=stage,
        reason=str(error),
        error_type=type(error).__name__,
        camera_id=camera_id or headers.get("camera_id"),
        frame_id=frame_id or headers.get("frame_id"),
        source=SourceRecord(
            topic=message.topic, partition=message.partition, offset=message.offset
        ),
        headers=headers,
        payload_b64=DeadLetter.encode_payload(message.value),
    )


async def send_dead_letter(topic: faust.TopicT, letter: DeadLetter) -> None:
    """Send `letter` and wait for the broker's acknowledgement, so the source offset can be committed."""
    key = (letter.camera_id or "unknown").encode()
    pending = await topic.send(key=key, value=letter.to_json())
    await pending
    DEAD_LETTERS.labels(stage=letter.stage).inc()
    source = letter.source
    logger.warning(
        "dead-lettered stage=%s camera=%s frame=%s source=%s reason=%s",
        letter.stage,
        letter.camera_id,
        letter.frame_id,
        f"{source.topic}[{source.partition}]@{source.offset}" if source else "-",
        letter.reason,
    )
