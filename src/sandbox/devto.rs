//! The dev.to (Forem API v1) fake, built from Forem's own source (`Api::V1::ApiController`,
//! `Api::ArticlesController`, `Article`, `Tag`, `RateLimitChecker`) and the v1 API docs.
//!
//! - Every `/api` call here needs the `api-key` header of the account ([`API_KEY`]); anything
//!   else → `401 {"error":"unauthorized","status":401}`. It needs `Accept:
//!   application/vnd.forem.api-v1+json` too: Forem routes a request without it to the
//!   deprecated v0 API, a contract Herald does not speak, so the fake answers `406` there
//!   rather than let an adapter drift to v0 unnoticed (stricter than Forem, on purpose).
//! - `POST /api/articles` with `{"article": {...}}` (an `article` that is not an object → 422
//!   "article param must be a JSON object…"; none → 422 "param is missing…"). Forem's model
//!   validations, all reported at once as one sentence in `{"error": …, "status": 422}`:
//!   title present and ≤ 128 characters; `body_markdown` ≤ 800 KB and unique per
//!   (account, title); `canonical_url` an http(s) URL, not local, and unique across the site;
//!   at most 4 tags, each letters and digits (`[[:alnum:]]`), ≤ 30 characters. Unpermitted keys
//!   are dropped, as Rails' strong parameters do. `201` with the article (`id`, `url`, `slug`,
//!   `path`, `canonical_url`, `published`, `tag_list`, …) and a `Location` header.
//! - Published article creation is rate limited: more than 9 in 30 s
//!   (`Settings::RateLimit.published_article_creation`) → `429` with `Retry-After: 30`.
//! - `GET /api/articles/me/all?per_page=&page=`: the account's articles, drafts included,
//!   newest first (drafts, whose `published_at` is null, before published ones, as PostgreSQL
//!   orders `published_at DESC`), `per_page` default 30, at most 1000, `page` from 1.
//! - `GET /api/users/me`: the account, for healthchecks.
//! - A [`FaultPlan`] in front of every route (and its journal, when `sandbox serve` keeps one).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The API key the fake's account has.
pub const API_KEY: &str = "sandbox-devto-api-key";
/// The account's username.
pub const USERNAME: &str = "herald_sandbox";
/// The `Accept` header of Forem's v1 API.
pub const ACCEPT_V1: &str = "application/vnd.forem.api-v1+json";
/// Published articles one account may create per [`RATE_WINDOW`] (Forem's default setting).
pub const RATE_LIMIT: usize = 9;
/// The rate limit's window.
pub const RATE_WINDOW: Duration = Duration::from_secs(30);

/// An article the fake keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevtoArticle {
    /// Forem's id.
    pub id: u64,
    /// Title.
    pub title: String,
    /// Description (Forem derives one from the body when none is given).
    pub description: String,
    /// The Markdown body.
    pub body_markdown: String,
    /// Published or draft.
    pub published: bool,
    /// The canonical URL, if any.
    pub canonical_url: Option<String>,
    /// Tags, lowercased as Forem stores them.
    pub tags: Vec<String>,
    /// Series name.
    pub series: Option<String>,
    /// Cover image URL.
    pub main_image: Option<String>,
    /// `<title-slug>-<suffix>`.
    pub slug: String,
    /// `https://dev.to/<user>/<slug>`.
    pub url: String,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
    /// The whole request body, as received.
    pub request: Value,
}

impl DevtoArticle {
    fn json(&self) -> Value {
        json!({
            "type_of": "article",
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "slug": self.slug,
            "path": format!("/{USERNAME}/{}", self.slug),
            "url": self.url,
            "canonical_url": self.canonical_url.clone().unwrap_or_else(|| self.url.clone()),
            "published": self.published,
            "published_at": self.published_at.map(|t| t.to_rfc3339()),
            "tag_list": self.tags.join(", "),
            "tags": self.tags,
            "body_markdown": self.body_markdown,
            "cover_image": self.main_image,
            "user": {"username": USERNAME, "name": "Herald Sandbox"},
        })
    }
}

#[derive(Default)]
struct Inner {
    articles: Vec<DevtoArticle>,
    /// Articles of other accounts: they hold canonical URLs too (uniqueness is site-wide).
    others: Vec<String>,
    next: u64,
    /// When each published article was created, for the rate limit.
    created: Vec<Instant>,
    requests: Vec<String>,
}

/// A running dev.to fake. Dropping it stops the server.
pub struct DevtoFake {
    /// `http://127.0.0.1:<port>`: the adapter's `api_base`.
    pub base_url: String,
    /// Faults to inject (route e.g. `"POST /api/articles"`).
    pub faults: Arc<FaultPlan>,
    inner: Arc<Mutex<Inner>>,
    /// Held for its `Drop`: stops the server.
    _served: Served,
}

impl DevtoFake {
    /// Start on `127.0.0.1:0` (or where [`super::fault::bind_in`] says).
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner { next: 1_000_000, ..Inner::default() }));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/api/articles", post(create))
            .route("/api/articles/me/all", get(me_all))
            .route("/api/users/me", get(users_me))
            .with_state(inner.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, inner, _served: served })
    }

    /// The account's articles, in creation order.
    pub fn articles(&self) -> Vec<DevtoArticle> {
        self.inner.lock().expect("fake lock").articles.clone()
    }

    /// Every request as `"METHOD /path?query"`, in order (faulted ones included only when
    /// they reached a handler).
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().expect("fake lock").requests.clone()
    }

    /// Add `n` older articles to the account (a long history, for paging).
    pub fn seed_articles(&self, n: usize) {
        let mut g = self.inner.lock().expect("fake lock");
        for i in 0..n {
            g.next += 1;
            let id = g.next;
            let slug = format!("older-post-{i}-{id}");
            g.articles.push(DevtoArticle {
                id,
                title: format!("Older post {i}"),
                description: String::new(),
                body_markdown: format!("Older post {i}."),
                published: true,
                canonical_url: Some(format!("https://elsewhere.example/{i}")),
                tags: vec![],
                series: None,
                main_image: None,
                url: format!("https://dev.to/{USERNAME}/{slug}"),
                slug,
                published_at: Some(Utc::now() - chrono::Duration::days(1000 - i as i64)),
                request: Value::Null,
            });
        }
    }

    /// Another account's article claims `canonical_url` (Forem keeps canonical URLs unique
    /// across the whole site).
    pub fn claim_canonical_elsewhere(&self, canonical_url: &str) {
        self.inner.lock().expect("fake lock").others.push(canonical_url.to_string());
    }
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(json!({"error": message, "status": code.as_u16()}))).into_response()
}

fn unauthorized() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
    r.headers_mut().insert("cache-control", axum::http::HeaderValue::from_static("no-store"));
    r
}

/// The checks every v1 call gets: the v1 `Accept` header, then the api key.
#[allow(clippy::result_large_err)]
fn gate(h: &HeaderMap) -> Result<(), Response> {
    let accept = h.get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !accept.split(',').any(|a| a.trim().starts_with(ACCEPT_V1)) {
        return Err(error(StatusCode::NOT_ACCEPTABLE, "this sandbox speaks Forem API v1 only: send Accept: application/vnd.forem.api-v1+json"));
    }
    if h.get("api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return Err(unauthorized());
    }
    Ok(())
}

/// Forem's `Tag#validate_name`.
fn tag_errors(tag: &str, out: &mut Vec<String>) {
    if tag.chars().count() > 30 {
        out.push(format!("Tag \"{tag}\" is too long (maximum is 30 characters)"));
    }
    if tag.is_empty() || !tag.chars().all(char::is_alphanumeric) {
        out.push(format!("Tag \"{tag}\" contains non-alphanumeric or prohibited unicode characters"));
    }
}

/// `a, b and c`, as Rails' `to_sentence`.
fn sentence(v: &[String]) -> String {
    match v {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn slugify(title: &str) -> String {
    let s: String = title.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

async fn create(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    inner.lock().expect("fake lock").requests.push("POST /api/articles".into());
    if let Err(r) = gate(&headers) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let a = match v.get("article") {
        None | Some(Value::Null) => return error(StatusCode::UNPROCESSABLE_ENTITY, "param is missing or the value is empty: article"),
        Some(Value::Object(a)) => a.clone(),
        Some(other) => {
            let ty = match other {
                Value::String(_) => "String",
                Value::Array(_) => "Array",
                _ => "Integer",
            };
            return error(StatusCode::UNPROCESSABLE_ENTITY, &format!("article param must be a JSON object. You provided article as a {ty}"));
        }
    };
    let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
    let title = s("title").unwrap_or_default();
    let markdown = s("body_markdown").unwrap_or_default();
    let published = a.get("published").and_then(Value::as_bool).unwrap_or(false);
    let canonical = s("canonical_url").filter(|c| !c.trim().is_empty());
    // `tags` is permitted as an array; Forem joins it into `tag_list` and splits on commas.
    let tags: Vec<String> = match a.get("tags") {
        Some(Value::Array(t)) => t.iter().filter_map(Value::as_str).flat_map(|t| t.split(',')).map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect(),
        _ => vec![],
    };

    let mut g = inner.lock().expect("fake lock");
    if published {
        let now = Instant::now();
        g.created.retain(|t| now.duration_since(*t) < RATE_WINDOW);
        if g.created.len() >= RATE_LIMIT {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached, try again in 30 seconds");
            r.headers_mut().insert("retry-after", axum::http::HeaderValue::from(RATE_WINDOW.as_secs()));
            return r;
        }
    }
    let mut errors = Vec::new();
    if title.trim().is_empty() {
        errors.push("Title can't be blank".to_string());
    } else if title.chars().count() > 128 {
        errors.push("Title is too long (maximum is 128 characters)".to_string());
    }
    if markdown.len() > 800 * 1024 {
        errors.push("Body markdown is too long.".to_string());
    }
    if g.articles.iter().any(|x| x.body_markdown == markdown && x.title == title) {
        errors.push("Body markdown has already been taken".to_string());
    }
    if let Some(c) = &canonical {
        match url::Url::parse(c) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && !matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "::1") | None) => {}
            _ => errors.push("Canonical url is not a valid URL".to_string()),
        }
        if g.articles.iter().any(|x| x.canonical_url.as_ref() == Some(c)) || g.others.contains(c) {
            errors.push("Canonical url has already been taken".to_string());
        }
    }
    if tags.len() > 4 {
        errors.push("Tag list exceed the maximum of 4 tags".to_string());
    } else {
        for t in &tags {
            tag_errors(t, &mut errors);
        }
    }
    if !errors.is_empty() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &sentence(&errors));
    }
    g.next += 1;
    let id = g.next;
    let slug = format!("{}-{}", slugify(&title), id % 10_000);
    let description = s("description").unwrap_or_else(|| markdown.chars().take(100).collect::<String>().replace('\n', " ").trim().to_string());
    let article = DevtoArticle {
        id,
        title,
        description,
        body_markdown: markdown,
        published,
        canonical_url: canonical,
        tags,
        series: s("series"),
        main_image: s("main_image"),
        url: format!("https://dev.to/{USERNAME}/{slug}"),
        slug,
        published_at: published.then(Utc::now),
        request: v,
    };
    if published {
        g.created.push(Instant::now());
    }
    let answer = article.json();
    let location = article.url.clone();
    g.articles.push(article);
    (StatusCode::CREATED, [("location", location)], axum::Json(answer)).into_response()
}

async fn me_all(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    {
        let mut g = inner.lock().expect("fake lock");
        let mut qs: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        qs.sort();
        g.requests.push(format!("GET /api/articles/me/all?{}", qs.join("&")));
    }
    if let Err(r) = gate(&headers) {
        return r;
    }
    // Rails' `to_i`: anything unreadable is 0.
    let num = |k: &str, d: i64| q.get(k).map(|v| v.trim().parse::<i64>().unwrap_or(0)).unwrap_or(d);
    let per_page = num("per_page", 30).min(1000);
    let per_page = if per_page <= 0 { 30 } else { per_page } as usize;
    let page = num("page", 1).max(1) as usize;
    let g = inner.lock().expect("fake lock");
    let mut all: Vec<&DevtoArticle> = g.articles.iter().collect();
    // published_at DESC (NULLs first, as PostgreSQL sorts them), then created (id) DESC.
    all.sort_by(|a, b| match (a.published_at, b.published_at) {
        (None, None) => b.id.cmp(&a.id),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x).then(b.id.cmp(&a.id)),
    });
    let items: Vec<Value> = all.into_iter().skip((page - 1) * per_page).take(per_page).map(DevtoArticle::json).collect();
    axum::Json(Value::Array(items)).into_response()
}

async fn users_me(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    inner.lock().expect("fake lock").requests.push("GET /api/users/me".into());
    if let Err(r) = gate(&headers) {
        return r;
    }
    axum::Json(json!({"type_of": "user", "id": 4242, "username": USERNAME, "name": "Herald Sandbox"})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forem_sentences_and_tags() {
        assert_eq!(sentence(&["a".into(), "b".into(), "c".into()]), "a, b and c");
        let mut e = Vec::new();
        tag_errors("web-dev", &mut e);
        tag_errors("rust", &mut e);
        tag_errors("日本語", &mut e);
        assert_eq!(e, vec!["Tag \"web-dev\" contains non-alphanumeric or prohibited unicode characters".to_string()]);
        assert_eq!(slugify("Issue #42: Hello, World"), "issue-42-hello-world");
    }
}
