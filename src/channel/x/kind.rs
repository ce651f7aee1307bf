//! `type = "x"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt};
use crate::config::{Common, PostOptions, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// X authentication flavour.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum XAuth {
    /// OAuth 2.0 user token, refreshed with the refresh token.
    #[default]
    Oauth2,
    /// OAuth 1.0a user context, HMAC-SHA1 signed.
    Oauth1,
}

/// `type = "x"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct XConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options.
    #[serde(flatten)]
    pub post: PostOptions,
    /// API host.
    #[serde(default = "default_x")]
    pub api_base: String,
    /// `oauth2` or `oauth1`.
    #[serde(default)]
    pub auth: XAuth,
    /// The account's numeric user id (for reconciliation reads).
    #[serde(default)]
    pub user_id: Option<String>,
    /// OAuth 2.0 client id (refresh).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth 2.0 client secret, for a confidential client ("Web App, Automated App or bot"):
    /// sent as HTTP Basic auth to the token endpoint.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The client secret from a file.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// OAuth 2.0 access token.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// OAuth 2.0 refresh token.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// The refresh token from a file.
    #[serde(default)]
    pub refresh_token_file: Option<PathBuf>,
    /// OAuth 1.0a consumer key.
    #[serde(default)]
    pub consumer_key: Option<Secret>,
    /// OAuth 1.0a consumer secret.
    #[serde(default)]
    pub consumer_secret: Option<Secret>,
    /// OAuth 1.0a access token secret.
    #[serde(default)]
    pub access_token_secret: Option<Secret>,
    /// What a thread does when X refuses a reply (the 2026 "summon" rule): `stop` or `link`.
    #[serde(default)]
    pub thread_fallback: ThreadFallback,
}

/// What an X thread does when X refuses to post a part as a reply.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum ThreadFallback {
    /// Stop: the parts already up stay, the delivery ends `forbidden` naming them.
    #[default]
    Stop,
    /// Post the rest as one standalone post carrying the link.
    Link,
}

fn default_x() -> String {
    "https://api.x.com".into()
}

/// The `x` type: X posts.
pub struct X;

impl ChannelType for X {
    const TYPE: &'static str = "x";
    const ALIASES: &'static [&'static str] = &["twitter"];
    const KEYS: &'static [KeySpec] = &[
        opt("api_base", Kind::HttpUrl),
        opt("auth", Kind::Enum(&["oauth2", "oauth1"])),
        opt("user_id", Kind::NonEmptyStr),
        opt("client_id", Kind::NonEmptyStr),
        opt("client_secret", Kind::Secret),
        opt("client_secret_file", Kind::Path),
        opt("access_token", Kind::Secret),
        opt("access_token_file", Kind::Path),
        opt("refresh_token", Kind::Secret),
        opt("refresh_token_file", Kind::Path),
        opt("consumer_key", Kind::Secret),
        opt("consumer_secret", Kind::Secret),
        opt("access_token_secret", Kind::Secret),
        opt("thread_fallback", Kind::Enum(&["stop", "link"])),
    ];
    type Config = XConfig;
    kind_basics!(post);

    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.access_token, &c.access_token_file));
        out.refs.push(pick_secret(&c.refresh_token, &c.refresh_token_file));
        out.refs.extend([c.consumer_key.clone(), c.consumer_secret.clone(), c.access_token_secret.clone()]);
    }
    fn check(c: &mut ChannelCheck<'_, '_>) {
        // OAuth 2.0 may instead have a credential from `herald connect` in the store.
        if c.str("auth") == Some("oauth1") {
            for k in ["consumer_key", "consumer_secret", "access_token", "access_token_secret"] {
                c.require_secret(k, " (auth = \"oauth1\")");
            }
        }
        if (c.has("refresh_token") || c.has("refresh_token_file")) && !c.has("client_id") {
            c.problem("client_id", "is required to refresh the OAuth 2.0 token".into(), Some("the client id of your X app, e.g. `client_id = \"abc123\"`".into()));
        }
    }
    async fn sandbox(x: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::x::{self as fake, XFake};
        let f = XFake::start().await?;
        x.api_base = f.base_url.clone();
        x.user_id = Some(fake::USER_ID.into());
        (x.access_token_file, x.refresh_token_file) = (None, None);
        match x.auth {
            XAuth::Oauth2 => {
                x.access_token = ctx.secret("access_token", fake::ACCESS_TOKEN)?;
                x.refresh_token = ctx.secret("refresh_token", fake::REFRESH_TOKEN)?;
                x.client_id = Some(fake::CLIENT_ID.into());
                (x.client_secret, x.client_secret_file) = (None, None);
            }
            XAuth::Oauth1 => {
                x.consumer_key = ctx.secret("consumer_key", fake::CONSUMER_KEY)?;
                x.consumer_secret = ctx.secret("consumer_secret", fake::CONSUMER_SECRET)?;
                x.access_token = ctx.secret("access_token", fake::OAUTH1_TOKEN)?;
                x.access_token_secret = ctx.secret("access_token_secret", fake::OAUTH1_TOKEN_SECRET)?;
            }
        }
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(x: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &x.api_base);
        if let Some(u) = &x.user_id {
            t.set("user_id", u);
        }
        if let Some(id) = &x.client_id {
            t.set("client_id", id);
        }
        t.secret_file("access_token", &x.access_token);
        t.secret_file("refresh_token", &x.refresh_token);
        // The X fake's app is a public client: no secret.
        t.secret_file("client_secret", &None);
        // The OAuth 1.0a keys have no `_file` form.
        t.secret_env("consumer_key", &x.consumer_key);
        t.secret_env("consumer_secret", &x.consumer_secret);
        t.secret_env("access_token_secret", &x.access_token_secret);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::x::XFake, |f| listed(f.posts(), "post(s)"));
