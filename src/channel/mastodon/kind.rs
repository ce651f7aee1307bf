//! `type = "mastodon"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt};
use crate::config::{Common, PostOptions, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "mastodon"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct MastodonConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options.
    #[serde(flatten)]
    pub post: PostOptions,
    /// The instance, e.g. `https://mastodon.social`.
    #[serde(default = "default_mastodon")]
    pub api_base: String,
    /// Access token with `write:statuses`.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// `public`, `unlisted`, `private`, `direct`.
    #[serde(default = "default_visibility")]
    pub visibility: String,
    /// The instance's limit, if it differs from 500 (`configuration.statuses.max_characters`
    /// of `GET /api/v2/instance`; `check --credentials` compares the two).
    #[serde(default)]
    pub max_characters: Option<usize>,
}

fn default_mastodon() -> String {
    "https://mastodon.social".into()
}
fn default_visibility() -> String {
    "public".into()
}

/// The `mastodon` type: Mastodon statuses.
pub struct Mastodon;

impl ChannelType for Mastodon {
    const TYPE: &'static str = "mastodon";
    const ALIASES: &'static [&'static str] = &["fediverse"];
    const KEYS: &'static [KeySpec] = &[
        opt("api_base", Kind::HttpUrl),
        opt("access_token", Kind::Secret),
        opt("access_token_file", Kind::Path),
        opt("visibility", Kind::Enum(&["public", "unlisted", "private", "direct"])),
        opt("max_characters", Kind::Range(1, 100_000)),
    ];
    type Config = MastodonConfig;
    kind_basics!(post);

    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.access_token, &c.access_token_file));
    }
    fn rules(c: &Self::Config, r: &mut crate::render::count::Rules) {
        r.limit = c.max_characters.unwrap_or(r.limit);
    }
    async fn sandbox(m: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::mastodon::{self as fake, MastodonFake};
        let f = MastodonFake::start().await?;
        m.api_base = f.base_url.clone();
        ctx.secret_pair(&mut m.access_token, &mut m.access_token_file, "access_token", fake::ACCESS_TOKEN)?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(m: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &m.api_base);
        t.secret_file("access_token", &m.access_token);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::mastodon::MastodonFake, |f| listed(f.statuses(), "status(es)"));
