"""PostgresStore against a real PostgreSQL server: idempotent writes, time zones, failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest

from defectline.config.models import DatabaseConfig
from defectline.connectors.store.errors import StoreError, StoreUnavailableError
from defectline.connectors.store.postgres import PostgresStore
from defectline.deploy.local.ports import free_port
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.plc_writes import PlcWriteResult, WriteStatus
from defectline.schemas.verdicts import Outcome, Verdict

pytestmark = pytest.mark.asyncio(loop_scope="session")

VerdictFactory = Callable[..., Verdict]


async def _count(conn: psycopg.AsyncConnection, table: str) -> int:
    cursor = await conn.execute(f"SELECT count(*) FROM {table}")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_write_verdicts_twice_stores_each_once(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: VerdictFactory
) -> None:
    verdicts = [verdict_factory(i) for i in range(5)]

    first = await store.write_verdicts(verdicts)
    second = await store.write_verdicts(verdicts)

    assert first == 5
    assert second == 0
    assert await _count(database, "inspections") == 5
    assert await store.count_inspections() == 5


async def test_write_verdicts_duplicate_in_one_batch(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: VerdictFactory
) -> None:
    verdict = verdict_factory(1)

    inserted = await store.write_verdicts([verdict, verdict, verdict_factory(2)])

    assert inserted == 2
    assert await _count(database, "inspections") == 2


async def test_write_verdicts_empty_batch(store: PostgresStore) -> None:
    assert await store.write_verdicts([]) == 0


async def test_write_verdicts_stores_every_field(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: VerdictFactory
) -> None:
    verdict = verdict_factory(3, part_id=None)

    await store.write_verdicts([verdict])

    cursor = await database.execute(
        "SELECT captured_at, decided_at, plant, station_id, camera_id, frame_id, sequence,"
        " part_id, outcome, class_name, class_code, confidence, scores, model_name,"
        " model_version, decode_ms, preprocess_ms, inference_ms, queue_ms, stored_at"
        " FROM inspections"
    )
    row = await cursor.fetchone()
    assert row is not None
    assert row[:12] == (
        verdict.captured_at,
        verdict.decided_at,
        "plant-a",
        "station-1",
        "cam-1",
        "frame-00003",
        3,
        None,
        "reject",
        "scratch",
        1,
        0.91,
    )
    assert row[12] == {"ok": 0.09, "scratch": 0.91}
    assert row[13:19] == ("surface-demo", "3", 1.5, 2.25, 7.0, 3.0)
    assert row[19] is not None


async def test_write_verdicts_splits_past_parameter_limit(
    database_config: DatabaseConfig,
    database: psycopg.AsyncConnection,
    verdict_factory: VerdictFactory,
) -> None:
    # 19 columns x 3500 rows is more than the 65535 bind parameters one statement may carry.
    config = database_config.model_copy(update={"batch_size": 10_000})
    verdicts = [verdict_factory(i) for i in range(3500)]

    async with PostgresStore(config) as store:
        await store.migrate()
        inserted = await store.write_verdicts(verdicts)

    assert inserted == 3500
    assert await _count(database, "inspections") == 3500


async def test_write_verdicts_small_batch_size_keeps_all(
    database_config: DatabaseConfig,
    database: psycopg.AsyncConnection,
    verdict_factory: VerdictFactory,
) -> None:
    config = database_config.model_copy(update={"batch_size": 7})

    async with PostgresStore(config) as store:
        await store.migrate()
        inserted = await store.write_verdicts([verdict_factory(i) for i in range(20)])

    assert inserted == 20
    assert await _count(database, "inspections") == 20


async def test_write_verdicts_unvalidated_naive_timestamp_rejected(
    store: PostgresStore, database: psycopg.AsyncConnection, verdict_factory: VerdictFactory
) -> None:
    valid = verdict_factory(0)
    naive = Verdict.model_construct(
        **{**dict(valid), "frame_id": "frame-naive", "captured_at": datetime(2026, 3, 2, 8, 0)}
    )

    with pytest.raises(StoreError) as caught:
        await store.write_verdicts([valid, naive])

    message = str(caught.value)
    assert "camera=cam-1 frame=frame-naive" in message
    assert "captured_at=2026-03-02T08:00:00 has no time zone" in message
    assert await _count(database, "inspections") == 0


async def test_timestamps_keep_instant_across_time_zones(
    database_config: DatabaseConfig,
    database_conninfo: str,
    verdict_factory: VerdictFactory,
) -> None:
    # The server's default session TimeZone is New York; the store must still keep the instant.
    async with await psycopg.AsyncConnection.connect(database_conninfo, autocommit=True) as admin:
        await admin.execute(
            psycopg.sql.SQL("ALTER DATABASE {} SET TimeZone = 'America/New_York'").format(
                psycopg.sql.Identifier(database_config.dbname)
            )
        )
    captured_at = datetime(
        2026, 7, 1, 23, 30, 0, 250000, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    verdict = verdict_factory(0, captured_at=captured_at, decided_at=captured_at)

    async with PostgresStore(database_config) as store:
        await store.migrate()
        await store.write_verdicts([verdict])

    async with await psycopg.AsyncConnection.connect(database_conninfo, autocommit=True) as conn:
        cursor = await conn.execute("SHOW TimeZone")
        assert await cursor.fetchone() == ("America/New_York",)
        cursor = await conn.execute(
            "SELECT captured_at, to_char(captured_at AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS.US') FROM inspections"
        )
        stored_at_new_york, utc_text = await cursor.fetchone() or (None, None)

    assert stored_at_new_york == captured_at
    assert stored_at_new_york.tzinfo is not None
    assert stored_at_new_york.utcoffset() == timedelta(hours=-4)
    assert utc_text == "2026-07-01T18:00:00.250000"

    async with await psycopg.AsyncConnection.connect(
        database_conninfo, autocommit=True, options="-c TimeZone=Asia/Tokyo"
    ) as conn:
        cursor = await conn.execute("SELECT captured_at FROM inspections")
        (stored_at_tokyo,) = await cursor.fetchone() or (None,)

    assert stored_at_tokyo == captured_at
    assert stored_at_tokyo.astimezone(ZoneInfo("Asia/Tokyo")).hour == 3


async def test_connect_unreachable_names_address_not_password() -> None:
    port = free_port()
    config = DatabaseConfig(
        host="127.0.0.1",
        port=port,
        dbname="inspections_db",
        user="recorder",
        password="s3cret-hunter2",
        connect_timeout_s=2.0,
    )
    store = PostgresStore(config)

    with pytest.raises(StoreUnavailableError) as caught:
        await store.connect()

    message = str(caught.value)
    assert f"127.0.0.1:{port}/inspections_db" in message
    assert "as user recorder" in message
    assert "Connection refused" in message
    assert "s3cret-hunter2" not in message
    assert "s3cret-hunter2" not in repr(caught.value.__cause__)
    assert not store.is_connected


async def test_write_unreachable_raises_store_unavailable(
    verdict_factory: VerdictFactory,
) -> None:
    port = free_port()
    store = PostgresStore(DatabaseConfig(port=port, connect_timeout_s=2.0))

    with pytest.raises(StoreUnavailableError) as caught:
        await store.write_verdicts([verdict_factory(0)])

    assert f"127.0.0.1:{port}/defectline" in str(caught.value)


async def test_lost_connection_raises_then_reconnects(
    store: PostgresStore,
    database: psycopg.AsyncConnection,
    database_config: DatabaseConfig,
    verdict_factory: VerdictFactory,
) -> None:
    assert await store.write_verdicts([verdict_factory(0)]) == 1
    await database.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name = 'defectline'",
        (database_config.dbname,),
    )

    with pytest.raises(StoreUnavailableError) as caught:
        await store.write_verdicts([verdict_factory(1)])

    assert "insert into inspections" in str(caught.value)
    assert "retrying the batch is safe" in str(caught.value)
    assert not store.is_connected

    assert await store.write_verdicts([verdict_factory(1), verdict_factory(0)]) == 1
    assert store.is_connected
    assert await _count(database, "inspections") == 2


async def test_write_before_migrate_names_migrate_command(
    database_config: DatabaseConfig, verdict_factory: VerdictFactory
) -> None:
    async with PostgresStore(database_config) as store:
        with pytest.raises(StoreError) as caught:
            await store.write_verdicts([verdict_factory(0)])

    assert not isinstance(caught.value, StoreUnavailableError)
    assert 'relation "inspections" does not exist' in str(caught.value)
    assert "defectline db migrate" in str(caught.value)


async def test_write_plc_results_twice_stores_each_once(
    store: PostgresStore,
    database: psycopg.AsyncConnection,
    plc_result_factory: Callable[..., PlcWriteResult],
) -> None:
    results = [plc_result_factory(i) for i in range(4)]
    retried = plc_result_factory(
        0, attempts=3, written_at=results[0].written_at + timedelta(seconds=1)
    )

    assert await store.write_plc_results(results) == 4
    assert await store.write_plc_results([*results, retried]) == 0

    cursor = await database.execute(
        "SELECT plc, frame_id, status, attempts, latency_ms, error, written_at"
        " FROM plc_writes WHERE frame_id = 'frame-00000'"
    )
    assert await cursor.fetchall() == [
        ("line-plc", "frame-00000", "ok", 1, 10.0, None, results[0].written_at)
    ]


async def test_write_plc_results_same_frame_two_plcs(
    store: PostgresStore, plc_result_factory: Callable[..., PlcWriteResult]
) -> None:
    inserted = await store.write_plc_results(
        [plc_result_factory(0, plc="line-plc"), plc_result_factory(0, plc="sorter-plc")]
    )

    assert inserted == 2


async def test_plc_latency_percentiles_of_successful_writes(
    store: PostgresStore, plc_result_factory: Callable[..., PlcWriteResult]
) -> None:
    ok = [
        plc_result_factory(i, latency_ms=float(latency))
        for i, latency in enumerate(range(5, 205, 2))
    ]
    failed = plc_result_factory(
        500, status=WriteStatus.FAILED, attempts=5, latency_ms=9000.0, error="timed out"
    )
    await store.write_plc_results([*ok, failed])

    summary = await store.plc_latency_percentiles()

    latencies = [result.latency_ms for result in ok]
    assert summary.count == len(ok)
    assert summary.p50_ms == pytest.approx(float(np.percentile(latencies, 50)))
    assert summary.p99_ms == pytest.approx(float(np.percentile(latencies, 99)))
    assert (await store.plc_latency_percentiles(plc="other-plc")).count == 0
    assert (await store.plc_latency_percentiles(plc="other-plc")).p50_ms is None


async def test_count_rejects_by_class(
    store: PostgresStore, verdict_factory: VerdictFactory
) -> None:
    verdicts = [verdict_factory(i) for i in range(9)]  # frames 0, 3, 6 are scratch rejects
    pit = {"outcome": Outcome.REJECT, "class_name": "pit", "class_code": 2}
    verdicts.append(verdict_factory(100, **pit))
    verdicts.append(verdict_factory(101, station_id="station-2", **pit))
    await store.write_verdicts(verdicts)

    assert await store.count_rejects_by_class() == {"scratch": 3, "pit": 2}
    assert await store.count_rejects_by_class(station_id="station-2") == {"pit": 1}
    assert await store.count_inspections(outcome="pass") == 6
    assert await store.count_inspections(station_id="station-2") == 1
    since = verdicts[5].captured_at
    assert await store.count_inspections(since=since) == 6


async def test_write_dead_letters_idempotent_by_source(
    store: PostgresStore,
    database: psycopg.AsyncConnection,
    dead_letter_factory: Callable[..., DeadLetter],
) -> None:
    first = dead_letter_factory(offset=41)
    reprocessed = dead_letter_factory(
        offset=41, occurred_at=first.occurred_at + timedelta(minutes=5)
    )

    assert await store.write_dead_letters([first, dead_letter_factory(offset=42)]) == 2
    assert await store.write_dead_letters([reprocessed]) == 0

    cursor = await database.execute(
        "SELECT stage, error_type, source_topic, source_partition, source_offset, headers,"
        " payload_bytes, occurred_at FROM dead_letters WHERE source_offset = 41"
    )
    assert await cursor.fetchall() == [
        (
            "inference",
            "FrameHeaderError",
            "inspection.frames.v1",
            2,
            41,
            {"schema": "frame.v1"},
            len(b"GIF89a-not-supported"),
            first.occurred_at,
        )
    ]


async def test_write_dead_letters_without_source(
    store: PostgresStore,
    database: psycopg.AsyncConnection,
    dead_letter_factory: Callable[..., DeadLetter],
) -> None:
    letter = dead_letter_factory(offset=None, stage="camera", frame_id="frame-7")
    other = dead_letter_factory(offset=None, stage="camera", frame_id="frame-8")

    assert await store.write_dead_letters([letter, other]) == 2
    assert await store.write_dead_letters([letter]) == 0
    assert await _count(database, "dead_letters") == 2


async def test_write_dead_letters_invalid_payload_rejected(
    store: PostgresStore, dead_letter_factory: Callable[..., DeadLetter]
) -> None:
    letter = dead_letter_factory(offset=3, payload_b64="not base64!")

    with pytest.raises(StoreError) as caught:
        await store.write_dead_letters([letter])

    assert "payload_b64 is not valid base64" in str(caught.value)
