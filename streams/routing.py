"""Routing stage: write each verdict to the PLCs of its station and report every write's result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from defectline.config.models import PlantConfig, PlcOutput, StationConfig, VerdictField
from defectline.connectors.plc.base import PlcWriter, Value
from defectline.connectors.plc.handshake import (
    SETTLED_BY_VERDICT,
    PartTrigger,
    StationHandshake,
)
from defectline.errors import DefectlineError
from defectline.schemas.plc_writes import PlcWriteResult, WriteStatus
from defectline.schemas.verdicts import Outcome, Verdict
from defectline.streams.deadlines import Deadline, deadline_for, fail_safe_values
from defectline.streams.metrics import (
    HANDSHAKE_EVENTS,
    PLC_DEADLINE_MISSES,
    PLC_WRITE_FAILURES,
    PLC_WRITE_RETRIES,
    PLC_WRITES,
    STAGE_LATENCY,
)

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

    Without a result deadline a failed write is retried `max_attempts` times with
    `retry_delay_ms` between tries, then reported as failed. With a deadline the write is
    retried until the deadline. A verdict not written by then is replaced by the station's
    fail-safe values (status fail_safe), or reported as late when the action is `none`. The
    verdict itself is never written after its fail-safe, so each part gets one result.

    A station with a handshake gets the part id of the matching PLC trigger, and its output on
    the handshake PLC is written with the result sequence and strobe (`StationHandshake`).
    """

    def __init__(
        self,
        config: PlantConfig,
        writers: Mapping[str, PlcWriter],
        max_attempts: int = 3,
        retry_delay_ms: int = 200,
        handshakes: Mapping[str, StationHandshake] | None = None,
    ) -> None:
        self._config = config
        self._writers = writers
        self._max_attempts = max_attempts
        self._retry_delay_ms = retry_delay_ms
        self._handshakes = dict(handshakes or {})

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
        part_id = self._part_id(station, verdict)
        values[VerdictField.PART_ID] = _part_number(part_id)
        outputs = [output for output in station.outputs if output.plc not in skip_plcs]
        if not self._claim_part(station, verdict):
            return [self._not_written(station, output, verdict, part_id) for output in outputs]
        writes = (self._write(station, output, verdict, values, part_id) for output in outputs)
        return list(await asyncio.gather(*writes))

    async def fail_safe_part(
        self, station: StationConfig, trigger: PartTrigger
    ) -> list[PlcWriteResult]:
        """Write the fail-safe for a triggered part that has no result by its deadline.

        Called once per part by `PartDeadlines`, after the part was settled by its fail-safe,
        so a verdict that arrives later is not written (`route` reports it as late).
        """
        deadline_ms = station.result_deadline_ms or 0
        deadline = Deadline(trigger.triggered_at + timedelta(milliseconds=deadline_ms))
        values: dict[VerdictField, Value] = {
            VerdictField.REJECT: False,
            VerdictField.UNCERTAIN: False,
            VerdictField.CLASS_CODE: 0,
            VerdictField.CONFIDENCE: 0.0,
            VerdictField.SEQUENCE: 0,
            VerdictField.FRAME_SEQUENCE: 0,
            VerdictField.PART_ID: _part_number(trigger.part_id),
        }
        replacement = fail_safe_values(station, values)
        results = []
        for output in station.outputs:
            attempts, status, error = 0, WriteStatus.LATE, "no verdict by the deadline"
            if replacement is not None:
                attempts, status = 1, WriteStatus.FAIL_SAFE
                try:
                    await self._send(station, output, replacement)
                except DefectlineError as exc:
                    PLC_WRITE_FAILURES.labels(plc=output.plc, error=type(exc).__name__).inc()
                    error = f"no verdict by the deadline; fail-safe not written: {exc}"
                else:
                    action = station.fail_safe_action
                    error = f"no verdict by the deadline; fail-safe {action} written"
            misses = PLC_DEADLINE_MISSES.labels(
                station=station.id, plc=output.plc, status=status.value
            )
            misses.inc()
            logger.error(
                "part without verdict at its deadline plc=%s station=%s part=%s trigger=%d "
                "result_deadline_ms=%d outcome=%s",
                output.plc,
                station.id,
                trigger.part_id,
                trigger.number,
                station.result_deadline_ms,
                error,
            )
            PLC_WRITES.labels(plc=output.plc, status=status.value).inc()
            written_at = datetime.now(UTC)
            results.append(
                PlcWriteResult(
                    plc=output.plc,
                    station_id=station.id,
                    camera_id="",
                    frame_id="",
                    sequence=0,
                    status=status,
                    attempts=max(1, attempts),
                    captured_at=trigger.triggered_at,
                    written_at=written_at,
                    latency_ms=(written_at - trigger.triggered_at).total_seconds() * 1000,
                    error=error,
                    part_id=trigger.part_id,
                    deadline_at=deadline.at,
                )
            )
        return results

    def _claim_part(self, station: StationConfig, verdict: Verdict) -> bool:
        """Settle the verdict's part by this verdict; False when its fail-safe was written."""
        handshake = self._handshakes.get(station.id)
        if verdict.part_id is not None or handshake is None:
            return True
        trigger = handshake.trigger_for(verdict.captured_at)
        return trigger is None or handshake.settle(trigger, SETTLED_BY_VERDICT)

    def _not_written(
        self, station: StationConfig, output: PlcOutput, verdict: Verdict, part_id: str | None
    ) -> PlcWriteResult:
        logger.warning(
            "verdict after its part's fail-safe, not written plc=%s station=%s camera=%s "
            "frame=%s part=%s",
            output.plc,
            station.id,
            verdict.camera_id,
            verdict.frame_id,
            part_id,
        )
        report = _Report(output.plc, verdict, part_id, deadline_for(station, verdict.captured_at))
        report.error = "the part got its fail-safe at its deadline; verdict not written"
        return report.finish(WriteStatus.LATE)

    def _part_id(self, station: StationConfig, verdict: Verdict) -> str | None:
        if verdict.part_id is not None:
            return verdict.part_id
        handshake = self._handshakes.get(station.id)
        if handshake is None:
            return None
        part_id = handshake.part_for(verdict.captured_at)
        if part_id is None:
            HANDSHAKE_EVENTS.labels(station=station.id, event="unmatched_frame").inc()
            # Per frame, so at debug; defectline_plc_handshake_events_total counts them.
            logger.debug(
                "no part trigger matches frame station=%s camera=%s frame=%s; part_id 0 written",
                station.id,
                verdict.camera_id,
                verdict.frame_id,
            )
        return part_id

    async def _write(
        self,
        station: StationConfig,
        output: PlcOutput,
        verdict: Verdict,
        values: Mapping[VerdictField, Value],
        part_id: str | None,
    ) -> PlcWriteResult:
        deadline = deadline_for(station, verdict.captured_at)
        report = _Report(output.plc, verdict, part_id, deadline)
        if deadline is not None and deadline.has_passed():
            report.error = f"verdict reached routing {-deadline.remaining_s() * 1000:.0f} ms late"
            return await self._fail_safe(station, output, values, report)

        while True:
            report.attempts += 1
            try:
                await self._send(station, output, values)
            except DefectlineError as exc:
                report.error = str(exc)
                PLC_WRITE_FAILURES.labels(plc=output.plc, error=type(exc).__name__).inc()
            else:
                report.error = None
                break

            delay_s = self._retry_delay_ms / 1000
            if deadline is None and report.attempts >= self._max_attempts:
                return report.finish(WriteStatus.FAILED)
            if deadline is None and not self._writers[output.plc].is_connected:
                # The writer reconnects in the background; waiting here would only make every
                # later verdict of the line late as well.
                return report.finish(WriteStatus.FAILED)
            if deadline is not None and deadline.remaining_s() <= 0:
                return await self._fail_safe(station, output, values, report)
            if deadline is not None:
                delay_s = min(delay_s, deadline.remaining_s())
            PLC_WRITE_RETRIES.labels(plc=output.plc).inc()
            logger.warning(
                "PLC write failed plc=%s camera=%s frame=%s attempt=%d error=%s; "
                "retrying in %.0f ms",
                output.plc,
                verdict.camera_id,
                verdict.frame_id,
                report.attempts,
                report.error,
                delay_s * 1000,
            )
            await asyncio.sleep(delay_s)

        if deadline is not None and deadline.has_passed():
            # The write started before the deadline but finished after it.
            report.error = f"written {-deadline.remaining_s() * 1000:.0f} ms after the deadline"
            PLC_DEADLINE_MISSES.labels(station=station.id, plc=output.plc, status="late").inc()
            return report.finish(WriteStatus.LATE)
        return report.finish(WriteStatus.OK)

    async def _fail_safe(
        self,
        station: StationConfig,
        output: PlcOutput,
        values: Mapping[VerdictField, Value],
        report: _Report,
    ) -> PlcWriteResult:
        """Write the fail-safe values once in place of the verdict, or record it as late."""
        replacement = fail_safe_values(station, values)
        verdict = report.verdict
        if replacement is None:
            PLC_DEADLINE_MISSES.labels(station=station.id, plc=output.plc, status="late").inc()
            logger.warning(
                "verdict late, nothing written plc=%s station=%s camera=%s frame=%s reason=%s",
                output.plc,
                station.id,
                verdict.camera_id,
                verdict.frame_id,
                report.error,
            )
            return report.finish(WriteStatus.LATE)

        cause = report.error
        report.attempts += 1
        try:
            await self._send(station, output, replacement)
        except DefectlineError as exc:
            PLC_WRITE_FAILURES.labels(plc=output.plc, error=type(exc).__name__).inc()
            action = station.fail_safe_action
            report.error = f"deadline passed ({cause}); fail-safe {action} not written: {exc}"
            logger.error(
                "fail-safe not written plc=%s station=%s camera=%s frame=%s error=%s",
                output.plc,
                station.id,
                verdict.camera_id,
                verdict.frame_id,
                report.error,
            )
        else:
            report.error = (
                f"deadline passed ({cause}); fail-safe {station.fail_safe_action} written"
            )
            logger.warning(
                "fail-safe written plc=%s station=%s camera=%s frame=%s action=%s reason=%s",
                output.plc,
                station.id,
                verdict.camera_id,
                verdict.frame_id,
                station.fail_safe_action,
                cause,
            )
        PLC_DEADLINE_MISSES.labels(station=station.id, plc=output.plc, status="fail_safe").inc()
        return report.finish(WriteStatus.FAIL_SAFE)

    async def _send(
        self, station: StationConfig, output: PlcOutput, values: Mapping[VerdictField, Value]
    ) -> None:
        handshake = self._handshakes.get(station.id)
        if handshake is not None and handshake.plc == output.plc:
            await handshake.publish(output, values)
            return
        await self._writers[output.plc].write(output, values)


class _Report:
    """Outcome of one verdict's write to one PLC, turned into a PlcWriteResult at the end."""

    def __init__(
        self, plc: str, verdict: Verdict, part_id: str | None, deadline: Deadline | None
    ) -> None:
        self.plc = plc
        self.verdict = verdict
        self.part_id = part_id
        self.deadline = deadline
        self.attempts = 0
        self.error: str | None = None

    def finish(self, status: WriteStatus) -> PlcWriteResult:
        verdict = self.verdict
        written_at = datetime.now(UTC)
        latency_ms = (written_at - verdict.captured_at).total_seconds() * 1000
        PLC_WRITES.labels(plc=self.plc, status=status.value).inc()
        if status is WriteStatus.OK:
            STAGE_LATENCY.labels(stage="capture_to_plc").observe(max(0.0, latency_ms / 1000))
        elif status is WriteStatus.FAILED:
            logger.error(
                "PLC write lost after %d attempts plc=%s station=%s camera=%s frame=%s error=%s",
                self.attempts,
                self.plc,
                verdict.station_id,
                verdict.camera_id,
                verdict.frame_id,
                self.error,
            )
        return PlcWriteResult(
            plc=self.plc,
            station_id=verdict.station_id,
            camera_id=verdict.camera_id,
            frame_id=verdict.frame_id,
            sequence=verdict.sequence,
            status=status,
            attempts=max(1, self.attempts),
            captured_at=verdict.captured_at,
            written_at=written_at,
            latency_ms=latency_ms,
            error=self.error,
            part_id=self.part_id,
            deadline_at=None if self.deadline is None else self.deadline.at,
        )


def _part_number(part_id: str | None) -> int:
    """Return the part id as the integer a PLC register holds; 0 when none or not a number."""
    if part_id is None or not part_id.isdigit():
        return 0
    return int(part_id)


def build_handshakes(
    config: PlantConfig, writers: Mapping[str, PlcWriter]
) -> dict[str, StationHandshake]:
    """Create the handshake of every station that configures one, keyed by station id."""
    return {
        station.id: StationHandshake(station, writers[station.handshake.plc])
        for station in config.stations
        if station.handshake is not None
    }
