-- Schedule fires: one row per (schedule, fire time), claimed before anything is enqueued, so
-- two daemons (or one restarted) never fire the same entry twice. `schedules` remembers the
-- last instant a daemon watched each entry, the reference for catch-up after downtime.
CREATE TABLE schedule_fires (
    schedule   TEXT    NOT NULL,
    fire_at    BIGINT  NOT NULL,
    result     TEXT    NOT NULL,
    issue      TEXT,
    detail     TEXT,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (schedule, fire_at)
);
CREATE INDEX schedule_fires_created ON schedule_fires (created_at);

CREATE TABLE schedules (
    name         TEXT   PRIMARY KEY,
    last_seen_at BIGINT NOT NULL
);
