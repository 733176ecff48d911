"""Assemble the worker: the Faust app with its agents, web pages and lifecycle hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust
from pydantic import ValidationError

from defectline.config.models import PlantConfig
from defectline.connectors.plc.base import PlcWriter, create_writer
from defectline.connectors.plc.handshake import StationHandshake
from defectline.connectors.store.errors import StoreError
from defectline.connectors.store.postgres import PostgresStore
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.plc_writes import PlcWriteResult, WriteStatus
from defectline.schemas.verdicts import Verdict
from defectline.streams.app import WorkerTopics, create_app, declare_topics
from defectline.streams.batching import processed_batches
from defectline.streams.drift.agent import attach_drift
from defectline.streams.feedback import attach_feedback
from defectline.streams.inference.inspector import Inspector
from defectline.streams.inspection import InspectionStage
from defectline.streams.metrics import CONSUMER_LAG, READY
from defectline.streams.part_deadlines import PartDeadlines
from defectline.streams.quality import attach_quality_records
from defectline.streams.recorder import (
    RECORD_BATCH_WAIT_S,
    Recorder,
    attach_recorder,
)
from defectline.streams.routing import PlcRouter, build_handshakes
from defectline.streams.web import register_pages

logger = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0
ROUTING_BATCH_SIZE = 64
ROUTING_BATCH_WAIT_S = 0.002
# Frame ids remembered per camera and PLC. A replay covers only unacknowledged verdicts, at
# most a few routing batches, so a verdict older than this is written again if replayed.
ROUTING_REMEMBERED_FRAMES = 256


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
    handshakes: dict[str, StationHandshake] = field(default_factory=dict)
    part_deadlines: PartDeadlines | None = None
    plcs_attempted: asyncio.Event = field(default_factory=asyncio.Event)


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
    store: PostgresStore = recorder._store  # noqa: SLF001 - the recorder owns this store
    attach_feedback(worker, store)
    attach_quality_records(worker, store)
    attach_drift(worker)
    _attach_lifecycle(worker)
    register_pages(worker)
    return worker


def _attach_inference(worker: Worker) -> None:
    stage = InspectionStage(
        worker.inspector, worker.topics.verdicts, worker.topics.dead_letters, worker.executor
    )

    batch_size = worker.config.inference.batch_size
    batch_wait_s = worker.config.inference.max_wait_ms / 1000

    # Each batch contains up to batch_size events in arrival order, or fewer once batch_wait_s
    # has passed. The stage sends results in the same order, so each camera's order is kept.
    @worker.app.agent(worker.topics.frames, name="inference")
    async def inference(stream: faust.StreamT) -> None:
        async for events in processed_batches(stream, batch_size, batch_wait_s):
            await stage.handle(events)


def _attach_routing(worker: Worker) -> None:
    worker.handshakes = build_handshakes(worker.config, worker.writers)
    router = PlcRouter(worker.config, worker.writers, handshakes=worker.handshakes)

    async def emit_part_result(result: PlcWriteResult) -> None:
        # A triggered part with no verdict by its deadline: its fail-safe result is recorded
        # like every other PLC write result.
        await worker.topics.plc_writes.send(key=result.station_id.encode(), value=result.to_json())

    worker.part_deadlines = PartDeadlines(
        worker.config, router, worker.handshakes, emit_part_result
    )
    # The frames last written per camera and PLC, kept in a changelog-backed table so a
    # restarted worker replaying unacknowledged verdicts does not write a part to a PLC twice.
    progress = worker.app.Table(
        "plc-progress",
        default=dict,
        key_type=str,
        partitions=worker.config.kafka.topic_partitions,
    )

    @worker.app.agent(worker.topics.verdicts, name="routing")
    async def routing(stream: faust.StreamT) -> None:
        # The first connection attempt comes first, so the verdicts waiting at start-up are
        # not failed merely because the PLC connection was still being opened.
        await worker.plcs_attempted.wait()
        async for events in processed_batches(stream, ROUTING_BATCH_SIZE, ROUTING_BATCH_WAIT_S):
            await _route_batch(worker, router, progress, events)


async def _route_batch(
    worker: Worker, router: PlcRouter, progress: Any, events: Sequence[faust.types.EventT]
) -> None:
    """Write a batch of verdicts to their PLCs, then report every write's result.

    Each camera's verdicts are written in order, and cameras run concurrently so one slow PLC
    round trip does not hold up the other stations. The results are awaited together at the
    end, and the events are acknowledged only after that, so no result is lost if the worker
    dies.
    """
    by_camera: dict[str, list[Verdict]] = {}
    partitions: dict[str, int] = {}
    for event in events:
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
        by_camera.setdefault(verdict.camera_id, []).append(verdict)
        partitions[verdict.camera_id] = event.message.partition

    written = {
        camera: {plc: list(ids) for plc, ids in (progress.get(camera) or {}).items()}
        for camera in by_camera
    }
    sends = await asyncio.gather(
        *(
            _route_camera(worker, router, verdicts, written[camera])
            for camera, verdicts in by_camera.items()
        )
    )
    for pending in sends:
        for future in pending:
            await future

    # Inside a batch Faust has no current event to take the changelog partition from, so each
    # camera's entry goes to the partition its verdicts came from, as table recovery expects.
    changelog = []
    for camera, recent in written.items():
        progress.data[camera] = recent
        changelog.append(progress.send_changelog(partitions[camera], camera, recent))
    # Deliver the table's changelog before the batch is acknowledged, so a worker killed after
    # the acknowledgement cannot lose the record of these writes and repeat them on restart.
    for future in changelog:
        await future


async def _route_camera(
    worker: Worker, router: PlcRouter, verdicts: list[Verdict], recent: dict[str, list[str]]
) -> list[Any]:
    """Write one camera's verdicts in order; return the pending sends of their results."""
    pending = []
    for verdict in verdicts:
        done = frozenset(plc for plc, ids in recent.items() if verdict.frame_id in ids)
        if done:
            logger.info(
                "verdict already written, skipped on replay camera=%s frame=%s plcs=%s",
                verdict.camera_id,
                verdict.frame_id,
                ",".join(sorted(done)),
            )
        for result in await router.route(verdict, skip_plcs=done):
            key = verdict.camera_id.encode()
            pending.append(await worker.topics.plc_writes.send(key=key, value=result.to_json()))
            # A fail-safe or late result also closes the part: its verdict is never written.
            if result.status is not WriteStatus.FAILED:
                ids = recent.setdefault(result.plc, [])
                ids.append(verdict.frame_id)
                del ids[:-ROUTING_REMEMBERED_FRAMES]
    return pending


def _attach_recording(worker: Worker) -> None:
    recorder = worker.recorder
    store: PostgresStore = recorder._store  # noqa: SLF001 - the recorder owns this store
    topics = worker.topics

    attach_recorder(worker, topics.verdicts, "inspections", Verdict.from_json, store.write_verdicts)
    attach_recorder(
        worker, topics.plc_writes, "plc_writes", PlcWriteResult.from_json, store.write_plc_results
    )

    @worker.app.agent(topics.dead_letters, name="record-dead-letters")
    async def record_dead_letters(stream: faust.StreamT) -> None:
        async for events in processed_batches(
            stream, worker.config.database.batch_size, RECORD_BATCH_WAIT_S
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
        worker.plcs_attempted.set()
        for handshake in worker.handshakes.values():
            await handshake.start()
        READY.set(1)
        worker.state["ready"] = "true"

    @app.on_before_shutdown.connect
    async def close_clients(app: faust.App, **_: object) -> None:
        READY.set(0)
        worker.state["ready"] = "false"
        # Faust stops the agents only after this signal. They are stopped first here, so no
        # batch is written with closed clients; an interrupted batch was never acknowledged.
        await app.agents.stop()
        if worker.part_deadlines is not None:
            await worker.part_deadlines.stop()
        for handshake in worker.handshakes.values():
            await handshake.stop()
        for writer in worker.writers.values():
            await writer.close()
        await worker.recorder.close()
        worker.executor.shutdown(wait=True, cancel_futures=False)
        worker.inspector.close()
        logger.info("worker stopped")
