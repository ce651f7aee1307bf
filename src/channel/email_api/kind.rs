//! `type = "email_api"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::channel::email::kind::default_list;
use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::channel::{Adapter, BuildCtx};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{ChannelConfig, Common, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx};

/// `type = "email_api"` (Postmark batch).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct EmailApiConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// API host.
    #[serde(default = "default_postmark")]
    pub api_base: String,
    /// `X-Postmark-Server-Token`.
    #[serde(default)]
    pub server_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub server_token_file: Option<PathBuf>,
    /// Sender.
    pub from: String,
    /// Optional Reply-To.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Postmark message stream (broadcast stream for newsletters).
    #[serde(default = "default_stream")]
    pub message_stream: String,
    /// Which subscriber list.
    #[serde(default = "default_list")]
    pub subscribers: String,
    /// Base of one-click unsubscribe links.
    pub unsubscribe_base_url: String,
    /// HMAC key for unsubscribe tokens.
    #[serde(default)]
    pub unsubscribe_secret: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub unsubscribe_secret_file: Option<PathBuf>,
    /// Batch calls in flight.
    #[serde(default = "default_api_concurrency")]
    pub concurrency: usize,
    /// Seconds past the call's timeout before Postmark's message search is trusted to show a
    /// batch whose outcome is unknown (its index may lag).
    #[serde(default = "default_reconcile_settle_secs")]
    pub reconcile_settle_secs: u64,
}

fn default_reconcile_settle_secs() -> u64 {
    super::DEFAULT_SETTLE_SECS
}
fn default_postmark() -> String {
    "https://api.postmarkapp.com".into()
}
fn default_stream() -> String {
    "broadcast".into()
}
fn default_api_concurrency() -> usize {
    2
}

/// The `email_api` type: the author's list through Postmark's batch API.
pub struct EmailApi;

impl ChannelType for EmailApi {
    const TYPE: &'static str = "email_api";
    const ALIASES: &'static [&'static str] = &["postmark", "emailapi", "email-api", "esp"];
    const KEYS: &'static [KeySpec] = &[
        opt("api_base", Kind::HttpUrl),
        opt("server_token", Kind::Secret),
        opt("server_token_file", Kind::Path),
        req("from", Kind::Mailbox),
        opt("reply_to", Kind::Mailbox),
        opt("message_stream", Kind::NonEmptyStr),
        opt("subscribers", Kind::NonEmptyStr),
        req("unsubscribe_base_url", Kind::HttpUrl),
        opt("unsubscribe_secret", Kind::Secret),
        opt("unsubscribe_secret_file", Kind::Path),
        opt("concurrency", Kind::Range(1, crate::config::validate::MAX_CONCURRENCY)),
        opt("reconcile_settle_secs", Kind::UIntUpTo(600)),
    ];
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[("unsubscribe_base_url", "\"https://news.example.com/unsubscribe\"")];
    type Config = EmailApiConfig;
    kind_basics!();

    fn build_with_ledger(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx, ledger: Arc<dyn super::super::email::RecipientLedger>) -> Option<anyhow::Result<Arc<dyn Adapter>>> {
        Some(super::build_with_ledger(name, cfg, ctx, ledger))
    }
    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.server_token, &c.server_token_file));
        out.refs.push(pick_secret(&c.unsubscribe_secret, &c.unsubscribe_secret_file));
    }
    fn check(c: &mut ChannelCheck<'_, '_>) {
        c.require_secret("server_token", "");
    }
    fn size_limit(_c: &Self::Config, r: &crate::render::Rendering) -> Result<(), String> {
        use crate::render::engine::POSTMARK_MAX_MESSAGE;
        if let crate::render::Rendering::Email(e) = r {
            // Each recipient's copy is at least its subject and both parts.
            let size = e.subject.len() + e.html.len() + e.text.len();
            if size > POSTMARK_MAX_MESSAGE {
                return Err(format!(
                    "the message is {:.1} MB, over Postmark's {} MB limit per message; shorten the issue or link to the long parts",
                    size as f64 / 1048576.0,
                    POSTMARK_MAX_MESSAGE / 1048576
                ));
            }
        }
        Ok(())
    }
    async fn sandbox(e: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        Ok(Fake::Email(crate::sandbox::email_fakes::EmailFake::start_postmark(ctx.name, e, ctx.dir).await?))
    }
    fn sandbox_fragment(e: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &e.api_base);
        t.secret_file("server_token", &e.server_token);
        t.secret_file("unsubscribe_secret", &e.unsubscribe_secret);
    }
}
