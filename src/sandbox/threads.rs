//! The Threads (Meta) fake: container create → publish → status, as CHANNELS.md §4 describes.
//!
//! Routes (all under `/v1.0`, token as the `access_token` form field or query parameter, or a
//! bearer header):
//! - `POST /{user}/threads` (media_type=TEXT, text, reply_to_id…) → `{"id": container}`;
//!   the container is `IN_PROGRESS` for [`ThreadsFake::set_processing`] (default: none), then
//!   `FINISHED`.
//! - `POST /{user}/threads_publish` (creation_id) → `{"id": media}`; the container turns
//!   `PUBLISHED`. Publishing an `IN_PROGRESS` or unknown container answers the known
//!   `24/4279009` "resource does not exist" race.
//! - `GET /{id}?fields=status` for a container, the media object for a media id, the profile
//!   for `me` / the user id.
//! - `GET /{user}/threads`, `GET /{user}/replies` (newest first), `GET /{user}/threads_publishing_limit`.
//!
//! Checks: token (Graph error 190), user id, known parameters, text ≤ 500 (emoji counted by
//! UTF-8 bytes), ≤ 5 unique links (`THREADS_API__LINK_LIMIT_EXCEEDED`), `reply_to_id` naming a
//! published post, the 250 posts / 1,000 replies per 24 h quota. Every published post is kept.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The access token the fake accepts.
pub const ACCESS_TOKEN: &str = "sandbox-threads-token";
/// The fake account's Threads user id (`me` works too).
pub const USER_ID: &str = "17841400000000001";
/// The fake account's username.
pub const USERNAME: &str = "herald_sandbox";
/// Longest text, in the network's count.
pub const TEXT_LIMIT: usize = 500;
/// Most unique links in one post.
pub const LINK_LIMIT: usize = 5;
/// API-published posts per rolling 24 h.
pub const POST_QUOTA: usize = 250;
/// Replies per rolling 24 h.
pub const REPLY_QUOTA: usize = 1000;

/// Parameters `POST /{user}/threads` knows.
const CONTAINER_PARAMS: &[&str] = &[
    "access_token",
    "media_type",
    "text",
    "reply_to_id",
    "reply_control",
    "link_attachment",
    "quote_post_id",
    "topic_tag",
    "allowlisted_country_codes",
    "alt_text",
    "auto_publish_text",
    "image_url",
    "video_url",
    "is_carousel_item",
    "children",
];

/// A container's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerStatus {
    /// Just created, not ready to publish.
    InProgress,
    /// Ready to publish.
    Finished,
    /// Published; a media id exists.
    Published,
    /// Not published within 24 h.
    Expired,
    /// Processing failed.
    Error,
}

/// A media container.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// Container id.
    pub id: String,
    /// Text.
    pub text: String,
    /// The post it replies to.
    pub reply_to_id: Option<String>,
    /// The media id once published.
    pub media_id: Option<String>,
    /// Set by [`ThreadsFake::expire_unpublished`].
    pub expired: bool,
    #[serde(skip)]
    ready_at: Instant,
}

/// A published post, as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadsPost {
    /// Media id.
    pub id: String,
    /// The container it came from.
    pub container_id: String,
    /// Text, as accepted.
    pub text: String,
    /// The post it replies to, for thread parts after the first.
    pub reply_to_id: Option<String>,
    /// Public URL.
    pub permalink: String,
    /// RFC 3339 publish time.
    pub timestamp: String,
}

#[derive(Default)]
struct Inner {
    containers: BTreeMap<String, Container>,
    posts: Vec<ThreadsPost>,
    next_id: u64,
    processing: Duration,
    requests: Vec<String>,
    /// Long-lived tokens issued by the fake (besides [`ACCESS_TOKEN`]): token → (issued, expires).
    tokens: BTreeMap<String, (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    /// When [`ACCESS_TOKEN`] was issued and expires (default: 30 days old, 30 days left).
    sandbox_token: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    /// Successful `refresh_access_token` calls.
    refreshes: u32,
    /// Codes from the authorize step: code → redirect_uri.
    codes: BTreeMap<String, String>,
    /// Short-lived tokens from the code exchange.
    short_tokens: Vec<String>,
}

impl Inner {
    /// Is `token` a live token of the sandbox account?
    fn live(&self, token: &str) -> bool {
        let now = chrono::Utc::now();
        if token == ACCESS_TOKEN {
            return self.sandbox_token.is_none_or(|(_, exp)| exp > now);
        }
        self.tokens.get(token).is_some_and(|(_, exp)| *exp > now)
    }
}

impl Inner {
    fn status(&self, c: &Container) -> ContainerStatus {
        if c.media_id.is_some() {
            ContainerStatus::Published
        } else if c.expired {
            ContainerStatus::Expired
        } else if Instant::now() < c.ready_at {
            ContainerStatus::InProgress
        } else {
            ContainerStatus::Finished
        }
    }
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:08}", self.next_id)
    }
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
}

/// A running Threads fake. Dropping it stops the server.
pub struct ThreadsFake {
    /// `http://127.0.0.1:<port>`: the adapter's `api_base`.
    pub base_url: String,
    /// Faults to inject.
    pub faults: Arc<FaultPlan>,
    inner: Arc<Mutex<Inner>>,
    /// Held for its `Drop`: stops the server.
    _served: Served,
}

impl ThreadsFake {
    /// Start on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/refresh_access_token", get(refresh_access_token))
            .route("/access_token", get(exchange_token))
            .route("/oauth/authorize", get(authorize_step))
            .route("/oauth/access_token", post(code_exchange))
            .route("/v1.0/{id}", get(get_object))
            .route("/v1.0/{user}/{edge}", get(get_edge).post(post_edge))
            .with_state(AppState { inner: inner.clone() });
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, inner, _served: served })
    }

    /// Published posts, in publish order.
    pub fn posts(&self) -> Vec<ThreadsPost> {
        self.inner.lock().expect("fake lock").posts.clone()
    }

    /// Every container created, by id.
    pub fn containers(&self) -> Vec<Container> {
        self.inner.lock().expect("fake lock").containers.values().cloned().collect()
    }

    /// Every request seen, as `"METHOD /path"`, in order (faulted ones included).
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().expect("fake lock").requests.clone()
    }

    /// How long new containers stay `IN_PROGRESS`.
    pub fn set_processing(&self, d: Duration) {
        self.inner.lock().expect("fake lock").processing = d;
    }

    /// Give [`ACCESS_TOKEN`] an age and a time left (a long-lived token lasts 60 days).
    pub fn set_token_times(&self, age: chrono::Duration, left: chrono::Duration) {
        let now = chrono::Utc::now();
        self.inner.lock().expect("fake lock").sandbox_token = Some((now - age, now + left));
    }

    /// How many `refresh_access_token` calls renewed a token.
    pub fn refreshes(&self) -> u32 {
        self.inner.lock().expect("fake lock").refreshes
    }

    /// Let 24 hours pass for unpublished containers: they become `EXPIRED`.
    pub fn expire_unpublished(&self) {
        for c in self.inner.lock().expect("fake lock").containers.values_mut() {
            if c.media_id.is_none() {
                c.expired = true;
            }
        }
    }
}

/// A Graph API error answer.
fn graph_error(status: StatusCode, code: u32, subcode: Option<u32>, message: &str, transient: bool) -> Response {
    let mut err = json!({
        "message": message,
        "type": if code == 190 { "OAuthException" } else { "THApiException" },
        "code": code,
        "is_transient": transient,
        "fbtrace_id": "AsandboxTrace",
    });
    if let Some(s) = subcode {
        err["error_subcode"] = json!(s);
    }
    (status, axum::Json(json!({ "error": err }))).into_response()
}

fn bad_token() -> Response {
    graph_error(StatusCode::BAD_REQUEST, 190, None, "Invalid OAuth access token - Cannot parse access token", false)
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        Some(33),
        &format!("Unsupported request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"),
        false,
    )
}

fn not_propagated() -> Response {
    graph_error(StatusCode::BAD_REQUEST, 24, Some(4279009), "The requested resource does not exist", false)
}

/// Query and form parameters, merged (form wins).
fn params(query: Option<String>, headers: &HeaderMap, body: &[u8]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    if let Some(q) = query {
        out.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.starts_with("application/x-www-form-urlencoded") {
        out.extend(url::form_urlencoded::parse(body).into_owned());
    }
    out
}

fn authorized(inner: &Inner, p: &BTreeMap<String, String>, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    p.get("access_token").map(String::as_str).or(bearer).is_some_and(|t| inner.live(t))
}

/// The app the fake knows: its id and secret (`[channels.*] app_id` / `app_secret`).
pub const APP_ID: &str = "990000000000001";
/// The app secret.
pub const APP_SECRET: &str = "sandbox-threads-app-secret";
/// Sixty days, in seconds: a long-lived token's life.
const LONG_LIVED_SECS: i64 = 5_184_000;

fn oauth_error(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 190, None, message, false)
}

/// `GET /refresh_access_token?grant_type=th_refresh_token&access_token=…`: a long-lived token
/// at least 24 hours old and not expired gets a new one, valid 60 days.
async fn refresh_access_token(State(st): State<AppState>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let p = params(q, &headers, &[]);
    let mut inner = st.inner.lock().expect("fake lock");
    inner.requests.push("GET /refresh_access_token".into());
    if p.get("grant_type").map(String::as_str) != Some("th_refresh_token") {
        return graph_error(StatusCode::BAD_REQUEST, 100, None, "Unsupported grant_type", false);
    }
    let token = p.get("access_token").cloned().unwrap_or_default();
    if !inner.live(&token) {
        return oauth_error("Error validating access token: Session has expired");
    }
    let issued = if token == ACCESS_TOKEN { inner.sandbox_token.map(|(i, _)| i) } else { inner.tokens.get(&token).map(|(i, _)| *i) };
    let now = chrono::Utc::now();
    if issued.is_some_and(|i| now - i < chrono::Duration::hours(24)) {
        return oauth_error("The access token must be at least 24 hours old to be refreshed");
    }
    let new = format!("sandbox-threads-long-{}", uuid::Uuid::new_v4().simple());
    inner.tokens.insert(new.clone(), (now, now + chrono::Duration::seconds(LONG_LIVED_SECS)));
    inner.refreshes += 1;
    axum::Json(json!({ "access_token": new, "token_type": "bearer", "expires_in": LONG_LIVED_SECS })).into_response()
}

/// `GET /oauth/authorize`: consent, granted at once; redirects with `code` (and `state`).
async fn authorize_step(RawQuery(q): RawQuery, State(st): State<AppState>) -> Response {
    let p = params(q, &HeaderMap::new(), &[]);
    let bad = |m: &str| graph_error(StatusCode::BAD_REQUEST, 100, None, m, false);
    if p.get("client_id").map(String::as_str) != Some(APP_ID) {
        return bad("Invalid platform app");
    }
    if p.get("response_type").map(String::as_str) != Some("code") {
        return bad("response_type must be code");
    }
    let scope = p.get("scope").cloned().unwrap_or_default();
    if !scope.split(',').any(|s| s == "threads_basic") || !scope.split(',').any(|s| s == "threads_content_publish") {
        return bad("scope must include threads_basic,threads_content_publish");
    }
    let Some(mut redirect) = p.get("redirect_uri").and_then(|r| url::Url::parse(r).ok()) else { return bad("redirect_uri is required") };
    let code = format!("sandbox-threads-code-{}", uuid::Uuid::new_v4().simple());
    st.inner.lock().expect("fake lock").codes.insert(code.clone(), redirect.to_string());
    redirect.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = p.get("state") {
        redirect.query_pairs_mut().append_pair("state", state);
    }
    // Threads appends `#_` to the redirect.
    redirect.set_fragment(Some("_"));
    (StatusCode::FOUND, [("location", redirect.to_string())]).into_response()
}

/// `POST /oauth/access_token`: code → short-lived token (1 hour) and the user id.
async fn code_exchange(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let p = params(None, &headers, &body);
    let mut inner = st.inner.lock().expect("fake lock");
    if p.get("client_id").map(String::as_str) != Some(APP_ID) || p.get("client_secret").map(String::as_str) != Some(APP_SECRET) {
        return oauth_error("Error validating client secret.");
    }
    if p.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error("Unsupported grant_type");
    }
    let Some(redirect) = p.get("code").and_then(|c| inner.codes.remove(c)) else { return oauth_error("Invalid verification code format.") };
    if p.get("redirect_uri") != Some(&redirect) {
        return oauth_error("Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request");
    }
    let short = format!("sandbox-threads-short-{}", uuid::Uuid::new_v4().simple());
    inner.short_tokens.push(short.clone());
    axum::Json(json!({ "access_token": short, "user_id": USER_ID.parse::<u64>().unwrap_or(0) })).into_response()
}

/// `GET /access_token?grant_type=th_exchange_token&client_secret=…&access_token=<short>`.
async fn exchange_token(State(st): State<AppState>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let p = params(q, &headers, &[]);
    let mut inner = st.inner.lock().expect("fake lock");
    if p.get("grant_type").map(String::as_str) != Some("th_exchange_token") {
        return oauth_error("Unsupported grant_type");
    }
    if p.get("client_secret").map(String::as_str) != Some(APP_SECRET) {
        return oauth_error("Error validating client secret.");
    }
    let short = p.get("access_token").cloned().unwrap_or_default();
    let Some(i) = inner.short_tokens.iter().position(|t| *t == short) else { return oauth_error("Invalid OAuth access token") };
    inner.short_tokens.remove(i);
    let now = chrono::Utc::now();
    let long = format!("sandbox-threads-long-{}", uuid::Uuid::new_v4().simple());
    inner.tokens.insert(long.clone(), (now, now + chrono::Duration::seconds(LONG_LIVED_SECS)));
    axum::Json(json!({ "access_token": long, "token_type": "bearer", "expires_in": LONG_LIVED_SECS })).into_response()
}

/// The account in a path: `me`, [`USER_ID`], or any numeric id — the sandbox stands in for
/// whichever account the config names, so `--sandbox` runs need no config change.
fn known_user(user: &str) -> bool {
    user == "me" || user == USER_ID || (!user.is_empty() && user.chars().all(|c| c.is_ascii_digit()))
}

/// Threads' length: one per grapheme, except emoji, which count their UTF-8 bytes.
pub fn threads_length(text: &str) -> usize {
    text.graphemes(true)
        .map(|g| if g.chars().any(is_emoji) { g.len() } else { 1 })
        .sum()
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF)
}

/// Unique links in a text, as Threads counts them for the 5-link rule.
pub fn unique_links(text: &str) -> usize {
    let re = regex::Regex::new(r"https?://[^\s]+").expect("static regex");
    re.find_iter(text)
        .map(|m| m.as_str().trim_end_matches(['.', ',', ')', '!', '?', ';', ':']).to_string())
        .collect::<HashSet<_>>()
        .len()
}

async fn get_object(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = params(q, &headers, &[]);
    let mut inner = st.inner.lock().expect("fake lock");
    inner.requests.push(format!("GET /v1.0/{id}"));
    if !authorized(&inner, &p, &headers) {
        return bad_token();
    }
    if let Some(c) = inner.containers.get(&id) {
        let status = inner.status(c);
        let mut body = json!({"id": c.id, "status": status});
        if status == ContainerStatus::Error {
            body["error_message"] = json!("UNKNOWN");
        }
        return axum::Json(body).into_response();
    }
    if let Some(post) = inner.posts.iter().find(|p| p.id == id) {
        return axum::Json(media_json(post)).into_response();
    }
    // Not a container or a post: a profile lookup (the ids are disjoint in this fake).
    if known_user(&id) && !id.starts_with("1790") && !id.starts_with("1800") {
        return axum::Json(json!({"id": USER_ID, "username": USERNAME})).into_response();
    }
    not_found(&id)
}

fn media_json(p: &ThreadsPost) -> Value {
    let mut v = json!({
        "id": p.id,
        "media_type": "TEXT_POST",
        "text": p.text,
        "permalink": p.permalink,
        "timestamp": p.timestamp,
        "username": USERNAME,
        "is_reply": p.reply_to_id.is_some(),
    });
    if let Some(r) = &p.reply_to_id {
        v["replied_to"] = json!({"id": r});
    }
    v
}

fn within_day(p: &ThreadsPost) -> bool {
    chrono::DateTime::parse_from_rfc3339(&p.timestamp)
        .map(|t| chrono::Utc::now() - t.to_utc() < chrono::Duration::hours(24))
        .unwrap_or(true)
}

async fn get_edge(
    State(st): State<AppState>,
    Path((user, edge)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = params(q, &headers, &[]);
    let mut inner = st.inner.lock().expect("fake lock");
    inner.requests.push(format!("GET /v1.0/{user}/{edge}"));
    if !authorized(&inner, &p, &headers) {
        return bad_token();
    }
    if !known_user(&user) {
        return not_found(&user);
    }
    let limit = p.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25).min(100);
    match edge.as_str() {
        "threads" | "replies" => {
            let want_reply = edge == "replies";
            let data: Vec<Value> = inner
                .posts
                .iter()
                .rev()
                .filter(|p| p.reply_to_id.is_some() == want_reply)
                .take(limit)
                .map(media_json)
                .collect();
            axum::Json(json!({"data": data, "paging": {}})).into_response()
        }
        "threads_publishing_limit" => {
            let posts = inner.posts.iter().filter(|p| p.reply_to_id.is_none() && within_day(p)).count();
            let replies = inner.posts.iter().filter(|p| p.reply_to_id.is_some() && within_day(p)).count();
            axum::Json(json!({"data": [{
                "quota_usage": posts,
                "config": {"quota_total": POST_QUOTA, "quota_duration": 86400},
                "reply_quota_usage": replies,
                "reply_config": {"quota_total": REPLY_QUOTA, "quota_duration": 86400},
            }]}))
            .into_response()
        }
        other => not_found(other),
    }
}

async fn post_edge(
    State(st): State<AppState>,
    Path((user, edge)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q, &headers, &body);
    let mut inner = st.inner.lock().expect("fake lock");
    inner.requests.push(format!("POST /v1.0/{user}/{edge}"));
    if !authorized(&inner, &p, &headers) {
        return bad_token();
    }
    if !known_user(&user) {
        return not_found(&user);
    }
    match edge.as_str() {
        "threads" => create_container(&mut inner, &p),
        "threads_publish" => publish(&mut inner, &p),
        other => not_found(other),
    }
}

fn invalid(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 100, None, message, false)
}

fn create_container(inner: &mut Inner, p: &BTreeMap<String, String>) -> Response {
    if let Some(unknown) = p.keys().find(|k| !CONTAINER_PARAMS.contains(&k.as_str())) {
        return invalid(&format!("(#100) Param {unknown} is not a valid parameter"));
    }
    match p.get("media_type").map(String::as_str) {
        Some("TEXT") => {}
        Some("IMAGE" | "VIDEO" | "CAROUSEL") => return invalid("(#100) The sandbox accepts TEXT containers only"),
        Some(other) => return invalid(&format!("(#100) Param media_type must be one of TEXT, IMAGE, VIDEO, CAROUSEL; got {other}")),
        None => return invalid("(#100) The parameter media_type is required"),
    }
    let text = match p.get("text") {
        Some(t) if !t.trim().is_empty() => t.clone(),
        _ => return invalid("(#100) The parameter text is required for TEXT posts"),
    };
    let len = threads_length(&text);
    if len > TEXT_LIMIT {
        return invalid(&format!("(#100) Param text must be at most {TEXT_LIMIT} characters long; got {len}"));
    }
    if unique_links(&text) > LINK_LIMIT {
        let mut r = graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "THREADS_API__LINK_LIMIT_EXCEEDED: posts may contain at most 5 unique links",
            false,
        );
        r.headers_mut().insert("x-sandbox-rule", "link-limit".parse().expect("static header"));
        return r;
    }
    let reply_to_id = p.get("reply_to_id").cloned();
    if let Some(r) = &reply_to_id
        && !inner.posts.iter().any(|post| &post.id == r) {
            return invalid(&format!("(#100) Param reply_to_id {r} does not name a published post"));
        }
    let id = inner.id("1790");
    let ready_at = Instant::now() + inner.processing;
    inner.containers.insert(
        id.clone(),
        Container { id: id.clone(), text, reply_to_id, media_id: None, expired: false, ready_at },
    );
    axum::Json(json!({ "id": id })).into_response()
}

fn publish(inner: &mut Inner, p: &BTreeMap<String, String>) -> Response {
    if let Some(unknown) = p.keys().find(|k| !["access_token", "creation_id"].contains(&k.as_str())) {
        return invalid(&format!("(#100) Param {unknown} is not a valid parameter"));
    }
    let Some(cid) = p.get("creation_id").cloned() else {
        return invalid("(#100) The parameter creation_id is required");
    };
    let Some(c) = inner.containers.get(&cid).cloned() else {
        return not_propagated();
    };
    match inner.status(&c) {
        ContainerStatus::InProgress => return not_propagated(),
        ContainerStatus::Published => return invalid("(#100) This container has already been published"),
        ContainerStatus::Expired => return invalid("(#100) The container has expired; create a new one"),
        ContainerStatus::Error => return invalid("(#100) The container failed processing"),
        ContainerStatus::Finished => {}
    }
    let is_reply = c.reply_to_id.is_some();
    let used = inner.posts.iter().filter(|p| p.reply_to_id.is_some() == is_reply && within_day(p)).count();
    if used >= if is_reply { REPLY_QUOTA } else { POST_QUOTA } {
        // Graph's "application request limit" code; the exact Threads answer is unverified.
        return graph_error(StatusCode::BAD_REQUEST, 4, None, "Publishing quota reached for the last 24 hours", true);
    }
    let id = inner.id("1800");
    let post = ThreadsPost {
        id: id.clone(),
        container_id: cid.clone(),
        text: c.text.clone(),
        reply_to_id: c.reply_to_id.clone(),
        permalink: format!("https://www.threads.net/@{USERNAME}/post/S{id}"),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    inner.posts.push(post);
    if let Some(c) = inner.containers.get_mut(&cid) {
        c.media_id = Some(id.clone());
    }
    axum::Json(json!({ "id": id })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_emoji_by_bytes() {
        assert_eq!(threads_length("héllo"), 5);
        assert_eq!(threads_length("hi 👋"), 3 + 4);
    }

    #[test]
    fn links_are_counted_once_each() {
        assert_eq!(unique_links("a https://a.com b https://a.com, c http://b.org/x."), 2);
    }
}
