//! `DiscordChannel`: one Execute Webhook call per delivery (or, in bot mode, one Create Message
//! call with the delivery's nonce), and Discord's errors classified.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Message, nonce_for};
use crate::channel::error::Kind;
use crate::channel::http::{self, Answer};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled};
use crate::render::Rendering;

/// Where a Discord channel posts: a webhook, or a bot in a channel.
pub(crate) enum Target {
    /// The webhook URL with `?wait=true`. Holds the token: never printed.
    Webhook(reqwest::Url),
    /// A bot: Create Message in one channel, with a nonce per delivery.
    Bot(Bot),
}

/// Bot mode's endpoints and credential.
pub(crate) struct Bot {
    /// `{api_base}/channels/{channel_id}/messages`.
    pub(crate) messages: reqwest::Url,
    /// `{api_base}/channels/{channel_id}` (Get Channel, the health check).
    pub(crate) channel: reqwest::Url,
    /// `Bot <token>`, marked sensitive.
    pub(crate) authorization: reqwest::header::HeaderValue,
    /// How long after a send Discord is trusted to still dedupe its nonce.
    pub(crate) nonce_window: Duration,
}

/// What bot mode keeps in the checkpoint, saved before each Create Message: the nonce and when
/// the send that may have created the message went out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BotSend {
    nonce: String,
    /// Unix milliseconds, just before the call.
    sent_at_ms: i64,
}

/// The Discord adapter for one webhook or one bot channel.
pub struct DiscordChannel {
    pub(crate) name: String,
    pub(crate) target: Target,
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
///
/// As a bot (`bot = true`), a 401 is the bot token (`401: Unauthorized`, code 0), a 404 an
/// unknown channel (10003, permanent: the configured `channel_id` is wrong), a 403 the bot's
/// permissions in that channel.
pub(crate) fn classify(a: &Answer, bot: bool) -> DeliveryError {
    let body: ErrorBody = a.json().unwrap_or_default();
    let what = match (&body.message, body.code) {
        (Some(m), Some(c)) => format!("{m} (code {c})"),
        (Some(m), None) => m.clone(),
        _ => crate::channel::error::excerpt(&a.body),
    };
    let status = a.status;
    let e = match status {
        401 if bot => DeliveryError::auth(format!(
            "Discord refused the bot token: {what}; reset it (Developer Portal → your app → Bot → Reset Token) and set `bot_token`"
        )),
        404 if bot => DeliveryError::permanent(format!(
            "Discord does not know the channel: {what}; copy its id again (Developer Mode on, right-click the channel → Copy Channel ID) and set `channel_id`, and check the bot is in that server"
        )),
        403 if bot => http::forbidden("Discord", status, &what, "give the bot View Channel and Send Messages in that channel"),
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
    /// Send a request; a transport error never prints the URL (a webhook's token).
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, DeliveryError> {
        let res = req.timeout(self.timeout).send().await.map_err(|e| http::error_from_reqwest(&e.without_url()))?;
        http::read_answer(res).await
    }

    /// The message to send, checked against Discord's limits.
    fn message(&self, rendering: &Rendering) -> Result<Message, DeliveryError> {
        let Rendering::Body(b) = rendering else {
            return Err(DeliveryError::permanent(format!("channel {}: a discord channel sends a body rendering", self.name)));
        };
        let msg = Message::from_body(&b.body, self.embed).map_err(DeliveryError::permanent)?;
        msg.check_limits().map_err(DeliveryError::permanent)?;
        Ok(msg)
    }

    /// The message object of a 200 as a receipt.
    fn receipt(answer: &Answer, bot: bool) -> Result<Receipt, DeliveryError> {
        if !answer.is_success() {
            return Err(classify(answer, bot));
        }
        // 200 with the message. Anything else is an accepted post we can't identify.
        let m: MessageObject = answer.json().map_err(|e| {
            DeliveryError::unknown_outcome(format!("Discord accepted the message ({}) but the answer is not a message object: {e}", answer.status))
        })?;
        let url = match (&m.guild_id, &m.channel_id) {
            (Some(g), Some(c)) => Some(format!("https://discord.com/channels/{g}/{c}/{}", m.id)),
            _ => None,
        };
        Ok(Receipt { remote_id: m.id, url, awaiting_confirmation: false, note: None, warning: None })
    }

    /// Create Message with the delivery's nonce and `enforce_nonce`.
    async fn create(&self, bot: &Bot, msg: &Message, nonce: &str) -> Result<Receipt, DeliveryError> {
        let payload = msg.bot_payload(nonce);
        let req = http::client().post(bot.messages.clone()).header(reqwest::header::AUTHORIZATION, bot.authorization.clone()).json(&payload);
        let answer = self.send(req).await?;
        Self::receipt(&answer, true)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[async_trait]
impl Adapter for DiscordChannel {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let msg = self.message(rendering)?;
        match &self.target {
            Target::Webhook(endpoint) => {
                let payload = msg.payload(self.username.as_deref(), self.avatar_url.as_deref());
                let answer = self.send(http::client().post(endpoint.clone()).json(&payload)).await?;
                Self::receipt(&answer, false)
            }
            Target::Bot(bot) => {
                // Durably, before the call: the nonce, and when this send went out (the nonce
                // window runs from here).
                let sent = BotSend { nonce: nonce_for(&ctx.key), sent_at_ms: now_ms() };
                ctx.save_state(&sent).await?;
                self.create(bot, &msg, &sent.nonce).await
            }
        }
    }

    /// A webhook can read a message back only by its id, which a lost answer never gave us:
    /// there is nothing to look up, so say so and leave it to the operator.
    ///
    /// A bot sends again with the same nonce and `enforce_nonce`: within Discord's window that
    /// returns the message the lost answer was about (or creates it, if the lost call never
    /// did), so there is one message either way. Past `nonce_window_secs` since the send, Discord
    /// no longer promises that, and the delivery is left `unconfirmed`.
    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let Target::Bot(bot) = &self.target else {
            return Ok(Reconciled::CannotCheck(
                "a Discord webhook cannot list its channel's messages, and the message id was in the lost answer; check the channel, then mark it sent or retry".into(),
            ));
        };
        let Some(sent) = ctx.checkpoint.load().await?.and_then(|v| serde_json::from_value::<BotSend>(v).ok()) else {
            // No bot send was recorded for this delivery, yet it may have been sent (an
            // earlier attempt through a webhook, before the channel moved to a bot).
            return Ok(Reconciled::CannotCheck(
                "no bot send is recorded for this delivery (an earlier attempt may have gone through a webhook); check the channel, then mark it sent or retry".into(),
            ));
        };
        let elapsed = Duration::from_millis(u64::try_from(now_ms() - sent.sent_at_ms).unwrap_or(0));
        if elapsed > bot.nonce_window {
            return Ok(Reconciled::CannotCheck(format!(
                "the answer was lost {}s ago, past the nonce window (`nonce_window_secs` = {}; Discord dedupes a nonce only over \"the past few minutes\"), so sending again could post twice; check the channel, then mark it sent or retry",
                elapsed.as_secs(),
                bot.nonce_window.as_secs()
            )));
        }
        // The sent time is kept: the message may date from that send.
        let msg = self.message(rendering)?;
        let mut r = self.create(bot, &msg, &sent.nonce).await?;
        r.note = Some(format!("reconciled: Discord answered the send again with nonce {} (enforce_nonce), one message", sent.nonce));
        Ok(Reconciled::Found(r))
    }

    /// Webhook: `GET {webhook_url}` (Get Webhook with Token), 200 while the webhook exists and
    /// the token is right. Bot: `GET /channels/{channel_id}` (Get Channel) with the bot token.
    /// Nothing is posted.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let (req, bot) = match &self.target {
            Target::Webhook(endpoint) => {
                let mut url = endpoint.clone();
                url.set_query(None);
                (http::client().get(url), false)
            }
            Target::Bot(b) => (http::client().get(b.channel.clone()).header(reqwest::header::AUTHORIZATION, b.authorization.clone()), true),
        };
        let a = self.send(req).await?;
        if a.is_success() { Ok(()) } else { Err(classify(&a, bot)) }
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
            target: Target::Webhook(reqwest::Url::parse(&format!("http://127.0.0.1:9/api/webhooks/1/{token}?wait=true")).unwrap()),
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
