//! Schedule fires and the catch-up reference point. The unique (schedule, fire time) row is
//! claimed before any job is enqueued: whoever inserts it fires, everyone else stands down.

use serde::Serialize;

use super::{Store, now_ms};

/// One recorded fire.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FireRow {
    /// Schedule name (`publish_at:<slug>` for an issue's own time).
    pub schedule: String,
    /// Fire time, unix ms.
    pub fire_at: i64,
    /// fired, caught_up, skipped, nothing_ready, failed.
    pub result: String,
    /// The issue it published, if any.
    pub issue: Option<String>,
    /// Why (a preflight error, the skip reason).
    pub detail: Option<String>,
    /// When the row was written, unix ms.
    pub created_at: i64,
}

impl Store {
    /// Claim a fire. True if this caller inserted it (and so must act on it).
    pub async fn claim_fire(&self, schedule: &str, fire_at: i64, result: &str, detail: Option<&str>) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "INSERT INTO schedule_fires (schedule, fire_at, result, detail, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (schedule, fire_at) DO NOTHING",
        )
        .bind(schedule)
        .bind(fire_at)
        .bind(result)
        .bind(detail)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Record what a claimed fire did.
    pub async fn finish_fire(&self, schedule: &str, fire_at: i64, result: &str, issue: Option<&str>, detail: Option<&str>) -> anyhow::Result<()> {
        sqlx::query("UPDATE schedule_fires SET result = $3, issue = $4, detail = $5 WHERE schedule = $1 AND fire_at = $2")
            .bind(schedule)
            .bind(fire_at)
            .bind(result)
            .bind(issue)
            .bind(detail)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Fires claimed before `claimed_before` (unix ms) and never finished: the daemon that
    /// claimed them died between the claim and the publish. Each is marked `failed` with
    /// `detail`, unless it finished meanwhile; returns those marked.
    pub async fn fail_stale_claims(&self, claimed_before: i64, detail: &str) -> anyhow::Result<Vec<FireRow>> {
        let stale: Vec<FireRow> = sqlx::query_as(
            "SELECT schedule, fire_at, result, issue, detail, created_at FROM schedule_fires WHERE result = 'claimed' AND created_at < $1 ORDER BY created_at",
        )
        .bind(claimed_before)
        .fetch_all(self.pool())
        .await?;
        let mut marked = Vec::with_capacity(stale.len());
        for mut f in stale {
            let r = sqlx::query("UPDATE schedule_fires SET result = 'failed', detail = $3 WHERE schedule = $1 AND fire_at = $2 AND result = 'claimed'")
                .bind(&f.schedule)
                .bind(f.fire_at)
                .bind(detail)
                .execute(self.pool())
                .await?;
            if r.rows_affected() == 1 {
                f.result = "failed".into();
                f.detail = Some(detail.to_string());
                marked.push(f);
            }
        }
        Ok(marked)
    }

    /// The last instant a daemon watched `schedule`, if ever.
    pub async fn schedule_last_seen(&self, schedule: &str) -> anyhow::Result<Option<i64>> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT last_seen_at FROM schedules WHERE name = $1").bind(schedule).fetch_optional(self.pool()).await?;
        Ok(row.map(|r| r.0))
    }

    /// Move `schedule`'s watch mark forward to `at` (never back).
    pub async fn touch_schedule(&self, schedule: &str, at: i64) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO schedules (name, last_seen_at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE \
             SET last_seen_at = CASE WHEN excluded.last_seen_at > schedules.last_seen_at THEN excluded.last_seen_at ELSE schedules.last_seen_at END",
        )
        .bind(schedule)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Fires, newest first (`schedule` filters by name).
    pub async fn fires(&self, schedule: Option<&str>, limit: i64) -> anyhow::Result<Vec<FireRow>> {
        let rows = match schedule {
            Some(s) => {
                sqlx::query_as::<_, FireRow>("SELECT * FROM schedule_fires WHERE schedule = $1 ORDER BY fire_at DESC LIMIT $2")
                    .bind(s)
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
            None => sqlx::query_as::<_, FireRow>("SELECT * FROM schedule_fires ORDER BY fire_at DESC LIMIT $1").bind(limit).fetch_all(self.pool()).await?,
        };
        Ok(rows)
    }

    /// True if any version of the issue has been stored for publishing.
    pub async fn issue_known(&self, slug: &str) -> anyhow::Result<bool> {
        Ok(self.latest_issue(slug).await?.is_some())
    }
}

impl Store {
    /// Deliveries not yet settled (queued, sending, retrying, unconfirmed), for the queue-depth gauge.
    pub async fn open_deliveries(&self) -> anyhow::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM deliveries WHERE state IN ('queued','sending','retrying','unconfirmed','scheduled')")
            .fetch_one(self.pool())
            .await?;
        Ok(n)
    }
}
