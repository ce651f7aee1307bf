//! `herald log [ISSUE] [--channel C]... [--follow] [--json]`: the attempt history, one line
//! (or one JSON object) per attempt, oldest first.
//!
//! JSON fields: `id` (a cursor), `key`, `issue`, `channel`, `attempt`, `started_at`,
//! `duration_ms`, `trigger` (`schedule`|`manual`), `outcome` (`sent`, `retryable`,
//! `rate_limited`, `permanent`, `needs_auth`, `forbidden`, `unknown_outcome`, `reconciled`, `cannot_check`,
//! `awaiting_confirmation`), `status`, `error`, `next_attempt_at`, `content_hash`, `remote_id`.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::status::{open_store, resolve_slug};
use super::{ExitStatus, Globals};
use crate::cli::LogArgs;
use crate::store::{LogRow, fmt_ms};

/// Run `herald log`.
pub async fn run(g: &Globals, args: LogArgs) -> anyhow::Result<ExitStatus> {
    let cfg = Arc::new(g.load_config()?);
    let store = open_store(&cfg).await?;
    let slug = match &args.issue {
        Some(i) => Some(resolve_slug(i)?),
        None => None,
    };
    let mut cursor = 0;
    let signalled = crate::jobs::worker::shutdown_signal();
    tokio::pin!(signalled);
    loop {
        let rows = store.log(slug.as_deref(), &args.channels, cursor).await?;
        let mut out = std::io::stdout().lock();
        for r in &rows {
            cursor = cursor.max(r.id);
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&log_json(r))?)?;
            } else {
                writeln!(out, "{}", log_line(r))?;
            }
        }
        out.flush()?;
        drop(out);
        if !args.follow {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = &mut signalled => break,
        }
    }
    Ok(ExitStatus::Success)
}

/// An attempt as the documented JSON object.
pub fn log_json(r: &LogRow) -> Value {
    json!({
        "id": r.id,
        "key": r.delivery_key,
        "issue": r.issue,
        "channel": r.channel,
        "attempt": r.n,
        "started_at": fmt_ms(r.started_at),
        "duration_ms": r.duration_ms,
        "trigger": r.triggered_by,
        "outcome": r.outcome,
        "status": r.status_code,
        "error": r.error,
        "next_attempt_at": r.next_attempt_at.map(fmt_ms),
        "content_hash": r.content_hash,
        "remote_id": r.remote_id,
    })
}

/// An attempt as one readable line.
pub fn log_line(r: &LogRow) -> String {
    let mut s = format!("{}  {}  #{} {}  {}", fmt_ms(r.started_at), r.delivery_key, r.n, r.triggered_by, r.outcome);
    if let Some(code) = r.status_code {
        s.push_str(&format!(" {code}"));
    }
    s.push_str(&format!("  {}ms", r.duration_ms));
    if let Some(id) = &r.remote_id {
        s.push_str(&format!("  id={id}"));
    }
    if let Some(e) = &r.error {
        let e: String = e.replace('\n', " ").chars().take(160).collect();
        s.push_str(&format!("  error: {e}"));
    }
    if let Some(n) = r.next_attempt_at {
        s.push_str(&format!("  next: {}", fmt_ms(n)));
    }
    s
}
