//! `herald bounces import FILE... [--json]`: DSN/ARF `.eml` files, `mailto:` unsubscribe
//! requests, or a Postmark bounce export (JSON), for people who run no daemon. Every report is
//! tied to its mailing (VERP, then Message-ID, then Postmark's MessageID) and the policy of
//! `[bounces]` applied; a report applied before changes nothing.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::{ExitStatus, Globals, InputError};
use crate::bounces::intake::{Handled, Intake, unsubscribe_addresses};
use crate::bounces::postmark::parse_export;
use crate::bounces::{Policy, Source};
use crate::cli::BouncesCommand;

/// Build the intake for a loaded config, on its own store.
pub async fn intake(cfg: &crate::config::LoadedConfig) -> anyhow::Result<Intake> {
    let store = super::status::open_store(cfg).await?;
    intake_on(cfg, store)
}

/// The intake on a store already open (the daemon shares its own).
pub fn intake_on(cfg: &crate::config::LoadedConfig, store: crate::store::Store) -> anyhow::Result<Intake> {
    let keys = crate::channel::email::unsubscribe::keys_from_config(cfg, &crate::channel::BuildCtx::from_env(cfg.base_dir.clone())).map_err(|e| InputError(format!("{e:#}")))?;
    Ok(Intake { store, policy: Policy::from_config(&cfg.config.bounces), keys, unsubscribe_addresses: unsubscribe_addresses(cfg) })
}

/// Run `herald bounces`.
pub async fn run(g: &Globals, cmd: BouncesCommand) -> anyhow::Result<ExitStatus> {
    let BouncesCommand::Import { files, json } = cmd;
    let cfg = Arc::new(g.load_config()?);
    let intake = intake(&cfg).await?;
    let mut results = Vec::new();
    let mut bad = 0usize;
    for (i, f) in files.iter().enumerate() {
        if !json && files.len() > 20 && i % 100 == 0 {
            eprintln!("[{i}/{}] importing…", files.len());
        }
        for (what, h) in import_file(&intake, f).await? {
            if matches!(h, Handled::Malformed(_) | Handled::Unmatched(_)) {
                bad += 1;
            }
            results.push((f.display().to_string(), what, h));
        }
    }
    if json {
        let out: Vec<_> = results.iter().map(|(f, what, h)| handled_json(f, what, h)).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (f, what, h) in &results {
            println!("{f}{what}: {}", describe(h));
        }
    }
    intake.store.close().await;
    Ok(if bad > 0 { ExitStatus::Failure } else { ExitStatus::Success })
}

/// One file: an export (JSON) gives one result per record; a message gives one.
async fn import_file(intake: &Intake, path: &Path) -> anyhow::Result<Vec<(String, Handled)>> {
    let raw = std::fs::read(path).map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?;
    let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if matches!(first, Some(b'[') | Some(b'{')) {
        let records = match parse_export(&raw) {
            Ok(r) => r,
            Err(e) => return Ok(vec![(String::new(), Handled::Malformed(format!("{e} (expected a Postmark bounce export: `{{\"Bounces\": [...]}}`)")))]),
        };
        let mut out = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            let h = match r {
                Ok(r) => intake.postmark(&r, Source::Import).await?,
                Err(e) => Handled::Malformed(e.to_string()),
            };
            out.push((format!(" record {}", i + 1), h));
        }
        return Ok(out);
    }
    Ok(vec![(String::new(), intake.mail(&raw, Source::Import).await?)])
}

fn describe(h: &Handled) -> String {
    match h {
        Handled::Applied(v) => v
            .iter()
            .map(|(e, k, d)| format!("{e} {k} ({})", match d {
                crate::store::bounces::BounceRecorded::Duplicate => "already recorded",
                crate::store::bounces::BounceRecorded::Recorded => "recorded",
                crate::store::bounces::BounceRecorded::Suppressed => "suppressed",
                crate::store::bounces::BounceRecorded::AlreadySuppressed => "already suppressed",
            }))
            .collect::<Vec<_>>()
            .join(", "),
        Handled::Unmatched(m) => format!("not applied: {m} (no VERP token or Message-ID of a Herald mailing)"),
        Handled::Malformed(m) => format!("error: {m}"),
        Handled::NotAReport => "skipped: not a bounce report or an unsubscribe request".into(),
    }
}

fn handled_json(file: &str, what: &str, h: &Handled) -> serde_json::Value {
    let (status, reports, error) = match h {
        Handled::Applied(v) => ("applied", v.iter().map(|(e, k, d)| json!({"email": e, "kind": k.as_str(), "outcome": format!("{d:?}").to_lowercase()})).collect(), None),
        Handled::Unmatched(m) => ("unmatched", vec![], Some(m.clone())),
        Handled::Malformed(m) => ("malformed", vec![], Some(m.clone())),
        Handled::NotAReport => ("not_a_report", vec![], None),
    };
    json!({ "file": file, "item": what.trim(), "status": status, "reports": reports, "error": error })
}
