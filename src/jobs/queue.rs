//! The apalis queue: storages for the Publish and Deliver jobs on SQLite (a sibling file) or
//! PostgreSQL (apalis's own schema), pushes, and the "is this job still alive?" check the
//! outbox sweeper needs.

use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::*;
use apalis_postgres::{PgPool, PostgresStorage};
use apalis_sqlite::{SqlitePool, SqliteStorage};
use sqlx::Row as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{DeliverJob, PublishJob};
use crate::store::{BUSY_TIMEOUT, StoreUrl, lease};

/// Queue (apalis `job_type`) of the Publish jobs.
pub const PUBLISH_QUEUE: &str = "herald.publish";
/// Queue of the Deliver jobs.
pub const DELIVER_QUEUE: &str = "herald.deliver";

/// apalis's own attempts per job. Herald schedules real retries itself (new jobs with
/// `run_after`); these only cover infrastructure errors (a busy database), retried in process by
/// the worker's retry layer (`INFRA_RETRIES`), and `max_attempts` equals that plus one so the
/// storage never re-fetches a failed job in a tight loop (STACK §6.1).
pub const JOB_MAX_ATTEMPTS: usize = INFRA_RETRIES + 1;
/// The furthest ahead a Deliver job is scheduled (a year).
pub const MAX_JOB_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// In-process retries of an infrastructure error.
pub const INFRA_RETRIES: usize = 2;

/// Signalled when this process pushes a Publish job, so its own worker fetches at once instead
/// of at its next poll (a `publish --wait`, or a Publish job pushing Deliver jobs, used to wait
/// up to one poll interval per hop). Other processes still find the job by polling.
pub static PUBLISH_PUSHED: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// The same for Deliver jobs.
pub static DELIVER_PUSHED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// A worker's wake-ups: every `poll`, and at once when `pushed` is signalled.
pub fn wake_ups(poll: Duration, pushed: &'static tokio::sync::Notify) -> std::pin::Pin<Box<dyn futures::Stream<Item = ()> + Send>> {
    Box::pin(futures::stream::unfold((), move |()| async move {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = pushed.notified() => {}
        }
        Some(((), ()))
    }))
}

/// The queue's storages, by backend.
#[derive(Clone)]
pub enum Queue {
    /// `<stem>.queue.db`.
    Sqlite {
        /// The queue file's pool.
        pool: SqlitePool,
        /// Publish jobs.
        publish: SqliteStorage<PublishJob>,
        /// Deliver jobs.
        deliver: SqliteStorage<DeliverJob>,
    },
    /// Schema `apalis`.
    Postgres {
        /// The pool.
        pool: PgPool,
        /// Publish jobs.
        publish: PostgresStorage<PublishJob>,
        /// Deliver jobs.
        deliver: PostgresStorage<DeliverJob>,
    },
}

/// Durability of the queue file. NORMAL in WAL mode survives a process crash (the case that
/// matters for kill -9); on power loss it may drop the last commits. A lost queue row is
/// harmless here: Herald's store (FULL) is the truth and the sweeper re-pushes a Deliver job
/// for every delivery still owed that has no live job.
const QUEUE_SYNCHRONOUS: SqliteSynchronous = SqliteSynchronous::Normal;

/// Connection options for the queue file, applied to every pooled connection.
pub fn sqlite_queue_options(path: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(QUEUE_SYNCHRONOUS)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
}

fn sqlite_config(queue: &str, batch: usize) -> apalis_sqlite::Config {
    apalis_sqlite::Config::default().queue(queue).batch_size(batch.max(1))
}

fn pg_config(queue: &str, batch: usize) -> apalis_postgres::Config {
    apalis_postgres::Config::default().queue(queue).batch_size(batch.max(1))
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Queue::Sqlite { .. } => "Queue::Sqlite",
            Queue::Postgres { .. } => "Queue::Postgres",
        })
    }
}

impl Queue {
    /// Open the queue for a store URL and run apalis's migrations.
    ///
    /// SQLite: we do not call `SqliteStorage::setup()`, which sets `synchronous=OFF` on one
    /// pooled connection; we run its migrations and set the PRAGMAs on every connection through
    /// [`sqlite_queue_options`] instead (tested in `tests/it/pipeline.rs`).
    pub async fn open(url: &StoreUrl, batch: usize) -> anyhow::Result<Self> {
        match url {
            StoreUrl::Sqlite { .. } => {
                let path = url.queue_path().expect("sqlite has a queue path");
                let pool = SqlitePoolOptions::new()
                    .max_connections(crate::store::SQLITE_POOL_SIZE)
                    .min_connections(1)
                    .idle_timeout(crate::store::POOL_IDLE_TIMEOUT)
                    .max_lifetime(crate::store::SQLITE_MAX_LIFETIME)
                    .acquire_timeout(Duration::from_secs(30))
                    // A local file: no liveness test before each use (see store::Store::open).
                    .test_before_acquire(false)
                    .connect_with(sqlite_queue_options(&path))
                    .await
                    .with_context(|| format!("cannot open the queue {}", path.display()))?;
                // No migration lock on SQLite: retry a race with another process (see Store::migrate).
                let mut tries = 0;
                loop {
                    match SqliteStorage::migrations().run(&pool).await {
                        Ok(()) => break,
                        Err(_) if tries < 10 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                        }
                        Err(e) => return Err(e).context("queue migrations failed"),
                    }
                }
                Ok(Queue::Sqlite {
                    publish: SqliteStorage::new(&pool).with_config(sqlite_config(PUBLISH_QUEUE, 1)),
                    deliver: SqliteStorage::new(&pool).with_config(sqlite_config(DELIVER_QUEUE, batch)),
                    pool,
                })
            }
            StoreUrl::Postgres { url: pg } => {
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .min_connections(1)
                    .idle_timeout(crate::store::POOL_IDLE_TIMEOUT)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(pg)
                    .await
                    .with_context(|| format!("cannot connect the queue to {}", crate::store::redact_url(pg)))?;
                PostgresStorage::setup(&pool).await.context("queue migrations failed")?;
                Ok(Queue::Postgres {
                    publish: PostgresStorage::new(&pool).with_config(pg_config(PUBLISH_QUEUE, 1)),
                    deliver: PostgresStorage::new(&pool).with_config(pg_config(DELIVER_QUEUE, batch)),
                    pool,
                })
            }
        }
    }

    /// The same queue with the Deliver storage fetching `batch` jobs at a time. A worker
    /// locks what it fetches, so a batch near its concurrency keeps one daemon from holding
    /// jobs another daemon could run now.
    pub fn with_deliver_batch(&self, batch: usize) -> Self {
        match self {
            Queue::Sqlite { pool, publish, .. } => Queue::Sqlite {
                pool: pool.clone(),
                publish: publish.clone(),
                deliver: SqliteStorage::new(pool).with_config(sqlite_config(DELIVER_QUEUE, batch)),
            },
            Queue::Postgres { pool, publish, .. } => Queue::Postgres {
                pool: pool.clone(),
                publish: publish.clone(),
                deliver: PostgresStorage::new(pool).with_config(pg_config(DELIVER_QUEUE, batch)),
            },
        }
    }

    /// Push a Publish job. With a key, a second push of the same key adds nothing.
    pub async fn push_publish(&self, job: PublishJob, key: Option<&str>) -> anyhow::Result<()> {
        let mut b = TaskBuilder::new(job).max_attempts(JOB_MAX_ATTEMPTS);
        if let Some(k) = key {
            b = b.idempotency_key(k);
        }
        let task = b.build();
        let res = match self {
            Queue::Sqlite { publish, .. } => publish.clone().push_task(task).await.map_err(|e| anyhow::anyhow!("{e}")),
            Queue::Postgres { publish, pool, .. } => {
                // apalis-postgres inserts without ON CONFLICT: a repeated key is a unique
                // violation, so look first, and treat a lost race as the dedup it is.
                if let Some(k) = key {
                    let exists = sqlx::query("SELECT 1 FROM apalis.jobs WHERE job_type = $1 AND idempotency_key = $2")
                        .bind(PUBLISH_QUEUE)
                        .bind(k)
                        .fetch_optional(pool)
                        .await?
                        .is_some();
                    if exists {
                        return Ok(());
                    }
                }
                match publish.clone().push_task(task).await {
                    Err(e) if key.is_some() && is_unique_violation(&e.to_string()) => Ok(()),
                    other => other.map_err(|e| anyhow::anyhow!("{e}")),
                }
            }
        };
        res.context("cannot push the Publish job")?;
        PUBLISH_PUSHED.notify_one();
        Ok(())
    }

    /// Push a Deliver job with a chosen id, due after `delay`.
    pub async fn push_deliver(&self, delivery_id: i64, job_id: &str, delay: Duration) -> anyhow::Result<()> {
        let id: TaskId = job_id.parse().map_err(|e| anyhow::anyhow!("bad job id {job_id}: {e:?}"))?;
        // A job further out than a year only wakes a worker that finds it not due; the sweeper
        // pushes another once it is. (A delay of centuries would overflow the queue's clock.)
        let delay = delay.min(MAX_JOB_DELAY);
        let task = TaskBuilder::new(DeliverJob::V1 { delivery_id }).task_id(id).max_attempts(JOB_MAX_ATTEMPTS).run_after(delay).build();
        match self {
            Queue::Sqlite { deliver, .. } => deliver.clone().push_task(task).await.map_err(|e| anyhow::anyhow!("{e}")),
            Queue::Postgres { deliver, .. } => deliver.clone().push_task(task).await.map_err(|e| anyhow::anyhow!("{e}")),
        }
        .with_context(|| format!("cannot push the Deliver job for delivery {delivery_id}"))?;
        if delay.is_zero() {
            DELIVER_PUSHED.notify_one();
        }
        Ok(())
    }

    /// Is this job still going to run? Pending or Queued; Running on a worker that is not
    /// known dead; Failed with attempts left (the storage re-fetches it).
    pub async fn job_is_live(&self, job_id: &str) -> anyhow::Result<bool> {
        let row = match self {
            Queue::Sqlite { pool, .. } => sqlx::query("SELECT status, attempts, max_attempts, lock_by FROM Jobs WHERE id = ?1")
                .bind(job_id)
                .fetch_optional(pool)
                .await?
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1), r.get::<i64, _>(2), r.get::<Option<String>, _>(3))),
            Queue::Postgres { pool, .. } => sqlx::query(
                "SELECT status, attempts::bigint, max_attempts::bigint, lock_by FROM apalis.jobs WHERE id = $1",
            )
            .bind(job_id)
            .fetch_optional(pool)
            .await?
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1), r.get::<i64, _>(2), r.get::<Option<String>, _>(3))),
        };
        let Some((status, attempts, max, lock_by)) = row else { return Ok(false) };
        Ok(match status.as_str() {
            "Pending" => true,
            "Queued" | "Running" => !lock_by.as_deref().is_some_and(lease::worker_is_dead_here),
            "Failed" => attempts < max,
            _ => false,
        })
    }

    /// Delete finished jobs (Done, Killed) older than `age`. The queue is not a history
    /// (Herald's tables are), and apalis-sqlite's ack cost grows with the finished rows a worker
    /// has locked (STACK §4, §6.7); its own `vacuum_before` deletes every finished row (§6.3).
    pub async fn prune_finished(&self, age: Duration) -> anyhow::Result<u64> {
        let cutoff = chrono::Utc::now().timestamp() - age.as_secs() as i64;
        Ok(match self {
            Queue::Sqlite { pool, .. } => sqlx::query("DELETE FROM Jobs WHERE status IN ('Done', 'Killed') AND done_at IS NOT NULL AND done_at < ?1")
                .bind(cutoff)
                .execute(pool)
                .await?
                .rows_affected(),
            Queue::Postgres { pool, .. } => sqlx::query(
                "DELETE FROM apalis.jobs WHERE status IN ('Done', 'Killed') AND done_at IS NOT NULL AND done_at < to_timestamp($1)",
            )
            .bind(cutoff as f64)
            .execute(pool)
            .await?
            .rows_affected(),
        })
    }

    /// Counts of Deliver jobs by status (for the bench and tests).
    pub async fn deliver_job_count(&self) -> anyhow::Result<i64> {
        Ok(match self {
            Queue::Sqlite { pool, .. } => sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE job_type = ?1").bind(DELIVER_QUEUE).fetch_one(pool).await?,
            Queue::Postgres { pool, .. } => {
                sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1").bind(DELIVER_QUEUE).fetch_one(pool).await?
            }
        })
    }

    /// Close the pool.
    pub async fn close(&self) {
        match self {
            Queue::Sqlite { pool, .. } => pool.close().await,
            Queue::Postgres { pool, .. } => pool.close().await,
        }
    }
}

fn is_unique_violation(msg: &str) -> bool {
    msg.contains("duplicate key") || msg.contains("unique") || msg.contains("23505")
}

/// A new job id: a ULID (what apalis's SQL backends parse back), made from a UUIDv7 so it is
/// time-ordered like the ids apalis makes itself.
pub fn new_job_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut v = uuid::Uuid::now_v7().as_u128();
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_parse_as_ulids() {
        let id = new_job_id();
        assert_eq!(id.len(), 26);
        let t: TaskId = id.parse().unwrap();
        assert!(t.as_ulid().is_some(), "{t:?}");
        assert_eq!(t.to_string(), id);
    }
}
