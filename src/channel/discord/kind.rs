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
}

fn yes() -> bool {
    true
}

/// The `discord` type: an announcement through a channel webhook.
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
    ];
    type Config = DiscordConfig;
    kind_basics!();

    fn check(c: &mut ChannelCheck<'_, '_>) {
        c.require_secret("webhook_url", "");
    }
    /// The whole URL, and its token alone (and percent-decoded): an error that prints only the
    /// path, or only the token, is blanked too.
    fn secrets(c: &Self::Config, ctx: &BuildCtx, out: &mut Secrets) {
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
        let f = crate::sandbox::discord::DiscordFake::start().await?;
        ctx.secret_pair(&mut d.webhook_url, &mut d.webhook_url_file, "webhook_url", &f.webhook_url())?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(d: &Self::Config, t: &mut FragmentTable<'_>) {
        t.secret_file("webhook_url", &d.webhook_url);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::discord::DiscordFake, |f| listed(f.messages(), "message(s)"));
