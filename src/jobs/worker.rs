//! The apalis workers (Publish and Deliver), the outbox sweeper, and running them until a
//! stop signal. All `WorkerBuilder`/`Monitor` wiring is here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;

use super::deliver::{self, DeliverOutcome};
use super::publish::{self, PublishOutcome, publish_key};
use super::queue::{DELIVER_PUSHED, INFRA_RETRIES, PUBLISH_PUSHED, Queue, new_job_id, wake_ups};
use super::{DeliverJob, Pipeline, PublishJob};
use crate::store::lease::{ProcessId, owner_is_dead_here};
use crate::store::{State, now_ms};

/// How long a stored issue waits for its Publish job before the sweeper publishes it itself.
const PUBLISH_GRACE_MS: i64 = 5_000;
/// How long a due delivery waits for a worker to start its live job before the sweeper runs it.
const DELIVER_GRACE_MS: i64 = 10_000;

/// Finished queue jobs are kept this long (for `apalis` inspection), then deleted.
const PRUNE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the sweeper prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How the workers run.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How often an idle worker polls the queue (apalis otherwise only fetches at its 30 s
    /// heartbeat, STACK §3.6).
    pub poll: Duration,
    /// How often the sweeper looks for owed deliveries without a live job.
    pub sweep_every: Duration,
    /// How long a shutdown waits for in-flight work before handing it back.
    pub shutdown_grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            poll: Duration::from_millis(300),
            sweep_every: Duration::from_secs(3),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Notified each time a job's work ends, so `publish --wait` looks at the store then instead
/// of at its next poll.
static JOB_DONE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells [`JOB_DONE`] when dropped: however the job's work ends.
struct NotifyDone;

impl Drop for NotifyDone {
    fn drop(&mut self) {
        JOB_DONE.notify_one();
    }
}

async fn publish_handler(job: PublishJob, p: Data<Arc<Pipeline>>) -> Result<(), BoxDynError> {
    let PublishJob::V1 { issue, version } = job;
    let _done = NotifyDone;
    match publish::run(&p, &issue, &version).await {
        Ok(PublishOutcome::Failed(msg)) => Err(AbortError::new(msg).into()),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(issue = %issue, error = %format!("{e:#}"), "Publish job hit a store error.");
            Err(e.into())
        }
    }
}

async fn deliver_handler(job: DeliverJob, p: Data<Arc<Pipeline>>) -> Result<(), BoxDynError> {
    let DeliverJob::V1 { delivery_id } = job;
    let p: Arc<Pipeline> = (*p).clone();
    let _done = NotifyDone;
    match own_task(async move { deliver::run(&p, delivery_id).await }).await {
        // A dead delivery ends its job as Killed, so apalis never runs it again.
        Ok(DeliverOutcome::Now(State::Failed)) => Err(AbortError::new(format!("delivery {delivery_id} failed")).into()),
        Ok(DeliverOutcome::Skipped(why)) => {
            tracing::debug!(delivery_id, why, "Deliver job had nothing to do.");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(delivery_id, error = %format!("{e:#}"), "Deliver job hit a store error.");
            Err(e.into())
        }
    }
}

/// Run a job's work as its own tokio task and wait for it. apalis polls a worker's backend each
/// time anything inside the worker's future wakes, and every such poll with room for more work
/// runs the queue's fetch query: a mailing's socket and database wake-ups made the Deliver
/// worker query the queue about a thousand times a second (bench/email, 2026-11-25). As its
/// own task the job wakes only itself. Dropping the returned future aborts the task, as
/// dropping the job's future did before; the job's span goes with it.
async fn own_task<T: Send + 'static>(work: impl Future<Output = anyhow::Result<T>> + Send + 'static) -> anyhow::Result<T> {
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(tokio::spawn(tracing::Instrument::in_current_span(work)));
    match (&mut task.0).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(anyhow::anyhow!("the job's task ended early: {e}")),
    }
}

fn is_infra(e: &BoxDynError) -> bool {
    e.downcast_ref::<AbortError>().is_none()
}

macro_rules! monitor_for {
    ($publish:expr, $deliver:expr, $p:expr, $opts:expr) => {{
        // `{host}-{pid}-{start}-{run}.{restarts}`: unique per process, per run and per restart
        // (STACK §6.4), and parseable back to a pid for the sweeper's liveness check.
        static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let suffix = format!("{}-{run}", ProcessId::current().worker_suffix());
        let (pp, pd) = ($p.clone(), $p.clone());
        let (sp, sd) = ($publish.clone(), $deliver.clone());
        let (poll, conc) = ($opts.poll, $opts.concurrency.max(1));
        let (s1, s2) = (suffix.clone(), suffix);
        Monitor::new()
            .register(move |restarts| {
                // Names are unique per process and restart (STACK §6.4).
                WorkerBuilder::new(format!("herald-publish-{s1}.{restarts}"))
                    .backend(sp.clone().poll_with_stream(wake_ups(poll, &PUBLISH_PUSHED)))
                    .data(pp.clone())
                    .concurrency(1)
                    .retry(RetryPolicy::retries(INFRA_RETRIES).retry_if(is_infra))
                    .build(publish_handler)
            })
            .register(move |restarts| {
                WorkerBuilder::new(format!("herald-deliver-{s2}.{restarts}"))
                    .backend(sd.clone().poll_with_stream(wake_ups(poll, &DELIVER_PUSHED)))
                    .data(pd.clone())
                    .concurrency(conc)
                    .retry(RetryPolicy::retries(INFRA_RETRIES).retry_if(is_infra))
                    .build(deliver_handler)
            })
            // A backend error (e.g. SQLITE_BUSY past busy_timeout) ends a worker: restart it.
            .should_restart(|ctx, err| {
                tracing::warn!(worker = ctx.name(), error = %err, "Worker stopped; restarting.");
                true
            })
            .shutdown_timeout($opts.shutdown_grace)
    }};
}

/// Run the Publish and Deliver workers and the sweeper until `stop` resolves, then shut down
/// gracefully: stop fetching, let in-flight jobs finish (up to the grace period), hand back
/// fetched-but-unstarted jobs. A delivery cut off mid-send stays `sending` under this
/// process's lease, which the next run voids at once and reconciles.
pub async fn run_until<F>(p: Arc<Pipeline>, opts: WorkerOptions, stop: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    // The sweeper may be running a delivery itself: at shutdown it is told to stop between
    // passes and awaited (within the grace), not aborted mid-send, which would leave a send
    // unrecorded and make the next run send it again.
    let (sweeper_stop, mut sweeper_stopped) = tokio::sync::watch::channel(false);
    let sweeper = {
        let p = p.clone();
        let every = opts.sweep_every;
        tokio::spawn(async move {
            let mut last_prune: Option<tokio::time::Instant> = None;
            loop {
                if last_prune.is_none_or(|t| t.elapsed() > PRUNE_EVERY) {
                    last_prune = Some(tokio::time::Instant::now());
                    match p.queue.prune_finished(PRUNE_AGE).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "Pruned finished queue jobs."),
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), "Pruning the queue failed."),
                    }
                }
                match sweep(&p).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pushed = n, "Sweeper pushed jobs for owed deliveries."),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "Sweep failed."),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = sweeper_stopped.wait_for(|s| *s) => break,
                }
            }
        })
    };
    let stopping = p.clone();
    let signal = async move {
        stop.await;
        tracing::info!("Shutting down: finishing in-flight deliveries.");
        stopping.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        // The sweeper winds down beside the workers, within the same grace.
        let _ = sweeper_stop.send(true);
        Ok::<(), std::io::Error>(())
    };
    let queue = p.queue.with_deliver_batch(opts.concurrency.max(1));
    let res = match &queue {
        Queue::Sqlite { publish, deliver, .. } => monitor_for!(publish, deliver, p, opts).run_with_signal(signal).await,
        Queue::Postgres { publish, deliver, .. } => monitor_for!(publish, deliver, p, opts).run_with_signal(signal).await,
    };
    let abort = sweeper.abort_handle();
    if tokio::time::timeout(opts.shutdown_grace, sweeper).await.is_err() {
        abort.abort();
    }
    res.map_err(|e| anyhow::anyhow!("workers stopped with an error: {e}"))
}

/// One pass of the outbox sweeper: push a Publish job for stored, unpublished issue versions
/// (keyed, so an existing job absorbs it), and a Deliver job for every owed delivery that has
/// neither a live lease holder nor a live job. Returns how many Deliver jobs it pushed.
pub async fn sweep(p: &Pipeline) -> anyhow::Result<usize> {
    for issue in p.store.unpublished_issues().await? {
        let job = PublishJob::V1 { issue: issue.slug.clone(), version: issue.version.clone() };
        p.queue.push_publish(job, Some(&publish_key(&issue.slug, &issue.version))).await?;
        // A keyed job that is stuck (its worker was killed) would block a new push until
        // apalis recovers it (60 s or more): after a grace period, run the idempotent Publish
        // step here. Keys make a concurrent run by the job harmless.
        if now_ms() - issue.created_at > PUBLISH_GRACE_MS
            && let Err(e) = publish::run(p, &issue.slug, &issue.version).await
        {
            tracing::warn!(issue = %issue.slug, error = %format!("{e:#}"), "Sweeper could not publish.");
        }
    }
    let now = now_ms();
    let mut pushed = 0;
    for d in p.store.owed_deliveries(now).await? {
        let leased = d.lease_owner.as_deref().is_some_and(|o| d.lease_until.is_some_and(|u| u >= now) && !owner_is_dead_here(o));
        if leased {
            continue;
        }
        if let Some(job) = &d.job_id
            && p.queue.job_is_live(job).await?
        {
            // A live job normally runs within a poll interval. If apalis has not started it
            // long after it was due (a stalled worker stream was seen under heavy load), run
            // the idempotent, leased Deliver step here: the lease keeps it to one sender. A
            // delivery left `sending` counts only when its lease holder is a dead process on
            // this host (a crash mid-send): otherwise its sender may still be at work.
            let due = d.next_attempt_at.unwrap_or(d.updated_at);
            let orphaned = d.lease_owner.as_deref().is_some_and(owner_is_dead_here);
            if (d.state() != State::Sending || orphaned) && now - due > DELIVER_GRACE_MS {
                tracing::warn!(delivery_id = d.id, waited_ms = now - due, "Deliver job not started by a worker; the sweeper runs it.");
                if let Err(e) = deliver::run(p, d.id).await {
                    tracing::warn!(delivery_id = d.id, error = %format!("{e:#}"), "Sweeper could not deliver.");
                }
            }
            continue;
        }
        let job = new_job_id();
        p.store.set_job_id(d.id, &job).await?;
        p.queue.push_deliver(d.id, &job, Duration::ZERO).await?;
        tracing::debug!(delivery_id = d.id, state = %d.state, "Sweeper pushed a Deliver job.");
        pushed += 1;
    }
    Ok(pushed)
}

/// What `--wait` waits for.
#[derive(Debug, Clone)]
pub enum WaitFor {
    /// An issue version's Publish, then the latest delivery of each of its channels.
    Issue {
        /// Slug.
        slug: String,
        /// Version.
        version: String,
        /// Only these channels (empty: all).
        channels: Vec<String>,
    },
    /// These deliveries.
    Deliveries(Vec<i64>),
}

/// A delivery needs nothing more without the operator: final, or retrying/unconfirmed with no
/// next attempt planned.
pub fn is_settled(d: &crate::store::DeliveryRow) -> bool {
    let st = d.state();
    st.is_final() || (matches!(st, State::Retrying | State::Unconfirmed) && d.next_attempt_at.is_none())
}

/// Is the target settled? `Err` carries a Publish failure to report.
pub async fn target_settled(p: &Pipeline, target: &WaitFor) -> anyhow::Result<Result<bool, String>> {
    match target {
        WaitFor::Issue { slug, version, channels } => {
            let Some(issue) = p.store.get_issue(slug, version).await? else { return Ok(Ok(false)) };
            if let Some(e) = issue.publish_error {
                return Ok(Err(e));
            }
            if issue.published_at.is_none() {
                return Ok(Ok(false));
            }
            let ds = p.store.list_deliveries(Some(slug), channels).await?;
            Ok(Ok(latest_per_channel(ds).iter().all(is_settled)))
        }
        WaitFor::Deliveries(ids) => {
            for id in ids {
                match p.store.get_delivery(*id).await? {
                    Some(d) if !is_settled(&d) => return Ok(Ok(false)),
                    _ => {}
                }
            }
            Ok(Ok(true))
        }
    }
}

/// Keep the highest revision of each (issue, channel).
pub fn latest_per_channel(ds: Vec<crate::store::DeliveryRow>) -> Vec<crate::store::DeliveryRow> {
    let mut out: Vec<crate::store::DeliveryRow> = Vec::new();
    for d in ds {
        match out.iter_mut().find(|o| o.issue == d.issue && o.channel == d.channel) {
            Some(o) if o.revision < d.revision => *o = d,
            Some(_) => {}
            None => out.push(d),
        }
    }
    out
}

/// How an embedded run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// Everything settled.
    Settled,
    /// The Publish job could not render the stored issue.
    PublishFailed(String),
    /// `--timeout` passed first.
    TimedOut,
    /// Interrupted (SIGINT/SIGTERM).
    Interrupted,
}

/// Run an embedded worker until `target` settles, the timeout passes, or a signal arrives.
pub async fn run_until_settled(p: Arc<Pipeline>, opts: WorkerOptions, target: WaitFor, timeout: Option<Duration>) -> anyhow::Result<WaitEnd> {
    let (tx, rx) = tokio::sync::oneshot::channel::<WaitEnd>();
    let signalled = shutdown_signal();
    let watcher = {
        let p = p.clone();
        async move {
            tokio::pin!(signalled);
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            let end = loop {
                match target_settled(&p, &target).await {
                    Ok(Ok(true)) => break WaitEnd::Settled,
                    Ok(Err(e)) => break WaitEnd::PublishFailed(e),
                    Ok(Ok(false)) => {}
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "Could not read the store while waiting."),
                }
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break WaitEnd::TimedOut;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = JOB_DONE.notified() => {}
                    _ = &mut signalled => break WaitEnd::Interrupted,
                }
            };
            let _ = tx.send(end);
        }
    };
    run_until(p, opts, watcher).await?;
    Ok(rx.await.unwrap_or(WaitEnd::Interrupted))
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives while the caller is still starting up is
/// not lost to the default action (which would end the process without its clean shutdown).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok())
    };
    async move {
        #[cfg(unix)]
        match handlers {
            (Some(mut term), Some(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
