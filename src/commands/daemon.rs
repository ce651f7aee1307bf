//! `herald daemon`: the Publish and Deliver workers and the outbox sweeper, until SIGTERM or
//! SIGINT. Shutdown stops fetching, lets in-flight deliveries finish (up to 30 s), and hands
//! back fetched-but-unstarted jobs to the queue; a delivery cut off mid-send is reconciled by
//! the next run.

use std::sync::Arc;

use super::{ExitStatus, Globals};
use crate::cli::DaemonArgs;
use crate::jobs::Pipeline;
use crate::jobs::worker::{WorkerOptions, run_until, shutdown_signal};

/// Run `herald daemon`.
pub async fn run(g: &Globals, args: DaemonArgs) -> anyhow::Result<ExitStatus> {
    let cfg = Arc::new(g.load_config()?);
    let p = Arc::new(Pipeline::open(cfg).await?);
    tracing::info!(store = %p.store.url().display(), concurrency = args.concurrency, "Daemon started.");
    let opts = WorkerOptions { concurrency: args.concurrency.max(1), ..WorkerOptions::default() };
    run_until(p.clone(), opts, shutdown_signal()).await?;
    p.close().await;
    tracing::info!("Daemon stopped.");
    Ok(ExitStatus::Success)
}
