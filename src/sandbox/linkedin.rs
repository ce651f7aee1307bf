//! The LinkedIn Posts API fake (CHANNELS.md §5).
//!
//! - `POST /rest/posts`: needs `Authorization: Bearer`, `LinkedIn-Version: YYYYMM` (missing →
//!   400 `VERSION_MISSING`; not active in the last 12 months → 426 `NONEXISTENT_VERSION`),
//!   `X-Restli-Protocol-Version: 2.0.0` and a JSON body of the documented shape (unknown
//!   fields → 422). Answers `201` with an empty body and the URN in `x-restli-id`.
//! - Commentary is "little" text: like LinkedIn, the fake **silently truncates** the stored
//!   commentary at the first unescaped reserved character (`\ | { } @ [ ] ( ) < > # * _ ~`),
//!   keeping the elements of LinkedIn's little-text page: URLs (taken as written, so an escape
//!   inside one shows and breaks the link), `#hashtag`s (`\#tag` is plain text), mentions
//!   `@[Name](urn:li:person:…)` and `{hashtag|\#|tag}` templates. Over 3,000 characters → 422.
//! - The token belongs to one member ([`PERSON`] unless [`LinkedinFake::set_member`] says
//!   otherwise), who administers [`ORGANIZATION`]: another `author` → 403 `ACCESS_DENIED`.
//! - The same author posting the same commentary within 24 h → `422 DUPLICATE_POST` whose
//!   `message` names the earlier URN.
//! - `GET /v2/userinfo` for healthchecks.
// Handlers return ready axum `Response`s as their errors; their size doesn't matter in a fake.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The bearer token the fake accepts.
pub const ACCESS_TOKEN: &str = "sandbox-linkedin-token";
/// A member URN for tests (any well-formed person or organization URN is accepted).
pub const PERSON: &str = "urn:li:person:sandbox123";
/// An organization URN for tests.
pub const ORGANIZATION: &str = "urn:li:organization:1000001";
/// Longest commentary, in characters.
pub const COMMENTARY_LIMIT: usize = 3000;
/// The Rest.li protocol version `/rest` requires.
const RESTLI: &str = "2.0.0";
/// Reserved characters of the little text format.
pub const RESERVED: &[char] = &['\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~'];

/// A post the fake accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkedinPost {
    /// `urn:li:share:…`
    pub urn: String,
    /// Author URN.
    pub author: String,
    /// The commentary exactly as sent (escaped little text).
    pub commentary_sent: String,
    /// What LinkedIn shows: escapes resolved, mentions and hashtags rendered, cut at the
    /// first unescaped reserved character.
    pub commentary: String,
    /// True when the commentary was cut short.
    pub truncated: bool,
    /// The URLs LinkedIn would link, as it reads them.
    pub links: Vec<String>,
    /// The hashtags LinkedIn would make clickable (without `#`).
    pub hashtags: Vec<String>,
    /// `content.article`, if any.
    pub article: Option<Value>,
    /// The `LinkedIn-Version` header it came with.
    pub version: String,
    /// The `X-Restli-Protocol-Version` header it came with.
    pub restli_version: String,
    /// The whole JSON body, as received.
    pub body: Value,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
}

struct Inner {
    posts: Vec<LinkedinPost>,
    next: u64,
    requests: Vec<String>,
    /// The token's member.
    member: String,
    /// Organizations the member administers.
    organizations: Vec<String>,
    /// Authorization codes from the consent step: code → redirect_uri.
    codes: std::collections::HashMap<String, String>,
}

impl Default for Inner {
    fn default() -> Self {
        Self { posts: Vec::new(), next: 0, requests: Vec::new(), member: PERSON.into(), organizations: vec![ORGANIZATION.into()], codes: Default::default() }
    }
}

/// The LinkedIn app's client id the OAuth endpoints accept.
pub const CLIENT_ID: &str = "sandboxlinkedinclient";
/// Its client secret.
pub const CLIENT_SECRET: &str = "sandbox-linkedin-client-secret";

/// `GET /oauth/v2/authorization`: consent, granted at once; redirects with `code` and `state`.
async fn authorization(State(inner): State<Arc<Mutex<Inner>>>, axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>) -> Response {
    let bad = |e: &str, d: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e, "error_description": d}))).into_response();
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad("invalid_request", "response_type must be code");
    }
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return bad("invalid_client", "The passed in client_id is invalid");
    }
    let scopes: Vec<&str> = q.get("scope").map(|s| s.split([' ', ',']).collect()).unwrap_or_default();
    if !scopes.contains(&"w_member_social") {
        return bad("invalid_scope", "w_member_social is required to post");
    }
    let Some(mut to) = q.get("redirect_uri").and_then(|r| url::Url::parse(r).ok()) else { return bad("invalid_request", "redirect_uri is required") };
    let code = format!("sandbox-linkedin-code-{}", uuid::Uuid::new_v4().simple());
    inner.lock().expect("fake lock").codes.insert(code.clone(), to.to_string());
    to.query_pairs_mut().append_pair("code", &code);
    if let Some(st) = q.get("state") {
        to.query_pairs_mut().append_pair("state", st);
    }
    (StatusCode::FOUND, [("location", to.to_string())]).into_response()
}

/// `POST /oauth/v2/accessToken` (form): the authorization code grant; a 60-day member token.
async fn access_token(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    let bad = |e: &str, d: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e, "error_description": d}))).into_response();
    if !header(&headers, "content-type").unwrap_or_default().starts_with("application/x-www-form-urlencoded") {
        return bad("invalid_request", "Content-Type must be application/x-www-form-urlencoded");
    }
    let f: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID) || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client", "error_description": "Client authentication failed"}))).into_response();
    }
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return bad("unsupported_grant_type", "grant_type must be authorization_code");
    }
    let Some(redirect) = f.get("code").and_then(|c| inner.lock().expect("fake lock").codes.remove(c)) else {
        return bad("invalid_request", "Unable to retrieve access token: authorization code not found");
    };
    if f.get("redirect_uri") != Some(&redirect) {
        return bad("invalid_redirect_uri", "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code");
    }
    axum::Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 5_184_000, "scope": "email,openid,profile,w_member_social", "token_type": "Bearer"})).into_response()
}

/// A running LinkedIn fake. Dropping it stops the server.
pub struct LinkedinFake {
    /// `http://127.0.0.1:<port>`: the adapter's `api_base`.
    pub base_url: String,
    /// Faults to inject.
    pub faults: Arc<FaultPlan>,
    inner: Arc<Mutex<Inner>>,
    /// Held for its `Drop`: stops the server.
    _served: Served,
}

impl LinkedinFake {
    /// Start on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/rest/posts", post(create_post))
            .route("/v2/userinfo", get(userinfo))
            .route("/oauth/v2/authorization", get(authorization))
            .route("/oauth/v2/accessToken", post(access_token))
            .with_state(inner.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, inner, _served: served })
    }

    /// Accepted posts, in order.
    pub fn posts(&self) -> Vec<LinkedinPost> {
        self.inner.lock().expect("fake lock").posts.clone()
    }

    /// The member the token belongs to (`urn:li:person:…`); an `urn:li:organization:…` is
    /// added to the organizations that member administers instead.
    pub fn set_member(&self, urn: &str) {
        let mut g = self.inner.lock().expect("fake lock");
        if urn.starts_with("urn:li:organization:") {
            g.organizations.push(urn.to_string());
        } else {
            g.member = urn.to_string();
        }
    }

    /// Every request seen, as `"METHOD /path"` (faulted ones included).
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().expect("fake lock").requests.clone()
    }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (s, axum::Json(json!({"status": status, "code": code, "message": message}))).into_response()
}

/// A Rest.li validation error (422) naming the field.
fn input_error(field: &str, code: &str, description: &str) -> Response {
    let body = json!({
        "errorDetailType": "com.linkedin.common.error.BadRequest",
        "message": format!("com.linkedin.content.common.exception.BadRequestResponseException: {description}"),
        "errorDetails": {"inputErrors": [{
            "description": description,
            "input": {"inputPath": {"fieldPath": field}},
            "code": code,
        }]},
        "status": 422,
    });
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn authorized(h: &HeaderMap) -> bool {
    header(h, "authorization").and_then(|v| v.strip_prefix("Bearer ")) == Some(ACCESS_TOKEN)
}

/// Check `LinkedIn-Version`: `YYYYMM` or `YYYYMM.RR`, released within the last 12 months.
fn check_version(v: Option<&str>, now: DateTime<Utc>) -> Result<String, Response> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Err(error(
            400,
            "VERSION_MISSING",
            "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
        ));
    };
    let month = v.split('.').next().unwrap_or("");
    let parsed = (month.len() == 6 && month.chars().all(|c| c.is_ascii_digit()))
        .then(|| (month[..4].parse::<i32>().unwrap_or(0), month[4..].parse::<u32>().unwrap_or(0)))
        .filter(|(_, m)| (1..=12).contains(m));
    let Some((y, m)) = parsed else {
        return Err(error(400, "INVALID_VERSION", &format!("Invalid LinkedIn-Version {v}: expected YYYYMM")));
    };
    let age = (now.year() - y) * 12 + now.month() as i32 - m as i32;
    if !(0..=12).contains(&age) {
        return Err(error(426, "NONEXISTENT_VERSION", &format!("Requested version {month}01 is not active")));
    }
    Ok(v.to_string())
}

/// What LinkedIn displays for a little-text commentary, and whether it was cut short.
pub fn display_commentary(raw: &str) -> (String, bool) {
    let d = read_little_text(raw);
    (d.text, d.truncated)
}

/// A little-text commentary as LinkedIn reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LittleText {
    /// What is displayed.
    pub text: String,
    /// Cut at an unescaped reserved character.
    pub truncated: bool,
    /// URL elements, as written.
    pub links: Vec<String>,
    /// Hashtag elements (and templates), without `#`.
    pub hashtags: Vec<String>,
}

/// Read a little-text commentary: escapes, URLs, hashtags, mentions, hashtag templates, and the
/// cut at the first unescaped reserved character. Written from LinkedIn's little-text page,
/// independently of Herald's escaper.
pub fn read_little_text(raw: &str) -> LittleText {
    let mention = regex::Regex::new(r"^@\[([^\]]*)\]\(urn:li:(?:person|organization):[^)]+\)").expect("static regex");
    let hashtag = regex::Regex::new(r"^\{hashtag\|\\#\|([^}|]+)\}").expect("static regex");
    // A URL runs to the next space, backslashes and all (an escape inside a URL is shown);
    // closing punctuation at its end is not part of it, nor is a `)` it did not open, nor the
    // backslash escaping that `)`.
    let url = regex::Regex::new(r"^https?://\S+").expect("static regex");
    let tag = regex::Regex::new(r"^#([\p{L}\p{N}_]*\p{L}[\p{L}\p{N}_]*)").expect("static regex");
    let mut d = LittleText::default();
    let out = &mut d.text;
    let mut i = 0;
    while i < raw.len() {
        let rest = &raw[i..];
        let c = rest.chars().next().expect("non-empty rest");
        let word_before = out.chars().last().is_some_and(|p| p.is_alphanumeric() || p == '_');
        if c == 'h' && !word_before
            && let Some(m) = url.find(rest)
        {
            let mut link = m.as_str();
            loop {
                let trimmed = link.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"']);
                let opens = trimmed.matches('(').count();
                let closes = trimmed.matches(')').count();
                let t = if trimmed.ends_with(')') && closes > opens { &trimmed[..trimmed.len() - 1] } else { trimmed };
                let t = t.strip_suffix('\\').unwrap_or(t);
                if t.len() == link.len() {
                    break;
                }
                link = t;
            }
            out.push_str(link);
            d.links.push(link.to_string());
            i += link.len();
            continue;
        }
        if c == '#' && !word_before
            && let Some(m) = tag.captures(rest)
        {
            out.push_str(&m[0]);
            d.hashtags.push(m[1].to_string());
            i += m[0].len();
            continue;
        }
        if c == '\\' {
            match rest[1..].chars().next() {
                Some(n) => {
                    out.push(n);
                    i += 1 + n.len_utf8();
                    continue;
                }
                None => {
                    d.truncated = true;
                    return d;
                }
            }
        }
        if c == '@'
            && let Some(m) = mention.captures(rest) {
                out.push_str(&m[1]);
                i += m[0].len();
                continue;
            }
        if c == '{'
            && let Some(m) = hashtag.captures(rest) {
                out.push('#');
                out.push_str(&m[1]);
                d.hashtags.push(m[1].to_string());
                i += m[0].len();
                continue;
            }
        if RESERVED.contains(&c) {
            d.truncated = true;
            return d;
        }
        out.push(c);
        i += c.len_utf8();
    }
    d
}

async fn userinfo(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    inner.lock().expect("fake lock").requests.push("GET /v2/userinfo".into());
    if !authorized(&headers) {
        return error(401, "INVALID_ACCESS_TOKEN", "Invalid access token");
    }
    axum::Json(json!({"sub": "sandbox123", "name": "Herald Sandbox", "email_verified": true})).into_response()
}

const TOP_FIELDS: &[&str] = &[
    "author",
    "commentary",
    "visibility",
    "distribution",
    "lifecycleState",
    "isReshareDisabledByAuthor",
    "content",
    "contentLandingPage",
    "contentCallToActionLabel",
    "adContext",
    "reshareContext",
    "container",
];

fn check_body(v: &Value) -> Result<(), Response> {
    let Some(obj) = v.as_object() else {
        return Err(input_error("", "INVALID_TYPE", "The request body must be a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| !TOP_FIELDS.contains(&k.as_str())) {
        return Err(input_error(k, "UNRECOGNIZED_FIELD", &format!("Unrecognized field {k}")));
    }
    for f in ["author", "commentary", "visibility", "distribution", "lifecycleState"] {
        if !obj.contains_key(f) {
            return Err(input_error(f, "FIELD_REQUIRED", &format!("Field /{f} is required")));
        }
    }
    let commentary = obj["commentary"].as_str().ok_or_else(|| input_error("commentary", "INVALID_TYPE", "commentary must be a string"))?;
    let n = commentary.chars().count();
    if n > COMMENTARY_LIMIT {
        return Err(input_error(
            "commentary",
            "MAX_LENGTH_EXCEEDED",
            &format!("commentary is {n} characters; the maximum is {COMMENTARY_LIMIT}"),
        ));
    }
    if !matches!(obj["visibility"].as_str(), Some("PUBLIC" | "CONNECTIONS" | "LOGGED_IN" | "CONTAINER")) {
        return Err(input_error("visibility", "INVALID_ENUM_VALUE", "visibility must be PUBLIC, CONNECTIONS, LOGGED_IN or CONTAINER"));
    }
    if !matches!(obj["lifecycleState"].as_str(), Some("PUBLISHED" | "DRAFT")) {
        return Err(input_error("lifecycleState", "INVALID_ENUM_VALUE", "lifecycleState must be PUBLISHED or DRAFT"));
    }
    let d = &obj["distribution"];
    if !matches!(d["feedDistribution"].as_str(), Some("MAIN_FEED" | "NONE")) {
        return Err(input_error("distribution/feedDistribution", "INVALID_ENUM_VALUE", "feedDistribution must be MAIN_FEED or NONE"));
    }
    for f in ["targetEntities", "thirdPartyDistributionChannels"] {
        if !d.get(f).is_none_or(Value::is_array) {
            return Err(input_error(&format!("distribution/{f}"), "INVALID_TYPE", &format!("{f} must be an array")));
        }
    }
    if let Some(r) = obj.get("isReshareDisabledByAuthor")
        && !r.is_boolean() {
            return Err(input_error("isReshareDisabledByAuthor", "INVALID_TYPE", "must be a boolean"));
        }
    if let Some(content) = obj.get("content") {
        let a = &content["article"];
        let source = a["source"].as_str().unwrap_or("");
        if !(source.starts_with("https://") || source.starts_with("http://")) {
            return Err(input_error("content/article/source", "INVALID_URL", "article source must be an http(s) URL"));
        }
        if !a["title"].is_string() {
            return Err(input_error("content/article/title", "FIELD_REQUIRED", "article title is required"));
        }
    }
    Ok(())
}

async fn create_post(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    inner.lock().expect("fake lock").requests.push("POST /rest/posts".into());
    if !authorized(&headers) {
        return error(401, "INVALID_ACCESS_TOKEN", "Invalid access token");
    }
    let now = Utc::now();
    let version = match check_version(header(&headers, "linkedin-version"), now) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if header(&headers, "x-restli-protocol-version") != Some(RESTLI) {
        return error(400, "ILLEGAL_ARGUMENT", "This API requires the header X-Restli-Protocol-Version: 2.0.0");
    }
    if !header(&headers, "content-type").unwrap_or("").starts_with("application/json") {
        return error(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(400, "ILLEGAL_ARGUMENT", &format!("Malformed JSON: {e}")),
    };
    if let Err(r) = check_body(&v) {
        return r;
    }
    let author = v["author"].as_str().unwrap_or("").to_string();
    // Any well-formed member or organization URN is "ours": the sandbox token stands in for
    // whichever author the config names, so `--sandbox` runs need no config change.
    let urn = regex::Regex::new(r"^urn:li:(?:person:[A-Za-z0-9_-]+|organization:[0-9]+)$").expect("static regex");
    if !urn.is_match(&author) {
        return input_error("author", "INVALID_URN", &format!("author must be urn:li:person:<id> or urn:li:organization:<id>; got {author}"));
    }
    let sent = v["commentary"].as_str().unwrap_or("").to_string();
    let mut inner = inner.lock().expect("fake lock");
    if author != inner.member && !inner.organizations.contains(&author) {
        // The member behind the token may post as themself or as an organization they
        // administer (w_organization_social); LinkedIn's wording here is [unverified].
        return error(
            403,
            "ACCESS_DENIED",
            &format!("Member {} is not permitted to create posts as author {author}", inner.member),
        );
    }
    if let Some(earlier) = inner
        .posts
        .iter()
        .find(|p| p.author == author && p.commentary_sent == sent && now - p.created_at < chrono::Duration::hours(24))
    {
        let body = json!({
            "errorDetailType": "com.linkedin.common.error.BadRequest",
            "message": format!("com.linkedin.content.common.exception.BadRequestResponseException: Content is a duplicate of {}", earlier.urn),
            "errorDetails": {"inputErrors": [{"description": "Duplicate post is detected", "input": {}, "code": "DUPLICATE_POST"}]},
            "status": 422,
        });
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response();
    }
    inner.next += 1;
    let urn = format!("urn:li:share:{}", 7_141_138_937_766_391_808u64 + inner.next);
    let read = read_little_text(&sent);
    inner.posts.push(LinkedinPost {
        urn: urn.clone(),
        author,
        commentary_sent: sent,
        commentary: read.text,
        truncated: read.truncated,
        links: read.links,
        hashtags: read.hashtags,
        article: v.get("content").map(|c| c["article"].clone()),
        version,
        restli_version: RESTLI.to_string(),
        body: v.clone(),
        created_at: now,
    });
    let mut resp = StatusCode::CREATED.into_response();
    resp.headers_mut().insert("x-restli-id", urn.parse().expect("URN is a valid header value"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_text_display_and_truncation() {
        assert_eq!(display_commentary(r"Issue 42 \(weekly\) is out"), ("Issue 42 (weekly) is out".into(), false));
        assert_eq!(display_commentary("Issue 42 (weekly) is out"), ("Issue 42 ".into(), true));
        assert_eq!(display_commentary(r"a \\ b"), (r"a \ b".into(), false));
        assert_eq!(display_commentary(r"by @[Ana](urn:li:person:1) {hashtag|\#|cx}"), ("by Ana #cx".into(), false));
        assert_eq!(display_commentary("mail me@x.com"), ("mail me".into(), true));
    }

    #[test]
    fn little_text_elements() {
        let d = read_little_text(r"New: https://e.com/i?utm_source=li&x=(1) #news \#not \(see https://en.wikipedia.org/wiki/Rust_(lang)\)");
        assert!(!d.truncated, "{d:?}");
        assert_eq!(d.links, vec!["https://e.com/i?utm_source=li&x=(1)", "https://en.wikipedia.org/wiki/Rust_(lang)"]);
        assert_eq!(d.hashtags, vec!["news"]);
        assert_eq!(d.text, "New: https://e.com/i?utm_source=li&x=(1) #news #not (see https://en.wikipedia.org/wiki/Rust_(lang))");
        // An escape inside a URL shows, as on LinkedIn.
        assert_eq!(read_little_text(r"https://e.com/?utm\_source=li").links, vec![r"https://e.com/?utm\_source=li"]);
    }

    #[test]
    fn version_window() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap().to_utc();
        assert!(check_version(Some("202611"), now).is_ok());
        assert!(check_version(Some("202511"), now).is_ok());
        assert!(check_version(Some("202510"), now).is_err());
        assert!(check_version(Some("202612"), now).is_err());
        assert!(check_version(Some("2026-11"), now).is_err());
        assert!(check_version(None, now).is_err());
    }
}
