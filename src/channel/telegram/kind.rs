//! `type = "telegram"`: the channel's config table and its registration ([`ChannelType`]): the
//! keys the validator accepts come from here (a test checks them against the struct), with the
//! type's own checks, its secret for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{Common, PostOptions, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "telegram"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct TelegramConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options (`format = "thread"` sends one message per section, split past 4096).
    #[serde(flatten)]
    pub post: PostOptions,
    /// The Bot API server, `https://api.telegram.org` (or a local Bot API server).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The bot's token from @BotFather (`123456:ABC…`). It travels in the URL path, so the
    /// adapter never lets a URL into a message.
    #[serde(default)]
    pub bot_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// The channel: `@channelusername`, or its numeric id (`-100…`) for a private channel.
    pub chat_id: String,
    /// Show the link preview under the first message (`link_preview_options`).
    #[serde(default = "yes")]
    pub link_preview: bool,
}

fn default_api_base() -> String {
    "https://api.telegram.org".into()
}
fn yes() -> bool {
    true
}

/// The `telegram` type: messages to a Telegram channel through the Bot API.
pub struct Telegram;

impl ChannelType for Telegram {
    const TYPE: &'static str = "telegram";
    const ALIASES: &'static [&'static str] = &["tg", "telegram_channel"];
    const KEYS: &'static [KeySpec] = &[
        opt("api_base", Kind::HttpUrl),
        opt("bot_token", Kind::Secret),
        opt("bot_token_file", Kind::Path),
        req("chat_id", Kind::NonEmptyStr),
        opt("link_preview", Kind::Bool),
    ];
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[("chat_id", "\"@yourchannel\"")];
    type Config = TelegramConfig;
    kind_basics!(post);

    fn check(c: &mut super::super::registry::ChannelCheck<'_, '_>) {
        c.require_secret("bot_token", "");
    }
    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.bot_token, &c.bot_token_file));
    }
    async fn sandbox(m: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::telegram::{self as fake, TelegramFake};
        let f = TelegramFake::start().await?;
        m.api_base = f.base_url.clone();
        ctx.secret_pair(&mut m.bot_token, &mut m.bot_token_file, "bot_token", fake::BOT_TOKEN)?;
        m.chat_id = fake::CHANNEL.to_string();
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(m: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &m.api_base);
        t.set("chat_id", &m.chat_id);
        t.secret_file("bot_token", &m.bot_token);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::telegram::TelegramFake, |f| listed(f.messages(), "message(s)"));
