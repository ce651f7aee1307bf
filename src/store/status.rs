//! The reads behind the daemon's `/status` page: a page of issues, newest first, and how fast a
//! mailing is settling its recipients.

use super::Store;

impl Store {
    /// The slugs of the issues that have deliveries, newest first (by their newest delivery),
    /// `limit` of them after skipping `offset`, and how many there are in all.
    pub async fn status_issues(&self, limit: i64, offset: i64) -> anyhow::Result<(Vec<String>, i64)> {
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(DISTINCT issue) FROM deliveries").fetch_one(self.pool()).await?;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT issue, MAX(created_at) AS newest FROM deliveries GROUP BY issue ORDER BY newest DESC, issue LIMIT $1 OFFSET $2")
                .bind(limit)
                .bind(offset)
                .fetch_all(self.pool())
                .await?;
        Ok((rows.into_iter().map(|r| r.0).collect(), total))
    }

    /// Recipients of a mailing settled (sent, failed or skipped) at or after `since_ms`, and
    /// when the first of them was: the rate over a recent window.
    pub async fn settled_since(&self, delivery_id: i64, since_ms: i64) -> anyhow::Result<(i64, Option<i64>)> {
        let row: (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(updated_at) FROM recipient_sends WHERE delivery_id = $1 AND state <> 'pending' AND updated_at >= $2",
        )
        .bind(delivery_id)
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(row)
    }
}
