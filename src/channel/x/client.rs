//! The X API v2 client: request signing (OAuth 2.0 bearer or OAuth 1.0a) and token refresh,
//! committed to the credential store before the new token is used.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::oauth1;
use crate::channel::{DeliveryError, http};
use crate::config::SecretString;
use crate::credentials::{Loaded, Renewal, Secrets, Vault};
use crate::store::credentials::CredentialWrite;
use crate::store::now_ms;

/// An answer from X, any status (the shared helper's, body bounded).
pub(crate) type XResponse = http::Answer;

/// OAuth 2.0 user tokens. With a credential store they are read from it (a stored credential
/// wins over the config's) and every rotation is committed there before it is used.
pub(crate) struct OAuth2Tokens {
    access: Option<SecretString>,
    refresh: Option<SecretString>,
    /// Bumped on each refresh, so concurrent 401s refresh once.
    generation: u64,
    /// The store generation in use (`None`: the config's tokens).
    stored: Option<i64>,
    /// The stored row was looked for.
    loaded: bool,
    /// Access token expiry, unix ms, when known.
    expires_at: Option<i64>,
    /// The account id the stored credential names.
    account: Option<String>,
}

/// The OAuth 2.0 app: client id, and the secret of a confidential client.
#[derive(Clone)]
pub(crate) struct OAuth2App {
    /// The client id.
    pub client_id: Option<String>,
    /// Confidential clients authenticate at the token endpoint with Basic auth.
    pub client_secret: Option<SecretString>,
}

/// How requests are authorised.
pub(crate) enum XAuth {
    /// Bearer user token, refreshable with the app's client id (and secret) + refresh token.
    OAuth2 { tokens: tokio::sync::Mutex<OAuth2Tokens>, app: OAuth2App, vault: Option<(String, Arc<Vault>)> },
    /// HMAC-SHA1 signed user context.
    OAuth1(oauth1::Keys),
}

impl XAuth {
    /// OAuth 2.0 with an optional refresh token; with `vault` (channel name, store), the
    /// stored credential is used and rotations are kept there.
    pub fn oauth2(access: Option<SecretString>, refresh: Option<SecretString>, app: OAuth2App, vault: Option<(String, Arc<Vault>)>) -> Self {
        XAuth::OAuth2 {
            tokens: tokio::sync::Mutex::new(OAuth2Tokens {
                access,
                refresh,
                generation: 0,
                stored: None,
                loaded: vault.is_none(),
                expires_at: None,
                account: None,
            }),
            app,
            vault,
        }
    }
}

/// The client for one X account.
pub(crate) struct XClient {
    api_base: String,
    timeout: Duration,
    auth: XAuth,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

/// Refresh proactively when the access token has less than this left.
const EXPIRY_MARGIN_MS: i64 = 60_000;

/// `POST /2/oauth2/token` with `form`: Basic client authentication for a confidential client,
/// `client_id` in the body for a public one. Shared by the refresh and `herald connect`.
pub(crate) async fn token_request(api_base: &str, timeout: Duration, app: &OAuth2App, form: &[(&str, &str)]) -> Result<reqwest::Response, reqwest::Error> {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let client_id = app.client_id.as_deref().unwrap_or_default();
    let mut req = http::client().post(format!("{}/2/oauth2/token", api_base.trim_end_matches('/'))).timeout(timeout);
    match &app.client_secret {
        Some(secret) => req = req.basic_auth(client_id, Some(secret.expose())),
        None => form.push(("client_id", client_id)),
    }
    req.form(&form).send().await
}

/// What X's token endpoint said, as a [`Renewal`]; `base` holds the secrets kept across it.
async fn renewal_from(res: Result<reqwest::Response, reqwest::Error>, base: Secrets) -> Renewal {
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            // A refresh posts nothing; but the request may have reached X and spent the token.
            return Renewal::Failed {
                error: DeliveryError::retryable(format!("X token refresh failed: {}", http::error_from_reqwest(&e).message())),
                maybe_sent: !e.is_connect(),
            };
        }
    };
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        if status == 400 || status == 401 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let code = v.get("error").and_then(|e| e.as_str()).unwrap_or("refused");
            let detail = v.get("error_description").and_then(|e| e.as_str()).unwrap_or_default();
            return Renewal::Refused(format!("X refused the refresh token ({status} {code}: {detail})"));
        }
        return Renewal::Failed { error: http::error_from_response(status, &headers, &body), maybe_sent: status >= 500 };
    }
    let answer: TokenAnswer = match serde_json::from_str(&body) {
        Ok(a) => a,
        Err(e) => {
            return Renewal::Failed { error: DeliveryError::retryable(format!("X token refresh answer unreadable: {e}")), maybe_sent: true };
        }
    };
    let mut secrets = base;
    secrets.set("access_token", &SecretString::new(answer.access_token));
    if let Some(r) = answer.refresh_token {
        // X rotates refresh tokens: the old one is now spent.
        secrets.set("refresh_token", &SecretString::new(r));
    }
    Renewal::Renewed { secrets, expires_at: answer.expires_in.map(|s| now_ms() + s * 1000), scopes: answer.scope }
}

impl XClient {
    /// A client for `api_base` with a per-request timeout.
    pub fn new(api_base: &str, timeout: Duration, auth: XAuth) -> Self {
        Self { api_base: api_base.trim_end_matches('/').to_string(), timeout, auth }
    }

    /// Send a request; on a 401 with OAuth 2.0, refresh the token once and send again.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        json: Option<&serde_json::Value>,
    ) -> Result<XResponse, DeliveryError> {
        if let Some(seen) = self.prepare().await?
            && !self.refresh(seen).await?
        {
            return Err(DeliveryError::auth("X access token expired and there is no refresh token to renew it"));
        }
        let (generation, res) = self.send_once(method.clone(), path, query, json).await?;
        if res.status != 401 {
            return Ok(res);
        }
        if let XAuth::OAuth2 { .. } = &self.auth
            && self.refresh(generation).await?
        {
            let (_, res) = self.send_once(method, path, query, json).await?;
            return Ok(res);
        }
        Ok(res)
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        json: Option<&serde_json::Value>,
    ) -> Result<(u64, XResponse), DeliveryError> {
        let mut url = url::Url::parse(&format!("{}{}", self.api_base, path))
            .map_err(|e| DeliveryError::permanent(format!("bad X api_base or path: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = http::client().request(method.clone(), url.clone()).timeout(self.timeout);
        let generation = match &self.auth {
            XAuth::OAuth2 { tokens, vault, .. } => {
                let t = tokens.lock().await;
                let Some(access) = &t.access else {
                    let channel = vault.as_ref().map(|(c, _)| c.as_str()).unwrap_or("x");
                    return Err(crate::credentials::needs_auth(channel, "no X access token is configured or stored"));
                };
                req = req.bearer_auth(access.expose());
                t.generation
            }
            XAuth::OAuth1(keys) => {
                let ts = chrono::Utc::now().timestamp().max(0) as u64;
                req = req.header("authorization", oauth1::authorization(method.as_str(), &url, keys, &oauth1::nonce(), ts));
                0
            }
        };
        if let Some(body) = json {
            req = req.json(body);
        }
        Ok((generation, http::send(req).await?))
    }

    /// Read the stored credential once (it wins over the config's); returns the in-process
    /// generation to refresh from when the access token is known to be (nearly) expired.
    async fn prepare(&self) -> Result<Option<u64>, DeliveryError> {
        let XAuth::OAuth2 { tokens, vault, .. } = &self.auth else { return Ok(None) };
        let mut t = tokens.lock().await;
        if !t.loaded
            && let Some((channel, vault)) = vault
        {
            if let Some(l) = vault.load(channel).await? {
                adopt(&mut t, &l);
            }
            t.loaded = true;
        }
        Ok(t.expires_at.filter(|e| *e < now_ms() + EXPIRY_MARGIN_MS).map(|_| t.generation))
    }

    /// The account id the stored credential names, if any.
    pub async fn stored_account(&self) -> Option<String> {
        let _ = self.prepare().await;
        match &self.auth {
            XAuth::OAuth2 { tokens, .. } => tokens.lock().await.account.clone(),
            XAuth::OAuth1(_) => None,
        }
    }

    /// Refresh the OAuth 2.0 token unless another task already did since `seen`.
    /// Returns false when no refresh is possible (no refresh token or client id).
    async fn refresh(&self, seen: u64) -> Result<bool, DeliveryError> {
        let XAuth::OAuth2 { tokens, app, vault } = &self.auth else { return Ok(false) };
        let mut t = tokens.lock().await;
        if t.generation != seen {
            return Ok(true);
        }
        if app.client_id.is_none() || (t.refresh.is_none() && t.stored.is_none()) {
            return Ok(false);
        }
        let mut current = Secrets::default();
        if let Some(a) = &t.access {
            current.set("access_token", a);
        }
        if let Some(r) = &t.refresh {
            current.set("refresh_token", r);
        }
        let Some((channel, vault)) = vault else {
            // No store: the rotated token lives in memory only (tests of the adapter alone).
            let Some(refresh) = t.refresh.clone() else { return Ok(false) };
            let res = token_request(&self.api_base, self.timeout, app, &[("grant_type", "refresh_token"), ("refresh_token", refresh.expose())]).await;
            return match renewal_from(res, current).await {
                Renewal::Renewed { secrets, expires_at, .. } => {
                    t.access = secrets.get("access_token");
                    t.refresh = secrets.get("refresh_token");
                    t.expires_at = expires_at;
                    t.generation += 1;
                    Ok(true)
                }
                Renewal::Refused(why) => Err(crate::credentials::needs_auth("x", &why)),
                Renewal::Failed { error, .. } => Err(error),
            };
        };
        let seed = t.stored.is_none().then(|| {
            let w = CredentialWrite { channel_type: "x".into(), source: "config".into(), obtained_at: now_ms(), ..Default::default() };
            (w, current.clone())
        });
        let (api_base, timeout) = (self.api_base.clone(), self.timeout);
        let loaded = vault
            .refresh(channel, t.stored, seed, |cur, _interrupted| async move {
                let Some(refresh) = cur.secrets.get("refresh_token") else {
                    return Renewal::Refused("no refresh token is stored".into());
                };
                let res = token_request(&api_base, timeout, app, &[("grant_type", "refresh_token"), ("refresh_token", refresh.expose())]).await;
                renewal_from(res, cur.secrets.clone()).await
            })
            .await?;
        adopt(&mut t, &loaded);
        t.generation += 1;
        tracing::info!(generation = t.generation, stored = loaded.row.generation, "X access token renewed.");
        Ok(true)
    }
}

/// Use a stored credential.
fn adopt(t: &mut OAuth2Tokens, l: &Loaded) {
    if let Some(a) = l.secrets.get("access_token") {
        t.access = Some(a);
    }
    t.refresh = l.secrets.get("refresh_token");
    t.stored = Some(l.row.generation);
    t.expires_at = l.row.expires_at;
    t.account = l.row.account.clone();
}
