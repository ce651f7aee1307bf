//! The Bluesky (AT Protocol PDS) fake: sessions (createSession limited to 30 per 5 minutes,
//! refreshSession with the refresh JWT, `400 ExpiredToken` on a stale access JWT),
//! createRecord with client rkeys (a duplicate rkey is a 500, as on the reference PDS),
//! getRecord (`400 RecordNotFound`), uploadBlob (1,000,000-byte limit), resolveHandle and
//! `RateLimit-*` headers (CHANNELS.md §2, §8).
//!
//! Records are checked by the lexicon and the rules Herald relies on: 300 graphemes / 3000
//! bytes, facet byte ranges inside the text on char boundaries, reply refs pointing at existing
//! records with matching CIDs, thumbs that were uploaded.
// Handlers answer refusals as `Err(Response)`: the size is the response, by design.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

use super::fault::{FaultPlan, Served, serve, with_faults};
use crate::channel::bluesky::tid;

/// The sandbox account's handle (use it as `identifier`).
pub const HANDLE: &str = "herald.bsky.social";
/// The sandbox account's DID.
pub const DID: &str = "did:plc:heraldsandbox2222222222";
/// The app password the fake accepts.
pub const APP_PASSWORD: &str = "sand-box2-app2-pass";
/// Handles the fake resolves besides its own.
pub const KNOWN_HANDLES: &[(&str, &str)] =
    &[("alice.bsky.social", "did:plc:fakealice"), ("bob.example.com", "did:plc:fakebob")];
/// createSession allowance per window (Bluesky: 30 per 5 minutes).
pub const LOGIN_LIMIT: usize = 30;
/// The createSession window.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// Thumbnail size limit.
pub const BLOB_MAX_BYTES: usize = 1_000_000;
const POST_NSID: &str = "app.bsky.feed.post";
/// Write points per hour, and the cost of a create.
const POINTS_PER_HOUR: u32 = 5000;
const CREATE_POINTS: u32 = 3;

/// One post the fake accepted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BskyPost {
    /// The record key.
    pub rkey: String,
    /// `at://did/app.bsky.feed.post/rkey`.
    pub uri: String,
    /// The record's CID.
    pub cid: String,
    /// The record as sent.
    pub record: Value,
}

impl BskyPost {
    /// The post text.
    pub fn text(&self) -> &str {
        self.record["text"].as_str().unwrap_or_default()
    }
    /// The reply's root and parent URIs.
    pub fn reply(&self) -> Option<(String, String)> {
        let r = self.record.get("reply")?;
        Some((r["root"]["uri"].as_str()?.to_string(), r["parent"]["uri"].as_str()?.to_string()))
    }
}

#[derive(Debug, Default)]
struct Tokens {
    /// access JWT → expired?
    access: HashMap<String, bool>,
    refresh: HashMap<String, ()>,
}

#[derive(Debug)]
struct BState {
    posts: Vec<BskyPost>,
    blobs: HashMap<String, (String, usize)>,
    handles: HashMap<String, String>,
    tokens: Tokens,
    logins: Vec<Instant>,
    login_total: u32,
    refreshes: u32,
    create_calls: u32,
    points_start: Instant,
    points_used: u32,
    counter: u64,
    /// The account's PDS as its DID document names it (`None`: this server is the PDS).
    pds: Option<String>,
    /// Every XRPC call's path, as received (`/pds/xrpc/…` when sent to the PDS).
    paths: Vec<String>,
}

type Shared = Arc<Mutex<BState>>;

/// A running Bluesky fake.
#[derive(Debug)]
pub struct BlueskyFake {
    /// `http://127.0.0.1:<port>`: the channel's `api_base` (the PDS).
    pub base_url: String,
    /// Faults to inject, consulted before every request.
    pub faults: Arc<FaultPlan>,
    state: Shared,
    _served: Served,
}

impl BlueskyFake {
    /// Start the fake with the sandbox account and the handles in [`KNOWN_HANDLES`].
    pub async fn start() -> std::io::Result<Self> {
        let mut handles: HashMap<String, String> =
            KNOWN_HANDLES.iter().map(|(h, d)| (h.to_string(), d.to_string())).collect();
        handles.insert(HANDLE.into(), DID.into());
        let state: Shared = Arc::new(Mutex::new(BState {
            posts: Vec::new(),
            blobs: HashMap::new(),
            handles,
            tokens: Tokens::default(),
            logins: Vec::new(),
            login_total: 0,
            refreshes: 0,
            create_calls: 0,
            points_start: Instant::now(),
            points_used: 0,
            counter: 0,
            pds: None,
            paths: Vec::new(),
        }));
        let faults = Arc::new(FaultPlan::default());
        let xrpc = Router::new()
            .route("/xrpc/com.atproto.server.createSession", post(create_session))
            .route("/xrpc/com.atproto.server.refreshSession", post(refresh_session))
            .route("/xrpc/com.atproto.server.getSession", get(get_session))
            .route("/xrpc/com.atproto.repo.createRecord", post(create_record))
            .route("/xrpc/com.atproto.repo.getRecord", get(get_record))
            .route("/xrpc/com.atproto.repo.uploadBlob", post(upload_blob))
            .route("/xrpc/com.atproto.identity.resolveHandle", get(resolve_handle));
        // The same server answers as the entryway (`/xrpc/…`) and as the account's PDS
        // (`/pds/xrpc/…`, named in the session's DID document after `set_separate_pds`).
        let paths = state.clone();
        let app = xrpc
            .clone()
            .nest("/pds", xrpc)
            .with_state(state.clone())
            .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                let paths = paths.clone();
                async move {
                    paths.lock().expect("bluesky fake lock").paths.push(req.uri().path().to_string());
                    next.run(req).await
                }
            }));
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, state, _served: served })
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, BState> {
        self.state.lock().expect("bluesky fake lock")
    }
    /// Every accepted post, in order.
    pub fn posts(&self) -> Vec<BskyPost> {
        self.lock().posts.clone()
    }
    /// Successful createSession calls so far.
    pub fn logins(&self) -> u32 {
        self.lock().login_total
    }
    /// Successful refreshSession calls so far.
    pub fn refreshes(&self) -> u32 {
        self.lock().refreshes
    }
    /// createRecord requests that reached the handler.
    pub fn create_calls(&self) -> u32 {
        self.lock().create_calls
    }
    /// Uploaded blobs: CID → (mime, size).
    pub fn blobs(&self) -> HashMap<String, (String, usize)> {
        self.lock().blobs.clone()
    }
    /// Make every access JWT stale (the next call gets `400 ExpiredToken`).
    pub fn expire_access_tokens(&self) {
        self.lock().tokens.access.values_mut().for_each(|e| *e = true);
    }
    /// Revoke every refresh JWT (a refresh then fails with `ExpiredToken`).
    pub fn revoke_refresh_tokens(&self) {
        self.lock().tokens.refresh.clear();
    }
    /// Name a PDS apart from the entryway in the session's DID document (`{base_url}/pds`), as
    /// bsky.social does: clients should then send repo calls there.
    pub fn set_separate_pds(&self) {
        let pds = format!("{}/pds", self.base_url);
        self.lock().pds = Some(pds);
    }
    /// Every XRPC path received, in order.
    pub fn paths(&self) -> Vec<String> {
        self.lock().paths.clone()
    }
    /// Make a handle resolvable.
    pub fn add_handle(&self, handle: &str, did: &str) {
        self.lock().handles.insert(handle.into(), did.into());
    }
}

fn xrpc_error(status: StatusCode, name: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "error": name, "message": message }))).into_response()
}

fn invalid(message: &str) -> Response {
    xrpc_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

/// A CID-looking string from content: `bafyrei…` (records) or `bafkrei…` (raw blobs).
fn cid(prefix: &str, content: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    const B32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = Sha256::digest(content);
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = String::from(prefix);
    for b in digest.iter() {
        bits = (bits << 8) | u64::from(*b);
        n += 8;
        while n >= 5 {
            n -= 5;
            out.push(B32[((bits >> n) & 31) as usize] as char);
        }
    }
    out
}

fn token(s: &mut BState, kind: &str) -> String {
    s.counter += 1;
    format!("fake.{kind}.{}", cid("", format!("{kind}{}{:?}", s.counter, Instant::now()).as_bytes()))
}

fn new_session(s: &mut BState) -> Value {
    let access = token(s, "access");
    let refresh = token(s, "refresh");
    s.tokens.access.insert(access.clone(), false);
    s.tokens.refresh.insert(refresh.clone(), ());
    json!({ "accessJwt": access, "refreshJwt": refresh, "handle": HANDLE, "did": DID, "active": true })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

/// Check the access JWT.
fn authorize(s: &BState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(t) = bearer(headers) else {
        return Err(xrpc_error(StatusCode::UNAUTHORIZED, "AuthMissing", "Authentication Required"));
    };
    match s.tokens.access.get(t) {
        Some(false) => Ok(()),
        Some(true) => Err(xrpc_error(StatusCode::BAD_REQUEST, "ExpiredToken", "Token has expired")),
        None => Err(xrpc_error(StatusCode::UNAUTHORIZED, "InvalidToken", "Token could not be verified")),
    }
}

fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(invalid("Wrong request encoding (Content-Type): expected application/json"));
    }
    serde_json::from_slice(body).map_err(|_| invalid("Request body is not valid JSON"))
}

async fn create_session(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let v = match json_body(&headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut s = state.lock().expect("bluesky fake lock");
    s.logins.retain(|t| t.elapsed() < LOGIN_WINDOW);
    let reset = chrono::Utc::now().timestamp() + LOGIN_WINDOW.as_secs() as i64;
    let rl = |mut res: Response, remaining: usize| {
        for (k, v) in [
            ("ratelimit-limit", LOGIN_LIMIT.to_string()),
            ("ratelimit-remaining", remaining.to_string()),
            ("ratelimit-reset", reset.to_string()),
            ("ratelimit-policy", format!("{LOGIN_LIMIT};w={}", LOGIN_WINDOW.as_secs())),
        ] {
            res.headers_mut().insert(k, v.parse().expect("ascii header"));
        }
        res
    };
    if s.logins.len() >= LOGIN_LIMIT {
        return rl(xrpc_error(StatusCode::TOO_MANY_REQUESTS, "RateLimitExceeded", "Rate Limit Exceeded"), 0);
    }
    let id = v["identifier"].as_str().unwrap_or_default();
    let password = v["password"].as_str().unwrap_or_default();
    if !(id == HANDLE || id == DID) || password != APP_PASSWORD {
        return xrpc_error(StatusCode::UNAUTHORIZED, "AuthenticationRequired", "Invalid identifier or password");
    }
    s.logins.push(Instant::now());
    s.login_total += 1;
    let remaining = LOGIN_LIMIT - s.logins.len();
    let mut session = new_session(&mut s);
    if let Some(pds) = &s.pds {
        session["didDoc"] = json!({
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": DID,
            "alsoKnownAs": [format!("at://{HANDLE}")],
            "service": [{ "id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds }],
        });
    }
    rl(axum::Json(session).into_response(), remaining)
}

async fn refresh_session(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = state.lock().expect("bluesky fake lock");
    let Some(t) = bearer(&headers).map(String::from) else {
        return xrpc_error(StatusCode::UNAUTHORIZED, "AuthMissing", "Authentication Required");
    };
    if s.tokens.refresh.remove(&t).is_none() {
        return xrpc_error(StatusCode::BAD_REQUEST, "ExpiredToken", "Token has been revoked");
    }
    s.refreshes += 1;
    let session = new_session(&mut s);
    axum::Json(session).into_response()
}

async fn get_session(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let s = state.lock().expect("bluesky fake lock");
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    axum::Json(json!({ "handle": HANDLE, "did": DID, "active": true })).into_response()
}

fn roll_points(s: &mut BState) {
    if s.points_start.elapsed() >= Duration::from_secs(3600) {
        s.points_start = Instant::now();
        s.points_used = 0;
    }
}

fn points_headers(s: &mut BState, res: &mut Response) {
    roll_points(s);
    let reset = chrono::Utc::now().timestamp() + 3600 - s.points_start.elapsed().as_secs() as i64;
    for (k, v) in [
        ("ratelimit-limit", POINTS_PER_HOUR.to_string()),
        ("ratelimit-remaining", POINTS_PER_HOUR.saturating_sub(s.points_used).to_string()),
        ("ratelimit-reset", reset.to_string()),
        ("ratelimit-policy", format!("{POINTS_PER_HOUR};w=3600")),
    ] {
        res.headers_mut().insert(k, v.parse().expect("ascii header"));
    }
}

async fn create_record(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().expect("bluesky fake lock");
    s.create_calls += 1;
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    let v = match json_body(&headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    roll_points(&mut s);
    if s.points_used + CREATE_POINTS > POINTS_PER_HOUR {
        let mut res = xrpc_error(StatusCode::TOO_MANY_REQUESTS, "RateLimitExceeded", "Rate Limit Exceeded");
        points_headers(&mut s, &mut res);
        return res;
    }
    let repo = v["repo"].as_str().unwrap_or_default();
    if repo != DID && repo != HANDLE {
        return invalid("Input/repo must be the authenticated account");
    }
    if v["collection"].as_str() != Some(POST_NSID) {
        return invalid("Input/collection: this sandbox PDS only stores app.bsky.feed.post");
    }
    let rkey = match v.get("rkey") {
        None | Some(Value::Null) => tid::next(),
        Some(Value::String(k)) if tid::is_valid(k) => k.clone(),
        Some(_) => return invalid("Input/rkey must be a valid TID for app.bsky.feed.post"),
    };
    let record = v.get("record").cloned().unwrap_or(Value::Null);
    if let Err(msg) = check_post(&s, &record) {
        return invalid(&format!("Invalid app.bsky.feed.post record: {msg}"));
    }
    if s.posts.iter().any(|p| p.rkey == rkey) {
        // What the reference PDS does on a duplicate rkey (atproto#3718): a bare 500.
        return xrpc_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "Internal Server Error");
    }
    s.points_used += CREATE_POINTS;
    let uri = format!("at://{DID}/{POST_NSID}/{rkey}");
    let cid = cid("bafyrei", record.to_string().as_bytes());
    s.posts.push(BskyPost { rkey, uri: uri.clone(), cid: cid.clone(), record });
    let rev = tid::next();
    let mut res = axum::Json(json!({
        "uri": uri, "cid": cid,
        "commit": { "cid": self::cid("bafyrei", rev.as_bytes()), "rev": rev },
        "validationStatus": "valid",
    }))
    .into_response();
    points_headers(&mut s, &mut res);
    res
}

/// The post lexicon plus the checks Herald must pass.
fn check_post(s: &BState, r: &Value) -> Result<(), String> {
    if r["$type"].as_str() != Some(POST_NSID) {
        return Err("Record/$type must be app.bsky.feed.post".into());
    }
    let text = r["text"].as_str().ok_or("Record must have the property \"text\"")?;
    let graphemes = text.graphemes(true).count();
    if graphemes > 300 {
        return Err(format!("Record/text must not be longer than 300 graphemes (got {graphemes})"));
    }
    if text.len() > 3000 {
        return Err("Record/text must not be longer than 3000 characters".into());
    }
    let created = r["createdAt"].as_str().ok_or("Record must have the property \"createdAt\"")?;
    chrono::DateTime::parse_from_rfc3339(created).map_err(|_| "Record/createdAt must be an valid atproto datetime".to_string())?;
    if let Some(facets) = r.get("facets") {
        let facets = facets.as_array().ok_or("Record/facets must be an array")?;
        let mut ranges = Vec::new();
        for (i, f) in facets.iter().enumerate() {
            let (Some(start), Some(end)) = (f["index"]["byteStart"].as_u64(), f["index"]["byteEnd"].as_u64()) else {
                return Err(format!("Record/facets/{i}/index must have byteStart and byteEnd"));
            };
            let (start, end) = (start as usize, end as usize);
            if start >= end || end > text.len() || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                return Err(format!("Record/facets/{i}/index {start}..{end} is not a char-aligned range of the {}-byte text", text.len()));
            }
            ranges.push((start, end));
            let features = f["features"].as_array().filter(|a| !a.is_empty()).ok_or(format!("Record/facets/{i}/features must not be empty"))?;
            for feat in features {
                match feat["$type"].as_str() {
                    Some("app.bsky.richtext.facet#link") if feat["uri"].as_str().is_some_and(|u| u.contains("://")) => {}
                    Some("app.bsky.richtext.facet#mention") if feat["did"].as_str().is_some_and(|d| d.starts_with("did:")) => {}
                    Some("app.bsky.richtext.facet#tag")
                        if feat["tag"].as_str().is_some_and(|t| !t.is_empty() && !t.starts_with('#') && t.graphemes(true).count() <= 64 && t.len() <= 640) => {}
                    _ => return Err(format!("Record/facets/{i}/features: invalid feature {feat}")),
                }
            }
        }
        ranges.sort();
        if ranges.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err("Record/facets must not overlap".into());
        }
    }
    if let Some(embed) = r.get("embed") {
        if embed["$type"].as_str() != Some("app.bsky.embed.external") {
            return Err("Record/embed: this sandbox accepts app.bsky.embed.external only".into());
        }
        let ext = &embed["external"];
        for k in ["uri", "title", "description"] {
            if !ext[k].is_string() {
                return Err(format!("Record/embed/external must have the property \"{k}\""));
            }
        }
        if let Some(thumb) = ext.get("thumb") {
            let link = thumb["ref"]["$link"].as_str().unwrap_or_default();
            let Some((mime, size)) = s.blobs.get(link) else {
                return Err("Record/embed/external/thumb refers to a blob that was not uploaded".into());
            };
            if thumb["$type"].as_str() != Some("blob") || !mime.starts_with("image/") || *size > BLOB_MAX_BYTES {
                return Err("Record/embed/external/thumb must be an image blob of at most 1000000 bytes".into());
            }
        }
    }
    if let Some(reply) = r.get("reply") {
        for k in ["root", "parent"] {
            let (Some(uri), Some(c)) = (reply[k]["uri"].as_str(), reply[k]["cid"].as_str()) else {
                return Err(format!("Record/reply/{k} must be a strongRef {{uri, cid}}"));
            };
            if !s.posts.iter().any(|p| p.uri == uri && p.cid == c) {
                return Err(format!("Record/reply/{k} does not point at an existing record ({uri})"));
            }
        }
    }
    Ok(())
}

async fn get_record(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let s = state.lock().expect("bluesky fake lock");
    let (Some(repo), Some(collection), Some(rkey)) = (q.get("repo"), q.get("collection"), q.get("rkey")) else {
        return invalid("Params must have the properties \"repo\", \"collection\" and \"rkey\"");
    };
    let uri = format!("at://{repo}/{collection}/{rkey}");
    let found = (repo == DID || repo == HANDLE) && collection == POST_NSID;
    match s.posts.iter().find(|p| found && &p.rkey == rkey) {
        Some(p) => axum::Json(json!({ "uri": p.uri, "cid": p.cid, "value": p.record })).into_response(),
        None => xrpc_error(StatusCode::BAD_REQUEST, "RecordNotFound", &format!("Could not locate record: {uri}")),
    }
}

async fn upload_blob(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().expect("bluesky fake lock");
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    let mime = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if !mime.starts_with("image/") {
        return invalid("uploadBlob: expected an image/* Content-Type");
    }
    if body.len() > BLOB_MAX_BYTES {
        return xrpc_error(StatusCode::BAD_REQUEST, "BlobTooLarge", "This file is too large.");
    }
    let link = cid("bafkrei", &body);
    s.blobs.insert(link.clone(), (mime.clone(), body.len()));
    axum::Json(json!({ "blob": { "$type": "blob", "ref": { "$link": link }, "mimeType": mime, "size": body.len() } })).into_response()
}

async fn resolve_handle(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let s = state.lock().expect("bluesky fake lock");
    match q.get("handle").and_then(|h| s.handles.get(&h.to_ascii_lowercase())) {
        Some(did) => axum::Json(json!({ "did": did })).into_response(),
        None => invalid("Unable to resolve handle"),
    }
}
