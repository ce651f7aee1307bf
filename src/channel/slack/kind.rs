//! `type = "slack"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its limits, its build, and its sandbox wiring.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt};
use crate::config::{Common, Secret, pick_secret};
use crate::render::Rendering;
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "slack"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct SlackConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// An incoming webhook URL, `https://hooks.slack.com/services/T…/B…/…`: a secret (whoever
    /// holds it can post). Used when no `bot_token` is set.
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    /// The webhook URL from a file.
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// A bot token (`xoxb-…`) with `chat:write` (and `channels:history`/`groups:history` to
    /// reconcile): posts with `chat.postMessage`. Wins over `webhook_url` when both are set.
    #[serde(default)]
    pub bot_token: Option<Secret>,
    /// The bot token from a file.
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// The channel's id (`C…`, `G…`), for the bot token.
    #[serde(default)]
    pub channel: Option<String>,
    /// The Web API's base, `https://slack.com/api`.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Send the header and section blocks; `false` sends `text` alone.
    #[serde(default = "yes")]
    pub blocks: bool,
    /// Let Slack unfurl the link into a card.
    #[serde(default = "yes")]
    pub unfurl_links: bool,
}

fn default_api_base() -> String {
    "https://slack.com/api".into()
}
fn yes() -> bool {
    true
}

/// The `slack` type: an announcement in a Slack channel.
pub struct Slack;

impl ChannelType for Slack {
    const TYPE: &'static str = "slack";
    const ALIASES: &'static [&'static str] = &["slack_webhook", "slack_bot"];
    const KEYS: &'static [KeySpec] = &[
        opt("webhook_url", Kind::Secret),
        opt("webhook_url_file", Kind::Path),
        opt("bot_token", Kind::Secret),
        opt("bot_token_file", Kind::Path),
        opt("channel", Kind::NonEmptyStr),
        opt("api_base", Kind::HttpUrl),
        opt("blocks", Kind::Bool),
        opt("unfurl_links", Kind::Bool),
    ];
    /// The bot's keys: refused beside a webhook (one way to post).
    const EXCLUSIVE_KEYS: &'static [&'static str] = &["bot_token", "bot_token_file", "channel", "api_base"];
    type Config = SlackConfig;
    kind_basics!();

    /// One way to post: a webhook, or a bot token with the channel's id.
    fn check(c: &mut ChannelCheck<'_, '_>) {
        let bot = c.has("bot_token") || c.has("bot_token_file");
        let hook = c.has("webhook_url") || c.has("webhook_url_file");
        if !bot && !hook {
            let env = c.name().replace('-', "_").to_ascii_uppercase();
            c.problem(
                "webhook_url",
                "is required for a `slack` channel, or `bot_token` with `channel`".into(),
                Some(format!("write `webhook_url = \"${{{env}_WEBHOOK_URL}}\"`, or `bot_token = \"${{{env}_BOT_TOKEN}}\"` and `channel = \"C0123456789\"`")),
            );
        }
        if bot && hook {
            let k = if c.has("bot_token") { "bot_token" } else { "bot_token_file" };
            c.problem_at(
                k,
                "cannot be set beside `webhook_url`: a slack channel posts through a webhook or as a bot, not both".into(),
                Some("keep `webhook_url` alone, or remove it and keep `bot_token` with `channel` (a bot's lost answers can be reconciled)".into()),
            );
        }
        if bot && !c.has("channel") {
            c.problem("channel", "is required with `bot_token`".into(), Some("add `channel = \"C0123456789\"` (the channel's id: its name → About → Channel ID)".into()));
        }
        // The id's shape is checked when the adapter is built (with the same hint): the
        // validator's kinds have none for it.
    }
    /// The bot token, the whole webhook URL and its path (`/services/T…/B…/secret`) alone.
    fn secrets(c: &Self::Config, ctx: &BuildCtx, out: &mut Secrets) {
        let hook = pick_secret(&c.webhook_url, &c.webhook_url_file);
        if let Some(url) = hook.as_ref().and_then(|s| s.resolve_with(&|k| (ctx.env)(k)).ok())
            && let Ok(u) = reqwest::Url::parse(url.expose().trim())
            && let Some(secret) = u.path_segments().and_then(|mut s| s.next_back()).filter(|s| s.len() >= 8)
        {
            out.plain.push(secret.to_string());
        }
        out.refs.push(hook);
        out.refs.push(pick_secret(&c.bot_token, &c.bot_token_file));
    }
    fn size_limit(c: &Self::Config, r: &Rendering) -> Result<(), String> {
        let Rendering::Body(b) = r else { return Err("a slack channel sends a body rendering".into()) };
        super::Message::from_body(&b.body, c.blocks)?.check_limits()
    }
    /// A channel with a bot token talks to the fake's Web API; one with a webhook to its hook.
    async fn sandbox(s: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::slack::{self as fake, SlackFake};
        let f = SlackFake::start().await?;
        if s.bot_token.is_some() || s.bot_token_file.is_some() {
            s.api_base = f.api_base();
            ctx.secret_pair(&mut s.bot_token, &mut s.bot_token_file, "bot_token", fake::BOT_TOKEN)?;
            s.channel = Some(fake::CHANNEL_ID.to_string());
        } else {
            ctx.secret_pair(&mut s.webhook_url, &mut s.webhook_url_file, "webhook_url", &f.webhook_url())?;
        }
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(s: &Self::Config, t: &mut FragmentTable<'_>) {
        if s.bot_token.is_some() {
            t.set("api_base", &s.api_base);
            t.set("channel", s.channel.as_deref().unwrap_or_default());
            t.secret_file("bot_token", &s.bot_token);
        } else {
            t.secret_file("webhook_url", &s.webhook_url);
        }
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::slack::SlackFake, |f| listed(f.messages(), "message(s)"));
