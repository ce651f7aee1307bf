//! Postmark batches (`postmark_batches`, `postmark_batch_members`, migration 0007): each batch
//! call of an `email_api` mailing, with its recipients, written before the call so that a batch
//! whose outcome is unknown can be reconciled by its tag. Rows only; the adapter sees them
//! through `channel::email_api::BatchLedger`.

use anyhow::Context as _;
use sqlx::Row as _;

use super::{Backend, Store, now_ms};

/// A batch that may have reached Postmark and still has recipients pending in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBatchRow {
    /// The batch's `Tag`.
    pub tag: String,
    /// When it was recorded, just before the call (unix ms).
    pub opened_at: i64,
    /// Its pending ledger rows: (id, address).
    pub pending: Vec<(i64, String)>,
}

impl Store {
    /// Record a batch and its ledger rows, in one transaction, before the call. The delivery is
    /// the one of the first row.
    pub async fn open_postmark_batch(&self, tag: &str, send_ids: &[i64]) -> anyhow::Result<()> {
        let Some(first) = send_ids.first() else { return Ok(()) };
        let now = now_ms();
        let ids = serde_json::to_string(send_ids)?;
        let members = match self.backend() {
            Backend::Sqlite => "INSERT INTO postmark_batch_members (tag, send_id) SELECT $1, value FROM json_each($2)",
            Backend::Postgres => {
                "INSERT INTO postmark_batch_members (tag, send_id) SELECT $1, CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST($2 AS jsonb))"
            }
        };
        let mut tx = self.pool().begin().await.context("recording a Postmark batch")?;
        let n = sqlx::query(
            "INSERT INTO postmark_batches (tag, delivery_id, state, opened_at, updated_at) \
             SELECT $1, delivery_id, 'open', $2, $2 FROM recipient_sends WHERE id = $3",
        )
        .bind(tag)
        .bind(now)
        .bind(*first)
        .execute(&mut *tx)
        .await
        .context("recording a Postmark batch")?
        .rows_affected();
        anyhow::ensure!(n == 1, "recording a Postmark batch: ledger row {first} not found");
        sqlx::query(members).bind(tag).bind(ids).execute(&mut *tx).await.context("recording a Postmark batch's recipients")?;
        tx.commit().await.context("recording a Postmark batch")?;
        Ok(())
    }

    /// Set a batch's state (`refused` or `reconciled`).
    pub async fn close_postmark_batch(&self, tag: &str, state: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE postmark_batches SET state = $2, updated_at = $3 WHERE tag = $1")
            .bind(tag)
            .bind(state)
            .bind(now_ms())
            .execute(self.pool())
            .await
            .context("closing a Postmark batch")?;
        Ok(())
    }

    /// The delivery's `open` batches that still have pending recipients, oldest first. Open
    /// batches with none (their answer was recorded: every row is `sent` or `failed`) are first
    /// marked `answered`, so each pass looks only at the batches sent since the last one.
    pub async fn open_postmark_batches(&self, delivery_id: i64) -> anyhow::Result<Vec<OpenBatchRow>> {
        sqlx::query(
            "UPDATE postmark_batches SET state = 'answered', updated_at = $2 \
             WHERE delivery_id = $1 AND state = 'open' AND NOT EXISTS (SELECT 1 FROM postmark_batch_members m \
             JOIN recipient_sends r ON r.id = m.send_id WHERE m.tag = postmark_batches.tag AND r.state = 'pending')",
        )
        .bind(delivery_id)
        .bind(now_ms())
        .execute(self.pool())
        .await
        .context("sweeping answered Postmark batches")?;
        let rows = sqlx::query(
            "SELECT b.tag, b.opened_at, r.id, r.email FROM postmark_batches b \
             JOIN postmark_batch_members m ON m.tag = b.tag JOIN recipient_sends r ON r.id = m.send_id \
             WHERE b.delivery_id = $1 AND b.state = 'open' AND r.state = 'pending' \
             ORDER BY b.opened_at, b.tag, r.id",
        )
        .bind(delivery_id)
        .fetch_all(self.pool())
        .await
        .context("reading open Postmark batches")?;
        let mut out: Vec<OpenBatchRow> = Vec::new();
        for r in &rows {
            let tag: String = r.try_get(0)?;
            let member = (r.try_get::<i64, _>(2)?, r.try_get::<String, _>(3)?);
            match out.last_mut() {
                Some(b) if b.tag == tag => b.pending.push(member),
                _ => out.push(OpenBatchRow { tag, opened_at: r.try_get(1)?, pending: vec![member] }),
            }
        }
        Ok(out)
    }
}
