"""Fixtures of the store tests: a DatabaseConfig for a fresh database and message factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from defectline.config.models import DatabaseConfig
from defectline.connectors.store.postgres import PostgresStore
from defectline.schemas.dead_letters import DeadLetter, SourceRecord
from defectline.schemas.plc_writes import PlcWriteResult, WriteStatus
from defectline.schemas.verdicts import ModelRef, Outcome, StageTimings, Verdict

BASE_TIME = datetime(2026, 3, 2, 8, 0, 0, 123456, tzinfo=UTC)


def config_from_conninfo(conninfo: str, **overrides: Any) -> DatabaseConfig:
    """Build the store's DatabaseConfig from a libpq conninfo string."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    fields: dict[str, Any] = {
        "host": params["host"],
        "port": int(params["port"]),
        "dbname": params["dbname"],
        "user": params["user"],
        "password": params.get("password"),
        "connect_timeout_s": 5.0,
    }
    fields.update(overrides)
    return DatabaseConfig(**fields)


@pytest.fixture
def database_config(database_conninfo: str) -> DatabaseConfig:
    return config_from_conninfo(database_conninfo)


@pytest.fixture
async def store(database_config: DatabaseConfig) -> AsyncIterator[PostgresStore]:
    """A connected store on a migrated, empty database."""
    store = PostgresStore(database_config)
    await store.migrate()
    await store.connect()
    yield store
    await store.close()


@pytest.fixture
async def database(database_conninfo: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """A separate autocommit connection for checking what the store wrote."""
    conn = await psycopg.AsyncConnection.connect(database_conninfo, autocommit=True)
    yield conn
    await conn.close()


def make_verdict(index: int = 0, **overrides: Any) -> Verdict:
    reject = index % 3 == 0
    class_name = "scratch" if reject else "ok"
    fields: dict[str, Any] = {
        "plant": "plant-a",
        "station_id": "station-1",
        "camera_id": "cam-1",
        "frame_id": f"frame-{index:05d}",
        "sequence": index,
        "part_id": f"part-{index}",
        "captured_at": BASE_TIME + timedelta(milliseconds=100 * index),
        "decided_at": BASE_TIME + timedelta(milliseconds=100 * index + 40),
        "outcome": Outcome.REJECT if reject else Outcome.PASS,
        "class_name": class_name,
        "class_code": 1 if reject else 0,
        "confidence": 0.91,
        "scores": {"ok": 0.09, "scratch": 0.91} if reject else {"ok": 0.91, "scratch": 0.09},
        "model": ModelRef(name="surface-demo", version="3"),
        "timings": StageTimings(decode_ms=1.5, preprocess_ms=2.25, inference_ms=7.0, queue_ms=3.0),
    }
    fields.update(overrides)
    return Verdict(**fields)


def make_plc_result(index: int = 0, **overrides: Any) -> PlcWriteResult:
    captured_at = BASE_TIME + timedelta(milliseconds=100 * index)
    latency_ms = float(10 + index)
    fields: dict[str, Any] = {
        "plc": "line-plc",
        "station_id": "station-1",
        "camera_id": "cam-1",
        "frame_id": f"frame-{index:05d}",
        "sequence": index,
        "status": WriteStatus.OK,
        "attempts": 1,
        "captured_at": captured_at,
        "written_at": captured_at + timedelta(milliseconds=latency_ms),
        "latency_ms": latency_ms,
    }
    fields.update(overrides)
    return PlcWriteResult(**fields)


def make_dead_letter(offset: int | None = 0, **overrides: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "stage": "inference",
        "reason": "frame header 'encoding' is 'gif', expected one of jpeg, png, bmp, tiff",
        "error_type": "FrameHeaderError",
        "camera_id": "cam-1",
        "frame_id": f"frame-{offset}",
        "source": None
        if offset is None
        else SourceRecord(topic="inspection.frames.v1", partition=2, offset=offset),
        "headers": {"schema": "frame.v1"},
        "payload_b64": DeadLetter.encode_payload(b"GIF89a-not-supported"),
        "occurred_at": BASE_TIME,
    }
    fields.update(overrides)
    return DeadLetter(**fields)


@pytest.fixture
def verdict_factory() -> Callable[..., Verdict]:
    return make_verdict


@pytest.fixture
def plc_result_factory() -> Callable[..., PlcWriteResult]:
    return make_plc_result


@pytest.fixture
def dead_letter_factory() -> Callable[..., DeadLetter]:
    return make_dead_letter
