//! The email tables: subscribers, suppressions and the recipient ledger (`recipient_seeds`,
//! `recipient_sends`). Rows only; the email adapter's ledger trait is implemented over these
//! in `channel/email/sql.rs`.
//!
//! Every query is valid on SQLite and PostgreSQL. Large work stays in the database or in
//! bounded batches: seeding a mailing is one `INSERT … SELECT`, the owed recipients are read
//! in keyset pages, outcomes are written in one transaction per batch, and listing
//! subscribers pages by id. Nothing loads a whole list into memory.

use anyhow::Context as _;
use sqlx::Row as _;

use super::{Backend, Store, now_ms};

/// A subscriber to add or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberUpsert {
    /// Lowercase address.
    pub email: String,
    /// Name; an empty name keeps the stored one.
    pub name: String,
    /// Other columns as a JSON object text; merged into the stored ones.
    pub extra_json: String,
}

/// A stored subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRow {
    /// Row id (import order).
    pub id: i64,
    /// Address.
    pub email: String,
    /// Name.
    pub name: String,
    /// List.
    pub list: String,
    /// Other columns, JSON object text.
    pub extra: String,
    /// When first imported (unix ms).
    pub created_at: i64,
    /// The suppression reason, when the address is suppressed.
    pub suppressed: Option<String>,
}

/// Counts for `herald subscribers count`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberCounts {
    /// Subscribers per list, by list name.
    pub lists: Vec<(String, i64)>,
    /// All subscribers.
    pub subscribers: i64,
    /// Subscribers who are also suppressed (never mailed).
    pub suppressed_subscribers: i64,
    /// All suppressed addresses (subscribers or not).
    pub suppressions: i64,
}

/// What [`Store::suppress_subscriber`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressOutcome {
    /// Newly suppressed.
    Added,
    /// Already suppressed.
    Already,
    /// Not a subscriber: nothing stored.
    Unknown,
}

/// One owed ledger row, joined with the subscriber's current data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedRow {
    /// Ledger row id.
    pub id: i64,
    /// Address.
    pub email: String,
    /// Tries so far.
    pub attempts: i64,
    /// The subscriber's name and extra columns; `None` if removed since seeding.
    pub subscriber: Option<(String, String)>,
    /// The subscriber's row id; `None` if removed since seeding.
    pub subscriber_id: Option<i64>,
    /// Suppressed since seeding.
    pub suppressed: bool,
}

/// An outcome to write to one ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendUpdate {
    /// Ledger row id.
    pub id: i64,
    /// Address (for the suppression insert).
    pub email: String,
    /// `pending`, `sent`, `failed` or `skipped`.
    pub state: &'static str,
    /// Reply code.
    pub code: Option<i64>,
    /// Reply text (trimmed by the caller).
    pub reply: Option<String>,
    /// Count one more try.
    pub tried: bool,
    /// Not before (unix ms), for a deferral.
    pub retry_at: Option<i64>,
    /// Add to suppressions with this reason (a hard bounce).
    pub suppress: Option<String>,
}

/// A mailing's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendCounts {
    /// Seeded.
    pub seeded: bool,
    /// Rows.
    pub total: i64,
    /// `sent` rows.
    pub sent: i64,
    /// `failed` rows.
    pub failed: i64,
    /// `skipped` rows.
    pub skipped: i64,
    /// `pending` rows.
    pub pending: i64,
    /// Earliest `retry_at` among pending rows.
    pub next_due: Option<i64>,
}

/// One ledger row (tests, `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRow {
    /// State.
    pub state: String,
    /// Reply code.
    pub code: Option<i64>,
    /// Reply text.
    pub reply: Option<String>,
    /// Tries.
    pub attempts: i64,
}

impl Store {
    // ---- subscribers ------------------------------------------------------------------------

    /// Add or update subscribers of `list` in one transaction. A known address moves to `list`,
    /// keeps its name when the new one is empty, and gets the new columns merged over its old.
    /// Suppressions are untouched: an imported address that is suppressed stays suppressed.
    pub async fn upsert_subscribers(&self, list: &str, rows: &[SubscriberUpsert]) -> anyhow::Result<()> {
        let merge = match self.backend {
            Backend::Sqlite => "json_patch(subscribers.extra, excluded.extra)",
            Backend::Postgres => "(subscribers.extra::jsonb || excluded.extra::jsonb)::text",
        };
        let sql = format!(
            "INSERT INTO subscribers (email, name, list, extra, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (email) DO UPDATE SET \
             name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE subscribers.name END, \
             list = excluded.list, extra = {merge}, updated_at = excluded.updated_at"
        );
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for r in rows {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&r.email)
                .bind(&r.name)
                .bind(list)
                .bind(&r.extra_json)
                .bind(now)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("storing subscriber {}", r.email))?;
        }
        tx.commit().await.context("committing subscribers")?;
        Ok(())
    }

    /// Up to `limit` subscribers with an id above `after_id`, in id order.
    pub async fn subscribers_page(&self, after_id: i64, limit: i64) -> anyhow::Result<Vec<SubscriberRow>> {
        let rows = sqlx::query(
            "SELECT s.id, s.email, s.name, s.list, s.extra, s.created_at, x.reason FROM subscribers s \
             LEFT JOIN suppressions x ON x.email = s.email WHERE s.id > $1 ORDER BY s.id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("listing subscribers")?;
        rows.iter()
            .map(|r| {
                Ok(SubscriberRow {
                    id: r.try_get(0)?,
                    email: r.try_get(1)?,
                    name: r.try_get(2)?,
                    list: r.try_get(3)?,
                    extra: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                    suppressed: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Subscribers per list, and suppressions.
    pub async fn subscriber_counts(&self) -> anyhow::Result<SubscriberCounts> {
        let rows = sqlx::query("SELECT list, COUNT(*) FROM subscribers GROUP BY list ORDER BY list").fetch_all(&self.pool).await?;
        let mut c = SubscriberCounts::default();
        for r in &rows {
            let n: i64 = r.try_get(1)?;
            c.subscribers += n;
            c.lists.push((r.try_get(0)?, n));
        }
        c.suppressions = sqlx::query("SELECT COUNT(*) FROM suppressions").fetch_one(&self.pool).await?.try_get(0)?;
        c.suppressed_subscribers = sqlx::query("SELECT COUNT(*) FROM subscribers s JOIN suppressions x ON x.email = s.email")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(c)
    }

    /// All subscribers (for import statistics).
    pub async fn subscriber_total(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM subscribers").fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// Remove a subscriber. True if there was one. Its suppression, if any, stays.
    pub async fn remove_subscriber(&self, email: &str) -> anyhow::Result<bool> {
        let r = sqlx::query("DELETE FROM subscribers WHERE email = $1").bind(email).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    // ---- suppressions -----------------------------------------------------------------------

    /// Suppress a subscriber's address (an unsubscribe). An address that is neither a
    /// subscriber nor already suppressed is not stored.
    /// The address of the subscriber with row id `id`, if there is one.
    pub async fn subscriber_email_by_id(&self, id: i64) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT email FROM subscribers WHERE id = $1").bind(id).fetch_optional(&self.pool).await.context("reading a subscriber")?;
        row.map(|r| r.try_get::<String, _>(0)).transpose().context("reading a subscriber")
    }

    pub async fn suppress_subscriber(&self, email: &str, reason: &str) -> anyhow::Result<SuppressOutcome> {
        let r = sqlx::query(
            "INSERT INTO suppressions (email, reason, at, kind, source) SELECT email, $2, $3, 'unsubscribe', 'link' FROM subscribers WHERE email = $1 \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email)
        .bind(reason)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .context("storing the suppression")?;
        if r.rows_affected() > 0 {
            return Ok(SuppressOutcome::Added);
        }
        Ok(if self.suppression(email).await?.is_some() { SuppressOutcome::Already } else { SuppressOutcome::Unknown })
    }

    /// Suppress any address (a bounce reported elsewhere, an operator's block).
    pub async fn add_suppression(&self, email: &str, reason: &str) -> anyhow::Result<bool> {
        let r = sqlx::query("INSERT INTO suppressions (email, reason, at) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING")
            .bind(email)
            .bind(reason)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The suppression reason for an address, if suppressed.
    pub async fn suppression(&self, email: &str) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query("SELECT reason FROM suppressions WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?)
    }

    // ---- the recipient ledger ---------------------------------------------------------------

    /// Seed a mailing's ledger on first use: one `pending` row per subscriber of `list` who is
    /// not suppressed, in one transaction with the seed marker. Later calls change nothing.
    /// Returns the ledger's row count.
    pub async fn seed_recipients(&self, delivery_id: i64, list: &str) -> anyhow::Result<i64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query("INSERT INTO recipient_seeds (delivery_id, list, total, seeded_at) VALUES ($1, $2, 0, $3) ON CONFLICT (delivery_id) DO NOTHING")
            .bind(delivery_id)
            .bind(list)
            .bind(now)
            .execute(&mut *tx)
            .await
            .context("seeding the recipient ledger")?
            .rows_affected()
            == 1;
        if fresh {
            let n = sqlx::query(
                "INSERT INTO recipient_sends (delivery_id, email, state, attempts, updated_at) \
                 SELECT $1, s.email, 'pending', 0, $2 FROM subscribers s \
                 WHERE s.list = $3 AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email = s.email) \
                 ORDER BY s.id ON CONFLICT (delivery_id, email) DO NOTHING",
            )
            .bind(delivery_id)
            .bind(now)
            .bind(list)
            .execute(&mut *tx)
            .await
            .context("seeding the recipient ledger")?
            .rows_affected();
            sqlx::query("UPDATE recipient_seeds SET total = $2 WHERE delivery_id = $1")
                .bind(delivery_id)
                .bind(n as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await.context("seeding the recipient ledger")?;
            tracing::info!(delivery_id, list, recipients = n, "Seeded the recipient ledger.");
            return Ok(n as i64);
        }
        tx.rollback().await.ok();
        Ok(sqlx::query("SELECT COUNT(*) FROM recipient_sends WHERE delivery_id = $1")
            .bind(delivery_id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Up to `limit` pending rows above `after_id` that are due by `now`, in id order.
    pub async fn owed_recipients(&self, delivery_id: i64, after_id: i64, now: i64, limit: i64) -> anyhow::Result<Vec<OwedRow>> {
        let rows = sqlx::query(
            "SELECT r.id, r.email, r.attempts, s.email, s.name, s.extra, x.email, s.id FROM recipient_sends r \
             LEFT JOIN subscribers s ON s.email = r.email LEFT JOIN suppressions x ON x.email = r.email \
             WHERE r.delivery_id = $1 AND r.id > $2 AND r.state = 'pending' AND (r.retry_at IS NULL OR r.retry_at <= $3) \
             ORDER BY r.id LIMIT $4",
        )
        .bind(delivery_id)
        .bind(after_id)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("reading owed recipients")?;
        rows.iter()
            .map(|r| {
                let sub: Option<String> = r.try_get(3)?;
                let supp: Option<String> = r.try_get(6)?;
                Ok(OwedRow {
                    id: r.try_get(0)?,
                    email: r.try_get(1)?,
                    attempts: r.try_get(2)?,
                    subscriber: match sub {
                        Some(_) => Some((r.try_get(4)?, r.try_get(5)?)),
                        None => None,
                    },
                    subscriber_id: r.try_get(7)?,
                    suppressed: supp.is_some(),
                })
            })
            .collect()
    }

    /// Write outcomes, and the suppressions of hard bounces, in one transaction: one `UPDATE`
    /// for the whole group, its rows passed as one JSON parameter, so a group of outcomes costs
    /// one round trip to the database and one commit, not one statement per recipient.
    pub async fn record_sends(&self, updates: &[SendUpdate]) -> anyhow::Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        // A mailing records a group every few messages. Through the pool each group would cost
        // two extra hand-offs to the connection (sqlx pings a connection when it goes back to
        // the pool), and on SQLite a connection that another one's writes left with a cold page
        // cache: the group is written on one connection held between groups instead. It is
        // taken out while in use, so a cancelled write hands it back to the pool, which checks
        // it, and only a write that succeeded keeps it.
        //
        // On SQLite that connection commits with `synchronous=NORMAL` and the WAL is flushed
        // on an interval ([`super::walsync`]); it is set back to FULL before the pool has it
        // again.
        if let Some(wal) = &self.wal {
            wal.check().map_err(|e| anyhow::anyhow!(e)).context("recording recipient outcomes")?;
        }
        let mut slot = self.writer.lock().await;
        let mut conn = match slot.take() {
            Some(c) => c,
            None => {
                let mut c = WriterConn { conn: Some(self.pool.acquire().await.context("recording recipient outcomes")?), normal: false };
                if self.wal.is_some() {
                    c.normal = true;
                    sqlx::Executor::execute(&mut **c.get(), "PRAGMA synchronous = NORMAL").await.context("recording recipient outcomes")?;
                }
                c
            }
        };
        let now = now_ms();
        let done = if updates.iter().all(|u| u.suppress.is_none()) {
            // One statement is its own transaction.
            update_sends(&mut **conn.get(), self.backend(), updates, now).await
        } else {
            record_with_bounces(conn.get(), self.backend(), updates, now).await
        };
        match &done {
            Ok(()) => {
                if let Some(wal) = &self.wal {
                    wal.committed();
                }
                *slot = Some(conn);
            }
            Err(_) => conn.give_back().await,
        }
        done
    }

    /// Give the connection [`Store::record_sends`] holds back to the pool (a mailing pass calls
    /// this when it ends, so an idle daemon holds nothing).
    pub async fn release_writer(&self) {
        let held = self.writer.lock().await.take();
        if let Some(conn) = held {
            conn.give_back().await;
        }
        if let Some(wal) = &self.wal {
            wal.flush_now().await;
        }
    }

    /// A mailing's counts.
    pub async fn send_counts(&self, delivery_id: i64) -> anyhow::Result<SendCounts> {
        let seeded = sqlx::query("SELECT delivery_id FROM recipient_seeds WHERE delivery_id = $1")
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        let rows = sqlx::query("SELECT state, COUNT(*), MIN(retry_at) FROM recipient_sends WHERE delivery_id = $1 GROUP BY state")
            .bind(delivery_id)
            .fetch_all(&self.pool)
            .await
            .context("counting recipient sends")?;
        let mut c = SendCounts { seeded, ..Default::default() };
        for r in &rows {
            let state: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            c.total += n;
            match state.as_str() {
                "sent" => c.sent = n,
                "failed" => c.failed = n,
                "skipped" => c.skipped = n,
                _ => {
                    c.pending = n;
                    c.next_due = r.try_get(2)?;
                }
            }
        }
        Ok(c)
    }

    /// One ledger row.
    pub async fn recipient_send(&self, delivery_id: i64, email: &str) -> anyhow::Result<Option<SendRow>> {
        let r = sqlx::query("SELECT state, smtp_code, smtp_reply, attempts FROM recipient_sends WHERE delivery_id = $1 AND email = $2")
            .bind(delivery_id)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| Ok(SendRow { state: r.try_get(0)?, code: r.try_get(1)?, reply: r.try_get(2)?, attempts: r.try_get(3)? })).transpose()
    }
}

/// The ledger `UPDATE` for a group of outcomes: its SQL text never changes, whatever the
/// group's size, and the rows travel as one JSON array, so the statement is prepared once per
/// connection and reused. (A `VALUES` list of bound parameters, one set per row, was both a
/// new statement per group size and, on SQLite built with STAT4, re-prepared at every
/// execution: the planner had looked at the bound values. That was 14 % of a mailing's CPU.)
const UPDATE_SENDS_SQLITE: &str = "UPDATE recipient_sends SET state = v.state, \
     smtp_code = COALESCE(v.code, recipient_sends.smtp_code), smtp_reply = COALESCE(v.reply, recipient_sends.smtp_reply), \
     attempts = recipient_sends.attempts + v.tried, retry_at = v.retry_at, updated_at = $1 \
     FROM (SELECT value ->> '$.id' AS id, value ->> '$.state' AS state, value ->> '$.code' AS code, value ->> '$.reply' AS reply, \
     value ->> '$.tried' AS tried, value ->> '$.retry_at' AS retry_at FROM json_each($2)) AS v \
     WHERE recipient_sends.id = v.id";
/// The same for PostgreSQL, which types the rows with `jsonb_to_recordset`.
const UPDATE_SENDS_POSTGRES: &str = "UPDATE recipient_sends SET state = v.state, \
     smtp_code = COALESCE(v.code, recipient_sends.smtp_code), smtp_reply = COALESCE(v.reply, recipient_sends.smtp_reply), \
     attempts = recipient_sends.attempts + v.tried, retry_at = v.retry_at, updated_at = $1 \
     FROM jsonb_to_recordset(CAST($2 AS jsonb)) AS v(id BIGINT, state TEXT, code BIGINT, reply TEXT, tried BIGINT, retry_at BIGINT) \
     WHERE recipient_sends.id = v.id";

/// The connection the ledger writer holds between groups ([`Store::record_sends`]). On SQLite
/// it commits with `synchronous=NORMAL`; [`WriterConn::give_back`] sets it back to FULL for the
/// pool, and one dropped without that (a cancelled write, a dropped store) is closed, never
/// returned to the pool as it is.
#[derive(Debug)]
pub(super) struct WriterConn {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    normal: bool,
}

impl WriterConn {
    fn get(&mut self) -> &mut sqlx::pool::PoolConnection<sqlx::Any> {
        self.conn.as_mut().expect("held until dropped or given back")
    }

    /// Back to the pool, as every pool connection is set; closed if that fails.
    async fn give_back(mut self) {
        if !self.normal {
            return;
        }
        if sqlx::Executor::execute(&mut **self.get(), "PRAGMA synchronous = FULL").await.is_ok() {
            self.normal = false;
        }
    }
}

impl Drop for WriterConn {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if self.normal {
                // Closed with its last handle rather than pooled with the wrong setting.
                drop(c.detach());
            }
        }
    }
}

/// Outcomes and the suppressions of their hard bounces, in one transaction.
async fn record_with_bounces(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>, backend: Backend, updates: &[SendUpdate], now: i64) -> anyhow::Result<()> {
    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
    update_sends(&mut *tx, backend, updates, now).await?;
    for u in updates {
        if let Some(reason) = &u.suppress {
            sqlx::query("INSERT INTO suppressions (email, reason, at, kind, source) VALUES ($1, $2, $3, 'smtp_5xx', 'smtp') ON CONFLICT (email) DO NOTHING")
                .bind(&u.email)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await
                .context("recording a bounce")?;
        }
    }
    tx.commit().await.context("recording recipient outcomes")?;
    Ok(())
}

/// One `UPDATE` for all of `updates`.
async fn update_sends<'e, E>(db: E, backend: Backend, updates: &[SendUpdate], now: i64) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows: Vec<serde_json::Value> = updates
        .iter()
        .map(|u| {
            serde_json::json!({
                "id": u.id, "state": u.state, "code": u.code, "reply": u.reply,
                "tried": i64::from(u.tried), "retry_at": u.retry_at,
            })
        })
        .collect();
    let sql = match backend {
        Backend::Sqlite => UPDATE_SENDS_SQLITE,
        Backend::Postgres => UPDATE_SENDS_POSTGRES,
    };
    let done = sqlx::query(sql)
        .bind(now)
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(db)
        .await
        .context("recording recipient outcomes")?;
    anyhow::ensure!(
        done.rows_affected() == updates.len() as u64,
        "recording recipient outcomes: {} of {} ledger rows updated",
        done.rows_affected(),
        updates.len()
    );
    Ok(())
}
