//! The Discord fake: "Execute Webhook", "Get Webhook with Token", and for a bot "Create Message"
//! and "Get Channel", from Discord's docs (discord/discord-api-docs: resources/webhook
//! #execute-webhook, resources/message#create-message and #embed-object-embed-limits,
//! reference#authentication, topics/rate-limits, topics/opcodes-and-status-codes#json) and the
//! shapes discord-api-types and discord.js (`MessagePayload#resolveBody`: `nonce` with
//! `enforce_nonce: true`) send and read.
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
//! - `POST /api/v10/channels/{channel.id}/messages` (Create Message, a bot): `Authorization:
//!   Bot <token>` exactly (a missing or wrong header, or `Bearer`, → `401 {"message": "401:
//!   Unauthorized", "code": 0}`); an unknown channel → `404 {"message": "Unknown Channel",
//!   "code": 10003}`; a bot without Send Messages there ([`DiscordFake::set_bot_can_send`]) →
//!   `403 {"message": "Missing Permissions", "code": 50013}`; the same body checks as above
//!   (50035, 50006), plus a `nonce` over 25 characters → 50035 at `nonce`. The nonce, as the
//!   docs say of `enforce_nonce`: "If true and nonce is present, it will be checked for
//!   uniqueness in the past few minutes. If another message was created by the same author
//!   with the same nonce, that message will be returned and no new message will be created."
//!   Discord gives no figure for "a few minutes": the fake's window is [`NONCE_WINDOW`] unless
//!   a test sets another ([`DiscordFake::set_nonce_window`]). Without `enforce_nonce`, a
//!   repeated nonce creates another message. Accepted: `200` with the message object (the bot
//!   as `author`, the `nonce` echoed).
//! - `GET /api/v10/channels/{channel.id}` (Get Channel): the channel object, same 401/404.
//! - A [`FaultPlan`] scripts failures (a 429 with `retry_after` in the body, 5xx, drops,
//!   accept-then-drop); with a journal set, every request is journaled.
// Handlers answer refusals as `Err(Response)`: the size is the response, by design.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The sandbox webhook's id (a snowflake).
pub const WEBHOOK_ID: &str = "1180000000000000001";
/// The sandbox webhook's token.
pub const WEBHOOK_TOKEN: &str = "sandbox-discord-webhook-token_a1B2c3";
/// The channel the webhook posts in.
pub const CHANNEL_ID: &str = "1180000000000000002";
/// The sandbox bot's token (`Authorization: Bot <token>`).
pub const BOT_TOKEN: &str = "MTE4MDAwMDAwMDAwMDAwMDAwMw.sandbox.discord-bot-token_Herald";
/// The sandbox bot's user id.
pub const BOT_USER_ID: &str = "1180000000000000003";
/// The fake's nonce window ("the past few minutes"; Discord gives no figure).
pub const NONCE_WINDOW: Duration = Duration::from_secs(300);
/// A nonce's longest length (Create Message: "up to 25 characters").
pub const NONCE_MAX: usize = 25;
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
    /// Posted by the bot (Create Message), not through the webhook.
    pub by_bot: bool,
    /// The whole message object as answered.
    #[serde(skip)]
    object: Value,
    /// When it was created, for the nonce window.
    #[serde(skip)]
    created: Option<Instant>,
}

struct DState {
    messages: Vec<DiscordMessage>,
    seq: i64,
    bot_can_send: bool,
    nonce_window: Duration,
}

impl Default for DState {
    fn default() -> Self {
        DState { messages: Vec::new(), seq: 0, bot_can_send: true, nonce_window: NONCE_WINDOW }
    }
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
        let app = Router::new()
            .route("/api/webhooks/{id}/{token}", post(execute).get(get_webhook))
            .route("/api/v10/channels/{channel}/messages", post(create_message))
            .route("/api/v10/channels/{channel}", get(get_channel))
            .with_state(state.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, state, _served: served })
    }
    /// The webhook URL to configure: `<base>/api/webhooks/<id>/<token>`.
    pub fn webhook_url(&self) -> String {
        format!("{}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}", self.base_url)
    }
    /// The bot API root to configure as `api_base`: `<base>/api/v10`.
    pub fn api_base(&self) -> String {
        format!("{}/api/v10", self.base_url)
    }
    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<DiscordMessage> {
        self.state.lock().expect("discord fake lock").messages.clone()
    }
    /// Whether the bot has Send Messages in the channel (default: yes).
    pub fn set_bot_can_send(&self, yes: bool) {
        self.state.lock().expect("discord fake lock").bot_can_send = yes;
    }
    /// How long a nonce is remembered (default [`NONCE_WINDOW`]).
    pub fn set_nonce_window(&self, window: Duration) {
        self.state.lock().expect("discord fake lock").nonce_window = window;
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
    let username = str_at(&body, "username").unwrap_or("Herald sandbox");
    let author = json!({"bot": true, "id": WEBHOOK_ID, "username": username, "avatar": null, "discriminator": "0000"});
    let object = store(&st, body, author, false, wait);
    if !wait {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(axum::Json(object).into_response())
}

/// Create and keep a message: its object as Discord answers it.
fn store(st: &Shared, body: Value, author: Value, by_bot: bool, wait: bool) -> Value {
    let now = chrono::Utc::now();
    let mut s = st.lock().expect("discord fake lock");
    s.seq += 1;
    let id = (((now.timestamp_millis() - DISCORD_EPOCH_MS) << 22) | (s.seq & 0xfff)).to_string();
    let mut object = json!({
        "id": id,
        "type": 0,
        "content": str_at(&body, "content").unwrap_or_default(),
        "channel_id": CHANNEL_ID,
        "author": author,
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
    });
    if by_bot {
        if let Some(n) = body.get("nonce") {
            object["nonce"] = n.clone();
        }
    } else {
        object["webhook_id"] = json!(WEBHOOK_ID);
    }
    s.messages.push(DiscordMessage { id, wait, body, by_bot, object: object.clone(), created: Some(Instant::now()) });
    object
}

/// `Authorization: Bot <token>`, exactly, or Discord's 401.
fn check_bot(headers: &HeaderMap) -> Result<(), Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if auth != format!("Bot {BOT_TOKEN}") {
        return Err(error(StatusCode::UNAUTHORIZED, json!({"message": "401: Unauthorized", "code": 0})));
    }
    Ok(())
}

fn check_channel(channel: &str) -> Result<(), Response> {
    if channel != CHANNEL_ID {
        return Err(error(StatusCode::NOT_FOUND, json!({"message": "Unknown Channel", "code": 10003})));
    }
    Ok(())
}

/// The nonce's documented limit: "up to 25 characters".
fn check_nonce(body: &Value) -> Result<(), Response> {
    let bad = match body.get("nonce") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if n.chars().count() > NONCE_MAX => Some(("BASE_TYPE_MAX_LENGTH", format!("Must be {NONCE_MAX} or fewer in length."))),
        _ => None,
    };
    match bad {
        Some((code, message)) => {
            let mut errors = json!({});
            field_error(&mut errors, &["nonce".into()], code, message);
            Err(error(StatusCode::BAD_REQUEST, json!({"code": 50035, "errors": errors, "message": "Invalid Form Body"})))
        }
        None => Ok(()),
    }
}

/// Create Message, as the bot.
async fn create_message(State(st): State<Shared>, Path(channel): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, Response> {
    check_bot(&headers)?;
    check_channel(&channel)?;
    if !st.lock().expect("discord fake lock").bot_can_send {
        return Err(error(StatusCode::FORBIDDEN, json!({"message": "Missing Permissions", "code": 50013})));
    }
    let body: Value = serde_json::from_slice(&body).map_err(|_| error(StatusCode::BAD_REQUEST, json!({"message": "The request body contains invalid JSON.", "code": 50109})))?;
    if !body.is_object() {
        return Err(error(StatusCode::BAD_REQUEST, json!({"message": "The request body contains invalid JSON.", "code": 50109})));
    }
    check_nonce(&body)?;
    validate(&body)?;
    // `enforce_nonce`: the same author's message with the same nonce, within the window, is
    // returned and nothing is created.
    let nonce = body.get("nonce").filter(|n| !n.is_null()).cloned();
    if body.get("enforce_nonce") == Some(&Value::Bool(true))
        && let Some(n) = &nonce
    {
        let s = st.lock().expect("discord fake lock");
        let window = s.nonce_window;
        if let Some(m) = s.messages.iter().rev().find(|m| m.by_bot && m.body.get("nonce") == Some(n) && m.created.is_some_and(|c| c.elapsed() <= window)) {
            return Ok(axum::Json(m.object.clone()).into_response());
        }
    }
    let author = json!({"bot": true, "id": BOT_USER_ID, "username": "Herald sandbox bot", "avatar": null, "discriminator": "0", "global_name": null});
    Ok(axum::Json(store(&st, body, author, true, true)).into_response())
}

/// Get Channel, as the bot.
async fn get_channel(Path(channel): Path<String>, headers: HeaderMap) -> Result<Response, Response> {
    check_bot(&headers)?;
    check_channel(&channel)?;
    Ok(axum::Json(json!({"id": CHANNEL_ID, "type": 0, "guild_id": "1180000000000000000", "name": "announcements", "position": 0, "nsfw": false, "parent_id": null})).into_response())
}

async fn get_webhook(Path((id, token)): Path<(String, String)>) -> Result<Response, Response> {
    check_webhook(&id, &token)?;
    Ok(axum::Json(json!({
        "type": 1, "id": WEBHOOK_ID, "name": "Herald sandbox", "avatar": null, "channel_id": CHANNEL_ID,
        "guild_id": "1180000000000000000", "application_id": null, "token": WEBHOOK_TOKEN,
    }))
    .into_response())
}
