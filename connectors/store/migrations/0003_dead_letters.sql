-- Dead letters: inputs a stage could not process, with the reason.
--
-- The original message bytes stay on the dead-letter topic; this table stores their size so a
-- report can point at them. It stays a plain table under TimescaleDB because dead letters are
-- rare and the idempotency key below must not contain a time column.
CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at      timestamptz NOT NULL,
    stage            text        NOT NULL,
    reason           text        NOT NULL,
    error_type       text        NOT NULL,
    camera_id        text,
    frame_id         text,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    headers          jsonb       NOT NULL DEFAULT '{}',
    payload_bytes    integer     NOT NULL CHECK (payload_bytes >= 0),
    stored_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dead_letters_source_complete CHECK (
        (source_topic IS NULL) = (source_partition IS NULL)
        AND (source_topic IS NULL) = (source_offset IS NULL)
    )
);

-- A letter read from Kafka is identified by where it was read.
CREATE UNIQUE INDEX dead_letters_source_key
    ON dead_letters (source_topic, source_partition, source_offset)
    WHERE source_topic IS NOT NULL;

-- A letter with no source (a camera that failed before publishing) is identified by its
-- contents; a replay from the dead-letter topic carries the same occurred_at.
CREATE UNIQUE INDEX dead_letters_unsourced_key
    ON dead_letters (stage, error_type, occurred_at, coalesce(camera_id, ''), coalesce(frame_id, ''))
    WHERE source_topic IS NULL;

CREATE INDEX dead_letters_time_idx ON dead_letters (occurred_at DESC);
