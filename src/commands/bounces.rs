//! `herald bounces import FILE... [--json]`: DSN/ARF `.eml` files, `mailto:` unsubscribe
//! requests, or a Postmark bounce export (JSON), for people who run no daemon. Every report is
//! tied to its mailing (VERP, then Message-ID, then Postmark's MessageID) and the policy of
//! `[bounces]` applied; a report applied before changes nothing.
//!
//! Long imports stay flat in memory and fast: reports are applied in store transactions of
//! [`IMPORT_BATCH`] (one commit each; a crash loses at most the batch in flight, which a rerun
//! applies, and nothing twice), and each outcome is written out as soon as its batch is
//! committed, never collected. `--json` streams one JSON document,
//! `{"items": [...], "summary": {...}}`; progress goes to stderr every few seconds.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{ExitStatus, Globals, InputError};
use crate::bounces::Source;
use crate::bounces::intake::{Handled, Intake, Prepared, unsubscribe_addresses};
use crate::bounces::matcher::Matcher;
use crate::bounces::postmark::parse_export;
use crate::bounces::Policy;
use crate::cli::BouncesCommand;
use crate::store::bounces::BounceRecorded;

/// Reports (files, or records of an export) applied per store transaction.
pub const IMPORT_BATCH: usize = 256;
/// How often progress is written to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

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
    let result = import(&intake, &files, json).await;
    intake.store.close().await;
    let sum = result?;
    Ok(if sum.bad() > 0 { ExitStatus::Failure } else { ExitStatus::Success })
}

/// Totals of one import.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Files read (or not readable).
    pub files: usize,
    /// Items: one per message file, one per record of an export.
    pub items: usize,
    /// Items applied in full.
    pub applied: usize,
    /// Items with some recipients applied and some unmatched.
    pub partial: usize,
    /// Items no recipient of which is tied to a Herald message.
    pub unmatched: usize,
    /// Broken reports.
    pub malformed: usize,
    /// Not a report.
    pub not_a_report: usize,
    /// Files that could not be read.
    pub unreadable: usize,
    /// Reports stored now (per recipient).
    pub recorded: usize,
    /// Of those, addresses newly suppressed.
    pub suppressed: usize,
    /// Reports found stored before (nothing changed).
    pub duplicates: usize,
    /// Recipients not tied to a Herald message (not applied).
    pub unmatched_recipients: usize,
}

impl Summary {
    /// Items that need a person: not (fully) applied, or not read.
    pub fn bad(&self) -> usize {
        self.partial + self.unmatched + self.malformed + self.unreadable
    }

    fn add(&mut self, h: &Handled) {
        self.items += 1;
        match h.status() {
            "applied" => self.applied += 1,
            "partial" => self.partial += 1,
            "unmatched" => self.unmatched += 1,
            "malformed" => self.malformed += 1,
            _ => self.not_a_report += 1,
        }
        if let Handled::Reports { applied, unmatched } = h {
            self.unmatched_recipients += unmatched.len();
            for (_, _, d) in applied {
                match d {
                    BounceRecorded::Duplicate => self.duplicates += 1,
                    BounceRecorded::Suppressed => {
                        self.recorded += 1;
                        self.suppressed += 1;
                    }
                    BounceRecorded::Recorded | BounceRecorded::AlreadySuppressed => self.recorded += 1,
                }
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "files": self.files, "items": self.items, "applied": self.applied, "partial": self.partial,
            "unmatched": self.unmatched, "malformed": self.malformed, "not_a_report": self.not_a_report,
            "unreadable": self.unreadable, "reports_recorded": self.recorded, "suppressed": self.suppressed,
            "duplicates": self.duplicates, "unmatched_recipients": self.unmatched_recipients,
        })
    }
}

/// An item waiting for its batch's commit.
enum Pending {
    /// Parsed and matched.
    Ready(Prepared),
    /// The file could not be read.
    Unreadable(String),
}

/// Streams items through batches to the output.
struct Importer<'a, W: std::io::Write> {
    intake: &'a Intake,
    matcher: Matcher<'a>,
    json: bool,
    out: W,
    /// (file, item label, item) of the batch in flight.
    pending: Vec<(String, String, Pending)>,
    sum: Summary,
    written: usize,
    started: Instant,
    last_progress: Instant,
    files_total: usize,
}

/// Import `files`, writing each outcome to stdout as its batch commits.
pub async fn import(intake: &Intake, files: &[std::path::PathBuf], json: bool) -> anyhow::Result<Summary> {
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    let mut im = Importer { intake, matcher: intake.matcher(), json, out, pending: Vec::with_capacity(IMPORT_BATCH), sum: Summary::default(), written: 0, started: Instant::now(), last_progress: Instant::now(), files_total: files.len() };
    if json {
        writeln!(im.out, "{{\"items\": [")?;
    }
    for f in files {
        im.file(f).await?;
        im.sum.files += 1;
        im.progress();
    }
    im.flush().await?;
    let sum = im.sum;
    if json {
        writeln!(im.out, "\n],\n\"summary\": {}}}", sum.json())?;
    } else {
        writeln!(
            im.out,
            "{} item(s) from {} file(s): {} applied, {} partly applied, {} unmatched, {} malformed, {} not a report, {} unreadable; {} report(s) recorded ({} newly suppressed), {} already recorded, {} recipient(s) not tied to a Herald message",
            sum.items, sum.files, sum.applied, sum.partial, sum.unmatched, sum.malformed, sum.not_a_report, sum.unreadable, sum.recorded, sum.suppressed, sum.duplicates, sum.unmatched_recipients
        )?;
    }
    im.out.flush()?;
    if im.started.elapsed() >= PROGRESS_EVERY {
        eprintln!("[{}/{} files] done in {:.1} s", sum.files, im.files_total, im.started.elapsed().as_secs_f64());
    }
    Ok(sum)
}

impl<W: std::io::Write> Importer<'_, W> {
    /// One file: an export (JSON) gives one item per record; a message gives one.
    async fn file(&mut self, path: &Path) -> anyhow::Result<()> {
        let name = path.display().to_string();
        let raw = match std::fs::read(path) {
            Ok(r) => r,
            Err(e) => return self.push(name, String::new(), Pending::Unreadable(format!("cannot read {}: {e}", path.display()))).await,
        };
        let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if matches!(first, Some(b'[') | Some(b'{')) {
            let records = match parse_export(&raw) {
                Ok(r) => r,
                Err(e) => {
                    let m = format!("{e} (expected a Postmark bounce export: `{{\"Bounces\": [...]}}`)");
                    return self.push(name, String::new(), Pending::Ready(Prepared::Malformed(m))).await;
                }
            };
            drop(raw);
            for (i, r) in records.into_iter().enumerate() {
                let p = match r {
                    Ok(r) => self.intake.prepare_postmark(&self.matcher, &r).await?,
                    Err(e) => Prepared::Malformed(e.to_string()),
                };
                self.push(name.clone(), format!(" record {}", i + 1), Pending::Ready(p)).await?;
            }
            return Ok(());
        }
        let p = self.intake.prepare_mail(&mut self.matcher, &raw).await?;
        self.push(name, String::new(), Pending::Ready(p)).await
    }

    async fn push(&mut self, file: String, what: String, p: Pending) -> anyhow::Result<()> {
        self.pending.push((file, what, p));
        if self.pending.len() >= IMPORT_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Commit the batch in flight (one transaction), then write its outcomes.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let mut ready = Vec::with_capacity(self.pending.len());
        let mut items = Vec::with_capacity(self.pending.len());
        for (file, what, p) in self.pending.drain(..) {
            match p {
                Pending::Ready(p) => {
                    ready.push(p);
                    items.push((file, what, None));
                }
                Pending::Unreadable(m) => items.push((file, what, Some(m))),
            }
        }
        let mut handled = self.intake.commit(Source::Import, ready).await?.into_iter();
        for (file, what, unreadable) in items {
            let (status, line, value) = match unreadable {
                None => {
                    let h = handled.next().ok_or_else(|| anyhow::anyhow!("a batch answered fewer outcomes than it had items"))?;
                    self.sum.add(&h);
                    (h.status(), describe(&h), handled_json(&h))
                }
                Some(m) => {
                    self.sum.unreadable += 1;
                    ("unreadable", format!("error: {m}"), json!({"reports": [], "unmatched": [], "error": m}))
                }
            };
            if self.json {
                let mut v = value;
                v["file"] = json!(file);
                v["item"] = json!(what.trim());
                v["status"] = json!(status);
                let sep = if self.written == 0 { "" } else { ",\n" };
                write!(self.out, "{sep}{}", serde_json::to_string(&v)?)?;
            } else {
                writeln!(self.out, "{file}{what}: {line}")?;
            }
            self.written += 1;
        }
        self.out.flush()?;
        Ok(())
    }

    /// A progress line on stderr every [`PROGRESS_EVERY`].
    fn progress(&mut self) {
        if self.last_progress.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last_progress = Instant::now();
        let s = &self.sum;
        let rate = s.items as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        eprintln!(
            "[{}/{} files] {} applied, {} partly applied, {} unmatched, {} malformed; {rate:.0} items/s",
            s.files, self.files_total, s.applied, s.partial, s.unmatched, s.malformed
        );
    }
}

fn outcome(d: BounceRecorded) -> &'static str {
    match d {
        BounceRecorded::Duplicate => "already recorded",
        BounceRecorded::Recorded => "recorded",
        BounceRecorded::Suppressed => "suppressed",
        BounceRecorded::AlreadySuppressed => "already suppressed",
    }
}

fn describe(h: &Handled) -> String {
    match h {
        Handled::Reports { applied, unmatched } => {
            let mut parts: Vec<String> = applied.iter().map(|(e, k, d)| format!("{e} {k} ({})", outcome(*d))).collect();
            parts.extend(unmatched.iter().map(|u| format!("not applied: {} (no VERP token or Message-ID of a Herald mailing)", u.reason)));
            parts.join(", ")
        }
        Handled::Malformed(m) => format!("error: {m}"),
        Handled::NotAReport => "skipped: not a bounce report or an unsubscribe request".into(),
    }
}

fn handled_json(h: &Handled) -> serde_json::Value {
    match h {
        Handled::Reports { applied, unmatched } => {
            let error = (!unmatched.is_empty()).then(|| unmatched.iter().map(|u| u.reason.as_str()).collect::<Vec<_>>().join("; "));
            json!({
                "reports": applied.iter().map(|(e, k, d)| json!({"email": e, "kind": k.as_str(), "outcome": format!("{d:?}").to_lowercase()})).collect::<Vec<_>>(),
                "unmatched": unmatched.iter().map(|u| json!({"email": u.email, "reason": u.reason})).collect::<Vec<_>>(),
                "error": error,
            })
        }
        Handled::Malformed(m) => json!({"reports": [], "unmatched": [], "error": m}),
        Handled::NotAReport => json!({"reports": [], "unmatched": [], "error": null}),
    }
}
