//! `herald status [ISSUE] [--channel C]... [--json]`: the issue × channel matrix.
//!
//! One row per (issue, channel), its latest revision. `--json` prints an array of objects with
//! these fields (times are RFC 3339 UTC, absent values are `null`):
//! `issue`, `version`, `channel`, `type`, `revision`, `key`, `state`, `attempts`,
//! `rate_limited_waits`, `remote_id`, `remote_url`, `last_error`, `last_status`,
//! `next_attempt_at`, `trigger`, `created_at`, `updated_at`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{ExitStatus, Globals, InputError};
use crate::cli::StatusArgs;
use crate::jobs::worker::latest_per_channel;
use crate::store::{DeliveryRow, Store, StoreUrl, fmt_ms};

/// Run `herald status`.
pub async fn run(g: &Globals, args: StatusArgs) -> anyhow::Result<ExitStatus> {
    let cfg = Arc::new(g.load_config()?);
    let store = open_store(&cfg).await?;
    let slug = match &args.issue {
        Some(i) => Some(resolve_slug(i)?),
        None => None,
    };
    let rows = latest_per_channel(store.list_deliveries(slug.as_deref(), &args.channels).await?);
    let mut mailings = Vec::with_capacity(rows.len());
    for d in &rows {
        mailings.push(mailing_counts(&store, d).await?);
    }
    if args.json {
        let out: Vec<Value> = rows
            .iter()
            .zip(&mailings)
            .map(|(d, m)| {
                let mut v = delivery_json(d);
                if let (Some(m), Value::Object(o)) = (m, &mut v) {
                    o.insert("recipients".into(), m.json());
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&Value::Array(out))?);
    } else if rows.is_empty() {
        println!("No deliveries{}.", slug.as_ref().map(|s| format!(" for {s}")).unwrap_or_default());
    } else {
        print!("{}", matrix(&rows));
        let lines: Vec<String> = rows.iter().zip(&mailings).filter_map(|(d, m)| m.as_ref().map(|m| format!("  {} {}: {}\n", d.issue, d.channel, m.line()))).collect();
        if !lines.is_empty() {
            print!("\nMailings (recipients):\n{}", lines.concat());
        }
    }
    if !args.json && slug.is_none() {
        print!("{}", fires_needing_attention(&store).await?);
    }
    if !args.json {
        let views = crate::credentials::view::views(&cfg, &store, crate::store::now_ms()).await?;
        if views.iter().any(|v| v.source.starts_with("store") || v.expires_at.is_some() || v.status != "ok") {
            print!("\nCredentials:\n{}", crate::credentials::view::table(&views));
        }
    }
    for (name, c) in &cfg.config.channels {
        if let crate::config::ChannelConfig::Linkedin(li) = c
            && let Some(w) = crate::channel::linkedin::token_expiry_warning(li, chrono::Utc::now())
        {
            eprintln!("warning: channel {name}: {w}");
        }
    }
    Ok(ExitStatus::Success)
}

/// A mailing's recipients: what the ledger says, and what was reported later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailingCounts {
    /// Accepted by the server.
    pub sent: i64,
    /// Refused during sending.
    pub failed: i64,
    /// Still owed.
    pub owed: i64,
    /// Not sent on purpose (suppressed or removed meanwhile).
    pub skipped: i64,
    /// Accepted, then reported as a bounce or a complaint.
    pub bounced_later: i64,
}

impl MailingCounts {
    fn json(&self) -> Value {
        json!({ "sent": self.sent, "failed": self.failed, "owed": self.owed, "skipped": self.skipped, "bounced_later": self.bounced_later })
    }

    fn line(&self) -> String {
        format!("{} sent, {} failed, {} owed, {} skipped, {} bounced later", self.sent, self.failed, self.owed, self.skipped, self.bounced_later)
    }
}

/// The counts of an email delivery whose ledger was seeded; `None` for anything else.
pub async fn mailing_counts(store: &Store, d: &DeliveryRow) -> anyhow::Result<Option<MailingCounts>> {
    if d.channel_type != "email" && d.channel_type != "email_api" {
        return Ok(None);
    }
    let c = store.send_counts(d.id).await?;
    if !c.seeded {
        return Ok(None);
    }
    Ok(Some(MailingCounts { sent: c.sent, failed: c.failed, owed: c.pending, skipped: c.skipped, bounced_later: store.bounced_later(d.id).await? }))
}

/// Recent schedule fires that published nothing: skipped (missed outside the catch-up window)
/// or refused by preflight.
async fn fires_needing_attention(store: &Store) -> anyhow::Result<String> {
    let fires: Vec<_> = store.fires(None, 500).await?.into_iter().filter(|f| f.result == "skipped" || f.result == "failed").take(20).collect();
    if fires.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from("\nSchedule fires that published nothing (newest first):\n");
    for f in fires {
        out.push_str(&format!("  {}  {}  {}  {}\n", fmt_ms(f.fire_at), f.schedule, f.result, f.detail.unwrap_or_default().lines().next().unwrap_or("")));
    }
    Ok(out)
}

/// Open Herald's store named by the config (no queue needed to read).
pub async fn open_store(cfg: &crate::config::LoadedConfig) -> anyhow::Result<Store> {
    let url = StoreUrl::parse(&cfg.config.store.url, &cfg.base_dir).map_err(|e| InputError(format!("[store] url: {e}")))?;
    Store::open(&url).await
}

/// ISSUE may be an issue file (its front matter's slug is used) or a slug.
pub fn resolve_slug(arg: &str) -> anyhow::Result<String> {
    let p = std::path::Path::new(arg);
    if p.is_file() {
        let issue = crate::issue::parse_file(p).map_err(|e| InputError(e.to_string()))?;
        return Ok(issue.meta.slug);
    }
    if arg.ends_with(".md") || arg.contains('/') {
        return Err(InputError(format!("no such issue file: {arg}")).into());
    }
    Ok(arg.to_string())
}

/// A delivery as the documented JSON object.
pub fn delivery_json(d: &DeliveryRow) -> Value {
    json!({
        "issue": d.issue,
        "version": d.version,
        "channel": d.channel,
        "type": d.channel_type,
        "revision": d.revision,
        "key": d.delivery_key,
        "state": d.state,
        "attempts": d.attempts,
        "rate_limited_waits": d.rate_limited_waits,
        "remote_id": d.remote_id,
        "remote_url": d.remote_url,
        "last_error": d.last_error,
        "last_status": d.last_status,
        "next_attempt_at": d.next_attempt_at.map(fmt_ms),
        "trigger": d.triggered_by,
        "created_at": fmt_ms(d.created_at),
        "updated_at": fmt_ms(d.updated_at),
    })
}

/// The matrix as aligned text.
pub fn matrix(rows: &[DeliveryRow]) -> String {
    let mut table: Vec<[String; 6]> = vec![[
        "ISSUE".into(),
        "CHANNEL".into(),
        "STATE".into(),
        "ATTEMPTS".into(),
        "NEXT".into(),
        "URL / LAST ERROR".into(),
    ]];
    for d in rows {
        let detail = match (&d.remote_url, &d.remote_id, &d.last_error) {
            // A sent mailing with failed recipients keeps the count as its last error.
            (u, id, Some(w)) if d.state == "sent" => format!("{} ({w})", u.as_ref().or(id.as_ref()).map(String::as_str).unwrap_or("")),
            (Some(u), _, _) if d.state == "sent" => u.clone(),
            (None, Some(id), _) if d.state == "sent" => id.clone(),
            (_, _, Some(e)) => {
                let e = e.replace('\n', " ");
                let short: String = e.chars().take(100).collect();
                match d.last_status {
                    Some(s) => format!("{s}: {short}"),
                    None => short,
                }
            }
            _ => String::new(),
        };
        let attempts = if d.rate_limited_waits > 0 { format!("{} (+{} rate-limited)", d.attempts, d.rate_limited_waits) } else { d.attempts.to_string() };
        let channel = if d.revision > 1 { format!("{} (r{})", d.channel, d.revision) } else { d.channel.clone() };
        table.push([d.issue.clone(), channel, d.state.clone(), attempts, d.next_attempt_at.map(fmt_ms).unwrap_or_else(|| "-".into()), detail]);
    }
    let widths: Vec<usize> = (0..5).map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &table {
        for (i, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}  ", r[i], w = *w));
        }
        out.push_str(&r[5]);
        out.push('\n');
    }
    out
}
