//! `POST /webhooks/postmark` on the daemon: Postmark's Bounce, SpamComplaint and
//! SubscriptionChange webhooks into the suppression list.
//!
//! Protected by HTTP basic auth (Postmark's webhook URL carries `https://user:password@host/…`)
//! and/or a secret path segment (`/webhooks/postmark/<secret>`), both from `[bounces]`. A wrong
//! or missing secret answers 401 and changes nothing; neither secret is ever logged.
//!
//! Answers: 200 when recorded (or for a record type Herald does not take, so Postmark stops
//! retrying it), 400 for a body that is not a Postmark record, 500 when the store failed
//! (Postmark retries).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;

use super::Source;
use super::intake::Intake;
use super::postmark::{PostmarkError, parse_webhook};
use crate::config::SecretString;

/// What the route needs.
#[derive(Clone)]
pub struct WebhookState {
    intake: Arc<Intake>,
    user: String,
    password: Option<SecretString>,
    path_secret: Option<SecretString>,
}

impl WebhookState {
    /// At least one of `password` and `path_secret` must be set.
    pub fn new(intake: Arc<Intake>, user: String, password: Option<SecretString>, path_secret: Option<SecretString>) -> anyhow::Result<Self> {
        anyhow::ensure!(password.is_some() || path_secret.is_some(), "[bounces]: set `webhook_password` or `webhook_path_secret` to receive Postmark webhooks");
        if let Some(p) = &path_secret {
            anyhow::ensure!(p.expose().len() >= 16 && p.expose().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "[bounces] `webhook_path_secret`: at least 16 characters of [A-Za-z0-9_-] (e.g. `openssl rand -hex 24`)");
        }
        Ok(Self { intake, user, password, path_secret })
    }
}

/// The routes.
pub fn postmark_routes(state: WebhookState) -> Router {
    Router::new().route("/webhooks/postmark", post(plain)).route("/webhooks/postmark/{secret}", post(with_path)).with_state(state)
}

/// Equal, in time that depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn basic_ok(s: &WebhookState, headers: &HeaderMap) -> bool {
    let Some(pw) = &s.password else { return false };
    let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(b64) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) else { return false };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else { return false };
    let Some(colon) = raw.iter().position(|&b| b == b':') else { return false };
    ct_eq(&raw[..colon], s.user.as_bytes()) & ct_eq(&raw[colon + 1..], pw.expose().as_bytes())
}

fn unauthorized() -> Response {
    tracing::warn!("Refused a Postmark webhook with a wrong or missing secret.");
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"herald\"")], "unauthorized\n").into_response()
}

async fn plain(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    if !basic_ok(&s, &headers) {
        return unauthorized();
    }
    handle(&s, &body).await
}

async fn with_path(State(s): State<WebhookState>, Path(secret): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let path_ok = s.path_secret.as_ref().is_some_and(|p| ct_eq(secret.as_bytes(), p.expose().as_bytes()));
    // With both configured, both are required.
    if !path_ok || (s.password.is_some() && !basic_ok(&s, &headers)) {
        return unauthorized();
    }
    handle(&s, &body).await
}

async fn handle(s: &WebhookState, body: &[u8]) -> Response {
    let report = match parse_webhook(body) {
        Ok(r) => r,
        Err(PostmarkError::RecordType(t)) => {
            tracing::debug!(record_type = %t, "Ignored a Postmark webhook Herald does not take.");
            return (StatusCode::OK, "ignored\n").into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "Refused a Postmark webhook body.");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    match s.intake.postmark(&report, Source::PostmarkWebhook).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Could not record a Postmark webhook; Postmark will retry.");
            (StatusCode::INTERNAL_SERVER_ERROR, "try again\n").into_response()
        }
    }
}
