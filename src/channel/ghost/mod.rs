//! The `ghost` adapter: the issue as a Ghost post, through the Admin API, with its canonical URL.
//!
//! Contract (docs.ghost.org/admin-api, `@tryghost/admin-api`, Ghost's `api-key/admin.js`):
//! every request carries `Authorization: Ghost <jwt>`, a JWT HS256 signed with the hex-decoded
//! secret of the integration's Admin API key `{id}:{secret}`, header `kid` = id, claims `iat`,
//! `exp` (5 minutes later: Ghost refuses a token older than that) and `aud` = `/admin/`; and
//! `Accept-Version`. `POST /ghost/api/admin/posts/?source=html` with
//! `{"posts":[{title, html, status, canonical_url, custom_excerpt, slug, tags}]}` → `201`.
//!
//! Never twice: Herald sends a deterministic slug (from the slug). Ghost never refuses a
//! taken slug, it appends `-2`, so a blind retry would make a second post: before any retry
//! after an unknown outcome, `GET /ghost/api/admin/posts/slug/{slug}/` looks the post up, and
//! its `canonical_url` (the issue's `url`) tells Herald's post from another one with that slug.

pub mod kind;
pub use kind::{Ghost, GhostConfig, GhostStatus};

mod channel;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use channel::{AdminKey, GhostAdapter, ghost_slug};

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Ghost(c) = cfg else {
        anyhow::bail!("channel {name}: not a ghost channel");
    };
    let url = reqwest::Url::parse(&c.api_url)
        .map_err(|e| anyhow::anyhow!("channel {name}: `api_url` is not a URL ({e}); e.g. `https://blog.example.com`"))?;
    anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "channel {name}: `api_url` must be http(s); got `{}`", url.scheme());
    let secret = ctx.secret(name, "admin_api_key", pick_secret(&c.admin_api_key, &c.admin_api_key_file))?;
    let key = AdminKey::parse(secret.expose()).map_err(|m| anyhow::anyhow!("channel {name}: `admin_api_key` {m}"))?;
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(GhostAdapter::new(name, c, key, timeout)))
}
