//! The `mastodon` adapter: `POST /api/v1/statuses` with a per-part `Idempotency-Key`.

pub mod kind;
pub use kind::Mastodon;

mod channel;

use std::sync::Arc;
use std::time::Duration;

pub use channel::MastodonChannel;

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// The visibilities Mastodon accepts.
const VISIBILITIES: &[&str] = &["public", "unlisted", "private", "direct"];

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Mastodon(c) = cfg else { anyhow::bail!("channel {name}: not a mastodon channel") };
    if !VISIBILITIES.contains(&c.visibility.as_str()) {
        anyhow::bail!("channel {name}: `visibility` must be one of {}; got `{}`", VISIBILITIES.join(", "), c.visibility);
    }
    let token = ctx.stored_or_secret(name, "access_token", pick_secret(&c.access_token, &c.access_token_file))?;
    Ok(Arc::new(MastodonChannel {
        name: name.to_string(),
        api_base: c.api_base.trim_end_matches('/').to_string(),
        timeout: c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout),
        token,
        visibility: c.visibility.clone(),
        max_characters: c.max_characters,
        instance_limit: tokio::sync::OnceCell::new(),
    }))
}
