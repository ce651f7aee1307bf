//! `TelegramChannel`: `sendMessage` per part, through the shared thread skeleton.
//!
//! The token is part of the URL path (`/bot<token>/sendMessage`), so no URL ever goes into an
//! error: transport errors (which print the URL) are scrubbed of the token here, before the
//! redactor sees them too.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::channel::thread::{self, Lookup, PartCall, PartView, Posted, Settle, ThreadNetwork};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled, ThreadProgress, http};
use crate::config::SecretString;
use crate::render::{Post, Rendering};

/// The Telegram adapter for one channel.
pub struct TelegramChannel {
    pub(crate) api_base: String,
    pub(crate) timeout: Duration,
    pub(crate) token: SecretString,
    pub(crate) chat_id: String,
    pub(crate) link_preview: bool,
}

/// The Bot API's answer envelope.
#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    #[serde(default = "Option::default")]
    result: Option<T>,
    #[serde(default)]
    description: Option<String>,
}

/// The part of a Message Herald reads.
#[derive(Deserialize)]
struct Message {
    message_id: i64,
    chat: Chat,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    #[serde(default)]
    username: Option<String>,
}

/// The error envelope: `{"ok":false,"error_code":429,"description":"…","parameters":{"retry_after":N}}`.
#[derive(Deserialize, Default)]
struct Failure {
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<FailureParams>,
}

#[derive(Deserialize, Default)]
struct FailureParams {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

/// The public link of a channel message: `t.me/<username>/<id>`, or `t.me/c/<id>/<id>` for a
/// private channel (its id without the `-100` prefix).
fn message_url(chat: &Chat, message_id: i64) -> Option<String> {
    match &chat.username {
        Some(u) => Some(format!("https://t.me/{u}/{message_id}")),
        None => chat.id.to_string().strip_prefix("-100").map(|c| format!("https://t.me/c/{c}/{message_id}")),
    }
}

/// Classify a Bot API refusal. The HTTP status is the `error_code`; the description is
/// Telegram's own words and never holds the token.
///
/// * 401 Unauthorized: the token is wrong or revoked → `needs_auth` (a new token from @BotFather).
/// * 403 Forbidden ("bot is not a member of the channel chat", "need administrator rights in
///   the channel chat", "bot was kicked"): the token is good, the bot lacks rights in this
///   channel. A new token would not help, so this is `forbidden` (failed, with what to do), not
///   `needs_auth`: an admin of the channel must add the bot with "Post messages". A bot that is
///   an admin without that right gets `400 Bad Request: not enough rights to send text messages
///   to the chat`, classified the same way.
/// * 429: `parameters.retry_after` seconds (the Bot API's documented hint) → rate limited.
/// * 400 ("can't parse entities", "chat not found", "message is too long") and other 4xx →
///   permanent; 5xx → retryable.
fn refusal(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> DeliveryError {
    let f: Failure = serde_json::from_str(body).unwrap_or_default();
    let code = f.error_code.unwrap_or(status);
    let said = f.description.unwrap_or_else(|| format!("HTTP {status}"));
    let p = f.parameters.unwrap_or_default();
    let err = match code {
        401 => DeliveryError::auth(format!(
            "Telegram refused the bot token ({said}): create or copy the token with @BotFather and set `bot_token`"
        )),
        403 => http::forbidden(
            "Telegram",
            status,
            &said,
            "add the bot to the channel as an administrator allowed to post messages",
        ),
        429 => {
            let wait = p.retry_after.map(Duration::from_secs).or_else(|| http::retry_after(headers));
            DeliveryError::rate_limited(format!("Telegram is throttling the bot: {said}"), wait)
        }
        // An admin without "Post messages" (seen in clients' issue trackers): the same fix.
        400 if said.contains("not enough rights") => http::forbidden(
            "Telegram",
            status,
            &said,
            "give the bot the \"Post messages\" right in the channel's administrators",
        ),
        400 if p.migrate_to_chat_id.is_some() => DeliveryError::permanent(format!(
            "{said}: the group became a supergroup; set `chat_id = \"{}\"`",
            p.migrate_to_chat_id.unwrap_or_default()
        )),
        _ => DeliveryError::new(http::classify_status(code), format!("Telegram: {said}")),
    };
    err.with_status(status)
}

impl TelegramChannel {
    /// `{api_base}/bot<token>/<method>`. Never logged, never put into an error.
    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.api_base, self.token.expose())
    }

    /// The error with every copy of the token replaced (a transport error prints the URL).
    fn scrub(&self, e: DeliveryError) -> DeliveryError {
        let token = self.token.expose();
        if token.is_empty() || !e.message().contains(token) {
            return e;
        }
        let mut out = DeliveryError::new(e.kind(), e.message().replace(token, "<bot_token>")).with_retry_after(e.retry_after());
        if let Some(s) = e.status() {
            out = out.with_status(s);
        }
        out
    }

    /// Call a Bot API method with a JSON body; the `result` on success, a classified error else.
    async fn call<T: serde::de::DeserializeOwned>(&self, method: &str, body: &Value) -> Result<T, DeliveryError> {
        let req = http::client().post(self.url(method)).timeout(self.timeout).json(body);
        let res = http::send(req).await.map_err(|e| self.scrub(e))?;
        if !res.is_success() {
            return Err(self.scrub(refusal(res.status, &res.headers, &res.body)));
        }
        let env: Envelope<T> = res
            .json()
            .map_err(|e| DeliveryError::unknown_outcome(format!("Telegram answered {method} but the answer is unreadable: {e}")))?;
        match (env.ok, env.result) {
            (true, Some(r)) => Ok(r),
            _ => Err(DeliveryError::unknown_outcome(format!(
                "Telegram answered {method} without a result: {}",
                env.description.unwrap_or_default()
            ))),
        }
    }

    /// `chat_id` as Telegram takes it: a number for a numeric id, else the `@username`.
    fn chat(&self) -> Value {
        match self.chat_id.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(self.chat_id),
        }
    }

    /// The `sendMessage` body for one part. The first part carries the issue's link preview
    /// (when `link_preview`); the parts after it none, so the channel shows one card.
    fn body(&self, post: &Post, index: usize, preview_url: Option<&str>) -> Value {
        let mut preview = json!({ "is_disabled": !(self.link_preview && index == 0) });
        if self.link_preview
            && index == 0
            && let Some(u) = preview_url
        {
            preview["url"] = json!(u);
        }
        json!({ "chat_id": self.chat(), "text": post.text, "parse_mode": "HTML", "link_preview_options": preview })
    }
}

/// One delivery: the channel and the rendering's link (for the preview).
struct Send<'a> {
    ch: &'a TelegramChannel,
    preview_url: Option<&'a str>,
}

/// The Bot API has no call that lists the messages a bot sent to a channel (`getUpdates` only
/// brings new posts to a bot that is polling, and not its own), and `sendMessage` takes no
/// idempotency key: a part whose answer was lost cannot be checked. It is marked before the
/// call, and reconciling it says so (`unconfirmed`); the operator looks at the channel.
#[async_trait]
impl ThreadNetwork for Send<'_> {
    const SETTLE: Settle = Settle::LookFirst;

    fn network(&self) -> &'static str {
        "Telegram"
    }

    fn marker(&self, _index: usize, _earlier: &Value) -> Option<Value> {
        Some(json!({ "sent_at": chrono::Utc::now().to_rfc3339() }))
    }

    async fn post_part(&self, part: &mut PartCall<'_>) -> Result<Posted, DeliveryError> {
        let v = part.view();
        let m: Message = self.ch.call("sendMessage", &self.ch.body(v.post(), v.index, self.preview_url)).await?;
        Ok(Posted::new(m.message_id.to_string(), message_url(&m.chat, m.message_id)))
    }

    async fn find_part(&self, part: PartView<'_>) -> Result<Lookup, DeliveryError> {
        Ok(Lookup::CannotCheck(format!(
            "message {} of {} may have reached the channel: Telegram's Bot API cannot list the messages a bot sent, so Herald cannot check. Look at the channel, then mark it sent, or retry (it may appear twice)",
            part.index + 1,
            part.posts.len()
        )))
    }

    fn note(&self, progress: &ThreadProgress, total: usize, _reconciled: bool) -> Option<String> {
        (total > 1).then(|| format!("{} messages", progress.parts.len()))
    }
}

fn posts(rendering: &Rendering) -> Result<(&[Post], Option<&str>), DeliveryError> {
    let r = rendering.posts().ok_or_else(|| DeliveryError::permanent("the telegram channel needs a posts rendering"))?;
    if r.posts.is_empty() {
        return Err(DeliveryError::permanent("the rendering has no messages"));
    }
    Ok((&r.posts, r.card.as_ref().map(|c| c.uri.as_str())))
}

#[async_trait]
impl Adapter for TelegramChannel {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let (p, preview_url) = posts(rendering)?;
        thread::deliver(&Send { ch: self, preview_url }, p, ctx).await
    }

    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let (p, preview_url) = posts(rendering)?;
        thread::find_existing(&Send { ch: self, preview_url }, p, ctx).await
    }

    /// `getMe` (the token) then `getChat` (the bot can see the channel).
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let _: Value = self.call("getMe", &json!({})).await?;
        let _: Value = self.call("getChat", &json!({ "chat_id": self.chat() })).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Kind;

    #[test]
    fn refusals_are_classified_by_telegram_error_code() {
        let h = reqwest::header::HeaderMap::new();
        let e = refusal(401, &h, r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#);
        assert_eq!(e.kind(), Kind::Auth);
        let e = refusal(403, &h, r#"{"ok":false,"error_code":403,"description":"Forbidden: bot is not a member of the channel chat"}"#);
        assert_eq!(e.kind(), Kind::Forbidden);
        assert!(e.message().contains("administrator"), "{}", e.message());
        let e = refusal(429, &h, r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 17","parameters":{"retry_after":17}}"#);
        assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_secs(17))));
        let e = refusal(400, &h, r#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0"}"#);
        assert_eq!(e.kind(), Kind::Permanent);
        assert_eq!(refusal(502, &h, "<html>Bad Gateway</html>").kind(), Kind::Retryable);
        let e = refusal(400, &h, r#"{"ok":false,"error_code":400,"description":"Bad Request: not enough rights to send text messages to the chat"}"#);
        assert_eq!(e.kind(), Kind::Forbidden);
    }

    #[test]
    fn message_links() {
        assert_eq!(message_url(&Chat { id: -1001234, username: Some("herald".into()) }, 7).as_deref(), Some("https://t.me/herald/7"));
        assert_eq!(message_url(&Chat { id: -1001234, username: None }, 7).as_deref(), Some("https://t.me/c/1234/7"));
    }
}
