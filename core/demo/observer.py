"""Watch the contract topics from given offsets and collect what a demo run produced."""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from defectline.config.models import KafkaConfig
from defectline.connectors.kafka_admin import client_settings
from defectline.errors import DefectlineError
from defectline.schemas import topics
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.frames import FrameMeta
from defectline.schemas.plc_writes import PlcWriteResult
from defectline.schemas.verdicts import Verdict

logger = logging.getLogger(__name__)

FrameKey = tuple[str, str]


@dataclass
class Observed:
    """Messages seen on each topic since the observer's start offsets, keyed by (camera, frame)."""

    frames: dict[FrameKey, FrameMeta] = field(default_factory=dict)
    verdicts: dict[FrameKey, Verdict] = field(default_factory=dict)
    verdict_counts: Counter[FrameKey] = field(default_factory=Counter)
    plc_writes: dict[FrameKey, list[PlcWriteResult]] = field(
        default_factory=lambda: defaultdict(list)
    )
    dead_letters: list[DeadLetter] = field(default_factory=list)
    unreadable: int = 0


class TopicObserver:
    """Reads frames, verdicts, PLC writes and dead letters in a background thread.

    The start offsets are the end offsets at construction, so only messages produced
    afterwards are counted; the consumer uses no group and commits nothing.
    """

    def __init__(self, kafka: KafkaConfig) -> None:
        prefix = kafka.topic_prefix
        self._names = {
            base: topics.topic_name(base, prefix)
            for base in (topics.FRAMES, topics.VERDICTS, topics.PLC_WRITES, topics.DEAD_LETTER)
        }
        settings = client_settings(kafka) | {
            "group.id": "defectline-demo-observer",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        self._consumer = Consumer(settings)
        self._consumer.assign(self._end_offsets())
        self._lock = threading.Lock()
        self._observed = Observed()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="demo-observer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()

    def snapshot(self) -> Observed:
        with self._lock:
            observed = self._observed
            return Observed(
                frames=dict(observed.frames),
                verdicts=dict(observed.verdicts),
                verdict_counts=Counter(observed.verdict_counts),
                plc_writes=defaultdict(list, {k: list(v) for k, v in observed.plc_writes.items()}),
                dead_letters=list(observed.dead_letters),
                unreadable=observed.unreadable,
            )

    def _end_offsets(self) -> list[TopicPartition]:
        assignment = []
        metadata = self._consumer.list_topics(timeout=15)
        for name in self._names.values():
            topic = metadata.topics.get(name)
            if topic is None:
                raise KafkaException(f"topic {name} does not exist")
            for partition in topic.partitions:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=15
                )
                assignment.append(TopicPartition(name, partition, high))
        return assignment

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                logger.warning("observer poll error=%s", message.error())
                continue
            try:
                self._record(message.topic(), message.headers() or [], message.value() or b"")
            except (ValidationError, ValueError, DefectlineError) as exc:
                with self._lock:
                    self._observed.unreadable += 1
                logger.warning(
                    "unreadable message topic=%s offset=%d error=%s",
                    message.topic(),
                    message.offset(),
                    exc,
                )

    def _record(self, topic: str, headers: list, value: bytes) -> None:
        observed = self._observed
        if topic == self._names[topics.FRAMES]:
            meta = FrameMeta.from_headers(headers)
            with self._lock:
                observed.frames[(meta.camera_id, meta.frame_id)] = meta
        elif topic == self._names[topics.VERDICTS]:
            verdict = Verdict.from_json(value)
            with self._lock:
                observed.verdicts[verdict.key] = verdict
                observed.verdict_counts[verdict.key] += 1
        elif topic == self._names[topics.PLC_WRITES]:
            result = PlcWriteResult.from_json(value)
            with self._lock:
                observed.plc_writes[(result.camera_id, result.frame_id)].append(result)
        else:
            letter = DeadLetter.from_json(value)
            with self._lock:
                observed.dead_letters.append(letter)
