//! The `slack` adapter: an announcement in a Slack channel, through an **incoming webhook**
//! (`POST {webhook_url}`, JSON `{text, blocks, unfurl_links}`, answered `200 ok` as text) or
//! through **`chat.postMessage`** with a bot token (`Authorization: Bearer xoxb-…`, answered
//! `200 {"ok": true, "channel", "ts"}` or `200 {"ok": false, "error"}`).
//!
//! Render is apart from deliver: `channels/slack/body.json.hbs` renders `{header, text,
//! sections}` with the issue's **Markdown**; [`Message`] converts it to Slack's `mrkdwn`
//! ([`mrkdwn`]: `&`, `<`, `>` escaped, links `<url|text>`, `*bold*`), builds the blocks and
//! checks Slack's limits before anything is sent:
//!
//! - `text` past 40,000 characters: **refused** (Slack truncates it silently, per
//!   chat.postMessage's "Truncating content"; an announcement cut short is worse than none).
//!   Slack recommends at most 4,000; the shipped template's `text` is the short notification
//!   fallback, well under it.
//! - a `section` block's text over 3,000 characters (Block Kit's limit, refused by Slack as
//!   `invalid_blocks`): **split** at paragraph, then line, then word boundaries (never inside
//!   a `<…>` link or mention) into consecutive section blocks, which read as one text;
//! - more than 50 blocks after that: **refused** (Slack's message limit; nothing to split to
//!   but a second message, which would break the one-delivery-one-message receipt);
//! - a `header` over 150 characters: refused (the template truncates it).
//!
//! Reconciliation: in bot mode each message carries `metadata: {event_type:
//! "herald_delivery", event_payload: {key}}`, and the attempt's start is saved before the call;
//! after a lost answer, `conversations.history` (`oldest` = that start, `include_all_metadata`)
//! finds the message by its key before anything is resent. An incoming webhook answers `ok`
//! without an id and cannot read the channel, so a lost answer there stays `unconfirmed`.

pub mod kind;
pub mod mrkdwn;
pub use kind::Slack;

mod channel;

use std::sync::Arc;
use std::time::Duration;

pub use channel::SlackChannel;
use serde_json::{Value, json};

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// `text`: Slack truncates past this many characters.
pub const TEXT_MAX: usize = 40_000;
/// `text`: what Slack recommends at most (not enforced; the docs call it best practice).
pub const TEXT_RECOMMENDED: usize = 4_000;
/// A section block's text.
pub const SECTION_MAX: usize = 3_000;
/// A header block's text.
pub const HEADER_MAX: usize = 150;
/// Blocks per message.
pub const BLOCKS_MAX: usize = 50;
/// The metadata `event_type` Herald's messages carry.
pub const EVENT_TYPE: &str = "herald_delivery";

/// Length as Slack's limits count it: characters.
pub fn slack_len(s: &str) -> usize {
    s.chars().count()
}

/// The rendered message, in `mrkdwn`, read from the body rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `text`: the message, or the notification fallback beside blocks.
    pub text: String,
    /// A header block (plain text), first.
    pub header: Option<String>,
    /// Section blocks, each ≤ 3,000 characters (split already).
    pub sections: Vec<String>,
}

/// A Markdown value: a string, or a list of lines joined by newlines, where a line may itself be
/// a list of pieces joined as they are (so a template never writes JSON escapes by hand).
fn markdown(v: &Value, what: &str) -> Result<String, String> {
    let piece = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Array(parts) => parts.iter().map(|p| p.as_str().map(str::to_string).ok_or_else(|| format!("`{what}`: a line's pieces must be strings"))).collect(),
            _ => Err(format!("`{what}` must be a string or a list of lines")),
        }
    };
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(lines) => Ok(lines.iter().map(piece).collect::<Result<Vec<_>, _>>()?.join("\n")),
        _ => Err(format!("`{what}` must be a string or a list of lines")),
    }
}

/// Cut `s` into pieces of at most `max` characters: at the last blank line, else line break,
/// else space before the limit; never inside `<…>` (a link or a mention); a word longer than
/// the limit is cut where it must be.
pub fn split(s: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while slack_len(rest) > max {
        let (mut para, mut line, mut space, mut inside) = (None, None, None, false);
        let mut end = rest.len();
        for (n, (i, c)) in rest.char_indices().enumerate() {
            if n >= max {
                end = i;
                break;
            }
            match c {
                '<' => inside = true,
                '>' => inside = false,
                '\n' if !inside && rest[i + 1..].starts_with('\n') => para = Some(i),
                '\n' if !inside => line = Some(i),
                ' ' if !inside => space = Some(i),
                _ => {}
            }
        }
        let cut = para.or(line).or(space).filter(|&c| c > 0).unwrap_or(end);
        out.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

impl Message {
    /// Read `{header, text, sections}` (Markdown) from the rendered body and convert it.
    /// `blocks = false` keeps `text` alone.
    pub fn from_body(body: &Value, blocks: bool) -> Result<Self, String> {
        if !body.is_object() {
            return Err("the rendering must be a JSON object {header, text, sections}".into());
        }
        let text = mrkdwn::from_markdown(&markdown(body.get("text").unwrap_or(&Value::Null), "text")?);
        if text.is_empty() {
            return Err("the rendering has no `text`; Slack needs it (the message, or the notification beside blocks)".into());
        }
        let mut m = Message { text, header: None, sections: Vec::new() };
        if blocks {
            m.header = match body.get("header") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(s.split_whitespace().collect::<Vec<_>>().join(" ")),
                Some(_) => return Err("`header` must be a string (plain text)".into()),
            };
            match body.get("sections") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for (i, s) in items.iter().enumerate() {
                        let md = mrkdwn::from_markdown(&markdown(s, &format!("sections[{i}]"))?);
                        m.sections.extend(split(&md, SECTION_MAX));
                    }
                }
                Some(_) => return Err("`sections` must be a list".into()),
            }
        }
        Ok(m)
    }

    /// The blocks: the header, then one section per piece.
    pub fn blocks(&self) -> Vec<Value> {
        let mut b = Vec::new();
        if let Some(h) = &self.header {
            b.push(json!({"type": "header", "text": {"type": "plain_text", "text": h, "emoji": true}}));
        }
        for s in &self.sections {
            b.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": s}}));
        }
        b
    }

    /// Slack's limits, checked before anything is sent (see the module doc for each choice).
    pub fn check_limits(&self) -> Result<(), String> {
        let n = slack_len(&self.text);
        if n > TEXT_MAX {
            return Err(format!("the message text is {n} characters; Slack truncates past {TEXT_MAX} (shorten the template's `text`; it should stay under {TEXT_RECOMMENDED})"));
        }
        if let Some(h) = &self.header
            && slack_len(h) > HEADER_MAX
        {
            return Err(format!("the header is {} characters; Slack allows {HEADER_MAX} (use `truncate` in the template)", slack_len(h)));
        }
        let blocks = self.header.iter().count() + self.sections.len();
        if blocks > BLOCKS_MAX {
            return Err(format!("the message makes {blocks} blocks (sections over 3,000 characters are split); Slack allows {BLOCKS_MAX}: put fewer sections in the template, or set `blocks = false`"));
        }
        Ok(())
    }

    /// The JSON body, for a webhook and (with `channel` and `metadata` added) chat.postMessage.
    pub fn payload(&self, unfurl_links: bool) -> Value {
        let mut v = json!({ "text": self.text, "unfurl_links": unfurl_links });
        let blocks = self.blocks();
        if !blocks.is_empty() {
            v["blocks"] = Value::Array(blocks);
        }
        v
    }
}

/// A Slack conversation id: `C…` (public), `G…` (private), `D…` (direct), upper-case
/// letters and digits. `conversations.history` takes ids only, never `#name`.
pub fn channel_id_ok(s: &str) -> bool {
    s.len() >= 9 && s.starts_with(['C', 'G', 'D']) && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Build the adapter for channel `name`. Errors name the key, never the secret.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Slack(c) = cfg else { anyhow::bail!("channel {name}: not a slack channel") };
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    let bot = pick_secret(&c.bot_token, &c.bot_token_file);
    let mode = if bot.is_some() {
        let token = ctx.secret(name, "bot_token", bot)?;
        if !token.expose().starts_with("xox") || token.expose().contains(char::is_whitespace) {
            anyhow::bail!("channel {name}: `bot_token` is not a Slack bot token (it starts `xoxb-`: OAuth & Permissions → Bot User OAuth Token)");
        }
        let channel = c.channel.clone().unwrap_or_default();
        if !channel_id_ok(&channel) {
            anyhow::bail!(
                "channel {name}: `channel` must be the Slack channel's id (`channel = \"C0123456789\"`: in Slack, the channel's name → About → Channel ID), not `{channel}`"
            );
        }
        let api = reqwest::Url::parse(&format!("{}/", c.api_base.trim_end_matches('/'))).map_err(|_| anyhow::anyhow!("channel {name}: `api_base` is not a URL"))?;
        channel::Mode::Bot { api, token, channel }
    } else {
        let url = ctx.secret(name, "webhook_url", pick_secret(&c.webhook_url, &c.webhook_url_file))?;
        let parsed = reqwest::Url::parse(url.expose().trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.path().contains("/services/"))
            .ok_or_else(|| anyhow::anyhow!("channel {name}: `webhook_url` is not a Slack incoming webhook URL (expected https://hooks.slack.com/services/T…/B…/…; copy it from your app's Incoming Webhooks page)"))?;
        channel::Mode::Webhook { url: parsed }
    };
    Ok(Arc::new(SlackChannel { name: name.to_string(), mode, blocks: c.blocks, unfurl_links: c.unfurl_links, timeout }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_pieces_join_and_convert() {
        let body = json!({"header": "Issue  12", "text": [["**", "Issue 12", "**"], "", "A & B"], "sections": ["[Read](https://e.example/12)"]});
        let m = Message::from_body(&body, true).unwrap();
        assert_eq!(m.text, "*Issue 12*\n\nA &amp; B");
        assert_eq!(m.header.as_deref(), Some("Issue 12"));
        assert_eq!(m.sections, vec!["<https://e.example/12|Read>".to_string()]);
        let m = Message::from_body(&body, false).unwrap();
        assert!(m.header.is_none() && m.sections.is_empty());
        assert!(Message::from_body(&json!({"text": ""}), true).unwrap_err().contains("no `text`"));
    }

    #[test]
    fn long_sections_split_at_boundaries_never_inside_a_link() {
        let para = format!("{} <https://e.example/{}|a long link text>", "word ".repeat(500).trim(), "p".repeat(100));
        let text = format!("{para}\n\n{para}");
        let parts = split(&text, SECTION_MAX);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts.iter().all(|p| slack_len(p) <= SECTION_MAX));
        assert_eq!(parts[0], para, "cut at the blank line");
        // One paragraph longer than the limit: cut at a space, not inside the link.
        let long = format!("{} <https://e.example/x|link text with spaces> tail", "w ".repeat(1490));
        for p in split(&long, SECTION_MAX) {
            assert_eq!(p.matches('<').count(), p.matches('>').count(), "{p}");
            assert!(slack_len(&p) <= SECTION_MAX);
        }
        // A word with no boundary is cut at the limit.
        assert_eq!(split(&"x".repeat(3001), 3000).iter().map(|p| slack_len(p)).collect::<Vec<_>>(), vec![3000, 1]);
    }

    #[test]
    fn limits_are_refused_before_sending() {
        let m = Message { text: "x".repeat(TEXT_MAX + 1), header: None, sections: vec![] };
        assert!(m.check_limits().unwrap_err().contains("40001"));
        let m = Message { text: "x".into(), header: None, sections: vec!["s".into(); 51] };
        assert!(m.check_limits().unwrap_err().contains("51 blocks"));
        let m = Message { text: "x".into(), header: Some("h".into()), sections: vec!["s".into(); 49] };
        assert!(m.check_limits().is_ok());
        let m = Message { text: "x".into(), header: Some("h".repeat(151)), sections: vec![] };
        assert!(m.check_limits().unwrap_err().contains("header"));
    }

    #[test]
    fn channel_ids() {
        assert!(channel_id_ok("C0123456789"));
        assert!(channel_id_ok("G01ABCDEFGH"));
        assert!(!channel_id_ok("#general"));
        assert!(!channel_id_ok("c0123456789"));
    }
}
