"""The inspector: a batch of encoded frames in, one verdict or one failure per frame out."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from defectline.config.models import PlantConfig
from defectline.schemas.errors import FrameHeaderError
from defectline.schemas.frames import FrameMeta
from defectline.schemas.verdicts import ModelRef, StageTimings, Verdict
from defectline.streams.inference.classify import Classification, classify
from defectline.streams.inference.decode import decode_image
from defectline.streams.inference.errors import FrameDecodeError, InferenceError
from defectline.streams.inference.preprocess import preprocess
from defectline.streams.inference.session import OnnxModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceFailure:
    """A frame that got no verdict, with the reason; the caller dead-letters it."""

    meta: FrameMeta
    error: InferenceError


@dataclass
class _Prepared:
    """A frame that decoded and preprocessed, waiting for the model run."""

    index: int
    meta: FrameMeta
    sample: np.ndarray
    decode_ms: float
    preprocess_ms: float


class Inspector:
    """Loads the configured model once and turns batches of frames into verdicts.

    `inspect_batch` is synchronous and CPU-bound, so an asyncio caller runs it in a thread pool.
    """

    def __init__(self, config: PlantConfig, *, warm_up: bool = True) -> None:
        self.config = config
        self.model = OnnxModel(config.model)
        self._model_ref = ModelRef(name=self.model.name, version=self.model.version)
        if warm_up:
            self.model.warm_up()

    def inspect(self, meta: FrameMeta, payload: bytes) -> Verdict | InferenceFailure:
        """Inspect a single frame; the same as a batch of one."""
        return self.inspect_batch([(meta, payload)])[0]

    def inspect_batch(
        self, frames: Sequence[tuple[FrameMeta, bytes]]
    ) -> list[Verdict | InferenceFailure]:
        """Return one result per frame in input order.

        A frame that fails with an `InferenceError` becomes an `InferenceFailure` and the other
        frames of the batch still get their verdicts.
        """
        if not frames:
            return []
        started_at = datetime.now(UTC)

        results: list[Verdict | InferenceFailure | None] = [None] * len(frames)
        prepared: list[_Prepared] = []
        for index, (meta, payload) in enumerate(frames):
            try:
                prepared.append(self._prepare(index, meta, payload))
            except InferenceError as exc:
                logger.debug(
                    "frame failed camera=%s frame=%s error=%s",
                    meta.camera_id, meta.frame_id, exc,
                )
                results[index] = InferenceFailure(meta, exc)

        if prepared:
            self._infer(prepared, started_at, results)
        return [result for result in results if result is not None]

    def _prepare(self, index: int, meta: FrameMeta, payload: bytes) -> _Prepared:
        label = f"frame {meta.camera_id}/{meta.frame_id}"
        started = time.perf_counter()
        try:
            meta.check_payload(payload)
        except FrameHeaderError as exc:
            raise FrameDecodeError(str(exc)) from exc
        image = decode_image(payload, self.config.model.preprocess.color, label=label)
        decoded = time.perf_counter()

        sample, _letterbox = preprocess(image, self.config.model.preprocess)
        preprocessed = time.perf_counter()
        return _Prepared(
            index=index,
            meta=meta,
            sample=sample,
            decode_ms=(decoded - started) * 1000,
            preprocess_ms=(preprocessed - decoded) * 1000,
        )

    def _infer(
        self,
        prepared: list[_Prepared],
        started_at: datetime,
        results: list[Verdict | InferenceFailure | None],
    ) -> None:
        batch = np.stack([item.sample for item in prepared])
        run_started = time.perf_counter()
        try:
            outputs = self.model.run(batch)
        except InferenceError as exc:
            for item in prepared:
                results[item.index] = InferenceFailure(item.meta, exc)
            return
        # The batch runs in one call, so each frame is charged an equal share of its time.
        inference_ms = (time.perf_counter() - run_started) * 1000 / len(prepared)

        for item, row in zip(prepared, outputs, strict=True):
            try:
                classification = classify(row, self.config.model)
            except InferenceError as exc:
                results[item.index] = InferenceFailure(item.meta, exc)
                continue
            results[item.index] = self._verdict(item, classification, started_at, inference_ms)

    def _verdict(
        self,
        item: _Prepared,
        classification: Classification,
        started_at: datetime,
        inference_ms: float,
    ) -> Verdict:
        meta = item.meta
        # Camera clocks can run ahead of the worker's; a negative wait is reported as 0.
        queue_ms = max(0.0, (started_at - meta.captured_at).total_seconds() * 1000)
        logger.debug(
            "frame inspected camera=%s frame=%s class=%s confidence=%.4f",
            meta.camera_id, meta.frame_id, classification.class_name, classification.confidence,
        )
        return Verdict(
            plant=self.config.plant,
            station_id=meta.station_id,
            camera_id=meta.camera_id,
            frame_id=meta.frame_id,
            sequence=meta.sequence,
            part_id=meta.part_id,
            captured_at=meta.captured_at,
            decided_at=datetime.now(UTC),
            outcome=classification.outcome,
            class_name=classification.class_name,
            class_code=classification.class_code,
            confidence=classification.confidence,
            scores=classification.scores,
            model=self._model_ref,
            timings=StageTimings(
                decode_ms=item.decode_ms,
                preprocess_ms=item.preprocess_ms,
                inference_ms=inference_ms,
                queue_ms=queue_ms,
            ),
        )
