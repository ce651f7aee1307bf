//! The `discord` adapter: an announcement through a channel webhook,
//! `POST {webhook_url}?wait=true` (Discord's "Execute Webhook"), or, in bot mode, as a bot,
//! `POST {api_base}/channels/{channel_id}/messages` (Discord's "Create Message") with
//! `Authorization: Bot <token>`.
//!
//! Render is apart from deliver: `channels/discord/body.json.hbs` renders
//! `{content, embeds: [{title, description, url}]}` (content as a string, or as a list of lines
//! joined by newlines so a template never escapes JSON inside a string); [`Message`] reads it,
//! checks Discord's limits before anything is sent, and the adapter adds `username`,
//! `avatar_url` and `allowed_mentions: {parse: []}` (an issue that says `@everyone` pings no one).
//!
//! `wait=true` makes Discord answer `200` with the message object, so the receipt holds the
//! message id (without it Discord answers `204` and nothing identifies the post).
//!
//! Reconciliation through a webhook: a webhook cannot list its channel's messages; reading one
//! back (`GET /webhooks/{id}/{token}/messages/{message_id}`) needs the id, which Herald only
//! learns from the answer it lost. An unknown outcome therefore cannot be checked, and is left
//! `unconfirmed` for the operator (never resent blindly: that could post twice).
//!
//! Reconciliation as a bot: every Create Message carries a `nonce` derived from the delivery key
//! ([`nonce_for`], 25 characters, Discord's limit) with `enforce_nonce: true`. Discord's docs:
//! "If true and nonce is present, it will be checked for uniqueness in the past few minutes. If
//! another message was created by the same author with the same nonce, that message will be
//! returned and no new message will be created." So a lost answer is sent again with the same
//! nonce, and whatever Discord answers is the one message. Discord gives no figure for "a few
//! minutes": `nonce_window_secs` (default [`NONCE_WINDOW_DEFAULT_SECS`]) is how long after the
//! send Herald still trusts it; past that, the delivery is left `unconfirmed`, as a webhook's is.

pub mod kind;
pub use kind::Discord;

mod channel;

use std::sync::Arc;
use std::time::Duration;

pub use channel::DiscordChannel;
use channel::{Bot, Target};
use serde_json::{Value, json};

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// The default `nonce_window_secs`: two minutes, the low end of Discord's "the past few
/// minutes" (Discord publishes no figure).
pub const NONCE_WINDOW_DEFAULT_SECS: u64 = 120;
/// Discord's limit on a nonce ("up to 25 characters").
pub const NONCE_MAX: usize = 25;

/// The nonce for a delivery: `h` and the first 24 hex digits of the SHA-256 of its key, 25
/// characters. The same delivery (issue, channel, revision) always gets the same nonce, and a
/// republish (a new revision) a new one.
pub fn nonce_for(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut n = String::from("h");
    n.push_str(&hex::encode(&digest[..12]));
    n
}

/// Message content, in UTF-16 code units as Discord counts them.
pub const CONTENT_MAX: usize = 2000;
/// An embed's title.
pub const EMBED_TITLE_MAX: usize = 256;
/// An embed's description.
pub const EMBED_DESCRIPTION_MAX: usize = 4096;
/// Every embed's text together.
pub const EMBEDS_TOTAL_MAX: usize = 6000;
/// Embeds per message.
pub const EMBEDS_MAX: usize = 10;

/// Length as Discord counts it (UTF-16 code units, JavaScript's `length`).
pub fn discord_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `(webhook id, token)` of a webhook URL whose path ends `/webhooks/{id}/{token}` (with or
/// without `/api` and `/v10`). `None` for anything else.
pub fn split_webhook_url(url: &str) -> Option<(String, String)> {
    let u = reqwest::Url::parse(url).ok()?;
    let segs: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    let at = segs.iter().rposition(|s| *s == "webhooks")?;
    match &segs[at + 1..] {
        [id, token] if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) && !token.is_empty() => Some((id.to_string(), token.to_string())),
        _ => None,
    }
}

/// One rich embed (the link card).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embed {
    /// Title, ≤ 256.
    pub title: Option<String>,
    /// Description, ≤ 4,096.
    pub description: Option<String>,
    /// The title's link.
    pub url: Option<String>,
}

/// The rendered message, read from the body rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `content`, lines joined.
    pub content: String,
    /// The embeds (none when the channel sets `embed = false`).
    pub embeds: Vec<Embed>,
}

fn opt_str(v: &Value, key: &str) -> Result<Option<String>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("embed `{key}` must be a string, found {other}")),
    }
}

impl Message {
    /// Read `{content, embeds}` from the rendered body; `embed = false` drops the embeds.
    pub fn from_body(body: &Value, embed: bool) -> Result<Self, String> {
        let content = match body.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(lines)) => {
                let lines: Option<Vec<&str>> = lines.iter().map(Value::as_str).collect();
                lines.ok_or("`content` must be a string or a list of strings")?.join("\n")
            }
            Some(_) => return Err("`content` must be a string or a list of strings".into()),
        };
        let mut embeds = Vec::new();
        if embed {
            match body.get("embeds") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for e in items {
                        embeds.push(Embed { title: opt_str(e, "title")?, description: opt_str(e, "description")?, url: opt_str(e, "url")? });
                    }
                }
                Some(_) => return Err("`embeds` must be a list of {title, description, url}".into()),
            }
        }
        let content = content.trim().to_string();
        let m = Message { content, embeds };
        if m.content.is_empty() && m.embeds.is_empty() {
            return Err("the rendering has neither `content` nor an embed; Discord refuses an empty message".into());
        }
        Ok(m)
    }

    /// Discord's limits (Execute Webhook, Embed Limits): refused here, before anything is sent.
    pub fn check_limits(&self) -> Result<(), String> {
        let n = discord_len(&self.content);
        if n > CONTENT_MAX {
            return Err(format!("the message content is {n} characters; Discord allows {CONTENT_MAX} (shorten the summary or the template)"));
        }
        if self.embeds.len() > EMBEDS_MAX {
            return Err(format!("{} embeds; Discord allows {EMBEDS_MAX}", self.embeds.len()));
        }
        let mut total = 0;
        for e in &self.embeds {
            let t = e.title.as_deref().map_or(0, discord_len);
            let d = e.description.as_deref().map_or(0, discord_len);
            if t > EMBED_TITLE_MAX {
                return Err(format!("the embed title is {t} characters; Discord allows {EMBED_TITLE_MAX} (use `truncate` in the template)"));
            }
            if d > EMBED_DESCRIPTION_MAX {
                return Err(format!("the embed description is {d} characters; Discord allows {EMBED_DESCRIPTION_MAX}"));
            }
            total += t + d;
        }
        if total > EMBEDS_TOTAL_MAX {
            return Err(format!("the embeds hold {total} characters together; Discord allows {EMBEDS_TOTAL_MAX}"));
        }
        Ok(())
    }

    /// The Create Message JSON body (bot mode): the message, and the delivery's `nonce` with
    /// `enforce_nonce: true` (a bot posts under its own name: no `username`, no `avatar_url`).
    pub fn bot_payload(&self, nonce: &str) -> Value {
        let mut v = self.payload(None, None);
        v["nonce"] = json!(nonce);
        v["enforce_nonce"] = json!(true);
        v
    }

    /// The Execute Webhook JSON body.
    pub fn payload(&self, username: Option<&str>, avatar_url: Option<&str>) -> Value {
        let mut v = json!({ "allowed_mentions": { "parse": [] } });
        if !self.content.is_empty() {
            v["content"] = json!(self.content);
        }
        if !self.embeds.is_empty() {
            let embeds: Vec<Value> = self
                .embeds
                .iter()
                .map(|e| {
                    let mut o = serde_json::Map::new();
                    for (k, val) in [("title", &e.title), ("description", &e.description), ("url", &e.url)] {
                        if let Some(s) = val {
                            o.insert(k.into(), json!(s));
                        }
                    }
                    Value::Object(o)
                })
                .collect();
            v["embeds"] = Value::Array(embeds);
        }
        if let Some(u) = username {
            v["username"] = json!(u);
        }
        if let Some(a) = avatar_url {
            v["avatar_url"] = json!(a);
        }
        v
    }
}

/// Build the adapter for channel `name`. Errors name the key, never the URL or the token.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Discord(c) = cfg else { anyhow::bail!("channel {name}: not a discord channel") };
    let bot_token = pick_secret(&c.bot_token, &c.bot_token_file);
    let target = if bot_token.is_some() { Target::Bot(bot(name, c, ctx, bot_token)?) } else { Target::Webhook(webhook(name, c, ctx)?) };
    Ok(Arc::new(DiscordChannel {
        name: name.to_string(),
        target,
        username: c.username.clone(),
        avatar_url: c.avatar_url.clone(),
        embed: c.embed,
        timeout: c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout),
    }))
}

/// The webhook URL with `?wait=true`.
fn webhook(name: &str, c: &kind::DiscordConfig, ctx: &BuildCtx) -> anyhow::Result<reqwest::Url> {
    let url = ctx.secret(name, "webhook_url", pick_secret(&c.webhook_url, &c.webhook_url_file))?;
    let parsed = reqwest::Url::parse(url.expose().trim())
        .map_err(|_| anyhow::anyhow!("channel {name}: `webhook_url` is not a URL; copy it from Server Settings → Integrations → Webhooks → Copy Webhook URL"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && split_webhook_url(parsed.as_str()).is_some(),
        "channel {name}: `webhook_url` is not a Discord webhook URL (expected https://discord.com/api/webhooks/<id>/<token>)"
    );
    let mut endpoint = parsed;
    endpoint.set_query(Some("wait=true"));
    endpoint.set_fragment(None);
    Ok(endpoint)
}

/// Bot mode: the channel's endpoints and the `Bot <token>` header.
fn bot(name: &str, c: &kind::DiscordConfig, ctx: &BuildCtx, token: Option<crate::config::Secret>) -> anyhow::Result<Bot> {
    let token = ctx.secret(name, "bot_token", token)?;
    let channel_id = c.channel_id.as_deref().map(str::trim).unwrap_or_default();
    anyhow::ensure!(kind::is_snowflake(channel_id), "channel {name}: `channel_id` must be the channel's id (digits; right-click the channel → Copy Channel ID)");
    let base = c.api_base.trim_end_matches('/');
    let channel = reqwest::Url::parse(&format!("{base}/channels/{channel_id}")).map_err(|_| anyhow::anyhow!("channel {name}: `api_base` is not a URL"))?;
    let messages = reqwest::Url::parse(&format!("{base}/channels/{channel_id}/messages")).map_err(|_| anyhow::anyhow!("channel {name}: `api_base` is not a URL"))?;
    let mut authorization = reqwest::header::HeaderValue::from_str(&format!("Bot {}", token.expose().trim()))
        .map_err(|_| anyhow::anyhow!("channel {name}: `bot_token` holds characters a header cannot carry; copy the token again"))?;
    authorization.set_sensitive(true);
    Ok(Bot { messages, channel, authorization, nonce_window: Duration::from_secs(c.nonce_window_secs) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_split_into_id_and_token() {
        assert_eq!(split_webhook_url("https://discord.com/api/webhooks/123/abc-DEF_9"), Some(("123".into(), "abc-DEF_9".into())));
        assert_eq!(split_webhook_url("https://discord.com/api/v10/webhooks/123/tok/"), Some(("123".into(), "tok".into())));
        assert_eq!(split_webhook_url("https://discord.com/api/webhooks/123"), None);
        assert_eq!(split_webhook_url("https://discord.com/api/webhooks/abc/tok"), None);
        assert_eq!(split_webhook_url("https://discord.com/channels/1/2"), None);
    }

    #[test]
    fn content_lines_join_and_limits_count_utf16() {
        let m = Message::from_body(&json!({"content": ["a", "", "b"], "embeds": [{"title": "T", "url": "https://x.example/"}]}), true).unwrap();
        assert_eq!(m.content, "a\n\nb");
        assert_eq!(m.embeds.len(), 1);
        assert!(m.check_limits().is_ok());
        // 1,000 emoji are 2,000 UTF-16 units: at the limit; one more is over.
        let at = Message { content: "😀".repeat(1000), embeds: vec![] };
        assert!(at.check_limits().is_ok());
        let over = Message { content: "😀".repeat(1000) + "x", embeds: vec![] };
        assert!(over.check_limits().unwrap_err().contains("2001"));
        let long_title = Message { content: "x".into(), embeds: vec![Embed { title: Some("t".repeat(257)), ..Embed::default() }] };
        assert!(long_title.check_limits().unwrap_err().contains("title"));
    }

    #[test]
    fn embed_false_drops_the_card_and_empty_is_refused() {
        let body = json!({"content": "", "embeds": [{"title": "T"}]});
        assert!(Message::from_body(&body, true).is_ok());
        assert!(Message::from_body(&body, false).unwrap_err().contains("empty"));
    }

    #[test]
    fn the_nonce_is_25_characters_and_one_per_delivery() {
        let n = nonce_for("issue-12/announce/r1");
        assert_eq!(n.len(), NONCE_MAX);
        assert_eq!(n, nonce_for("issue-12/announce/r1"), "the same delivery, the same nonce");
        assert_ne!(n, nonce_for("issue-12/announce/r2"), "a republish is a new message");
        assert_ne!(n, nonce_for("issue-12/other/r1"));
        let p = Message { content: "hi".into(), embeds: vec![] }.bot_payload(&n);
        assert_eq!(p, json!({"content": "hi", "allowed_mentions": {"parse": []}, "nonce": n, "enforce_nonce": true}));
    }

    #[test]
    fn payload_never_pings() {
        let m = Message { content: "@everyone hi".into(), embeds: vec![] };
        let p = m.payload(Some("Herald"), None);
        assert_eq!(p, json!({"content": "@everyone hi", "username": "Herald", "allowed_mentions": {"parse": []}}));
    }
}
