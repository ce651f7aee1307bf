-- Email: the subscriber list, the suppression list, and the recipient ledger (SQLite).
-- Timestamps are unix milliseconds. Addresses are stored lowercase.

CREATE TABLE subscribers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL DEFAULT '',
    list       TEXT    NOT NULL DEFAULT 'all',
    extra      TEXT    NOT NULL DEFAULT '{}',
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX subscribers_list ON subscribers (list, id);

-- Suppressions always win: nobody here is seeded into a mailing or mailed.
CREATE TABLE suppressions (
    email  TEXT   PRIMARY KEY,
    reason TEXT   NOT NULL,
    at     BIGINT NOT NULL
);

-- One row per mailing once its audience is fixed (the ledger was seeded).
CREATE TABLE recipient_seeds (
    delivery_id BIGINT PRIMARY KEY,
    list        TEXT   NOT NULL,
    total       BIGINT NOT NULL,
    seeded_at   BIGINT NOT NULL
);

-- One row per (mailing, subscriber): what is still owed, and what the server answered.
CREATE TABLE recipient_sends (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id BIGINT  NOT NULL,
    email       TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending','sent','failed','skipped')),
    smtp_code   BIGINT,
    smtp_reply  TEXT,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    retry_at    BIGINT,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (delivery_id, email)
);
CREATE INDEX recipient_sends_owed ON recipient_sends (delivery_id, state, id);
