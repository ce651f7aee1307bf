//! The `webhook` adapter: POST the rendered JSON body to a URL, with the delivery key as
//! `Idempotency-Key` and, when a secret is set, `X-Herald-Signature: sha256=<hex>` (HMAC-SHA256
//! of the exact body bytes).
//!
//! Contract with the receiver: 2xx means accepted; 409 means "I already have this key", which
//! is success (the earlier request got through and its answer was lost). Reconciliation is
//! therefore a resend with the same key: a receiver that dedups on `Idempotency-Key` either
//! accepts it (it never saw it) or answers 409 (it did). Resending cannot post twice.

pub mod kind;
pub use kind::Webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::channel::{Adapter, BuildCtx, DeliveryCtx, DeliveryError, Receipt, Reconciled, http};
use crate::config::{ChannelConfig, Secret, SecretString, pick_secret};
use crate::render::Rendering;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-herald-signature";
/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A configured webhook.
pub struct WebhookAdapter {
    name: String,
    url: reqwest::Url,
    headers: Vec<(String, SecretString)>,
    secret: Option<SecretString>,
    timeout: Duration,
}

impl std::fmt::Debug for WebhookAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAdapter").field("name", &self.name).field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Webhook(c) = cfg else {
        anyhow::bail!("channel {name}: not a webhook channel");
    };
    let url = reqwest::Url::parse(&c.url).map_err(|e| anyhow::anyhow!("channel {name}: `url` is not a URL ({e}); e.g. `https://hooks.example.com/herald`"))?;
    anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "channel {name}: `url` must be http(s); got `{}`", url.scheme());
    let secret = match pick_secret(&c.secret, &c.secret_file) {
        Some(s) => Some(ctx.secret(name, "secret", Some(s))?),
        None => None,
    };
    let mut headers = Vec::new();
    for (k, v) in &c.headers {
        // A header value may come from a secret: `Authorization = "${HOOK_TOKEN}"`, or
        // `"Bearer ${HOOK_TOKEN}"`, or `Authorization_file = "/run/secrets/hook"`.
        let (header, value) = match Secret::header_reference(k, v) {
            Some((header, prefix, s)) => {
                let s = match s {
                    Secret::File(p) if p.is_relative() => Secret::File(ctx.base_dir.join(p)),
                    other => other,
                };
                let value = ctx.secret(name, &format!("headers.{k}"), Some(s))?;
                (header, SecretString::new(format!("{prefix}{}", value.expose())))
            }
            None => (k.clone(), SecretString::new(v.clone())),
        };
        reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(|_| anyhow::anyhow!("channel {name}: `headers.{k}` is not a valid header name"))?;
        headers.push((header, value));
    }
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(WebhookAdapter { name: name.to_string(), url, headers, secret, timeout }))
}

#[async_trait]
impl Adapter for WebhookAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let Rendering::Body(b) = rendering else {
            return Err(DeliveryError::permanent(format!("channel {}: a webhook sends a JSON body rendering", self.name)));
        };
        let body = serde_json::to_vec(&b.body).map_err(|e| DeliveryError::permanent(format!("body encode: {e}")))?;
        let mut req = http::client()
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, &ctx.key);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.expose());
        }
        if let Some(s) = &self.secret {
            req = req.header(SIGNATURE_HEADER, signature(s.expose().as_bytes(), &body));
        }
        // `without_url`: a webhook URL may carry a token (in its path or userinfo); never echo it.
        let resp = req.body(body).send().await.map_err(|e| http::error_from_reqwest(&e.without_url()))?;
        let answer = http::read_answer(resp).await?;
        let status = answer.status;
        if answer.is_success() || status == 409 {
            let v: serde_json::Value = answer.json().unwrap_or(serde_json::Value::Null);
            let remote_id = v.get("id").and_then(json_str).unwrap_or_else(|| ctx.key.clone());
            let url = v.get("url").and_then(json_str);
            let note = (status == 409).then(|| "the receiver already had this key".to_string());
            return Ok(Receipt { remote_id, url, awaiting_confirmation: false, note, warning: None });
        }
        Err(answer.error())
    }

    async fn find_existing(&self, _rendering: &Rendering, _ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        // Resending with the same Idempotency-Key is the check: see the module docs.
        Ok(Reconciled::NotFound)
    }
}

fn json_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
