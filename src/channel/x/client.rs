//! The X API v2 client: request signing (OAuth 2.0 bearer or OAuth 1.0a) and token refresh.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::oauth1;
use crate::channel::{DeliveryError, http};
use crate::config::SecretString;

/// An answer from X, any status (the shared helper's, body bounded).
pub(crate) type XResponse = http::Answer;

/// OAuth 2.0 user tokens, refreshed in memory only (never written to the checkpoint or disk).
pub(crate) struct OAuth2Tokens {
    access: SecretString,
    refresh: Option<SecretString>,
    /// Bumped on each refresh, so concurrent 401s refresh once.
    generation: u64,
}

/// How requests are authorised.
pub(crate) enum XAuth {
    /// Bearer user token, refreshable with `client_id` + refresh token.
    OAuth2 { tokens: tokio::sync::Mutex<OAuth2Tokens>, client_id: Option<String> },
    /// HMAC-SHA1 signed user context.
    OAuth1(oauth1::Keys),
}

impl XAuth {
    /// OAuth 2.0 with an optional refresh token.
    pub fn oauth2(access: SecretString, refresh: Option<SecretString>, client_id: Option<String>) -> Self {
        XAuth::OAuth2 {
            tokens: tokio::sync::Mutex::new(OAuth2Tokens { access, refresh, generation: 0 }),
            client_id,
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
            XAuth::OAuth2 { tokens, .. } => {
                let t = tokens.lock().await;
                req = req.bearer_auth(t.access.expose());
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

    /// Refresh the OAuth 2.0 token unless another task already did since `seen`.
    /// Returns false when no refresh is possible (no refresh token or client id).
    async fn refresh(&self, seen: u64) -> Result<bool, DeliveryError> {
        let XAuth::OAuth2 { tokens, client_id } = &self.auth else { return Ok(false) };
        let mut t = tokens.lock().await;
        if t.generation != seen {
            return Ok(true);
        }
        let (Some(refresh), Some(client_id)) = (t.refresh.clone(), client_id.clone()) else {
            return Ok(false);
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose()),
            ("client_id", client_id.as_str()),
        ];
        let req = http::client().post(format!("{}/2/oauth2/token", self.api_base)).timeout(self.timeout).form(&form);
        let res = http::send(req).await.map_err(|e| {
            // Nothing is posted by a refresh: any failure to read the answer is a plain retry.
            DeliveryError::retryable(format!("X token refresh failed: {}", e.message()))
        })?;
        let (status, body) = (res.status, res.body);
        if !(200..300).contains(&status) {
            let err = http::error_from_response(status, &HeaderMap::new(), &body);
            return Err(if status == 400 || status == 401 {
                DeliveryError::auth(format!(
                    "X refused the refresh token ({status}); re-authorise the app and update the access and refresh tokens"
                ))
                .with_status(status)
            } else {
                err
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&body)
            .map_err(|e| DeliveryError::retryable(format!("X token refresh answer unreadable: {e}")))?;
        t.access = SecretString::new(answer.access_token);
        if let Some(r) = answer.refresh_token {
            // X rotates refresh tokens: the old one is now spent.
            t.refresh = Some(SecretString::new(r));
        }
        t.generation += 1;
        tracing::info!(generation = t.generation, "X access token refreshed.");
        Ok(true)
    }
}
