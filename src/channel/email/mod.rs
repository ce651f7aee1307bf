//! The `email` adapter: one delivery mails a whole subscriber list over SMTP, one personal copy
//! per subscriber, tracked in the recipient ledger so a crash or a retry neither skips nor
//! re-mails anyone (duplicates bounded by the messages in flight).
//!
//! - [`merge`]: `[[tag]]` filling; [`token`]: one-click unsubscribe tokens;
//!   [`compose`]: the personal copy, its headers (RFC 8058) and deterministic Message-ID.
//! - [`ledger`]: the narrow [`RecipientLedger`] the pipeline passes in (SQL in [`sql`]).
//! - [`engine`]: the batched, windowed send loop shared with `email_api`.
//! - [`unsubscribe`]: the HTTP routes the daemon mounts; [`import`]: CSV subscriber import.

pub mod kind;
pub use kind::Email;

mod channel;
pub mod compose;
pub mod direct;
pub mod engine;
pub mod import;
pub mod ledger;
pub mod merge;
pub mod progress;
pub mod qp;
pub mod sql;
pub mod token;
pub mod unsubscribe;

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

pub use channel::{EmailAdapter, Smtp, is_address_bounce};
pub use compose::Composer;
pub use engine::EngineOptions;
pub use ledger::{LedgerProgress, MemoryLedger, Outcome, Recipient, RecipientLedger, RecipientResult, SuppressionList, Unsubscribed};
pub use token::{Subject, TokenKey, verify_token};
pub use unsubscribe::unsubscribe_routes;

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, EmailConfig, Secret, SecretString, pick_secret};

/// Build the adapter for channel `name` without a ledger: enough for `herald check`
/// (healthcheck); `deliver` refuses until the pipeline uses [`build_with_ledger`].
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Email(c) = cfg else {
        anyhow::bail!("channel {name}: not an email channel");
    };
    Ok(Arc::new(adapter(name, c, ctx)?))
}

/// Build the adapter with the store's recipient ledger: what the pipeline calls for an
/// `email` channel.
pub fn build_with_ledger(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx, ledger: Arc<dyn RecipientLedger>) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Email(c) = cfg else {
        anyhow::bail!("channel {name}: not an email channel");
    };
    Ok(Arc::new(adapter(name, c, ctx)?.with_ledger(ledger)))
}

/// The typed adapter (tests use its builder methods).
pub fn adapter(name: &str, c: &EmailConfig, ctx: &BuildCtx) -> anyhow::Result<EmailAdapter> {
    let mut composer = composer(name, &c.from, c.reply_to.as_deref(), &c.unsubscribe_base_url, c.unsubscribe_mailto.as_deref(), unsubscribe_key(name, c.unsubscribe_secret.as_ref(), c.unsubscribe_secret_file.as_ref(), ctx)?)?;
    if let Some(d) = c.bounce_domain.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        anyhow::ensure!(
            format!("{}+x@{d}", crate::bounces::verp::PREFIX).parse::<lettre::Address>().is_ok(),
            "channel {name}: `bounce_domain` is not a domain: `{d}` (e.g. `bounces.example.com`, whose MX delivers to the bounce mailbox)"
        );
        composer.bounce_domain = Some(d.to_string());
    }
    let url = resolve_smtp_url(name, &c.smtp_url, ctx)?;
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    let transport = smtp_transport(name, url.expose(), c.allow_insecure, c.concurrency, timeout)?;
    let opts = EngineOptions {
        channel: name.to_string(),
        list: c.subscribers.clone(),
        concurrency: c.concurrency.max(1),
        max_per_second: c.max_per_second,
        batch_size: c.batch_size.max(1),
        recipient_retry: engine::DEFAULT_RECIPIENT_RETRY.to_vec(),
        pass_budget: Some(engine::pass_budget_for(timeout)),
    };
    Ok(EmailAdapter::new(opts, composer, transport))
}

/// The unsubscribe signing key: `unsubscribe_secret` (or `_file`) is required.
pub fn unsubscribe_key(name: &str, secret: Option<&Secret>, file: Option<&std::path::PathBuf>, ctx: &BuildCtx) -> anyhow::Result<TokenKey> {
    let s = ctx.secret(name, "unsubscribe_secret", pick_secret(&secret.cloned(), &file.map(|f| ctx.base_dir.join(f))))?;
    anyhow::ensure!(
        s.expose().len() >= 16,
        "channel {name}: `unsubscribe_secret` is too short (at least 16 characters; e.g. `openssl rand -hex 32`)"
    );
    Ok(TokenKey::new(&s))
}

/// The shared per-mailing settings of both email adapters.
pub fn composer(name: &str, from: &str, reply_to: Option<&str>, base: &str, mailto: Option<&str>, key: TokenKey) -> anyhow::Result<Composer> {
    let from: Mailbox = from.parse().map_err(|e| anyhow::anyhow!("channel {name}: `from` is not a mailbox ({e}): `{from}`"))?;
    let reply_to = reply_to
        .map(|r| r.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("channel {name}: `reply_to` is not a mailbox ({e}): `{r}`")))
        .transpose()?;
    let u = url::Url::parse(base).map_err(|e| anyhow::anyhow!("channel {name}: `unsubscribe_base_url` is not a URL ({e})"))?;
    anyhow::ensure!(
        u.scheme() == "https" || crate::config::is_loopback_host(u.host()),
        "channel {name}: `unsubscribe_base_url` must be https (RFC 8058 one-click needs an HTTPS URI); got `{base}`"
    );
    let mailto = mailto.map(|m| m.trim().trim_start_matches("mailto:").to_string()).filter(|m| !m.is_empty());
    Ok(Composer { from, reply_to, unsubscribe_base: base.trim_end_matches('/').to_string(), unsubscribe_mailto: mailto, key, bounce_domain: None })
}

/// `smtp_url` as written, or the `${ENV}` secret it names.
fn resolve_smtp_url(name: &str, raw: &str, ctx: &BuildCtx) -> anyhow::Result<SecretString> {
    if raw.trim_start().starts_with("${") {
        let s = Secret::parse(raw).map_err(|e| anyhow::anyhow!("channel {name}: `smtp_url`: {e}"))?;
        return ctx.secret(name, "smtp_url", Some(s));
    }
    Ok(SecretString::new(raw))
}

/// The pooled client for a lettre URL: Herald's `TCP_NODELAY` pool for `smtp://` (plain or
/// `?tls=required`), lettre's pool otherwise. Plain SMTP (and opportunistic STARTTLS, which an
/// attacker can strip) is refused beyond loopback unless `allow_insecure` is set.
pub fn smtp_transport(name: &str, url: &str, allow_insecure: bool, concurrency: usize, timeout: Duration) -> anyhow::Result<Smtp> {
    // Never echo the URL: it may carry a password.
    let u = url::Url::parse(url).map_err(|e| anyhow::anyhow!("channel {name}: `smtp_url` is not a URL ({e})"))?;
    let tls = u.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    if !crate::config::smtp_url_tls_ok(&u, allow_insecure) {
        anyhow::bail!(
            "channel {name}: `smtp_url` sends mail without required TLS to {}; use `smtps://host` or `smtp://host:587?tls=required`, or set `allow_insecure = true`",
            u.host_str().unwrap_or("?")
        );
    }
    // lettre's TLS needs a process-wide rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if u.scheme() == "smtp" && matches!(tls.as_deref(), None | Some("required")) && u.path().len() <= 1 {
        let host = u.host_str().unwrap_or_default().to_string();
        let port = u.port().unwrap_or(if tls.is_some() { 587 } else { 25 });
        let starttls = match tls {
            Some(_) => Some(TlsParameters::new(host.clone()).map_err(|e| anyhow::anyhow!("channel {name}: TLS for {host}: {e}"))?),
            None => None,
        };
        let credentials = match u.password() {
            Some(p) => {
                let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().map(|c| c.into_owned());
                let user = dec(u.username()).map_err(|_| anyhow::anyhow!("channel {name}: `smtp_url` user is not UTF-8"))?;
                let pass = dec(p).map_err(|_| anyhow::anyhow!("channel {name}: `smtp_url` password is not UTF-8"))?;
                Some(Credentials::new(user, pass))
            }
            None => None,
        };
        return Ok(Smtp::Direct(direct::DirectPool::new(&host, port, starttls, credentials, timeout, concurrency)));
    }
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| anyhow::anyhow!("channel {name}: `smtp_url`: {e}"))?;
    Ok(Smtp::Lettre(builder.timeout(Some(timeout)).pool_config(channel::pool(concurrency)).build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_smtp_beyond_loopback_needs_allow_insecure() {
        let t = Duration::from_secs(5);
        assert!(smtp_transport("n", "smtp://127.0.0.1:2525", false, 4, t).is_ok());
        assert!(smtp_transport("n", "smtp://localhost:2525", false, 4, t).is_ok());
        let e = smtp_transport("n", "smtp://user:hunter2@mail.example.com:25", false, 4, t).err().expect("plain SMTP beyond loopback is refused").to_string();
        assert!(e.contains("allow_insecure") && !e.contains("hunter2"), "{e}");
        assert!(smtp_transport("n", "smtp://mail.example.com:587?tls=opportunistic", false, 4, t).is_err());
        assert!(smtp_transport("n", "smtp://mail.example.com:25", true, 4, t).is_ok());
        assert!(smtp_transport("n", "smtps://mail.example.com", false, 4, t).is_ok());
        assert!(smtp_transport("n", "smtp://mail.example.com:587?tls=required", false, 4, t).is_ok());
    }
}
