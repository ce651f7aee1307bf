//! Bounce reports and the suppressions they cause (issue 17): one `bounce_events` row per
//! report, keyed so the same report arriving twice (a webhook retried, a mailbox polled again,
//! a file imported twice) changes nothing, and the suppression written in the same
//! transaction. Rows only: what a kind means is decided in `src/bounces/policy.rs`.

use anyhow::Context as _;
use sqlx::Row as _;

use super::{Store, now_ms};

/// A report to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceEventRow {
    /// Unique per report (e.g. `imap:<message-id>:<recipient>`, `postmark:<ID>`).
    pub event_key: String,
    /// Lowercase address.
    pub email: String,
    /// `hard_bounce`, `soft_bounce`, `complaint`, `unsubscribe`, `mailto_unsubscribe`, `delayed`, `info`.
    pub kind: String,
    /// `smtp`, `postmark_webhook`, `imap`, `import`, `link`.
    pub source: String,
    /// What the report said (a DSN status, Postmark's bounce type), short.
    pub detail: String,
    /// The mailing it is about, when the report could be tied to one.
    pub delivery_id: Option<i64>,
    /// When (unix ms).
    pub at: i64,
}

/// What to do with the address once the report is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressRule {
    /// Record only.
    Never,
    /// Suppress at once.
    Now,
    /// Suppress when at least `limit` reports of this kind for the address are newer than `since_ms`.
    AfterCount {
        /// Reports needed.
        limit: i64,
        /// Window start (unix ms).
        since_ms: i64,
    },
}

/// What recording a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceRecorded {
    /// The same report was recorded before: nothing changed.
    Duplicate,
    /// Recorded; the address is not (newly) suppressed.
    Recorded,
    /// Recorded, and the address is now suppressed.
    Suppressed,
    /// Recorded; the address was already suppressed.
    AlreadySuppressed,
}

/// One suppression, for `herald subscribers list --suppressed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionRow {
    /// Address.
    pub email: String,
    /// Kind (`hard_bounce`, `complaint`, `smtp_5xx`, `unsubscribe`, …).
    pub kind: String,
    /// Source (`smtp`, `postmark_webhook`, `imap`, `import`, `link`, `manual`).
    pub source: String,
    /// The reason as text.
    pub reason: String,
    /// When (unix ms).
    pub at: i64,
    /// Whether the address is a subscriber.
    pub subscriber: bool,
}

impl Store {
    /// Record one report and apply `rule`, in one transaction. A report whose key is already
    /// stored changes nothing.
    pub async fn record_bounce(&self, ev: &BounceEventRow, rule: SuppressRule, reason: &str) -> anyhow::Result<BounceRecorded> {
        let mut out = self.record_bounces(&[(ev.clone(), rule, reason.to_string())]).await?;
        Ok(out.pop().unwrap_or(BounceRecorded::Duplicate))
    }

    /// Record a batch of reports, each with its rule and reason, in **one** transaction (one
    /// commit, one fsync, for the whole batch): either every report of the batch is stored
    /// with its suppression, or none is (a crash mid-batch leaves the batch to be applied
    /// again, and each report's key makes a second application change nothing). Answers one
    /// outcome per report, in order; a key seen before (in the store, or earlier in the same
    /// batch) is a [`BounceRecorded::Duplicate`].
    pub async fn record_bounces(&self, batch: &[(BounceEventRow, SuppressRule, String)]) -> anyhow::Result<Vec<BounceRecorded>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.context("recording bounce reports")?;
        let mut out = Vec::with_capacity(batch.len());
        for (ev, rule, reason) in batch {
            out.push(record_in(&mut tx, ev, *rule, reason).await?);
        }
        tx.commit().await.with_context(|| format!("recording {} bounce report(s)", batch.len()))?;
        Ok(out)
    }

    /// Up to `limit` suppressions with an address after `after`, in address order.
    pub async fn suppressions_page(&self, after: &str, limit: i64) -> anyhow::Result<Vec<SuppressionRow>> {
        let rows = sqlx::query(
            "SELECT x.email, x.kind, x.source, x.reason, x.at, s.id FROM suppressions x LEFT JOIN subscribers s ON s.email = x.email \
             WHERE x.email > $1 ORDER BY x.email LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("listing suppressions")?;
        rows.iter()
            .map(|r| {
                let sub: Option<i64> = r.try_get(5)?;
                Ok(SuppressionRow { email: r.try_get(0)?, kind: r.try_get(1)?, source: r.try_get(2)?, reason: r.try_get(3)?, at: r.try_get(4)?, subscriber: sub.is_some() })
            })
            .collect()
    }

    /// Addresses of a mailing reported as bounced or complaining after it was sent.
    pub async fn bounced_later(&self, delivery_id: i64) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(DISTINCT email) FROM bounce_events WHERE delivery_id = $1 AND kind IN ('hard_bounce', 'soft_bounce', 'complaint')")
            .bind(delivery_id)
            .fetch_one(&self.pool)
            .await
            .context("counting later bounces")?
            .try_get(0)?)
    }

    /// Reports of each kind (tests, `status`).
    pub async fn bounce_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT kind, COUNT(*) FROM bounce_events GROUP BY kind ORDER BY kind").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// The ledger row `id`: its mailing and address (a VERP token names the row).
    pub async fn recipient_by_row(&self, id: i64) -> anyhow::Result<Option<(i64, String)>> {
        let r = sqlx::query("SELECT delivery_id, email FROM recipient_sends WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// The ledger row whose recorded reply is `reply` (an ESP's message id).
    pub async fn recipient_by_reply(&self, reply: &str) -> anyhow::Result<Option<(i64, String)>> {
        let r = sqlx::query("SELECT delivery_id, email FROM recipient_sends WHERE smtp_reply = $1 AND state = 'sent' LIMIT 1")
            .bind(reply)
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Delivery ids and keys of every seeded mailing (to tie a Message-ID's hash to its mailing).
    pub async fn mailing_keys(&self) -> anyhow::Result<Vec<(i64, String)>> {
        let rows = sqlx::query("SELECT d.id, d.delivery_key FROM deliveries d JOIN recipient_seeds r ON r.delivery_id = d.id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Whether `email` is in the ledger of mailing `delivery_id`.
    pub async fn in_mailing(&self, delivery_id: i64, email: &str) -> anyhow::Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM recipient_sends WHERE delivery_id = $1 AND email = $2")
            .bind(delivery_id)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }
}

/// One report inside a batch's transaction.
async fn record_in(tx: &mut sqlx::Transaction<'static, sqlx::Any>, ev: &BounceEventRow, rule: SuppressRule, reason: &str) -> anyhow::Result<BounceRecorded> {
    let fresh = sqlx::query(
        "INSERT INTO bounce_events (event_key, email, kind, source, detail, delivery_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (event_key) DO NOTHING",
    )
    .bind(&ev.event_key)
    .bind(&ev.email)
    .bind(&ev.kind)
    .bind(&ev.source)
    .bind(&ev.detail)
    .bind(ev.delivery_id)
    .bind(ev.at)
    .execute(&mut **tx)
    .await
    .context("recording a bounce report")?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(BounceRecorded::Duplicate);
    }
    let suppress = match rule {
        SuppressRule::Never => false,
        SuppressRule::Now => true,
        SuppressRule::AfterCount { limit, since_ms } => {
            let n: i64 = sqlx::query("SELECT COUNT(*) FROM bounce_events WHERE email = $1 AND kind = $2 AND at >= $3")
                .bind(&ev.email)
                .bind(&ev.kind)
                .bind(since_ms)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
            n >= limit
        }
    };
    if !suppress {
        return Ok(BounceRecorded::Recorded);
    }
    let added = sqlx::query("INSERT INTO suppressions (email, reason, at, kind, source) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING")
        .bind(&ev.email)
        .bind(reason)
        .bind(now_ms())
        .bind(&ev.kind)
        .bind(&ev.source)
        .execute(&mut **tx)
        .await
        .context("storing the suppression")?
        .rows_affected()
        == 1;
    Ok(if added { BounceRecorded::Suppressed } else { BounceRecorded::AlreadySuppressed })
}
