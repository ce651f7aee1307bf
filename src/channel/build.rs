//! The one place a channel type is mapped to its adapter.

use std::sync::Arc;

use super::email::RecipientLedger;
use super::{Adapter, BuildCtx};
use crate::config::ChannelConfig;

/// Build the adapter for one configured channel. Resolves its secrets (through `ctx.env`),
/// so a missing credential fails here, before anything is sent.
pub fn build_adapter(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    match cfg {
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
    }
}

/// Build the adapter the pipeline uses: like [`build_adapter`], but the email adapters get the
/// store's recipient ledger (`Arc::new(store.clone())`).
pub fn build_adapter_with_ledger(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx, ledger: Arc<dyn RecipientLedger>) -> anyhow::Result<Arc<dyn Adapter>> {
    match cfg {
        ChannelConfig::Email(_) => super::email::build_with_ledger(name, cfg, ctx, ledger),
        ChannelConfig::EmailApi(_) => super::email_api::build_with_ledger(name, cfg, ctx, ledger),
        _ => build_adapter(name, cfg, ctx),
    }
}
