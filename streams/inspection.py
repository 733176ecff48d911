"""Inference stage: frames topic to verdicts topic, with undecodable input to the dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Protocol

import faust

from defectline.errors import DefectlineError
from defectline.schemas.frames import FrameMeta
from defectline.schemas.verdicts import Verdict
from defectline.streams.dead_letters import build_dead_letter, event_headers, send_dead_letter
from defectline.streams.metrics import FRAMES_IN, STAGE_LATENCY, VERDICTS

logger = logging.getLogger(__name__)

STAGE = "inference"


class BatchInspector(Protocol):
    """What the stage needs from the model side; `defectline.streams.inference.Inspector` is one."""

    def inspect_batch(self, frames: Sequence[tuple[FrameMeta, bytes]]) -> list: ...


class InspectionStage:
    """Turns a batch of frame events into verdicts, running the model on `executor`."""

    def __init__(
        self,
        inspector: BatchInspector,
        verdicts: faust.TopicT,
        dead_letters: faust.TopicT,
        executor: Executor,
    ) -> None:
        self._inspector = inspector
        self._verdicts = verdicts
        self._dead_letters = dead_letters
        self._executor = executor

    async def handle(self, events: Sequence[faust.types.EventT]) -> None:
        """Process `events` completely: every event ends as a sent verdict or a sent dead letter."""
        frames: list[tuple[FrameMeta, bytes]] = []
        accepted: list[faust.types.EventT] = []
        for event in events:
            meta = await self._parse(event)
            if meta is not None:
                frames.append((meta, event.message.value))
                accepted.append(event)
        if not frames:
            return

        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self._executor, self._inspector.inspect_batch, frames
            )
        except DefectlineError as exc:
            # A failure of the whole batch (not of one frame) still must not lose the frames.
            for event, (meta, _) in zip(accepted, frames, strict=True):
                letter = build_dead_letter(event, STAGE, exc, meta.camera_id, meta.frame_id)
                await send_dead_letter(self._dead_letters, letter)
            return

        pending = []
        for event, (meta, _), result in zip(accepted, frames, results, strict=True):
            if isinstance(result, Verdict):
                pending.append(
                    await self._verdicts.send(key=meta.camera_id.encode(), value=result.to_json())
                )
                _observe(result)
                continue
            error = getattr(result, "error", result)
            logger.warning(
                "frame rejected camera=%s frame=%s error=%s", meta.camera_id, meta.frame_id, error
            )
            letter = build_dead_letter(event, STAGE, error, meta.camera_id, meta.frame_id)
            await send_dead_letter(self._dead_letters, letter)
        await asyncio.gather(*pending)

    async def _parse(self, event: faust.types.EventT) -> FrameMeta | None:
        try:
            meta = FrameMeta.from_headers(event_headers(event))
            meta.check_payload(event.message.value or b"")
        except DefectlineError as exc:
            await send_dead_letter(self._dead_letters, build_dead_letter(event, STAGE, exc))
            return None
        FRAMES_IN.labels(camera=meta.camera_id).inc()
        logger.debug(
            "frame received camera=%s frame=%s seq=%d", meta.camera_id, meta.frame_id, meta.sequence
        )
        return meta


def _observe(verdict: Verdict) -> None:
    VERDICTS.labels(
        station=verdict.station_id, outcome=verdict.outcome.value, class_name=verdict.class_name
    ).inc()
    timings = verdict.timings
    STAGE_LATENCY.labels(stage="decode").observe(timings.decode_ms / 1000)
    STAGE_LATENCY.labels(stage="preprocess").observe(timings.preprocess_ms / 1000)
    STAGE_LATENCY.labels(stage="inference").observe(timings.inference_ms / 1000)
    to_verdict_s = (verdict.decided_at - verdict.captured_at).total_seconds()
    STAGE_LATENCY.labels(stage="capture_to_verdict").observe(max(0.0, to_verdict_s))
