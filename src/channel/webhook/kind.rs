//! `type = "webhook"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{Common, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake};

/// `type = "webhook"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct WebhookConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Target URL.
    pub url: String,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HMAC-SHA256 key; the signature goes in `X-Herald-Signature: sha256=<hex>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// The `webhook` type: a signed JSON POST.
pub struct Webhook;

impl ChannelType for Webhook {
    const TYPE: &'static str = "webhook";
    const ALIASES: &'static [&'static str] = &["http", "https", "hook"];
    const KEYS: &'static [KeySpec] = &[
        req("url", Kind::HttpUrl),
        opt("headers", Kind::StrMap),
        opt("secret", Kind::Secret),
        opt("secret_file", Kind::Path),
    ];
    type Config = WebhookConfig;
    kind_basics!();

    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.secret, &c.secret_file));
    }
    async fn sandbox(w: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        let f = crate::sandbox::webhook::WebhookFake::start().await?;
        w.url = f.url();
        if w.secret.is_some() || w.secret_file.is_some() {
            ctx.secret_pair(&mut w.secret, &mut w.secret_file, "secret", WEBHOOK_SECRET)?;
            f.set_secret(WEBHOOK_SECRET);
        }
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(w: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("url", &w.url);
        t.secret_file("secret", &w.secret);
    }
}

/// The signing secret the sandbox gives webhook channels.
const WEBHOOK_SECRET: &str = "sandbox-webhook-secret";

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::webhook::WebhookFake, address: |f| f.url(), |f| {
    let a = f.accepted();
    let bodies: Vec<_> = a.iter().map(|r| serde_json::json!({"id": r.id, "idempotency_key": r.key, "body": r.body})).collect();
    Ok((serde_json::Value::Array(bodies), format!("{} request(s)", a.len())))
});
