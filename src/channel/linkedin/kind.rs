//! `type = "linkedin"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{Common, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "linkedin"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct LinkedinConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// API host.
    #[serde(default = "default_linkedin")]
    pub api_base: String,
    /// OAuth access token (60 days).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// When the token expires (RFC 3339); `check` and `status` warn 7 days ahead.
    #[serde(default)]
    pub token_expires_at: Option<String>,
    /// The LinkedIn app's client id, for `herald connect` and refreshing.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The app's client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The client secret from a file.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// `urn:li:person:…` or `urn:li:organization:…`.
    pub author: String,
    /// `LinkedIn-Version` header, YYYYMM.
    #[serde(default = "default_li_version")]
    pub linkedin_version: String,
}

fn default_linkedin() -> String {
    "https://api.linkedin.com".into()
}
fn default_li_version() -> String {
    "202610".into()
}

/// The `linkedin` type: a LinkedIn post.
pub struct Linkedin;

impl ChannelType for Linkedin {
    const TYPE: &'static str = "linkedin";
    const ALIASES: &'static [&'static str] = &[];
    const KEYS: &'static [KeySpec] = &[
        opt("api_base", Kind::HttpUrl),
        opt("access_token", Kind::Secret),
        opt("access_token_file", Kind::Path),
        opt("token_expires_at", Kind::Rfc3339),
        opt("client_id", Kind::NonEmptyStr),
        opt("client_secret", Kind::Secret),
        opt("client_secret_file", Kind::Path),
        req("author", Kind::LinkedinUrn),
        opt("linkedin_version", Kind::YearMonth),
    ];
    type Config = LinkedinConfig;
    kind_basics!();

    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.access_token, &c.access_token_file));
    }
    async fn sandbox(l: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::linkedin::{self as fake, LinkedinFake};
        let f = LinkedinFake::start().await?;
        // The sandbox token stands in for the configured author's member.
        f.set_member(&l.author);
        l.api_base = f.base_url.clone();
        ctx.secret_pair(&mut l.access_token, &mut l.access_token_file, "access_token", fake::ACCESS_TOKEN)?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(l: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &l.api_base);
        t.secret_file("access_token", &l.access_token);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::linkedin::LinkedinFake, |f| listed(f.posts(), "post(s)"));
