//! `herald subscribers`: import a CSV, list, count, remove. Suppressions always win: an import
//! never lifts one, and a suppressed subscriber is listed as such and never mailed.

use std::io::Write as _;
use std::path::Path;

use super::{ExitStatus, Globals, InputError};
use crate::channel::email::import::{CsvImport, escape_controls};
use crate::channel::email::sql::vars_from_json;
use crate::cli::SubscribersCommand;
use crate::store::email::SubscriberUpsert;
use crate::store::{Store, StoreUrl, fmt_ms};

/// Subscribers written per transaction.
const IMPORT_BATCH: usize = 1000;
/// Subscribers read per page when listing.
const LIST_PAGE: i64 = 1000;

/// Run `herald subscribers`.
pub async fn run(g: &Globals, args: SubscribersCommand) -> anyhow::Result<ExitStatus> {
    let cfg = g.load_config()?;
    let url = StoreUrl::parse(&cfg.config.store.url, &cfg.base_dir).map_err(|e| InputError(format!("{e:#}")))?;
    let store = Store::open(&url).await?;
    let status = match args {
        SubscribersCommand::Import { file, list } => import(&store, &file, &list).await?,
        SubscribersCommand::List { json, suppressed: false } => list(&store, json).await?,
        SubscribersCommand::List { json, suppressed: true } => list_suppressed(&store, json).await?,
        SubscribersCommand::Count => count(&store).await?,
        SubscribersCommand::Remove { email } => remove(&store, &email).await?,
    };
    store.close().await;
    Ok(status)
}

async fn import(store: &Store, path: &Path, list: &str) -> anyhow::Result<ExitStatus> {
    if list.trim().is_empty() {
        return Err(InputError("--list must not be empty".into()).into());
    }
    let file = std::fs::File::open(path).map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?;
    let mut csv = CsvImport::new(std::io::BufReader::new(file)).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    let before = store.subscriber_total().await?;
    let (mut rows_read, mut skipped) = (0usize, 0usize);
    while let Some((rows, errors)) = csv.next_batch(IMPORT_BATCH) {
        for e in &errors {
            eprintln!("{}: {e}; skipped", path.display());
        }
        skipped += errors.len();
        if rows.is_empty() {
            continue;
        }
        rows_read += rows.len();
        let batch: Vec<SubscriberUpsert> = rows
            .into_iter()
            .map(|r| SubscriberUpsert { email: r.email, name: r.name, extra_json: serde_json::to_string(&r.vars).unwrap_or_else(|_| "{}".into()) })
            .collect();
        store.upsert_subscribers(list, &batch).await?;
    }
    let after = store.subscriber_total().await?;
    let added = (after - before).max(0) as usize;
    let merged = rows_read + csv.merged - added;
    println!(
        "Imported {} into list `{list}`: {added} new, {merged} merged into existing subscribers{}.",
        plural(rows_read + csv.merged, "row"),
        if skipped > 0 { format!(", {} skipped", plural(skipped, "invalid line")) } else { String::new() }
    );
    Ok(if skipped > 0 { ExitStatus::Failure } else { ExitStatus::Success })
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

async fn list(store: &Store, json: bool) -> anyhow::Result<ExitStatus> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut after = 0i64;
    let mut first = true;
    if json {
        write!(out, "[")?;
    }
    loop {
        let page = store.subscribers_page(after, LIST_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for s in page {
            if json {
                let v = serde_json::json!({
                    "email": s.email,
                    "name": s.name,
                    "list": s.list,
                    "vars": vars_from_json(&s.extra),
                    "created": fmt_ms(s.created_at),
                    "suppressed": s.suppressed,
                });
                write!(out, "{}\n  {v}", if first { "" } else { "," })?;
            } else {
                let name = if s.name.is_empty() { String::new() } else { format!("  {}", s.name) };
                let supp = s.suppressed.map(|r| format!("  (suppressed: {r})")).unwrap_or_default();
                writeln!(out, "{}{name}  [{}]{supp}", s.email, s.list)?;
            }
            first = false;
        }
    }
    if json {
        writeln!(out, "{}]", if first { "" } else { "\n" })?;
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

/// `--suppressed`: the suppression list, paged by address.
async fn list_suppressed(store: &Store, json: bool) -> anyhow::Result<ExitStatus> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut after = String::new();
    let mut first = true;
    if json {
        write!(out, "[")?;
    }
    loop {
        let page = store.suppressions_page(&after, LIST_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.email.clone();
        for s in page {
            if json {
                let v = serde_json::json!({
                    "email": s.email,
                    "kind": s.kind,
                    "source": s.source,
                    "reason": s.reason,
                    "at": fmt_ms(s.at),
                    "subscriber": s.subscriber,
                });
                write!(out, "{}\n  {v}", if first { "" } else { "," })?;
            } else {
                writeln!(out, "{}  {}  {}  {}  {}", escape_controls(&s.email), s.kind, s.source, fmt_ms(s.at), escape_controls(&s.reason))?;
            }
            first = false;
        }
    }
    if json {
        writeln!(out, "{}]", if first { "" } else { "\n" })?;
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

async fn count(store: &Store) -> anyhow::Result<ExitStatus> {
    let c = store.subscriber_counts().await?;
    println!("subscribers: {}", c.subscribers);
    for (list, n) in &c.lists {
        println!("  list {list}: {n}");
    }
    println!("suppressed: {} ({} of them subscribers)", c.suppressions, c.suppressed_subscribers);
    println!("mailable: {}", c.subscribers - c.suppressed_subscribers);
    Ok(ExitStatus::Success)
}

async fn remove(store: &Store, email: &str) -> anyhow::Result<ExitStatus> {
    let email = email.trim().to_lowercase();
    if store.remove_subscriber(&email).await? {
        println!("Removed {}.", escape_controls(&email));
        Ok(ExitStatus::Success)
    } else {
        eprintln!("{} is not a subscriber.", escape_controls(&email));
        Ok(ExitStatus::Failure)
    }
}
