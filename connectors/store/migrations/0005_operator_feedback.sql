-- Operator feedback: a reject that was actually good, or a defect found downstream.
--
-- feedback_id is chosen by the sender, so a message replayed from the feedback topic or a
-- repeated HTTP request stores one row. The frame is named by camera and frame id or by
-- part id; the views below join it to its inspection.
CREATE TABLE operator_feedback (
    reported_at timestamptz NOT NULL,
    feedback_id text        NOT NULL,
    label       text        NOT NULL CHECK (label IN ('false-reject', 'escape')),
    camera_id   text,
    frame_id    text,
    part_id     text,
    class_name  text,
    operator    text,
    note        text,
    source      text        NOT NULL DEFAULT 'cli',
    stored_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT operator_feedback_key UNIQUE (feedback_id, reported_at),
    CONSTRAINT operator_feedback_target CHECK (
        (camera_id IS NOT NULL AND frame_id IS NOT NULL) OR part_id IS NOT NULL
    )
);

CREATE INDEX operator_feedback_frame_idx ON operator_feedback (camera_id, frame_id);
CREATE INDEX operator_feedback_part_idx ON operator_feedback (part_id) WHERE part_id IS NOT NULL;
CREATE INDEX inspections_part_idx ON inspections (part_id) WHERE part_id IS NOT NULL;

-- Each feedback row with the inspection it refers to: by camera and frame when given, else the
-- latest inspection of the part. class_name is the class the verdict named for a false reject
-- and the class the operator reported for an escape ('unknown' when none was given).
CREATE VIEW feedback_inspections AS
SELECT
    f.reported_at,
    f.feedback_id,
    f.label,
    i.captured_at,
    i.station_id,
    i.camera_id,
    i.frame_id,
    coalesce(f.part_id, i.part_id) AS part_id,
    i.outcome,
    CASE
        WHEN f.label = 'false-reject' THEN i.class_name
        ELSE coalesce(f.class_name, 'unknown')
    END AS class_name,
    f.operator,
    f.note
FROM operator_feedback f
JOIN LATERAL (
    SELECT *
    FROM inspections x
    WHERE (f.frame_id IS NOT NULL AND x.camera_id = f.camera_id AND x.frame_id = f.frame_id)
       OR (f.frame_id IS NULL AND x.part_id = f.part_id)
    ORDER BY x.captured_at DESC
    LIMIT 1
) i ON true;
