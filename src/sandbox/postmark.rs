//! The Postmark fake: `POST /email/batch` as CHANNELS.md §7 describes.
//!
//! Checks `X-Postmark-Server-Token` (401, ErrorCode 10), a JSON array body (422, ErrorCode 402),
//! at most 500 messages (422, ErrorCode 300). Answers 200 with one result per message in
//! request order, even when some fail: ErrorCode 0 "OK" with a MessageID, 300 for an invalid
//! message (bad From/To, no Subject, no body), 406 for a recipient marked inactive. Keeps every
//! accepted message. A [`FaultPlan`] injects 429/5xx answers, delays and dropped connections.
//!
//! `GET /messages/outbound` is the Messages API's outbound search (postmarkapp.com/developer/
//! api/messages-api): `X-Postmark-Server-Token` (401, ErrorCode 10) and `Accept:
//! application/json` required; `count` (1..=500) and `offset` required integers with
//! `count + offset` ≤ 10,000, else 422 (Postmark's messages: "Count + Offset cannot exceed
//! 10000 messages."; the ErrorCode of a bad query parameter is not documented, so the fake
//! answers a non-zero one, 1, and clients must not depend on it). Filters `tag` (exact, case-
//! insensitive), `recipient`; newest first; answers `{TotalCount, Messages: [{MessageID, Tag,
//! To: [{Email, Name}], Recipients, Status, Subject, From, ReceivedAt, MessageStream,
//! Metadata}]}`. [`PostmarkFake::set_search_lag`] hides messages accepted less than that long
//! ago, like an index that has not caught up.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::extract::RawQuery;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::fault::{FaultPlan, with_faults};

/// The server token the fake accepts.
pub const TOKEN: &str = "sandbox-postmark-server-token";
/// Most messages in one batch call.
pub const BATCH_LIMIT: usize = 500;
/// Longest `Tag` Postmark takes.
pub const TAG_MAX: usize = 1000;
/// Most messages one search page returns.
pub const SEARCH_COUNT_MAX: u64 = 500;
/// `count + offset` may not exceed this.
pub const SEARCH_WINDOW: u64 = 10_000;
/// Postmark takes up to 50 MB per batch call (CHANNELS.md, Postmark); axum's own default of
/// 2 MB would refuse a full batch of ordinary newsletters.
pub const BATCH_BYTES: usize = 50 * 1024 * 1024;

/// One header of a message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PmHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// A message as Postmark receives it (the fields Herald uses; others are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PmMessage {
    /// Sender.
    #[serde(default)]
    pub from: String,
    /// Recipient(s), comma-separated.
    #[serde(default)]
    pub to: String,
    /// Subject.
    #[serde(default)]
    pub subject: String,
    /// HTML body.
    #[serde(default)]
    pub html_body: Option<String>,
    /// Text body.
    #[serde(default)]
    pub text_body: Option<String>,
    /// Reply-To.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Custom headers.
    #[serde(default)]
    pub headers: Vec<PmHeader>,
    /// Message stream.
    #[serde(default)]
    pub message_stream: Option<String>,
    /// Metadata.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Tag (Postmark: one per message, at most 1,000 characters).
    #[serde(default)]
    pub tag: Option<String>,
}

impl PmMessage {
    /// A custom header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }
}

/// An accepted message and its id.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Postmark's MessageID.
    pub id: String,
    /// The message.
    pub message: PmMessage,
    /// When it was accepted (RFC 3339).
    pub received_at: String,
    /// When it was accepted, for the search lag.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    accepted: Vec<Accepted>,
    inactive: HashSet<String>,
    batch_sizes: Vec<usize>,
    search_lag: std::time::Duration,
    searches: usize,
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
}

/// A running Postmark fake. Dropping it stops the server.
pub struct PostmarkFake {
    /// `http://127.0.0.1:<port>`: the adapter's `api_base`.
    pub base_url: String,
    /// Faults to inject (route `POST /email/batch`).
    pub faults: Arc<FaultPlan>,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PostmarkFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PostmarkFake {
    /// Start on `127.0.0.1:0` (or where [`super::fault::bind_in`] says).
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/email/batch", post(batch))
            .route("/messages/outbound", get(outbound_search))
            .with_state(AppState { inner: inner.clone() })
            .layer(axum::extract::DefaultBodyLimit::max(BATCH_BYTES));
        let app = with_faults(app, faults.clone());
        let listener = tokio::net::TcpListener::bind(super::fault::bind_addr()).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url: format!("http://{addr}"), faults, inner, task })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mark a recipient inactive (a hard bounce or complaint on Postmark's side): ErrorCode 406.
    pub fn set_inactive(&self, email: &str) {
        self.lock().inactive.insert(email.to_lowercase());
    }

    /// Every accepted message, in order.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.lock().accepted.clone()
    }

    /// How many messages were accepted for `email`.
    pub fn accepted_for(&self, email: &str) -> usize {
        let e = email.to_lowercase();
        self.lock().accepted.iter().filter(|a| a.message.to.to_lowercase().contains(&e)).count()
    }

    /// Hide messages accepted less than `lag` ago from the outbound search (an index behind).
    pub fn set_search_lag(&self, lag: std::time::Duration) {
        self.lock().search_lag = lag;
    }

    /// How many outbound searches were answered 200.
    pub fn searches(&self) -> usize {
        self.lock().searches
    }

    /// The size of every batch call that reached the handler, in order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.lock().batch_sizes.clone()
    }
}

fn api_error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, axum::Json(json!({ "ErrorCode": code, "Message": message }))).into_response()
}

fn valid_mailbox(s: &str) -> bool {
    s.parse::<lettre::message::Mailbox>().is_ok()
}

async fn batch(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers.get("x-postmark-server-token").and_then(|v| v.to_str().ok());
    if token != Some(TOKEN) {
        return api_error(
            StatusCode::UNAUTHORIZED,
            10,
            "Request does not contain a valid Server token. Please check that you are sending the correct value in the 'X-Postmark-Server-Token' HTTP header.",
        );
    }
    let messages: Vec<PmMessage> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(_) => return api_error(StatusCode::UNPROCESSABLE_ENTITY, 402, "Received invalid JSON input."),
    };
    if messages.len() > BATCH_LIMIT {
        return api_error(StatusCode::UNPROCESSABLE_ENTITY, 300, &format!("Batch must not contain more than {BATCH_LIMIT} messages."));
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut g = st.inner.lock().unwrap_or_else(|e| e.into_inner());
    g.batch_sizes.push(messages.len());
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let to = m.to.trim().to_string();
        let problem = if !valid_mailbox(&m.from) {
            Some(format!("Invalid 'From' address: '{}'.", m.from))
        } else if to.is_empty() || !to.split(',').all(|t| valid_mailbox(t.trim())) {
            Some(format!("Invalid 'To' address: '{to}'."))
        } else if m.subject.trim().is_empty() {
            Some("Provide a subject for the message.".to_string())
        } else if m.html_body.as_deref().unwrap_or("").is_empty() && m.text_body.as_deref().unwrap_or("").is_empty() {
            Some("Provide either email TextBody or HtmlBody or both.".to_string())
        } else if m.tag.as_deref().is_some_and(|t| t.chars().count() > TAG_MAX) {
            Some(format!("Tag must be at most {TAG_MAX} characters."))
        } else {
            None
        };
        if let Some(p) = problem {
            out.push(json!({ "ErrorCode": 300, "Message": p, "To": to }));
            continue;
        }
        let inactive: Vec<&str> = to
            .split(',')
            .map(str::trim)
            .filter(|t| {
                let addr = t.rsplit('<').next().unwrap_or(t).trim_end_matches('>').to_lowercase();
                g.inactive.contains(&addr)
            })
            .collect();
        if !inactive.is_empty() {
            out.push(json!({
                "ErrorCode": 406,
                "Message": format!("You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: {}. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.", inactive.join(", ")),
                "To": to,
            }));
            continue;
        }
        let id = uuid::Uuid::new_v4().to_string();
        out.push(json!({ "ErrorCode": 0, "Message": "OK", "MessageID": id, "SubmittedAt": now, "To": to }));
        g.accepted.push(Accepted { id, message: m, received_at: now.clone(), at: std::time::Instant::now() });
    }
    (StatusCode::OK, axum::Json(Value::Array(out))).into_response()
}

/// The address inside `Name <addr>` (or the bare address), lowercase.
fn bare_address(t: &str) -> String {
    let t = t.trim();
    t.rsplit('<').next().unwrap_or(t).trim_end_matches('>').trim().to_lowercase()
}

async fn outbound_search(State(st): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let token = headers.get("x-postmark-server-token").and_then(|v| v.to_str().ok());
    if token != Some(TOKEN) {
        return api_error(
            StatusCode::UNAUTHORIZED,
            10,
            "Request does not contain a valid Server token. Please check that you are sending the correct value in the 'X-Postmark-Server-Token' HTTP header.",
        );
    }
    let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !accept.to_ascii_lowercase().contains("application/json") {
        return api_error(StatusCode::NOT_ACCEPTABLE, 1, "The Accept header must be application/json.");
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let param = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let number = |k: &str| -> Result<u64, String> {
        match param(k) {
            None => Err(format!("The '{k}' parameter is required.")),
            Some(v) => v.trim().parse::<u64>().map_err(|_| format!("The '{k}' parameter must be a number.")),
        }
    };
    let (count, offset) = match (number("count"), number("offset")) {
        (Ok(c), Ok(o)) => (c, o),
        (Err(m), _) | (_, Err(m)) => return api_error(StatusCode::UNPROCESSABLE_ENTITY, 1, &m),
    };
    if count == 0 || count > SEARCH_COUNT_MAX {
        return api_error(StatusCode::UNPROCESSABLE_ENTITY, 1, &format!("Count must be between 1 and {SEARCH_COUNT_MAX}."));
    }
    if count + offset > SEARCH_WINDOW {
        return api_error(StatusCode::UNPROCESSABLE_ENTITY, 1, "Count + Offset cannot exceed 10000 messages.");
    }
    let tag = param("tag");
    let recipient = param("recipient").map(|r| r.trim().to_lowercase());
    let mut g = st.inner.lock().unwrap_or_else(|e| e.into_inner());
    let lag = g.search_lag;
    let matching: Vec<&Accepted> = g
        .accepted
        .iter()
        .rev()
        .filter(|a| a.at.elapsed() >= lag)
        .filter(|a| tag.as_deref().is_none_or(|t| a.message.tag.as_deref().is_some_and(|mt| mt.eq_ignore_ascii_case(t))))
        .filter(|a| recipient.as_deref().is_none_or(|r| a.message.to.split(',').any(|t| bare_address(t) == r)))
        .collect();
    let total = matching.len();
    let messages: Vec<Value> = matching
        .iter()
        .skip(offset as usize)
        .take(count as usize)
        .map(|a| {
            let to: Vec<String> = a.message.to.split(',').map(bare_address).collect();
            json!({
                "Tag": a.message.tag.clone().unwrap_or_default(),
                "MessageID": a.id,
                "MessageStream": a.message.message_stream.clone().unwrap_or_else(|| "outbound".into()),
                "To": to.iter().map(|e| json!({ "Email": e, "Name": null })).collect::<Vec<_>>(),
                "Cc": [],
                "Bcc": [],
                "Recipients": to,
                "ReceivedAt": a.received_at,
                "From": a.message.from,
                "Subject": a.message.subject,
                "Attachments": [],
                "Status": "Sent",
                "TrackOpens": false,
                "TrackLinks": "None",
                "Metadata": a.message.metadata.clone().unwrap_or_else(|| json!({})),
                "Sandboxed": false,
            })
        })
        .collect();
    g.searches += 1;
    (StatusCode::OK, axum::Json(json!({ "TotalCount": total, "Messages": messages }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 500 messages of 10 kB each (5 MB) is a normal full batch: Postmark takes it.
    #[tokio::test]
    async fn a_full_batch_of_ordinary_newsletters_is_accepted() {
        let fake = PostmarkFake::start().await.unwrap();
        let body = "x".repeat(10_000);
        let batch: Vec<Value> = (0..BATCH_LIMIT)
            .map(|i| json!({"From": "news@example.com", "To": format!("r{i}@example.com"), "Subject": "Hi", "TextBody": body, "MessageStream": "broadcast"}))
            .collect();
        let res = crate::channel::http::client()
            .post(format!("{}/email/batch", fake.base_url))
            .header("X-Postmark-Server-Token", TOKEN)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let out: Vec<Value> = res.json().await.unwrap();
        assert_eq!(out.len(), BATCH_LIMIT);
        assert!(out.iter().all(|m| m["ErrorCode"] == 0), "{:?}", out.first());
    }

    async fn send_tagged(fake: &PostmarkFake, tag: &str, n: usize, from: usize) {
        let batch: Vec<Value> = (from..from + n)
            .map(|i| json!({"From": "news@example.com", "To": format!("Reader {i} <r{i}@example.com>"), "Subject": "Hi", "TextBody": "x", "Tag": tag}))
            .collect();
        let res = crate::channel::http::client()
            .post(format!("{}/email/batch", fake.base_url))
            .header("X-Postmark-Server-Token", TOKEN)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    async fn search(fake: &PostmarkFake, query: &str, token: Option<&str>, accept: bool) -> (u16, Value) {
        let mut req = crate::channel::http::client().get(format!("{}/messages/outbound?{query}", fake.base_url));
        if let Some(t) = token {
            req = req.header("X-Postmark-Server-Token", t);
        }
        if accept {
            req = req.header("Accept", "application/json");
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    /// The outbound search as Postmark documents it: server token and `Accept` required,
    /// `count` ≤ 500 and `offset` required, `count + offset` ≤ 10,000, filtered by tag, paged.
    #[tokio::test]
    async fn the_outbound_search_filters_by_tag_pages_and_refuses_what_postmark_refuses() {
        let fake = PostmarkFake::start().await.unwrap();
        send_tagged(&fake, "batch-a", 3, 0).await;
        send_tagged(&fake, "batch-b", 2, 3).await;
        let (st, v) = search(&fake, "count=500&offset=0&tag=batch-a", None, true).await;
        assert_eq!((st, v["ErrorCode"].as_i64()), (401, Some(10)));
        let (st, _) = search(&fake, "count=500&offset=0&tag=batch-a", Some("wrong"), true).await;
        assert_eq!(st, 401);
        let (st, _) = search(&fake, "count=500&offset=0&tag=batch-a", Some(TOKEN), false).await;
        assert_eq!(st, 406, "Accept: application/json is required");
        for bad in ["offset=0&tag=batch-a", "count=500&tag=batch-a", "count=501&offset=0", "count=0&offset=0", "count=500&offset=9501", "count=x&offset=0"] {
            let (st, v) = search(&fake, bad, Some(TOKEN), true).await;
            assert_eq!(st, 422, "{bad}");
            assert!(v["ErrorCode"].as_i64().is_some_and(|c| c != 0) && v["Message"].is_string(), "{bad}: {v}");
        }
        let (st, v) = search(&fake, "count=500&offset=9500&tag=batch-a", Some(TOKEN), true).await;
        assert_eq!(st, 200, "count + offset = 10,000 is allowed: {v}");
        let (st, v) = search(&fake, "count=500&offset=0&tag=batch-a", Some(TOKEN), true).await;
        assert_eq!(st, 200);
        assert_eq!(v["TotalCount"], 3);
        let mut got: Vec<&str> = v["Messages"].as_array().unwrap().iter().map(|m| m["Recipients"][0].as_str().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, ["r0@example.com", "r1@example.com", "r2@example.com"]);
        let m = &v["Messages"][0];
        assert_eq!(m["Tag"], "batch-a");
        assert!(m["MessageID"].is_string() && m["To"][0]["Email"].is_string() && m["Status"] == "Sent", "{m}");
        // Paging: two of three, then the third.
        let (_, p1) = search(&fake, "count=2&offset=0&tag=batch-a", Some(TOKEN), true).await;
        let (_, p2) = search(&fake, "count=2&offset=2&tag=batch-a", Some(TOKEN), true).await;
        assert_eq!((p1["Messages"].as_array().unwrap().len(), p2["Messages"].as_array().unwrap().len(), p2["TotalCount"].as_u64()), (2, 1, Some(3)));
        // An index behind: nothing shows until the lag has passed.
        fake.set_search_lag(std::time::Duration::from_secs(3600));
        let (_, v) = search(&fake, "count=500&offset=0&tag=batch-b", Some(TOKEN), true).await;
        assert_eq!((v["TotalCount"].as_u64(), v["Messages"].as_array().map(Vec::len)), (Some(0), Some(0)));
    }

    #[tokio::test]
    async fn a_tag_longer_than_postmark_takes_fails_its_message() {
        let fake = PostmarkFake::start().await.unwrap();
        let batch = json!([{"From": "news@example.com", "To": "r@example.com", "Subject": "Hi", "TextBody": "x", "Tag": "t".repeat(TAG_MAX + 1)}]);
        let res = crate::channel::http::client().post(format!("{}/email/batch", fake.base_url)).header("X-Postmark-Server-Token", TOKEN).json(&batch).send().await.unwrap();
        let out: Vec<Value> = res.json().await.unwrap();
        assert_eq!(out[0]["ErrorCode"], 300);
        assert!(fake.accepted().is_empty());
    }
}
