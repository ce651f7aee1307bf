//! `type = "bluesky"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{Common, PostOptions, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "bluesky"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct BlueskyConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options.
    #[serde(flatten)]
    pub post: PostOptions,
    /// The PDS host.
    #[serde(default = "default_bsky")]
    pub api_base: String,
    /// Handle, email or DID.
    pub identifier: String,
    /// App password.
    #[serde(default)]
    pub app_password: Option<Secret>,
    /// The app password from a file.
    #[serde(default)]
    pub app_password_file: Option<PathBuf>,
}

fn default_bsky() -> String {
    "https://bsky.social".into()
}

/// The `bluesky` type: Bluesky posts.
pub struct Bluesky;

impl ChannelType for Bluesky {
    const TYPE: &'static str = "bluesky";
    const ALIASES: &'static [&'static str] = &["bsky", "atproto"];
    const KEYS: &'static [KeySpec] = &[
        opt("api_base", Kind::HttpUrl),
        req("identifier", Kind::NonEmptyStr),
        opt("app_password", Kind::Secret),
        opt("app_password_file", Kind::Path),
    ];
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[("identifier", "\"you.bsky.social\"")];
    type Config = BlueskyConfig;
    kind_basics!(post);

    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.app_password, &c.app_password_file));
    }
    async fn sandbox(b: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::bluesky::{self as fake, BlueskyFake};
        let f = BlueskyFake::start().await?;
        b.api_base = f.base_url.clone();
        b.identifier = fake::HANDLE.into();
        ctx.secret_pair(&mut b.app_password, &mut b.app_password_file, "app_password", fake::APP_PASSWORD)?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(b: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &b.api_base);
        t.set("identifier", &b.identifier);
        t.secret_file("app_password", &b.app_password);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::bluesky::BlueskyFake, |f| listed(f.posts(), "post(s)"));
