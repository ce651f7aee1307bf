//! Scheduled publishing: apalis-cron ticks per `[[schedule]]` entry (in its time zone), issues'
//! own `publish_at`, and catch-up of fires missed while no daemon ran.
//!
//! Exactly once: every fire first claims its unique (schedule, fire time) row in the store;
//! only the claimer publishes. Two daemons on one PostgreSQL database, or a daemon restarted,
//! therefore never fire an entry twice (apalis issue #281: apalis-cron alone would).
//! The cron handlers only hand the tick to a channel and return, so a slow publish can never
//! make apalis-cron's next tick fall in the past and kill its worker (STACK §6.6).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::mpsc;

use super::Pipeline;
use super::publish::{PublishFileError, publish_file};
use crate::config::ScheduleConfig;
use crate::schedule::{Cron, Missed, ScanCache, next_ready, plan_missed, scan};
use crate::store::lease::{ProcessId, owner_is_dead_here};

/// How often the issues folder is scanned for `publish_at` and new files.
pub const SCAN_EVERY: Duration = Duration::from_secs(2);
/// How often each schedule's watch mark moves forward.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A scheduler loop that has not come round for this long is stalled: `/healthz` says so.
/// One pass parses and renders at most [`super::publish::RENDER_BUDGET`] per due issue.
pub const STALL_AFTER: Duration = Duration::from_secs(90);
/// How long a scheduler whose loop last came round at `beat_ms` (0: not running) has been
/// stalled at `now_ms`, once past [`STALL_AFTER`].
pub fn stalled(beat_ms: i64, now_ms: i64) -> Option<Duration> {
    let behind = Duration::from_millis(u64::try_from(now_ms.saturating_sub(beat_ms)).unwrap_or(0));
    (beat_ms > 0 && behind > STALL_AFTER).then_some(behind)
}

/// The most missed fires considered per entry at start.
const MAX_MISSED: usize = 10_000;
/// A fire claimed by a process on another host that recorded nothing for this long is taken
/// to be lost with its process (one on this host is known dead at once).
const STALE_FIRE_MS: i64 = 10 * 60 * 1000;

/// A parsed schedule entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The config entry.
    pub cfg: ScheduleConfig,
    /// Its cron in its zone.
    pub cron: Cron,
}

/// Parse every `[[schedule]]` entry (validation already accepted them).
pub fn entries(p: &Pipeline) -> anyhow::Result<Vec<Entry>> {
    p.config
        .config
        .schedule
        .iter()
        .map(|c| Ok(Entry { cron: Cron::parse(&c.cron, &c.timezone).map_err(|e| anyhow::anyhow!("schedule {}: {e}", c.name))?, cfg: c.clone() }))
        .collect()
}

fn issues_dir(p: &Pipeline) -> PathBuf {
    p.config.resolve_path(&p.config.config.issues_dir)
}

/// Resolve an entry's `what`: "next" → the oldest ready, unpublished issue; otherwise a path
/// (relative to the config folder, then the issues folder) or a slug in the issues folder.
async fn pick_issue(p: &Pipeline, what: &str) -> anyhow::Result<Option<PathBuf>> {
    let dir = issues_dir(p);
    if what != "next" {
        for cand in [p.config.resolve_path(Path::new(what)), dir.join(what)] {
            if cand.is_file() {
                return Ok(Some(cand));
            }
        }
        let (cands, _) = scan(&dir);
        return Ok(cands.into_iter().find(|c| c.slug == what).map(|c| c.path));
    }
    let (cands, errors) = scan(&dir);
    for e in errors {
        tracing::warn!(error = %e, "Skipping an issue file that does not parse.");
    }
    let mut known = std::collections::HashSet::new();
    for c in &cands {
        if p.store.issue_known(&c.slug).await? {
            known.insert(c.slug.clone());
        }
    }
    Ok(next_ready(&cands, &|s| known.contains(s)).map(|c| c.path.clone()))
}

/// Fire `entry` for instant `at`, once across every daemon. `label` is "fired" or "caught_up".
pub async fn fire(p: &Pipeline, entry: &Entry, at: DateTime<Utc>, label: &str) -> anyhow::Result<()> {
    let name = &entry.cfg.name;
    let at_ms = at.timestamp_millis();
    if !p.store.claim_fire_by(name, at_ms, &ProcessId::current().tag()).await? {
        tracing::debug!(schedule = %name, fire_at = %at, "Fire already claimed by another daemon.");
        crate::metrics::global().fires.get_or_create(&fire_label(name, "duplicate")).inc();
        return Ok(());
    }
    run_fire(p, entry, at_ms, label).await
}

/// Publish what a claimed fire of `entry` stands for, and record it.
async fn run_fire(p: &Pipeline, entry: &Entry, at_ms: i64, label: &str) -> anyhow::Result<()> {
    let name = &entry.cfg.name;
    let at = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    let Some(path) = pick_issue(p, &entry.cfg.what).await? else {
        tracing::info!(schedule = %name, fire_at = %at, "Schedule fired; no issue is ready.");
        p.store.finish_fire(name, at_ms, "nothing_ready", None, None).await?;
        crate::metrics::global().fires.get_or_create(&fire_label(name, "nothing_ready")).inc();
        return Ok(());
    };
    let result = publish_file(p, &path, &entry.cfg.channels).await;
    record(p, name, at_ms, label, &path, result).await
}

async fn record(p: &Pipeline, name: &str, at_ms: i64, label: &str, path: &Path, result: Result<crate::issue::Issue, PublishFileError>) -> anyhow::Result<()> {
    match result {
        Ok(issue) => {
            tracing::info!(schedule = %name, issue = %issue.meta.slug, version = %issue.version, result = label, "Scheduled publish.");
            p.store.finish_fire(name, at_ms, label, Some(&issue.meta.slug), None).await?;
            crate::metrics::global().fires.get_or_create(&fire_label(name, label)).inc();
            Ok(())
        }
        Err(PublishFileError::Input(msg)) => {
            tracing::error!(schedule = %name, issue = %path.display(), error = %msg, "Scheduled publish refused by preflight; nothing was sent.");
            p.store.finish_fire(name, at_ms, "failed", None, Some(&msg)).await?;
            crate::metrics::global().fires.get_or_create(&fire_label(name, "failed")).inc();
            Ok(())
        }
        Err(PublishFileError::Store(e)) => Err(e),
    }
}

fn fire_label(schedule: &str, result: &str) -> crate::metrics::FireLabel {
    crate::metrics::FireLabel { schedule: schedule.to_string(), result: result.to_string() }
}

/// The catch-up window of `catch_up_secs`. Validation bounds it; clamping here keeps an
/// out-of-range value from panicking in chrono at every daemon start (a crash loop).
fn catch_up_window(secs: u64) -> chrono::Duration {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX).min(crate::config::validate::MAX_CATCH_UP_SECS);
    chrono::Duration::try_seconds(secs).unwrap_or(chrono::Duration::MAX)
}

/// At start: fire once each missed fire inside its entry's `catch_up_secs`, record older ones
/// as skipped (and log them), then set the watch mark. An entry seen for the first time has
/// missed nothing.
pub async fn catch_up(p: &Pipeline, entries: &[Entry], now: DateTime<Utc>) -> anyhow::Result<()> {
    for e in entries {
        let name = &e.cfg.name;
        if let Some(last) = p.store.schedule_last_seen(name).await? {
            let last = DateTime::from_timestamp_millis(last).unwrap_or(now);
            let window = catch_up_window(e.cfg.catch_up_secs);
            for m in plan_missed(&e.cron, last, now, window, MAX_MISSED) {
                match m {
                    Missed::CatchUp(t) => fire(p, e, t, "caught_up").await?,
                    Missed::Skip(t) => {
                        let why = format!("missed while no daemon ran; older than catch_up_secs = {}", e.cfg.catch_up_secs);
                        if p.store.claim_fire(name, t.timestamp_millis(), "skipped", Some(&why)).await? {
                            tracing::warn!(schedule = %name, fire_at = %t, reason = %why, "Skipped a missed fire.");
                            crate::metrics::global().fires.get_or_create(&fire_label(name, "skipped")).inc();
                        }
                    }
                }
            }
        }
        p.store.touch_schedule(name, now.timestamp_millis()).await?;
    }
    Ok(())
}

/// Publish every issue whose own `publish_at` has come, once (fire key `publish_at:<slug>@<version>`),
/// if it came less than `publish_at_catch_up_secs` ago. An older one (an archive of past issues,
/// a new store) is recorded as skipped, logged and shown by `status`; `herald publish` sends it.
/// Editing an issue before its time changes what is published (the file is read at fire time);
/// after its time the slug is known, and only `herald republish` sends it again.
pub async fn scan_publish_at(p: &Pipeline, cache: &mut ScanCache, now: DateTime<Utc>) -> anyhow::Result<()> {
    let window_secs = p.config.config.publish_at_catch_up_secs;
    let window = chrono::TimeDelta::try_seconds(i64::try_from(window_secs).unwrap_or(i64::MAX)).unwrap_or(chrono::TimeDelta::MAX);
    for c in cache.due(&issues_dir(p), now) {
        if p.store.issue_known(&c.slug).await? {
            continue;
        }
        let Some(at) = c.publish_at else { continue };
        // The version is in the key: a file fixed after a refused preflight fires again.
        let name = format!("publish_at:{}@{}", c.slug, c.version);
        if now.signed_duration_since(at) > window {
            let why = format!(
                "publish_at {} is older than publish_at_catch_up_secs = {window_secs}: not sent automatically; `herald publish {}` sends it",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                c.path.display()
            );
            if p.store.claim_fire(&name, at.timestamp_millis(), "skipped", Some(&why)).await? {
                tracing::warn!(issue = %c.slug, publish_at = %at, reason = %why, "Skipped an issue whose publish_at is past the catch-up window.");
                crate::metrics::global().fires.get_or_create(&fire_label(&name, "skipped")).inc();
            }
            continue;
        }
        if !p.store.claim_fire_by(&name, at.timestamp_millis(), &ProcessId::current().tag()).await? {
            continue;
        }
        let result = publish_file(p, &c.path, &[]).await;
        record(p, &name, at.timestamp_millis(), "fired", &c.path, result).await?;
    }
    Ok(())
}

/// Fires left `claimed` by a process that died before recording what they did (an abort while
/// parsing or rendering, a `kill -9`): re-drive each once; one whose re-drive died too is
/// recorded `failed`, and `status` shows it. A fire whose issue was stored before the death is
/// recorded as fired with it (the Publish job carries on), never published a second time.
pub async fn redrive_unfinished(p: &Pipeline, entries: &[Entry], now_ms: i64) -> anyhow::Result<()> {
    let me = ProcessId::current().tag();
    for (f, by) in p.store.unfinished_fires().await? {
        let gone = match by.as_deref() {
            Some(o) if o == me => false,
            Some(o) => owner_is_dead_here(o) || now_ms - f.created_at > STALE_FIRE_MS,
            None => now_ms - f.created_at > STALE_FIRE_MS,
        };
        if !gone {
            continue;
        }
        let (name, at_ms) = (f.schedule.as_str(), f.fire_at);
        if f.result == "redriving" {
            if p.store.take_over_fire(name, at_ms, "redriving", by.as_deref(), "failed", &me).await? {
                let why = "the process publishing this fire died, and so did the one re-driving it; nothing was published by it: \
                           check the issue with `herald check ISSUE`, then `herald publish ISSUE`";
                p.store.finish_fire(name, at_ms, "failed", None, Some(why)).await?;
                tracing::error!(schedule = %name, fire_at = at_ms, "A fire failed twice with its process; recorded as failed.");
                crate::metrics::global().fires.get_or_create(&fire_label(name, "failed")).inc();
            }
            continue;
        }
        if !p.store.take_over_fire(name, at_ms, "claimed", by.as_deref(), "redriving", &me).await? {
            continue;
        }
        tracing::warn!(schedule = %name, fire_at = at_ms, "Re-driving a fire its process left unfinished.");
        // Stored by the dead process already: the Publish job (or the sweeper) carries it on.
        if let Some(slug) = stored_since(p, name, f.created_at).await? {
            p.store.finish_fire(name, at_ms, "fired", Some(&slug), Some("recorded after its process died; the issue was already stored")).await?;
            continue;
        }
        if let Some(rest) = name.strip_prefix("publish_at:") {
            let (slug, version) = rest.rsplit_once('@').unwrap_or((rest, ""));
            let (cands, _) = scan(&issues_dir(p));
            match cands.into_iter().find(|c| c.slug == slug && c.version == version) {
                Some(c) => {
                    let result = publish_file(p, &c.path, &[]).await;
                    record(p, name, at_ms, "fired", &c.path, result).await?;
                }
                None => {
                    let why = format!("its process died before publishing, and the issue {slug} at that version is no longer in issues_dir");
                    p.store.finish_fire(name, at_ms, "failed", None, Some(&why)).await?;
                }
            }
        } else if let Some(entry) = entries.iter().find(|e| e.cfg.name == name) {
            run_fire(p, entry, at_ms, "fired").await?;
        } else {
            p.store.finish_fire(name, at_ms, "failed", None, Some("its process died before publishing, and the entry is no longer in the config")).await?;
        }
    }
    Ok(())
}

/// The slug of an issue stored since `since_ms` that fire `name` stands for, if any.
async fn stored_since(p: &Pipeline, name: &str, since_ms: i64) -> anyhow::Result<Option<String>> {
    let slug = name.strip_prefix("publish_at:").map(|r| r.rsplit_once('@').map_or(r, |(s, _)| s));
    Ok(p.store.issues_stored_since(since_ms).await?.into_iter().find(|i| slug.is_none_or(|s| s == i.slug)).map(|i| i.slug))
}

async fn tick_handler(tick: Tick<Tz>, tx: Data<mpsc::UnboundedSender<(usize, i64)>>, idx: Data<usize>) -> Result<(), BoxDynError> {
    // Hand over and return at once (STACK §6.6).
    let _ = tx.send((*idx, tick.get_timestamp() as i64));
    Ok(())
}

/// Run the scheduler until `stop`: catch-up, the cron workers, the fire consumer, the
/// `publish_at` scan and the watch-mark heartbeat.
pub async fn run_until<F>(p: Arc<Pipeline>, stop: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let entries = Arc::new(entries(&p)?);
    catch_up(&p, &entries, Utc::now()).await?;
    redrive_unfinished(&p, &entries, crate::store::now_ms()).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, i64)>();
    let consumer = {
        let (p, entries) = (p.clone(), entries.clone());
        tokio::spawn(async move {
            while let Some((i, ts)) = rx.recv().await {
                let Some(at) = DateTime::from_timestamp(ts, 0) else { continue };
                if let Err(e) = fire(&p, &entries[i], at, "fired").await {
                    tracing::error!(schedule = %entries[i].cfg.name, error = %format!("{e:#}"), "Schedule fire failed.");
                }
            }
        })
    };
    let background = {
        let (p, entries) = (p.clone(), entries.clone());
        tokio::spawn(async move {
            let mut cache = ScanCache::default();
            let mut scan_tick = tokio::time::interval(SCAN_EVERY);
            let mut beat = tokio::time::interval(HEARTBEAT);
            loop {
                p.scheduler_beat.store(Utc::now().timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
                tokio::select! {
                    _ = scan_tick.tick() => {
                        if let Err(e) = scan_publish_at(&p, &mut cache, Utc::now()).await {
                            tracing::warn!(error = %format!("{e:#}"), "publish_at scan failed.");
                        }
                        if let Err(e) = redrive_unfinished(&p, &entries, crate::store::now_ms()).await {
                            tracing::warn!(error = %format!("{e:#}"), "Re-driving unfinished fires failed.");
                        }
                    }
                    _ = beat.tick() => {
                        // Lag the mark a little behind now, so a tick still in the channel
                        // when the process dies is caught up by the next start.
                        let mark = (Utc::now() - chrono::Duration::seconds(2)).timestamp_millis();
                        for e in entries.iter() {
                            if let Err(err) = p.store.touch_schedule(&e.cfg.name, mark).await {
                                tracing::warn!(error = %format!("{err:#}"), "Schedule heartbeat failed.");
                            }
                        }
                    }
                }
            }
        })
    };
    let res = if entries.is_empty() {
        stop.await;
        Ok(())
    } else {
        let mut monitor = Monitor::new();
        let suffix = crate::store::lease::ProcessId::current().worker_suffix();
        for (i, e) in entries.iter().enumerate() {
            let (tx, sched, tz, name) = (tx.clone(), e.cron.schedule().clone(), e.cron.tz(), e.cfg.name.clone());
            let suffix = suffix.clone();
            monitor = monitor.register(move |restarts| {
                // No concurrency limit on cron workers (STACK §6.6).
                WorkerBuilder::new(format!("herald-cron-{name}-{suffix}.{restarts}"))
                    .backend(CronScheduler::new(sched.clone()).with_timezone(tz))
                    .data(tx.clone())
                    .data(i)
                    .build(tick_handler)
            });
        }
        monitor
            .should_restart(|ctx, err| {
                tracing::warn!(worker = ctx.name(), error = %err, "Cron worker stopped; restarting.");
                true
            })
            .run_with_signal(async move {
                stop.await;
                Ok::<(), std::io::Error>(())
            })
            .await
            .map_err(|e| anyhow::anyhow!("cron workers stopped with an error: {e}"))
    };
    background.abort();
    p.scheduler_beat.store(0, std::sync::atomic::Ordering::Relaxed);
    drop(tx);
    consumer.abort();
    res
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scheduler_that_does_not_come_round_is_stalled() {
        let now = 1_800_000_000_000;
        assert_eq!(super::stalled(0, now), None, "not running");
        assert_eq!(super::stalled(now - 2_000, now), None);
        let behind = super::STALL_AFTER.as_millis() as i64 + 1_000;
        assert_eq!(super::stalled(now - behind, now), Some(std::time::Duration::from_millis(behind as u64)));
    }

    #[test]
    fn a_huge_catch_up_window_is_clamped_not_a_panic() {
        let max = chrono::Duration::seconds(crate::config::validate::MAX_CATCH_UP_SECS);
        assert_eq!(super::catch_up_window(100_000_000_000_000_000), max);
        assert_eq!(super::catch_up_window(u64::MAX), max);
        assert_eq!(super::catch_up_window(60), chrono::Duration::seconds(60));
    }
}
