//! A measurement helper for `bench/pipeline`: how fast apalis alone drains no-op jobs on the
//! same backend, as the baseline beside Herald's publish → sent rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;

use super::queue::Queue;
use crate::store::StoreUrl;

const NOOP_QUEUE: &str = "herald.bench.noop";

struct Counter {
    done: AtomicUsize,
    target: usize,
    notify: tokio::sync::Notify,
}

async fn noop(_job: u64, c: Data<Arc<Counter>>) -> Result<(), BoxDynError> {
    if c.done.fetch_add(1, Ordering::SeqCst) + 1 >= c.target {
        c.notify.notify_one();
    }
    Ok(())
}

macro_rules! drain {
    ($storage:expr, $n:expr, $conc:expr, $poll:expr) => {{
        let mut s = $storage;
        s.push_bulk((0..$n as u64).collect()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let c = Arc::new(Counter { done: AtomicUsize::new(0), target: $n, notify: tokio::sync::Notify::new() });
        let stop = {
            let c = c.clone();
            async move {
                while c.done.load(Ordering::SeqCst) < c.target {
                    tokio::select! {
                        _ = c.notify.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                Ok::<(), std::io::Error>(())
            }
        };
        let name = format!("herald-bench-noop-{}", uuid::Uuid::new_v4().simple());
        let t = Instant::now();
        WorkerBuilder::new(name)
            .backend(s.poll_with_interval($poll))
            .data(c.clone())
            .concurrency($conc)
            .build(noop)
            .run_until(stop)
            .await
            .map_err(|e| anyhow::anyhow!("noop worker: {e}"))?;
        t.elapsed()
    }};
}

/// Push `n` no-op jobs, then time one worker (same batch size, concurrency and poll interval
/// as Herald's Deliver worker) draining them. Returns the drain time.
pub async fn noop_drain(url: &StoreUrl, n: usize, concurrency: usize, poll: Duration) -> anyhow::Result<Duration> {
    let queue = Queue::open(url, concurrency).await?;
    let d = match &queue {
        Queue::Sqlite { pool, .. } => drain!(
            SqliteStorage::<u64>::new(pool).with_config(apalis_sqlite::Config::default().queue(NOOP_QUEUE).batch_size(concurrency.max(1))),
            n,
            concurrency.max(1),
            poll
        ),
        Queue::Postgres { pool, .. } => drain!(
            PostgresStorage::<u64>::new(pool).with_config(apalis_postgres::Config::default().queue(NOOP_QUEUE).batch_size(concurrency.max(1))),
            n,
            concurrency.max(1),
            poll
        ),
    };
    queue.close().await;
    Ok(d)
}
