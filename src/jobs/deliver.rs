//! The Deliver job: lease the delivery, record an attempt a dead process left unfinished, run the
//! credential preflight, reconcile if a send may already have happened, mark `sending` and
//! commit, call the adapter, then let the pure [`decide`] say what follows and write the attempt
//! row and the new state in one transaction, and reschedule (a new job with `run_after`).
//! A mailing whose pass ended for its time budget goes on at once in the same job.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt as _;
use tracing::Instrument as _;

use super::Pipeline;
use super::decide::{Answer, Decision, History, Next, decide, outcome_of};
use super::queue::new_job_id;
use super::schedule::unit_random;
use crate::channel::{Adapter, Checkpoint, DeliveryCtx, DeliveryError, Receipt, Reconciled};
use crate::render::Rendering;
use crate::store::lease::{ProcessId, owner_is_dead_here};
use crate::store::{AttemptOutcome, DeliveryRow, Finish, State, Store, Trigger, now_ms};

/// A job may run up to a second early (apalis stores `run_at` in whole seconds).
const EARLY_TOLERANCE_MS: i64 = 1_500;
/// A `Continue` wait this short is slept in the job rather than handed to a new one.
const WAIT_IN_JOB: Duration = Duration::from_secs(2);

/// What one Deliver run did.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliverOutcome {
    /// Nothing owed, not due, or someone else holds the lease.
    Skipped(&'static str),
    /// Now in this state.
    Now(State),
}

/// The adapter's durable checkpoint, kept in `deliveries.checkpoint`; `save` commits at once.
pub struct StoreCheckpoint {
    store: Store,
    id: i64,
}

#[async_trait]
impl Checkpoint for StoreCheckpoint {
    async fn load(&self) -> Result<Option<serde_json::Value>, DeliveryError> {
        let s = self.store.load_checkpoint(self.id).await.map_err(|e| DeliveryError::retryable(format!("checkpoint load: {e:#}")))?;
        s.map(|s| serde_json::from_str(&s).map_err(|e| DeliveryError::permanent(format!("corrupt checkpoint: {e}")))).transpose()
    }
    async fn save(&self, state: &serde_json::Value) -> Result<(), DeliveryError> {
        self.store
            .save_checkpoint(self.id, &state.to_string())
            .await
            .map_err(|e| DeliveryError::retryable(format!("checkpoint save: {e:#}")))
    }
}

/// Run one Deliver job for `delivery_id`. Errors are infrastructure errors (the store).
pub async fn run(p: &Pipeline, delivery_id: i64) -> anyhow::Result<DeliverOutcome> {
    let Some(d) = p.store.get_delivery(delivery_id).await? else {
        return Ok(DeliverOutcome::Skipped("no such delivery"));
    };
    if let Some(why) = not_owed(&d) {
        return Ok(DeliverOutcome::Skipped(why));
    }
    // The lease: free, expired, or held by a process on this host that is gone.
    let owner = ProcessId::current().owner();
    let now = now_ms();
    let dead = d.lease_owner.as_deref().filter(|o| d.lease_until.is_some_and(|u| u >= now) && owner_is_dead_here(o));
    let until = now + p.lease.as_millis() as i64;
    if !p.store.acquire_lease(delivery_id, &owner, until, dead).await? {
        return Ok(DeliverOutcome::Skipped("leased by another worker"));
    }
    if let Some(prev) = dead {
        tracing::info!(delivery_id, previous = prev, "Took over the lease of a dead process.");
    }
    // The attempt a dead process (or one whose lease ran out) left in flight gets its row now,
    // so `log` shows it and the next attempt takes the next number.
    let previous = d.lease_owner.as_deref().filter(|_| d.state() == State::Sending);
    match p.store.record_interrupted(delivery_id, &owner, previous.filter(|o| owner_is_dead_here(o))).await {
        Ok(Some(i)) => tracing::warn!(delivery_id, attempt = i.n, recipients = i.recipients, "Recorded an interrupted attempt."),
        Ok(None) => {}
        Err(e) => {
            let _ = p.store.release_lease(delivery_id, &owner).await;
            return Err(e);
        }
    }
    // Re-read under the lease: another worker may have finished it in between.
    let d = match p.store.get_delivery(delivery_id).await? {
        Some(d) if not_owed(&d).is_none() => d,
        _ => {
            p.store.release_lease(delivery_id, &owner).await?;
            return Ok(DeliverOutcome::Skipped("settled meanwhile"));
        }
    };
    // apalis may start the job up to a second early: wait out the rest instead of running a
    // pass that finds nobody due yet.
    if let Some(at) = d.next_attempt_at.filter(|_| matches!(d.state(), State::Retrying | State::Unconfirmed)) {
        let early = at - now_ms();
        if early > 0 {
            tokio::time::sleep(Duration::from_millis(early as u64)).await;
        }
    }
    let span = tracing::info_span!("deliver", issue = %d.issue, channel = %d.channel, delivery_id, attempt = d.attempts + 1, key = %d.delivery_key);
    let r = attempt(p, &d, &owner).instrument(span).await;
    if r.is_err() {
        let _ = p.store.release_lease(delivery_id, &owner).await;
    }
    r
}

/// Why a delivery needs no work now, if it doesn't.
fn not_owed(d: &DeliveryRow) -> Option<&'static str> {
    let st = d.state();
    if st.is_final() {
        return Some("already settled");
    }
    if st == State::Scheduled {
        return Some("scheduled for later");
    }
    if matches!(st, State::Retrying | State::Unconfirmed) {
        match d.next_attempt_at {
            None => return Some("waiting for the operator"),
            Some(t) if t > now_ms() + EARLY_TOLERANCE_MS => return Some("not due yet"),
            _ => {}
        }
    }
    None
}

/// A finished attempt with the given outcome and nothing else yet.
fn blank(state: State, outcome: AttemptOutcome, trigger: Trigger, started_at: i64) -> Finish {
    Finish {
        state,
        outcome,
        counts: true,
        rate_limited: false,
        remote_id: None,
        remote_url: None,
        error: None,
        status: None,
        next_attempt_at: None,
        job_id: None,
        started_at,
        duration_ms: 0,
        trigger,
        content_hash: None,
    }
}

async fn attempt(p: &Pipeline, d: &DeliveryRow, owner: &str) -> anyhow::Result<DeliverOutcome> {
    let started_at = now_ms();
    let clock = Instant::now();
    let trigger = d.trigger();
    let mk = |state: State, outcome: AttemptOutcome| blank(state, outcome, trigger, started_at);

    let Some((json, hash)) = p.store.rendering_json(d.id).await? else {
        let mut f = mk(State::Failed, AttemptOutcome::Permanent);
        f.error = Some("no stored rendering for this delivery".into());
        return finish(p, d, owner, f, clock).await;
    };
    let rendering: Rendering = match serde_json::from_str(&json) {
        Ok(r) => r,
        Err(e) => {
            let mut f = mk(State::Failed, AttemptOutcome::Permanent);
            f.error = Some(format!("stored rendering unreadable: {e}"));
            return finish(p, d, owner, f, clock).await;
        }
    };
    // The credential preflight, before any call (reconciliation is a call too). A delivery
    // that may already have been sent stays unconfirmed, so a redrive reconciles it first.
    let adapter = match super::preflight::adapter_for(p, &d.channel, chrono::Utc::now()) {
        Ok(a) => a,
        Err(e) => {
            let maybe_sent = matches!(d.state(), State::Sending | State::Unconfirmed);
            let outcome = outcome_of(e.kind());
            let mut f = mk(if maybe_sent { State::Unconfirmed } else { State::Failed }, outcome);
            f.error = Some(e.message().to_string());
            f.content_hash = Some(hash);
            return finish(p, d, owner, f, clock).await;
        }
    };
    let ctx = DeliveryCtx {
        key: d.delivery_key.clone(),
        delivery_id: d.id,
        issue: d.issue.clone(),
        channel: d.channel.clone(),
        attempt: (d.attempts + 1) as u32,
        checkpoint: Arc::new(StoreCheckpoint { store: p.store.clone(), id: d.id }),
    };
    let schedule = p.schedule(&d.channel);

    // A crash mid-send (`sending`) or an unknown outcome (`unconfirmed`): ask first.
    if matches!(d.state(), State::Sending | State::Unconfirmed) {
        let found = tokio::time::timeout(p.call_timeout(&d.channel), adapter.find_existing(&rendering, &ctx)).await;
        match found {
            Ok(Ok(Reconciled::Found(receipt))) => {
                tracing::info!(delivery_id = d.id, key = %d.delivery_key, "Reconciled: the post already exists.");
                let mut f = success(mk(State::Sent, AttemptOutcome::Reconciled), &receipt);
                f.counts = false;
                f.content_hash = Some(hash);
                return finish(p, d, owner, f, clock).await;
            }
            Ok(Ok(Reconciled::NotFound)) => {
                tracing::info!(delivery_id = d.id, key = %d.delivery_key, "Reconciled: not there; sending.");
            }
            Ok(Ok(Reconciled::CannotCheck(reason))) => {
                tracing::warn!(delivery_id = d.id, key = %d.delivery_key, reason = %reason, "Cannot reconcile; waiting for the operator.");
                let mut f = mk(State::Unconfirmed, AttemptOutcome::CannotCheck);
                f.counts = false;
                f.error = Some(reason);
                f.content_hash = Some(hash);
                return finish(p, d, owner, f, clock).await;
            }
            Ok(Err(e)) if e.is_permanent() => {
                let mut f = mk(State::Failed, outcome_of(e.kind()));
                f.error = Some(format!("reconciliation: {e}"));
                f.status = e.status().map(i64::from);
                return finish(p, d, owner, f, clock).await;
            }
            other => {
                // The check itself failed for a passing reason: stay unconfirmed, ask again later.
                let msg = match other {
                    Ok(Err(e)) => format!("reconciliation: {e}"),
                    _ => "reconciliation timed out".to_string(),
                };
                let mut f = mk(State::Unconfirmed, AttemptOutcome::UnknownOutcome);
                f.counts = false;
                f.error = Some(msg);
                if trigger == Trigger::Schedule {
                    let at = now_ms() + schedule.rate_limit_delay(None, unit_random()).as_millis() as i64;
                    f.next_attempt_at = Some(at);
                    f.job_id = Some(new_job_id());
                }
                return finish(p, d, owner, f, clock).await;
            }
        }
    }

    // Commit `sending` before the remote call: a crash from here on is reconciled.
    if !p.store.mark_sending(d.id, owner).await? {
        return Ok(DeliverOutcome::Skipped("lost the lease"));
    }
    let history = History { attempts: d.attempts.max(0) as usize, rate_limited_waits: d.rate_limited_waits, trigger };
    loop {
        let answer = call(p, adapter.as_ref(), &rendering, &ctx, &d.channel).await;
        let decision = decide(&answer, &history, &schedule, unit_random());
        let stopping = p.stopping.load(Ordering::SeqCst);
        match decision.next {
            // A mailing's pass ended for its budget: the next one at once, same attempt.
            Next::Now if !stopping => {
                tracing::debug!(delivery_id = d.id, note = decision.note.as_deref().unwrap_or(""), "Mailing continues.");
                if !p.store.renew_lease(d.id, owner, now_ms() + p.lease.as_millis() as i64).await? {
                    return Ok(DeliverOutcome::Skipped("lost the lease"));
                }
                continue;
            }
            Next::After(wait) if decision.row.is_none() && wait <= WAIT_IN_JOB && !stopping => {
                tokio::time::sleep(wait).await;
                if !p.store.renew_lease(d.id, owner, now_ms() + p.lease.as_millis() as i64).await? {
                    return Ok(DeliverOutcome::Skipped("lost the lease"));
                }
                continue;
            }
            _ => {}
        }
        if decision.row.is_none() {
            return continue_later(p, d, owner, &decision).await;
        }
        let f = finished(mk, &answer, decision, hash);
        return finish(p, d, owner, f, clock).await;
    }
}

/// One adapter call, bounded by the call timeout. A panicking adapter must not take the worker
/// down or leave the lease held: it is an unknown outcome (it may have posted before panicking).
async fn call(p: &Pipeline, adapter: &dyn Adapter, rendering: &Rendering, ctx: &DeliveryCtx, channel: &str) -> Answer {
    let call = std::panic::AssertUnwindSafe(adapter.deliver_step(rendering, ctx)).catch_unwind();
    match tokio::time::timeout(p.call_timeout(channel), call).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(DeliveryError::unknown_outcome("the adapter panicked during the call")),
        Err(_) => Err(DeliveryError::unknown_outcome("the adapter did not answer in time")),
    }
}

/// The attempt row and new state for a decision that writes one.
fn finished(mk: impl Fn(State, AttemptOutcome) -> Finish, answer: &Answer, decision: Decision, hash: String) -> Finish {
    let row = decision.row.expect("a decision with a row");
    let mut f = mk(decision.state, row.outcome);
    f.counts = row.counts;
    f.rate_limited = row.rate_limited;
    f.error = row.error;
    f.status = row.status;
    f.content_hash = Some(hash);
    if let Ok(delivered) = answer
        && let crate::channel::Delivered::Sent(r) | crate::channel::Delivered::AwaitingConfirmation(r) = delivered
    {
        f = success(f, r);
    }
    if let Next::After(delay) = decision.next {
        f.next_attempt_at = Some(now_ms() + delay.as_millis() as i64);
        f.job_id = Some(new_job_id());
    }
    f
}

/// More work owed, nothing failed: `retrying` until the decision's next run, no attempt row.
async fn continue_later(p: &Pipeline, d: &DeliveryRow, owner: &str, decision: &Decision) -> anyhow::Result<DeliverOutcome> {
    let delay = match decision.next {
        Next::After(w) => w,
        _ => Duration::ZERO,
    };
    let at = now_ms() + delay.as_millis() as i64;
    let job = new_job_id();
    let note = decision.note.as_deref().unwrap_or("more work owed");
    if !p.store.continue_later(d.id, owner, at, &job, note).await? {
        tracing::warn!(delivery_id = d.id, "Lost the lease before recording the pass; another worker took over.");
        return Ok(DeliverOutcome::Skipped("lost the lease"));
    }
    tracing::info!(delivery_id = d.id, key = %d.delivery_key, wait_ms = delay.as_millis() as u64, note, "Delivery continues later.");
    if let Err(e) = p.queue.push_deliver(d.id, &job, delay).await {
        tracing::warn!(delivery_id = d.id, error = %format!("{e:#}"), "Could not push the next job; the sweeper will.");
    }
    Ok(DeliverOutcome::Now(State::Retrying))
}

fn success(mut f: Finish, r: &Receipt) -> Finish {
    f.remote_id = Some(r.remote_id.clone());
    f.remote_url = r.url.clone();
    if let Some(note) = &r.note {
        tracing::info!(note = %note, "Adapter note.");
    }
    f
}

async fn finish(p: &Pipeline, d: &DeliveryRow, owner: &str, mut f: Finish, clock: Instant) -> anyhow::Result<DeliverOutcome> {
    f.duration_ms = clock.elapsed().as_millis() as i64;
    if !p.store.finish_attempt(d.id, owner, &f).await? {
        tracing::warn!(delivery_id = d.id, "Lost the lease before recording the attempt; another worker took over.");
        return Ok(DeliverOutcome::Skipped("lost the lease"));
    }
    let m = crate::metrics::global();
    m.attempt(&d.channel, f.outcome.as_str(), f.duration_ms as f64 / 1000.0);
    m.delivery(&d.channel, f.state.as_str());
    if f.job_id.is_some() {
        m.retries.get_or_create(&crate::metrics::ChannelLabel { channel: d.channel.clone() }).inc();
    }
    match f.state {
        State::Sent => tracing::info!(delivery_id = d.id, key = %d.delivery_key, remote_id = f.remote_id.as_deref().unwrap_or(""), "Delivered."),
        State::Failed => tracing::warn!(delivery_id = d.id, key = %d.delivery_key, error = f.error.as_deref().unwrap_or(""), "Delivery failed."),
        st => tracing::info!(delivery_id = d.id, key = %d.delivery_key, state = %st, error = f.error.as_deref().unwrap_or(""), "Attempt recorded."),
    }
    if let (Some(job), Some(at)) = (&f.job_id, f.next_attempt_at) {
        let delay = Duration::from_millis((at - now_ms()).max(0) as u64);
        if let Err(e) = p.queue.push_deliver(d.id, job, delay).await {
            tracing::warn!(delivery_id = d.id, error = %format!("{e:#}"), "Could not push the retry job; the sweeper will.");
        }
    }
    Ok(DeliverOutcome::Now(f.state))
}
