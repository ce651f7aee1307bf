//! The Ghost Admin API fake, built from docs.ghost.org/admin-api, `@tryghost/admin-api` and
//! Ghost's token check (`core/server/services/auth/api-key/admin.js`).
//!
//! - Every request needs `Authorization: Ghost <jwt>`. No header → `403 NoPermissionError`
//!   ("Authorization failed"); another scheme → `401 INVALID_AUTH_HEADER`; not a JWT → `400
//!   INVALID_JWT`; no `kid` → `400 MISSING_ADMIN_API_KID`; an unknown `kid` → `401
//!   UNKNOWN_ADMIN_API_KEY`. Then, as `jwt.verify(token, secret, {algorithms: ['HS256'],
//!   maxAge: '5m', audience: '/admin/'})` does: `alg` HS256 only, the HMAC-SHA256 signature
//!   with the key's hex-decoded secret, `aud` = `/admin/`, `iat` required and not older than 5
//!   minutes, `exp` not past; and, as the docs state, `exp` at most 5 minutes after `iat`. Any
//!   failure → `401 UnauthorizedError INVALID_JWT` "Invalid token: …".
//! - `POST /ghost/api/admin/posts/`: `{"posts":[{…}]}`; no `posts` root → 422; a blank or
//!   missing `title` → 422; a title over 255 or a `custom_excerpt` over 300 characters → 422;
//!   a field the post schema does not have → 422 (the schema is closed); `status` other than
//!   draft/published/scheduled/sent → 422. `html` is used only with `?source=html` (without it
//!   Ghost ignores it: the post is kept empty, as Ghost would). The `slug` (from the title when
//!   absent) is slugified, and a taken one gets `-2`, `-3`… — Ghost never refuses it, which is
//!   why Herald looks before retrying. Answers `201 {"posts":[post]}`.
//! - `GET /ghost/api/admin/posts/slug/{slug}/` → `200 {"posts":[post]}` or `404 NotFoundError`.
//! - Errors are `{"errors":[{message, context, type, details, property, help, code, id}]}`.
//! - A [`FaultPlan`] scripts failures; it journals requests when given a journal.
// Handlers return ready axum `Response`s as their errors; their size doesn't matter in a fake.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The sandbox integration's Admin API key id (a 24-hex ObjectId, as Ghost's are).
pub const KEY_ID: &str = "6489f2a0c3b1d4e5f6a7b8c9";
/// Its secret, hex (32 bytes, as Ghost's are).
pub const KEY_SECRET: &str = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// `{id}:{secret}`, as Ghost Admin shows it.
pub fn admin_api_key() -> String {
    format!("{KEY_ID}:{KEY_SECRET}")
}

/// Fields of a post the Admin API's schema accepts on add (anything else is refused).
const POST_FIELDS: &[&str] = &[
    "id", "uuid", "title", "slug", "mobiledoc", "lexical", "html", "comment_id", "plaintext", "feature_image",
    "feature_image_alt", "feature_image_caption", "featured", "status", "locale", "visibility", "meta_title",
    "meta_description", "created_at", "created_by", "updated_at", "updated_by", "published_at", "published_by",
    "custom_excerpt", "codeinjection_head", "codeinjection_foot", "og_image", "og_title", "og_description",
    "twitter_image", "twitter_title", "twitter_description", "custom_template", "canonical_url", "authors", "tags",
    "email_subject", "email_only", "newsletter", "email_segment", "tiers", "excerpt", "reading_time",
];

/// A post the fake keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GhostPost {
    /// 24-hex id.
    pub id: String,
    /// The title.
    pub title: String,
    /// The slug Ghost gave it (`-2` appended when taken).
    pub slug: String,
    /// The HTML kept (`None` when sent without `?source=html`: Ghost ignores it then).
    pub html: Option<String>,
    /// `published` or `draft`.
    pub status: String,
    /// `canonical_url`, as sent.
    pub canonical_url: Option<String>,
    /// `custom_excerpt`, as sent.
    pub custom_excerpt: Option<String>,
    /// Tag names.
    pub tags: Vec<String>,
    /// `Accept-Version` it came with.
    pub accept_version: Option<String>,
    /// The whole request body, as received.
    pub body: Value,
    /// The public URL.
    pub url: String,
}

#[derive(Default)]
struct Inner {
    posts: Vec<GhostPost>,
    requests: Vec<String>,
    /// Known keys: id → hex secret.
    keys: HashMap<String, String>,
    next: u64,
    /// Seconds added to the fake's clock (a test ages tokens without waiting).
    skew: i64,
}

/// A running Ghost fake. Dropping it stops the server.
pub struct GhostFake {
    /// `http://127.0.0.1:<port>`: the channel's `api_url`.
    pub base_url: String,
    /// Faults to inject (routes like `"POST /ghost/api/admin/posts/"`).
    pub faults: Arc<FaultPlan>,
    inner: Arc<Mutex<Inner>>,
    _served: Served,
}

impl GhostFake {
    /// Start on `127.0.0.1:0` (or where [`super::fault::bind_in`] says), knowing [`KEY_ID`].
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        inner.lock().expect("fake lock").keys.insert(KEY_ID.into(), KEY_SECRET.into());
        let faults = Arc::new(FaultPlan::default());
        // The base URL is known once bound: the router reads it from a shared cell.
        let base = Arc::new(Mutex::new(String::new()));
        let cell = base.clone();
        let app = Router::new()
            .route("/ghost/api/admin/posts/", post(create_post))
            .route("/ghost/api/admin/posts/slug/{slug}/", get(read_by_slug))
            .with_state((inner.clone(), cell));
        let served = serve(with_faults(app, faults.clone())).await?;
        *base.lock().expect("fake lock") = served.base_url.clone();
        Ok(Self { base_url: served.base_url.clone(), faults, inner, _served: served })
    }

    /// Posts kept, in order.
    pub fn posts(&self) -> Vec<GhostPost> {
        self.inner.lock().expect("fake lock").posts.clone()
    }

    /// Every request as `"METHOD /path?query"`, in order (faulted ones that reached a handler).
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().expect("fake lock").requests.clone()
    }

    /// Move the fake's clock by `secs` (positive: the fake lives in the future).
    pub fn skew_clock(&self, secs: i64) {
        self.inner.lock().expect("fake lock").skew = secs;
    }

    /// Keep a post as if made in Ghost Admin (another post already holding a slug).
    pub fn insert_post(&self, title: &str, slug: &str, canonical_url: Option<&str>) {
        let mut g = self.inner.lock().expect("fake lock");
        let id = next_id(&mut g);
        let url = format!("{}/{slug}/", self.base_url);
        g.posts.push(GhostPost {
            id,
            title: title.into(),
            slug: slug.into(),
            html: Some(String::new()),
            status: "published".into(),
            canonical_url: canonical_url.map(str::to_string),
            custom_excerpt: None,
            tags: vec![],
            accept_version: None,
            body: Value::Null,
            url,
        });
    }
}

type St = (Arc<Mutex<Inner>>, Arc<Mutex<String>>);

fn next_id(g: &mut Inner) -> String {
    g.next += 1;
    format!("65a0b1c2d3e4f5{:010x}", g.next)
}

/// Ghost's error shape.
pub fn error(status: StatusCode, ty: &str, message: &str, context: Option<&str>, code: Option<&str>) -> Response {
    let body = json!({"errors": [{
        "message": message,
        "context": context,
        "type": ty,
        "details": null,
        "property": null,
        "help": null,
        "code": code,
        "id": uuid::Uuid::new_v4().to_string(),
        "ghostErrorCode": null,
    }]});
    (status, axum::Json(body)).into_response()
}

fn invalid(context: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", "Validation error, cannot save post.", Some(context), None)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Ghost's token check, step by step as `admin.js` and `jsonwebtoken` do it.
fn authenticate(g: &Inner, headers: &HeaderMap) -> Result<(), Response> {
    let Some(auth) = header(headers, "authorization") else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "NoPermissionError",
            "Authorization failed",
            Some("Unable to determine the authenticated user or integration. Check that cookies are being passed through if using session authentication."),
            None,
        ));
    };
    let unauthorized = |m: &str, code: &str| error(StatusCode::UNAUTHORIZED, "UnauthorizedError", m, None, Some(code));
    let (scheme, token) = auth.split_once(' ').unwrap_or((auth, ""));
    if !scheme.eq_ignore_ascii_case("Ghost") || token.is_empty() {
        return Err(unauthorized("Authorization header format is \"Authorization: Ghost [token]\"", "INVALID_AUTH_HEADER"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let (Some(head), Some(claims)) = (parts.first().and_then(|s| decode(s)), parts.get(1).and_then(|s| decode(s))) else {
        return Err(error(StatusCode::BAD_REQUEST, "BadRequestError", "Invalid JWT", None, Some("INVALID_JWT")));
    };
    if parts.len() != 3 {
        return Err(error(StatusCode::BAD_REQUEST, "BadRequestError", "Invalid JWT", None, Some("INVALID_JWT")));
    }
    let Some(kid) = head["kid"].as_str() else {
        return Err(error(StatusCode::BAD_REQUEST, "BadRequestError", "Admin API kid missing.", None, Some("MISSING_ADMIN_API_KID")));
    };
    let Some(secret) = g.keys.get(kid) else {
        return Err(unauthorized("Unknown Admin API Key", "UNKNOWN_ADMIN_API_KEY"));
    };
    let bad = |why: &str| Err(unauthorized(&format!("Invalid token: {why}"), "INVALID_JWT"));
    if head["alg"].as_str() != Some("HS256") {
        return bad("invalid algorithm");
    }
    let key = hex::decode(secret).expect("fake keys are hex");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let Ok(sig) = URL_SAFE_NO_PAD.decode(parts[2]) else { return bad("invalid signature") };
    if mac.verify_slice(&sig).is_err() {
        return bad("invalid signature");
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == "/admin/",
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some("/admin/")),
        _ => false,
    };
    if !aud_ok {
        return bad("jwt audience invalid. expected: /admin/");
    }
    let now = chrono::Utc::now().timestamp() + g.skew;
    let Some(iat) = claims["iat"].as_i64() else { return bad("iat required when maxAge is specified") };
    if let Some(exp) = claims.get("exp") {
        let Some(exp) = exp.as_i64() else { return bad("invalid exp value") };
        if now >= exp {
            return bad("jwt expired");
        }
        if exp - iat > 5 * 60 {
            // The docs: "exp … max 5 minutes after iat".
            return bad("exp is more than 5 minutes after iat");
        }
    }
    if now >= iat + 5 * 60 {
        return bad("maxAge exceeded");
    }
    Ok(())
}

/// Ghost's slugify, for ASCII: lowercase letters and digits, single hyphens.
fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(185).collect::<String>().trim_end_matches('-').to_string()
}

async fn create_post(State((inner, base)): State<St>, Query(q): Query<HashMap<String, String>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut g = inner.lock().expect("fake lock");
    let query = q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    g.requests.push(format!("POST /ghost/api/admin/posts/?{query}"));
    if let Err(r) = authenticate(&g, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "BadRequestError", "Request body could not be parsed as JSON.", None, None);
    };
    let Some(post) = v.get("posts").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_object) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", "No root key ('posts') provided.", None, None);
    };
    if let Some(k) = post.keys().find(|k| !POST_FIELDS.contains(&k.as_str())) {
        return invalid(&format!("data.posts[0] should NOT have additional properties ({k})"));
    }
    let title = post.get("title").and_then(Value::as_str).unwrap_or("").trim().to_string();
    if title.is_empty() {
        return invalid("Value in [posts.title] cannot be blank.");
    }
    if title.chars().count() > 255 {
        return invalid("Value in [posts.title] exceeds maximum length of 255 characters.");
    }
    let excerpt = post.get("custom_excerpt").and_then(Value::as_str).map(str::to_string);
    if excerpt.as_ref().is_some_and(|e| e.chars().count() > 300) {
        return invalid("Value in [posts.custom_excerpt] exceeds maximum length of 300 characters.");
    }
    let status = post.get("status").and_then(Value::as_str).unwrap_or("draft").to_string();
    if !["draft", "published", "scheduled", "sent"].contains(&status.as_str()) {
        return invalid(&format!("Value in [posts.status] must be one of draft, published, scheduled, sent (got {status})."));
    }
    let canonical = post.get("canonical_url").and_then(Value::as_str).map(str::to_string);
    if canonical.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return invalid("Value in [posts.canonical_url] exceeds maximum length of 2000 characters.");
    }
    let tags: Vec<String> = post
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| t.as_str().or_else(|| t["name"].as_str())).map(str::to_string).collect())
        .unwrap_or_default();
    let wanted = slugify(post.get("slug").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(&title));
    let wanted = if wanted.is_empty() { "untitled".to_string() } else { wanted };
    let mut slug = wanted.clone();
    let mut n = 2;
    while g.posts.iter().any(|p| p.slug == slug) {
        slug = format!("{wanted}-{n}");
        n += 1;
    }
    let html = (q.get("source").map(String::as_str) == Some("html")).then(|| post.get("html").and_then(Value::as_str).unwrap_or("").to_string());
    let id = next_id(&mut g);
    let url = format!("{}/{slug}/", base.lock().expect("fake lock"));
    let p = GhostPost {
        id,
        title,
        slug,
        html,
        status,
        canonical_url: canonical,
        custom_excerpt: excerpt,
        tags,
        accept_version: header(&headers, "accept-version").map(str::to_string),
        body: v.clone(),
        url,
    };
    g.posts.push(p.clone());
    let location = format!("{}/ghost/api/admin/posts/{}/", base.lock().expect("fake lock"), p.id);
    (StatusCode::CREATED, [("location", location)], axum::Json(json!({"posts": [answer(&p)]}))).into_response()
}

fn answer(p: &GhostPost) -> Value {
    json!({
        "id": p.id,
        "uuid": uuid::Uuid::new_v4().to_string(),
        "title": p.title,
        "slug": p.slug,
        "html": p.html,
        "status": p.status,
        "canonical_url": p.canonical_url,
        "custom_excerpt": p.custom_excerpt,
        "tags": p.tags.iter().map(|t| json!({"name": t, "slug": slugify(t)})).collect::<Vec<_>>(),
        "url": p.url,
        "visibility": "public",
    })
}

async fn read_by_slug(State((inner, _)): State<St>, Path(slug): Path<String>, headers: HeaderMap) -> Response {
    let mut g = inner.lock().expect("fake lock");
    g.requests.push(format!("GET /ghost/api/admin/posts/slug/{slug}/"));
    if let Err(r) = authenticate(&g, &headers) {
        return r;
    }
    match g.posts.iter().find(|p| p.slug == slug) {
        Some(p) => (StatusCode::OK, axum::Json(json!({"posts": [answer(p)]}))).into_response(),
        None => error(StatusCode::NOT_FOUND, "NotFoundError", "Post not found.", None, None),
    }
}
