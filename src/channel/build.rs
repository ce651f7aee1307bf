//! The one place a channel type is mapped to its adapter. Every adapter comes back wrapped in
//! [`Redacting`], which blanks the channel's own secret values and any echoed credential from
//! its errors before they are stored or logged.

use std::sync::Arc;

use super::email::RecipientLedger;
use super::redact::{Redacting, Redactor};
use super::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, Secret, pick_secret};

/// Build the adapter for one configured channel. Resolves its secrets (through `ctx.env`),
/// so a missing credential fails here, before anything is sent.
pub fn build_adapter(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let inner = match cfg {
        ChannelConfig::Email(_) => super::email::build(name, cfg, ctx),
        ChannelConfig::EmailApi(_) => super::email_api::build(name, cfg, ctx),
        ChannelConfig::Substack(_) => super::substack::build(name, cfg, ctx),
        ChannelConfig::Linkedin(_) => super::linkedin::build(name, cfg, ctx),
        ChannelConfig::X(_) => super::x::build(name, cfg, ctx),
        ChannelConfig::Bluesky(_) => super::bluesky::build(name, cfg, ctx),
        ChannelConfig::Mastodon(_) => super::mastodon::build(name, cfg, ctx),
        ChannelConfig::Threads(_) => super::threads::build(name, cfg, ctx),
        ChannelConfig::Webhook(_) => super::webhook::build(name, cfg, ctx),
        ChannelConfig::Exec(_) => super::exec::build(name, cfg, ctx),
    }?;
    Ok(Redacting::wrap(inner, redactor(cfg, ctx)))
}

/// Build the adapter the pipeline uses: like [`build_adapter`], but the email adapters get the
/// store's recipient ledger (`Arc::new(store.clone())`).
pub fn build_adapter_with_ledger(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx, ledger: Arc<dyn RecipientLedger>) -> anyhow::Result<Arc<dyn Adapter>> {
    let inner = match cfg {
        ChannelConfig::Email(_) => super::email::build_with_ledger(name, cfg, ctx, ledger)?,
        ChannelConfig::EmailApi(_) => super::email_api::build_with_ledger(name, cfg, ctx, ledger)?,
        _ => return build_adapter(name, cfg, ctx),
    };
    Ok(Redacting::wrap(inner, redactor(cfg, ctx)))
}

/// The channel's secret values (those that resolve; the adapter has already failed on a
/// missing one), for [`Redactor`].
fn redactor(cfg: &ChannelConfig, ctx: &BuildCtx) -> Redactor {
    let mut secrets: Vec<Option<Secret>> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    match cfg {
        ChannelConfig::Email(c) => {
            secrets.push(pick_secret(&c.unsubscribe_secret, &c.unsubscribe_secret_file));
            let url = Secret::parse(&c.smtp_url).ok().and_then(|s| s.resolve_with(&|k| (ctx.env)(k)).ok()).map(|s| s.expose().to_string());
            let url = url.unwrap_or_else(|| c.smtp_url.clone());
            if let Ok(u) = url::Url::parse(&url)
                && let Some(p) = u.password()
            {
                plain.push(p.to_string());
                plain.extend(percent_encoding::percent_decode_str(p).decode_utf8().ok().map(|d| d.into_owned()));
            }
        }
        ChannelConfig::EmailApi(c) => {
            secrets.push(pick_secret(&c.server_token, &c.server_token_file));
            secrets.push(pick_secret(&c.unsubscribe_secret, &c.unsubscribe_secret_file));
        }
        ChannelConfig::Substack(c) => secrets.push(pick_secret(&c.cookie, &c.cookie_file)),
        ChannelConfig::Linkedin(c) => secrets.push(pick_secret(&c.access_token, &c.access_token_file)),
        ChannelConfig::X(c) => {
            secrets.push(pick_secret(&c.access_token, &c.access_token_file));
            secrets.push(pick_secret(&c.refresh_token, &c.refresh_token_file));
            secrets.extend([c.consumer_key.clone(), c.consumer_secret.clone(), c.access_token_secret.clone()]);
        }
        ChannelConfig::Bluesky(c) => secrets.push(pick_secret(&c.app_password, &c.app_password_file)),
        ChannelConfig::Mastodon(c) => secrets.push(pick_secret(&c.access_token, &c.access_token_file)),
        ChannelConfig::Threads(c) => secrets.push(pick_secret(&c.access_token, &c.access_token_file)),
        ChannelConfig::Webhook(c) => secrets.push(pick_secret(&c.secret, &c.secret_file)),
        // What the plugin is given, it may print.
        ChannelConfig::Exec(c) => plain.extend(c.env.iter().filter_map(|k| (ctx.env)(k))),
    }
    let resolved = secrets.into_iter().flatten().filter_map(|s| s.resolve_with(&|k| (ctx.env)(k)).ok()).map(|s| s.expose().to_string());
    Redactor::new(resolved.chain(plain))
}
