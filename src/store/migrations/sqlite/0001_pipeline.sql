-- Herald's pipeline tables: issues, deliveries, renderings, attempts (SQLite).
-- Timestamps are unix milliseconds (BIGINT), the same on both backends.
-- Later migrations (email: recipient sends, subscribers, suppressions) follow as 0002_*, 0003_*.

CREATE TABLE issues (
    slug          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    channels      TEXT    NOT NULL DEFAULT '[]',
    created_at    BIGINT  NOT NULL,
    published_at  BIGINT,
    publish_error TEXT,
    PRIMARY KEY (slug, version)
);

CREATE TABLE deliveries (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    issue              TEXT    NOT NULL,
    version            TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    channel_type       TEXT    NOT NULL,
    revision           BIGINT  NOT NULL,
    delivery_key       TEXT    NOT NULL UNIQUE,
    state              TEXT    NOT NULL CHECK (state IN ('scheduled','queued','sending','sent','retrying','unconfirmed','failed','cancelled','awaiting_confirmation')),
    attempts           BIGINT  NOT NULL DEFAULT 0,
    rate_limited_waits BIGINT  NOT NULL DEFAULT 0,
    remote_id          TEXT,
    remote_url         TEXT,
    last_error         TEXT,
    last_status        BIGINT,
    next_attempt_at    BIGINT,
    triggered_by       TEXT    NOT NULL DEFAULT 'schedule',
    checkpoint         TEXT,
    lease_owner        TEXT,
    lease_until        BIGINT,
    job_id             TEXT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
CREATE INDEX deliveries_issue_channel ON deliveries (issue, channel);
CREATE INDEX deliveries_open ON deliveries (state, next_attempt_at);

CREATE TABLE renderings (
    delivery_id  BIGINT  PRIMARY KEY REFERENCES deliveries (id),
    issue        TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    rendering    TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL
);

CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     BIGINT  NOT NULL REFERENCES deliveries (id),
    n               BIGINT  NOT NULL,
    started_at      BIGINT  NOT NULL,
    duration_ms     BIGINT  NOT NULL,
    triggered_by    TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    status_code     BIGINT,
    error           TEXT,
    next_attempt_at BIGINT,
    content_hash    TEXT,
    remote_id       TEXT,
    UNIQUE (delivery_id, n)
);
CREATE INDEX attempts_started ON attempts (started_at);
