"""Quality tables on real PostgreSQL: daily buckets over DST, replays, feedback, drift, rollups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from defectline.connectors.store.errors import StoreError
from defectline.connectors.store.postgres import PostgresStore
from defectline.connectors.store.rollups import daily_counts
from defectline.schemas.drift import DriftEvent
from defectline.schemas.feedback import Feedback, FeedbackLabel
from defectline.schemas.verdicts import BoxPx, Region, Verdict

pytestmark = pytest.mark.asyncio(loop_scope="session")

BERLIN = "Europe/Berlin"


async def _scalar(conn: psycopg.AsyncConnection, query: str) -> object:
    cursor = await conn.execute(query)  # type: ignore[arg-type]
    row = await cursor.fetchone()
    return row[0] if row else None


async def _write_hourly(
    store: PostgresStore, factory: Callable[..., Verdict], start: datetime, hours: int
) -> None:
    """One verdict every hour on the half hour, from `start` for `hours` hours."""
    verdicts = [
        factory(
            index,
            captured_at=start + timedelta(hours=index, minutes=30),
            decided_at=start + timedelta(hours=index, minutes=30, seconds=1),
        )
        for index in range(hours)
    ]
    await store.write_verdicts(verdicts)


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 3, 2), 24)],
)
async def test_daily_counts_follow_plant_day(
    store: PostgresStore,
    database: psycopg.AsyncConnection,
    verdict_factory: Callable[..., Verdict],
    day: date,
    hours: int,
) -> None:
    # Local midnight in Berlin: 23:00 UTC the day before in winter time (CET, UTC+1).
    winter_start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=1)
    start = winter_start if day.month != 10 else winter_start - timedelta(hours=1)
    # Three hours on both sides, so the neighbouring days get rows too.
    await _write_hourly(store, verdict_factory, start - timedelta(hours=3), hours + 6)

    counts = await daily_counts(
        database, BERLIN, start - timedelta(days=1), start + timedelta(days=2)
    )

    per_day: dict[date, int] = {}
    for count in counts:
        per_day[count.day] = per_day.get(count.day, 0) + count.inspected
    assert per_day[day] == hours
    assert per_day[day - timedelta(days=1)] == 3
    assert per_day[day + timedelta(days=1)] == 3
    own = [count for count in counts if count.day == day]
    assert {count.day_hours for count in own} == {hours}
    assert own[0].day_start == start
    assert own[0].day_end - own[0].day_start == timedelta(hours=hours)


async def test_daily_counts_reject_naive_bounds(database: psycopg.AsyncConnection) -> None:
    with pytest.raises(StoreError, match="start=2026-03-01T00:00:00 has no time zone"):
        await daily_counts(database, BERLIN, datetime(2026, 3, 1), datetime(2026, 3, 2, tzinfo=UTC))


async def test_naive_verdict_rejected_before_storing(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: Callable[..., Verdict]
) -> None:
    good = verdict_factory(1)
    # model_construct skips validation, as a caller building messages by hand might.
    naive = Verdict.model_construct(
        **{**dict(good), "frame_id": "naive", "captured_at": datetime(2026, 3, 2, 8, 0)}
    )

    with pytest.raises(StoreError, match="captured_at=2026-03-02T08:00:00 has no time zone"):
        await store.write_verdicts([good, naive])

    assert await _scalar(database, "SELECT count(*) FROM inspections") == 0


async def test_aware_timestamps_stored_as_same_instant(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: Callable[..., Verdict]
) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 7, 1, 10, 0, tzinfo=ZoneInfo(BERLIN))
    await database.execute("SET TIME ZONE 'America/New_York'")
    await store.write_verdicts([verdict_factory(0, captured_at=local, decided_at=local)])

    stored = await _scalar(database, "SELECT captured_at FROM inspections")

    assert stored == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


async def test_replayed_verdicts_leave_counts_unchanged(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: Callable[..., Verdict]
) -> None:
    region = Region(
        kind="box",
        class_name="scratch",
        class_code=1,
        confidence=0.9,
        box=BoxPx(x1=1, y1=2, x2=30, y2=40),
        area_px=1102,
        area_pct=1.2,
    )
    verdicts = [
        verdict_factory(index, regions=[region] if index % 3 == 0 else []) for index in range(300)
    ]

    first = await store.write_verdicts(verdicts)
    await store.refresh_rollups()
    rollup_first = await _scalar(database, "SELECT sum(inspected) FROM inspection_rollup_1m")
    second = await store.write_verdicts(verdicts)
    third = await store.write_verdicts(list(reversed(verdicts)))
    await store.refresh_rollups()

    assert (first, second, third) == (300, 0, 0)
    assert await _scalar(database, "SELECT count(*) FROM inspections") == 300
    assert await _scalar(database, "SELECT count(*) FROM defect_regions") == 100
    assert rollup_first == 300
    assert await _scalar(database, "SELECT sum(inspected) FROM inspection_rollup_1m") == 300
    assert await _scalar(database, "SELECT sum(rejected) FROM inspection_rollup_1h") == 100


async def test_rollups_pick_up_late_rows_at_refresh(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: Callable[..., Verdict]
) -> None:
    await store.write_verdicts([verdict_factory(index) for index in range(10)])
    await store.refresh_rollups()
    late = verdict_factory(
        500,
        captured_at=datetime(2026, 3, 1, 6, 0, tzinfo=UTC),
        decided_at=datetime(2026, 3, 1, 6, 0, 1, tzinfo=UTC),
    )
    await store.write_verdicts([late])

    stale = await _scalar(database, "SELECT sum(inspected) FROM inspection_rollup_1h")
    refreshed = await store.refresh_rollups()

    assert stale == 10
    assert refreshed == ["inspection_rollup_1h", "inspection_rollup_1m", "plc_write_rollup_1m"]
    assert await _scalar(database, "SELECT sum(inspected) FROM inspection_rollup_1h") == 11
    assert (
        await _scalar(
            database,
            "SELECT inspected FROM inspection_rollup_1h WHERE bucket = '2026-03-01T06:00Z'",
        )
        == 1
    )


async def test_feedback_stored_once_and_joined(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: Callable[..., Verdict]
) -> None:
    await store.write_verdicts([verdict_factory(index) for index in range(6)])
    reports = [
        Feedback(label=FeedbackLabel.FALSE_REJECT, camera_id="cam-1", frame_id="frame-00003"),
        Feedback(label=FeedbackLabel.ESCAPE, part_id="part-4", class_name="pit", note="line 2"),
    ]

    assert await store.write_feedback(reports) == 2
    assert await store.write_feedback(reports) == 0

    cursor = await database.execute(
        "SELECT label, frame_id, class_name, outcome FROM feedback_inspections ORDER BY label"
    )
    assert await cursor.fetchall() == [
        ("escape", "frame-00004", "pit", "pass"),
        ("false-reject", "frame-00003", "scratch", "reject"),
    ]
    cursor = await database.execute(
        "SELECT class_name, rejected, false_rejects, false_reject_rate, passed, escapes,"
        " escape_rate FROM quality_rates_1h ORDER BY class_name"
    )
    assert await cursor.fetchall() == [
        ("pit", 0, 0, None, 4, 1, 0.25),
        ("scratch", 2, 1, 0.5, 4, 0, 0.0),
    ]


async def test_drift_episode_opened_and_closed(
    store: PostgresStore, database: psycopg.AsyncConnection
) -> None:
    start = {
        "kind": "start",
        "episode_id": "cam-1-ep1",
        "plant": "p",
        "station_id": "station-1",
        "camera_id": "cam-1",
        "model_name": "m",
        "model_version": "1",
        "reference_version": 1,
        "occurred_at": "2026-03-02T08:00:00Z",
        "frame_id": "f1",
        "sequence": 10,
        "onset_sequence": 5,
        "metric": "brightness",
        "direction": "down",
        "magnitude": -31.0,
        "causes": [
            {
                "metric": "brightness",
                "direction": "down",
                "magnitude": -31.0,
                "reference_value": 120.0,
                "current_value": 82.8,
            }
        ],
        "message": "brightness 31% below reference since frame 5",
    }
    recovery = start | {"kind": "recovery", "occurred_at": "2026-03-02T08:30:00Z"}
    events = [DriftEvent.model_validate(start), DriftEvent.model_validate(recovery)]

    assert await store.write_drift_events(events) == 2
    assert await store.write_drift_events(events) == 0

    cursor = await database.execute(
        "SELECT started_at, ended_at, metric, message FROM drift_events"
    )
    assert await cursor.fetchall() == [
        (
            datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
            datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
            "brightness",
            "brightness 31% below reference since frame 5",
        )
    ]


async def test_deployment_recorded_once_per_version(
    store: PostgresStore, database: psycopg.AsyncConnection
) -> None:
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    added = [
        await store.record_deployment(at, "station-1", "surface", "1"),
        await store.record_deployment(at + timedelta(hours=1), "station-1", "surface", "1"),
        await store.record_deployment(at + timedelta(hours=2), "station-1", "surface", "2"),
        await store.record_deployment(at + timedelta(hours=2), "station-2", "surface", "2"),
    ]

    assert added == [True, False, True, True]
    assert await _scalar(database, "SELECT count(*) FROM model_deployments") == 3
