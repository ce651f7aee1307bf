//! The X API v2 fake: `POST /2/tweets`, the user timeline, `/2/users/me` and the OAuth 2.0
//! refresh grant, checked by X's rules (CHANNELS.md §1, §8).
//!
//! It accepts the fixed sandbox credentials below (OAuth 2.0 bearer or OAuth 1.0a signed),
//! checks the `CreatePostsRequest` schema (no unknown fields), the weighted length, reply
//! targets and duplicate text, keeps a 15-minute rate-limit window with `x-rate-limit-*`
//! headers, and answers in X's shapes (201 `{"data":{…}}`, problem+json errors).
// Handlers answer refusals as `Err(Response)`: the size is the response, by design.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};
use crate::channel::x::oauth1;
use crate::render::count::{Network, find_urls};

/// The OAuth 2.0 user access token the fake accepts at start.
pub const ACCESS_TOKEN: &str = "sandbox-x-access-token";
/// The OAuth 2.0 refresh token the fake accepts at start.
pub const REFRESH_TOKEN: &str = "sandbox-x-refresh-token";
/// The OAuth 2.0 client id the refresh grant requires.
pub const CLIENT_ID: &str = "sandbox-x-client-id";
/// The client secret of the app when the fake plays a confidential client
/// ([`XFake::set_confidential`]).
pub const CLIENT_SECRET: &str = "sandbox-x-client-secret";
/// The scopes `herald connect x` must ask for.
pub const SCOPES: &[&str] = &["tweet.read", "tweet.write", "users.read", "offline.access"];
/// The OAuth 1.0a consumer key.
pub const CONSUMER_KEY: &str = "sandbox-x-consumer-key";
/// The OAuth 1.0a consumer secret.
pub const CONSUMER_SECRET: &str = "sandbox-x-consumer-secret";
/// The OAuth 1.0a access token.
pub const OAUTH1_TOKEN: &str = "1900000000000000001-sandboxtoken";
/// The OAuth 1.0a access token secret.
pub const OAUTH1_TOKEN_SECRET: &str = "sandbox-x-token-secret";
/// The sandbox account's user id.
pub const USER_ID: &str = "1900000000000000001";
/// The sandbox account's username.
pub const USERNAME: &str = "herald_sandbox";

/// One post the fake accepted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct XPost {
    /// The post id.
    pub id: String,
    /// The text as sent.
    pub text: String,
    /// The post it replies to.
    pub in_reply_to: Option<String>,
    /// When it was accepted.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `oauth2` or `oauth1`: how the request was authorised.
    pub auth: &'static str,
}

#[derive(Debug)]
struct XState {
    posts: Vec<XPost>,
    next_id: u64,
    access_token: String,
    refresh_token: String,
    refreshes: u32,
    token_calls: u32,
    client_secret: Option<String>,
    /// Authorization codes issued by the authorize step: code → (challenge, redirect_uri, scope, issued).
    codes: std::collections::HashMap<String, (String, String, String, Instant)>,
    create_calls: u32,
    limit: u32,
    window: Duration,
    window_start: Instant,
    window_used: u32,
    reject_replies: bool,
    reply_refusal: String,
}

/// X's refusals of a programmatic reply, as X has worded them (CHANNELS.md §1; the second from
/// gptme-contrib#1302, 2026-07). [`XFake::set_reply_refusal`] picks one.
pub const REPLY_REFUSALS: [&str; 2] = [
    "Reply to this conversation is not allowed because you have not been mentioned or otherwise engaged by the author of the post you are replying to.",
    "You can only reply to or quote posts where you are mentioned or are the author.",
];

type Shared = Arc<Mutex<XState>>;

/// A running X fake.
#[derive(Debug)]
pub struct XFake {
    /// `http://127.0.0.1:<port>`: the channel's `api_base`.
    pub base_url: String,
    /// Faults to inject, consulted before every request.
    pub faults: Arc<FaultPlan>,
    state: Shared,
    _served: Served,
}

impl XFake {
    /// Start the fake on `127.0.0.1:0` with the sandbox credentials and X's default limit
    /// (100 posts per 15 minutes).
    pub async fn start() -> std::io::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(XState {
            posts: Vec::new(),
            next_id: 1_445_880_548_472_328_192,
            access_token: ACCESS_TOKEN.into(),
            refresh_token: REFRESH_TOKEN.into(),
            refreshes: 0,
            token_calls: 0,
            client_secret: None,
            codes: Default::default(),
            create_calls: 0,
            limit: 100,
            window: Duration::from_secs(15 * 60),
            window_start: Instant::now(),
            window_used: 0,
            reject_replies: false,
            reply_refusal: REPLY_REFUSALS[0].into(),
        }));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/2/tweets", post(create_post))
            .route("/2/users/me", get(users_me))
            .route("/2/users/{id}/tweets", get(user_tweets))
            .route("/2/oauth2/token", post(token))
            .route("/i/oauth2/authorize", get(authorize_step))
            .with_state(state.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, state, _served: served })
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, XState> {
        self.state.lock().expect("x fake lock")
    }
    /// Every accepted post, in order.
    pub fn posts(&self) -> Vec<XPost> {
        self.lock().posts.clone()
    }
    /// How many `POST /2/tweets` requests reached the handler (accepted or refused).
    pub fn create_calls(&self) -> u32 {
        self.lock().create_calls
    }
    /// How many refresh grants succeeded.
    pub fn refreshes(&self) -> u32 {
        self.lock().refreshes
    }
    /// How many requests reached the token endpoint (granted or refused).
    pub fn token_calls(&self) -> u32 {
        self.lock().token_calls
    }
    /// Play a confidential client ("Web App, Automated App or bot"): the token endpoint then
    /// requires `Authorization: Basic base64(client_id:client_secret)`.
    pub fn set_confidential(&self, secret: Option<&str>) {
        self.lock().client_secret = secret.map(String::from);
    }
    /// The refresh token the fake would accept now.
    pub fn current_refresh_token(&self) -> String {
        self.lock().refresh_token.clone()
    }
    /// The access token the fake would accept now.
    pub fn current_access_token(&self) -> String {
        self.lock().access_token.clone()
    }
    /// Expire the current access token (a new one is only obtainable by refreshing).
    pub fn expire_access_token(&self) {
        self.lock().access_token = format!("expired-{}", oauth1::nonce());
    }
    /// Posts allowed per rate-limit window.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut s = self.lock();
        s.limit = limit;
        s.window = window;
        s.window_start = Instant::now();
        s.window_used = 0;
    }
    /// Refuse replies with 403, as X does on tiers where the "summon" rule applies.
    pub fn set_reject_replies(&self, reject: bool) {
        self.lock().reject_replies = reject;
    }
    /// Refuse replies with 403 and this `detail` (one of [`REPLY_REFUSALS`], or any wording).
    pub fn set_reply_refusal(&self, detail: &str) {
        let mut s = self.lock();
        s.reject_replies = true;
        s.reply_refusal = detail.to_string();
    }
}

fn problem(status: StatusCode, title: &str, detail: &str, kind: &str) -> Response {
    let body = json!({ "title": title, "detail": detail, "type": kind, "status": status.as_u16() });
    (status, [("content-type", "application/problem+json")], body.to_string()).into_response()
}

fn invalid(detail: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, "Invalid Request", detail, "https://api.x.com/2/problems/invalid-request")
}

fn unauthorized() -> Response {
    problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized", "about:blank")
}

/// Check the request's credentials; returns which flavour was used.
fn authorize(s: &XState, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<&'static str, Response> {
    let value = headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return if token == s.access_token { Ok("oauth2") } else { Err(unauthorized()) };
    }
    let fields = oauth1::parse_header(value).ok_or_else(unauthorized)?;
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("oauth_consumer_key") != Some(CONSUMER_KEY)
        || get("oauth_token") != Some(OAUTH1_TOKEN)
        || get("oauth_signature_method") != Some("HMAC-SHA1")
        || get("oauth_nonce").is_none_or(str::is_empty)
    {
        return Err(unauthorized());
    }
    let ts: i64 = get("oauth_timestamp").and_then(|t| t.parse().ok()).ok_or_else(unauthorized)?;
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return Err(unauthorized());
    }
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    let url = url::Url::parse(&format!("http://{host}{uri}")).map_err(|_| unauthorized())?;
    let (base_url, mut params) = oauth1::split_url(&url);
    params.extend(fields.iter().filter(|(k, _)| k != "oauth_signature").cloned());
    let expected = oauth1::sign(&oauth1::base_string(method.as_str(), &base_url, &params), CONSUMER_SECRET, OAUTH1_TOKEN_SECRET);
    if get("oauth_signature") == Some(expected.as_str()) { Ok("oauth1") } else { Err(unauthorized()) }
}

/// Distinct cashtags in a post, by twitter-text's rule written out here (not Herald's
/// counter): `$` after the start or a space, 1–6 letters, optionally `.`/`_` and 1–2 letters,
/// then the end, a space or punctuation.
fn cashtags(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"(?i)(?:^|\s)[$＄]([a-z]{1,6}(?:[._][a-z]{1,2})?)(?:$|[\s\p{P}])").expect("static regex");
    let mut out: Vec<String> = Vec::new();
    // Matches may share the space between them: scan from each match's tag end.
    let mut at = 0;
    while let Some(c) = re.captures_at(text, at) {
        let (Some(m), Some(tag)) = (c.get(0), c.get(1)) else { break };
        let t = format!("${}", tag.as_str().to_ascii_uppercase());
        if !out.contains(&t) {
            out.push(t);
        }
        at = tag.end().max(m.start() + 1);
    }
    out
}

/// X rewrites every link to a t.co link of 23 characters.
fn tco(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut out = String::new();
    let mut last = 0;
    for r in find_urls(text) {
        out.push_str(&text[last..r.start]);
        let h = hex::encode(Sha256::digest(&text.as_bytes()[r.clone()]));
        out.push_str(&format!("https://t.co/{}", &h[..10]));
        last = r.end;
    }
    out.push_str(&text[last..]);
    out
}

fn rate_headers(s: &mut XState) -> [(String, String); 3] {
    if s.window_start.elapsed() >= s.window {
        s.window_start = Instant::now();
        s.window_used = 0;
    }
    let reset = chrono::Utc::now().timestamp() + (s.window.saturating_sub(s.window_start.elapsed())).as_secs() as i64 + 1;
    [
        ("x-rate-limit-limit".into(), s.limit.to_string()),
        ("x-rate-limit-remaining".into(), s.limit.saturating_sub(s.window_used).to_string()),
        ("x-rate-limit-reset".into(), reset.to_string()),
    ]
}

fn with_headers(mut res: Response, headers: [(String, String); 3]) -> Response {
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::try_from(k), axum::http::HeaderValue::try_from(v)) {
            res.headers_mut().insert(k, v);
        }
    }
    res
}

const CREATE_FIELDS: &[&str] = &[
    "text", "reply", "media", "quote_tweet_id", "reply_settings", "poll", "geo", "card_uri", "community_id",
    "nullcast", "for_super_followers_only", "made_with_ai", "paid_partnership", "edit_options",
    "direct_message_deep_link", "share_with_followers",
];
const REPLY_FIELDS: &[&str] = &["in_reply_to_tweet_id", "exclude_reply_user_ids", "auto_populate_reply_metadata"];

async fn create_post(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().expect("x fake lock");
    s.create_calls += 1;
    let auth = match authorize(&s, &method, &uri, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let rl = rate_headers(&mut s);
    if s.window_used >= s.limit {
        let res = problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "Too Many Requests", "about:blank");
        return with_headers(res, rl);
    }
    s.window_used += 1;
    let rl = rate_headers(&mut s);
    let res = match check_create(&s, &headers, &body) {
        Err(r) => r,
        Ok((text, in_reply_to)) => {
            if in_reply_to.is_some() && s.reject_replies {
                problem(StatusCode::FORBIDDEN, "Forbidden", &s.reply_refusal, "about:blank")
            } else if s.posts.iter().any(|p| p.text == text) {
                problem(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "You are not allowed to create a Tweet with duplicate content.",
                    "about:blank",
                )
            } else {
                let id = s.next_id.to_string();
                s.next_id += 1;
                s.posts.push(XPost { id: id.clone(), text: text.clone(), in_reply_to, created_at: chrono::Utc::now(), auth });
                let data = json!({ "data": { "id": id, "text": tco(&text), "edit_history_post_ids": [id] } });
                (StatusCode::CREATED, axum::Json(data)).into_response()
            }
        }
    };
    with_headers(res, rl)
}

/// Check a `CreatePostsRequest`; returns the text and the reply target.
fn check_create(s: &XState, headers: &HeaderMap, body: &[u8]) -> Result<(String, Option<String>), Response> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(invalid("Content-Type must be application/json"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| invalid(&format!("Request body is not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| invalid("Request body must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
        return Err(invalid(&format!("[{k}] is not one of [{}]", CREATE_FIELDS.join(","))));
    }
    let text = match obj.get("text") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(invalid("$.text: string expected")),
        None => String::new(),
    };
    if text.is_empty() && obj.get("media").is_none() {
        return Err(invalid("Post text or media is required"));
    }
    if let Err(e) = Network::X.check(&text) {
        return Err(invalid(&format!("Post text is too long: {}", e.message)));
    }
    let tags = cashtags(&text);
    if tags.len() > 1 {
        // X allows one cashtag per post; the exact wording of its refusal is [unverified].
        return Err(invalid(&format!("Posts may contain only one cashtag; found {}", tags.join(", "))));
    }
    let in_reply_to = match obj.get("reply") {
        None => None,
        Some(Value::Object(r)) => {
            if let Some(k) = r.keys().find(|k| !REPLY_FIELDS.contains(&k.as_str())) {
                return Err(invalid(&format!("$.reply: [{k}] is not allowed")));
            }
            let id = r
                .get("in_reply_to_tweet_id")
                .and_then(|i| i.as_str())
                .ok_or_else(|| invalid("$.reply.in_reply_to_tweet_id is required"))?;
            if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("$.reply.in_reply_to_tweet_id must match ^[0-9]{1,19}$"));
            }
            if !s.posts.iter().any(|p| p.id == id) {
                return Err(invalid("The post you are replying to does not exist or has been deleted"));
            }
            Some(id.to_string())
        }
        Some(_) => return Err(invalid("$.reply must be an object")),
    };
    Ok((text, in_reply_to))
}

async fn users_me(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let s = state.lock().expect("x fake lock");
    if let Err(r) = authorize(&s, &method, &uri, &headers) {
        return r;
    }
    axum::Json(json!({ "data": { "id": USER_ID, "name": "Herald Sandbox", "username": USERNAME } })).into_response()
}

async fn user_tweets(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let s = state.lock().expect("x fake lock");
    if let Err(r) = authorize(&s, &method, &uri, &headers) {
        return r;
    }
    if id != USER_ID {
        return problem(StatusCode::NOT_FOUND, "Not Found Error", "Could not find user", "https://api.x.com/2/problems/resource-not-found");
    }
    let max: usize = match q.get("max_results").map(|m| m.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (5..=100).contains(&n) => n,
        _ => return invalid("The `max_results` query parameter value is not between 5 and 100"),
    };
    let fields = q.get("tweet.fields").cloned().unwrap_or_default();
    let fields: Vec<&str> = fields.split(',').collect();
    let data: Vec<Value> = s
        .posts
        .iter()
        .rev()
        .take(max)
        .map(|p| {
            // The v2 API gives text HTML-escaped, with links as t.co.
            let text = tco(&p.text).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            let mut v = json!({ "id": p.id, "text": text, "edit_history_tweet_ids": [p.id] });
            if fields.contains(&"created_at") {
                v["created_at"] = json!(p.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            }
            if fields.contains(&"referenced_tweets")
                && let Some(r) = &p.in_reply_to
            {
                v["referenced_tweets"] = json!([{ "type": "replied_to", "id": r }]);
            }
            v
        })
        .collect();
    let meta = json!({
        "result_count": data.len(),
        "newest_id": data.first().map(|d| d["id"].clone()),
        "oldest_id": data.last().map(|d| d["id"].clone()),
    });
    if data.is_empty() {
        return axum::Json(json!({ "meta": { "result_count": 0 } })).into_response();
    }
    axum::Json(json!({ "data": data, "meta": meta })).into_response()
}

/// `GET /i/oauth2/authorize`: the consent page. The fake stands in for the author approving
/// at once and redirects to `redirect_uri` with `code` and `state`, after checking the request
/// as X does: `response_type=code`, the app's client id, a loopback or https callback, the
/// scopes, and a PKCE `S256` challenge.
async fn authorize_step(State(state): State<Shared>, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let bad = |d: &str| (StatusCode::BAD_REQUEST, format!("Something went wrong: {d}")).into_response();
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad("response_type must be code");
    }
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return bad("unknown client_id");
    }
    let Some(redirect) = q.get("redirect_uri").and_then(|r| url::Url::parse(r).ok()) else { return bad("redirect_uri is required") };
    if !(redirect.scheme() == "https" || redirect.host_str() == Some("127.0.0.1") || redirect.host_str() == Some("localhost")) {
        return bad("redirect_uri does not match the app's callback URLs");
    }
    let scope = q.get("scope").cloned().unwrap_or_default();
    if scope.split(' ').any(|s| !["tweet.read", "tweet.write", "users.read", "offline.access", "follows.read", "like.write"].contains(&s)) || scope.is_empty() {
        return bad("invalid scope");
    }
    let Some(challenge) = q.get("code_challenge").filter(|c| c.len() >= 43) else { return bad("code_challenge is required") };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return bad("code_challenge_method must be S256");
    }
    let Some(st) = q.get("state").filter(|s| !s.is_empty()) else { return bad("state is required") };
    let code = format!("sandbox-x-code-{}", oauth1::nonce());
    state.lock().expect("x fake lock").codes.insert(code.clone(), (challenge.clone(), redirect.to_string(), scope, Instant::now()));
    let mut to = redirect;
    to.query_pairs_mut().append_pair("state", st).append_pair("code", &code);
    (StatusCode::FOUND, [("location", to.to_string())]).into_response()
}

/// `POST /2/oauth2/token`: the `authorization_code` grant (with the PKCE verifier) and the
/// `refresh_token` grant. Refresh tokens are single use: each grant returns a new one and the
/// old one answers 400 `invalid_request`. A confidential client must authenticate with Basic
/// auth; a public one names its `client_id` in the body.
async fn token(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().expect("x fake lock");
    s.token_calls += 1;
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return invalid("Content-Type must be application/x-www-form-urlencoded");
    }
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let bad = |d: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "invalid_request", "error_description": d }))).into_response()
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match &s.client_secret {
        Some(secret) => {
            if basic.as_deref() != Some(format!("{CLIENT_ID}:{secret}").as_str()) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({ "error": "unauthorized_client", "error_description": "Missing valid authorization header" })),
                )
                    .into_response();
            }
        }
        None => {
            if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
                return bad("Missing required parameter [client_id].");
            }
        }
    }
    let scope = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            if form.get("refresh_token") != Some(&s.refresh_token) {
                return bad("Value passed for the token was invalid.");
            }
            "tweet.write users.read tweet.read offline.access".to_string()
        }
        Some("authorization_code") => {
            let Some((challenge, redirect, scope, issued)) = form.get("code").and_then(|c| s.codes.remove(c)) else {
                return bad("Value passed for the authorization code was invalid.");
            };
            if issued.elapsed() > Duration::from_secs(30) {
                return bad("Value passed for the authorization code was invalid.");
            }
            if form.get("redirect_uri") != Some(&redirect) {
                return bad("Value passed for the redirect uri did not match the uri of the authorization code.");
            }
            use sha2::{Digest, Sha256};
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let computed = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, Sha256::digest(verifier.as_bytes()));
            if computed != challenge {
                return bad("Value passed for the code verifier did not match the code challenge.");
            }
            scope
        }
        _ => return bad("Missing or unsupported grant_type"),
    };
    s.access_token = format!("sandbox-x-access-{}", oauth1::nonce());
    let offline = scope.split(' ').any(|x| x == "offline.access");
    s.refresh_token = format!("sandbox-x-refresh-{}", oauth1::nonce());
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        s.refreshes += 1;
    }
    let mut answer = json!({
        "token_type": "bearer",
        "expires_in": 7200,
        "access_token": s.access_token,
        "scope": scope,
    });
    if offline {
        answer["refresh_token"] = json!(s.refresh_token);
    }
    axum::Json(answer).into_response()
}
