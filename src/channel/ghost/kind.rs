//! `type = "ghost"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake
//! (`src/sandbox/ghost.rs`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{Common, Secret, pick_secret};
use crate::render::Rendering;
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// What Ghost does with the post.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum GhostStatus {
    /// Published at once (`status: "published"`).
    #[default]
    Published,
    /// Kept as a draft; the author publishes it in Ghost Admin.
    Draft,
}

impl GhostStatus {
    /// The word Ghost's `status` field takes.
    pub fn as_str(self) -> &'static str {
        match self {
            GhostStatus::Published => "published",
            GhostStatus::Draft => "draft",
        }
    }
}

/// `type = "ghost"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct GhostConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// The site's API URL (Ghost Admin → Integrations shows it), e.g. `https://blog.example.com`.
    pub api_url: String,
    /// The custom integration's Admin API key, `{id}:{hex secret}`.
    #[serde(default)]
    pub admin_api_key: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub admin_api_key_file: Option<PathBuf>,
    /// `published` or `draft`.
    #[serde(default)]
    pub status: GhostStatus,
    /// The `Accept-Version` header: the Admin API version Herald's requests are written for.
    #[serde(default = "default_accept_version")]
    pub accept_version: String,
    /// Tags every post gets (Ghost creates a tag it does not know).
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_accept_version() -> String {
    "v5.0".into()
}

/// Ghost's longest `title` (its schema: 255 characters).
pub const TITLE_MAX: usize = 255;
/// Ghost's longest `custom_excerpt` (its validation: 300 characters).
pub const EXCERPT_MAX: usize = 300;

/// The `ghost` type: a Ghost post through the Admin API.
pub struct Ghost;

impl ChannelType for Ghost {
    const TYPE: &'static str = "ghost";
    const ALIASES: &'static [&'static str] = &["ghost_blog", "ghost_admin"];
    const KEYS: &'static [KeySpec] = &[
        req("api_url", Kind::HttpUrl),
        opt("admin_api_key", Kind::Secret),
        opt("admin_api_key_file", Kind::Path),
        opt("status", Kind::Enum(&["published", "draft"])),
        opt("accept_version", Kind::NonEmptyStr),
        opt("tags", Kind::StrList),
    ];
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[("api_url", "\"https://blog.example.com\"")];
    type Config = GhostConfig;
    kind_basics!();

    fn check(c: &mut ChannelCheck<'_, '_>) {
        c.require_secret("admin_api_key", "");
    }
    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.admin_api_key, &c.admin_api_key_file));
    }
    fn size_limit(_c: &Self::Config, r: &Rendering) -> Result<(), String> {
        if let Rendering::Article(a) = r {
            let n = a.title.chars().count();
            if n > TITLE_MAX {
                return Err(format!("the title is {n} characters; Ghost refuses a title over {TITLE_MAX} (422): shorten it, or set `subject` in the issue's [channels.<name>]"));
            }
            let n = a.subtitle.chars().count();
            if n > EXCERPT_MAX {
                return Err(format!(
                    "the excerpt (the subtitle template, the issue's summary by default) is {n} characters; Ghost refuses a custom_excerpt over {EXCERPT_MAX} (422): shorten the summary, or set `subtitle` in the issue's [channels.<name>]"
                ));
            }
        }
        Ok(())
    }
    async fn sandbox(g: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::ghost::{self as fake, GhostFake};
        let f = GhostFake::start().await?;
        g.api_url = f.base_url.clone();
        ctx.secret_pair(&mut g.admin_api_key, &mut g.admin_api_key_file, "admin_api_key", &fake::admin_api_key())?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(g: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_url", &g.api_url);
        t.secret_file("admin_api_key", &g.admin_api_key);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::ghost::GhostFake, |f| listed(f.posts(), "post(s)"));
