//! Mailing progress: a bar when stderr is a terminal, a log line every few seconds otherwise.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::ledger::LedgerProgress;

/// How often a progress line is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Reports one mailing's progress.
pub struct Reporter {
    channel: String,
    key: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    start_done: u64,
    /// Counts as they change.
    pub counts: LedgerProgress,
}

impl Reporter {
    /// Start reporting; `counts` are the ledger's counts before this run sends anything.
    pub fn new(channel: &str, key: &str, counts: LedgerProgress) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(counts.total);
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(channel.to_string());
            b.set_position(done(&counts));
            b
        });
        Self { channel: channel.into(), key: key.into(), bar, started: Instant::now(), last_log: Instant::now(), start_done: done(&counts), counts }
    }

    /// Add one recorded batch.
    pub fn add(&mut self, sent: u64, failed: u64, skipped: u64) {
        self.counts.sent += sent;
        self.counts.failed += failed;
        self.counts.skipped += skipped;
        // A deferred row stays pending, so pending only drops for settled rows.
        self.counts.pending = self.counts.pending.saturating_sub(sent + failed + skipped);
        let pos = done(&self.counts);
        if let Some(b) = &self.bar {
            b.set_position(pos);
            b.set_message(format!("sent {} failed {} skipped {}", self.counts.sent, self.counts.failed, self.counts.skipped));
        } else if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            self.log_line("Mailing progress.");
        }
    }

    fn rate(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        (done(&self.counts) - self.start_done.min(done(&self.counts))) as f64 / secs
    }

    fn log_line(&self, msg: &'static str) {
        let c = &self.counts;
        tracing::info!(
            channel = %self.channel,
            key = %self.key,
            total = c.total,
            sent = c.sent,
            failed = c.failed,
            skipped = c.skipped,
            pending = c.pending,
            per_sec = format!("{:.0}", self.rate()),
            "{}",
            msg
        );
    }

    /// Finish: clear the bar and log the totals.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        self.log_line("Mailing pass finished.");
    }
}

fn done(c: &LedgerProgress) -> u64 {
    c.sent + c.failed + c.skipped
}
