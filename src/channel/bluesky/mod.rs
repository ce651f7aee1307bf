//! The `bluesky` adapter: AT Protocol posts and threads with Herald-chosen rkeys, one cached
//! session per process, mention resolution and link cards with thumbnails.

pub mod kind;
pub use kind::Bluesky;

mod channel;
mod client;
pub mod tid;

use std::sync::Arc;
use std::time::Duration;

pub use channel::{BlueskyChannel, THUMB_MAX_BYTES};

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Bluesky(c) = cfg else { anyhow::bail!("channel {name}: not a bluesky channel") };
    if c.identifier.trim().is_empty() {
        anyhow::bail!("channel {name}: `identifier` must be the account's handle, email or DID, e.g. `you.bsky.social`");
    }
    let password = ctx.stored_or_secret(name, "app_password", pick_secret(&c.app_password, &c.app_password_file))?;
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(BlueskyChannel {
        name: name.to_string(),
        client: client::BskyClient::new(&c.api_base, timeout, c.identifier.clone(), password)
            .with_pds(ctx.stored(name)?.and_then(|l| l.meta("pds"))),
        base_dir: ctx.base_dir.clone(),
    }))
}
