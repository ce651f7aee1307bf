//! One-click unsubscribe over HTTP (RFC 8058), as an axum router the daemon mounts:
//!
//! - `POST /unsubscribe/{token}`: the mail client's one-click request (body
//!   `List-Unsubscribe=One-Click`, no cookies) or the confirmation page's button. Adds the
//!   address to the suppression list and answers 200 with a short page, never a redirect.
//! - `GET /unsubscribe/{token}`: a confirmation page with a button. A GET never unsubscribes:
//!   mail scanners prefetch links.
//!
//! A token that does not verify answers 400; a genuine token for an address that is neither
//! subscribed nor suppressed answers 404. Neither changes anything.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::ledger::{SuppressionList, Unsubscribed};
use super::merge::escape_html;
use super::token::{Subject, TokenKey, verify_token};
use crate::channel::BuildCtx;
use crate::config::{ChannelConfig, LoadedConfig};

/// The suppression reason recorded for a one-click unsubscribe.
pub const REASON: &str = "unsubscribed (one-click)";

/// What the routes need: the keys that sign tokens, and the list to write to.
#[derive(Clone)]
pub struct UnsubscribeState {
    keys: Arc<Vec<TokenKey>>,
    list: Arc<dyn SuppressionList>,
}

impl UnsubscribeState {
    /// Tokens are accepted when any of `keys` signed them.
    pub fn new(keys: Vec<TokenKey>, list: Arc<dyn SuppressionList>) -> Self {
        Self { keys: Arc::new(keys), list }
    }
}

/// The signing keys of every `email` and `email_api` channel in the config.
pub fn keys_from_config(cfg: &LoadedConfig, ctx: &BuildCtx) -> anyhow::Result<Vec<TokenKey>> {
    let mut keys = Vec::new();
    for (name, ch) in &cfg.config.channels {
        match ch {
            ChannelConfig::Email(c) => keys.push(super::unsubscribe_key(name, c.unsubscribe_secret.as_ref(), c.unsubscribe_secret_file.as_ref(), ctx)?),
            ChannelConfig::EmailApi(c) => keys.push(super::unsubscribe_key(name, c.unsubscribe_secret.as_ref(), c.unsubscribe_secret_file.as_ref(), ctx)?),
            _ => {}
        }
    }
    Ok(keys)
}

/// The router: `GET` and `POST /unsubscribe/{token}`.
pub fn unsubscribe_routes(state: UnsubscribeState) -> Router {
    Router::new().route("/unsubscribe/{token}", get(confirm_page).post(one_click)).with_state(state)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape_html(title)
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    r
}

fn invalid() -> Response {
    page(StatusCode::BAD_REQUEST, "Invalid unsubscribe link", "<p>This link is not valid. Use the link from the most recent email, unchanged.</p>")
}

/// The address a genuine token names: in the token itself (first form) or by the subscriber's
/// id (opaque form). `Err` is the page to answer with.
async fn address(s: &UnsubscribeState, token: &str) -> Result<String, Response> {
    match verify_token(&s.keys, token) {
        None => {
            tracing::info!("Refused an unsubscribe with an invalid token.");
            Err(invalid())
        }
        Some(Subject::Address(a)) => Ok(a),
        Some(Subject::Subscriber(id)) => match s.list.subscriber_email(id).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(not_subscribed()),
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "Could not look up the subscriber of an unsubscribe link.");
                Err(try_again())
            }
        },
    }
}

fn not_subscribed() -> Response {
    page(StatusCode::NOT_FOUND, "Not subscribed", "<p>This address is not on the list.</p>")
}

fn try_again() -> Response {
    page(StatusCode::SERVICE_UNAVAILABLE, "Please try again", "<p>Your request could not be saved just now. Please try again in a minute.</p>")
}

async fn confirm_page(State(s): State<UnsubscribeState>, Path(token): Path<String>) -> Response {
    let addr = match address(&s, &token).await {
        Ok(a) => a,
        Err(page) => return page,
    };
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop sending the newsletter to <strong>{}</strong>?</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            escape_html(&addr)
        ),
    )
}

async fn one_click(State(s): State<UnsubscribeState>, Path(token): Path<String>) -> Response {
    let addr = match address(&s, &token).await {
        Ok(a) => a,
        Err(page) => return page,
    };
    match s.list.unsubscribe(&addr, REASON).await {
        Ok(Unsubscribed::Now) => {
            tracing::info!(email = %addr, "Unsubscribed.");
            done(&addr)
        }
        Ok(Unsubscribed::Already) => done(&addr),
        Ok(Unsubscribed::Unknown) => not_subscribed(),
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "Unsubscribe could not be stored.");
            try_again()
        }
    }
}

fn done(addr: &str) -> Response {
    page(StatusCode::OK, "Unsubscribed", &format!("<p><strong>{}</strong> will receive no more emails from this list.</p>", escape_html(addr)))
}
