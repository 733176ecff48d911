"""The inspector: a batch of encoded frames in, one verdict or one failure per frame out."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from defectline.config.models import PlantConfig
from defectline.connectors.archive.base import FrameArchive, create_archive, evidence_key
from defectline.connectors.archive.errors import ArchiveError
from defectline.schemas.errors import FrameHeaderError
from defectline.schemas.frames import FrameMeta
from defectline.schemas.verdicts import BoxPx, ModelRef, Outcome, Region, StageTimings, Verdict
from defectline.streams.drift.image_stats import measure_image
from defectline.streams.inference.adapters import FrameGeometry, create_adapter
from defectline.streams.inference.adapters.base import Candidate, Findings
from defectline.streams.inference.decision import Decision, StationRules
from defectline.streams.inference.decode import decode_image
from defectline.streams.inference.errors import FrameDecodeError, InferenceError
from defectline.streams.inference.evidence import draw_overlay, encode_jpeg
from defectline.streams.inference.parity import check_parity
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
    image: np.ndarray
    sample: np.ndarray
    geometry: FrameGeometry
    decode_ms: float
    preprocess_ms: float


class Inspector:
    """Loads the configured model once and turns batches of frames into verdicts.

    Start-up runs the model's input and output checks, a warm-up batch and the golden-image
    parity check, so a worker whose model drifted fails before it reports ready.
    `inspect_batch` is synchronous and CPU-bound, so an asyncio caller runs it in a thread pool.
    """

    def __init__(
        self,
        config: PlantConfig,
        *,
        warm_up: bool = True,
        archive: FrameArchive | None = None,
    ) -> None:
        self.config = config
        self.model = OnnxModel(config.model)
        self.adapter = create_adapter(self.model, config.model)
        self.rules = {
            station.id: StationRules(station.id, station.decision, self.adapter.default_threshold)
            for station in config.stations
        }
        self._model_ref = ModelRef(name=self.model.name, version=self.model.version)
        self.archive = archive
        if archive is None and config.archive.evidence:
            self.archive = create_archive(config.archive.store)
        if warm_up:
            self.model.warm_up()
        checked = check_parity(self.model, self.adapter.config, self.adapter.output_names)
        if checked:
            logger.info("golden parity passed model=%s images=%d", self.model.name, checked)

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

    def close(self) -> None:
        """Close the frame archive's clients."""
        if self.archive is not None:
            self.archive.close()

    def _prepare(self, index: int, meta: FrameMeta, payload: bytes) -> _Prepared:
        label = f"frame {meta.camera_id}/{meta.frame_id}"
        pre = self.config.model.preprocess
        started = time.perf_counter()
        try:
            meta.check_payload(payload)
        except FrameHeaderError as exc:
            raise FrameDecodeError(str(exc)) from exc
        image = decode_image(payload, pre.color, label=label)
        decoded = time.perf_counter()

        sample, letterbox = preprocess(image, pre)
        preprocessed = time.perf_counter()
        geometry = FrameGeometry(
            width_px=image.shape[1],
            height_px=image.shape[0],
            input_width_px=pre.width_px,
            input_height_px=pre.height_px,
            letterbox=letterbox,
        )
        return _Prepared(
            index=index,
            meta=meta,
            image=image,
            sample=sample,
            geometry=geometry,
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
            outputs = self.model.run_outputs(batch, self.adapter.output_names)
        except InferenceError as exc:
            for item in prepared:
                results[item.index] = InferenceFailure(item.meta, exc)
            return
        # The batch runs in one call, so each frame is charged an equal share of its time.
        inference_ms = (time.perf_counter() - run_started) * 1000 / len(prepared)

        for position, item in enumerate(prepared):
            try:
                findings, decision = self._decide(outputs, position, item)
            except InferenceError as exc:
                results[item.index] = InferenceFailure(item.meta, exc)
                continue
            evidence_uri = self._store_evidence(item, decision, findings)
            results[item.index] = self._verdict(
                item, decision, evidence_uri, started_at, inference_ms
            )

    def _decide(
        self, outputs: dict[str, np.ndarray], position: int, item: _Prepared
    ) -> tuple[Findings, Decision]:
        station_id = item.meta.station_id
        rules = self.rules.get(station_id)
        if rules is None:
            raise InferenceError(
                f"frame {item.meta.camera_id}/{item.meta.frame_id} names station "
                f"'{station_id}', which is not in the configuration {sorted(self.rules)}"
            )
        allowed = rules.allowed_mask(item.geometry.width_px, item.geometry.height_px)
        findings = self.adapter.decode(outputs, position, item.geometry, allowed)
        return findings, rules.decide(findings)

    def _store_evidence(
        self, item: _Prepared, decision: Decision, findings: Findings
    ) -> str | None:
        settings = self.config.archive
        wanted = decision.outcome is Outcome.REJECT or (
            decision.outcome is Outcome.UNCERTAIN and settings.evidence_uncertain
        )
        if self.archive is None or not settings.evidence or not wanted:
            return None

        meta = item.meta
        overlay = draw_overlay(item.image, decision, findings.heatmap)
        key = evidence_key(meta.station_id, meta.camera_id, meta.frame_id, meta.captured_at)
        try:
            return self.archive.put(key, encode_jpeg(overlay, settings.jpeg_quality), "image/jpeg")
        except ArchiveError as exc:
            # The verdict matters more than its picture: it goes out without evidence_uri.
            logger.warning(
                "evidence not stored camera=%s frame=%s error=%s",
                meta.camera_id, meta.frame_id, exc,
            )
            return None

    def _verdict(
        self,
        item: _Prepared,
        decision: Decision,
        evidence_uri: str | None,
        started_at: datetime,
        inference_ms: float,
    ) -> Verdict:
        meta = item.meta
        # Camera clocks can run ahead of the worker's; a negative wait is reported as 0.
        queue_ms = max(0.0, (started_at - meta.captured_at).total_seconds() * 1000)
        logger.debug(
            "frame inspected camera=%s frame=%s outcome=%s class=%s confidence=%.4f",
            meta.camera_id, meta.frame_id, decision.outcome.value, decision.class_name,
            decision.confidence,
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
            outcome=decision.outcome,
            class_name=decision.class_name,
            class_code=decision.class_code,
            confidence=min(1.0, max(0.0, decision.confidence)),
            scores=decision.scores,
            model=self._model_ref,
            timings=StageTimings(
                decode_ms=item.decode_ms,
                preprocess_ms=item.preprocess_ms,
                inference_ms=inference_ms,
                queue_ms=queue_ms,
            ),
            regions=[_region(candidate) for candidate in decision.regions],
            evidence_uri=evidence_uri,
            # For the drift detectors; about 0.2 ms for a 256x256 px frame.
            image_stats=measure_image(item.image),
        )


def _region(candidate: Candidate) -> Region:
    x1, y1, x2, y2 = candidate.box
    return Region(
        kind=candidate.kind,
        class_name=candidate.class_name,
        class_code=candidate.class_code,
        confidence=min(1.0, max(0.0, candidate.confidence)),
        box=BoxPx(x1=x1, y1=y1, x2=x2, y2=y2),
        area_px=candidate.area_px,
        area_pct=min(100.0, candidate.area_pct),
    )
