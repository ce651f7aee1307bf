//! `DiscordChannel`: one Execute Webhook call per delivery, and Discord's errors classified.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::Message;
use crate::channel::error::Kind;
use crate::channel::http::{self, Answer};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled};
use crate::render::Rendering;

/// The Discord adapter for one webhook.
pub struct DiscordChannel {
    pub(crate) name: String,
    /// The webhook URL with `?wait=true`. Holds the token: never printed.
    pub(crate) endpoint: reqwest::Url,
    pub(crate) username: Option<String>,
    pub(crate) avatar_url: Option<String>,
    pub(crate) embed: bool,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for DiscordChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordChannel").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The part of Discord's message object Herald reads.
#[derive(Deserialize)]
struct MessageObject {
    id: String,
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    guild_id: Option<String>,
}

/// Discord's JSON error body: `{"message": "...", "code": 10015}`, plus `retry_after` (seconds,
/// a float) and `global` on a 429.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<u64>,
    #[serde(default)]
    retry_after: Option<f64>,
    #[serde(default)]
    global: Option<bool>,
    #[serde(default)]
    errors: Option<serde_json::Value>,
}

fn seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s))
}

/// The wait a 429 asks for: the body's `retry_after` (the most precise, a float), else
/// `X-RateLimit-Reset-After` (a float), else `Retry-After`.
fn rate_limit_wait(a: &Answer, body: &ErrorBody) -> Option<Duration> {
    body.retry_after
        .and_then(seconds)
        .or_else(|| a.headers.get("x-ratelimit-reset-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok()).and_then(seconds))
        .or_else(|| a.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok()).and_then(seconds))
        .or_else(|| http::retry_after(&a.headers))
}

/// Classify a non-2xx answer from Discord by its documented status and JSON error codes.
///
/// - 401 (50027 Invalid Webhook Token) and 404 (10015 Unknown Webhook): the URL is wrong or the
///   webhook was deleted. The URL *is* the credential, so the operator must replace it:
///   `needs_auth`, not a plain failure (a retry with the same URL can never work).
/// - 403 (50013 Missing Permissions, 50001 Missing Access): the webhook exists but may not post
///   there (a locked thread, the channel's permissions): a policy refusal a new URL for the same
///   channel would not fix, `forbidden`.
/// - 400 (50035 Invalid Form Body, 50006 Cannot send an empty message): the message itself is
///   refused, `permanent`.
/// - 429: retry after `retry_after`; `global` is said in the message.
/// - 5xx: retry (the shared table).
pub(crate) fn classify(a: &Answer) -> DeliveryError {
    let body: ErrorBody = a.json().unwrap_or_default();
    let what = match (&body.message, body.code) {
        (Some(m), Some(c)) => format!("{m} (code {c})"),
        (Some(m), None) => m.clone(),
        _ => crate::channel::error::excerpt(&a.body),
    };
    let status = a.status;
    let e = match status {
        401 => DeliveryError::auth(format!("Discord refused the webhook token: {what}; copy the webhook URL again (Server Settings → Integrations → Webhooks) and set `webhook_url`")),
        404 if body.code == Some(10015) || body.code.is_none() => {
            DeliveryError::auth(format!("Discord does not know this webhook: {what}; it was deleted or the URL is wrong. Create a new webhook and set `webhook_url`"))
        }
        403 => http::forbidden("Discord", status, &what, "give the webhook's channel back its permissions, or point the webhook at a channel it may post in"),
        429 => {
            let scope = if body.global == Some(true) { "global rate limit" } else { "rate limited" };
            DeliveryError::rate_limited(format!("Discord: {scope}: {what}"), rate_limit_wait(a, &body))
        }
        400 => {
            let detail = body.errors.as_ref().map(|e| format!(" {}", crate::channel::error::excerpt(&e.to_string()))).unwrap_or_default();
            DeliveryError::permanent(format!("Discord refused the message: {what}{detail}"))
        }
        _ => {
            let e = a.error();
            if e.kind() == Kind::Retryable {
                DeliveryError::retryable(format!("Discord answered {status}: {what}")).with_retry_after(http::retry_after(&a.headers))
            } else {
                DeliveryError::new(e.kind(), format!("Discord answered {status}: {what}"))
            }
        }
    };
    e.with_status(status)
}

impl DiscordChannel {
    /// Send a request to the webhook URL; a transport error never prints the URL (its token).
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, DeliveryError> {
        let res = req.timeout(self.timeout).send().await.map_err(|e| http::error_from_reqwest(&e.without_url()))?;
        http::read_answer(res).await
    }
}

#[async_trait]
impl Adapter for DiscordChannel {
    async fn deliver(&self, rendering: &Rendering, _ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let Rendering::Body(b) = rendering else {
            return Err(DeliveryError::permanent(format!("channel {}: a discord channel sends a body rendering", self.name)));
        };
        let msg = Message::from_body(&b.body, self.embed).map_err(DeliveryError::permanent)?;
        msg.check_limits().map_err(DeliveryError::permanent)?;
        let payload = msg.payload(self.username.as_deref(), self.avatar_url.as_deref());
        let answer = self.send(http::client().post(self.endpoint.clone()).json(&payload)).await?;
        if !answer.is_success() {
            return Err(classify(&answer));
        }
        // `wait=true`: 200 with the message. Anything else is an accepted post we can't identify.
        let m: MessageObject = answer.json().map_err(|e| {
            DeliveryError::unknown_outcome(format!("Discord accepted the message ({}) but the answer is not a message object: {e}", answer.status))
        })?;
        let url = match (&m.guild_id, &m.channel_id) {
            (Some(g), Some(c)) => Some(format!("https://discord.com/channels/{g}/{c}/{}", m.id)),
            _ => None,
        };
        Ok(Receipt { remote_id: m.id, url, awaiting_confirmation: false, note: None, warning: None })
    }

    /// A webhook can read a message back only by its id, which a lost answer never gave us:
    /// there is nothing to look up, so say so and leave it to the operator.
    async fn find_existing(&self, _rendering: &Rendering, _ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        Ok(Reconciled::CannotCheck(
            "a Discord webhook cannot list its channel's messages, and the message id was in the lost answer; check the channel, then mark it sent or retry".into(),
        ))
    }

    /// `GET {webhook_url}` (Get Webhook with Token): 200 while the webhook exists and the token
    /// is right; nothing is posted.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let mut url = self.endpoint.clone();
        url.set_query(None);
        let a = self.send(http::client().get(url)).await?;
        if a.is_success() { Ok(()) } else { Err(classify(&a)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bare adapter (no redactor around it): a transport error must not print the URL,
    /// whose path holds the token, as reqwest's errors do.
    #[tokio::test]
    async fn a_transport_error_never_prints_the_webhook_url() {
        let token = "bare-adapter-token-Zq9";
        let a = DiscordChannel {
            name: "d".into(),
            endpoint: reqwest::Url::parse(&format!("http://127.0.0.1:9/api/webhooks/1/{token}?wait=true")).unwrap(),
            username: None,
            avatar_url: None,
            embed: true,
            timeout: Duration::from_secs(2),
        };
        let r = Rendering::Body(crate::render::BodyRendering { body: serde_json::json!({"content": "x"}) });
        let e = a.deliver(&r, &DeliveryCtx::for_test("i/d/r1")).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Retryable, "{e}");
        assert!(!e.message().contains(token), "{e}");
    }
}
