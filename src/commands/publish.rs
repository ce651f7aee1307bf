//! `herald publish FILE [--channel C]... [--wait [--timeout SECS]] [--json]`.
//!
//! Parse and preflight the issue (every channel renders and passes its checks, or nothing is
//! stored or sent: exit 2), store the version's source text, and push its Publish job. With
//! `--wait`, run an embedded worker until every delivery of the issue settles and print the
//! status matrix: exit 0 if all were sent, 1 otherwise.

use std::sync::Arc;
use std::time::Duration;

use super::status::{delivery_json, matrix};
use super::{ExitStatus, Globals, InputError};
use crate::cli::PublishArgs;
use crate::jobs::worker::{WaitEnd, WaitFor, WorkerOptions, latest_per_channel, run_until_settled};
use crate::jobs::{Pipeline, publish};
use crate::render::engine::render_channels;
use crate::sandbox::run::Sandbox;
use crate::store::State;

/// Run `herald publish`.
pub async fn run(g: &Globals, args: PublishArgs) -> anyhow::Result<ExitStatus> {
    let cfg = g.load_config()?;
    if args.sandbox {
        return sandbox(cfg, args).await;
    }
    publish_with(Arc::new(cfg), &args, None).await
}

/// `--sandbox`: the same publish, against a fake of every network, then where to look.
async fn sandbox(cfg: crate::config::LoadedConfig, mut args: PublishArgs) -> anyhow::Result<ExitStatus> {
    let dir = args.sandbox_dir.clone().unwrap_or_else(|| {
        std::path::PathBuf::from(".sandbox").join(format!("run-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")))
    });
    let (sb, cfg) = Sandbox::start(&cfg, &dir, args.store.as_deref()).await?;
    eprintln!(
        "Sandbox run in {}: every network is a local contract fake, email goes to a loopback SMTP server; nothing leaves this machine.",
        sb.dir.display()
    );
    for name in sb.skipped() {
        eprintln!("Skipped channel {name}: a plugin runs under --sandbox only with `run_in_sandbox = true` in its channel table (it runs for real).");
    }
    args.wait = true;
    let status = publish_with(Arc::new(cfg), &args, Some(&sb)).await?;
    println!("\nWhat each fake accepted:");
    for (channel, what, path) in sb.write_payloads()? {
        println!("  {channel:<12} {what:<26} {}", path.display());
    }
    Ok(status)
}

async fn publish_with(cfg: Arc<crate::config::LoadedConfig>, args: &PublishArgs, sandbox: Option<&Sandbox>) -> anyhow::Result<ExitStatus> {
    let path = std::fs::canonicalize(&args.issue).map_err(|e| InputError(format!("cannot read the issue {}: {e}", args.issue.display())))?;
    let source = std::fs::read_to_string(&path).map_err(|e| InputError(format!("cannot read the issue {}: {e}", path.display())))?;
    let issue = crate::issue::parse_str(&path, &source).map_err(|e| InputError(e.to_string()))?;
    // Preflight: every channel must render and pass its checks before anything is stored.
    let rendered = render_channels(&issue, &cfg, &args.channels).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
        InputError(format!("preflight failed; nothing was sent:\n{}", lines.join("\n")))
    })?;
    if rendered.is_empty() {
        return Err(InputError("no channel to publish to (every channel is disabled or skipped by the issue)".into()).into());
    }
    let p = Arc::new(Pipeline::open(cfg.clone()).await?);
    if let Some(sb) = sandbox {
        sb.seed(&p.store).await?;
    }
    // The preflight every CLI trigger shares: each adapter builds (its secrets resolve, named,
    // never printed), none has expired, a stored credential opens with the key, and the
    // rendering fits the remote's surely-known limits.
    let missing = crate::jobs::preflight::check_renderings(&p, &rendered, chrono::Utc::now()).await;
    if !missing.is_empty() {
        p.close().await;
        let lines: Vec<String> = missing.iter().map(|m| format!("  {m}")).collect();
        return Err(InputError(format!("preflight failed; nothing was sent:\n{}", lines.join("\n"))).into());
    }
    publish::enqueue(&p, &issue, &source, &args.channels).await?;
    let slug = issue.meta.slug.clone();
    if !args.wait {
        let names: Vec<&str> = rendered.iter().map(|r| r.channel.as_str()).collect();
        eprintln!(
            "Queued {slug} (version {}) for {}. A running `herald daemon` delivers it; `herald status {slug}` shows progress.",
            issue.version,
            names.join(", ")
        );
        return Ok(ExitStatus::Success);
    }
    let target = WaitFor::Issue { slug: slug.clone(), version: issue.version.clone(), channels: args.channels.clone() };
    let end = run_until_settled(p.clone(), WorkerOptions::default(), target, args.timeout.map(Duration::from_secs)).await?;
    let rows = latest_per_channel(p.store.list_deliveries(Some(&slug), &args.channels).await?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::Value::Array(rows.iter().map(delivery_json).collect()))?);
    } else {
        print!("{}", matrix(&rows));
    }
    p.close().await;
    match end {
        WaitEnd::PublishFailed(e) => Err(anyhow::anyhow!("the stored issue could not be rendered: {e}")),
        WaitEnd::TimedOut => {
            eprintln!("Gave up waiting; deliveries still open carry on with the next `herald daemon`.");
            Ok(ExitStatus::Failure)
        }
        WaitEnd::Interrupted => Ok(ExitStatus::Failure),
        WaitEnd::Settled => Ok(if rows.iter().all(|d| d.state() == State::Sent) { ExitStatus::Success } else { ExitStatus::Failure }),
    }
}
