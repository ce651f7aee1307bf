//! `herald cancel ISSUE [--channel C]...`: cancel the deliveries of an issue that have not been
//! sent (scheduled, queued, retrying, unconfirmed). One being sent right now finishes its attempt.

use std::sync::Arc;

use super::status::{open_store, resolve_slug};
use super::{ExitStatus, Globals};
use crate::cli::CancelArgs;

/// Run `herald cancel`.
pub async fn run(g: &Globals, args: CancelArgs) -> anyhow::Result<ExitStatus> {
    let cfg = Arc::new(g.load_config()?);
    let store = open_store(&cfg).await?;
    let slug = resolve_slug(&args.issue)?;
    let cancelled = store.cancel(&slug, &args.channels).await?;
    for d in &cancelled {
        eprintln!("Cancelled {} (was {}).", d.delivery_key, d.state);
    }
    if cancelled.is_empty() {
        eprintln!("Nothing to cancel for {slug}.");
    }
    Ok(ExitStatus::Success)
}
