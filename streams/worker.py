"""Assemble the worker: the Faust app with its agents, web pages and lifecycle hooks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import faust
from pydantic import ValidationError

from defectline.config.models import PlantConfig
from defectline.connectors.plc.base import PlcWriter, create_writer
from defectline.connectors.store.errors import StoreError
from defectline.connectors.store.postgres import PostgresStore
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.plc_writes import PlcWriteResult, WriteStatus
from defectline.schemas.verdicts import Verdict
from defectline.streams.app import WorkerTopics, create_app, declare_topics
from defectline.streams.dead_letters import build_dead_letter, send_dead_letter
from defectline.streams.inference.inspector import Inspector
from defectline.streams.inspection import InspectionStage
from defectline.streams.metrics import CONSUMER_LAG, READY
from defectline.streams.recorder import Recorder
from defectline.streams.routing import PlcRouter
from defectline.streams.web import register_pages

logger = logging.getLogger(__name__)

INFERENCE_BATCH_SIZE = 8
INFERENCE_BATCH_WAIT_S = 0.005
RECORD_BATCH_WAIT_S = 0.2
LAG_INTERVAL_S = 5.0


@dataclass
class Worker:
    """The parts of a running worker that tests and the web pages look at."""

    config: PlantConfig
    app: faust.App
    topics: WorkerTopics
    inspector: Inspector
    writers: dict[str, PlcWriter]
    recorder: Recorder
    executor: ThreadPoolExecutor
    state: dict[str, str] = field(default_factory=dict)


def build_worker(config: PlantConfig, inspector: Inspector | None = None) -> Worker:
    """Load the model, then build the Faust app with the inference, routing and recorder agents."""
    if inspector is None:
        inspector = Inspector(config)
    app = create_app(config)
    topics = declare_topics(app, config)
    executor = ThreadPoolExecutor(config.worker.inference_threads, thread_name_prefix="inference")
    writers = {plc.name: create_writer(plc) for plc in config.plcs}
    recorder = Recorder(PostgresStore(config.database))
    worker = Worker(config, app, topics, inspector, writers, recorder, executor)

    _attach_inference(worker)
    _attach_routing(worker)
    _attach_recording(worker)
    _attach_lifecycle(worker)
    register_pages(worker)
    return worker


def _attach_inference(worker: Worker) -> None:
    stage = InspectionStage(
        worker.inspector, worker.topics.verdicts, worker.topics.dead_letters, worker.executor
    )

    @worker.app.agent(worker.topics.frames, name="inference")
    async def inference(stream: faust.StreamT) -> None:
        async for events in stream.take_events(INFERENCE_BATCH_SIZE, within=INFERENCE_BATCH_WAIT_S):
            await stage.handle(events)


def _attach_routing(worker: Worker) -> None:
    router = PlcRouter(worker.config, worker.writers)
    # Last capture time written per camera and PLC, kept in a changelog-backed table so a
    # restarted worker replaying uncommitted verdicts does not write a part to a PLC twice.
    progress = worker.app.Table(
        "plc-progress",
        default=dict,
        key_type=str,
        value_type=dict,
        partitions=worker.config.kafka.topic_partitions,
    )

    @worker.app.agent(worker.topics.verdicts, name="routing")
    async def routing(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                verdict = Verdict.from_json(event.message.value)
            except ValidationError as exc:
                # The recorder dead-letters malformed verdicts; routing only skips them.
                logger.warning(
                    "malformed verdict skipped for PLC routing source=%s[%d]@%d error=%s",
                    event.message.topic,
                    event.message.partition,
                    event.message.offset,
                    exc.errors(include_url=False)[0]["msg"],
                )
                continue
            written: dict[str, str] = dict(progress[verdict.camera_id])
            captured = verdict.captured_at.isoformat()
            done = frozenset(
                plc
                for plc, last in written.items()
                if datetime.fromisoformat(last) >= verdict.captured_at
            )
            results = await router.route(verdict, skip_plcs=done)
            sends = [
                await worker.topics.plc_writes.send(
                    key=verdict.camera_id.encode(), value=result.to_json()
                )
                for result in results
            ]
            for pending in sends:
                await pending
            for result in results:
                if result.status is WriteStatus.OK:
                    written[result.plc] = captured
            progress[verdict.camera_id] = written


def _attach_recording(worker: Worker) -> None:
    recorder = worker.recorder
    store: PostgresStore = recorder._store  # noqa: SLF001 - the recorder owns this store
    topics = worker.topics

    @worker.app.agent(topics.verdicts, name="record-verdicts")
    async def record_verdicts(stream: faust.StreamT) -> None:
        async for events in stream.take_events(
            worker.config.database.batch_size, within=RECORD_BATCH_WAIT_S
        ):
            verdicts = []
            for event in events:
                try:
                    verdicts.append(Verdict.from_json(event.message.value))
                except ValidationError as exc:
                    letter = build_dead_letter(event, "recorder", exc)
                    await send_dead_letter(topics.dead_letters, letter)
            await _store_or_dead_letter(
                worker, "inspections", verdicts, store.write_verdicts, events
            )

    @worker.app.agent(topics.plc_writes, name="record-plc-writes")
    async def record_plc_writes(stream: faust.StreamT) -> None:
        async for events in stream.take_events(
            worker.config.database.batch_size, within=RECORD_BATCH_WAIT_S
        ):
            results = []
            for event in events:
                try:
                    results.append(PlcWriteResult.from_json(event.message.value))
                except ValidationError as exc:
                    letter = build_dead_letter(event, "recorder", exc)
                    await send_dead_letter(topics.dead_letters, letter)
            await _store_or_dead_letter(
                worker, "plc_writes", results, store.write_plc_results, events
            )

    @worker.app.agent(topics.dead_letters, name="record-dead-letters")
    async def record_dead_letters(stream: faust.StreamT) -> None:
        async for events in stream.take_events(
            worker.config.database.batch_size, within=RECORD_BATCH_WAIT_S
        ):
            letters = []
            for event in events:
                try:
                    letters.append(DeadLetter.from_json(event.message.value))
                except ValidationError as exc:
                    # A dead letter that is itself malformed is logged whole, since there is
                    # no further topic to send it to.
                    logger.error(
                        "malformed dead letter source=%s[%d]@%d error=%s payload=%r",
                        event.message.topic,
                        event.message.partition,
                        event.message.offset,
                        exc,
                        event.message.value[:512],
                    )
            try:
                await recorder.store("dead_letters", letters, store.write_dead_letters)
            except StoreError as exc:
                # They stay on the dead-letter topic, which is their record of last resort.
                logger.error("dead letters not stored count=%d error=%s", len(letters), exc)


async def _store_or_dead_letter(
    worker: Worker,
    table: str,
    rows: list,
    write: Callable[[Sequence[Any]], Awaitable[int]],
    events: Sequence[faust.types.EventT],
) -> None:
    """Store `rows`; when the database rejects them, dead-letter the batch's events instead."""
    try:
        await worker.recorder.store(table, rows, write)
    except StoreError as exc:
        logger.error(
            "rows rejected by the database table=%s rows=%d error=%s", table, len(rows), exc
        )
        for event in events:
            letter = build_dead_letter(event, "recorder", exc)
            await send_dead_letter(worker.topics.dead_letters, letter)


def _attach_lifecycle(worker: Worker) -> None:
    app = worker.app

    @app.timer(interval=LAG_INTERVAL_S)
    async def report_lag() -> None:
        monitor = app.monitor
        for tp, end_offset in dict(monitor.tp_end_offsets).items():
            read_offset = monitor.tp_read_offsets.get(tp, -1)
            lag = max(0, end_offset - read_offset - 1)
            CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)

    @app.task
    async def connect_plcs() -> None:
        for name, writer in worker.writers.items():
            try:
                await writer.connect()
                logger.info("PLC connected plc=%s", name)
            except Exception as exc:  # noqa: BLE001 - the writer reconnects on its next write
                logger.warning(
                    "PLC not reachable at start plc=%s error=%s; writes will retry", name, exc
                )
        READY.set(1)
        worker.state["ready"] = "true"

    @app.on_before_shutdown.connect
    async def close_clients(app: faust.App, **_: object) -> None:
        READY.set(0)
        worker.state["ready"] = "false"
        for writer in worker.writers.values():
            await writer.close()
        await worker.recorder.close()
        worker.executor.shutdown(wait=True, cancel_futures=False)
        logger.info("worker stopped")
