//! `type = "wordpress"`: the channel's config table and its registration ([`ChannelType`]): the
//! keys the validator accepts come from here (a test checks them against the struct), with the
//! type's own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{Common, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// The post status Herald asks for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum WordpressStatus {
    /// Published at once.
    #[default]
    Publish,
    /// A draft the author publishes by hand (the delivery waits as `awaiting_confirmation`).
    Draft,
}

impl WordpressStatus {
    /// As the REST API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            WordpressStatus::Publish => "publish",
            WordpressStatus::Draft => "draft",
        }
    }
}

/// `type = "wordpress"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct WordpressConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// The site's root, e.g. `https://blog.example.com` (the REST API is under `/wp-json/`).
    pub site_url: String,
    /// The WordPress user the application password belongs to (a user who can publish).
    pub username: String,
    /// The application password (Users → Profile → Application Passwords), as `${ENV}`.
    #[serde(default)]
    pub application_password: Option<Secret>,
    /// The application password from a file.
    #[serde(default)]
    pub application_password_file: Option<PathBuf>,
    /// `publish` or `draft`.
    #[serde(default)]
    pub status: WordpressStatus,
    /// Category ids for the post (Posts → Categories shows them); unset, the site's default.
    #[serde(default)]
    pub categories: Vec<u64>,
    /// Tag ids for the post.
    #[serde(default)]
    pub tags: Vec<u64>,
}

/// The `wordpress` type: a WordPress post through the core REST API.
pub struct Wordpress;

impl ChannelType for Wordpress {
    const TYPE: &'static str = "wordpress";
    const ALIASES: &'static [&'static str] = &["wp", "wordpress.org", "wordpress.com"];
    const KEYS: &'static [KeySpec] = &[
        req("site_url", Kind::HttpUrl),
        req("username", Kind::NonEmptyStr),
        opt("application_password", Kind::Secret),
        opt("application_password_file", Kind::Path),
        opt("status", Kind::Enum(&["publish", "draft"])),
        opt("categories", Kind::IdList),
        opt("tags", Kind::IdList),
    ];
    const EXAMPLES: &'static [(&'static str, &'static str)] =
        &[("site_url", "\"https://blog.example.com\""), ("username", "\"herald\"")];
    type Config = WordpressConfig;
    kind_basics!();

    fn check(c: &mut ChannelCheck<'_, '_>) {
        c.require_secret("application_password", "");
    }
    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.application_password, &c.application_password_file));
    }
    async fn sandbox(w: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::wordpress::{self as fake, WordpressFake};
        let f = WordpressFake::start().await?;
        w.site_url = f.base_url.clone();
        w.username = fake::USERNAME.into();
        ctx.secret_pair(&mut w.application_password, &mut w.application_password_file, "application_password", fake::APPLICATION_PASSWORD)?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(w: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("site_url", &w.site_url);
        t.set("username", &w.username);
        t.secret_file("application_password", &w.application_password);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::wordpress::WordpressFake, |f| listed(f.posts(), "post(s)"));
