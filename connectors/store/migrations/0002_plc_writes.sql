-- PLC write results: one row per verdict and PLC, written after the write succeeded or failed.
--
-- The key is (plc, camera_id, frame_id, captured_at). The table is partitioned on captured_at
-- under TimescaleDB rather than on written_at, because a retried write has a new written_at
-- and the unique index must contain the partitioning column while staying one row per frame.
CREATE TABLE plc_writes (
    captured_at timestamptz      NOT NULL,
    written_at  timestamptz      NOT NULL,
    plc         text             NOT NULL,
    station_id  text             NOT NULL,
    camera_id   text             NOT NULL,
    frame_id    text             NOT NULL,
    sequence    bigint           NOT NULL CHECK (sequence >= 0),
    status      text             NOT NULL CHECK (status IN ('ok', 'failed')),
    attempts    integer          NOT NULL CHECK (attempts >= 1),
    latency_ms  double precision NOT NULL,
    error       text,
    stored_at   timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT plc_writes_frame_key UNIQUE (plc, camera_id, frame_id, captured_at)
);

CREATE INDEX plc_writes_station_time_idx ON plc_writes (station_id, captured_at DESC);
CREATE INDEX plc_writes_plc_time_idx ON plc_writes (plc, captured_at DESC);
