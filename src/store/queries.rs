//! The typed queries. Every statement is valid on both SQLite and PostgreSQL.
//!
//! Write transactions start with a write statement, so SQLite takes its write lock up front
//! and a deferred read never has to be upgraded (which fails at once with SQLITE_BUSY).

use anyhow::Context as _;
use sqlx::Row as _;

use super::models::*;
use super::{Store, now_ms};

const DELIVERY_COLS: &str = "id, issue, version, channel, channel_type, revision, delivery_key, state, attempts, \
    rate_limited_waits, remote_id, remote_url, last_error, last_status, next_attempt_at, triggered_by, checkpoint, \
    lease_owner, lease_until, job_id, created_at, updated_at, attempt_started_at";

/// What [`Store::insert_issue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueStored {
    /// A version not seen before.
    New,
    /// Stored before; now to be published to more channels (or again after a failed Publish).
    Widened,
    /// Stored and its Publish has not run yet.
    Pending,
    /// Stored and published to these channels already.
    Unchanged,
}

/// A delivery to create, with the rendering it will send.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Channel name.
    pub channel: String,
    /// Channel type.
    pub channel_type: String,
    /// Revision (1 for a publish).
    pub revision: i64,
    /// The rendering, as JSON text exactly as preflight produced it.
    pub rendering_json: String,
    /// Its sha256.
    pub content_hash: String,
    /// Who asked.
    pub trigger: Trigger,
    /// The id of the Deliver job that will be pushed after commit.
    pub job_id: String,
}

/// The end of an attempt: the attempt row and the delivery's new state, written together.
#[derive(Debug, Clone)]
pub struct Finish {
    /// New state.
    pub state: State,
    /// The attempt row's outcome.
    pub outcome: AttemptOutcome,
    /// Did this attempt use up one of the schedule's attempts? (Rate-limit waits don't.)
    pub counts: bool,
    /// Was this a rate-limit wait?
    pub rate_limited: bool,
    /// Remote id (on success).
    pub remote_id: Option<String>,
    /// Remote URL (on success).
    pub remote_url: Option<String>,
    /// Error excerpt.
    pub error: Option<String>,
    /// Status code.
    pub status: Option<i64>,
    /// When the next try is due (unix ms).
    pub next_attempt_at: Option<i64>,
    /// The Deliver job that will carry the next try.
    pub job_id: Option<String>,
    /// Attempt start (unix ms).
    pub started_at: i64,
    /// Duration.
    pub duration_ms: i64,
    /// Trigger of this attempt.
    pub trigger: Trigger,
    /// Content hash of what was sent.
    pub content_hash: Option<String>,
}

impl Store {
    // ---- issues ----------------------------------------------------------------------------

    /// Store an issue version, or widen the channel filter of a stored one.
    ///
    /// `channels` empty means every channel. Publishing a stored version again with channels it
    /// was not published to (or after its Publish failed) marks it unpublished, so the Publish
    /// step runs again; existing delivery keys keep that from sending anything twice.
    pub async fn insert_issue(&self, slug: &str, version: &str, path: &str, title: &str, source: &str, channels: &[String]) -> anyhow::Result<IssueStored> {
        let ch = serde_json::to_string(channels)?;
        let r = sqlx::query(
            "INSERT INTO issues (slug, version, path, title, source, channels, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (slug, version) DO NOTHING",
        )
        .bind(slug)
        .bind(version)
        .bind(path)
        .bind(title)
        .bind(source)
        .bind(&ch)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .context("storing the issue")?;
        if r.rows_affected() == 1 {
            return Ok(IssueStored::New);
        }
        let row = self.get_issue(slug, version).await?.context("the issue version vanished")?;
        let old = row.channel_filter();
        let merged: Vec<String> = if old.is_empty() || channels.is_empty() {
            Vec::new()
        } else {
            let mut m = old.clone();
            m.extend(channels.iter().filter(|c| !old.contains(c)).cloned());
            m
        };
        if merged != old || row.publish_error.is_some() {
            sqlx::query("UPDATE issues SET channels = $3, published_at = NULL, publish_error = NULL WHERE slug = $1 AND version = $2")
                .bind(slug)
                .bind(version)
                .bind(serde_json::to_string(&merged)?)
                .execute(&self.pool)
                .await?;
            return Ok(IssueStored::Widened);
        }
        Ok(if row.published_at.is_none() { IssueStored::Pending } else { IssueStored::Unchanged })
    }

    /// One issue version.
    pub async fn get_issue(&self, slug: &str, version: &str) -> anyhow::Result<Option<IssueRow>> {
        Ok(sqlx::query_as::<_, IssueRow>("SELECT * FROM issues WHERE slug = $1 AND version = $2")
            .bind(slug)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The most recently stored version of an issue.
    pub async fn latest_issue(&self, slug: &str) -> anyhow::Result<Option<IssueRow>> {
        Ok(sqlx::query_as::<_, IssueRow>("SELECT * FROM issues WHERE slug = $1 ORDER BY created_at DESC LIMIT 1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Issue versions stored but not yet fanned out (the outbox of Publish jobs).
    pub async fn unpublished_issues(&self) -> anyhow::Result<Vec<IssueRow>> {
        Ok(sqlx::query_as::<_, IssueRow>("SELECT * FROM issues WHERE published_at IS NULL AND publish_error IS NULL ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Record that the Publish job could not render the stored issue.
    pub async fn set_publish_error(&self, slug: &str, version: &str, error: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE issues SET publish_error = $3 WHERE slug = $1 AND version = $2")
            .bind(slug)
            .bind(version)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// In one transaction: create each delivery (skipping keys that exist), store its rendering,
    /// and mark the issue version published. Returns `(delivery id, job id)` of the new ones.
    pub async fn create_deliveries(&self, slug: &str, version: &str, items: &[NewDelivery]) -> anyhow::Result<Vec<(i64, String)>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE issues SET published_at = $3, publish_error = NULL WHERE slug = $1 AND version = $2")
            .bind(slug)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let mut created = Vec::new();
        for it in items {
            let key = delivery_key(slug, &it.channel, it.revision);
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO deliveries (issue, version, channel, channel_type, revision, delivery_key, state, triggered_by, next_attempt_at, job_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $8, $8) ON CONFLICT (delivery_key) DO NOTHING RETURNING id",
            )
            .bind(slug)
            .bind(version)
            .bind(&it.channel)
            .bind(&it.channel_type)
            .bind(it.revision)
            .bind(&key)
            .bind(it.trigger.as_str())
            .bind(now)
            .bind(&it.job_id)
            .fetch_optional(&mut *tx)
            .await
            .with_context(|| format!("creating delivery {key}"))?;
            let Some(id) = id else { continue };
            sqlx::query("INSERT INTO renderings (delivery_id, issue, version, channel, content_hash, rendering, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(id)
                .bind(slug)
                .bind(version)
                .bind(&it.channel)
                .bind(&it.content_hash)
                .bind(&it.rendering_json)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            created.push((id, it.job_id.clone()));
        }
        tx.commit().await?;
        Ok(created)
    }

    /// The next revision for (issue, channel): one more than the highest so far.
    pub async fn next_revision(&self, slug: &str, channel: &str) -> anyhow::Result<i64> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(revision) FROM deliveries WHERE issue = $1 AND channel = $2")
            .bind(slug)
            .bind(channel)
            .fetch_one(&self.pool)
            .await?;
        Ok(max.unwrap_or(0) + 1)
    }

    // ---- deliveries ------------------------------------------------------------------------

    /// One delivery.
    pub async fn get_delivery(&self, id: i64) -> anyhow::Result<Option<DeliveryRow>> {
        let sql = format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = $1");
        Ok(sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Deliveries, optionally of one issue and some channels, in (issue, channel, revision) order.
    pub async fn list_deliveries(&self, issue: Option<&str>, channels: &[String]) -> anyhow::Result<Vec<DeliveryRow>> {
        let sql = format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE ($1 = '' OR issue = $1) ORDER BY created_at, issue, channel, revision");
        let rows = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
            .bind(issue.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().filter(|d| channels.is_empty() || channels.contains(&d.channel)).collect())
    }

    /// The rendering stored for a delivery, as JSON text.
    pub async fn rendering_json(&self, delivery_id: i64) -> anyhow::Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT rendering, content_hash FROM renderings WHERE delivery_id = $1")
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get::<String, _>(0), r.get::<String, _>(1))))
    }

    /// Take the lease on a delivery if it is free, expired, or held by `dead_owner` (a process
    /// found dead on this host). Atomic: of two callers, one wins.
    pub async fn acquire_lease(&self, id: i64, owner: &str, until: i64, dead_owner: Option<&str>) -> anyhow::Result<bool> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE deliveries SET lease_owner = $2, lease_until = $3 \
             WHERE id = $1 AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until < $4 OR lease_owner = $5)",
        )
        .bind(id)
        .bind(owner)
        .bind(until)
        .bind(now)
        // No owner is empty, so "" matches nothing.
        .bind(dead_owner.unwrap_or(""))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Give the lease back without changing anything else.
    pub async fn release_lease(&self, id: i64, owner: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Mark `sending` (committed before the remote call). Only the lease holder can.
    pub async fn mark_sending(&self, id: i64, owner: &str) -> anyhow::Result<bool> {
        let r = sqlx::query("UPDATE deliveries SET state = 'sending', attempt_started_at = $3, updated_at = $3 WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Write the attempt row and the delivery's new state in one transaction, releasing the lease.
    /// Returns false (and writes nothing) if `owner` no longer holds the lease.
    pub async fn finish_attempt(&self, id: i64, owner: &str, f: &Finish) -> anyhow::Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE deliveries SET state = $3, attempts = attempts + $4, rate_limited_waits = rate_limited_waits + $5, \
               remote_id = COALESCE($6, remote_id), remote_url = COALESCE($7, remote_url), last_error = $8, last_status = $9, \
               next_attempt_at = $10, job_id = COALESCE($11, job_id), lease_owner = NULL, lease_until = NULL, updated_at = $12, \
               attempt_started_at = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(f.state.as_str())
        .bind(i64::from(f.counts))
        .bind(i64::from(f.rate_limited))
        .bind(&f.remote_id)
        .bind(&f.remote_url)
        .bind(&f.error)
        .bind(f.status)
        .bind(f.next_attempt_at)
        .bind(&f.job_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO attempts (delivery_id, n, started_at, duration_ms, triggered_by, outcome, status_code, error, next_attempt_at, content_hash, remote_id) \
             SELECT $1, COALESCE(MAX(n), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM attempts WHERE delivery_id = $1",
        )
        .bind(id)
        .bind(f.started_at)
        .bind(f.duration_ms)
        .bind(f.trigger.as_str())
        .bind(f.outcome.as_str())
        .bind(f.status)
        .bind(&f.error)
        .bind(f.next_attempt_at)
        .bind(&f.content_hash)
        .bind(&f.remote_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Record the id of the Deliver job pushed for a delivery.
    pub async fn set_job_id(&self, id: i64, job_id: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE deliveries SET job_id = $2 WHERE id = $1").bind(id).bind(job_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Deliveries that are owed work now: queued, sending (a crash or a live worker), or
    /// retrying/unconfirmed and due. The sweeper checks each for a live job or lease.
    pub async fn owed_deliveries(&self, now: i64) -> anyhow::Result<Vec<DeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLS} FROM deliveries WHERE state IN ('queued', 'sending') \
             OR (state IN ('retrying', 'unconfirmed') AND next_attempt_at IS NOT NULL AND next_attempt_at <= $1) ORDER BY id"
        );
        Ok(sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(&self.pool).await?)
    }

    /// Cancel every delivery of `issue` (and `channels`) that has not been sent or finished.
    /// Returns how many.
    pub async fn cancel(&self, issue: &str, channels: &[String]) -> anyhow::Result<Vec<DeliveryRow>> {
        let mut out = Vec::new();
        for d in self.list_deliveries(Some(issue), channels).await? {
            if matches!(d.state(), State::Scheduled | State::Queued | State::Retrying | State::Unconfirmed) {
                let r = sqlx::query(
                    "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, updated_at = $2 \
                     WHERE id = $1 AND state IN ('scheduled', 'queued', 'retrying', 'unconfirmed')",
                )
                .bind(d.id)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
                if r.rows_affected() == 1 {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Redrive one failed or unconfirmed delivery once, by hand: a failed one is queued again,
    /// an unconfirmed one stays unconfirmed (so it is reconciled first) and is due now.
    /// Sets the trigger to `manual` (no automatic retry chain). Returns false if it changed state meanwhile.
    pub async fn redrive(&self, id: i64, job_id: &str) -> anyhow::Result<bool> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE deliveries SET state = CASE WHEN state = 'failed' THEN 'queued' ELSE state END, triggered_by = 'manual', \
               next_attempt_at = $2, job_id = $3, updated_at = $2 WHERE id = $1 AND state IN ('failed', 'unconfirmed')",
        )
        .bind(id)
        .bind(now)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Load a delivery's checkpoint.
    pub async fn load_checkpoint(&self, id: i64) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>("SELECT checkpoint FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }

    /// Save a delivery's checkpoint (committed when this returns).
    pub async fn save_checkpoint(&self, id: i64, json: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE deliveries SET checkpoint = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(json)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- attempts --------------------------------------------------------------------------

    /// A delivery's attempts, in order.
    pub async fn attempts(&self, delivery_id: i64) -> anyhow::Result<Vec<AttemptRow>> {
        Ok(sqlx::query_as::<_, AttemptRow>("SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY n")
            .bind(delivery_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Attempts after row id `after`, joined with their delivery, oldest first.
    pub async fn log(&self, issue: Option<&str>, channels: &[String], after: i64) -> anyhow::Result<Vec<LogRow>> {
        let rows = sqlx::query_as::<_, LogRow>(
            "SELECT a.id, d.delivery_key, d.issue, d.channel, a.n, a.started_at, a.duration_ms, a.triggered_by, a.outcome, \
               a.status_code, a.error, a.next_attempt_at, a.content_hash, a.remote_id \
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE a.id > $1 AND ($2 = '' OR d.issue = $2) ORDER BY a.id",
        )
        .bind(after)
        .bind(issue.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter(|r| channels.is_empty() || channels.contains(&r.channel)).collect())
    }
}

impl Store {
    /// The newest `limit` attempts, newest first.
    pub async fn recent_log(&self, limit: i64) -> anyhow::Result<Vec<LogRow>> {
        Ok(sqlx::query_as::<_, LogRow>(
            "SELECT a.id, d.delivery_key, d.issue, d.channel, a.n, a.started_at, a.duration_ms, a.triggered_by, a.outcome, \
               a.status_code, a.error, a.next_attempt_at, a.content_hash, a.remote_id \
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id ORDER BY a.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// `{issue}/{channel}/r{revision}`.
pub fn delivery_key(issue: &str, channel: &str, revision: i64) -> String {
    format!("{issue}/{channel}/r{revision}")
}
