//! The one place an adapter is built from a channel's config. The per-type work (which adapter,
//! which secrets) is in each type's folder (`src/channel/<type>/kind.rs`), reached through the
//! registry; every adapter comes back wrapped in [`Redacting`], which blanks the channel's own
//! secret values and any echoed credential from its errors before they are stored or logged.

use std::sync::Arc;

use super::email::RecipientLedger;
use super::redact::{Redacting, Redactor};
use super::{Adapter, BuildCtx};
use crate::config::ChannelConfig;

/// Build the adapter for one configured channel. Resolves its secrets (through `ctx.env`),
/// so a missing credential fails here, before anything is sent.
pub fn build_adapter(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let inner = cfg.build_inner(name, ctx)?;
    Ok(Redacting::wrap(inner, redactor(cfg, ctx)))
}

/// Build the adapter the pipeline uses: like [`build_adapter`], but the types that mail a list
/// get the store's recipient ledger (`Arc::new(store.clone())`).
pub fn build_adapter_with_ledger(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx, ledger: Arc<dyn RecipientLedger>) -> anyhow::Result<Arc<dyn Adapter>> {
    match cfg.build_with_ledger_inner(name, ctx, ledger) {
        Some(inner) => Ok(Redacting::wrap(inner?, redactor(cfg, ctx))),
        None => build_adapter(name, cfg, ctx),
    }
}

/// The channel's secret values (those that resolve; the adapter has already failed on a
/// missing one), for [`Redactor`].
fn redactor(cfg: &ChannelConfig, ctx: &BuildCtx) -> Redactor {
    let s = cfg.secrets(ctx);
    let resolved = s.refs.into_iter().flatten().filter_map(|s| s.resolve_with(&|k| (ctx.env)(k)).ok()).map(|s| s.expose().to_string());
    Redactor::new(resolved.chain(s.plain))
}
