-- Tables for what the quality dashboards show beside verdicts: defect regions, drift events and
-- model deployments, plus the verdict and PLC write details the dashboards filter on.
--
-- Time-series tables keep their time column in every unique key so TimescaleDB can partition
-- them; the hypertables are created in Python (defectline.connectors.store.timescale).

-- 'uncertain' verdicts route a part to manual inspection. evidence_uri is the overlay image of
-- a reject in the frame archive.
ALTER TABLE inspections
    DROP CONSTRAINT inspections_outcome_check,
    ADD CONSTRAINT inspections_outcome_check CHECK (outcome IN ('pass', 'reject', 'uncertain')),
    ADD COLUMN evidence_uri text;

-- late: the write missed the station's result deadline. fail_safe: the station's fail-safe
-- action was written instead of the verdict. Rows stored before this migration read as false.
ALTER TABLE plc_writes
    ADD COLUMN late      boolean NOT NULL DEFAULT false,
    ADD COLUMN fail_safe boolean NOT NULL DEFAULT false;

-- One row per region of a verdict (detection box, segmentation or anomaly component).
CREATE TABLE defect_regions (
    captured_at  timestamptz      NOT NULL,
    camera_id    text             NOT NULL,
    frame_id     text             NOT NULL,
    region_index integer          NOT NULL CHECK (region_index >= 0),
    station_id   text             NOT NULL,
    kind         text             NOT NULL,
    class_name   text             NOT NULL,
    score        double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    x_min_px     double precision NOT NULL,
    y_min_px     double precision NOT NULL,
    x_max_px     double precision NOT NULL,
    y_max_px     double precision NOT NULL,
    area_px      double precision CHECK (area_px >= 0),
    area_pct     double precision CHECK (area_pct BETWEEN 0 AND 100),
    stored_at    timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT defect_regions_key UNIQUE (camera_id, frame_id, captured_at, region_index),
    CONSTRAINT defect_regions_box CHECK (x_max_px >= x_min_px AND y_max_px >= y_min_px)
);

CREATE INDEX defect_regions_class_time_idx ON defect_regions (class_name, captured_at DESC);

-- Drift alerts: one row per episode, inserted by its start event and closed by its recovery.
CREATE TABLE drift_events (
    started_at    timestamptz      NOT NULL,
    episode_id    text             NOT NULL,
    station_id    text             NOT NULL,
    camera_id     text             NOT NULL,
    model_name    text             NOT NULL,
    model_version text             NOT NULL,
    metric        text             NOT NULL,
    direction     text             NOT NULL,
    magnitude     double precision NOT NULL,
    message       text             NOT NULL,
    causes        jsonb            NOT NULL DEFAULT '[]',
    frame_id      text,
    ended_at      timestamptz,
    stored_at     timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT drift_events_key UNIQUE (episode_id, started_at),
    CONSTRAINT drift_events_order CHECK (ended_at IS NULL OR ended_at >= started_at)
);

CREATE INDEX drift_events_camera_time_idx ON drift_events (camera_id, started_at DESC);
CREATE INDEX drift_events_episode_idx ON drift_events (episode_id);

-- Which model version ran where and from when; a deployment ends when the next one starts.
CREATE TABLE model_deployments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployed_at   timestamptz NOT NULL,
    station_id    text        NOT NULL,
    model_name    text        NOT NULL,
    model_version text        NOT NULL,
    model_sha256  text,
    note          text,
    stored_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_deployments_key UNIQUE (station_id, model_name, model_version, deployed_at)
);

CREATE INDEX model_deployments_time_idx ON model_deployments (deployed_at DESC);
