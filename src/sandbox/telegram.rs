//! The Telegram Bot API fake: `sendMessage`, `getMe` and `getChat` at `/bot<token>/<method>`,
//! built from core.telegram.org/bots/api ("Making requests", `sendMessage`, "Formatting
//! options", "HTML style") and the shapes python-telegram-bot and grammY send and read.
//!
//! What it holds a request to, as Telegram does:
//! * the token in the path: anything else is `401 Unauthorized`; a path without `bot` is 404;
//! * `chat_id` (integer or `@username`) must be a chat the bot knows, else `400 Bad Request:
//!   chat not found`; a channel where the bot is not an admin answers `403 Forbidden: bot is not
//!   a member of the channel chat`;
//! * `text` with `parse_mode` HTML is parsed as Telegram's HTML subset: only `b strong i em u ins
//!   s strike del span class="tg-spoiler" tg-spoiler a href tg-emoji code pre blockquote`, no
//!   other attribute, every tag closed in order, `<` `>` `&` written `&lt;` `&gt;` `&amp;`;
//!   named entities `&lt; &gt; &amp; &quot;` and every numeric one are decoded. Anything else is
//!   `400 Bad Request: can't parse entities: …`;
//! * the text after entity parsing (trimmed, as Telegram trims it) must be 1–4096 UTF-16 code
//!   units: `message text is empty`, `message is too long`;
//! * a per-chat rate (20 messages a minute, Telegram's FAQ for groups): `429 Too Many Requests:
//!   retry after N` with `parameters.retry_after`.
//!
//! Every answer is the Bot API envelope: `{"ok":true,"result":…}` or `{"ok":false,
//! "error_code":…,"description":…}`, with the HTTP status equal to `error_code`.
// Handlers answer refusals as `Err(Response)`: the size is the response, by design.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::fault::{FaultPlan, Served, serve, with_faults};

/// The bot token the fake accepts (Bot API tokens are `<bot id>:<35 characters>`).
pub const BOT_TOKEN: &str = "7000000001:AAHsandboxTelegramTokenForHerald0001";
/// The sandbox channel's username.
pub const CHANNEL: &str = "@herald_sandbox";
/// The sandbox channel's numeric id.
pub const CHANNEL_ID: i64 = -1_001_000_000_001;
/// Telegram's limit on a message's text after entity parsing.
pub const MAX_TEXT: usize = 4096;

/// One message the fake accepted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TelegramMessage {
    /// Its `message_id` in the channel.
    pub message_id: i64,
    /// `chat_id` as the request gave it.
    pub chat_id: Value,
    /// `text` as sent (the HTML).
    pub text: String,
    /// The text after entity parsing, as the channel shows it.
    pub parsed: String,
    /// `parse_mode` as sent.
    pub parse_mode: Option<String>,
    /// `link_preview_options` as sent.
    pub link_preview_options: Option<Value>,
    /// `reply_parameters` as sent.
    pub reply_parameters: Option<Value>,
}

#[derive(Debug)]
struct TState {
    messages: Vec<TelegramMessage>,
    next_id: i64,
    bot_is_admin: bool,
    limit: u32,
    window: Duration,
    sent: HashMap<i64, Vec<Instant>>,
    send_calls: u32,
}

type Shared = Arc<Mutex<TState>>;

/// A running Telegram fake.
#[derive(Debug)]
pub struct TelegramFake {
    /// `http://127.0.0.1:<port>`: the channel's `api_base`.
    pub base_url: String,
    /// Faults to inject, consulted before every request.
    pub faults: Arc<FaultPlan>,
    state: Shared,
    _served: Served,
}

impl TelegramFake {
    /// Start the fake: one channel, the bot an admin of it, 20 messages a minute.
    pub async fn start() -> std::io::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(TState {
            messages: Vec::new(),
            next_id: 1,
            bot_is_admin: true,
            limit: 20,
            window: Duration::from_secs(60),
            sent: HashMap::new(),
            send_calls: 0,
        }));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new().route("/{bot}/{method}", post(method).get(method)).with_state(state.clone());
        let served = serve(with_faults(app, faults.clone())).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, state, _served: served })
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, TState> {
        self.state.lock().expect("telegram fake lock")
    }
    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<TelegramMessage> {
        self.lock().messages.clone()
    }
    /// How many `sendMessage` calls reached the handler (accepted or not).
    pub fn send_calls(&self) -> u32 {
        self.lock().send_calls
    }
    /// Whether the bot is an administrator of the channel (else 403 on `sendMessage`).
    pub fn set_bot_admin(&self, admin: bool) {
        self.lock().bot_is_admin = admin;
    }
    /// Messages allowed per chat per window.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut s = self.lock();
        s.limit = limit;
        s.window = window;
        s.sent.clear();
    }
}

fn fail(code: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({ "ok": false, "error_code": code, "description": description }))).into_response()
}

fn ok(result: Value) -> Response {
    axum::Json(json!({ "ok": true, "result": result })).into_response()
}

fn channel_chat() -> Value {
    json!({ "id": CHANNEL_ID, "title": "Herald Sandbox", "username": CHANNEL.trim_start_matches('@'), "type": "channel" })
}

/// The parameters: JSON, form data, or the query string (the Bot API takes all three).
fn params(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Result<HashMap<String, Value>, Response> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut out: HashMap<String, Value> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body).map_err(|_| fail(400, "Bad Request: can't parse JSON object"))?;
        let obj = v.as_object().ok_or_else(|| fail(400, "Bad Request: can't parse JSON object"))?;
        out.extend(obj.iter().map(|(k, v)| (k.clone(), v.clone())));
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        out.extend(url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))));
    } else if !body.is_empty() {
        return Err(fail(400, "Bad Request: unsupported Content-Type"));
    }
    Ok(out)
}

/// A form field arrives as a string: an object parameter is JSON-serialized in it.
fn object_param(v: Option<&Value>, name: &str) -> Result<Option<Value>, Response> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(_)) => Ok(v.cloned()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(o @ Value::Object(_)) => Ok(Some(o)),
            _ => Err(fail(400, &format!("Bad Request: can't parse {name} JSON object"))),
        },
        Some(_) => Err(fail(400, &format!("Bad Request: can't parse {name} JSON object"))),
    }
}

/// The chat `chat_id` names, if the bot knows it.
fn known_chat(v: Option<&Value>) -> Result<i64, Response> {
    let known = match v {
        Some(Value::Number(n)) => n.as_i64() == Some(CHANNEL_ID),
        Some(Value::String(s)) => s.eq_ignore_ascii_case(CHANNEL) || s.parse::<i64>().ok() == Some(CHANNEL_ID),
        None | Some(Value::Null) => return Err(fail(400, "Bad Request: chat_id is empty")),
        Some(_) => false,
    };
    if known { Ok(CHANNEL_ID) } else { Err(fail(400, "Bad Request: chat not found")) }
}

async fn method(
    State(state): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else { return fail(404, "Not Found") };
    if token != BOT_TOKEN {
        return fail(401, "Unauthorized");
    }
    let p = match params(&headers, uri.query(), &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match method.as_str() {
        "getMe" => ok(json!({ "id": 7_000_000_001_i64, "is_bot": true, "first_name": "Herald", "username": "herald_sandbox_bot",
                               "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false })),
        "getChat" => match known_chat(p.get("chat_id")) {
            Ok(_) => ok(channel_chat()),
            Err(r) => r,
        },
        "sendMessage" => send_message(&state, &p),
        _ => fail(404, "Not Found: method not found"),
    }
}

fn send_message(state: &Shared, p: &HashMap<String, Value>) -> Response {
    let mut s = state.lock().expect("telegram fake lock");
    s.send_calls += 1;
    let chat = match known_chat(p.get("chat_id")) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !s.bot_is_admin {
        return fail(403, "Forbidden: bot is not a member of the channel chat");
    }
    let text = match p.get("text") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return fail(400, "Bad Request: message text is empty"),
    };
    let parse_mode = match p.get("parse_mode") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return fail(400, "Bad Request: unsupported parse_mode"),
    };
    let parsed = match parse_mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => text.clone(),
        Some("html") => match parse_html(&text) {
            Ok(t) => t,
            Err(why) => return fail(400, &format!("Bad Request: can't parse entities: {why}")),
        },
        Some("markdown" | "markdownv2") => return fail(400, "Bad Request: the sandbox fake parses only HTML"),
        Some(_) => return fail(400, "Bad Request: unsupported parse_mode"),
    };
    // Telegram trims the message's leading and trailing whitespace.
    let parsed = parsed.trim().to_string();
    if parsed.is_empty() {
        return fail(400, "Bad Request: message text is empty");
    }
    if parsed.encode_utf16().count() > MAX_TEXT {
        return fail(400, "Bad Request: message is too long");
    }
    let link_preview_options = match object_param(p.get("link_preview_options"), "link_preview_options") {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(o) = &link_preview_options {
        let bad_bool = ["is_disabled", "prefer_small_media", "prefer_large_media", "show_above_text"]
            .iter()
            .any(|k| o.get(*k).is_some_and(|v| !v.is_boolean()));
        if bad_bool || o.get("url").is_some_and(|v| !v.is_string()) {
            return fail(400, "Bad Request: can't parse link_preview_options JSON object");
        }
    }
    let reply_parameters = match object_param(p.get("reply_parameters"), "reply_parameters") {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(r) = &reply_parameters {
        let id = r.get("message_id").and_then(Value::as_i64);
        if !id.is_some_and(|id| s.messages.iter().any(|m| m.message_id == id)) {
            return fail(400, "Bad Request: message to be replied not found");
        }
    }
    let (limit, window) = (s.limit, s.window);
    let sent = s.sent.entry(chat).or_default();
    sent.retain(|t| t.elapsed() < window);
    if sent.len() >= limit as usize {
        let wait = window.saturating_sub(sent[0].elapsed()).as_secs().max(1);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({ "ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {wait}"), "parameters": { "retry_after": wait } })),
        )
            .into_response();
    }
    sent.push(Instant::now());
    let message_id = s.next_id;
    s.next_id += 1;
    s.messages.push(TelegramMessage {
        message_id,
        chat_id: p.get("chat_id").cloned().unwrap_or(Value::Null),
        text,
        parsed: parsed.clone(),
        parse_mode,
        link_preview_options: link_preview_options.clone(),
        reply_parameters,
    });
    let mut result = json!({
        "message_id": message_id,
        "sender_chat": channel_chat(),
        "chat": channel_chat(),
        "date": chrono::Utc::now().timestamp(),
        "text": parsed,
    });
    if let Some(o) = link_preview_options {
        result["link_preview_options"] = o;
    }
    ok(result)
}

/// What a tag may be, by its name.
fn allowed_attributes(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "b" | "strong" | "i" | "em" | "u" | "ins" | "s" | "strike" | "del" | "tg-spoiler" => &[],
        "span" => &["class"],
        "a" => &["href"],
        "tg-emoji" => &["emoji-id"],
        "code" => &["class"],
        "pre" => &[],
        "blockquote" => &["expandable"],
        _ => return None,
    })
}

/// Parse Telegram's HTML subset: the text with tags dropped and entities decoded, or why not
/// (in Telegram's words, with the byte offset).
pub fn parse_html(html: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let b = html.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                let Some(len) = html[i..].find('>') else { return Err(format!("Unclosed start tag at byte offset {i}")) };
                let inner = &html[i + 1..i + len];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some((n, _)) if n == name => {}
                        Some((n, _)) => return Err(format!("Can't find end tag corresponding to start tag \"{n}\"")),
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let name: String = inner.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect::<String>().to_ascii_lowercase();
                    if name.is_empty() || !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
                        return Err(format!("Unsupported start tag \"{name}\" at byte offset {i}"));
                    }
                    let Some(allowed) = allowed_attributes(&name) else {
                        return Err(format!("Unsupported start tag \"{name}\" at byte offset {i}"));
                    };
                    let attrs = attributes(&inner[name.len()..]).map_err(|e| format!("{e} at byte offset {i}"))?;
                    for (k, v) in &attrs {
                        if !allowed.contains(&k.as_str()) {
                            return Err(format!("Unsupported attribute \"{k}\" in tag \"{name}\" at byte offset {i}"));
                        }
                        if name == "span" && v != "tg-spoiler" {
                            return Err(format!("Tag \"span\" must have class \"tg-spoiler\" at byte offset {i}"));
                        }
                    }
                    if name == "span" && attrs.is_empty() {
                        return Err(format!("Tag \"span\" must have class \"tg-spoiler\" at byte offset {i}"));
                    }
                    if name == "code" && !attrs.is_empty() && open.last().map(|(n, _)| n.as_str()) != Some("pre") {
                        return Err(format!("Unsupported attribute \"class\" in tag \"code\" at byte offset {i}"));
                    }
                    // pre and code hold text only (code may sit directly in pre); blockquotes don't nest.
                    if let Some((outer, _)) = open.iter().rev().find(|(n, _)| n == "pre" || n == "code")
                        && !(outer == "pre" && name == "code" && open.last().map(|(n, _)| n.as_str()) == Some("pre"))
                    {
                        return Err(format!("Unsupported nested tag \"{name}\" in \"{outer}\" at byte offset {i}"));
                    }
                    if name == "blockquote" && open.iter().any(|(n, _)| n == "blockquote") {
                        return Err(format!("Nested blockquote at byte offset {i}"));
                    }
                    if !inner.trim_end().ends_with('/') {
                        open.push((name, i));
                    } else {
                        return Err(format!("Unsupported self-closing tag \"{name}\" at byte offset {i}"));
                    }
                }
                i += len + 1;
            }
            b'>' => return Err(format!("Unexpected end of name token at byte offset {i}")),
            b'&' => {
                let (c, used) = entity(&html[i..]);
                out.push_str(&c);
                i += used;
            }
            _ => {
                let next = html[i..].find(['<', '>', '&']).map_or(html.len(), |n| i + n);
                out.push_str(&html[i..next]);
                i = next;
            }
        }
    }
    if let Some((n, _)) = open.last() {
        return Err(format!("Can't find end tag corresponding to start tag \"{n}\""));
    }
    Ok(out)
}

/// A tag's attributes: `name="value"`, `name='value'`, `name=value` or a bare `name`.
fn attributes(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim().trim_end_matches('/').trim();
    while !rest.is_empty() {
        let name: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '=').collect();
        if name.is_empty() {
            return Err("Expected an attribute name".into());
        }
        rest = rest[name.len()..].trim_start();
        let value = if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            let (v, after) = match r.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let end = r[1..].find(q).ok_or("Unclosed attribute value")?;
                    (&r[1..=end], &r[end + 2..])
                }
                _ => {
                    let end = r.find(char::is_whitespace).unwrap_or(r.len());
                    (&r[..end], &r[end..])
                }
            };
            rest = after.trim_start();
            parse_html(v).map_err(|_| "Bad attribute value".to_string())?
        } else {
            String::new()
        };
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

/// Decode the entity at the start of `s` (which starts with `&`): the named ones Telegram
/// supports and every numeric one; anything else is a literal `&`.
fn entity(s: &str) -> (String, usize) {
    let Some(end) = s[1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '#')).map(|e| e + 1) else {
        return ("&".into(), 1);
    };
    if s.as_bytes().get(end) != Some(&b';') {
        return ("&".into(), 1);
    }
    let name = &s[1..end];
    let c = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        _ => {
            if let Some(h) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                u32::from_str_radix(h, 16).ok().and_then(char::from_u32)
            } else if let Some(d) = name.strip_prefix('#') {
                d.parse::<u32>().ok().and_then(char::from_u32)
            } else {
                None
            }
        }
    };
    match c {
        Some(c) => (c.to_string(), end + 1),
        None => ("&".into(), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_html;

    #[test]
    fn html_subset_as_telegram_parses_it() {
        assert_eq!(parse_html("<b>bold</b> &lt;x&gt; &amp; &quot;q&quot; &#39;s &#x3D;").unwrap(), "bold <x> & \"q\" 's =");
        assert_eq!(parse_html("<a href=\"https://e.com/?a=1&amp;b=2\">link</a>").unwrap(), "link");
        assert_eq!(parse_html("<pre><code class=\"language-rust\">fn</code></pre>").unwrap(), "fn");
        assert_eq!(parse_html("<blockquote expandable>q</blockquote>").unwrap(), "q");
        assert!(parse_html("<p>para</p>").unwrap_err().contains("Unsupported start tag \"p\""));
        assert!(parse_html("<b>open").unwrap_err().contains("Can't find end tag"));
        assert!(parse_html("<b><i>x</b></i>").is_err());
        assert!(parse_html("a < b").is_err());
        assert!(parse_html("</b>").unwrap_err().contains("Unexpected end tag"));
        assert!(parse_html("<b class=\"x\">y</b>").is_err());
        assert!(parse_html("<code><b>x</b></code>").is_err());
        assert!(parse_html("<blockquote><blockquote>x</blockquote></blockquote>").is_err());
    }
}
