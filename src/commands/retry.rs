//! `herald retry [ISSUE] [--channel C]... [--wait]`: redrive failed and unconfirmed deliveries,
//! once each, by hand. A failed delivery is queued again; an unconfirmed one is reconciled
//! first (it is never resent blind). No automatic retry chain follows a manual attempt.

use std::sync::Arc;

use super::status::{matrix, resolve_slug};
use super::{ExitStatus, Globals};
use crate::cli::RetryArgs;
use crate::jobs::Pipeline;
use crate::jobs::queue::new_job_id;
use crate::jobs::worker::{WaitEnd, WaitFor, WorkerOptions, latest_per_channel, run_until_settled};
use crate::store::State;

/// Run `herald retry`.
pub async fn run(g: &Globals, args: RetryArgs) -> anyhow::Result<ExitStatus> {
    let cfg = Arc::new(g.load_config()?);
    let p = Arc::new(Pipeline::open(cfg).await?);
    let slug = match &args.issue {
        Some(i) => Some(resolve_slug(i)?),
        None => None,
    };
    let rows = latest_per_channel(p.store.list_deliveries(slug.as_deref(), &args.channels).await?);
    let mut ids = Vec::new();
    for d in rows.iter().filter(|d| matches!(d.state(), State::Failed | State::Unconfirmed)) {
        let job = new_job_id();
        if p.store.redrive(d.id, &job).await? {
            p.queue.push_deliver(d.id, &job, std::time::Duration::ZERO).await?;
            eprintln!("Retrying {} (was {}).", d.delivery_key, d.state);
            ids.push(d.id);
        }
    }
    if ids.is_empty() {
        eprintln!("Nothing to retry: no failed or unconfirmed deliveries match.");
        return Ok(ExitStatus::Success);
    }
    if !args.wait {
        return Ok(ExitStatus::Success);
    }
    let end = run_until_settled(p.clone(), WorkerOptions::default(), WaitFor::Deliveries(ids.clone()), None).await?;
    let mut done = Vec::new();
    for id in &ids {
        if let Some(d) = p.store.get_delivery(*id).await? {
            done.push(d);
        }
    }
    print!("{}", matrix(&done));
    p.close().await;
    Ok(if end == WaitEnd::Settled && done.iter().all(|d| d.state() == State::Sent) { ExitStatus::Success } else { ExitStatus::Failure })
}
