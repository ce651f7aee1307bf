//! The Substack fake: the cookie-session draft → prepublish → publish routes the unofficial
//! clients use (CHANNELS.md §6).
//!
//! Every `/api/v1` route needs `Cookie: substack.sid=<COOKIE>` (else 401). Routes:
//! - `POST /api/v1/drafts` — `draft_body` must be a **JSON-encoded string** holding a valid
//!   ProseMirror document (an object → 400); unknown fields → 400. Answers the draft object.
//! - `GET /api/v1/drafts` (list, newest first), `GET|PUT /api/v1/drafts/{id}`,
//!   `GET /api/v1/drafts/{id}/prepublish`, `POST /api/v1/drafts/{id}/publish`
//!   (`{"send": bool, "share_automatically": bool}`; publishing twice → 400).
//! - `GET /api/v1/post_management/published` → `{"posts": [...], "total": n}` (shape unverified).
//! - `GET /publish/post/{id}` and `GET /p/{slug}`: the editor and post pages, so URLs resolve.
// Handlers return ready axum `Response`s as their errors; their size doesn't matter in a fake.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The `substack.sid` cookie value the fake accepts.
pub const COOKIE: &str = "sandbox-substack-sid";
/// The fake author's user id (for bylines).
pub const USER_ID: u64 = 12345;

/// Fields `POST /drafts` and `PUT /drafts/{id}` accept.
const DRAFT_FIELDS: &[&str] = &[
    "draft_title",
    "draft_subtitle",
    "draft_body",
    "draft_bylines",
    "audience",
    "draft_section_id",
    "section_chosen",
    "write_comment_permissions",
    "type",
    "slug",
    "search_engine_title",
    "search_engine_description",
    "description",
    "draft_podcast_url",
    "draft_podcast_duration",
    "draft_video_upload_id",
    "draft_podcast_upload_id",
    "draft_podcast_preview_upload_id",
    "draft_voiceover_upload_id",
];

/// A draft (and, once published, the post).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Draft {
    /// Draft id (the post id after publishing).
    pub id: u64,
    /// Title.
    pub draft_title: String,
    /// Subtitle.
    pub draft_subtitle: Option<String>,
    /// The ProseMirror document, as the JSON string it was sent as.
    pub draft_body: String,
    /// Bylines as sent.
    pub draft_bylines: Value,
    /// Audience.
    pub audience: String,
    /// URL slug.
    pub slug: String,
    /// Whether it went out.
    pub is_published: bool,
    /// True once `prepublish` was called.
    pub prepublished: bool,
    /// `send` of the publish call: were subscribers emailed?
    pub email_sent: bool,
    /// Publish time.
    pub post_date: Option<String>,
    /// Creation time.
    pub draft_created_at: String,
}

#[derive(Default)]
struct Inner {
    drafts: Vec<Draft>,
    next: u64,
    requests: Vec<String>,
    base_url: String,
}

type St = Arc<Mutex<Inner>>;

/// A running Substack fake. Dropping it stops the server.
pub struct SubstackFake {
    /// `http://127.0.0.1:<port>`: the adapter's `api_base` (the publication root).
    pub base_url: String,
    /// Faults to inject.
    pub faults: Arc<FaultPlan>,
    inner: St,
    /// Held for its `Drop`: stops the server.
    _served: Served,
}

impl SubstackFake {
    /// Start on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let inner: St = Arc::new(Mutex::new(Inner::default()));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/api/v1/user/profile/self", get(profile_self))
            .route("/api/v1/drafts", post(create_draft).get(list_drafts))
            .route("/api/v1/drafts/{id}", get(get_draft).put(put_draft))
            .route("/api/v1/drafts/{id}/prepublish", get(prepublish))
            .route("/api/v1/drafts/{id}/publish", post(publish))
            .route("/api/v1/post_management/published", get(list_published))
            .route("/publish/post/{id}", get(editor_page))
            .route("/p/{slug}", get(post_page))
            .with_state(inner.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        let base_url = served.base_url.clone();
        inner.lock().expect("fake lock").base_url = base_url.clone();
        Ok(Self { base_url, faults, inner, _served: served })
    }

    /// Every draft, published or not, in creation order.
    pub fn drafts(&self) -> Vec<Draft> {
        self.inner.lock().expect("fake lock").drafts.clone()
    }

    /// Published posts, in creation order.
    pub fn published(&self) -> Vec<Draft> {
        self.drafts().into_iter().filter(|d| d.is_published).collect()
    }

    /// Every request seen, as `"METHOD /path"` (faulted ones included).
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().expect("fake lock").requests.clone()
    }
}

fn err(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({"error": msg, "errors": [{"msg": msg}]}))).into_response()
}

/// `GET /api/v1/user/profile/self`: the signed-in user (what `herald connect` checks the cookie with).
async fn profile_self(headers: HeaderMap) -> Response {
    if !cookie_ok(&headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "Not authorized" }))).into_response();
    }
    axum::Json(json!({ "id": USER_ID, "name": "Herald Sandbox", "handle": "heraldsandbox", "photo_url": null })).into_response()
}

fn cookie_ok(h: &HeaderMap) -> bool {
    h.get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim() == format!("substack.sid={COOKIE}"))
}

/// Log the request and check the session; `Err` is the 401 answer.
fn enter<'a>(st: &'a St, h: &HeaderMap, line: String) -> Result<std::sync::MutexGuard<'a, Inner>, Response> {
    let mut g = st.lock().expect("fake lock");
    g.requests.push(line);
    if !cookie_ok(h) {
        return Err(err(StatusCode::UNAUTHORIZED, "Not authorized"));
    }
    Ok(g)
}

fn slugify(title: &str) -> String {
    let mut out = String::new();
    for w in title.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&w.to_lowercase());
    }
    if out.is_empty() { "untitled".into() } else { out }
}

fn draft_json(d: &Draft, base: &str) -> Value {
    json!({
        "id": d.id,
        "uuid": format!("00000000-0000-4000-8000-{:012}", d.id),
        "type": "newsletter",
        "draft_title": d.draft_title,
        "draft_subtitle": d.draft_subtitle,
        "draft_body": d.draft_body,
        "draft_bylines": d.draft_bylines,
        "audience": d.audience,
        "slug": d.slug,
        "is_published": d.is_published,
        "should_send_email": true,
        "post_date": d.post_date,
        "draft_created_at": d.draft_created_at,
        "canonical_url": if d.is_published { Value::String(format!("{base}/p/{}", d.slug)) } else { Value::Null },
    })
}

/// Check a ProseMirror document against the node and mark types Substack's editor knows.
pub fn validate_doc(doc: &Value) -> Result<(), String> {
    if doc["type"] != "doc" {
        return Err("the root node must be {\"type\":\"doc\"}".into());
    }
    check_children(doc, "doc", Context::Blocks)
}

#[derive(Clone, Copy, PartialEq)]
enum Context {
    Blocks,
    Inline,
    PlainText,
}

fn check_children(node: &Value, path: &str, ctx: Context) -> Result<(), String> {
    let Some(content) = node.get("content") else {
        return Ok(());
    };
    let Some(items) = content.as_array() else {
        return Err(format!("{path}.content must be an array"));
    };
    for (i, child) in items.iter().enumerate() {
        check_node(child, &format!("{path}.content[{i}]"), ctx)?;
    }
    Ok(())
}

fn check_node(n: &Value, path: &str, ctx: Context) -> Result<(), String> {
    let Some(t) = n["type"].as_str() else {
        return Err(format!("{path} has no type"));
    };
    let inline = matches!(t, "text" | "hard_break");
    match ctx {
        Context::Blocks if inline => return Err(format!("{path}: inline node {t} where a block belongs")),
        Context::Inline if !inline => return Err(format!("{path}: block node {t} inside a textblock")),
        Context::PlainText if t != "text" => return Err(format!("{path}: code_block holds text only, got {t}")),
        _ => {}
    }
    match t {
        "text" => {
            match n["text"].as_str() {
                Some(s) if !s.is_empty() => {}
                _ => return Err(format!("{path}: text nodes need non-empty text")),
            }
            if n.get("content").is_some() {
                return Err(format!("{path}: text nodes have no content"));
            }
            if let Some(marks) = n.get("marks") {
                let Some(marks) = marks.as_array() else {
                    return Err(format!("{path}.marks must be an array"));
                };
                if ctx == Context::PlainText && !marks.is_empty() {
                    return Err(format!("{path}: code_block text takes no marks"));
                }
                for m in marks {
                    match m["type"].as_str() {
                        Some("strong" | "em" | "code" | "strikethrough" | "underline") => {}
                        Some("link") => {
                            if !m["attrs"]["href"].is_string() {
                                return Err(format!("{path}: link mark needs attrs.href"));
                            }
                        }
                        other => return Err(format!("{path}: unknown mark {other:?}")),
                    }
                }
            }
            Ok(())
        }
        "hard_break" | "horizontal_rule" => match n.get("content") {
            None => Ok(()),
            Some(_) => Err(format!("{path}: {t} is a leaf")),
        },
        "paragraph" => check_children(n, path, Context::Inline),
        "heading" => {
            match n["attrs"]["level"].as_u64() {
                Some(1..=6) => {}
                _ => return Err(format!("{path}: heading needs attrs.level 1–6")),
            }
            check_children(n, path, Context::Inline)
        }
        "code_block" | "codeBlock" => check_children(n, path, Context::PlainText),
        "blockquote" | "list_item" => {
            if n["content"].as_array().is_none_or(Vec::is_empty) {
                return Err(format!("{path}: {t} needs at least one block"));
            }
            check_children(n, path, Context::Blocks)
        }
        "bullet_list" | "ordered_list" => {
            let Some(items) = n["content"].as_array().filter(|c| !c.is_empty()) else {
                return Err(format!("{path}: {t} needs list items"));
            };
            for (i, item) in items.iter().enumerate() {
                if item["type"] != "list_item" {
                    return Err(format!("{path}.content[{i}]: lists hold list_item nodes only"));
                }
                check_node(item, &format!("{path}.content[{i}]"), Context::Blocks)?;
            }
            Ok(())
        }
        // Substack's own embeds, accepted as opaque blocks.
        "captionedImage" | "image2" | "youtube2" | "subscribeWidget" | "embeddedPublication" => Ok(()),
        other => Err(format!("{path}: unknown node type {other:?}")),
    }
}

/// Validate draft fields; returns the parsed body string when present.
fn check_fields(v: &Value, creating: bool) -> Result<(), Response> {
    let Some(obj) = v.as_object() else {
        return Err(err(StatusCode::BAD_REQUEST, "body must be a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| !DRAFT_FIELDS.contains(&k.as_str())) {
        return Err(err(StatusCode::BAD_REQUEST, &format!("unknown field {k}")));
    }
    if creating && !obj.get("draft_title").is_some_and(Value::is_string) {
        return Err(err(StatusCode::BAD_REQUEST, "draft_title is required and must be a string"));
    }
    if let Some(s) = obj.get("draft_subtitle")
        && !(s.is_string() || s.is_null()) {
            return Err(err(StatusCode::BAD_REQUEST, "draft_subtitle must be a string"));
        }
    match obj.get("draft_body") {
        None if creating => return Err(err(StatusCode::BAD_REQUEST, "draft_body is required")),
        None => {}
        Some(Value::String(s)) => {
            let doc: Value = serde_json::from_str(s)
                .map_err(|e| err(StatusCode::BAD_REQUEST, &format!("draft_body is not valid JSON: {e}")))?;
            validate_doc(&doc).map_err(|e| err(StatusCode::BAD_REQUEST, &format!("draft_body is not a valid document: {e}")))?;
        }
        Some(_) => {
            return Err(err(StatusCode::BAD_REQUEST, "draft_body must be a JSON-encoded string of the document, not an object"));
        }
    }
    if let Some(b) = obj.get("draft_bylines") {
        let ok = b.as_array().is_some_and(|a| a.iter().all(|x| x["id"].is_u64() && x["is_guest"].is_boolean()));
        if !ok {
            return Err(err(StatusCode::BAD_REQUEST, "draft_bylines must be [{\"id\": <user id>, \"is_guest\": false}]"));
        }
    }
    if let Some(a) = obj.get("audience")
        && !matches!(a.as_str(), Some("everyone" | "only_paid" | "founding" | "only_free")) {
            return Err(err(StatusCode::BAD_REQUEST, "audience must be everyone, only_paid, founding or only_free"));
        }
    if let Some(s) = obj.get("slug") {
        let ok = s.as_str().is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '-'));
        if !ok {
            return Err(err(StatusCode::BAD_REQUEST, "slug must be letters, digits and dashes"));
        }
    }
    Ok(())
}

fn parse_json(body: &[u8], h: &HeaderMap) -> Result<Value, Response> {
    if !h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("application/json") {
        return Err(err(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json"));
    }
    serde_json::from_slice(body).map_err(|e| err(StatusCode::BAD_REQUEST, &format!("malformed JSON: {e}")))
}

async fn create_draft(State(st): State<St>, h: HeaderMap, body: Bytes) -> Response {
    let mut g = match enter(&st, &h, "POST /api/v1/drafts".into()) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let v = match parse_json(&body, &h) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_fields(&v, true) {
        return r;
    }
    g.next += 1;
    let id = 150_000_000 + g.next;
    let title = v["draft_title"].as_str().unwrap_or_default().to_string();
    let d = Draft {
        id,
        slug: v["slug"].as_str().map(str::to_string).unwrap_or_else(|| slugify(&title)),
        draft_title: title,
        draft_subtitle: v["draft_subtitle"].as_str().map(str::to_string),
        draft_body: v["draft_body"].as_str().unwrap_or_default().to_string(),
        draft_bylines: v.get("draft_bylines").cloned().unwrap_or(json!([])),
        audience: v["audience"].as_str().unwrap_or("everyone").to_string(),
        is_published: false,
        prepublished: false,
        email_sent: false,
        post_date: None,
        draft_created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let out = draft_json(&d, &g.base_url);
    g.drafts.push(d);
    axum::Json(out).into_response()
}

async fn list_drafts(State(st): State<St>, h: HeaderMap) -> Response {
    let g = match enter(&st, &h, "GET /api/v1/drafts".into()) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let list: Vec<Value> = g.drafts.iter().rev().filter(|d| !d.is_published).map(|d| draft_json(d, &g.base_url)).collect();
    axum::Json(Value::Array(list)).into_response()
}

async fn get_draft(State(st): State<St>, Path(id): Path<String>, h: HeaderMap) -> Response {
    let g = match enter(&st, &h, format!("GET /api/v1/drafts/{id}")) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match g.drafts.iter().find(|d| d.id.to_string() == id) {
        Some(d) => axum::Json(draft_json(d, &g.base_url)).into_response(),
        None => err(StatusCode::NOT_FOUND, "Post not found"),
    }
}

async fn put_draft(State(st): State<St>, Path(id): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    let mut g = match enter(&st, &h, format!("PUT /api/v1/drafts/{id}")) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let v = match parse_json(&body, &h) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_fields(&v, false) {
        return r;
    }
    let base = g.base_url.clone();
    let Some(d) = g.drafts.iter_mut().find(|d| d.id.to_string() == id) else {
        return err(StatusCode::NOT_FOUND, "Post not found");
    };
    if let Some(t) = v["draft_title"].as_str() {
        d.draft_title = t.to_string();
    }
    if let Some(s) = v.get("draft_subtitle") {
        d.draft_subtitle = s.as_str().map(str::to_string);
    }
    if let Some(b) = v["draft_body"].as_str() {
        d.draft_body = b.to_string();
    }
    if let Some(s) = v["slug"].as_str() {
        d.slug = s.to_string();
    }
    if let Some(a) = v["audience"].as_str() {
        d.audience = a.to_string();
    }
    axum::Json(draft_json(d, &base)).into_response()
}

async fn prepublish(State(st): State<St>, Path(id): Path<String>, h: HeaderMap) -> Response {
    let mut g = match enter(&st, &h, format!("GET /api/v1/drafts/{id}/prepublish")) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let Some(d) = g.drafts.iter_mut().find(|d| d.id.to_string() == id) else {
        return err(StatusCode::NOT_FOUND, "Post not found");
    };
    d.prepublished = true;
    axum::Json(json!({"errors": [], "warnings": []})).into_response()
}

async fn publish(State(st): State<St>, Path(id): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    let mut g = match enter(&st, &h, format!("POST /api/v1/drafts/{id}/publish")) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let v = match parse_json(&body, &h) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(send) = v["send"].as_bool() else {
        return err(StatusCode::BAD_REQUEST, "send must be a boolean");
    };
    if !v.get("share_automatically").is_none_or(Value::is_boolean) {
        return err(StatusCode::BAD_REQUEST, "share_automatically must be a boolean");
    }
    let base = g.base_url.clone();
    let Some(d) = g.drafts.iter_mut().find(|d| d.id.to_string() == id) else {
        return err(StatusCode::NOT_FOUND, "Post not found");
    };
    if d.is_published {
        return err(StatusCode::BAD_REQUEST, "Post is already published");
    }
    d.is_published = true;
    d.email_sent = send;
    d.post_date = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    axum::Json(draft_json(d, &base)).into_response()
}

async fn list_published(State(st): State<St>, h: HeaderMap) -> Response {
    let g = match enter(&st, &h, "GET /api/v1/post_management/published".into()) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let posts: Vec<Value> = g.drafts.iter().rev().filter(|d| d.is_published).map(|d| draft_json(d, &g.base_url)).collect();
    let total = posts.len();
    axum::Json(json!({"posts": posts, "offset": 0, "limit": total, "total": total})).into_response()
}

async fn editor_page(State(st): State<St>, Path(id): Path<String>) -> Response {
    let g = st.lock().expect("fake lock");
    match g.drafts.iter().find(|d| d.id.to_string() == id) {
        Some(d) => Html(format!("<h1>Editing: {}</h1>", d.draft_title)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn post_page(State(st): State<St>, Path(slug): Path<String>) -> Response {
    let g = st.lock().expect("fake lock");
    match g.drafts.iter().find(|d| d.is_published && d.slug == slug) {
        Some(d) => Html(format!("<h1>{}</h1>", d.draft_title)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_accepts_the_converter_output_and_rejects_bad_docs() {
        let md = "# T\n\nSome **bold** [link](https://e.com)  \nnext\n\n- a\n- b\n\n> q\n\n---\n\n```\ncode\n```\n";
        validate_doc(&crate::render::prosemirror::markdown_to_doc(md)).expect("converter output is valid");
        assert!(validate_doc(&json!({"type": "paragraph"})).is_err());
        assert!(validate_doc(&json!({"type": "doc", "content": [{"type": "text", "text": "loose"}]})).is_err());
        assert!(validate_doc(&json!({"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]})).is_err());
        assert!(validate_doc(&json!({"type": "doc", "content": [{"type": "heading", "content": []}]})).is_err());
        assert!(validate_doc(&json!({"type": "doc", "content": [{"type": "bullet_list", "content": [{"type": "paragraph"}]}]})).is_err());
        assert!(
            validate_doc(&json!({"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "x", "marks": [{"type": "link"}]}]}]}))
                .is_err()
        );
    }
}
