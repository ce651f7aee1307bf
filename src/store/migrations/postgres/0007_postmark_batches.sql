-- Postmark batches: each `POST /email/batch` call of an `email_api` mailing, recorded with its
-- recipients BEFORE the call, under the `Tag` it carries (unique to the mailing and the batch).
-- A batch left `open` with recipients still pending had an unknown outcome (a crash, a timeout,
-- a reset after sending): it is reconciled by searching Postmark's outbound messages by tag
-- before any of its recipients is sent again. Timestamps are unix milliseconds.

CREATE TABLE postmark_batches (
    tag         TEXT   PRIMARY KEY,
    delivery_id BIGINT NOT NULL,
    -- open: the call may have reached Postmark; answered: every recipient's outcome is recorded
    -- (swept at the start of a pass, so later passes skip it); refused: Postmark answered an
    -- error for the whole call (nothing sent); reconciled: the search was trusted, its findings
    -- recorded.
    state       TEXT   NOT NULL CHECK (state IN ('open','answered','refused','reconciled')),
    opened_at   BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX postmark_batches_delivery ON postmark_batches (delivery_id, state);

-- The ledger rows (`recipient_sends.id`) a batch carried.
CREATE TABLE postmark_batch_members (
    tag     TEXT   NOT NULL,
    send_id BIGINT NOT NULL,
    PRIMARY KEY (tag, send_id)
);
