//! `herald daemon`: the Publish and Deliver workers with the outbox sweeper, the scheduler
//! (cron entries, `publish_at`, catch-up), and the HTTP endpoints (`/healthz`, `/metrics`,
//! `/status`, unsubscribe), until SIGTERM or SIGINT.
//!
//! Shutdown stops fetching, lets in-flight deliveries finish (up to 30 s), and hands back
//! fetched-but-unstarted jobs to the queue; a delivery cut off mid-send is reconciled by the
//! next run. HTTP connections get their own, shorter drain ([`http::ServeLimits`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;

use super::{ExitStatus, Globals, InputError};
use crate::cli::DaemonArgs;
use crate::config::pick_secret;
use crate::http::{self, HttpState, StatusSource, page};
use crate::jobs::Pipeline;
use crate::jobs::worker::{WorkerOptions, run_until, shutdown_signal};
use crate::store::fmt_ms;

/// Run `herald daemon`.
pub async fn run(g: &Globals, args: DaemonArgs) -> anyhow::Result<ExitStatus> {
    // First, so a SIGTERM during start-up still ends in a clean shutdown.
    let signalled = shutdown_signal();
    let cfg = Arc::new(g.load_config()?);
    let listen: SocketAddr = cfg
        .config
        .http
        .listen
        .parse()
        .map_err(|e| InputError(format!("[http] listen = {:?} is not an address like 127.0.0.1:8025: {e}", cfg.config.http.listen)))?;
    let token_file = cfg.config.http.token_file.as_ref().map(|f| cfg.resolve_path(f));
    let token = match pick_secret(&cfg.config.http.token, &token_file) {
        Some(s) => Some(s.resolve().map_err(|e| InputError(format!("[http] token: {e}")))?),
        None => None,
    };
    http::check_listen(&listen, token.as_ref()).map_err(InputError)?;
    let p = Arc::new(Pipeline::open(cfg.clone()).await?);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(store = %p.store.url().display(), listen = %listener.local_addr()?, concurrency = args.concurrency, schedules = cfg.config.schedule.len(), "Daemon started.");

    // Renew the credentials that are due (LinkedIn with a refresh token), and export
    // `herald_credential_expiry_timestamp_seconds` from the store (renewals by this daemon or
    // another, `herald connect`) and the config: now and every 15 seconds (one read of the
    // store; adapters whose credential changed are rebuilt).
    {
        let (p, cfg) = (p.clone(), cfg.clone());
        tokio::spawn(async move {
            loop {
                p.renew_credentials().await;
                match crate::credentials::view::views(&cfg, &p.store, crate::store::now_ms()).await {
                    Ok(v) => crate::credentials::view::export(&v),
                    Err(e) => tracing::debug!(error = %format!("{e:#}"), "Cannot read credential expiries."),
                }
                tokio::time::sleep(std::time::Duration::from_secs(15)).await;
            }
        });
    }

    // One signal, three listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let imap_stop = stop_rx.clone();
    tokio::spawn(async move {
        signalled.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let state = HttpState { token, status: Arc::new(StoreStatus(p.clone())) };
    // One-click unsubscribe (public: mail clients POST without credentials), signed by every
    // email channel's key; a missing key is bad input, caught before listening.
    let keys = crate::channel::email::unsubscribe::keys_from_config(&cfg, &crate::channel::BuildCtx::from_env(cfg.base_dir.clone()))
        .map_err(|e| InputError(format!("{e:#}")))?;
    let public = if keys.is_empty() {
        axum::Router::new()
    } else {
        let list: Arc<dyn crate::channel::email::ledger::SuppressionList> = Arc::new(p.store.clone());
        crate::channel::email::unsubscribe_routes(crate::channel::email::unsubscribe::UnsubscribeState::new(keys, list))
    };
    let public = public.merge(postmark_webhook(&cfg, &p.store)?);
    if let Some(poller) = bounce_mailbox(&cfg, &p.store, imap_stop)? {
        tokio::spawn(poller);
    }
    let app = http::router(state, public);
    let server = tokio::spawn(http::serve(listener, app, stopped()));
    let gauge = {
        let p = p.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(n) = p.store.open_deliveries().await {
                    crate::metrics::global().queue_depth.set(n);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    let opts = WorkerOptions { concurrency: args.concurrency.max(1), ..WorkerOptions::default() };
    let (workers, scheduler) = tokio::join!(run_until(p.clone(), opts, stopped()), crate::jobs::cron::run_until(p.clone(), stopped()));
    gauge.abort();
    let _ = server.await;
    p.close().await;
    workers?;
    scheduler?;
    tracing::info!("Daemon stopped.");
    Ok(ExitStatus::Success)
}

/// `/status` and `/healthz` over the store.
struct StoreStatus(Arc<Pipeline>);

#[async_trait]
impl StatusSource for StoreStatus {
    async fn snapshot(&self) -> anyhow::Result<page::Snapshot> {
        self.snapshot_page(page::Query::default()).await
    }

    /// One page of issues (newest first) with their deliveries, timelines and mailings; the
    /// recent attempts, fires and credentials, whatever the page.
    async fn snapshot_page(&self, q: page::Query) -> anyhow::Result<page::Snapshot> {
        let store = &self.0.store;
        let now = crate::store::now_ms();
        let per = page::ISSUES_PER_PAGE;
        let (slugs, total) = store.status_issues(per as i64, ((q.page - 1) * per) as i64).await?;
        let total = usize::try_from(total).unwrap_or(0);
        let mut deliveries = Vec::new();
        let mut mailings = Vec::new();
        for slug in &slugs {
            let title = store.latest_issue(slug).await?.map(|i| i.title);
            let mut rows = store.list_deliveries(Some(slug), &[]).await?;
            rows.sort_by(|a, b| a.channel.cmp(&b.channel).then(a.revision.cmp(&b.revision)));
            for d in rows {
                let state = d.state();
                let attempts = if matches!(state, crate::store::State::Scheduled) { Vec::new() } else { store.attempts(d.id).await? };
                let omitted = attempts.len().saturating_sub(page::TIMELINE_CAP);
                let timeline = attempts
                    .into_iter()
                    .skip(omitted)
                    .map(|a| page::AttemptRow {
                        at: fmt_ms(a.started_at),
                        issue: d.issue.clone(),
                        channel: d.channel.clone(),
                        n: a.n,
                        outcome: a.outcome,
                        status: a.status_code,
                        error: a.error,
                        key: d.delivery_key.clone(),
                        duration_ms: a.duration_ms,
                        trigger: a.triggered_by,
                        remote_id: a.remote_id,
                    })
                    .collect();
                if matches!(d.channel_type.as_str(), "email" | "email_api") {
                    let c = store.send_counts(d.id).await?;
                    if c.seeded {
                        let running = !state.is_final();
                        // The rate over the last minute, or since this attempt began if later.
                        let since = (now - 60_000).max(d.attempt_started_at.unwrap_or(0));
                        let (recent, _) = store.settled_since(d.id, since).await?;
                        let rate = running.then(|| recent as f64 / ((now - since).max(1000) as f64 / 1000.0));
                        mailings.push(page::MailingRow {
                            key: d.delivery_key.clone(),
                            issue: d.issue.clone(),
                            channel: d.channel.clone(),
                            state: state.as_str().to_string(),
                            running,
                            total: c.total,
                            sent: c.sent,
                            failed: c.failed,
                            skipped: c.skipped,
                            owed: c.pending,
                            rate_per_sec: rate,
                            eta_secs: rate.filter(|r| *r > 0.0).map(|r| (c.pending as f64 / r).ceil() as i64),
                        });
                    }
                }
                deliveries.push(page::DeliveryRow {
                    state: state.as_str().to_string(),
                    key: d.delivery_key,
                    title: title.clone(),
                    channel_type: d.channel_type,
                    last_status: d.last_status,
                    timeline,
                    timeline_omitted: omitted,
                    in_flight_since: d.attempt_started_at.filter(|_| state == crate::store::State::Sending).map(fmt_ms),
                    issue: d.issue,
                    channel: d.channel,
                    revision: d.revision,
                    attempts: d.attempts,
                    remote_url: d.remote_url.or(d.remote_id),
                    last_error: d.last_error,
                    next_attempt_at: d.next_attempt_at.map(fmt_ms),
                });
            }
        }
        mailings.sort_by_key(|m| !m.running);
        let attempts: Vec<page::AttemptRow> = store
            .recent_log(page::RECENT_ATTEMPTS as i64)
            .await?
            .into_iter()
            .map(|a| page::AttemptRow {
                at: fmt_ms(a.started_at),
                issue: a.issue,
                channel: a.channel,
                n: a.n,
                outcome: a.outcome,
                status: a.status_code,
                error: a.error,
                key: a.delivery_key,
                duration_ms: a.duration_ms,
                trigger: a.triggered_by,
                remote_id: a.remote_id,
            })
            .collect();
        let fires = store
            .fires(None, page::FIRES_CAP as i64)
            .await?
            .into_iter()
            .map(|f| page::FireRow { schedule: f.schedule, fire_at: fmt_ms(f.fire_at), result: f.result, issue: f.issue, detail: f.detail })
            .collect();
        let credentials = crate::credentials::view::views(&self.0.config, store, now).await?;
        Ok(page::Snapshot {
            deliveries,
            attempts,
            fires,
            generated_at: fmt_ms(now),
            mailings,
            credentials,
            page: q.page,
            pages: total.div_ceil(per).max(1),
            issues_total: total,
            issues_per_page: per,
        })
    }

    async fn healthy(&self) -> bool {
        self.problem().await.is_none()
    }

    async fn problem(&self) -> Option<String> {
        if let Some(behind) = self.0.scheduler_stalled(chrono::Utc::now().timestamp_millis()) {
            return Some(format!("scheduler stalled: its loop has not come round for {} s", behind.as_secs()));
        }
        if self.0.store.open_deliveries().await.is_err() {
            return Some("store unavailable".into());
        }
        None
    }
}

/// `POST /webhooks/postmark`, when `[bounces]` gives it a secret; no route otherwise.
fn postmark_webhook(cfg: &crate::config::LoadedConfig, store: &crate::store::Store) -> anyhow::Result<axum::Router> {
    let b = &cfg.config.bounces;
    let ctx = crate::channel::BuildCtx::from_env(cfg.base_dir.clone());
    let resolve = |key: &str, s: &Option<crate::config::Secret>, f: &Option<std::path::PathBuf>| -> anyhow::Result<Option<crate::config::SecretString>> {
        match crate::config::pick_secret(s, &f.as_ref().map(|f| cfg.base_dir.join(f))) {
            None => Ok(None),
            Some(s) => ctx.secret("[bounces]", key, Some(s)).map(Some).map_err(|e| InputError(format!("{e:#}")).into()),
        }
    };
    let password = resolve("webhook_password", &b.webhook_password, &b.webhook_password_file)?;
    let path = resolve("webhook_path_secret", &b.webhook_path_secret, &b.webhook_path_secret_file)?;
    if password.is_none() && path.is_none() {
        return Ok(axum::Router::new());
    }
    let intake = std::sync::Arc::new(super::bounces::intake_on(cfg, store.clone())?);
    let state = crate::bounces::webhook::WebhookState::new(intake, b.webhook_user.clone(), password, path).map_err(|e| InputError(format!("{e:#}")))?;
    Ok(crate::bounces::webhook::postmark_routes(state))
}

/// The bounce mailbox poller, when `[bounces] imap_url` is set.
fn bounce_mailbox(cfg: &crate::config::LoadedConfig, store: &crate::store::Store, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<Option<impl std::future::Future<Output = ()> + use<>>> {
    let b = &cfg.config.bounces;
    let (Some(url), Some(user)) = (&b.imap_url, &b.imap_user) else { return Ok(None) };
    let ctx = crate::channel::BuildCtx::from_env(cfg.base_dir.clone());
    let password = ctx
        .secret("[bounces]", "imap_password", crate::config::pick_secret(&b.imap_password, &b.imap_password_file.as_ref().map(|f| cfg.base_dir.join(f))))
        .map_err(|e| InputError(format!("{e:#}")))?;
    let mut settings = crate::bounces::imap::ImapSettings::parse(url, user, password, &b.imap_mailbox, b.imap_done_mailbox.as_deref()).map_err(|e| InputError(format!("{e:#}")))?;
    if let Some(ca) = &b.imap_ca_file {
        settings = settings.with_ca_file(&cfg.base_dir.join(ca)).map_err(|e| InputError(format!("{e:#}")))?;
    }
    let intake = std::sync::Arc::new(super::bounces::intake_on(cfg, store.clone())?);
    Ok(Some(crate::bounces::imap::run(settings, intake, Duration::from_secs(b.poll_secs.max(5)), stop)))
}
