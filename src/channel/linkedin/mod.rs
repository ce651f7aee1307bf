//! The `linkedin` adapter: one text post through the Posts API (`POST /rest/posts`).
//!
//! LinkedIn has no idempotency key and no way to look a post up by content with the
//! `w_member_social` scope. What it has is duplicate detection: the same author posting the
//! same commentary again within roughly 24–48 h gets `422 DUPLICATE_POST` with the earlier
//! post's URN in `message` (CHANNELS.md §5). Both `deliver` and `find_existing` use that: a
//! re-POST either creates the one post (the earlier attempt never landed) or names the post
//! that did. Past the 24 h window the probe is no longer safe, so `find_existing` answers
//! `CannotCheck` and the delivery waits for the operator.

pub mod kind;
pub use kind::Linkedin;

mod channel;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use channel::{LinkedinAdapter, VERSION_WARN_MONTHS, token_expiry_warning, version_age_warning};

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Linkedin(c) = cfg else {
        anyhow::bail!("channel {name}: not a linkedin channel");
    };
    let token = ctx.stored_or_secret(name, "access_token", pick_secret(&c.access_token, &c.access_token_file))?;
    // `herald connect` read the member's URN from /v2/userinfo: it names the author.
    let author = ctx.stored(name)?.and_then(|l| l.row.account).unwrap_or_else(|| c.author.clone());
    if let Some(w) = token_expiry_warning(c, chrono::Utc::now()) {
        tracing::warn!(channel = %name, warning = %w, "LinkedIn token needs attention.");
    }
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(LinkedinAdapter::new(name, &c.api_base, &author, &c.linkedin_version, token, timeout)))
}
