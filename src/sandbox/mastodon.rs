//! The Mastodon fake: `POST /api/v1/statuses` (JSON or form) with the `Idempotency-Key` hour,
//! the in-flight lock (503), `X-RateLimit-*` headers (reset as ISO 8601), 422 validation and
//! 404 for unknown reply targets; plus `verify_credentials` and `/api/v2/instance`
//! (CHANNELS.md §3, §8).
//!
//! The token carries OAuth scopes, checked as Mastodon's controllers do: creating a status
//! needs `write:statuses` (or `write`), `GET /api/v1/accounts/verify_credentials` needs
//! `read:accounts` (or `read`, or `profile`), else `403 "This action is outside the authorized
//! scopes"`; `GET /api/v1/apps/verify_credentials` only needs a valid token. The sandbox token
//! starts with `write:statuses` alone, the least Herald documents.
// Handlers answer refusals as `Err(Response)`: the size is the response, by design.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

use super::fault::{FaultPlan, Served, serve, with_faults};
use crate::render::count::find_urls_with_scheme;

/// The access token the fake accepts.
pub const ACCESS_TOKEN: &str = "sandbox-mastodon-token";
/// The sandbox account's username.
pub const USERNAME: &str = "herald";
/// How long the fake keeps an `Idempotency-Key` (Mastodon: one hour).
pub const KEY_TTL: Duration = Duration::from_secs(3600);

/// One status the fake accepted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MastodonStatus {
    /// The status id.
    pub id: String,
    /// The text as sent.
    pub text: String,
    /// The status it replies to.
    pub in_reply_to_id: Option<String>,
    /// `public`, `unlisted`, `private` or `direct`.
    pub visibility: String,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
}

#[derive(Debug)]
struct MState {
    statuses: Vec<MastodonStatus>,
    next_id: u64,
    keys: HashMap<String, (String, Instant)>,
    in_flight: HashSet<String>,
    create_calls: u32,
    max_characters: usize,
    limit: u32,
    window: Duration,
    window_start: Instant,
    window_used: u32,
    processing_delay: Duration,
    /// Registered apps: client_id → (client_secret, redirect_uris, scopes).
    apps: HashMap<String, (String, String, String)>,
    /// Codes from the authorize step: code → (client_id, redirect_uri, PKCE challenge).
    codes: HashMap<String, (String, String, Option<String>)>,
    scopes: Vec<String>,
}

type Shared = Arc<Mutex<MState>>;

/// A running Mastodon fake.
#[derive(Debug)]
pub struct MastodonFake {
    /// `http://127.0.0.1:<port>`: the channel's `api_base`.
    pub base_url: String,
    /// Faults to inject, consulted before every request.
    pub faults: Arc<FaultPlan>,
    state: Shared,
    _served: Served,
}

impl MastodonFake {
    /// Start the fake with Mastodon's defaults: 500 characters, 300 statuses per 3 hours.
    pub async fn start() -> std::io::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(MState {
            statuses: Vec::new(),
            next_id: 113_000_000_000_000_001,
            keys: HashMap::new(),
            in_flight: HashSet::new(),
            create_calls: 0,
            max_characters: 500,
            limit: 300,
            window: Duration::from_secs(3 * 3600),
            window_start: Instant::now(),
            window_used: 0,
            processing_delay: Duration::ZERO,
            apps: HashMap::new(),
            codes: HashMap::new(),
            scopes: vec!["write:statuses".into()],
        }));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/api/v1/statuses", post(create_status))
            .route("/api/v1/accounts/verify_credentials", get(verify_credentials))
            .route("/api/v1/apps/verify_credentials", get(app_credentials))
            .route("/api/v2/instance", get(instance))
            .route("/api/v1/apps", post(create_app))
            .route("/oauth/authorize", get(oauth_authorize))
            .route("/oauth/token", post(oauth_token))
            .with_state(state.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, state, _served: served })
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, MState> {
        self.state.lock().expect("mastodon fake lock")
    }
    /// Every accepted status, in order.
    pub fn statuses(&self) -> Vec<MastodonStatus> {
        self.lock().statuses.clone()
    }
    /// How many `POST /api/v1/statuses` reached the handler.
    pub fn create_calls(&self) -> u32 {
        self.lock().create_calls
    }
    /// Hold each create this long inside the idempotency lock (to provoke the 503).
    pub fn set_processing_delay(&self, d: Duration) {
        self.lock().processing_delay = d;
    }
    /// Statuses allowed per window.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut s = self.lock();
        s.limit = limit;
        s.window = window;
        s.window_start = Instant::now();
        s.window_used = 0;
    }
    /// The instance's `configuration.statuses.max_characters` (default 500).
    pub fn set_max_characters(&self, n: usize) {
        self.lock().max_characters = n;
    }
    /// The token's scopes, space-separated as Mastodon writes them (default `write:statuses`).
    pub fn set_token_scopes(&self, scopes: &str) {
        self.lock().scopes = scopes.split_whitespace().map(String::from).collect();
    }
    /// Forget every `Idempotency-Key`, as an hour passing would.
    pub fn expire_idempotency_keys(&self) {
        self.lock().keys.clear();
    }
}

/// Mastodon's length: graphemes, each URL as 23, `@user@domain` as `@user`.
pub fn status_length(text: &str) -> usize {
    let mut countable = String::new();
    let mut last = 0;
    for r in find_urls_with_scheme(text) {
        countable.push_str(&text[last..r.start]);
        countable.push_str(&"x".repeat(23));
        last = r.end;
    }
    countable.push_str(&text[last..]);
    let re = regex::Regex::new(r"(^|[^\w/])@(\w+)@[\w.-]+\w").expect("static regex");
    let countable = re.replace_all(&countable, "$1@$2");
    countable.graphemes(true).count()
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

fn roll_window(s: &mut MState) {
    if s.window_start.elapsed() >= s.window {
        s.window_start = Instant::now();
        s.window_used = 0;
    }
}

fn rate_headers(s: &mut MState, res: &mut Response) {
    roll_window(s);
    let left = s.window.saturating_sub(s.window_start.elapsed());
    let reset = chrono::Utc::now() + chrono::Duration::from_std(left).unwrap_or_default();
    let h = res.headers_mut();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = axum::http::HeaderValue::try_from(v) {
            h.insert(k, v);
        }
    };
    put("x-ratelimit-limit", s.limit.to_string());
    put("x-ratelimit-remaining", s.limit.saturating_sub(s.window_used).to_string());
    put("x-ratelimit-reset", reset.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
}

fn account(base: &str) -> Value {
    json!({ "id": "109000000000000001", "username": USERNAME, "acct": USERNAME, "display_name": "Herald Sandbox",
            "url": format!("{base}/@{USERNAME}") })
}

fn entity(st: &MastodonStatus, base: &str) -> Value {
    let escaped = st.text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    json!({
        "id": st.id,
        "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "in_reply_to_id": st.in_reply_to_id,
        "visibility": st.visibility,
        "content": format!("<p>{escaped}</p>"),
        "url": format!("{base}/@{USERNAME}/{}", st.id),
        "uri": format!("{base}/users/{USERNAME}/statuses/{}", st.id),
        "account": account(base),
        "media_attachments": [],
    })
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response()
}

/// Scopes an app may ask for (Mastodon's list, abridged to what a client like Herald uses).
const SCOPES: &[&str] = &["read", "write", "push", "profile", "read:accounts", "read:statuses", "write:statuses", "write:media"];

/// `POST /api/v1/apps`: register a client; answers its id and secret.
async fn create_app(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let p = match params(&headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let get = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    if get("client_name").is_empty() || get("redirect_uris").is_empty() {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "error": "Validation failed: Application name can't be blank, Redirect URI can't be blank" }))).into_response();
    }
    let scopes = if get("scopes").is_empty() { "read".to_string() } else { get("scopes") };
    if scopes.split(' ').any(|s| !SCOPES.contains(&s)) {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "error": "Validation failed: Scopes are invalid" }))).into_response();
    }
    let mut s = state.lock().expect("mastodon fake lock");
    let id = format!("sandbox-app-{}", uuid::Uuid::new_v4().simple());
    let secret = format!("sandbox-app-secret-{}", uuid::Uuid::new_v4().simple());
    s.apps.insert(id.clone(), (secret.clone(), get("redirect_uris"), scopes.clone()));
    axum::Json(json!({
        "id": "5", "name": get("client_name"), "website": p.get("website"), "scopes": scopes.split(' ').collect::<Vec<_>>(),
        "redirect_uri": get("redirect_uris"), "redirect_uris": [get("redirect_uris")], "client_id": id, "client_secret": secret,
        "client_secret_expires_at": 0,
    }))
    .into_response()
}

/// `GET /oauth/authorize`: consent, granted at once; redirects with `code` (and `state`).
async fn oauth_authorize(State(state): State<Shared>, axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>) -> Response {
    let mut s = state.lock().expect("mastodon fake lock");
    let client = q.get("client_id").cloned().unwrap_or_default();
    let Some((_, redirects, scopes)) = s.apps.get(&client).cloned() else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed due to unknown client");
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_response_type", "The authorization server does not support this response type.");
    }
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    if !redirects.split('\n').any(|r| r == redirect) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", "The redirect uri included is not valid.");
    }
    let asked = q.get("scope").cloned().unwrap_or_else(|| "read".into());
    if asked.split(' ').any(|a| !scopes.split(' ').any(|g| g == a)) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "The requested scope is invalid, unknown, or malformed.");
    }
    let challenge = q.get("code_challenge").cloned();
    if challenge.is_some() && q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code_challenge_method must be S256");
    }
    let code = format!("sandbox-mastodon-code-{}", uuid::Uuid::new_v4().simple());
    s.codes.insert(code.clone(), (client, redirect.clone(), challenge));
    let Ok(mut to) = url::Url::parse(&redirect) else { return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", "The redirect uri included is not valid.") };
    to.query_pairs_mut().append_pair("code", &code);
    if let Some(st) = q.get("state") {
        to.query_pairs_mut().append_pair("state", st);
    }
    (StatusCode::FOUND, [("location", to.to_string())]).into_response()
}

/// `POST /oauth/token`: the authorization code grant (with the PKCE verifier when a challenge was given).
async fn oauth_token(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let p = match params(&headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let get = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let mut s = state.lock().expect("mastodon fake lock");
    let Some((secret, _, scopes)) = s.apps.get(&get("client_id")).cloned() else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed due to unknown client");
    };
    if get("client_secret") != secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server.");
    }
    let Some((client, redirect, challenge)) = s.codes.remove(&get("code")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.");
    };
    if client != get("client_id") || redirect != get("redirect_uri") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The provided authorization grant does not match the redirection URI used in the authorization request, or was issued to another client.");
    }
    if let Some(c) = challenge {
        use sha2::Digest as _;
        let v = get("code_verifier");
        let computed = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sha2::Sha256::digest(v.as_bytes()));
        if computed != c {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The provided authorization grant is invalid (code verifier).");
        }
    }
    // The sandbox has one token: it now carries the scopes this grant gave.
    s.scopes = scopes.split(' ').map(String::from).collect();
    axum::Json(json!({ "access_token": ACCESS_TOKEN, "token_type": "Bearer", "scope": scopes, "created_at": chrono::Utc::now().timestamp() })).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {ACCESS_TOKEN}"))
}

fn base_of(headers: &HeaderMap) -> String {
    format!("http://{}", headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1"))
}

/// The parameters, from JSON or form data.
fn params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, Value>, Response> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body).map_err(|_| error(StatusCode::BAD_REQUEST, "Error while parsing request body"))?;
        let obj = v.as_object().ok_or_else(|| error(StatusCode::BAD_REQUEST, "Error while parsing request body"))?;
        Ok(obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    } else if ct.starts_with("application/x-www-form-urlencoded") || body.is_empty() {
        Ok(url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect())
    } else {
        Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Content-Type"))
    }
}

async fn create_status(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let base = base_of(&headers);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(String::from);
    let (new, delay) = {
        let mut s = state.lock().expect("mastodon fake lock");
        s.create_calls += 1;
        if !authorized(&headers) {
            return error(StatusCode::UNAUTHORIZED, "The access token is invalid");
        }
        if !has_scope(&s.scopes, &["write", "write:statuses"]) {
            return error(StatusCode::FORBIDDEN, "This action is outside the authorized scopes");
        }
        if let Some(k) = &key {
            if let Some((id, at)) = s.keys.get(k).cloned()
                && at.elapsed() < KEY_TTL
                && let Some(st) = s.statuses.iter().find(|st| st.id == id).cloned()
            {
                let mut res = axum::Json(entity(&st, &base)).into_response();
                rate_headers(&mut s, &mut res);
                return res;
            }
            if s.in_flight.contains(k) {
                // Mastodon::RaceConditionError while another request holds the key's lock.
                return error(StatusCode::SERVICE_UNAVAILABLE, "There was a temporary problem serving your request, please try again");
            }
        }
        roll_window(&mut s);
        if s.window_used >= s.limit {
            let mut res = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            rate_headers(&mut s, &mut res);
            return res;
        }
        let p = match params(&headers, &body) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let text = match p.get("status") {
            Some(Value::String(t)) => t.clone(),
            None | Some(Value::Null) => String::new(),
            Some(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: Text is invalid"),
        };
        if text.trim().is_empty() {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: Text can't be blank");
        }
        let len = status_length(&text);
        if len > s.max_characters {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Validation failed: Text character limit of {} exceeded", s.max_characters),
            );
        }
        let visibility = match p.get("visibility") {
            None | Some(Value::Null) => "public".to_string(),
            Some(Value::String(v)) if ["public", "unlisted", "private", "direct"].contains(&v.as_str()) => v.clone(),
            Some(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: Visibility is not included in the list"),
        };
        let in_reply_to_id = match p.get("in_reply_to_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if s.statuses.iter().any(|st| &st.id == id) => Some(id.clone()),
            Some(_) => return error(StatusCode::NOT_FOUND, "Record not found"),
        };
        if let Some(k) = &key {
            s.in_flight.insert(k.clone());
        }
        s.window_used += 1;
        let id = s.next_id.to_string();
        s.next_id += 1;
        (MastodonStatus { id, text, in_reply_to_id, visibility, idempotency_key: key.clone() }, s.processing_delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().expect("mastodon fake lock");
    if let Some(k) = &key {
        s.in_flight.remove(k);
        s.keys.insert(k.clone(), (new.id.clone(), Instant::now()));
    }
    s.statuses.push(new.clone());
    let mut res = axum::Json(entity(&new, &base)).into_response();
    rate_headers(&mut s, &mut res);
    res
}

async fn verify_credentials(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "The access token is invalid");
    }
    if !has_scope(&state.lock().expect("mastodon fake lock").scopes, &["read", "read:accounts", "profile"]) {
        return error(StatusCode::FORBIDDEN, "This action is outside the authorized scopes");
    }
    axum::Json(account(&base_of(&headers))).into_response()
}

/// `Api::V1::Apps::CredentialsController`: any valid token, whatever its scopes.
async fn app_credentials(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "The access token is invalid");
    }
    axum::Json(json!({"name": "Herald", "website": null, "scopes": ["write:statuses"]})).into_response()
}

fn has_scope(granted: &[String], any_of: &[&str]) -> bool {
    granted.iter().any(|g| any_of.contains(&g.as_str()))
}

async fn instance(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let max = state.lock().expect("mastodon fake lock").max_characters;
    axum::Json(json!({
        "domain": base_of(&headers).trim_start_matches("http://"),
        "title": "Herald sandbox",
        "configuration": { "statuses": { "max_characters": max, "max_media_attachments": 4, "characters_reserved_per_url": 23 } },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::status_length;

    #[test]
    fn urls_count_23_and_remote_mentions_count_as_local() {
        assert_eq!(status_length("hi https://example.com/a/very/long/path/that/goes/on"), 3 + 23);
        assert_eq!(status_length("@alice@example.social hi"), "@alice hi".len());
        assert_eq!(status_length("👩🏽‍💻"), 1);
    }
}
