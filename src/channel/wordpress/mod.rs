//! The `wordpress` adapter: one post through the core REST API, `POST /wp-json/wp/v2/posts`,
//! authenticated with an application password (HTTP Basic, `username:application_password`).
//!
//! WordPress takes no idempotency key, but Herald sends a deterministic `slug` (the issue's),
//! and a post can be looked up by it: `GET /wp-json/wp/v2/posts?slug=…&status=publish,draft`.
//! WordPress never refuses a duplicate slug, it makes it unique (`issue-42-2`), so a blind
//! retry would post twice: before any second create the adapter looks the slug up, and
//! `find_existing` does the same.
//!
//! The canonical URL: core's REST API has no canonical field, so the default template ends the
//! content with an "Originally published at" link to the issue's `url`.

pub mod kind;
pub use kind::Wordpress;

mod channel;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use channel::WordpressAdapter;

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Wordpress(c) = cfg else {
        anyhow::bail!("channel {name}: not a wordpress channel");
    };
    let password = ctx.secret(name, "application_password", pick_secret(&c.application_password, &c.application_password_file))?;
    let site = reqwest::Url::parse(&c.site_url)
        .map_err(|e| anyhow::anyhow!("channel {name}: `site_url` is not a URL ({e}); e.g. `https://blog.example.com`"))?;
    anyhow::ensure!(matches!(site.scheme(), "http" | "https"), "channel {name}: `site_url` must be http(s); got `{}`", site.scheme());
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(WordpressAdapter::new(name, c, password, timeout)))
}
