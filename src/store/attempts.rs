//! The pipeline's writes beyond one finished attempt: a mailing going on without an attempt
//! row, a lease renewed between passes, and the `interrupted` row for an attempt whose process
//! died before it could write its own.

use super::{AttemptOutcome, Store, Trigger, now_ms};

/// What [`Store::record_interrupted`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// The attempt number it took.
    pub n: i64,
    /// Recipients whose outcome was recorded during the interrupted attempt (a mailing).
    pub recipients: i64,
    /// The row's message.
    pub error: String,
}

impl Store {
    /// Extend the lease `owner` holds (between a mailing's passes). False if it was lost.
    pub async fn renew_lease(&self, id: i64, owner: &str, until: i64) -> anyhow::Result<bool> {
        let r = sqlx::query("UPDATE deliveries SET lease_until = $3, updated_at = $4 WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .bind(until)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// More work is owed and nothing failed: `retrying` until `next_at`, with `note` as the
    /// progress line, the lease released, and no attempt row (it was not an attempt). False
    /// (and nothing written) if `owner` no longer holds the lease.
    pub async fn continue_later(&self, id: i64, owner: &str, next_at: i64, job_id: &str, note: &str) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "UPDATE deliveries SET state = 'retrying', next_attempt_at = $3, job_id = $4, last_error = $5, last_status = NULL, \
               lease_owner = NULL, lease_until = NULL, attempt_started_at = NULL, updated_at = $6 \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(next_at)
        .bind(job_id)
        .bind(note)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The delivery was found `sending` with an attempt in flight whose process is gone (a dead
    /// lease, or one that ran out): write that attempt's `interrupted` row with what is known
    /// (for a mailing, how many recipients were recorded during it) and count it, so the next
    /// attempt takes the next number. Only the lease holder writes it, once: the in-flight
    /// mark is cleared in the same transaction. None when there was nothing to record.
    pub async fn record_interrupted(&self, id: i64, owner: &str, previous_owner: Option<&str>) -> anyhow::Result<Option<Interrupted>> {
        let mut tx = self.pool().begin().await?;
        // A write first, so SQLite takes its write lock up front.
        let r = sqlx::query(
            "UPDATE deliveries SET updated_at = updated_at \
             WHERE id = $1 AND lease_owner = $2 AND state = 'sending' AND attempt_started_at IS NOT NULL",
        )
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let (started, last_activity, trigger): (i64, i64, String) =
            sqlx::query_as("SELECT attempt_started_at, updated_at, triggered_by FROM deliveries WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
        let recipients: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recipient_sends WHERE delivery_id = $1 AND state <> 'pending' AND updated_at >= $2")
            .bind(id)
            .bind(started)
            .fetch_one(&mut *tx)
            .await?;
        let who = match previous_owner {
            Some(o) => format!("the process holding it ({}) is gone", o.rsplit_once(':').map_or(o, |(p, _)| p)),
            None => "its lease ran out".to_string(),
        };
        let mut error = format!("interrupted: {who}; nothing recorded its end, so the next attempt reconciles first");
        if recipients > 0 {
            error.push_str(&format!("; {recipients} recipients were recorded during it"));
        }
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO attempts (delivery_id, n, started_at, duration_ms, triggered_by, outcome, error) \
             SELECT $1, COALESCE(MAX(n), 0) + 1, $2, $3, $4, $5, $6 FROM attempts WHERE delivery_id = $1 RETURNING n",
        )
        .bind(id)
        .bind(started)
        .bind((last_activity - started).max(0))
        .bind(Trigger::parse(&trigger).as_str())
        .bind(AttemptOutcome::Interrupted.as_str())
        .bind(&error)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE deliveries SET attempts = attempts + 1, attempt_started_at = NULL, last_error = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(&error)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Interrupted { n, recipients, error }))
    }
}
