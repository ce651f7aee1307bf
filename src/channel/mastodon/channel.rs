//! `MastodonChannel`: statuses and threads with a per-part `Idempotency-Key`.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use crate::channel::thread::{self, Lookup, PartCall, PartView, Posted, Settle, ThreadNetwork};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled, ThreadProgress, http};
use crate::config::SecretString;
use crate::render::{Post, Rendering};

/// Mastodon keeps an `Idempotency-Key` for one hour; resend only well inside it.
const KEY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(55);

/// The Mastodon adapter for one account.
pub struct MastodonChannel {
    pub(crate) name: String,
    pub(crate) api_base: String,
    pub(crate) timeout: Duration,
    pub(crate) token: SecretString,
    pub(crate) visibility: String,
    /// `max_characters` from the config, when set.
    pub(crate) max_characters: Option<usize>,
    /// The instance's `configuration.statuses.max_characters`, read once per process.
    pub(crate) instance_limit: tokio::sync::OnceCell<Option<usize>>,
}

/// The part of a Status entity Herald reads.
#[derive(Deserialize)]
struct Status {
    id: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    uri: Option<String>,
}

fn prepared_at(prepared: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = prepared.get("prepared_at")?.as_str()?;
    Some(chrono::DateTime::parse_from_rfc3339(s).ok()?.to_utc())
}

impl MastodonChannel {
    /// `{delivery key}#{part}`: stable across retries of the same part, distinct per part.
    fn idempotency_key(ctx: &DeliveryCtx, part: usize) -> String {
        format!("{}#{part}", ctx.key)
    }

    /// `POST /api/v1/statuses` for one part.
    async fn post_status(
        &self,
        ctx: &DeliveryCtx,
        part: usize,
        post: &Post,
        in_reply_to: Option<&str>,
    ) -> Result<Status, DeliveryError> {
        let mut body = json!({ "status": post.text, "visibility": self.visibility });
        if let Some(parent) = in_reply_to {
            body["in_reply_to_id"] = json!(parent);
        }
        let req = http::client()
            .post(format!("{}/api/v1/statuses", self.api_base))
            .timeout(self.timeout)
            .bearer_auth(self.token.expose())
            .header("Idempotency-Key", Self::idempotency_key(ctx, part))
            .json(&body);
        let res = http::send(req).await?;
        if !res.is_success() {
            // 503 includes Mastodon's "same key still in flight" lock answer: retrying with
            // the same key is always safe.
            return Err(res.error());
        }
        res.json().map_err(|e| {
            DeliveryError::unknown_outcome(format!("Mastodon accepted part {} but the answer is unreadable: {e}", part + 1))
        })
    }

    /// The instance's status length limit (`GET /api/v2/instance`, public), once per process.
    /// `None` when the instance doesn't say (or can't be read: the post itself will tell).
    async fn instance_limit(&self) -> Option<usize> {
        *self
            .instance_limit
            .get_or_init(|| async {
                let req = http::client().get(format!("{}/api/v2/instance", self.api_base)).timeout(self.timeout);
                match http::send(req).await {
                    Ok(a) if a.is_success() => a
                        .json::<serde_json::Value>()
                        .ok()
                        .and_then(|v| v.pointer("/configuration/statuses/max_characters")?.as_u64())
                        .and_then(|n| usize::try_from(n).ok()),
                    Ok(a) => {
                        tracing::warn!(channel = %self.name, status = a.status, "Could not read the Mastodon instance's limits.");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(channel = %self.name, error = %e, "Could not read the Mastodon instance's limits.");
                        None
                    }
                }
            })
            .await
    }

    /// Refuse, before any call, a rendering with a part over the instance's limit: the
    /// rendering was fitted to `max_characters` (or 500), which this instance doesn't allow.
    async fn preflight(&self, posts: &[Post]) -> Result<(), DeliveryError> {
        let Some(limit) = self.instance_limit().await else { return Ok(()) };
        for (i, p) in posts.iter().enumerate() {
            let n = crate::render::count::Network::Mastodon.count(&p.text);
            if n > limit {
                return Err(DeliveryError::permanent(format!(
                    "part {} is {n} characters but this instance allows {limit} (configuration.statuses.max_characters of /api/v2/instance); set max_characters = {limit} on this channel (it is {}) and republish",
                    i + 1,
                    self.max_characters.map_or("unset, so 500".to_string(), |m| m.to_string())
                )));
            }
        }
        Ok(())
    }
}

fn posts(rendering: &Rendering) -> Result<&[Post], DeliveryError> {
    let p = &rendering.posts().ok_or_else(|| DeliveryError::permanent("the mastodon channel needs a posts rendering"))?.posts;
    if p.is_empty() {
        return Err(DeliveryError::permanent("the rendering has no posts"));
    }
    Ok(p)
}

/// A part's `Idempotency-Key` holds for an hour from its first send: within it, sending the
/// part again is how a lost answer is settled, so a resend is the reconciliation.
#[async_trait]
impl ThreadNetwork for MastodonChannel {
    const SETTLE: Settle = Settle::PostAgain;

    fn network(&self) -> &'static str {
        "Mastodon"
    }

    /// The key's hour starts at the first send; past it, the key protects nothing, so a resend
    /// (which the pipeline only makes after reconciling or by operator choice) opens a new window.
    fn marker(&self, _index: usize, earlier: &serde_json::Value) -> Option<serde_json::Value> {
        let now = chrono::Utc::now();
        match prepared_at(earlier) {
            Some(t) if now - t <= KEY_WINDOW => None,
            _ => Some(json!({ "prepared_at": now.to_rfc3339() })),
        }
    }

    async fn post_part(&self, part: &mut PartCall<'_>) -> Result<Posted, DeliveryError> {
        let v = part.view();
        let status = self.post_status(v.ctx, v.index, v.post(), v.parent_id()).await?;
        Ok(Posted::new(status.id, status.url.or(status.uri)))
    }

    /// Resending with the same `Idempotency-Key` returns the original status if it exists (and
    /// creates it if not), so reconciliation is a resend of the part prepared within the hour.
    /// Past the hour the key is gone and a resend could post twice.
    async fn find_part(&self, part: PartView<'_>) -> Result<Lookup, DeliveryError> {
        match prepared_at(&part.state().prepared) {
            Some(t) if chrono::Utc::now() - t <= KEY_WINDOW => {}
            _ => {
                return Ok(Lookup::CannotCheck(format!(
                    "part {} was sent more than an hour ago; Mastodon keeps an Idempotency-Key for one hour, so a resend could post twice. Check the account, then retry or cancel",
                    part.index + 1
                )));
            }
        }
        let status = self.post_status(part.ctx, part.index, part.post(), part.parent_id()).await?;
        Ok(Lookup::Found(Posted::new(status.id, status.url.or(status.uri))))
    }

    async fn before_first(&self, posts: &[Post]) -> Result<(), DeliveryError> {
        self.preflight(posts).await
    }

    fn note(&self, _progress: &ThreadProgress, _total: usize, reconciled: bool) -> Option<String> {
        reconciled.then(|| "reconciled by resending with the same Idempotency-Key".to_string())
    }
}

#[async_trait]
impl Adapter for MastodonChannel {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        thread::deliver(self, posts(rendering)?, ctx).await
    }

    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        thread::find_existing(self, posts(rendering)?, ctx).await
    }

    /// `GET /api/v1/apps/verify_credentials`: any valid token passes, so a token with only
    /// `write:statuses` (all Herald needs) is not refused as `accounts/verify_credentials`
    /// (which needs `read:accounts`) would.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let req = http::client()
            .get(format!("{}/api/v1/apps/verify_credentials", self.api_base))
            .timeout(self.timeout)
            .bearer_auth(self.token.expose());
        let res = http::send(req).await?;
        if res.is_success() { Ok(()) } else { Err(res.error()) }
    }
}
