//! The mailing loop both email adapters share: seed the ledger, walk the owed recipients in
//! batches, keep a bounded number of messages in flight, record outcomes in batched
//! transactions, and say whether the delivery is done.
//!
//! **Workers.** `concurrency` workers (for SMTP, one connection each) take chunks of owed
//! recipients from a queue the pass fills from the ledger, so a personal copy is built and its
//! envelope sent while other workers' outcomes are being committed.
//!
//! **Crash safety.** A send is "unrecorded" from the moment it may have reached the recipient
//! (SMTP: the body after `DATA`; an API: the call) until its outcome is committed to the ledger.
//! Each worker hands its transport a [`Gate`] that opens only once the worker's previous outcome
//! is committed, and the transport waits for it right before that point. So each worker has at
//! most one unrecorded send, and after a crash, `kill -9` or a timeout at most `concurrency`
//! messages (SMTP) or batch calls (API) were sent without a record; a rerun resends only those:
//! nobody is skipped, and duplicates are bounded by `concurrency`. Commits are grouped: the
//! writer drains every outcome that arrived while the previous commit ran. (On SQLite a
//! committed outcome is in the WAL file, safe from a process crash, and on disk within
//! `[store] ledger_flush_ms`: see `store/walsync.rs` for what a power cut can cost.)

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::compose::{Mailing, short_hash};
use super::ledger::{LedgerProgress, Outcome, Recipient, RecipientLedger, RecipientResult};
use super::progress::Reporter;
use crate::channel::{Delivered, DeliveryCtx, DeliveryError, Kind, Receipt, Reconciled};
use crate::render::Rendering;

/// Default waits before a recipient deferred by a 4xx is tried again; after the last one the
/// recipient is failed (not suppressed).
pub const DEFAULT_RECIPIENT_RETRY: &[Duration] = &[
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(900),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
];

/// Consecutive failed transport calls (no answer at all) before the pass stops.
const MAX_CALL_ERRORS: usize = 5;
/// Consecutive permanent refusals that are not per-address bounces (e.g. `554` policy, `550
/// 5.7.1` relaying denied) before the pass stops instead of failing the whole list.
const MAX_BLANKET_REFUSALS: usize = 20;

/// Opens once the worker's previous outcome is committed to the ledger. A transport waits for
/// it right before the point after which its send may have reached anyone.
pub struct Gate(Option<Committed>);

/// Resolves when one outcome is committed. Shared: a transport may drop its [`Gate`] without
/// waiting (a failed connection), and the worker's next gate must still wait for that commit.
type Committed = futures::future::Shared<oneshot::Receiver<()>>;

impl Gate {
    /// Whether waiting would return at once: no previous outcome, or its commit is done (or
    /// failed). A transport may then send in one piece what it would otherwise split.
    pub fn is_settled(&self) -> bool {
        use futures::FutureExt as _;
        self.0.as_ref().is_none_or(|rx| rx.clone().now_or_never().is_some())
    }

    /// Wait for the previous outcome's commit. An error means it could not be recorded: the
    /// send must not happen (the pass is stopping).
    pub async fn wait(self) -> Result<(), DeliveryError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.map_err(|_| DeliveryError::retryable("the previous outcome could not be recorded; not sending")),
        }
    }
}

#[cfg(test)]
impl Gate {
    /// A gate that opens when the returned sender sends, and fails if it is dropped (tests).
    pub(crate) fn pending() -> (Self, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        (Gate(Some(futures::FutureExt::shared(rx))), tx)
    }
}

/// A way to send personal copies: SMTP (one recipient per call) or an HTTP batch API.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Most recipients per call.
    fn batch_limit(&self) -> usize;
    /// Send to `recipients`, waiting for `gate` before anything may reach them. `Ok` holds one
    /// outcome per recipient, in order (a `Deferred` outcome's `retry_at_ms` is filled in by the
    /// engine). `Err` means the call as a whole failed and the recipients stay owed; an auth or
    /// permanent error stops the pass.
    async fn send(&self, mailing: &Mailing, recipients: &[Recipient], gate: Gate) -> Result<Vec<Outcome>, DeliveryError>;

    /// One worker's session. By default each call goes through [`Transport::send`]; SMTP
    /// overrides it to start the worker's next transaction while it sends the current body.
    fn session(self: Arc<Self>) -> Box<dyn Session> {
        Box::new(Calls(self))
    }
}

/// A worker's calls through a [`Transport`], one after another.
#[async_trait]
pub trait Session: Send {
    /// As [`Transport::send`]. `next` is the worker's next call, when it already holds it: the
    /// session may start it (an SMTP envelope, which sends nothing to anyone) so that the next
    /// call has less to wait for. The next call is then made with exactly those recipients.
    async fn send(&mut self, mailing: &Mailing, recipients: &[Recipient], gate: Gate, next: Option<&[Recipient]>) -> Result<Vec<Outcome>, DeliveryError>;

    /// Whether `send` uses `next`. A worker takes its next chunk early only for a session that
    /// does; otherwise the chunk stays in the queue for whichever worker is free first.
    fn looks_ahead(&self) -> bool {
        false
    }

    /// The worker is done: drop whatever was started for a call that will not come.
    async fn close(&mut self) {}
}

/// The default session: every call is a [`Transport::send`].
pub struct Calls<T: ?Sized>(Arc<T>);

impl<T: Transport + ?Sized> Calls<T> {
    /// Calls through `transport`.
    pub fn new(transport: Arc<T>) -> Self {
        Self(transport)
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Session for Calls<T> {
    async fn send(&mut self, mailing: &Mailing, recipients: &[Recipient], gate: Gate, _next: Option<&[Recipient]>) -> Result<Vec<Outcome>, DeliveryError> {
        self.0.send(mailing, recipients, gate).await
    }
}

/// How one mailing pass runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The channel's name (logs).
    pub channel: String,
    /// The subscriber list to seed from.
    pub list: String,
    /// Workers, i.e. calls in flight (and the bound on unrecorded sends).
    pub concurrency: usize,
    /// Optional cap, messages per second.
    pub max_per_second: Option<u32>,
    /// Rows read from the ledger at a time.
    pub batch_size: usize,
    /// Waits before each retry of a deferred recipient.
    pub recipient_retry: Vec<Duration>,
    /// Stop dispatching after this long and hand the rest to the next pass, so a long mailing
    /// never outlives the pipeline's call timeout or lease.
    pub pass_budget: Option<Duration>,
}

/// The pass budget for a channel timeout: `2 × timeout − 5 s`, within [10 s, 540 s]. The
/// pipeline bounds an adapter call by `2 × timeout + 5 s` and leases a delivery for 600 s.
pub fn pass_budget_for(timeout: Duration) -> Duration {
    (timeout * 2).saturating_sub(Duration::from_secs(5)).clamp(Duration::from_secs(10), Duration::from_secs(540))
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One transport call's results, and the signal that opens its worker's next [`Gate`] once
/// they are committed.
struct Done {
    results: Vec<RecipientResult>,
    committed: Option<oneshot::Sender<()>>,
}

/// Why the pass stopped early.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    error: Mutex<Option<DeliveryError>>,
    call_errors: AtomicUsize,
    blanket: AtomicUsize,
    /// The last failed call that did not stop the pass.
    last_call_error: Mutex<Option<DeliveryError>>,
}

impl Stop {
    fn set(&self, e: DeliveryError) {
        let mut g = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            tracing::warn!(error = %e, "Mailing pass stopping.");
            *g = Some(e);
        }
        self.flag.store(true, Ordering::SeqCst);
    }
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    fn take(&self) -> Option<DeliveryError> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Raises the stop flag when the pass ends, however it ends: if the pipeline cancels the pass
/// (its timeout), the workers finish and record what is on the wire but take no more work.
struct StopOnDrop(Arc<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.flag.store(true, Ordering::SeqCst);
    }
}

/// Spreads sends to at most `rate` per second.
struct Pace {
    interval: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    fn new(rate: u32) -> Self {
        Self { interval: Duration::from_secs_f64(1.0 / f64::from(rate.max(1))), next: tokio::time::Instant::now() }
    }
    async fn wait(&mut self, n: usize) {
        tokio::time::sleep_until(self.next).await;
        self.next = self.next.max(tokio::time::Instant::now()) + self.interval * n as u32;
    }
}

/// Fill in a deferral's retry time, or turn it into a failure once the schedule is used up.
fn settle(outcome: Outcome, r: &Recipient, schedule: &[Duration], now: i64) -> Outcome {
    match outcome {
        Outcome::Deferred { code, reply, .. } => match schedule.get(r.attempts as usize) {
            Some(d) => Outcome::Deferred { code, reply, retry_at_ms: now + d.as_millis() as i64 },
            None => Outcome::Failed { code, reply: format!("gave up after {} tries: {reply}", r.attempts + 1), suppress: false },
        },
        o => o,
    }
}

/// `Adapter::deliver_step` for a mailing adapter of type `kind` (`email`, `email_api`): check
/// the rendering and the ledger, then run one pass.
pub async fn deliver(
    kind: &str,
    opts: &EngineOptions,
    ledger: Option<&Arc<dyn RecipientLedger>>,
    transport: Arc<dyn Transport>,
    rendering: &Rendering,
    ctx: &DeliveryCtx,
) -> Result<Delivered, DeliveryError> {
    let Rendering::Email(r) = rendering else {
        return Err(DeliveryError::permanent(format!("the {kind} channel needs an email rendering")));
    };
    let ledger = require_ledger(kind, opts, ledger)?.clone();
    run(opts, ledger, transport, Arc::new(Mailing::new(&ctx.key, r)), ctx.delivery_id).await
}

/// `Adapter::find_existing` for a mailing adapter: what its ledger says.
pub async fn find_existing(kind: &str, opts: &EngineOptions, ledger: Option<&Arc<dyn RecipientLedger>>, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
    reconcile(require_ledger(kind, opts, ledger)?.as_ref(), ctx.delivery_id, &short_hash(&ctx.key)).await
}

fn require_ledger<'a>(kind: &str, opts: &EngineOptions, ledger: Option<&'a Arc<dyn RecipientLedger>>) -> Result<&'a Arc<dyn RecipientLedger>, DeliveryError> {
    ledger.ok_or_else(|| DeliveryError::permanent(format!("channel {}: the {kind} adapter was built without a recipient ledger", opts.channel)))
}

/// What the ledger says about a delivery, as a reconciliation answer: done when seeded and
/// nothing is owed; otherwise sending again is safe (the ledger skips whoever was recorded).
pub async fn reconcile(ledger: &dyn RecipientLedger, delivery_id: i64, key_hash: &str) -> Result<Reconciled, DeliveryError> {
    let p = ledger.progress(delivery_id).await?;
    if p.seeded && p.pending == 0 {
        Ok(Reconciled::Found(receipt(&p, key_hash)))
    } else {
        Ok(Reconciled::NotFound)
    }
}

fn receipt(p: &LedgerProgress, key_hash: &str) -> Receipt {
    Receipt {
        remote_id: format!("mailing-{key_hash}"),
        url: None,
        awaiting_confirmation: false,
        note: Some(format!("{} sent, {} failed, {} skipped of {} recipients", p.sent, p.failed, p.skipped, p.total)),
    }
}

/// Run one pass of a mailing. It ends `Sent` when nobody is owed; `Continue` when its time
/// budget ran out (go on at once) or everyone still owed is due later (a deferral: wait until
/// the first is due); an error when a call failed or the server refused the pass.
pub async fn run(
    opts: &EngineOptions,
    ledger: Arc<dyn RecipientLedger>,
    transport: Arc<dyn Transport>,
    mailing: Arc<Mailing>,
    delivery_id: i64,
) -> Result<Delivered, DeliveryError> {
    ledger.seed(delivery_id, &opts.list).await?;
    let before = ledger.progress(delivery_id).await?;
    let stop = Arc::new(Stop::default());
    let _stop_on_drop = StopOnDrop(stop.clone());
    let (tx, rx) = mpsc::unbounded_channel::<Done>();
    let started = Instant::now();

    // The writer: group whatever outcomes are waiting into one transaction, then open their
    // workers' gates.
    let writer = {
        let ledger = ledger.clone();
        let stop = stop.clone();
        let reporter = Reporter::new(&opts.channel, &mailing.key, before);
        let max_rows = opts.batch_size.max(1);
        tokio::spawn(write_outcomes(rx, ledger, stop, reporter, delivery_id, max_rows))
    };

    // The workers. Spawned, not polled here: if this pass is cancelled (the pipeline's
    // timeout), a send already on the wire finishes and is recorded. Cancelling lettre
    // mid-transaction would leave replies unread on a connection.
    let workers = opts.concurrency.max(1);
    // Many workers take from one queue, and a worker looks ahead without waiting: flume's
    // receiver is shared without a lock.
    let (work_tx, work_rx) = flume::bounded::<Vec<Recipient>>(workers * 2);
    let worker_handles = {
        let pace = opts.max_per_second.map(|r| Arc::new(tokio::sync::Mutex::new(Pace::new(r))));
        (0..workers)
            .map(|_| {
                let w = Worker {
                    work: work_rx.clone(),
                    transport: transport.clone(),
                    mailing: mailing.clone(),
                    stop: stop.clone(),
                    tx: tx.clone(),
                    pace: pace.clone(),
                    schedule: opts.recipient_retry.clone(),
                };
                tokio::spawn(w.run())
            })
            .collect::<Vec<_>>()
    };
    // Only the workers hold the queue: once they have all stopped, a send fails instead of
    // waiting for room.
    drop(work_rx);

    let limit = transport.batch_limit().max(1);
    let mut after = 0i64;
    let mut dispatched = 0usize;
    let mut out_of_time = false;
    'pass: while !stop.is_set() {
        let batch = match ledger.owed(delivery_id, after, now_ms(), opts.batch_size.max(1)).await {
            Ok(b) => b,
            Err(e) => {
                stop.set(e);
                break;
            }
        };
        let Some(last) = batch.last() else { break };
        after = last.id;
        let (skips, sendable): (Vec<Recipient>, Vec<Recipient>) = batch.into_iter().partition(|r| r.skip.is_some());
        if !skips.is_empty() {
            let results = skips
                .into_iter()
                .map(|r| RecipientResult { id: r.id, email: r.email, outcome: Outcome::Skipped { reason: r.skip.unwrap_or_default() } })
                .collect();
            let _ = tx.send(Done { results, committed: None });
        }
        for chunk in sendable.chunks(limit) {
            if opts.pass_budget.is_some_and(|b| started.elapsed() >= b) {
                out_of_time = true;
                break 'pass;
            }
            if stop.is_set() {
                break 'pass;
            }
            // Every worker gone (they stop on a stop): the chunk stays owed.
            if work_tx.send_async(chunk.to_vec()).await.is_err() {
                break 'pass;
            }
            dispatched += chunk.len();
        }
    }
    // No more work: each worker finishes its chunk and waits for its last commit.
    drop(work_tx);
    for h in worker_handles {
        if let Err(e) = h.await {
            stop.set(DeliveryError::retryable(format!("a mailing worker stopped: {e}")));
        }
    }
    drop(tx);
    let reporter = writer.await;
    ledger.release().await;
    let mut reporter = reporter.map_err(|e| DeliveryError::retryable(format!("the ledger writer stopped: {e}")))?;
    reporter.finish();
    tracing::debug!(channel = %opts.channel, dispatched, elapsed_ms = started.elapsed().as_millis() as u64, "Mailing pass done.");

    let p = ledger.progress(delivery_id).await?;
    if let Some(e) = stop.take() {
        let note = format!("{} of {} recipients still owed", p.pending, p.total);
        let status = e.status();
        let mut out = DeliveryError::new(e.kind(), format!("{} ({note})", e.message())).with_retry_after(e.retry_after());
        if let Some(s) = status {
            out = out.with_status(s);
        }
        return Err(out);
    }
    if p.pending > 0 && out_of_time {
        // Not a failure and not a wait: the next pass continues where this one stopped.
        let note = format!("mailing continues in the next pass: {} of {} recipients still owed; {} sent, {} failed so far", p.pending, p.total, p.sent, p.failed);
        return Ok(Delivered::Continue { after: None, note });
    }
    if p.pending > 0 {
        let call_error = stop.last_call_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(e) = call_error {
            // A call got no answer: a failed attempt, retried on the schedule.
            let msg = format!("{} of {} recipients still owed (last error: {e}); {} sent, {} failed so far", p.pending, p.total, p.sent, p.failed);
            let wait = p.next_due_ms.map(|t| Duration::from_millis((t - now_ms()).max(0) as u64));
            let mut err = DeliveryError::retryable(msg).with_retry_after(wait);
            if let Some(s) = e.status() {
                err = err.with_status(s);
            }
            return Err(err);
        }
        // Everyone still owed was deferred by their server and is due later (or nobody was due
        // yet): wait until the first is due. Not a failed attempt, not a rate limit.
        let wait = p.next_due_ms.map(|t| Duration::from_millis((t - now_ms()).max(0) as u64)).unwrap_or_default();
        let note = format!(
            "{} of {} recipients still owed (deferred by the server; {} dispatched this pass); {} sent, {} failed so far",
            p.pending, p.total, dispatched, p.sent, p.failed
        );
        return Ok(Delivered::Continue { after: Some(wait), note });
    }
    Ok(Delivered::Sent(receipt(&p, &mailing.key_hash)))
}

/// One worker: takes chunks, sends each through the transport behind its gate, and passes the
/// outcomes to the writer.
struct Worker {
    work: flume::Receiver<Vec<Recipient>>,
    transport: Arc<dyn Transport>,
    mailing: Arc<Mailing>,
    stop: Arc<Stop>,
    tx: mpsc::UnboundedSender<Done>,
    pace: Option<Arc<tokio::sync::Mutex<Pace>>>,
    schedule: Vec<Duration>,
}

impl Worker {
    async fn run(self) {
        let stop = &self.stop;
        let mut session = self.transport.clone().session();
        // Committed when the worker's previous outcome is. Kept until a newer outcome replaces
        // it (commits happen in order), so a call that fails without waiting on its gate does
        // not let the next call skip the wait.
        let mut previous: Option<Committed> = None;
        // The chunk after the current one, taken early so the session can start it.
        let mut held: Option<Vec<Recipient>> = None;
        loop {
            if stop.is_set() {
                break;
            }
            let chunk = match held.take() {
                Some(c) => c,
                None => match self.work.recv_async().await {
                    Ok(c) => c,
                    Err(_) => break,
                },
            };
            if stop.is_set() {
                break;
            }
            if let Some(p) = &self.pace {
                p.lock().await.wait(chunk.len()).await;
            }
            // Look ahead only for a session that uses it, and without a pace (a paced session
            // would hold a started transaction open for the pace's wait); never wait for it.
            if self.pace.is_none() && session.looks_ahead() {
                held = self.work.try_recv().ok();
            }
            match session.send(&self.mailing, &chunk, Gate(previous.clone()), held.as_deref()).await {
                Ok(outcomes) => {
                    stop.call_errors.store(0, Ordering::Relaxed);
                    let now = now_ms();
                    let mut results = Vec::with_capacity(chunk.len());
                    for (r, o) in chunk.into_iter().zip(outcomes) {
                        match &o {
                            Outcome::Sent { .. } => stop.blanket.store(0, Ordering::Relaxed),
                            Outcome::Failed { suppress: false, code, reply }
                                if *code >= 500 && stop.blanket.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_BLANKET_REFUSALS =>
                            {
                                stop.set(
                                    DeliveryError::permanent(format!(
                                        "the server refused {MAX_BLANKET_REFUSALS} messages in a row, not for the address: {code} {reply}"
                                    ))
                                    .with_status(*code),
                                );
                            }
                            _ => {}
                        }
                        let outcome = settle(o, &r, &self.schedule, now);
                        results.push(RecipientResult { id: r.id, email: r.email, outcome });
                    }
                    let (committed, rx) = oneshot::channel();
                    if self.tx.send(Done { results, committed: Some(committed) }).is_err() {
                        // The writer is gone: nothing more may be sent unrecorded.
                        stop.set(DeliveryError::retryable("the ledger writer stopped; outcomes cannot be recorded"));
                        break;
                    }
                    previous = Some(futures::FutureExt::shared(rx));
                }
                Err(e) => {
                    let n = stop.call_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(error = %e, consecutive = n, "Send failed; the recipients stay owed.");
                    // A rate limit, an auth or permanent refusal, or an unknown outcome ends the pass.
                    if e.kind() != Kind::Retryable || n >= MAX_CALL_ERRORS {
                        stop.set(e);
                    } else {
                        *stop.last_call_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                }
            }
        }
        // A held chunk that was not sent stays owed (nothing about it was recorded), and
        // whatever the session started for it is dropped.
        session.close().await;
        // The worker's last outcome is recorded before it ends.
        if let Some(p) = previous {
            let _ = p.await;
        }
    }
}

async fn write_outcomes(
    mut rx: mpsc::UnboundedReceiver<Done>,
    ledger: Arc<dyn RecipientLedger>,
    stop: Arc<Stop>,
    mut reporter: Reporter,
    delivery_id: i64,
    max_rows: usize,
) -> Reporter {
    let mut failed = false;
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut rows = group[0].results.len();
        while rows < max_rows {
            match rx.try_recv() {
                Ok(d) => {
                    rows += d.results.len();
                    group.push(d);
                }
                Err(_) => break,
            }
        }
        if failed {
            continue;
        }
        let results: Vec<RecipientResult> = group.iter_mut().flat_map(|d| std::mem::take(&mut d.results)).collect();
        match ledger.record(delivery_id, &results).await {
            Ok(()) => {
                let (mut s, mut f, mut k) = (0, 0, 0);
                for r in &results {
                    match r.outcome {
                        Outcome::Sent { .. } => s += 1,
                        Outcome::Failed { .. } => f += 1,
                        Outcome::Skipped { .. } => k += 1,
                        Outcome::Deferred { .. } => {}
                    }
                }
                reporter.add(s, f, k);
                crate::metrics::global().emails_sent.inc_by(s);
            }
            Err(e) => {
                failed = true;
                stop.set(DeliveryError::retryable(format!("cannot record recipient outcomes: {}", e.message())));
            }
        }
        if !failed {
            for d in group {
                if let Some(c) = d.committed {
                    let _ = c.send(());
                }
            }
        }
        // Otherwise the signals drop unsent: those workers' gates fail and they stop.
    }
    reporter
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::email::ledger::MemoryLedger;
    use crate::render::EmailRendering;
    use std::sync::atomic::AtomicU32;

    /// A ledger whose commits take a while, counting those done.
    struct SlowLedger {
        inner: MemoryLedger,
        committed: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl RecipientLedger for SlowLedger {
        async fn seed(&self, delivery_id: i64, list: &str) -> Result<u64, DeliveryError> {
            self.inner.seed(delivery_id, list).await
        }
        async fn owed(&self, delivery_id: i64, after_id: i64, now_ms: i64, limit: usize) -> Result<Vec<Recipient>, DeliveryError> {
            self.inner.owed(delivery_id, after_id, now_ms, limit).await
        }
        async fn record(&self, delivery_id: i64, results: &[RecipientResult]) -> Result<(), DeliveryError> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.inner.record(delivery_id, results).await?;
            self.committed.fetch_add(results.len(), Ordering::SeqCst);
            Ok(())
        }
        async fn progress(&self, delivery_id: i64) -> Result<LedgerProgress, DeliveryError> {
            self.inner.progress(delivery_id).await
        }
    }

    /// Call 1 is sent; call 2 fails without waiting on its gate (no connection); call 3 notes
    /// how many outcomes were committed when its gate opened.
    struct FailsOnce {
        calls: AtomicU32,
        committed: Arc<AtomicUsize>,
        seen_at_third: AtomicUsize,
    }

    #[async_trait]
    impl Transport for FailsOnce {
        fn batch_limit(&self) -> usize {
            1
        }
        async fn send(&self, _: &Mailing, _: &[Recipient], gate: Gate) -> Result<Vec<Outcome>, DeliveryError> {
            match self.calls.fetch_add(1, Ordering::SeqCst) {
                1 => return Err(DeliveryError::retryable("no connection")),
                2 => {
                    gate.wait().await?;
                    self.seen_at_third.store(self.committed.load(Ordering::SeqCst), Ordering::SeqCst);
                }
                _ => gate.wait().await?,
            }
            Ok(vec![Outcome::Sent { code: 250, reply: "ok".into() }])
        }
    }

    #[tokio::test]
    async fn a_call_that_fails_before_its_gate_does_not_let_the_next_skip_the_commit() {
        let committed = Arc::new(AtomicUsize::new(0));
        let ledger = SlowLedger { inner: MemoryLedger::default(), committed: committed.clone() };
        for i in 0..3 {
            ledger.inner.add_subscriber(&format!("r{i}@example.org"), "", "all", Default::default());
        }
        let transport = Arc::new(FailsOnce { calls: AtomicU32::new(0), committed: committed.clone(), seen_at_third: AtomicUsize::new(usize::MAX) });
        let opts = EngineOptions {
            channel: "news".into(),
            list: "all".into(),
            concurrency: 1,
            max_per_second: None,
            batch_size: 10,
            recipient_retry: vec![Duration::ZERO],
            pass_budget: None,
        };
        let r = EmailRendering { subject: "s".into(), html: "<p>h</p>".into(), text: "t".into() };
        let _ = run(&opts, Arc::new(ledger), transport.clone(), Arc::new(Mailing::new("k", &r)), 1).await;
        assert!(transport.calls.load(Ordering::SeqCst) >= 3, "three calls were made");
        assert_eq!(
            transport.seen_at_third.load(Ordering::SeqCst),
            1,
            "the third call's gate opened only once the first call's outcome was committed"
        );
    }
}
