//! The Threads access token: the config's, or the stored one (which wins), renewed with
//! `GET /refresh_access_token?grant_type=th_refresh_token` once it is at least 24 hours old and
//! has fewer than `[credentials] renew_days` left (CHANNELS.md §4). The renewal runs under the
//! credential store's lease and is committed before the new token is used.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::channel::{DeliveryError, http};
use crate::config::SecretString;
use crate::credentials::{Loaded, Renewal, Vault};
use crate::store::now_ms;

/// Threads refuses to renew a token younger than this.
const MIN_AGE_MS: i64 = 24 * 3_600_000;
/// After a failed renewal, wait this long before trying again in this process.
const RETRY_AFTER_MS: i64 = 3_600_000;

/// Where the Threads token comes from.
pub(super) struct TokenSource {
    channel: String,
    api_base: String,
    config: Option<SecretString>,
    vault: Option<Arc<Vault>>,
    renew_ms: i64,
    timeout: Duration,
    state: tokio::sync::Mutex<Option<Current>>,
}

#[derive(Clone)]
struct Current {
    token: SecretString,
    generation: Option<i64>,
    expires_at: Option<i64>,
    obtained_at: i64,
    failed_at: Option<i64>,
}

impl Current {
    fn from_loaded(l: &Loaded) -> Option<Self> {
        Some(Self {
            token: l.secrets.get("access_token")?,
            generation: Some(l.row.generation),
            expires_at: l.row.expires_at,
            obtained_at: l.row.obtained_at,
            failed_at: None,
        })
    }
}

#[derive(Deserialize)]
struct RefreshAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

impl TokenSource {
    /// The config's token only (no store).
    pub(super) fn fixed(token: SecretString) -> Self {
        Self {
            channel: String::new(),
            api_base: String::new(),
            config: Some(token),
            vault: None,
            renew_ms: 0,
            timeout: http::DEFAULT_TIMEOUT,
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// The stored token of `channel` when there is one, else the config's; renewed `renew_days`
    /// before it expires.
    pub(super) fn stored(channel: &str, api_base: &str, config: Option<SecretString>, vault: Arc<Vault>, renew_days: u32, timeout: Duration) -> Self {
        Self {
            channel: channel.to_string(),
            api_base: api_base.trim_end_matches('/').to_string(),
            config,
            vault: Some(vault),
            renew_ms: i64::from(renew_days) * 86_400_000,
            timeout,
            state: tokio::sync::Mutex::new(None),
        }
    }

    async fn load(&self) -> Result<Current, DeliveryError> {
        if let Some(vault) = &self.vault
            && let Some(l) = vault.load(&self.channel).await?
            && let Some(c) = Current::from_loaded(&l)
        {
            return Ok(c);
        }
        let token = self
            .config
            .clone()
            .ok_or_else(|| crate::credentials::needs_auth(&self.channel, "no Threads access token is configured or stored"))?;
        Ok(Current { token, generation: None, expires_at: None, obtained_at: 0, failed_at: None })
    }

    /// The token to use now, renewed first when it is due.
    pub(super) async fn token(&self) -> Result<SecretString, DeliveryError> {
        let mut st = self.state.lock().await;
        let mut cur = match st.take() {
            Some(c) => c,
            None => self.load().await?,
        };
        let now = now_ms();
        if let (Some(vault), Some(generation), Some(expires)) = (&self.vault, cur.generation, cur.expires_at)
            && expires - now < self.renew_ms
            && now - cur.obtained_at >= MIN_AGE_MS
            && cur.failed_at.is_none_or(|f| now - f > RETRY_AFTER_MS)
        {
            let (base, timeout) = (self.api_base.clone(), self.timeout);
            match vault.refresh(&self.channel, Some(generation), None, |l, _| renew(base, timeout, l)).await {
                Ok(l) => {
                    if let Some(c) = Current::from_loaded(&l) {
                        tracing::info!(channel = %self.channel, expires_at = %crate::store::fmt_ms(c.expires_at.unwrap_or(0)), "Threads token renewed.");
                        cur = c;
                    }
                }
                Err(e) if expires > now => {
                    // The current token still works: post with it, and say so.
                    tracing::warn!(channel = %self.channel, error = %e.message(), "Threads token renewal failed; the current token is still valid.");
                    cur.failed_at = Some(now);
                }
                Err(e) => return Err(e),
            }
        }
        let token = cur.token.clone();
        *st = Some(cur);
        Ok(token)
    }
}

/// `GET /refresh_access_token?grant_type=th_refresh_token&access_token=…`.
async fn renew(api_base: String, timeout: Duration, current: Loaded) -> Renewal {
    let Some(token) = current.secrets.get("access_token") else { return Renewal::Refused("no access token is stored".into()) };
    let res = http::client()
        .get(format!("{api_base}/refresh_access_token"))
        .query(&[("grant_type", "th_refresh_token"), ("access_token", token.expose())])
        .timeout(timeout)
        .send()
        .await;
    let res = match res {
        Ok(r) => r,
        Err(e) => return Renewal::Failed { error: http::error_from_reqwest(&e), maybe_sent: false },
    };
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        // A refused renewal leaves the current token as it was (it is not spent).
        return Renewal::Failed { error: super::client::classify(status, &headers, &body), maybe_sent: false };
    }
    match serde_json::from_str::<RefreshAnswer>(&body) {
        Ok(a) => {
            let mut secrets = current.secrets.clone();
            secrets.set("access_token", &SecretString::new(a.access_token));
            Renewal::Renewed { secrets, expires_at: a.expires_in.map(|s| now_ms() + s * 1000), scopes: None }
        }
        Err(e) => Renewal::Failed { error: DeliveryError::retryable(format!("threads: unreadable renewal answer: {e}")), maybe_sent: false },
    }
}
