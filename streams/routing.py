"""Routing stage: write each verdict to the PLCs of its station and report every write's result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from defectline.config.models import PlantConfig, PlcOutput, VerdictField
from defectline.connectors.plc.base import PlcWriter
from defectline.errors import DefectlineError
from defectline.schemas.plc_writes import PlcWriteResult, WriteStatus
from defectline.schemas.verdicts import Outcome, Verdict
from defectline.streams.metrics import PLC_WRITE_RETRIES, PLC_WRITES, STAGE_LATENCY

logger = logging.getLogger(__name__)


def verdict_values(
    verdict: Verdict, uncertain_reject: bool = True
) -> dict[VerdictField, bool | int | float]:
    """Map a verdict onto the values a PLC map can address.

    An uncertain part writes reject=true when `uncertain_reject` is set (the station's
    `decision.uncertain_reject`), so it leaves the line for manual inspection.
    """
    uncertain = verdict.outcome is Outcome.UNCERTAIN
    return {
        VerdictField.REJECT: verdict.outcome is Outcome.REJECT or (uncertain and uncertain_reject),
        VerdictField.UNCERTAIN: uncertain,
        VerdictField.CLASS_CODE: verdict.class_code,
        VerdictField.CONFIDENCE: verdict.confidence,
        VerdictField.SEQUENCE: verdict.sequence,
        VerdictField.FRAME_SEQUENCE: verdict.sequence,
    }


class PlcRouter:
    """Writes verdicts to their station's PLCs; callers keep one verdict in flight per PLC.

    A failed write is retried `max_attempts` times with `retry_delay_ms` between tries, then
    reported as failed; the caller decides what happens to the part.
    """

    def __init__(
        self,
        config: PlantConfig,
        writers: Mapping[str, PlcWriter],
        max_attempts: int = 3,
        retry_delay_ms: int = 200,
    ) -> None:
        self._config = config
        self._writers = writers
        self._max_attempts = max_attempts
        self._retry_delay_ms = retry_delay_ms

    async def route(
        self, verdict: Verdict, skip_plcs: frozenset[str] = frozenset()
    ) -> list[PlcWriteResult]:
        """Write `verdict` to every PLC of its station except `skip_plcs`, all PLCs concurrently."""
        try:
            station = self._config.station(verdict.station_id)
        except KeyError:
            logger.error(
                "verdict for unknown station station=%s camera=%s frame=%s; not written",
                verdict.station_id,
                verdict.camera_id,
                verdict.frame_id,
            )
            return []
        values = verdict_values(verdict, station.decision.uncertain_reject)
        outputs = [output for output in station.outputs if output.plc not in skip_plcs]
        return list(
            await asyncio.gather(*(self._write(output, verdict, values) for output in outputs))
        )

    async def _write(
        self, output: PlcOutput, verdict: Verdict, values: Mapping[VerdictField, bool | int | float]
    ) -> PlcWriteResult:
        writer = self._writers[output.plc]
        error: str | None = None
        attempt = 0
        for attempt in range(1, self._max_attempts + 1):
            try:
                await writer.write(output, values)
            except DefectlineError as exc:
                error = str(exc)
                if attempt < self._max_attempts:
                    PLC_WRITE_RETRIES.labels(plc=output.plc).inc()
                    logger.warning(
                        "PLC write failed plc=%s camera=%s frame=%s attempt=%d/%d error=%s; "
                        "retrying in %d ms",
                        output.plc,
                        verdict.camera_id,
                        verdict.frame_id,
                        attempt,
                        self._max_attempts,
                        exc,
                        self._retry_delay_ms,
                    )
                    await asyncio.sleep(self._retry_delay_ms / 1000)
                continue
            error = None
            break

        written_at = datetime.now(UTC)
        latency_ms = (written_at - verdict.captured_at).total_seconds() * 1000
        status = WriteStatus.OK if error is None else WriteStatus.FAILED
        PLC_WRITES.labels(plc=output.plc, status=status.value).inc()
        if error is None:
            STAGE_LATENCY.labels(stage="capture_to_plc").observe(max(0.0, latency_ms / 1000))
        else:
            logger.error(
                "PLC write lost after %d attempts plc=%s station=%s camera=%s frame=%s error=%s",
                attempt,
                output.plc,
                verdict.station_id,
                verdict.camera_id,
                verdict.frame_id,
                error,
            )
        return PlcWriteResult(
            plc=output.plc,
            station_id=verdict.station_id,
            camera_id=verdict.camera_id,
            frame_id=verdict.frame_id,
            sequence=verdict.sequence,
            status=status,
            attempts=attempt,
            captured_at=verdict.captured_at,
            written_at=written_at,
            latency_ms=latency_ms,
            error=error,
        )
