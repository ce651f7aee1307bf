//! `herald daemon`: the Publish and Deliver workers, the outbox sweeper and the HTTP side
//! (`/healthz`, `/metrics`, `/status`), until SIGTERM or SIGINT. Shutdown stops fetching, lets
//! in-flight deliveries finish (up to 30 s), and hands fetched-but-unstarted jobs back to the
//! queue; a delivery cut off mid-send is reconciled by the next run.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;

use super::{ExitStatus, Globals, InputError};
use crate::cli::DaemonArgs;
use crate::http::{self, HttpState, StatusSource, page};
use crate::jobs::Pipeline;
use crate::jobs::worker::{WorkerOptions, latest_per_channel, run_until, shutdown_signal};
use crate::store::{Store, fmt_ms};

/// `/status` and `/healthz` over Herald's store.
pub struct StoreStatus(pub Store);

#[async_trait]
impl StatusSource for StoreStatus {
    async fn snapshot(&self) -> anyhow::Result<page::Snapshot> {
        let mut ds = latest_per_channel(self.0.list_deliveries(None, &[]).await?);
        ds.reverse(); // newest issue first
        let deliveries = ds
            .into_iter()
            .map(|d| page::DeliveryRow {
                issue: d.issue,
                channel: d.channel,
                revision: d.revision,
                state: d.state,
                attempts: d.attempts,
                remote_url: d.remote_url,
                last_error: d.last_error,
                next_attempt_at: d.next_attempt_at.map(fmt_ms),
            })
            .collect();
        let attempts = self
            .0
            .recent_log(50)
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
            })
            .collect();
        Ok(page::Snapshot { deliveries, attempts, fires: Vec::new() })
    }

    async fn healthy(&self) -> bool {
        self.0.ping().await
    }
}

/// Run `herald daemon`.
pub async fn run(g: &Globals, args: DaemonArgs) -> anyhow::Result<ExitStatus> {
    let cfg = Arc::new(g.load_config()?);
    let hc = &cfg.config.http;
    let addr: SocketAddr = hc.listen.parse().map_err(|_| InputError(format!("[http] listen = \"{}\" is not an address like 127.0.0.1:8025", hc.listen)))?;
    let token_file = hc.token_file.as_ref().map(|f| cfg.resolve_path(f));
    let token = match crate::config::pick_secret(&hc.token, &token_file) {
        Some(s) => Some(s.resolve().map_err(|e| InputError(format!("[http] token: {e}")))?),
        None => None,
    };
    http::check_listen(&addr, token.as_ref()).map_err(InputError)?;
    let p = Arc::new(Pipeline::open(cfg.clone()).await?);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = http::router(HttpState { token, status: Arc::new(StoreStatus(p.store.clone())) }, axum::Router::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let mut rx = stop_rx;
        let shutdown = async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        if let Err(e) = http::serve(listener, app, shutdown).await {
            tracing::error!(error = %e, "HTTP server stopped.");
        }
    });
    tracing::info!(store = %p.store.url().display(), listen = %bound, concurrency = args.concurrency, "Daemon started.");
    let opts = WorkerOptions { concurrency: args.concurrency.max(1), ..WorkerOptions::default() };
    let res = run_until(p.clone(), opts, shutdown_signal()).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    p.close().await;
    res?;
    tracing::info!("Daemon stopped.");
    Ok(ExitStatus::Success)
}
