"""Every panel query, macros expanded for a fixed range, against seeded rows on real PostgreSQL.

Each expected value is recomputed here from the seed's arithmetic rules, not read back from the
database, so a wrong join, filter or bucket in a panel fails its test.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from defectline.config.models import DatabaseConfig
from defectline.connectors.store.postgres import PostgresStore
from defectline.dashboards.catalog import iter_panels, load_dashboards
from defectline.dashboards.macros import expand
from defectline.schemas.feedback import Feedback, FeedbackLabel
from defectline.schemas.plc_writes import PlcWriteResult, WriteStatus
from defectline.schemas.verdicts import ModelRef, Outcome, StageTimings, Verdict

RANGE_FROM = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RANGE_TO = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STEP = timedelta(seconds=15)
COUNT = 240
CAMERA_STATION = {"cam-a": "s1", "cam-b": "s2"}
REJECT_CLASSES = ("scratch", "pit", "stain")


def percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the sorted values."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


@dataclass
class SeedLine:
    verdicts: list[Verdict] = field(default_factory=list)
    outside: list[Verdict] = field(default_factory=list)
    plc_results: list[PlcWriteResult] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)


def seed_verdict(index: int, captured_at: datetime) -> Verdict:
    camera = "cam-a" if index % 2 == 0 else "cam-b"
    if index % 5 == 0:
        outcome, class_name = Outcome.REJECT, REJECT_CLASSES[index % 3]
    elif index % 7 == 0:
        outcome, class_name = Outcome.UNCERTAIN, "scratch"
    else:
        outcome, class_name = Outcome.PASS, "ok"
    return Verdict(
        plant="plant-a",
        station_id=CAMERA_STATION[camera],
        camera_id=camera,
        frame_id=f"f{index:04d}",
        sequence=index,
        part_id=f"part-{index}",
        captured_at=captured_at,
        decided_at=captured_at + timedelta(milliseconds=20 + index % 13),
        outcome=outcome,
        class_name=class_name,
        class_code=0,
        confidence=0.05 + (index * 37 % 95) / 100,
        scores={class_name: 0.5},
        model=ModelRef(name="surface", version="2"),
        timings=StageTimings(decode_ms=1, preprocess_ms=1, inference_ms=5),
        evidence_uri=f"file:///archive/{camera}/f{index:04d}.png" if outcome == "reject" else None,
    )


def plc_status(index: int) -> WriteStatus:
    if index % 19 == 0:
        return WriteStatus.FAIL_SAFE
    if index % 13 == 0:
        return WriteStatus.LATE
    if index % 11 == 0:
        return WriteStatus.FAILED
    return WriteStatus.OK


def seed_plc_result(verdict: Verdict) -> PlcWriteResult:
    index = verdict.sequence
    latency_ms = float(10 + index % 17)
    return PlcWriteResult(
        plc="plc-1",
        station_id=verdict.station_id,
        camera_id=verdict.camera_id,
        frame_id=verdict.frame_id,
        sequence=index,
        status=plc_status(index),
        attempts=1,
        captured_at=verdict.captured_at,
        written_at=verdict.captured_at + timedelta(milliseconds=latency_ms),
        latency_ms=latency_ms,
    )


def build_seed() -> SeedLine:
    seed = SeedLine()
    for index in range(COUNT):
        seed.verdicts.append(seed_verdict(index, RANGE_FROM + index * STEP))
    # Outside the range by one minute on both sides; no panel may count them.
    seed.outside = [
        seed_verdict(1000, RANGE_FROM - timedelta(minutes=1)),
        seed_verdict(1005, RANGE_TO + timedelta(minutes=1)),
    ]
    seed.plc_results = [seed_plc_result(v) for v in seed.verdicts + seed.outside]

    rejects = [v for v in seed.verdicts if v.outcome == "reject"]
    passes = [v for v in seed.verdicts if v.outcome == "pass"]
    for verdict in rejects[:6]:
        seed.feedback.append(
            Feedback(
                label=FeedbackLabel.FALSE_REJECT,
                camera_id=verdict.camera_id,
                frame_id=verdict.frame_id,
                reported_at=RANGE_TO,
            )
        )
    # The same frame reported twice counts once.
    seed.feedback.append(
        Feedback(
            label=FeedbackLabel.FALSE_REJECT,
            camera_id=rejects[0].camera_id,
            frame_id=rejects[0].frame_id,
            reported_at=RANGE_TO,
        )
    )
    for verdict in passes[:3]:
        seed.feedback.append(
            Feedback(
                label=FeedbackLabel.ESCAPE,
                part_id=verdict.part_id,
                class_name="pit",
                reported_at=RANGE_TO,
            )
        )
    return seed


@pytest.fixture
async def seeded(database_conninfo: str) -> AsyncIterator[tuple[SeedLine, psycopg.AsyncConnection]]:
    """A migrated database holding the seed rows, with the rollups refreshed."""
    params = psycopg.conninfo.conninfo_to_dict(database_conninfo)
    config = DatabaseConfig(
        host=params["host"], port=int(params["port"]), dbname=params["dbname"], user=params["user"]
    )
    seed = build_seed()
    store = PostgresStore(config)
    await store.migrate()
    async with store:
        await store.write_verdicts(seed.verdicts + seed.outside)
        await store.write_plc_results(seed.plc_results)
        await store.write_feedback(seed.feedback)
        await store.refresh_rollups()

    conn = await psycopg.AsyncConnection.connect(database_conninfo, autocommit=True)
    await conn.execute(
        """
        INSERT INTO drift_events (started_at, episode_id, station_id, camera_id, model_name,
                                  model_version, metric, direction, magnitude, message, ended_at)
        VALUES
          ('2026-03-02T08:10:00Z', 'ep-inside', 's1', 'cam-a', 'surface', '2', 'brightness',
           'down', -31, 'brightness 31% below reference', '2026-03-02T08:20:00Z'),
          ('2026-03-02T07:30:00Z', 'ep-before', 's2', 'cam-b', 'surface', '2', 'confidence',
           'changed', 0.42, 'confidence PSI 0.42', '2026-03-02T08:05:00Z'),
          ('2026-03-02T09:30:00Z', 'ep-after', 's1', 'cam-a', 'surface', '2', 'sharpness',
           'down', -50, 'sharpness 50% below reference', NULL)
        """
    )
    await conn.execute(
        "INSERT INTO model_deployments (deployed_at, station_id, model_name, model_version)"
        " VALUES ('2026-03-02T08:30:00Z', 's1', 'surface', '2'),"
        " ('2026-03-01T08:30:00Z', 's1', 'surface', '1')"
    )
    yield seed, conn
    await conn.close()


INTERVAL_S = 300
PLANT_TZ = "Europe/Berlin"
VARIABLES = {"station": ["s1", "s2"], "camera": ["cam-a", "cam-b"], "plant_tz": PLANT_TZ}


def _bucket(moment: datetime, width_s: int = INTERVAL_S) -> int:
    epoch = int(moment.timestamp())
    return epoch - epoch % width_s


async def _run(conn: psycopg.AsyncConnection, sql: str) -> list[tuple[Any, ...]]:
    expanded = expand(sql, RANGE_FROM, RANGE_TO, INTERVAL_S, VARIABLES)
    cursor = await conn.execute(expanded)  # type: ignore[arg-type]
    return await cursor.fetchall()


def _series(rows: list[tuple[Any, ...]]) -> dict[tuple[int, str], float]:
    """Long-format rows (time, metric, value) as {(epoch, metric): value}."""
    return {(int(time), metric): float(value) for time, metric, value in rows if value is not None}


def _close(actual: dict[Any, float], expected: dict[Any, float]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value), key


# --- expected values, one function per panel ------------------------------------------------


def throughput(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    counts = Counter((_bucket(v.captured_at), v.station_id) for v in seed.verdicts)
    _close(_series(rows), {key: count / 5 for key, count in counts.items()})


def reject_rate(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    totals, rejects = Counter(), Counter()
    for v in seed.verdicts:
        key = (_bucket(v.captured_at), v.station_id)
        totals[key] += 1
        rejects[key] += v.outcome == "reject"
    _close(_series(rows), {key: 100 * rejects[key] / totals[key] for key in totals})


def plc_latency_p99(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    latencies: dict[tuple[int, str], list[float]] = defaultdict(list)
    for r in seed.plc_results:
        if r.status == "ok" and RANGE_FROM <= r.captured_at <= RANGE_TO:
            latencies[(_bucket(r.captured_at), r.plc)].append(r.latency_ms)
    expected = {key: percentile_cont(values, 0.99) for key, values in latencies.items()}
    _close(_series(rows), expected)


def plc_failures(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    failures = Counter()
    for r in seed.plc_results:
        if RANGE_FROM <= r.captured_at <= RANGE_TO:
            failures[(_bucket(r.captured_at), r.plc)] += r.status == "failed"
    _close(_series(rows), dict(failures))
    assert sum(failures.values()) == len([i for i in range(240) if plc_status(i) == "failed"])


def late_and_fail_safe(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    expected: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in seed.plc_results:
        if RANGE_FROM <= r.captured_at <= RANGE_TO:
            counts = expected[_bucket(r.captured_at)]
            counts[0] += r.late
            counts[1] += r.fail_safe
    assert {int(t): [late, fail_safe] for t, late, fail_safe in rows} == dict(expected)


def daily_totals(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    zone = ZoneInfo(PLANT_TZ)
    expected: dict[tuple[Any, str], list[int]] = defaultdict(lambda: [0, 0])
    for v in seed.verdicts:
        counts = expected[(v.captured_at.astimezone(zone).date(), v.station_id)]
        counts[0] += 1
        counts[1] += v.outcome == "reject"
    actual = {
        (day, station): [inspected, rejected]
        for day, hours, station, inspected, rejected, _pct in rows
    }
    assert actual == dict(expected)
    assert all(hours == 24 for _day, hours, *_ in rows)
    for _day, _hours, _station, inspected, rejected, pct in rows:
        assert float(pct) == pytest.approx(round(100 * rejected / inspected, 2))


def confidence_heatmap(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    counts = Counter()
    for v in seed.verdicts:
        band = min(math.floor(v.confidence * 10), 9) / 10
        counts[(_bucket(v.captured_at), f"{band:.1f}")] += 1
    _close(_series(rows), dict(counts))


def uncertain_rate(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    totals, uncertain = Counter(), Counter()
    for v in seed.verdicts:
        key = (_bucket(v.captured_at), v.camera_id)
        totals[key] += 1
        uncertain[key] += v.outcome == "uncertain"
    _close(_series(rows), {key: 100 * uncertain[key] / totals[key] for key in totals})


def confidence_percentiles(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    values: dict[int, list[float]] = defaultdict(list)
    for v in seed.verdicts:
        values[_bucket(v.captured_at)].append(v.confidence)
    actual = {int(t): (p05, median) for t, p05, median in rows}
    assert actual.keys() == values.keys()
    for key, confidences in values.items():
        assert actual[key][0] == pytest.approx(percentile_cont(confidences, 0.05))
        assert actual[key][1] == pytest.approx(percentile_cont(confidences, 0.5))


def drift_table(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    assert [(row[1], row[2]) for row in rows] == [("cam-a", "brightness"), ("cam-b", "confidence")]
    assert rows[0][5] == "brightness 31% below reference"


def pareto(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    counts = Counter(v.class_name for v in seed.verdicts if v.outcome == "reject")
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    total, running, expected = sum(counts.values()), 0, []
    for name, count in ordered:
        running += count
        expected.append((name, count, round(100 * running / total, 1)))
    assert [(name, count, float(pct)) for name, count, pct in rows] == expected
    assert expected[-1][2] == 100.0


def rejects_by_camera(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    counts = Counter(v.camera_id for v in seed.verdicts if v.outcome == "reject")
    assert dict(rows) == dict(counts)


def rejects_by_hour(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    zone = ZoneInfo(PLANT_TZ)
    totals, rejects = Counter(), Counter()
    for v in seed.verdicts:
        hour = f"{v.captured_at.astimezone(zone).hour:02d}"
        totals[hour] += 1
        rejects[hour] += v.outcome == "reject"
    # 08:00-09:00 UTC is 09:00-10:00 in Berlin in March (CET, UTC+1).
    assert list(totals) == ["09"]
    assert [(h, r, float(p)) for h, r, p in rows] == [
        (hour, rejects[hour], round(100 * rejects[hour] / totals[hour], 2)) for hour in totals
    ]


def feedback_rates(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    by_frame = {(v.camera_id, v.frame_id): v for v in seed.verdicts}
    by_part = {v.part_id: v for v in seed.verdicts}
    rejected = Counter((v.station_id, v.class_name) for v in seed.verdicts if v.outcome == "reject")
    false_rejects: dict[tuple[str, str], set[str]] = defaultdict(set)
    escapes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for report in seed.feedback:
        if report.label == "false-reject":
            verdict = by_frame[(report.camera_id, report.frame_id)]
            false_rejects[(verdict.station_id, verdict.class_name)].add(verdict.frame_id)
        else:
            verdict = by_part[report.part_id]
            escapes[(verdict.station_id, report.class_name)].add(verdict.frame_id)
    keys = set(rejected) | set(escapes)
    expected = {}
    for key in keys:
        count = len(false_rejects[key])
        pct = round(100 * count / rejected[key], 2) if rejected[key] else None
        expected[key] = (rejected[key], count, pct, len(escapes[key]))
    actual = {
        (station, cls): (rej, fr, None if pct is None else float(pct), esc)
        for station, cls, rej, fr, pct, esc in rows
    }
    assert actual == expected
    assert sum(len(frames) for frames in false_rejects.values()) == 6


def escape_rate(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    by_part = {v.part_id: v for v in seed.verdicts}
    passed = Counter(
        (_bucket(v.captured_at, 3600), v.station_id) for v in seed.verdicts if v.outcome == "pass"
    )
    escapes = Counter()
    for report in seed.feedback:
        if report.label == "escape":
            verdict = by_part[report.part_id]
            escapes[(_bucket(verdict.captured_at, 3600), verdict.station_id)] += 1
    actual = {(int(t.timestamp()), metric): float(value) for t, metric, value in rows}
    expected = {key: 100 * escapes[key] / passed[key] for key in passed}
    _close({k: v for k, v in actual.items() if k in expected}, expected)
    assert escapes, "the seed must contain escapes"


def recent_rejects(seed: SeedLine, rows: list[tuple[Any, ...]]) -> None:
    rejects = sorted(
        (v for v in seed.verdicts if v.outcome == "reject"),
        key=lambda v: v.captured_at,
        reverse=True,
    )
    assert [row[3] for row in rows] == [v.frame_id for v in rejects]
    assert [row[7] for row in rows] == [v.evidence_uri for v in rejects]
    assert all(row[7].startswith("file:///archive/") for row in rows)


EXPECTED: dict[tuple[str, int], Callable[[SeedLine, list[tuple[Any, ...]]], None]] = {
    ("line_overview", 1): throughput,
    ("line_overview", 2): reject_rate,
    ("line_overview", 3): plc_latency_p99,
    ("line_overview", 4): plc_failures,
    ("line_overview", 5): late_and_fail_safe,
    ("line_overview", 6): daily_totals,
    ("model_health", 1): confidence_heatmap,
    ("model_health", 2): uncertain_rate,
    ("model_health", 3): confidence_percentiles,
    ("model_health", 4): drift_table,
    ("defect_analysis", 1): pareto,
    ("defect_analysis", 2): rejects_by_camera,
    ("defect_analysis", 3): rejects_by_hour,
    ("defect_analysis", 4): feedback_rates,
    ("defect_analysis", 5): escape_rate,
    ("defect_analysis", 6): recent_rejects,
}


def test_every_panel_has_an_expectation() -> None:
    panels = {
        (name, panel["id"])
        for name, dashboard in load_dashboards().items()
        for panel in iter_panels(dashboard)
    }
    assert panels == set(EXPECTED)


@pytest.mark.parametrize(("dashboard", "panel_id"), sorted(EXPECTED))
@pytest.mark.asyncio(loop_scope="session")
async def test_panel_query_matches_seed(
    seeded: tuple[SeedLine, psycopg.AsyncConnection], dashboard: str, panel_id: int
) -> None:
    seed, conn = seeded
    panel = next(p for p in iter_panels(load_dashboards()[dashboard]) if p["id"] == panel_id)

    rows = await _run(conn, panel["targets"][0]["rawSql"])

    assert rows, f"panel {panel['title']} returned no rows"
    EXPECTED[(dashboard, panel_id)](seed, rows)


@pytest.mark.asyncio(loop_scope="session")
async def test_drift_annotations_cover_overlapping_episodes(
    seeded: tuple[SeedLine, psycopg.AsyncConnection],
) -> None:
    _seed, conn = seeded
    annotations = load_dashboards()["model_health"]["annotations"]["list"]
    drift = next(a for a in annotations if a["name"] == "Drift alerts")
    deployments = next(a for a in annotations if a["name"] == "Model deployments")

    drift_rows = await _run(conn, drift["target"]["rawSql"])
    deployment_rows = await _run(conn, deployments["target"]["rawSql"])

    assert [(text, tags) for _t, _end, text, tags in drift_rows] == [
        ("confidence PSI 0.42", "cam-b,confidence"),
        ("brightness 31% below reference", "cam-a,brightness"),
    ]
    assert drift_rows[1][1] > drift_rows[1][0]
    assert [(text, tags) for _t, text, tags in deployment_rows] == [("surface 2", "s1")]


@pytest.mark.asyncio(loop_scope="session")
async def test_station_variable_filters_rows(
    seeded: tuple[SeedLine, psycopg.AsyncConnection],
) -> None:
    seed, conn = seeded
    panel = iter_panels(load_dashboards()["defect_analysis"])[1]
    expanded = expand(
        panel["targets"][0]["rawSql"],
        RANGE_FROM,
        RANGE_TO,
        INTERVAL_S,
        {**VARIABLES, "station": ["s2"]},
    )

    rows = await (await conn.execute(expanded)).fetchall()  # type: ignore[arg-type]

    expected = sum(1 for v in seed.verdicts if v.outcome == "reject" and v.station_id == "s2")
    assert rows == [("cam-b", expected)]
