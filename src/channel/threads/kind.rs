//! `type = "threads"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt};
use crate::config::{Common, PostOptions, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "threads"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct ThreadsConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options.
    #[serde(flatten)]
    pub post: PostOptions,
    /// Graph host.
    #[serde(default = "default_threads")]
    pub api_base: String,
    /// Threads user id (or `me`).
    #[serde(default = "default_me")]
    pub user_id: String,
    /// Long-lived access token (60 days).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// The Threads app id (Meta developer portal), for `herald connect`.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The Threads app secret, for `herald connect`.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// The app secret from a file.
    #[serde(default)]
    pub app_secret_file: Option<PathBuf>,
    /// Unique links allowed in one post (Meta documents 5; failures from 4 are reported).
    #[serde(default = "default_threads_links")]
    pub max_links: usize,
}

fn default_threads_links() -> usize {
    crate::render::count::THREADS_MAX_LINKS
}

fn default_threads() -> String {
    "https://graph.threads.net".into()
}
fn default_me() -> String {
    "me".into()
}

/// The `threads` type: Threads (Meta) posts.
pub struct Threads;

impl ChannelType for Threads {
    const TYPE: &'static str = "threads";
    const ALIASES: &'static [&'static str] = &["meta", "instagram"];
    const KEYS: &'static [KeySpec] = &[
        opt("api_base", Kind::HttpUrl),
        opt("user_id", Kind::NonEmptyStr),
        opt("access_token", Kind::Secret),
        opt("access_token_file", Kind::Path),
        opt("app_id", Kind::NonEmptyStr),
        opt("app_secret", Kind::Secret),
        opt("app_secret_file", Kind::Path),
        opt("max_links", Kind::Range(1, 100)),
    ];
    type Config = ThreadsConfig;
    kind_basics!(post);

    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.access_token, &c.access_token_file));
    }
    fn rules(c: &Self::Config, r: &mut crate::render::count::Rules) {
        r.max_links = c.max_links;
    }
    async fn sandbox(t: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::threads::{self as fake, ThreadsFake};
        let f = ThreadsFake::start().await?;
        t.api_base = f.base_url.clone();
        t.user_id = fake::USER_ID.into();
        ctx.secret_pair(&mut t.access_token, &mut t.access_token_file, "access_token", fake::ACCESS_TOKEN)?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(th: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &th.api_base);
        t.set("user_id", &th.user_id);
        t.secret_file("access_token", &th.access_token);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::threads::ThreadsFake, |f| listed(f.posts(), "post(s)"));
