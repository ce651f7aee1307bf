//! The `substack` adapter: a post through the publication's cookie-session API (unofficial).
//!
//! Flow (CHANNELS.md §6): `POST /api/v1/drafts` → the draft id is saved in the checkpoint at
//! once → (slug set with `PUT`) → `GET …/prepublish` → `POST …/publish`. A retry with a saved
//! draft id reads the draft first (`is_published` → done) and never creates a second one.
//! `mode = "draft"` stops after the draft and returns `awaiting_confirmation` with the
//! editor URL, for the author to publish by hand.

pub mod kind;
pub use kind::Substack;

mod channel;

pub use channel::cookie_header;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use channel::SubstackAdapter;

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Substack(c) = cfg else {
        anyhow::bail!("channel {name}: not a substack channel");
    };
    let cookie = ctx.stored_or_secret(name, "cookie", pick_secret(&c.cookie, &c.cookie_file))?;
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    // `herald connect` recorded the author's user id (for the byline) when the config has none.
    let mut c = c.clone();
    if c.user_id.is_none() {
        c.user_id = ctx.stored(name)?.and_then(|l| l.row.account).and_then(|a| a.parse().ok());
    }
    Ok(Arc::new(SubstackAdapter::new(name, &c, cookie, timeout)))
}
