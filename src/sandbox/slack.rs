//! The Slack fake: incoming webhooks and the Web API's `chat.postMessage`,
//! `conversations.history` and `auth.test`, from Slack's own documentation (docs.slack.dev:
//! messaging/sending-messages-using-incoming-webhooks and its "Handling errors",
//! api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks,
//! reference/methods/chat.postMessage, reference/methods/conversations.history,
//! apis/web-api/pagination, apis/web-api/rate-limits, messaging/message-metadata,
//! reference/block-kit/blocks) and the shapes of slackapi/python-slack-sdk
//! (`slack_sdk/web/slack_response.py`, `slack_sdk/webhook/client.py`) and
//! slackapi/node-slack-sdk's `ChatPostMessageResponse` / `ConversationsHistoryResponse`.
//!
//! Incoming webhook, `POST /services/{team}/{hook}/{secret}`:
//! - an unknown team or hook → `404 no_service`; the right hook with a wrong secret →
//!   `403 invalid_token`; the archived channel's hook → `410 channel_is_archived`;
//! - the body must be JSON (`Content-Type: application/json`) or a form with a `payload` field
//!   holding JSON; anything else, or JSON that is not an object → `400 invalid_payload`;
//! - neither `text` nor `blocks` → `400 no_text`; blocks Slack refuses (below) →
//!   `400 invalid_blocks`; accepted → `200 ok` as `text/html`, nothing that names the message.
//!
//! Web API, `POST /api/{method}` (JSON for `chat.postMessage`; a form or the query string for
//! every method), answered `200` with `{"ok": false, "error": "…"}` for every refusal:
//! - the token from `Authorization: Bearer` (or a form's `token`; never a JSON body's):
//!   none → `not_authed`, unknown → `invalid_auth`, the revoked one → `token_revoked`; a token
//!   without the method's scope → `missing_scope` with `needed` and `provided`;
//! - a body whose content type is neither JSON nor a form → `invalid_post_type`; broken JSON →
//!   `invalid_json`; JSON without `charset` is accepted with the `missing_charset` warning;
//! - `chat.postMessage`: `channel` must be the sandbox channel (its id or `#name`); another
//!   channel the bot is not in → `not_in_channel`, the archived one → `is_archived`, anything
//!   else → `channel_not_found`; neither `text` nor `blocks` → `no_text`; more than 50 blocks,
//!   an unknown block type, a section's text over 3,000, a header's over 150 or not
//!   `plain_text` → `invalid_blocks` with `errors`; `metadata` without a word-character
//!   `event_type` or an object `event_payload` → `invalid_metadata_format`; `text` past 40,000
//!   characters is truncated, as Slack does. Accepted → `{"ok": true, "channel", "ts",
//!   "message"}`, the message kept with its metadata;
//! - `conversations.history` (`channel` an id, `oldest`, `latest`, `inclusive`, `limit` 1–999,
//!   default 100, `cursor`, `include_all_metadata`): newest first; `metadata` only with
//!   `include_all_metadata=true`; more than `limit` → `has_more` and
//!   `response_metadata.next_cursor` (base64 of `next_ts:<ts>`, as Slack's look); a cursor it
//!   did not give → `invalid_cursor`. Needs `channels:history` (`groups:history` for `G…`).
//! - A [`FaultPlan`] scripts failures (a `429 ratelimited` with `Retry-After`, 5xx, drops,
//!   accept-then-drop); with a journal set, every request is journaled.
// Handlers answer refusals as `Err(Response)`: the size is the response, by design.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The workspace's id.
pub const TEAM_ID: &str = "T0HERALD01";
/// The incoming webhook's id.
pub const HOOK_ID: &str = "B0HERALD01";
/// The incoming webhook's secret (the URL's last segment).
pub const HOOK_SECRET: &str = "sandboxSlackHookSecret0a1B2c3D4";
/// A webhook whose channel was archived.
pub const ARCHIVED_HOOK_ID: &str = "B0ARCHIVE1";
/// A bot token with `chat:write`, `channels:history` and `groups:history`.
pub const BOT_TOKEN: &str = "xoxb-1000000001-2000000002-sandboxSlackBotToken";
/// A bot token with `chat:write` only.
pub const WRITE_ONLY_TOKEN: &str = "xoxb-1000000001-2000000002-sandboxSlackWriteOnly";
/// A revoked token.
pub const REVOKED_TOKEN: &str = "xoxb-1000000001-2000000002-sandboxSlackRevoked0";
/// The channel the bot and the webhook post in.
pub const CHANNEL_ID: &str = "C0HERALD01";
/// Its name.
pub const CHANNEL_NAME: &str = "herald-news";
/// A channel the bot is not a member of.
pub const NOT_MEMBER_CHANNEL_ID: &str = "C0NOTMEMB1";
/// An archived channel.
pub const ARCHIVED_CHANNEL_ID: &str = "C0ARCHIVE1";
/// The bot's user and bot ids.
const BOT_USER: &str = "U0HERALDBT";
const BOT_ID: &str = "B0HERALDBT";

/// One message the fake accepted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SlackMessage {
    /// Its `ts`, Slack's message id in the channel.
    pub ts: String,
    /// The channel.
    pub channel: String,
    /// `"webhook"` or `"chat.postMessage"`.
    pub via: String,
    /// The request's parameters exactly as received (JSON body, or the form's fields decoded).
    pub body: Value,
    /// The text as stored (truncated past 40,000 characters).
    pub text: String,
    /// The message metadata, when it had some.
    pub metadata: Option<Value>,
}

#[derive(Default)]
struct SState {
    messages: Vec<SlackMessage>,
    last_ts: (i64, u32),
}

type Shared = Arc<Mutex<SState>>;

/// A running Slack fake.
pub struct SlackFake {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Faults to inject, consulted before every request.
    pub faults: Arc<FaultPlan>,
    state: Shared,
    _served: Served,
}

impl SlackFake {
    /// Start on `127.0.0.1:0` (or where [`super::fault::bind_in`] says).
    pub async fn start() -> std::io::Result<Self> {
        let state: Shared = Arc::default();
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/services/{team}/{hook}/{secret}", post(webhook))
            .route("/api/{method}", post(web_api).get(web_api))
            .with_state(state.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, state, _served: served })
    }
    /// The incoming webhook URL: `<base>/services/<team>/<hook>/<secret>`.
    pub fn webhook_url(&self) -> String {
        format!("{}/services/{TEAM_ID}/{HOOK_ID}/{HOOK_SECRET}", self.base_url)
    }
    /// The Web API's base, `<base>/api`.
    pub fn api_base(&self) -> String {
        format!("{}/api", self.base_url)
    }
    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<SlackMessage> {
        self.state.lock().expect("slack fake lock").messages.clone()
    }
}

fn hook_error(code: StatusCode, text: &str) -> Response {
    (code, [("content-type", "text/html")], text.to_string()).into_response()
}

fn api_error(error: &str) -> Response {
    axum::Json(json!({"ok": false, "error": error})).into_response()
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// Block Kit's checks (reference/block-kit/blocks): the messages Slack's `invalid_blocks`
/// carries, with a JSON pointer to the field.
fn check_blocks(blocks: &Value) -> Result<(), Vec<String>> {
    let Some(list) = blocks.as_array() else { return Err(vec!["must be an array [json-pointer:/blocks]".into()]) };
    let mut errors = Vec::new();
    if list.len() > 50 {
        errors.push("no more than 50 items allowed [json-pointer:/blocks]".into());
    }
    for (i, b) in list.iter().enumerate() {
        let ty = b["type"].as_str().unwrap_or_default();
        let text = &b["text"];
        let t = text["text"].as_str();
        match ty {
            "header" => {
                if text["type"] != "plain_text" {
                    errors.push(format!("must be a valid enum value [json-pointer:/blocks/{i}/text/type]"));
                }
                match t {
                    None => errors.push(format!("must provide a string [json-pointer:/blocks/{i}/text/text]")),
                    Some(t) if len(t) > 150 => errors.push(format!("must be less than 151 characters [json-pointer:/blocks/{i}/text/text]")),
                    Some(t) if t.trim().is_empty() => errors.push(format!("must be more than 0 characters [json-pointer:/blocks/{i}/text/text]")),
                    _ => {}
                }
            }
            "section" => {
                if !matches!(text["type"].as_str(), Some("mrkdwn" | "plain_text")) && b.get("fields").is_none() {
                    errors.push(format!("must provide an object [json-pointer:/blocks/{i}/text]"));
                }
                if let Some(t) = t {
                    if len(t) > 3000 {
                        errors.push(format!("must be less than 3001 characters [json-pointer:/blocks/{i}/text/text]"));
                    }
                    if t.trim().is_empty() {
                        errors.push(format!("must be more than 0 characters [json-pointer:/blocks/{i}/text/text]"));
                    }
                }
            }
            "divider" | "context" | "image" | "actions" | "rich_text" | "markdown" | "video" | "file" | "input" => {}
            _ => errors.push(format!("unsupported type: {ty} [json-pointer:/blocks/{i}/type]")),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// A form field arrives as a string: `blocks` and `metadata` are JSON in it.
fn json_field(v: Option<&Value>) -> Option<Result<Value, ()>> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(serde_json::from_str(s).map_err(|_| ())),
        other => Some(Ok(other.clone())),
    }
}

fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// The next `ts`: the clock's seconds, then a sequence, always increasing.
fn next_ts(st: &mut SState) -> String {
    let secs = chrono::Utc::now().timestamp();
    st.last_ts = if secs > st.last_ts.0 { (secs, 1) } else { (st.last_ts.0, st.last_ts.1 + 1) };
    format!("{}.{:06}", st.last_ts.0, st.last_ts.1)
}

fn ts_value(ts: &str) -> f64 {
    ts.parse().unwrap_or(0.0)
}

/// Keep a message; Slack truncates `text` past 40,000 characters.
fn keep(st: &Shared, channel: &str, via: &str, body: Value, metadata: Option<Value>) -> SlackMessage {
    let text: String = body["text"].as_str().unwrap_or_default().chars().take(40_000).collect();
    let mut s = st.lock().expect("slack fake lock");
    let ts = next_ts(&mut s);
    let m = SlackMessage { ts, channel: channel.to_string(), via: via.to_string(), body, text, metadata };
    s.messages.push(m.clone());
    m
}

/// The message as the API shows it (chat.postMessage's `message`, history's entries).
fn shown(m: &SlackMessage, with_metadata: bool) -> Value {
    let mut v = json!({"type": "message", "text": m.text, "ts": m.ts, "team": TEAM_ID});
    if m.via == "webhook" {
        v["subtype"] = json!("bot_message");
        v["bot_id"] = json!(HOOK_ID);
    } else {
        v["user"] = json!(BOT_USER);
        v["bot_id"] = json!(BOT_ID);
        v["app_id"] = json!("A0HERALDAP");
    }
    if let Some(b) = json_field(m.body.get("blocks")).and_then(Result::ok) {
        v["blocks"] = b;
    }
    if with_metadata && let Some(md) = &m.metadata {
        v["metadata"] = md.clone();
    }
    v
}

async fn webhook(State(st): State<Shared>, Path((team, hook, secret)): Path<(String, String, String)>, headers: HeaderMap, body: Bytes) -> Result<Response, Response> {
    if team != TEAM_ID || (hook != HOOK_ID && hook != ARCHIVED_HOOK_ID) {
        return Err(hook_error(StatusCode::NOT_FOUND, "no_service"));
    }
    if secret != HOOK_SECRET {
        return Err(hook_error(StatusCode::FORBIDDEN, "invalid_token"));
    }
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let invalid = || hook_error(StatusCode::BAD_REQUEST, "invalid_payload");
    let payload: Value = if ct.starts_with("application/json") {
        serde_json::from_slice(&body).map_err(|_| invalid())?
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
        serde_json::from_str(form.get("payload").ok_or_else(invalid)?).map_err(|_| invalid())?
    } else {
        return Err(invalid());
    };
    if !payload.is_object() {
        return Err(invalid());
    }
    let text = payload["text"].as_str().unwrap_or_default();
    let blocks = payload.get("blocks").filter(|b| !b.is_null());
    if text.trim().is_empty() && blocks.is_none() {
        return Err(hook_error(StatusCode::BAD_REQUEST, "no_text"));
    }
    if let Some(b) = blocks
        && check_blocks(b).is_err()
    {
        return Err(hook_error(StatusCode::BAD_REQUEST, "invalid_blocks"));
    }
    if hook == ARCHIVED_HOOK_ID {
        return Err(hook_error(StatusCode::GONE, "channel_is_archived"));
    }
    keep(&st, CHANNEL_ID, "webhook", payload, None);
    Ok(hook_error(StatusCode::OK, "ok"))
}

/// The scopes a token holds, or the error for it.
fn scopes(token: Option<&str>) -> Result<&'static [&'static str], Response> {
    match token {
        None | Some("") => Err(api_error("not_authed")),
        Some(BOT_TOKEN) => Ok(&["chat:write", "channels:history", "groups:history"]),
        Some(WRITE_ONLY_TOKEN) => Ok(&["chat:write"]),
        Some(REVOKED_TOKEN) => Err(api_error("token_revoked")),
        Some(_) => Err(api_error("invalid_auth")),
    }
}

fn need(have: &[&str], scope: &str) -> Result<(), Response> {
    if have.contains(&scope) {
        return Ok(());
    }
    Err(axum::Json(json!({"ok": false, "error": "missing_scope", "needed": scope, "provided": have.join(",")})).into_response())
}

/// The call's parameters and its token, as Slack reads them.
struct Call {
    params: HashMap<String, Value>,
    token: Option<String>,
    warnings: Vec<&'static str>,
}

fn read_call(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Result<Call, Response> {
    let mut params: HashMap<String, Value> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let mut warnings = Vec::new();
    let mut form_token = None;
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body).map_err(|_| api_error("invalid_json"))?;
        let obj = v.as_object().ok_or_else(|| api_error("invalid_json"))?;
        params.extend(obj.iter().map(|(k, v)| (k.clone(), v.clone())));
        // A JSON body's `token` is not read: the header carries it.
        params.remove("token");
        if !ct.contains("charset") {
            warnings.push("missing_charset");
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in url::form_urlencoded::parse(body) {
            if k == "token" {
                form_token = Some(v.to_string());
            } else {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    } else if !body.is_empty() {
        return Err(api_error("invalid_post_type"));
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(|t| t.trim().to_string());
    Ok(Call { params, token: bearer.or(form_token), warnings })
}

fn with_warnings(mut v: Value, warnings: &[&str]) -> Response {
    if !warnings.is_empty() {
        v["warning"] = json!(warnings.join(","));
        v["response_metadata"]["warnings"] = json!(warnings);
    }
    axum::Json(v).into_response()
}

/// The channel a `channel` argument names, or the error chat.postMessage answers.
fn post_channel(v: Option<&Value>) -> Result<&'static str, Response> {
    match v.and_then(Value::as_str).unwrap_or_default() {
        CHANNEL_ID => Ok(CHANNEL_ID),
        s if s.trim_start_matches('#') == CHANNEL_NAME => Ok(CHANNEL_ID),
        NOT_MEMBER_CHANNEL_ID => Err(api_error("not_in_channel")),
        ARCHIVED_CHANNEL_ID => Err(api_error("is_archived")),
        _ => Err(api_error("channel_not_found")),
    }
}

async fn web_api(State(st): State<Shared>, Path(method): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes) -> Result<Response, Response> {
    let known = ["chat.postMessage", "conversations.history", "auth.test"];
    if !known.contains(&method.as_str()) {
        return Err((StatusCode::NOT_FOUND, axum::Json(json!({"ok": false, "error": "unknown_method"}))).into_response());
    }
    let call = read_call(&headers, query.as_deref(), &body)?;
    let have = scopes(call.token.as_deref())?;
    match method.as_str() {
        "auth.test" => Ok(with_warnings(
            json!({"ok": true, "url": "https://herald-sandbox.slack.com/", "team": "Herald Sandbox", "user": "herald", "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID}),
            &call.warnings,
        )),
        "chat.postMessage" => post_message(&st, call, have),
        _ => history(&st, call, have),
    }
}

fn post_message(st: &Shared, call: Call, have: &[&str]) -> Result<Response, Response> {
    need(have, "chat:write")?;
    let p = &call.params;
    let channel = post_channel(p.get("channel"))?;
    let blocks = match json_field(p.get("blocks")) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(())) => return Err(axum::Json(json!({"ok": false, "error": "invalid_blocks_format"})).into_response()),
    };
    let text = p.get("text").and_then(Value::as_str).unwrap_or_default();
    if text.trim().is_empty() && blocks.as_ref().is_none_or(|b| b.as_array().is_some_and(Vec::is_empty)) {
        return Err(api_error("no_text"));
    }
    if let Some(b) = &blocks
        && let Err(errors) = check_blocks(b)
    {
        return Err(axum::Json(json!({"ok": false, "error": "invalid_blocks", "errors": errors, "response_metadata": {"messages": errors.iter().map(|e| format!("[ERROR] {e}")).collect::<Vec<_>>()}})).into_response());
    }
    let metadata = match json_field(p.get("metadata")) {
        None => None,
        Some(Ok(md)) => {
            let ty_ok = md["event_type"].as_str().is_some_and(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            if !ty_ok || !md["event_payload"].is_object() {
                return Err(api_error("invalid_metadata_format"));
            }
            Some(json!({"event_type": md["event_type"], "event_payload": md["event_payload"]}))
        }
        Some(Err(())) => return Err(api_error("invalid_metadata_format")),
    };
    let body = Value::Object(p.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let m = keep(st, channel, "chat.postMessage", body, metadata);
    let mut warnings = call.warnings;
    if text.trim().is_empty() {
        warnings.push("missing_text_or_fallback_or_attachments");
    }
    Ok(with_warnings(json!({"ok": true, "channel": channel, "ts": m.ts, "message": shown(&m, true)}), &warnings))
}

fn history(st: &Shared, call: Call, have: &[&str]) -> Result<Response, Response> {
    let p = &call.params;
    let s = |k: &str| p.get(k).and_then(|v| v.as_str().map(str::to_string).or_else(|| (!v.is_null()).then(|| v.to_string())));
    let channel = s("channel").unwrap_or_default();
    match channel.as_str() {
        CHANNEL_ID => need(have, "channels:history")?,
        NOT_MEMBER_CHANNEL_ID => {
            need(have, "channels:history")?;
            return Err(api_error("not_in_channel"));
        }
        ARCHIVED_CHANNEL_ID => need(have, "channels:history")?,
        _ => return Err(api_error("channel_not_found")),
    }
    let limit = match s("limit") {
        None => 100,
        Some(l) => l.parse::<usize>().map_err(|_| api_error("invalid_arguments"))?.clamp(1, 999),
    };
    let inclusive = is_true(p.get("inclusive"));
    let oldest = s("oldest").map(|t| ts_value(&t)).unwrap_or(0.0);
    let latest = s("latest").map(|t| ts_value(&t)).unwrap_or(f64::INFINITY);
    let with_metadata = is_true(p.get("include_all_metadata"));
    let start_at = match s("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let raw = base64::engine::general_purpose::STANDARD.decode(&c).ok().and_then(|b| String::from_utf8(b).ok());
            let ts = raw.as_deref().and_then(|r| r.strip_prefix("next_ts:")).map(str::to_string).ok_or_else(|| api_error("invalid_cursor"))?;
            Some(ts)
        }
    };
    let all = st.lock().expect("slack fake lock").messages.clone();
    let mut matching: Vec<&SlackMessage> = all
        .iter()
        .filter(|m| m.channel == channel)
        .filter(|m| {
            let t = ts_value(&m.ts);
            (t > oldest || (inclusive && t == oldest)) && (t < latest || (inclusive && t == latest))
        })
        .collect();
    matching.reverse();
    if let Some(ts) = &start_at {
        let at = matching.iter().position(|m| &m.ts == ts).ok_or_else(|| api_error("invalid_cursor"))?;
        matching.drain(..at);
    }
    let has_more = matching.len() > limit;
    let page: Vec<Value> = matching.iter().take(limit).map(|m| shown(m, with_metadata)).collect();
    let mut v = json!({"ok": true, "messages": page, "has_more": has_more, "pin_count": 0, "channel_actions_ts": null, "channel_actions_count": 0});
    if has_more {
        let next = base64::engine::general_purpose::STANDARD.encode(format!("next_ts:{}", matching[limit].ts));
        v["response_metadata"] = json!({"next_cursor": next});
    }
    Ok(with_warnings(v, &call.warnings))
}
