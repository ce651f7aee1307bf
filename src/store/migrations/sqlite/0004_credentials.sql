-- Credentials Herald obtained (`herald connect`) or rotated (a refresh), one row per channel.
-- Every secret (access and refresh tokens, app passwords, cookies, client secrets) is in
-- `sealed` only: base64 of a 24-byte nonce and the XChaCha20-Poly1305 ciphertext of a JSON
-- object, sealed under the key given as ${HERALD_SECRET_KEY} (or [credentials] key/key_file),
-- with the channel name as associated data. The other columns are facts safe to print.
--
-- A refresh takes the row's lease first (`lease_owner`, `lease_until`), so two daemons never
-- refresh one token at once; `refresh_started_at` is set, in the same statement, before the
-- token request is sent and cleared when its answer is committed, so a run that died in
-- between is seen by the next one.
CREATE TABLE credentials (
    channel            TEXT    PRIMARY KEY,
    channel_type       TEXT    NOT NULL,
    source             TEXT    NOT NULL,
    account            TEXT,
    scopes             TEXT,
    meta               TEXT,
    sealed             TEXT    NOT NULL,
    generation         BIGINT  NOT NULL,
    obtained_at        BIGINT  NOT NULL,
    expires_at         BIGINT,
    status             TEXT    NOT NULL,
    status_detail      TEXT,
    lease_owner        TEXT,
    lease_until        BIGINT,
    refresh_started_at BIGINT,
    updated_at         BIGINT  NOT NULL
);
