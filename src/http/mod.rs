//! The daemon's HTTP side: `/healthz`, `/metrics`, a read-only `/status` page, and whatever
//! public routes the caller mounts (the email unsubscribe routes).
//!
//! Beyond loopback, every route except health and the public ones needs `Authorization: Bearer
//! <[http] token>`; the daemon refuses to start listening publicly without a token.

pub mod page;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::config::SecretString;

/// Where `/status` and `/healthz` get their answers (the daemon implements it over the store).
#[async_trait]
pub trait StatusSource: Send + Sync {
    /// The status page's rows.
    async fn snapshot(&self) -> anyhow::Result<page::Snapshot>;
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

async fn status_page(State(s): State<HttpState>) -> Response {
    match s.status.snapshot().await {
        Ok(snap) => Html(page::render(&snap)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status unavailable: {e}")).into_response(),
    }
}

async fn status_json(State(s): State<HttpState>) -> Response {
    match s.status.snapshot().await {
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

/// Serve until `shutdown` resolves.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
