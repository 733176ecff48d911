-- Inspection results: one row per verdict.
--
-- The key is (camera_id, frame_id, captured_at). TimescaleDB requires the partitioning column
-- in every unique index, and a replayed verdict carries the captured_at of its first delivery,
-- so the key still identifies one frame on a hypertable and on a plain table alike.
-- The hypertable itself is created in Python (defectline.connectors.store.timescale), so this
-- file runs unchanged on plain PostgreSQL.
CREATE TABLE inspections (
    captured_at   timestamptz      NOT NULL,
    decided_at    timestamptz      NOT NULL,
    plant         text             NOT NULL,
    station_id    text             NOT NULL,
    camera_id     text             NOT NULL,
    frame_id      text             NOT NULL,
    sequence      bigint           NOT NULL CHECK (sequence >= 0),
    part_id       text,
    outcome       text             NOT NULL CHECK (outcome IN ('pass', 'reject')),
    class_name    text             NOT NULL,
    class_code    integer          NOT NULL CHECK (class_code >= 0),
    confidence    double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    scores        jsonb            NOT NULL,
    model_name    text             NOT NULL,
    model_version text             NOT NULL,
    decode_ms     double precision NOT NULL,
    preprocess_ms double precision NOT NULL,
    inference_ms  double precision NOT NULL,
    queue_ms      double precision NOT NULL,
    stored_at     timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT inspections_frame_key UNIQUE (camera_id, frame_id, captured_at)
);

CREATE INDEX inspections_station_time_idx ON inspections (station_id, captured_at DESC);
CREATE INDEX inspections_camera_time_idx ON inspections (camera_id, captured_at DESC);
CREATE INDEX inspections_class_time_idx ON inspections (class_name, captured_at DESC);
