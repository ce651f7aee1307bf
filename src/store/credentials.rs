//! The `credentials` table: sealed secrets per channel, the refresh lease and the
//! interrupted-refresh marker. Nothing here sees a secret in clear: `sealed` is opaque text
//! built and opened by [`crate::credentials`].

use serde::Serialize;

use super::{Store, now_ms};

/// One stored credential: facts safe to print, plus the sealed secrets.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CredentialRow {
    /// The configured channel name.
    pub channel: String,
    /// Its type (`x`, `threads`, …).
    pub channel_type: String,
    /// `connect` (from `herald connect`), `config` (seeded from the config's secrets before a
    /// first rotation) or `refresh` (rotated by Herald).
    pub source: String,
    /// The account: user id, person URN, DID, handle.
    pub account: Option<String>,
    /// Granted scopes, space separated.
    pub scopes: Option<String>,
    /// Other facts safe to print, as JSON text (username, PDS, instance).
    pub meta: Option<String>,
    /// The sealed secrets (never print; opaque without the key).
    #[serde(skip)]
    pub sealed: String,
    /// Bumped on every write of new secrets.
    pub generation: i64,
    /// When the current access token was issued, unix ms.
    pub obtained_at: i64,
    /// When it expires, unix ms.
    pub expires_at: Option<i64>,
    /// `ok` or `needs_auth`.
    pub status: String,
    /// Why it needs re-authorisation.
    pub status_detail: Option<String>,
    /// Who holds the refresh lease.
    pub lease_owner: Option<String>,
    /// Until when, unix ms.
    pub lease_until: Option<i64>,
    /// Set before a token request is sent, cleared when its answer is committed.
    pub refresh_started_at: Option<i64>,
    /// Last write, unix ms.
    pub updated_at: i64,
}

const COLS: &str = "channel, channel_type, source, account, scopes, meta, sealed, generation, obtained_at, expires_at, \
    status, status_detail, lease_owner, lease_until, refresh_started_at, updated_at";

/// New secrets and facts for a channel.
#[derive(Debug, Clone, Default)]
pub struct CredentialWrite {
    /// Channel type.
    pub channel_type: String,
    /// `connect`, `config` or `refresh`.
    pub source: String,
    /// Account id.
    pub account: Option<String>,
    /// Scopes.
    pub scopes: Option<String>,
    /// JSON text of printable facts.
    pub meta: Option<String>,
    /// Sealed secrets.
    pub sealed: String,
    /// Issued at, unix ms.
    pub obtained_at: i64,
    /// Expires at, unix ms.
    pub expires_at: Option<i64>,
}

impl Store {
    /// The row of `channel`, if any.
    pub async fn credential(&self, channel: &str) -> anyhow::Result<Option<CredentialRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM credentials WHERE channel = $1")))
            .bind(channel)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Every row, by channel.
    pub async fn credentials(&self) -> anyhow::Result<Vec<CredentialRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM credentials ORDER BY channel"))).fetch_all(self.pool()).await?)
    }

    /// Write a credential obtained by `herald connect`: replaces whatever was there, clears
    /// the lease, the marker and `needs_auth`, and bumps the generation.
    pub async fn put_credential(&self, channel: &str, w: &CredentialWrite) -> anyhow::Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO credentials (channel, channel_type, source, account, scopes, meta, sealed, generation, obtained_at, \
             expires_at, status, status_detail, lease_owner, lease_until, refresh_started_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, 'ok', NULL, NULL, NULL, NULL, $10) \
             ON CONFLICT (channel) DO UPDATE SET channel_type = excluded.channel_type, source = excluded.source, \
             account = excluded.account, scopes = excluded.scopes, meta = excluded.meta, sealed = excluded.sealed, \
             generation = credentials.generation + 1, obtained_at = excluded.obtained_at, expires_at = excluded.expires_at, \
             status = 'ok', status_detail = NULL, lease_owner = NULL, lease_until = NULL, refresh_started_at = NULL, \
             updated_at = excluded.updated_at",
        )
        .bind(channel)
        .bind(&w.channel_type)
        .bind(&w.source)
        .bind(&w.account)
        .bind(&w.scopes)
        .bind(&w.meta)
        .bind(&w.sealed)
        .bind(w.obtained_at)
        .bind(w.expires_at)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Insert the config's secrets as generation 0 unless a row exists (the first rotation
    /// needs a row to lease). True if this call inserted it.
    pub async fn seed_credential(&self, channel: &str, w: &CredentialWrite) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "INSERT INTO credentials (channel, channel_type, source, account, scopes, meta, sealed, generation, obtained_at, \
             expires_at, status, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, 'ok', $10) \
             ON CONFLICT (channel) DO NOTHING",
        )
        .bind(channel)
        .bind(&w.channel_type)
        .bind(&w.source)
        .bind(&w.account)
        .bind(&w.scopes)
        .bind(&w.meta)
        .bind(&w.sealed)
        .bind(w.obtained_at)
        .bind(w.expires_at)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Take the refresh lease of `channel` at `generation`, and mark the refresh as started,
    /// in one statement. It is free when nobody holds it, when its holder's time is up, or
    /// when the holder is `dead_owner` (a process on this host that is gone). False: someone
    /// else holds it, or the generation moved on.
    pub async fn lease_credential(&self, channel: &str, generation: i64, owner: &str, until: i64, dead_owner: Option<&str>) -> anyhow::Result<bool> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE credentials SET lease_owner = $1, lease_until = $2, refresh_started_at = $3, updated_at = $3 \
             WHERE channel = $4 AND generation = $5 AND status = 'ok' \
             AND (lease_owner IS NULL OR lease_until < $3 OR lease_owner = $6)",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(channel)
        .bind(generation)
        .bind(dead_owner.unwrap_or(""))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Commit a rotation: the new sealed secrets, generation + 1, the lease and the marker
    /// cleared. Written whoever holds the lease now: these secrets are the only live ones.
    pub async fn commit_credential_refresh(&self, channel: &str, sealed: &str, obtained_at: i64, expires_at: Option<i64>, scopes: Option<&str>) -> anyhow::Result<i64> {
        let row: (i64,) = sqlx::query_as(
            "UPDATE credentials SET sealed = $1, generation = generation + 1, source = 'refresh', obtained_at = $2, \
             expires_at = $3, scopes = COALESCE($4, scopes), status = 'ok', status_detail = NULL, lease_owner = NULL, \
             lease_until = NULL, refresh_started_at = NULL, updated_at = $5 WHERE channel = $6 RETURNING generation",
        )
        .bind(sealed)
        .bind(obtained_at)
        .bind(expires_at)
        .bind(scopes)
        .bind(now_ms())
        .bind(channel)
        .fetch_one(self.pool())
        .await?;
        Ok(row.0)
    }

    /// Give the lease back. `keep_marker`: the request may have reached the network (its
    /// answer was lost), so the next refresh must know the token may be spent.
    pub async fn release_credential(&self, channel: &str, owner: &str, keep_marker: bool) -> anyhow::Result<()> {
        let sql = if keep_marker {
            "UPDATE credentials SET lease_owner = NULL, lease_until = NULL WHERE channel = $1 AND lease_owner = $2"
        } else {
            "UPDATE credentials SET lease_owner = NULL, lease_until = NULL, refresh_started_at = NULL WHERE channel = $1 AND lease_owner = $2"
        };
        sqlx::query(sql).bind(channel).bind(owner).execute(self.pool()).await?;
        Ok(())
    }

    /// The credential is dead until the author connects again: `needs_auth`, with why.
    pub async fn credential_needs_auth(&self, channel: &str, detail: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE credentials SET status = 'needs_auth', status_detail = $1, lease_owner = NULL, lease_until = NULL, \
             refresh_started_at = NULL, updated_at = $2 WHERE channel = $3",
        )
        .bind(detail)
        .bind(now_ms())
        .bind(channel)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
