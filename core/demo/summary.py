"""Check a demo run against the database and the PLCs, and print its summary."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from defectline.config.models import PlantConfig, VerdictField
from defectline.demo.observer import FrameKey, Observed
from defectline.schemas.plc_writes import WriteStatus
from defectline.schemas.verdicts import Outcome, Verdict
from defectline.streams.routing import verdict_values

ROWS_WAIT_S = 30.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class DemoReport:
    frames_sent: int
    frames_seen: int
    verdicts: int
    rejects_by_class: dict[str, int]
    passes: int
    uncertain: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    rows_stored: int
    plc_writes: dict[str, int]
    dead_letters: int
    readback: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    folder_agreement: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["checks"] = [check.__dict__ for check in self.checks]
        data["ok"] = self.ok
        return data


def build_report(
    config: PlantConfig, observed: Observed, frames_sent: int, simulators: Any
) -> DemoReport:
    """Compare what the topics, the database and the PLCs hold for this run's frames."""
    keys = set(observed.frames)
    verdicts = {key: observed.verdicts[key] for key in keys if key in observed.verdicts}
    outputs = {
        station.id: [output.plc for output in station.outputs] for station in config.stations
    }

    ok_writes = [
        result
        for key in keys
        for result in observed.plc_writes.get(key, ())
        if result.status is WriteStatus.OK
    ]
    latencies = sorted(result.latency_ms for result in ok_writes)
    rows = _stored_rows(config, keys)

    report = DemoReport(
        frames_sent=frames_sent,
        frames_seen=len(keys),
        verdicts=len(verdicts),
        rejects_by_class=dict(
            Counter(
                v.class_name for v in verdicts.values() if v.outcome is Outcome.REJECT
            ).most_common()
        ),
        passes=sum(1 for v in verdicts.values() if v.outcome is Outcome.PASS),
        uncertain=sum(1 for v in verdicts.values() if v.outcome is Outcome.UNCERTAIN),
        latency_p50_ms=_quantile(latencies, 0.50),
        latency_p99_ms=_quantile(latencies, 0.99),
        rows_stored=len(rows),
        plc_writes=dict(Counter(result.plc for result in ok_writes)),
        dead_letters=len(observed.dead_letters),
    )
    report.folder_agreement = _folder_agreement(observed, verdicts, config.model.class_names)
    report.readback = asyncio.run(_read_back(config, verdicts))
    report.checks = _checks(report, observed, keys, verdicts, outputs, rows, simulators)
    return report


def _checks(
    report: DemoReport,
    observed: Observed,
    keys: set[FrameKey],
    verdicts: dict,
    outputs: dict[str, list[str]],
    rows: set[FrameKey],
    simulators: Any,
) -> list[Check]:
    duplicates = [key for key in keys if observed.verdict_counts[key] > 1]
    missing_verdicts = [key for key in keys if key not in verdicts]
    wrong_writes = []
    for key, verdict in verdicts.items():
        per_plc = Counter(
            r.plc for r in observed.plc_writes.get(key, ()) if r.status is WriteStatus.OK
        )
        if any(per_plc[plc] != 1 for plc in outputs[verdict.station_id]):
            wrong_writes.append(key)
    missing_rows = keys - rows
    checks = [
        Check(
            "every frame sent reached Kafka",
            report.frames_sent > 0 and report.frames_seen == report.frames_sent,
            f"{report.frames_seen} of {report.frames_sent}",
        ),
        Check(
            "exactly one verdict per frame",
            not missing_verdicts and not duplicates,
            f"{len(missing_verdicts)} missing, {len(duplicates)} duplicated",
        ),
        Check(
            "one successful write per configured PLC",
            not wrong_writes,
            f"{len(wrong_writes)} frame(s) with a missing or repeated write",
        ),
        Check("one stored row per frame", not missing_rows, f"{len(missing_rows)} missing"),
        Check(
            "PLC values read back equal the last verdict",
            all(entry["match"] for entry in report.readback),
            f"{sum(entry['match'] for entry in report.readback)} of {len(report.readback)} maps",
        ),
    ]
    if simulators is not None:
        received = {
            plc: sum(len(sequences) for sequences in stations.values())
            for plc, stations in simulators.histories().items()
        }
        expected = Counter(
            plc for verdict in verdicts.values() for plc in outputs[verdict.station_id]
        )
        checks.append(
            Check(
                "each PLC received one write per verdict",
                dict(received) == dict(expected),
                ", ".join(
                    f"{plc}: {received.get(plc, 0)}/{count}"
                    for plc, count in sorted(expected.items())
                ),
            )
        )
    return checks


def _folder_agreement(
    observed: Observed, verdicts: dict[FrameKey, Verdict], class_names: tuple[str, ...]
) -> tuple[int, int] | None:
    """Count verdicts whose class equals the file's folder name, when folders are class names."""
    folders = {}
    for key, meta in observed.frames.items():
        parts = (meta.source or "").split("/")
        if len(parts) < 2 or parts[0] not in class_names:
            return None
        folders[key] = parts[0]
    if not folders:
        return None
    agree = sum(1 for key, verdict in verdicts.items() if folders.get(key) == verdict.class_name)
    return agree, len(folders)


def _stored_rows(config: PlantConfig, keys: set[FrameKey]) -> set[FrameKey]:
    """Return the (camera, frame) keys stored in `inspections`, waiting for the recorder to catch up."""
    if not keys:
        return set()
    cameras = sorted({camera for camera, _ in keys})
    deadline = time.monotonic() + ROWS_WAIT_S
    found: set[FrameKey] = set()
    with psycopg.connect(config.database.conninfo()) as connection:
        while time.monotonic() < deadline:
            cursor = connection.execute(
                "SELECT camera_id, frame_id FROM inspections WHERE camera_id = ANY(%s)", (cameras,)
            )
            found = {(camera, frame) for camera, frame in cursor.fetchall()} & keys
            connection.commit()
            if found == keys:
                break
            time.sleep(0.5)
    return found


async def _read_back(
    config: PlantConfig, verdicts: dict[FrameKey, Verdict]
) -> list[dict[str, Any]]:
    from defectline.connectors.plc.readback import read_output

    latest: dict[str, Verdict] = {}
    for verdict in verdicts.values():
        current = latest.get(verdict.station_id)
        if current is None or verdict.captured_at > current.captured_at:
            latest[verdict.station_id] = verdict

    entries = []
    for station in config.stations:
        verdict = latest.get(station.id)
        if verdict is None:
            continue
        expected = verdict_values(verdict, station.decision.uncertain_reject)
        for output in station.outputs:
            values = await read_output(config.plc(output.plc), output)
            match = all(_same(field_, values.get(field_), expected[field_]) for field_ in values)
            entries.append(
                {
                    "station": station.id,
                    "plc": output.plc,
                    "frame": verdict.frame_id,
                    "values": {str(k): v for k, v in values.items()},
                    "match": match,
                }
            )
    return entries


def _same(field_: VerdictField, actual: Any, expected: Any) -> bool:
    if field_ is VerdictField.CONFIDENCE:
        # float32 registers and nodes hold about 7 significant digits.
        return actual is not None and abs(float(actual) - float(expected)) < 1e-5
    return actual is not None and type(expected)(actual) == expected


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return (
        statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]
        if q < 1
        else values[-1]
    )


def print_report(report: DemoReport) -> None:
    def fmt_ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    lines = [
        "",
        "defectline demo summary",
        "-----------------------",
        f"frames in             {report.frames_seen} (sent {report.frames_sent})",
        f"verdicts out          {report.verdicts} ({report.passes} pass, "
        f"{sum(report.rejects_by_class.values())} reject, {report.uncertain} uncertain)",
        "rejects by class      "
        + (
            ", ".join(f"{name} {count}" for name, count in report.rejects_by_class.items())
            or "none"
        ),
        f"capture to PLC write  p50 {fmt_ms(report.latency_p50_ms)}, p99 {fmt_ms(report.latency_p99_ms)}",
        f"rows stored           {report.rows_stored}",
        "PLC writes            "
        + ", ".join(f"{plc} {count}" for plc, count in sorted(report.plc_writes.items())),
        f"dead letters          {report.dead_letters}",
    ]
    if report.folder_agreement is not None:
        agree, total = report.folder_agreement
        lines.append(f"class = folder name   {agree} of {total}")
    lines += [
        "final PLC values (read back over each protocol):",
    ]
    for entry in report.readback:
        values = ", ".join(
            f"{key.split('.')[-1].lower()}={_fmt_value(value)}"
            for key, value in entry["values"].items()
        )
        lines.append(
            f"  {entry['station']:<10} {entry['plc']:<14} {values}"
            f"  [{'matches' if entry['match'] else 'DIFFERS from'} frame {entry['frame']}]"
        )
    lines.extend(f"note: {note}" for note in report.notes)
    lines.append("checks:")
    for check in report.checks:
        lines.append(f"  [{'ok' if check.ok else 'FAILED'}] {check.name}: {check.detail}")
    lines.append("RESULT: " + ("all checks passed" if report.ok else "some checks FAILED"))
    print("\n".join(lines))


def _fmt_value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
