//! `type = "email"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::channel::{Adapter, BuildCtx};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{ChannelConfig, Common, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx};

/// `type = "email"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct EmailConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// lettre URL: `smtp://host:25`, `smtp://host:587?tls=required`, `smtps://user:pass@host`.
    /// May be a secret (`${SMTP_URL}`) when it carries a password.
    pub smtp_url: String,
    /// Sender, e.g. `"Ana <ana@example.com>"`.
    pub from: String,
    /// Optional Reply-To.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Which subscriber list (default: all).
    #[serde(default = "default_list")]
    pub subscribers: String,
    /// Base of one-click unsubscribe links, e.g. `https://news.example.com/unsubscribe`.
    pub unsubscribe_base_url: String,
    /// `mailto:` address for List-Unsubscribe, optional.
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
    /// VERP: each message's Return-Path is `bounces+<token>@<bounce_domain>`, so a bounce names
    /// its message; unset, the Return-Path is `from`.
    #[serde(default)]
    pub bounce_domain: Option<String>,
    /// HMAC key for unsubscribe tokens.
    #[serde(default)]
    pub unsubscribe_secret: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub unsubscribe_secret_file: Option<PathBuf>,
    /// Messages in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Optional cap, messages per second.
    #[serde(default)]
    pub max_per_second: Option<u32>,
    /// Recipients per ledger transaction.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Allow plain SMTP to a non-loopback host.
    #[serde(default)]
    pub allow_insecure: bool,
}

pub(crate) fn default_list() -> String {
    "all".into()
}
fn default_concurrency() -> usize {
    8
}
fn default_batch() -> usize {
    500
}

/// The `email` type: the author's own list over SMTP.
pub struct Email;

impl ChannelType for Email {
    const TYPE: &'static str = "email";
    const ALIASES: &'static [&'static str] = &["smtp", "mail", "newsletter"];
    const KEYS: &'static [KeySpec] = &[
        req("smtp_url", Kind::SmtpUrl),
        req("from", Kind::Mailbox),
        opt("reply_to", Kind::Mailbox),
        opt("subscribers", Kind::NonEmptyStr),
        req("unsubscribe_base_url", Kind::HttpUrl),
        opt("unsubscribe_mailto", Kind::Mailto),
        opt("bounce_domain", Kind::NonEmptyStr),
        opt("unsubscribe_secret", Kind::Secret),
        opt("unsubscribe_secret_file", Kind::Path),
        opt("concurrency", Kind::Range(1, crate::config::validate::MAX_CONCURRENCY)),
        opt("max_per_second", Kind::Range(1, 100_000)),
        opt("batch_size", Kind::Range(1, 100_000)),
        opt("allow_insecure", Kind::Bool),
    ];
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[("smtp_url", "\"smtp://127.0.0.1:2525\""), ("unsubscribe_base_url", "\"https://news.example.com/unsubscribe\"")];
    type Config = EmailConfig;
    kind_basics!();

    fn build_with_ledger(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx, ledger: Arc<dyn super::super::email::RecipientLedger>) -> Option<anyhow::Result<Arc<dyn Adapter>>> {
        Some(super::build_with_ledger(name, cfg, ctx, ledger))
    }
    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.unsubscribe_secret, &c.unsubscribe_secret_file));
        let url = Secret::parse(&c.smtp_url).ok().and_then(|s| s.resolve_with(&|k| (_ctx.env)(k)).ok()).map(|s| s.expose().to_string());
        let url = url.unwrap_or_else(|| c.smtp_url.clone());
        if let Ok(u) = url::Url::parse(&url)
            && let Some(p) = u.password()
        {
            out.plain.push(p.to_string());
            out.plain.extend(percent_encoding::percent_decode_str(p).decode_utf8().ok().map(|d| d.into_owned()));
        }
    }
    fn check(c: &mut ChannelCheck<'_, '_>) {
        // Plain SMTP (or STARTTLS that can be stripped) beyond loopback sends the list in
        // clear text.
        if let Some(u) = c.str("smtp_url").and_then(|s| url::Url::parse(s).ok()) {
            let insecure = c.table().get("allow_insecure").and_then(toml_edit::Item::as_bool).unwrap_or(false);
            if !crate::config::smtp_url_tls_ok(&u, insecure) {
                c.problem_at(
                    "smtp_url",
                    "plain SMTP to a host beyond loopback (or STARTTLS without `?tls=required`, which can be stripped)".into(),
                    Some("use `smtps://host` or `smtp://host:587?tls=required`, or set `allow_insecure = true`".into()),
                );
            }
        }
    }
    async fn sandbox(e: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        Ok(Fake::Email(crate::sandbox::email_fakes::EmailFake::start_smtp(ctx.name, e, ctx.dir).await?))
    }
    fn sandbox_fragment(e: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("smtp_url", &e.smtp_url);
        t.secret_file("unsubscribe_secret", &e.unsubscribe_secret);
    }
}
