//! The Deliver job: lease the delivery, reconcile if a send may already have happened, mark
//! `sending` and commit, call the adapter, then write the attempt row and the new state in one
//! transaction, and reschedule (a new job with `run_after`) when the schedule says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt as _;
use tracing::Instrument as _;

use super::Pipeline;
use super::queue::new_job_id;
use super::schedule::unit_random;
use crate::channel::{Checkpoint, DeliveryCtx, DeliveryError, Kind, Receipt, Reconciled};
use crate::render::Rendering;
use crate::store::lease::{ProcessId, owner_is_dead_here};
use crate::store::{DeliveryRow, Finish, State, Store, Trigger, now_ms};

/// A job may run up to a second early (apalis stores `run_at` in whole seconds).
const EARLY_TOLERANCE_MS: i64 = 1_500;
/// Rate-limit waits allowed before a delivery is given up (they don't use up attempts).
const MAX_RATE_LIMIT_WAITS: i64 = 50;

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
    // Re-read under the lease: another worker may have finished it in between.
    let d = match p.store.get_delivery(delivery_id).await? {
        Some(d) if not_owed(&d).is_none() => d,
        _ => {
            p.store.release_lease(delivery_id, &owner).await?;
            return Ok(DeliverOutcome::Skipped("settled meanwhile"));
        }
    };
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

async fn attempt(p: &Pipeline, d: &DeliveryRow, owner: &str) -> anyhow::Result<DeliverOutcome> {
    let started_at = now_ms();
    let clock = Instant::now();
    let trigger = d.trigger();
    let mk = |state: State, outcome: &str| Finish {
        state,
        outcome: outcome.to_string(),
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
    };

    let Some((json, hash)) = p.store.rendering_json(d.id).await? else {
        let mut f = mk(State::Failed, "permanent");
        f.error = Some("no stored rendering for this delivery".into());
        return finish(p, d, owner, f, clock).await;
    };
    let rendering: Rendering = match serde_json::from_str(&json) {
        Ok(r) => r,
        Err(e) => {
            let mut f = mk(State::Failed, "permanent");
            f.error = Some(format!("stored rendering unreadable: {e}"));
            return finish(p, d, owner, f, clock).await;
        }
    };
    let adapter = match p.adapter(&d.channel) {
        Ok(a) => a,
        Err(e) => {
            let mut f = mk(State::Failed, e.kind().as_str());
            f.error = Some(e.to_string());
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
                let mut f = success(mk(State::Sent, "reconciled"), &receipt);
                f.counts = false;
                f.content_hash = Some(hash);
                return finish(p, d, owner, f, clock).await;
            }
            Ok(Ok(Reconciled::NotFound)) => {
                tracing::info!(delivery_id = d.id, key = %d.delivery_key, "Reconciled: not there; sending.");
            }
            Ok(Ok(Reconciled::CannotCheck(reason))) => {
                tracing::warn!(delivery_id = d.id, key = %d.delivery_key, reason = %reason, "Cannot reconcile; waiting for the operator.");
                let mut f = mk(State::Unconfirmed, "cannot_check");
                f.counts = false;
                f.error = Some(reason);
                f.content_hash = Some(hash);
                return finish(p, d, owner, f, clock).await;
            }
            Ok(Err(e)) if e.is_permanent() => {
                let mut f = mk(State::Failed, e.kind().as_str());
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
                let mut f = mk(State::Unconfirmed, "unknown_outcome");
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
    // A panicking adapter must not take the worker down or leave the lease held: it is an
    // unknown outcome (it may have posted before panicking).
    let call = std::panic::AssertUnwindSafe(adapter.deliver(&rendering, &ctx)).catch_unwind();
    let result = match tokio::time::timeout(p.call_timeout(&d.channel), call).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(DeliveryError::unknown_outcome("the adapter panicked during the call")),
        Err(_) => Err(DeliveryError::unknown_outcome("the adapter did not answer in time")),
    };

    let attempts_made = (d.attempts + 1) as usize;
    let f = match result {
        Ok(receipt) => {
            let st = if receipt.awaiting_confirmation { State::AwaitingConfirmation } else { State::Sent };
            let mut f = success(mk(st, st.as_str()), &receipt);
            f.content_hash = Some(hash);
            f
        }
        Err(e) => {
            let mut f = mk(State::Failed, e.kind().as_str());
            f.error = Some(e.message().to_string());
            f.status = e.status().map(i64::from);
            f.content_hash = Some(hash);
            let manual = trigger == Trigger::Manual;
            let now = now_ms();
            match e.kind() {
                Kind::Permanent | Kind::Auth | Kind::Forbidden => {}
                Kind::Retryable => match schedule.next_delay(attempts_made, unit_random()) {
                    Some(delay) if !manual => {
                        f.state = State::Retrying;
                        f.next_attempt_at = Some(now + delay.as_millis() as i64);
                        f.job_id = Some(new_job_id());
                    }
                    Some(_) => f.error = Some(format!("{} (manual attempt: no automatic retry)", e.message())),
                    None => f.error = Some(format!("gave up after {attempts_made} attempts: {}", e.message())),
                },
                Kind::RateLimited => {
                    f.counts = false;
                    f.rate_limited = true;
                    if manual {
                        f.error = Some(format!("{} (manual attempt: no automatic retry)", e.message()));
                    } else if d.rate_limited_waits + 1 >= MAX_RATE_LIMIT_WAITS {
                        f.error = Some(format!("gave up after {} rate-limit waits: {}", d.rate_limited_waits + 1, e.message()));
                    } else {
                        let delay = schedule.rate_limit_delay(e.retry_after(), unit_random());
                        f.state = State::Retrying;
                        f.next_attempt_at = Some(now + delay.as_millis() as i64);
                        f.job_id = Some(new_job_id());
                    }
                }
                Kind::UnknownOutcome => {
                    // Reconciled on the next run. A timeout waits at least the rate-limit floor.
                    f.state = State::Unconfirmed;
                    if !manual && attempts_made < schedule.max_attempts() {
                        let base = schedule.next_delay(attempts_made, unit_random()).unwrap_or_default();
                        let delay = base.max(schedule.rate_limit_delay(None, unit_random()));
                        f.next_attempt_at = Some(now + delay.as_millis() as i64);
                        f.job_id = Some(new_job_id());
                    }
                }
            }
            f
        }
    };
    finish(p, d, owner, f, clock).await
}

fn success(mut f: Finish, r: &Receipt) -> Finish {
    f.remote_id = Some(r.remote_id.clone());
    f.remote_url = r.url.clone();
    f.error = r.warning.clone();
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
    m.attempt(&d.channel, &f.outcome, f.duration_ms as f64 / 1000.0);
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
