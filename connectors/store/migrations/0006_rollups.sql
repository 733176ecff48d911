-- Rollups per minute and per hour by station, camera and class, plus PLC write rollups.
--
-- On plain PostgreSQL these are materialized views that the worker refreshes concurrently every
-- database.rollup_refresh_s seconds (defectline.connectors.store.rollups); the unique index on
-- each is what REFRESH ... CONCURRENTLY requires. In TimescaleDB mode they are replaced by
-- continuous aggregates with the same names and columns, so queries work in both modes.
-- latency_ms is capture until the verdict was decided; capture-to-PLC latency is in the PLC
-- rollups because it is measured per PLC write.
CREATE MATERIALIZED VIEW inspection_rollup_1m AS
SELECT
    date_trunc('minute', captured_at) AS bucket,
    station_id,
    camera_id,
    class_name,
    count(*) AS inspected,
    count(*) FILTER (WHERE outcome = 'reject') AS rejected,
    count(*) FILTER (WHERE outcome = 'uncertain') AS uncertain,
    percentile_cont(0.05) WITHIN GROUP (ORDER BY confidence) AS confidence_p05,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY confidence) AS confidence_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY confidence) AS confidence_p95,
    percentile_cont(0.5) WITHIN GROUP (
        ORDER BY extract(epoch FROM decided_at - captured_at) * 1000) AS latency_p50_ms,
    percentile_cont(0.99) WITHIN GROUP (
        ORDER BY extract(epoch FROM decided_at - captured_at) * 1000) AS latency_p99_ms
FROM inspections
GROUP BY 1, 2, 3, 4;

CREATE UNIQUE INDEX inspection_rollup_1m_key
    ON inspection_rollup_1m (bucket, station_id, camera_id, class_name);

CREATE MATERIALIZED VIEW inspection_rollup_1h AS
SELECT
    date_trunc('hour', captured_at) AS bucket,
    station_id,
    camera_id,
    class_name,
    count(*) AS inspected,
    count(*) FILTER (WHERE outcome = 'reject') AS rejected,
    count(*) FILTER (WHERE outcome = 'uncertain') AS uncertain,
    percentile_cont(0.05) WITHIN GROUP (ORDER BY confidence) AS confidence_p05,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY confidence) AS confidence_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY confidence) AS confidence_p95,
    percentile_cont(0.5) WITHIN GROUP (
        ORDER BY extract(epoch FROM decided_at - captured_at) * 1000) AS latency_p50_ms,
    percentile_cont(0.99) WITHIN GROUP (
        ORDER BY extract(epoch FROM decided_at - captured_at) * 1000) AS latency_p99_ms
FROM inspections
GROUP BY 1, 2, 3, 4;

CREATE UNIQUE INDEX inspection_rollup_1h_key
    ON inspection_rollup_1h (bucket, station_id, camera_id, class_name);

CREATE MATERIALIZED VIEW plc_write_rollup_1m AS
SELECT
    date_trunc('minute', captured_at) AS bucket,
    station_id,
    plc,
    count(*) AS writes,
    count(*) FILTER (WHERE status = 'failed') AS failures,
    count(*) FILTER (WHERE late) AS late,
    count(*) FILTER (WHERE fail_safe) AS fail_safe,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE status = 'ok') AS latency_p50_ms,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)
        FILTER (WHERE status = 'ok') AS latency_p99_ms
FROM plc_writes
GROUP BY 1, 2, 3;

CREATE UNIQUE INDEX plc_write_rollup_1m_key ON plc_write_rollup_1m (bucket, station_id, plc);

-- Daily counts with days that start at local midnight in time zone `tz`, so a day in which the
-- clocks change has 23 or 25 hours. Computed from the raw rows because an hourly bucket does not
-- start at local midnight in zones with a half-hour offset.
CREATE FUNCTION inspection_daily(tz text, range_start timestamptz, range_end timestamptz)
RETURNS TABLE (
    day        date,
    day_start  timestamptz,
    day_end    timestamptz,
    day_hours  double precision,
    station_id text,
    camera_id  text,
    class_name text,
    inspected  bigint,
    rejected   bigint,
    uncertain  bigint
)
LANGUAGE sql STABLE
AS $$
    SELECT
        d.day,
        d.day_start,
        d.day_end,
        extract(epoch FROM d.day_end - d.day_start) / 3600,
        i.station_id,
        i.camera_id,
        i.class_name,
        count(*),
        count(*) FILTER (WHERE i.outcome = 'reject'),
        count(*) FILTER (WHERE i.outcome = 'uncertain')
    FROM inspections i
    -- Local midnights converted back to instants; adding interval '1 day' to a timestamptz
    -- would step in the session time zone instead and always give 24 hours.
    CROSS JOIN LATERAL (
        SELECT
            (i.captured_at AT TIME ZONE tz)::date AS day,
            ((i.captured_at AT TIME ZONE tz)::date)::timestamp AT TIME ZONE tz AS day_start,
            ((i.captured_at AT TIME ZONE tz)::date + 1)::timestamp AT TIME ZONE tz AS day_end
    ) d
    WHERE i.captured_at >= range_start AND i.captured_at < range_end
    GROUP BY 1, 2, 3, 4, 5, 6, 7
$$;

-- False-reject and escape rates per hour (of capture), station and class, from operator feedback.
-- false_reject_rate: distinct frames reported good among the rejects of that class.
-- escape_rate: distinct frames with a defect of that class found downstream among all passed
-- parts of the station in that hour.
CREATE VIEW quality_rates_1h AS
WITH verdicts AS (
    SELECT date_trunc('hour', captured_at) AS bucket, station_id, class_name,
           count(*) FILTER (WHERE outcome = 'reject') AS rejected
    FROM inspections
    GROUP BY 1, 2, 3
),
passes AS (
    SELECT date_trunc('hour', captured_at) AS bucket, station_id,
           count(*) FILTER (WHERE outcome = 'pass') AS passed
    FROM inspections
    GROUP BY 1, 2
),
feedback AS (
    SELECT date_trunc('hour', captured_at) AS bucket, station_id, class_name,
           count(DISTINCT (camera_id, frame_id)) FILTER (
               WHERE label = 'false-reject' AND outcome = 'reject') AS false_rejects,
           count(DISTINCT (camera_id, frame_id)) FILTER (
               WHERE label = 'escape' AND outcome = 'pass') AS escapes
    FROM feedback_inspections
    GROUP BY 1, 2, 3
),
classes AS (
    SELECT bucket, station_id, class_name FROM verdicts WHERE rejected > 0
    UNION
    SELECT bucket, station_id, class_name FROM feedback
)
SELECT
    c.bucket,
    c.station_id,
    c.class_name,
    coalesce(v.rejected, 0) AS rejected,
    coalesce(f.false_rejects, 0) AS false_rejects,
    coalesce(f.false_rejects, 0)::double precision / nullif(v.rejected, 0) AS false_reject_rate,
    coalesce(p.passed, 0) AS passed,
    coalesce(f.escapes, 0) AS escapes,
    coalesce(f.escapes, 0)::double precision / nullif(p.passed, 0) AS escape_rate
FROM classes c
LEFT JOIN verdicts v USING (bucket, station_id, class_name)
LEFT JOIN feedback f USING (bucket, station_id, class_name)
LEFT JOIN passes p USING (bucket, station_id);
