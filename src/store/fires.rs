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

    /// Claim a fire for this process (`claimed_by` = `owner`, a [`super::lease::ProcessId`]
    /// tag), so a fire whose claimer died can be told from one still being published.
    pub async fn claim_fire_by(&self, schedule: &str, fire_at: i64, owner: &str) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "INSERT INTO schedule_fires (schedule, fire_at, result, claimed_by, created_at) VALUES ($1, $2, 'claimed', $3, $4) \
             ON CONFLICT (schedule, fire_at) DO NOTHING",
        )
        .bind(schedule)
        .bind(fire_at)
        .bind(owner)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Fires still `claimed` or `redriving` (nobody recorded what they did), oldest first,
    /// with who claimed them.
    pub async fn unfinished_fires(&self) -> anyhow::Result<Vec<(FireRow, Option<String>)>> {
        let rows: Vec<(String, i64, String, Option<String>, Option<String>, i64, Option<String>)> = sqlx::query_as(
            "SELECT schedule, fire_at, result, issue, detail, created_at, claimed_by FROM schedule_fires \
             WHERE result IN ('claimed', 'redriving') ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(schedule, fire_at, result, issue, detail, created_at, by)| (FireRow { schedule, fire_at, result, issue, detail, created_at }, by))
            .collect())
    }

    /// Take over an unfinished fire whose claimer is gone: `from` (`claimed` or `redriving`) to
    /// `to`, now claimed by `owner`. True for the one caller that wins.
    pub async fn take_over_fire(&self, schedule: &str, fire_at: i64, from: &str, prev_owner: Option<&str>, to: &str, owner: &str) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "UPDATE schedule_fires SET result = $4, claimed_by = $5, created_at = $6 \
             WHERE schedule = $1 AND fire_at = $2 AND result = $3 AND COALESCE(claimed_by, '') = $7",
        )
        .bind(schedule)
        .bind(fire_at)
        .bind(from)
        .bind(to)
        .bind(owner)
        .bind(now_ms())
        .bind(prev_owner.unwrap_or(""))
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

    /// Issue versions stored at or after `since_ms`, oldest first.
    pub async fn issues_stored_since(&self, since_ms: i64) -> anyhow::Result<Vec<super::IssueRow>> {
        Ok(sqlx::query_as::<_, super::IssueRow>("SELECT * FROM issues WHERE created_at >= $1 ORDER BY created_at")
            .bind(since_ms)
            .fetch_all(self.pool())
            .await?)
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
