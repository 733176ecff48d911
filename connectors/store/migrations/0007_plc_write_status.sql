-- PLC write results gain the deadline outcomes as statuses: 'fail_safe' (the station's fail-safe
-- values were sent because the result deadline passed first) and 'late' (the verdict missed its
-- deadline and no fail-safe was written). The boolean columns late and fail_safe stay as the
-- filters the dashboards use.
ALTER TABLE plc_writes DROP CONSTRAINT plc_writes_status_check;
ALTER TABLE plc_writes
    ADD CONSTRAINT plc_writes_status_check
    CHECK (status IN ('ok', 'failed', 'fail_safe', 'late'));
