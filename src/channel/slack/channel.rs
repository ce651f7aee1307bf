//! `SlackChannel`: one message per delivery, by incoming webhook or `chat.postMessage`, with
//! Slack's documented errors classified, and the bot mode's lookup by message metadata.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{EVENT_TYPE, Message};
use crate::channel::http::{self, Answer};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Kind, Receipt, Reconciled};
use crate::config::SecretString;
use crate::render::Rendering;

/// How the channel posts.
pub(crate) enum Mode {
    /// An incoming webhook: the URL is the credential.
    Webhook {
        /// Never printed.
        url: reqwest::Url,
    },
    /// `chat.postMessage` with a bot token, to a channel id.
    Bot {
        /// `https://slack.com/api/`.
        api: reqwest::Url,
        token: SecretString,
        channel: String,
    },
}

/// The Slack adapter for one channel.
pub struct SlackChannel {
    pub(crate) name: String,
    pub(crate) mode: Mode,
    pub(crate) blocks: bool,
    pub(crate) unfurl_links: bool,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for SlackChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackChannel").field("name", &self.name).finish_non_exhaustive()
    }
}

/// What the checkpoint keeps: when the call started (saved before it, so a lost answer can be
/// looked up from there), then the message's `ts` once Slack gave it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SlackState {
    /// Unix seconds (with microseconds) just before the call, as Slack's `oldest` takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
}

/// How long after the attempt's start a message may take to show in `conversations.history`:
/// a lookup sooner than this waits out the rest before answering "not there".
const SETTLE: Duration = Duration::from_secs(2);
/// The lookup starts this much before the saved start (clocks differ; the key decides).
const SKEW_SECS: f64 = 60.0;
/// Pages of `conversations.history` read before giving up (200 messages each).
const LOOKUP_PAGES: usize = 10;

/// The Web API's envelope: `{"ok": true, …}` or `{"ok": false, "error": "…"}`.
#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    needed: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    messages: Vec<HistoryMessage>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    response_metadata: Option<ResponseMetadata>,
}

#[derive(Deserialize, Default)]
struct ResponseMetadata {
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct HistoryMessage {
    ts: String,
    #[serde(default)]
    metadata: Option<Value>,
}

fn retry_wait(a: &Answer) -> Option<Duration> {
    http::retry_after(&a.headers)
}

/// Classify a Web API error by its documented `error` code (chat.postMessage,
/// conversations.history, "Rate limits"):
///
/// - `not_authed`, `invalid_auth`, `token_revoked`, `token_expired`, `account_inactive`,
///   `no_permission`, `missing_scope` (with `needed`) → `needs_auth`: a new or re-scoped
///   token is the fix;
/// - `ratelimited` / `rate_limited` (HTTP 429 with `Retry-After`) → rate limited with the hint;
/// - `internal_error`, `fatal_error`, `service_unavailable`, `request_timeout` and any 5xx →
///   retry;
/// - `channel_not_found`, `not_in_channel`, `is_archived`, `msg_too_long`, `no_text`,
///   `too_many_attachments`, `invalid_blocks`, `invalid_metadata_format`, … → permanent: the
///   same request can never succeed.
pub(crate) fn classify_api(method: &str, a: &Answer, error: Option<&str>, needed: Option<&str>) -> DeliveryError {
    let code = error.unwrap_or("");
    let what = if code.is_empty() { crate::channel::error::excerpt(&a.body) } else { code.to_string() };
    let e = match code {
        "not_authed" | "invalid_auth" | "token_revoked" | "token_expired" | "account_inactive" | "no_permission" | "ekm_access_denied" => {
            DeliveryError::auth(format!("Slack refused the bot token ({what}); reinstall the app to the workspace and set `bot_token` to its Bot User OAuth Token"))
        }
        "missing_scope" => DeliveryError::auth(format!(
            "Slack: the bot token lacks the scope {} for {method}; add it under OAuth & Permissions → Bot Token Scopes and reinstall the app",
            needed.unwrap_or("it needs")
        )),
        "ratelimited" | "rate_limited" => DeliveryError::rate_limited(format!("Slack is rate limiting {method} ({what})"), retry_wait(a)),
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            DeliveryError::retryable(format!("Slack {method}: {what}")).with_retry_after(retry_wait(a))
        }
        "not_in_channel" => DeliveryError::permanent(format!("Slack {method}: {what}: invite the app to the channel (`/invite @YourApp` in it)")),
        "channel_not_found" => DeliveryError::permanent(format!("Slack {method}: {what}: `channel` must be an id the bot can see (a private channel needs the app invited)")),
        "is_archived" => DeliveryError::permanent(format!("Slack {method}: {what}: the channel is archived; unarchive it or point `channel` elsewhere")),
        _ if a.status == 429 => DeliveryError::rate_limited(format!("Slack is rate limiting {method} ({what})"), retry_wait(a)),
        _ if a.status >= 500 => DeliveryError::retryable(format!("Slack answered {}: {what}", a.status)).with_retry_after(retry_wait(a)),
        _ if code.is_empty() && !a.is_success() => {
            let base = a.error();
            DeliveryError::new(base.kind(), format!("Slack {method} answered {}: {what}", a.status)).with_retry_after(base.retry_after())
        }
        _ => DeliveryError::permanent(format!("Slack refused {method}: {what}")),
    };
    e.with_status(a.status)
}

/// Classify an incoming webhook's refusal: the body is the error as text (Slack's "Handling
/// errors" for incoming webhooks): 400 `invalid_payload`, `no_text`, `invalid_blocks`, … →
/// permanent; 403 `invalid_token`, 404 `no_service`/`no_team`, 410 `no_active_hooks` → the
/// URL is dead (`needs_auth`: a new webhook URL is the fix); 403 `action_prohibited`,
/// `posting_to_general_channel_denied` → forbidden; 404 `channel_not_found`, 410
/// `channel_is_archived` → permanent; 429 → rate limited with `Retry-After`; 5xx → retry.
pub(crate) fn classify_webhook(a: &Answer) -> DeliveryError {
    let code = a.body.trim();
    let what = crate::channel::error::excerpt(code);
    let e = match (a.status, code) {
        (_, "invalid_token" | "no_service" | "no_team" | "no_active_hooks" | "team_disabled" | "token_revoked") => DeliveryError::auth(format!(
            "Slack refused the incoming webhook ({what}); it was removed or revoked: add a new one (your app → Incoming Webhooks → Add New Webhook) and set `webhook_url`"
        )),
        (403, _) => http::forbidden("Slack", a.status, &what, "let the app post in that channel (a workspace restriction, or #general posting rights)"),
        (429, _) => DeliveryError::rate_limited(format!("Slack is rate limiting the incoming webhook ({what})"), retry_wait(a)),
        (s, _) if s >= 500 => DeliveryError::retryable(format!("Slack answered {s}: {what}")).with_retry_after(retry_wait(a)),
        (404 | 410, _) => DeliveryError::permanent(format!("Slack refused the message: {what} (the webhook's channel is gone or archived; add a webhook for a live channel)")),
        (400, _) => DeliveryError::permanent(format!("Slack refused the message: {what}")),
        _ => {
            let base = a.error();
            DeliveryError::new(base.kind(), format!("Slack answered {}: {what}", a.status)).with_retry_after(base.retry_after())
        }
    };
    e.with_status(a.status)
}

fn now_ts() -> String {
    let now = chrono::Utc::now();
    format!("{}.{:06}", now.timestamp(), now.timestamp_subsec_micros())
}

impl SlackChannel {
    /// Send a request; a transport error never prints the URL (a webhook's secret path).
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, DeliveryError> {
        let res = req.timeout(self.timeout).send().await.map_err(|e| http::error_from_reqwest(&e.without_url()))?;
        http::read_answer(res).await
    }

    fn message(&self, rendering: &Rendering) -> Result<Message, DeliveryError> {
        let Rendering::Body(b) = rendering else {
            return Err(DeliveryError::permanent(format!("channel {}: a slack channel sends a body rendering", self.name)));
        };
        let m = Message::from_body(&b.body, self.blocks).map_err(DeliveryError::permanent)?;
        m.check_limits().map_err(DeliveryError::permanent)?;
        Ok(m)
    }

    /// Call a Web API method: JSON for a write, a form for a read. The envelope on `ok`, a
    /// classified error else.
    async fn api(&self, method: &str, body: Option<&Value>, form: &[(&str, String)]) -> Result<Envelope, DeliveryError> {
        let Mode::Bot { api, token, .. } = &self.mode else { unreachable!("api() in bot mode only") };
        let url = api.join(method).map_err(|e| DeliveryError::permanent(format!("Slack API URL: {e}")))?;
        let req = http::client().post(url).bearer_auth(token.expose());
        let req = match body {
            Some(b) => req.header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8").body(b.to_string()),
            None => req.form(form),
        };
        let a = self.send(req).await?;
        let env: Envelope = match a.json() {
            Ok(e) => e,
            Err(_) if !a.is_success() => return Err(classify_api(method, &a, None, None)),
            Err(e) => return Err(DeliveryError::unknown_outcome(format!("Slack answered {method} ({}) with something that is not its JSON: {e}", a.status))),
        };
        if env.ok && a.is_success() {
            return Ok(env);
        }
        Err(classify_api(method, &a, env.error.as_deref(), env.needed.as_deref()))
    }

    fn receipt(&self, ts: &str, channel: &str, note: Option<String>) -> Receipt {
        Receipt { remote_id: format!("{channel}/{ts}"), url: None, awaiting_confirmation: false, note, warning: None }
    }

    async fn post_bot(&self, m: &Message, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let Mode::Bot { channel, .. } = &self.mode else { unreachable!() };
        let mut state: SlackState = ctx.load_state().await?;
        if let (Some(ts), Some(ch)) = (&state.ts, &state.channel) {
            return Ok(self.receipt(ts, ch, Some("already posted (checkpoint)".into())));
        }
        // An earlier call went out and its answer never came (the pipeline retried a transport
        // error): look before posting again.
        if state.started.is_some() {
            match self.settle(&mut state, &ctx.key, ctx).await? {
                Reconciled::Found(r) => return Ok(r),
                Reconciled::NotFound => {}
                Reconciled::CannotCheck(why) => return Err(DeliveryError::unknown_outcome(why)),
            }
        }
        // The start goes to the store before the call: a lost answer is looked up from it.
        state.started = Some(now_ts());
        ctx.save_state(&state).await?;
        let mut body = m.payload(self.unfurl_links);
        body["channel"] = json!(channel);
        body["metadata"] = json!({ "event_type": EVENT_TYPE, "event_payload": { "key": ctx.key } });
        let env = match self.api("chat.postMessage", Some(&body), &[]).await {
            Ok(env) => env,
            Err(e) => {
                // Slack answered and refused: nothing was posted, so nothing to look up later.
                if e.status().is_some() && e.kind() != Kind::UnknownOutcome {
                    state.started = None;
                    ctx.save_state(&state).await?;
                }
                return Err(e);
            }
        };
        let (Some(ts), ch) = (env.ts, env.channel.unwrap_or_else(|| channel.clone())) else {
            return Err(DeliveryError::unknown_outcome("Slack answered chat.postMessage ok without the message's `ts`"));
        };
        state.ts = Some(ts.clone());
        state.channel = Some(ch.clone());
        ctx.save_state(&state).await?;
        Ok(self.receipt(&ts, &ch, None))
    }

    /// After a call whose answer was lost: `conversations.history` from the saved start for the
    /// message carrying `key`. A lookup right after the start waits out [`SETTLE`] before
    /// saying "not there". A token that may not read the history cannot check.
    async fn settle(&self, state: &mut SlackState, key: &str, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let Mode::Bot { channel, .. } = &self.mode else { unreachable!() };
        let Some(started) = state.started.clone() else { return Ok(Reconciled::NotFound) };
        let start: f64 = started.parse().unwrap_or(0.0);
        let oldest = format!("{:.6}", (start - SKEW_SECS).max(0.0));
        let cannot = |e: DeliveryError| {
            Reconciled::CannotCheck(format!(
                "the message may have reached the channel, and Herald cannot read its history to check ({}): add the `channels:history` (or `groups:history`) scope, or look at the channel, then mark it sent or retry",
                e.message()
            ))
        };
        let found = match self.lookup(&oldest, key).await {
            Ok(Some(ts)) => Some(ts),
            Err(e) if e.kind() == Kind::Auth => return Ok(cannot(e)),
            Err(e) => return Err(e),
            Ok(None) => {
                let age = chrono::Utc::now().timestamp_micros() as f64 / 1e6 - start;
                let left = SETTLE.as_secs_f64() - age;
                if left <= 0.0 {
                    None
                } else {
                    tokio::time::sleep(Duration::from_secs_f64(left)).await;
                    match self.lookup(&oldest, key).await {
                        Ok(f) => f,
                        Err(e) if e.kind() == Kind::Auth => return Ok(cannot(e)),
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        match found {
            Some(ts) => {
                state.ts = Some(ts.clone());
                state.channel = Some(channel.clone());
                ctx.save_state(state).await?;
                Ok(Reconciled::Found(self.receipt(&ts, channel, Some("found in conversations.history by its metadata".into()))))
            }
            None => Ok(Reconciled::NotFound),
        }
    }

    /// `conversations.history` from `oldest`, every page, for the message whose metadata holds
    /// this delivery's key.
    async fn lookup(&self, oldest: &str, key: &str) -> Result<Option<String>, DeliveryError> {
        let Mode::Bot { channel, .. } = &self.mode else { unreachable!() };
        let mut cursor: Option<String> = None;
        for _ in 0..LOOKUP_PAGES {
            let mut form = vec![("channel", channel.clone()), ("oldest", oldest.to_string()), ("inclusive", "true".into()), ("include_all_metadata", "true".into()), ("limit", "200".into())];
            if let Some(c) = &cursor {
                form.push(("cursor", c.clone()));
            }
            let env = self.api("conversations.history", None, &form).await?;
            for msg in &env.messages {
                if let Some(md) = &msg.metadata
                    && md["event_type"] == EVENT_TYPE
                    && md["event_payload"]["key"] == key
                {
                    return Ok(Some(msg.ts.clone()));
                }
            }
            cursor = env.response_metadata.and_then(|r| r.next_cursor).filter(|c| !c.is_empty());
            if !env.has_more || cursor.is_none() {
                return Ok(None);
            }
        }
        Err(DeliveryError::retryable(format!("read {LOOKUP_PAGES} pages of the channel's history without reaching its end; asking again later")))
    }
}

#[async_trait]
impl Adapter for SlackChannel {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let m = self.message(rendering)?;
        match &self.mode {
            Mode::Bot { .. } => self.post_bot(&m, ctx).await,
            Mode::Webhook { url } => {
                let a = self.send(http::client().post(url.clone()).json(&m.payload(self.unfurl_links))).await?;
                if !a.is_success() {
                    return Err(classify_webhook(&a));
                }
                if a.body.trim() != "ok" {
                    return Err(DeliveryError::unknown_outcome(format!("Slack answered {} but not `ok`: {}", a.status, crate::channel::error::excerpt(&a.body))));
                }
                // An incoming webhook answers `ok` and nothing that identifies the message.
                Ok(Receipt { remote_id: "incoming-webhook".into(), url: None, awaiting_confirmation: false, note: Some("Slack's incoming webhooks return no message id".into()), warning: None })
            }
        }
    }

    /// Bot mode: the checkpoint's `ts`, else `conversations.history` from the saved start for
    /// the message carrying this delivery's key. A lookup right after the start waits out
    /// [`SETTLE`] before saying "not there". Webhook mode cannot check.
    async fn find_existing(&self, _rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        if let Mode::Webhook { .. } = self.mode {
            return Ok(Reconciled::CannotCheck(
                "a Slack incoming webhook answers only `ok` and cannot read the channel, so Herald cannot check whether the message arrived; look at the channel, then mark it sent or retry".into(),
            ));
        }
        let mut state: SlackState = ctx.load_state().await?;
        if let (Some(ts), Some(ch)) = (&state.ts, &state.channel) {
            return Ok(Reconciled::Found(self.receipt(ts, ch, Some("already posted (checkpoint)".into()))));
        }
        self.settle(&mut state, &ctx.key, ctx).await
    }

    /// Bot mode: `auth.test` (the token). A webhook has no call that posts nothing.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        match &self.mode {
            Mode::Bot { .. } => self.api("auth.test", None, &[]).await.map(|_| ()),
            Mode::Webhook { .. } => Ok(()),
        }
    }

    async fn preflight(&self, rendering: &Rendering) -> Result<(), String> {
        self.message(rendering).map(|_| ()).map_err(|e| e.message().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, retry_after: Option<&str>) -> Answer {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert("retry-after", r.parse().unwrap());
        }
        Answer { status, headers, body: body.into() }
    }

    #[test]
    fn api_errors_are_classified_by_slack_code() {
        for (code, kind) in [
            ("not_authed", Kind::Auth),
            ("invalid_auth", Kind::Auth),
            ("token_revoked", Kind::Auth),
            ("account_inactive", Kind::Auth),
            ("missing_scope", Kind::Auth),
            ("channel_not_found", Kind::Permanent),
            ("not_in_channel", Kind::Permanent),
            ("is_archived", Kind::Permanent),
            ("msg_too_long", Kind::Permanent),
            ("no_text", Kind::Permanent),
            ("too_many_attachments", Kind::Permanent),
            ("internal_error", Kind::Retryable),
        ] {
            let a = answer(200, &format!(r#"{{"ok":false,"error":"{code}"}}"#), None);
            assert_eq!(classify_api("chat.postMessage", &a, Some(code), None).kind(), kind, "{code}");
        }
        let e = classify_api("chat.postMessage", &answer(429, r#"{"ok":false,"error":"ratelimited"}"#, Some("30")), Some("ratelimited"), None);
        assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_secs(30))));
        assert_eq!(classify_api("chat.postMessage", &answer(503, "<html>", None), None, None).kind(), Kind::Retryable);
    }

    #[test]
    fn webhook_errors_are_classified_by_status_and_text() {
        assert_eq!(classify_webhook(&answer(400, "invalid_payload", None)).kind(), Kind::Permanent);
        assert_eq!(classify_webhook(&answer(400, "no_text", None)).kind(), Kind::Permanent);
        assert_eq!(classify_webhook(&answer(403, "invalid_token", None)).kind(), Kind::Auth);
        assert_eq!(classify_webhook(&answer(404, "no_service", None)).kind(), Kind::Auth);
        assert_eq!(classify_webhook(&answer(403, "action_prohibited", None)).kind(), Kind::Forbidden);
        assert_eq!(classify_webhook(&answer(403, "posting_to_general_channel_denied", None)).kind(), Kind::Forbidden);
        assert_eq!(classify_webhook(&answer(404, "channel_not_found", None)).kind(), Kind::Permanent);
        assert_eq!(classify_webhook(&answer(410, "channel_is_archived", None)).kind(), Kind::Permanent);
        let e = classify_webhook(&answer(429, "rate_limited", Some("7")));
        assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_secs(7))));
        assert_eq!(classify_webhook(&answer(500, "rollup_error", None)).kind(), Kind::Retryable);
    }
}
