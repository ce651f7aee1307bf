//! `type = "discord"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt};
use crate::config::{Common, Secret, pick_secret};
use crate::render::Rendering;
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "discord"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct DiscordConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// The webhook URL, `https://discord.com/api/webhooks/{id}/{token}`: a secret, since
    /// whoever holds it can post to the channel.
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    /// The webhook URL from a file.
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Overrides the webhook's default name for Herald's messages.
    #[serde(default)]
    pub username: Option<String>,
    /// Overrides the webhook's default avatar.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Send the rendering's embed (the link card). `false` sends the content alone.
    #[serde(default = "yes")]
    pub embed: bool,
    /// Bot mode, instead of `webhook_url`: the bot's token (Developer Portal → your app → Bot →
    /// Reset Token), sent as `Authorization: Bot <token>`. A bot's lost answers can be
    /// reconciled (Create Message with a nonce); a webhook's cannot.
    #[serde(default)]
    pub bot_token: Option<Secret>,
    /// The bot token from a file.
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// Bot mode: the channel the bot posts in, by id (a snowflake).
    #[serde(default)]
    pub channel_id: Option<String>,
    /// Bot mode: Discord's API root.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Bot mode: how long after a send whose answer was lost Herald sends it again with the same
    /// nonce, trusting Discord to return the message rather than post another. Discord says
    /// only "the past few minutes"; past this, the delivery is left `unconfirmed`.
    #[serde(default = "default_nonce_window")]
    pub nonce_window_secs: u64,
}

fn yes() -> bool {
    true
}
fn default_api_base() -> String {
    "https://discord.com/api/v10".into()
}
fn default_nonce_window() -> u64 {
    super::NONCE_WINDOW_DEFAULT_SECS
}

/// A Discord id: 1 to 20 digits.
pub(crate) fn is_snowflake(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Keys only bot mode takes.
const BOT_KEYS: &[&str] = &["bot_token", "bot_token_file", "channel_id", "api_base", "nonce_window_secs"];

/// The `discord` type: an announcement through a channel webhook, or as a bot.
pub struct Discord;

impl ChannelType for Discord {
    const TYPE: &'static str = "discord";
    const ALIASES: &'static [&'static str] = &["discord_webhook"];
    const KEYS: &'static [KeySpec] = &[
        opt("webhook_url", Kind::Secret),
        opt("webhook_url_file", Kind::Path),
        opt("username", Kind::NonEmptyStr),
        opt("avatar_url", Kind::HttpUrl),
        opt("embed", Kind::Bool),
        opt("bot_token", Kind::Secret),
        opt("bot_token_file", Kind::Path),
        opt("channel_id", Kind::NonEmptyStr),
        opt("api_base", Kind::HttpUrl),
        opt("nonce_window_secs", Kind::UIntUpTo(600)),
    ];
    const EXCLUSIVE_KEYS: &'static [&'static str] = BOT_KEYS;
    type Config = DiscordConfig;
    kind_basics!();

    /// A webhook or a bot, not both; a bot needs its channel; each mode's own keys only.
    fn check(c: &mut ChannelCheck<'_, '_>) {
        let webhook = c.has("webhook_url") || c.has("webhook_url_file");
        let bot = c.has("bot_token") || c.has("bot_token_file");
        let upper = |k: &str| format!("{}_{k}", c.name()).replace('-', "_").to_ascii_uppercase();
        if !webhook && !bot {
            let (w, b) = (upper("webhook_url"), upper("bot_token"));
            c.problem(
                "webhook_url",
                "is required for a `discord` channel (or `bot_token` with `channel_id`, to post as a bot)".into(),
                Some(format!("write `webhook_url = \"${{{w}}}\"` (Server Settings → Integrations → Webhooks → Copy Webhook URL), or `bot_token = \"${{{b}}}\"` and `channel_id = \"…\"`")),
            );
        }
        if webhook && bot {
            let k = if c.has("bot_token") { "bot_token" } else { "bot_token_file" };
            c.problem_at(
                k,
                "cannot be set beside `webhook_url`: a discord channel posts through a webhook or as a bot, not both".into(),
                Some("keep `webhook_url` alone, or remove it and keep `bot_token` with `channel_id` (a bot's lost answers can be reconciled)".into()),
            );
        }
        if bot {
            if !c.has("channel_id") {
                c.problem(
                    "channel_id",
                    "is required with `bot_token`: the channel the bot posts in".into(),
                    Some("turn on Developer Mode (User Settings → Advanced), right-click the channel → Copy Channel ID, and write `channel_id = \"123…\"`".into()),
                );
            }
            for k in ["username", "avatar_url"] {
                if c.has(k) {
                    c.problem_at(k, "is a webhook's setting: a bot posts under its own name and avatar".into(), Some("remove it (set the bot's name and avatar in the Developer Portal)".into()));
                }
            }
        } else if webhook {
            let set: Vec<&str> = BOT_KEYS.iter().copied().filter(|k| c.has(k)).collect();
            for k in set {
                c.problem_at(k, "is for a bot (`bot_token` with `channel_id`); a webhook URL names its own channel".into(), Some("remove it, or replace `webhook_url` by `bot_token` and `channel_id`".into()));
            }
        }
        if let Some(id) = c.str("channel_id")
            && !is_snowflake(id.trim())
        {
            c.problem_at("channel_id", format!("`{id}` is not a channel id (digits only)"), Some("right-click the channel → Copy Channel ID (Developer Mode on), e.g. `channel_id = \"1180000000000000002\"`".into()));
        }
    }
    /// The whole URL, and its token alone (and percent-decoded): an error that prints only the
    /// path, or only the token, is blanked too. And the bot token.
    fn secrets(c: &Self::Config, ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.bot_token, &c.bot_token_file));
        let s = pick_secret(&c.webhook_url, &c.webhook_url_file);
        if let Some(url) = s.as_ref().and_then(|s| s.resolve_with(&|k| (ctx.env)(k)).ok())
            && let Some((_, token)) = super::split_webhook_url(url.expose())
        {
            out.plain.extend(percent_encoding::percent_decode_str(&token).decode_utf8().ok().map(|d| d.into_owned()));
            out.plain.push(token);
        }
        out.refs.push(s);
    }
    fn size_limit(c: &Self::Config, r: &Rendering) -> Result<(), String> {
        let Rendering::Body(b) = r else { return Err("a discord channel sends a body rendering".into()) };
        super::Message::from_body(&b.body, c.embed)?.check_limits()
    }
    async fn sandbox(d: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::discord::{self as fake, DiscordFake};
        let f = DiscordFake::start().await?;
        if d.bot_token.is_some() || d.bot_token_file.is_some() {
            ctx.secret_pair(&mut d.bot_token, &mut d.bot_token_file, "bot_token", fake::BOT_TOKEN)?;
            d.api_base = f.api_base();
            d.channel_id = Some(fake::CHANNEL_ID.into());
        } else {
            ctx.secret_pair(&mut d.webhook_url, &mut d.webhook_url_file, "webhook_url", &f.webhook_url())?;
        }
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(d: &Self::Config, t: &mut FragmentTable<'_>) {
        if d.bot_token.is_some() {
            t.secret_file("bot_token", &d.bot_token);
            t.set("api_base", &d.api_base);
            if let Some(id) = &d.channel_id {
                t.set("channel_id", id);
            }
        } else {
            t.secret_file("webhook_url", &d.webhook_url);
        }
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::discord::DiscordFake, |f| listed(f.messages(), "message(s)"));
