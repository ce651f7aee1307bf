//! The WordPress fake: the core REST API's posts route as the REST API Handbook documents it
//! (developer.wordpress.org/rest-api/reference/posts/) and application-password authentication
//! (…/using-the-rest-api/authentication/).
//!
//! - Authentication is HTTP Basic `username:application_password`; the password is compared
//!   with its spaces removed (WordPress accepts it either way). An unknown user → `401
//!   invalid_username`, a wrong password → `401 incorrect_password`; no credentials at all on a
//!   create → `401 rest_cannot_create`.
//! - `POST /wp-json/wp/v2/posts` (JSON): `status` must be one of `publish, future, draft,
//!   pending, private` (else `400 rest_invalid_param`); title, content and excerpt all empty →
//!   `400 empty_content`; `categories`/`tags` must be lists of integer ids (`400
//!   rest_invalid_param`, term existence is not checked); an unknown field is ignored, as
//!   WordPress does. A `slug` already
//!   taken is made unique by appending `-2`, `-3`… (`wp_unique_post_slug`). Answers `201` with
//!   the post (`id`, `slug`, `status`, `link`, `title`/`content`/`excerpt` as `{raw, rendered}`).
//! - `GET /wp-json/wp/v2/posts?slug=…&status=…&context=…`: the posts with that exact slug.
//!   Anything but `status=publish` or `context=edit` needs credentials (`401
//!   rest_forbidden_status` / `rest_forbidden_context`), as drafts are private.
//! - `GET /wp-json/wp/v2/users/me`: the signed-in user.
//! - A [`FaultPlan`] scripts failures; with a journal set, every request is journaled.
// Handlers return ready axum `Response`s as their errors; their size doesn't matter in a fake.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The sandbox user.
pub const USERNAME: &str = "herald";
/// The sandbox user's application password, as WordPress shows it (24 characters in groups of 4).
pub const APPLICATION_PASSWORD: &str = "abcd EFGH 1234 ijkl MNOP 5678";
/// The statuses `POST /posts` accepts.
pub const STATUSES: &[&str] = &["publish", "future", "draft", "pending", "private"];

/// One post the fake holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WpPost {
    /// The post id.
    pub id: u64,
    /// The slug (made unique).
    pub slug: String,
    /// `publish`, `draft`, …
    pub status: String,
    /// The title as sent.
    pub title: String,
    /// The content (HTML) as sent.
    pub content: String,
    /// The excerpt as sent.
    pub excerpt: String,
    /// The whole JSON body as received.
    pub request: Value,
}

#[derive(Default)]
struct Inner {
    posts: Vec<WpPost>,
    next_id: u64,
    requests: Vec<String>,
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
    /// Set once the server is bound (posts' `link`).
    base: Arc<std::sync::OnceLock<String>>,
}

/// A running WordPress fake.
pub struct WordpressFake {
    /// `http://127.0.0.1:<port>`: the channel's `site_url`.
    pub base_url: String,
    /// Faults to inject, consulted before every request.
    pub faults: Arc<FaultPlan>,
    inner: Arc<Mutex<Inner>>,
    _served: Served,
}

impl WordpressFake {
    /// Start on `127.0.0.1:0` (or where [`super::fault::bind_in`] says).
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner { next_id: 101, ..Inner::default() }));
        let faults = Arc::new(FaultPlan::default());
        let base = Arc::new(std::sync::OnceLock::new());
        let state = AppState { inner: inner.clone(), base: base.clone() };
        let app = Router::new()
            .route("/wp-json/wp/v2/posts", get(list_posts).post(create_post))
            .route("/wp-json/wp/v2/users/me", get(me))
            .with_state(state);
        let served = serve(with_faults(app, faults.clone())).await?;
        let _ = base.set(served.base_url.clone());
        Ok(Self { base_url: served.base_url.clone(), faults, inner, _served: served })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("wordpress fake lock")
    }
    /// Every post, in order of creation.
    pub fn posts(&self) -> Vec<WpPost> {
        self.lock().posts.clone()
    }
    /// Every request that reached a handler, as `"METHOD /path?query"`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }
}

fn wp_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"code": code, "message": message, "data": {"status": status.as_u16()}}))).into_response()
}

/// `Ok(true)`: the sandbox user; `Ok(false)`: no credentials; `Err`: refused ones.
fn authenticate(headers: &HeaderMap) -> Result<bool, Response> {
    let Some(v) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(false);
    };
    let decoded = v
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = decoded.as_deref().and_then(|s| s.split_once(':')) else {
        return Err(wp_error(StatusCode::UNAUTHORIZED, "rest_not_logged_in", "You are not currently logged in."));
    };
    if user != USERNAME {
        return Err(wp_error(StatusCode::UNAUTHORIZED, "invalid_username", "Unknown username. Check again or try your email address."));
    }
    let strip = |s: &str| s.chars().filter(|c| *c != ' ').collect::<String>();
    if strip(password) != strip(APPLICATION_PASSWORD) {
        return Err(wp_error(StatusCode::UNAUTHORIZED, "incorrect_password", "The provided password is an invalid application password."));
    }
    Ok(true)
}

fn post_json(p: &WpPost, base: &str) -> Value {
    let link = if p.status == "publish" { format!("{base}/{}/", p.slug) } else { format!("{base}/?p={}", p.id) };
    json!({
        "id": p.id,
        "slug": p.slug,
        "status": p.status,
        "type": "post",
        "link": link,
        "title": {"raw": p.title, "rendered": p.title},
        "content": {"raw": p.content, "rendered": p.content, "protected": false},
        "excerpt": {"raw": p.excerpt, "rendered": p.excerpt, "protected": false},
    })
}

fn text(v: &Value, key: &str) -> Result<String, Response> {
    match &v[key] {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        // The REST API also takes `{"raw": "…"}` for these fields.
        Value::Object(o) if o.get("raw").is_some_and(Value::is_string) => Ok(o["raw"].as_str().unwrap_or_default().to_string()),
        _ => Err(invalid_param(key, &format!("{key} is not of type object,string."))),
    }
}

fn invalid_param(key: &str, why: &str) -> Response {
    let body = json!({"code": "rest_invalid_param", "message": format!("Invalid parameter(s): {key}"), "data": {"status": 400, "params": {key: why}}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn create_post(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.inner.lock().expect("wordpress fake lock").requests.push("POST /wp-json/wp/v2/posts".into());
    match authenticate(&headers) {
        Ok(true) => {}
        Ok(false) => return wp_error(StatusCode::UNAUTHORIZED, "rest_cannot_create", "Sorry, you are not allowed to create posts as this user."),
        Err(r) => return r,
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return wp_error(StatusCode::BAD_REQUEST, "rest_invalid_json", "Invalid JSON body passed.");
    };
    let status = match &v["status"] {
        Value::Null => "draft".to_string(),
        Value::String(s) if STATUSES.contains(&s.as_str()) => s.clone(),
        _ => return invalid_param("status", &format!("status is not one of {}.", STATUSES.join(", "))),
    };
    let (title, content, excerpt) = match (text(&v, "title"), text(&v, "content"), text(&v, "excerpt")) {
        (Ok(t), Ok(c), Ok(e)) => (t, c, e),
        (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => return r,
    };
    for key in ["categories", "tags"] {
        match &v[key] {
            Value::Null => {}
            Value::Array(a) => {
                if let Some(i) = a.iter().position(|x| x.as_u64().is_none()) {
                    return invalid_param(key, &format!("{key}[{i}] is not of type integer."));
                }
            }
            _ => return invalid_param(key, &format!("{key} is not of type array.")),
        }
    }
    if title.is_empty() && content.is_empty() && excerpt.is_empty() {
        return wp_error(StatusCode::BAD_REQUEST, "empty_content", "Content, title, and excerpt are empty.");
    }
    let wanted = match &v["slug"] {
        Value::Null => title.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-"),
        Value::String(s) => s.clone(),
        _ => return invalid_param("slug", "slug is not of type string."),
    };
    let mut g = st.inner.lock().expect("wordpress fake lock");
    // wp_unique_post_slug: a taken slug gets `-2`, `-3`, … (drafts hold theirs only when set).
    let mut slug = wanted.clone();
    let mut n = 2;
    while g.posts.iter().any(|p| p.slug == slug) {
        slug = format!("{wanted}-{n}");
        n += 1;
    }
    let id = g.next_id;
    g.next_id += 1;
    let post = WpPost { id, slug, status, title, content, excerpt, request: v };
    g.posts.push(post.clone());
    drop(g);
    (StatusCode::CREATED, axum::Json(post_json(&post, st.base.get().map(String::as_str).unwrap_or_default()))).into_response()
}

async fn list_posts(State(st): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    query.sort();
    st.inner.lock().expect("wordpress fake lock").requests.push(format!("GET /wp-json/wp/v2/posts?{}", query.join("&")));
    let authed = match authenticate(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let statuses: Vec<&str> = q.get("status").map(|s| s.split(',').map(str::trim).collect()).unwrap_or_else(|| vec!["publish"]);
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(s) && **s != "any") {
        return invalid_param("status", &format!("status[0] is not one of {}, any. ({bad})", STATUSES.join(", ")));
    }
    if !authed && statuses.iter().any(|s| *s != "publish") {
        return wp_error(StatusCode::UNAUTHORIZED, "rest_forbidden_status", "Status is forbidden.");
    }
    if !authed && q.get("context").is_some_and(|c| c == "edit") {
        return wp_error(StatusCode::UNAUTHORIZED, "rest_forbidden_context", "Sorry, you are not allowed to edit posts in this post type.");
    }
    let g = st.inner.lock().expect("wordpress fake lock");
    let hits: Vec<Value> = g
        .posts
        .iter()
        .filter(|p| statuses.contains(&"any") || statuses.contains(&p.status.as_str()))
        .filter(|p| q.get("slug").is_none_or(|s| s.split(',').any(|s| s == p.slug)))
        .map(|p| post_json(p, st.base.get().map(String::as_str).unwrap_or_default()))
        .collect();
    axum::Json(Value::Array(hits)).into_response()
}

async fn me(headers: HeaderMap) -> Response {
    match authenticate(&headers) {
        Ok(true) => axum::Json(json!({"id": 1, "name": USERNAME, "slug": USERNAME})).into_response(),
        Ok(false) => wp_error(StatusCode::UNAUTHORIZED, "rest_not_logged_in", "You are not currently logged in."),
        Err(r) => r,
    }
}
