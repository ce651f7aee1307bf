-- Bounces, complaints and unsubscribes that arrive after the mailing (issue 17).
-- Every suppression keeps what kind it is and where it came from; every report is kept once.

ALTER TABLE suppressions ADD COLUMN kind TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE suppressions ADD COLUMN source TEXT NOT NULL DEFAULT 'manual';
UPDATE suppressions SET kind = 'smtp_5xx', source = 'smtp' WHERE reason LIKE 'bounce:%';
UPDATE suppressions SET kind = 'unsubscribe', source = 'link' WHERE reason LIKE 'unsubscribed%';

-- One row per report (a DSN recipient, an ARF report, a Postmark webhook record): the key
-- makes a second delivery of the same report change nothing.
CREATE TABLE bounce_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key   TEXT   NOT NULL UNIQUE,
    email       TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    source      TEXT   NOT NULL,
    detail      TEXT   NOT NULL DEFAULT '',
    delivery_id BIGINT,
    at          BIGINT NOT NULL
);
CREATE INDEX bounce_events_email ON bounce_events (email, kind, at);
CREATE INDEX bounce_events_delivery ON bounce_events (delivery_id, kind);
