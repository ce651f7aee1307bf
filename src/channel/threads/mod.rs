//! The `threads` adapter: Threads (Meta) posts and threads via the two-step container → publish flow.
//!
//! Reconciliation (CHANNELS.md §4): every container id is saved in the checkpoint before it is
//! published, so an ambiguous publish is settled by the container's status: `PUBLISHED` means
//! done, `FINISHED` means publish it now, `EXPIRED`/`ERROR` means make a new container. An
//! unpublished container is invisible, so creating another one is always safe.

pub mod kind;
pub use kind::Threads;

mod auth;
mod channel;
mod client;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use auth::renew_stored;
pub use channel::ThreadsAdapter;

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Threads(c) = cfg else {
        anyhow::bail!("channel {name}: not a threads channel");
    };
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    let thread_format = c.post.format == crate::config::PostFormat::Thread;
    let Some(vault) = &ctx.vault else {
        let token = ctx.secret(name, "access_token", pick_secret(&c.access_token, &c.access_token_file))?;
        return Ok(Arc::new(
            ThreadsAdapter::new(name, &c.api_base, &c.user_id, token, timeout)
                .with_link_limit(c.max_links)
                .with_thread_format(thread_format),
        ));
    };
    // With a credential store the config's token is optional: `herald connect` may have stored one.
    let token = match pick_secret(&c.access_token, &c.access_token_file) {
        Some(s) => Some(ctx.secret(name, "access_token", Some(s))?),
        None => None,
    };
    let source = auth::TokenSource::stored(name, &c.api_base, token, vault.clone(), vault.renew_days(), timeout);
    Ok(Arc::new(
        ThreadsAdapter::with_source(name, &c.api_base, &c.user_id, source, timeout)
            .with_link_limit(c.max_links)
            .with_thread_format(thread_format),
    ))
}
