//! `herald republish ISSUE --channel C [--channel C]... [--wait]`: send a channel again as a new
//! revision (a new key, so a new post), with one manual attempt and no automatic retry chain.
//!
//! ISSUE is an issue file (its current text is stored as a version and rendered) or a slug
//! (the most recently stored version is rendered again).

use std::sync::Arc;

use super::status::matrix;
use super::{ExitStatus, Globals, InputError};
use crate::cli::RepublishArgs;
use crate::jobs::worker::{WaitEnd, WaitFor, WorkerOptions, run_until_settled};
use crate::jobs::{Pipeline, publish};
use crate::render::engine::render_channels;
use crate::store::{State, Trigger};

/// Run `herald republish`.
pub async fn run(g: &Globals, args: RepublishArgs) -> anyhow::Result<ExitStatus> {
    let cfg = Arc::new(g.load_config()?);
    let p = Arc::new(Pipeline::open(cfg.clone()).await?);
    let path = std::path::Path::new(&args.issue);
    let (issue, source) = if path.is_file() {
        let path = std::fs::canonicalize(path)?;
        let source = std::fs::read_to_string(&path).map_err(|e| InputError(format!("cannot read the issue {}: {e}", path.display())))?;
        (crate::issue::parse_str(&path, &source).map_err(|e| InputError(e.to_string()))?, source)
    } else {
        let row = p.store.latest_issue(&args.issue).await?.ok_or_else(|| {
            InputError(format!("no stored issue `{}`: give the issue file, or a slug that was published before", args.issue))
        })?;
        let issue = crate::issue::parse_str(std::path::Path::new(&row.path), &row.source).map_err(|e| InputError(e.to_string()))?;
        (issue, row.source)
    };
    let rendered = render_channels(&issue, &cfg, &args.channels).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
        InputError(format!("preflight failed; nothing was sent:\n{}", lines.join("\n")))
    })?;
    let problems = crate::jobs::preflight::check_renderings(&p, &rendered, chrono::Utc::now()).await;
    let problems: Vec<String> = problems.into_iter().map(|m| format!("  {m}")).collect();
    if !problems.is_empty() {
        return Err(InputError(format!("preflight failed; nothing was sent:\n{}", problems.join("\n"))).into());
    }
    let slug = &issue.meta.slug;
    // The issue version is not stored here: a stored, unpublished version would be published
    // to every channel by the sweeper. The renderings travel with the deliveries.
    let _ = source;
    let mut ids = Vec::new();
    for rc in &rendered {
        let rev = p.store.next_revision(slug, &rc.channel).await?;
        let created = publish::create_and_push(&p, slug, &issue.version, std::slice::from_ref(rc), Trigger::Manual, Some(rev)).await?;
        eprintln!("Republishing {slug}/{}/r{rev}.", rc.channel);
        ids.extend(created);
    }
    if !args.wait {
        return Ok(ExitStatus::Success);
    }
    let end = run_until_settled(p.clone(), WorkerOptions::default(), WaitFor::Deliveries(ids.clone()), None).await?;
    let mut rows = Vec::new();
    for id in &ids {
        if let Some(d) = p.store.get_delivery(*id).await? {
            rows.push(d);
        }
    }
    print!("{}", matrix(&rows));
    p.close().await;
    Ok(if end == WaitEnd::Settled && rows.iter().all(|d| d.state() == State::Sent) { ExitStatus::Success } else { ExitStatus::Failure })
}
