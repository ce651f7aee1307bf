//! The Discord fake: "Execute Webhook" and "Get Webhook with Token", from Discord's docs
//! (resources/webhook#execute-webhook, resources/message#embed-object-embed-limits,
//! topics/opcodes-and-status-codes#json) and discord-api-types' shapes.
//!
//! - `POST /api/webhooks/{id}/{token}[?wait=true]`: an unknown id → `404 {"message": "Unknown
//!   Webhook", "code": 10015}`; the right id with a wrong token → `401 {"message": "Invalid
//!   Webhook Token", "code": 50027}`; a body that is not JSON → `400` code 50109; neither
//!   `content` nor `embeds` → `400 {"message": "Cannot send an empty message", "code": 50006}`;
//!   content over 2,000 (UTF-16 units), more than 10 embeds, an embed title over 256, a
//!   description over 4,096, embeds over 6,000 together, an embed `url` that is not http(s), a
//!   `username` over 80 or naming "discord"/"clyde" → `400 {"code": 50035, "errors": {...},
//!   "message": "Invalid Form Body"}`. Accepted: `wait=true` → `200` with the message object
//!   (a snowflake `id`, `channel_id`, `webhook_id`, `content`, `embeds`, `author`); without it
//!   `204` and no body.
//! - `GET /api/webhooks/{id}/{token}`: the webhook object, same 404/401.
//! - A [`FaultPlan`] scripts failures (a 429 with `retry_after` in the body, 5xx, drops,
//!   accept-then-drop); with a journal set, every request is journaled.
// Handlers answer refusals as `Err(Response)`: the size is the response, by design.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The sandbox webhook's id (a snowflake).
pub const WEBHOOK_ID: &str = "1180000000000000001";
/// The sandbox webhook's token.
pub const WEBHOOK_TOKEN: &str = "sandbox-discord-webhook-token_a1B2c3";
/// The channel the webhook posts in.
pub const CHANNEL_ID: &str = "1180000000000000002";
/// Discord's epoch (2015-01-01T00:00:00Z) in ms, for snowflakes.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// One message the fake accepted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiscordMessage {
    /// The message id (a snowflake).
    pub id: String,
    /// Whether the request asked `wait=true`.
    pub wait: bool,
    /// The JSON body exactly as received.
    pub body: Value,
}

#[derive(Default)]
struct DState {
    messages: Vec<DiscordMessage>,
    seq: i64,
}

type Shared = Arc<Mutex<DState>>;

/// A running Discord fake.
pub struct DiscordFake {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Faults to inject, consulted before every request.
    pub faults: Arc<FaultPlan>,
    state: Shared,
    _served: Served,
}

impl DiscordFake {
    /// Start on `127.0.0.1:0` (or where [`super::fault::bind_in`] says).
    pub async fn start() -> std::io::Result<Self> {
        let state: Shared = Arc::default();
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new().route("/api/webhooks/{id}/{token}", post(execute).get(get_webhook)).with_state(state.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, state, _served: served })
    }
    /// The webhook URL to configure: `<base>/api/webhooks/<id>/<token>`.
    pub fn webhook_url(&self) -> String {
        format!("{}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}", self.base_url)
    }
    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<DiscordMessage> {
        self.state.lock().expect("discord fake lock").messages.clone()
    }
}

fn error(code: StatusCode, v: Value) -> Response {
    (code, axum::Json(v)).into_response()
}

/// The webhook in the path, or Discord's answer for a wrong one.
fn check_webhook(id: &str, token: &str) -> Result<(), Response> {
    if id != WEBHOOK_ID {
        return Err(error(StatusCode::NOT_FOUND, json!({"message": "Unknown Webhook", "code": 10015})));
    }
    if token != WEBHOOK_TOKEN {
        return Err(error(StatusCode::UNAUTHORIZED, json!({"message": "Invalid Webhook Token", "code": 50027})));
    }
    Ok(())
}

fn len16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// One field error in Discord's 50035 shape, at `path` (`["embeds", "0", "title"]`).
fn field_error(errors: &mut Value, path: &[String], code: &str, message: String) {
    let mut at = &mut *errors;
    for p in path {
        at = at.as_object_mut().expect("an object").entry(p.clone()).or_insert_with(|| json!({}));
    }
    at["_errors"] = json!([{"code": code, "message": message}]);
}

fn max_len(errors: &mut Value, path: &[&str], s: &str, max: usize) {
    if len16(s) > max {
        let path: Vec<String> = path.iter().map(|p| p.to_string()).collect();
        field_error(errors, &path, "BASE_TYPE_MAX_LENGTH", format!("Must be {max} or fewer in length."));
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Discord's checks on an Execute Webhook body: field errors (50035) or an empty message (50006).
fn validate(body: &Value) -> Result<(), Response> {
    let mut errors = json!({});
    let content = str_at(body, "content").unwrap_or_default();
    max_len(&mut errors, &["content"], content, 2000);
    if let Some(u) = str_at(body, "username") {
        max_len(&mut errors, &["username"], u, 80);
        let l = u.to_lowercase();
        if l.contains("discord") || l.contains("clyde") {
            field_error(&mut errors, &["username".into()], "USERNAME_INVALID_CONTAINS", "Username cannot contain \"discord\"".into());
        }
    }
    if let Some(a) = str_at(body, "avatar_url")
        && !well_formed(a)
    {
        field_error(&mut errors, &["avatar_url".into()], "URL_TYPE_INVALID_URL", "Not a well formed URL.".into());
    }
    let embeds = body.get("embeds").and_then(Value::as_array).cloned().unwrap_or_default();
    if embeds.len() > 10 {
        field_error(&mut errors, &["embeds".into()], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.".into());
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let i = i.to_string();
        let title = str_at(e, "title").unwrap_or_default();
        let desc = str_at(e, "description").unwrap_or_default();
        max_len(&mut errors, &["embeds", &i, "title"], title, 256);
        max_len(&mut errors, &["embeds", &i, "description"], desc, 4096);
        total += len16(title) + len16(desc);
        if let Some(u) = str_at(e, "url")
            && !well_formed(u)
        {
            field_error(&mut errors, &["embeds".into(), i.clone(), "url".into()], "URL_TYPE_INVALID_URL", "Not a well formed URL.".into());
        }
    }
    if total > 6000 {
        field_error(&mut errors, &["embeds".into()], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000".into());
    }
    if errors.as_object().is_some_and(|o| !o.is_empty()) {
        return Err(error(StatusCode::BAD_REQUEST, json!({"code": 50035, "errors": errors, "message": "Invalid Form Body"})));
    }
    if content.trim().is_empty() && embeds.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, json!({"message": "Cannot send an empty message", "code": 50006})));
    }
    Ok(())
}

fn well_formed(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https" | "attachment"))
}

fn wants_wait(query: Option<&str>) -> bool {
    query.unwrap_or_default().split('&').any(|kv| matches!(kv.split_once('='), Some(("wait", "true" | "True" | "1"))))
}

async fn execute(State(st): State<Shared>, Path((id, token)): Path<(String, String)>, RawQuery(query): RawQuery, body: Bytes) -> Result<Response, Response> {
    check_webhook(&id, &token)?;
    let body: Value = serde_json::from_slice(&body).map_err(|_| error(StatusCode::BAD_REQUEST, json!({"message": "The request body contains invalid JSON.", "code": 50109})))?;
    if !body.is_object() {
        return Err(error(StatusCode::BAD_REQUEST, json!({"message": "The request body contains invalid JSON.", "code": 50109})));
    }
    validate(&body)?;
    let wait = wants_wait(query.as_deref());
    let now = chrono::Utc::now();
    let msg_id = {
        let mut s = st.lock().expect("discord fake lock");
        s.seq += 1;
        let id = (((now.timestamp_millis() - DISCORD_EPOCH_MS) << 22) | (s.seq & 0xfff)).to_string();
        s.messages.push(DiscordMessage { id: id.clone(), wait, body: body.clone() });
        id
    };
    if !wait {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let username = str_at(&body, "username").unwrap_or("Herald sandbox");
    Ok(axum::Json(json!({
        "id": msg_id,
        "type": 0,
        "content": str_at(&body, "content").unwrap_or_default(),
        "channel_id": CHANNEL_ID,
        "author": {"bot": true, "id": WEBHOOK_ID, "username": username, "avatar": null, "discriminator": "0000"},
        "attachments": [],
        "embeds": body.get("embeds").cloned().unwrap_or(json!([])),
        "mentions": [],
        "mention_roles": [],
        "pinned": false,
        "mention_everyone": false,
        "tts": false,
        "timestamp": now.to_rfc3339(),
        "edited_timestamp": null,
        "flags": 0,
        "components": [],
        "webhook_id": WEBHOOK_ID,
    }))
    .into_response())
}

async fn get_webhook(Path((id, token)): Path<(String, String)>) -> Result<Response, Response> {
    check_webhook(&id, &token)?;
    Ok(axum::Json(json!({
        "type": 1, "id": WEBHOOK_ID, "name": "Herald sandbox", "avatar": null, "channel_id": CHANNEL_ID,
        "guild_id": "1180000000000000000", "application_id": null, "token": WEBHOOK_TOKEN,
    }))
    .into_response())
}
