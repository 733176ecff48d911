"""Prometheus metrics of the worker, served at /metrics by the worker's web server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Bucket bounds in seconds, from 1 ms to 10 s: a line's cycle time is usually 50 ms to 2 s.
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)

FRAMES_IN = Counter(
    "defectline_frames_in_total",
    "Frames consumed from the frames topic",
    ["camera"],
    registry=REGISTRY,
)
VERDICTS = Counter(
    "defectline_verdicts_total",
    "Verdicts produced",
    ["station", "outcome", "class_name"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "defectline_dead_letters_total",
    "Inputs sent to the dead-letter topic",
    ["stage"],
    registry=REGISTRY,
)
STAGE_LATENCY = Histogram(
    "defectline_stage_latency_seconds",
    "Time spent per frame in each stage (decode, preprocess, inference, capture_to_verdict, "
    "capture_to_plc)",
    ["stage"],
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
PLC_WRITES = Counter(
    "defectline_plc_writes_total", "PLC writes by outcome", ["plc", "status"], registry=REGISTRY
)
PLC_WRITE_RETRIES = Counter(
    "defectline_plc_write_retries_total",
    "PLC write attempts that failed and were retried",
    ["plc"],
    registry=REGISTRY,
)
ROWS_STORED = Counter(
    "defectline_rows_stored_total",
    "Rows newly inserted into the database",
    ["table"],
    registry=REGISTRY,
)
STORE_FAILURES = Counter(
    "defectline_store_failures_total",
    "Database writes that failed and were retried",
    ["table"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "defectline_consumer_lag_messages",
    "Messages not yet read, per topic partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
READY = Gauge(
    "defectline_ready", "1 when the model is loaded and the worker consumes", registry=REGISTRY
)
PLC_DEADLINE_MISSES = Counter(
    "defectline_plc_deadline_misses_total",
    "Verdicts whose station result deadline passed before they were written, by what was done "
    "instead (fail_safe: fail-safe values sent; late: nothing sent in time)",
    ["station", "plc", "status"],
    registry=REGISTRY,
)
PLC_WRITE_FAILURES = Counter(
    "defectline_plc_write_failures_total",
    "PLC write attempts that failed, by error class",
    ["plc", "error"],
    registry=REGISTRY,
)
HANDSHAKE_EVENTS = Counter(
    "defectline_plc_handshake_events_total",
    "Handshake events per station: trigger, result, ack, ack_timeout, unmatched_frame",
    ["station", "event"],
    registry=REGISTRY,
)
HEARTBEATS = Counter(
    "defectline_plc_heartbeats_total",
    "Heartbeat writes by outcome (ok, failed)",
    ["plc", "status"],
    registry=REGISTRY,
)
