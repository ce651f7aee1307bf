//! The daemon's HTTP side: `/healthz`, `/metrics`, a read-only `/status` page, and whatever
//! public routes the caller mounts (the email unsubscribe routes).
//!
//! Beyond loopback, every route except health and the public ones needs `Authorization: Bearer
//! <[http] token>`; the daemon refuses to start listening publicly without a token.

pub mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::config::SecretString;

/// Where `/status` and `/healthz` get their answers (the daemon implements it over the store).
#[async_trait]
pub trait StatusSource: Send + Sync {
    /// The status page's rows (its first page).
    async fn snapshot(&self) -> anyhow::Result<page::Snapshot>;
    /// The rows of the page `q` asks for. By default, [`StatusSource::snapshot`].
    async fn snapshot_page(&self, q: page::Query) -> anyhow::Result<page::Snapshot> {
        let _ = q;
        self.snapshot().await
    }
    /// True when the store answers.
    async fn healthy(&self) -> bool;
    /// What is wrong, for `/healthz`: None when healthy. By default, the store.
    async fn problem(&self) -> Option<String> {
        (!self.healthy().await).then(|| "store unavailable".to_string())
    }
}

/// Shared state of the routes.
#[derive(Clone)]
pub struct HttpState {
    /// Bearer token for the protected routes (required when listening beyond loopback).
    pub token: Option<SecretString>,
    /// Status rows.
    pub status: Arc<dyn StatusSource>,
}

/// True when `addr` can be reached from other machines.
pub fn is_public(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// The shortest `[http] token` accepted on a listener beyond loopback, in characters.
pub const MIN_PUBLIC_TOKEN_CHARS: usize = 32;

/// Check the listen address and token together: a public listener must have a token of at
/// least [`MIN_PUBLIC_TOKEN_CHARS`] characters (trailing whitespace, as a file leaves it, aside).
pub fn check_listen(addr: &SocketAddr, token: Option<&SecretString>) -> Result<(), String> {
    if !is_public(addr) {
        return Ok(());
    }
    match token.map(|t| t.expose().trim_end().chars().count()) {
        None => Err(format!(
            "[http] listen = \"{addr}\" is reachable beyond loopback, so `[http] token` (or token_file) is required to protect /metrics and /status"
        )),
        Some(n) if n < MIN_PUBLIC_TOKEN_CHARS => Err(format!(
            "[http] token is {n} characters long; a listener beyond loopback (\"{addr}\") needs at least {MIN_PUBLIC_TOKEN_CHARS} (hint: generate one with `openssl rand -hex 32`)"
        )),
        Some(_) => Ok(()),
    }
}

/// Build the router. `public` routes (unsubscribe) are mounted without auth.
pub fn router(state: HttpState, public: Router) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status_page))
        .route("/status.json", get(status_json))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state.clone());
    Router::new().route("/healthz", get(healthz)).with_state(state).merge(protected).merge(public)
}

async fn healthz(State(s): State<HttpState>) -> Response {
    match s.status.problem().await {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        crate::metrics::global().encode(),
    )
        .into_response()
}

async fn status_page(State(s): State<HttpState>, RawQuery(q): RawQuery) -> Response {
    match s.status.snapshot_page(page::Query::parse(q.as_deref())).await {
        Ok(snap) => Html(page::render(&snap)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status unavailable: {e}")).into_response(),
    }
}

async fn status_json(State(s): State<HttpState>, RawQuery(q): RawQuery) -> Response {
    match s.status.snapshot_page(page::Query::parse(q.as_deref())).await {
        Ok(snap) => axum::Json(snap).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status unavailable: {e}")).into_response(),
    }
}

async fn require_token(State(s): State<HttpState>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let Some(token) = &s.token else { return next.run(req).await };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.expose().as_bytes()) => next.run(req).await,
        _ => (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a bearer token is required\n").into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bounds on the public listener, so slow or idle clients can neither pile up nor hold the
/// daemon open at shutdown.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A client must send a request's whole header within this time, and an idle keep-alive
    /// connection is closed after it.
    pub header_read_timeout: Duration,
    /// A request (with its body) must be read and answered within this time: 408 after it.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// At shutdown, open connections get this long to finish, then they are dropped.
    pub drain: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
            drain: Duration::from_secs(3),
        }
    }
}

/// Serve until `shutdown` resolves, with the default [`ServeLimits`].
pub async fn serve(listener: tokio::net::TcpListener, app: Router, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, ServeLimits::default()).await
}

/// Serve HTTP/1.1 until `shutdown` resolves: each connection gets the header-read timeout and
/// the request timeout, at most `max_connections` are served at once, and at shutdown open
/// connections are asked to close and dropped after `drain`. Returns once every connection is
/// gone, so the daemon's exit never waits on a client.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let app = app.layer(middleware::from_fn_with_state(limits.request_timeout, request_deadline));
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a slot before accepting: beyond the cap, clients wait in the kernel's backlog
        // and cost this process no descriptor.
        let permit = tokio::select! {
            _ = shutdown.as_mut() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = shutdown.as_mut() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or a connection reset before accept: wait a little.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        let drain = limits.drain;
        let header_read_timeout = limits.header_read_timeout;
        conns.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).max_buf_size(64 * 1024);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(drain, conn.as_mut()).await;
                }
            }
        });
        // Reap finished connections as we go, so the set stays as small as what is open.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection closes within `drain` of the signal; the margin covers the scheduling.
    let all = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain + Duration::from_millis(500), all).await.is_err() {
        conns.abort_all();
    }
    Ok(())
}

/// Answer 408 when a request (reading its body included) outlives the request timeout.
async fn request_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], "request timed out\n").into_response(),
    }
}
