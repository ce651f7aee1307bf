//! The `x` adapter: X API v2 posts and threads, OAuth 2.0 (rotations kept in the credential
//! store) or OAuth 1.0a.

pub mod kind;
pub use kind::X;

mod channel;
pub(crate) mod client;
pub mod oauth1;

use std::sync::Arc;
use std::time::Duration;

pub use channel::XChannel;

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, XAuth, pick_secret};

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::X(c) = cfg else { anyhow::bail!("channel {name}: not an x channel") };
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    let auth = match c.auth {
        XAuth::Oauth2 => {
            // With a credential store, the config's tokens are optional: `herald connect` may
            // have stored them (a stored credential wins over the config's once it exists).
            let access = match (pick_secret(&c.access_token, &c.access_token_file), &ctx.vault) {
                (None, Some(_)) => None,
                (s, _) => Some(ctx.secret(name, "access_token", s)?),
            };
            let refresh = match pick_secret(&c.refresh_token, &c.refresh_token_file) {
                Some(s) => Some(ctx.secret(name, "refresh_token", Some(s))?),
                None => None,
            };
            if refresh.is_some() && c.client_id.is_none() {
                anyhow::bail!("channel {name}: `refresh_token` needs `client_id` (the OAuth 2.0 app's client id)");
            }
            let client_secret = match pick_secret(&c.client_secret, &c.client_secret_file) {
                Some(s) => Some(ctx.secret(name, "client_secret", Some(s))?),
                None => None,
            };
            let app = client::OAuth2App { client_id: c.client_id.clone(), client_secret };
            client::XAuth::oauth2(access, refresh, app, ctx.vault.clone().map(|v| (name.to_string(), v)))
        }
        XAuth::Oauth1 => client::XAuth::OAuth1(oauth1::Keys {
            consumer_key: ctx.secret(name, "consumer_key", c.consumer_key.clone())?.expose().to_string(),
            consumer_secret: ctx.secret(name, "consumer_secret", c.consumer_secret.clone())?.expose().to_string(),
            token: ctx.secret(name, "access_token", pick_secret(&c.access_token, &c.access_token_file))?.expose().to_string(),
            token_secret: ctx.secret(name, "access_token_secret", c.access_token_secret.clone())?.expose().to_string(),
        }),
    };
    Ok(Arc::new(XChannel {
        name: name.to_string(),
        client: client::XClient::new(&c.api_base, timeout, auth),
        user_id: c.user_id.clone(),
        fallback: c.thread_fallback,
    }))
}
