//! Threads Graph API calls and the classification of Graph error bodies.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::channel::error::{DeliveryError, Kind};
use crate::channel::http;
use crate::config::SecretString;

/// The error Threads gives for more than five unique links (CHANNELS.md §4, since 2025-12-22).
pub(super) const LINK_LIMIT_CODE: &str = "THREADS_API__LINK_LIMIT_EXCEEDED";

/// A container's status as `GET /{container}?fields=status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    InProgress,
    Finished,
    Published,
    Expired,
    Error(String),
}

/// One entry of `GET /{user}/threads` or `/replies`.
#[derive(Debug, Deserialize)]
pub(super) struct Media {
    pub id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub replied_to: Option<IdOnly>,
}

#[derive(Debug, Deserialize)]
pub(super) struct IdOnly {
    pub id: String,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Media>,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    is_transient: Option<bool>,
    #[serde(default)]
    error_user_msg: Option<String>,
}

/// Classify a non-success Graph answer.
///
/// `is_transient` → retry; code 190 → re-authorise; `24/4279009` (container not propagated
/// yet) → retry; Graph's throttling codes 4/17/32/613 → rate limited; the link-limit error →
/// permanent; anything else by HTTP status (Graph answers most errors with 400 = permanent).
pub(super) fn classify(status: u16, headers: &HeaderMap, body: &str) -> DeliveryError {
    let Ok(GraphErrorBody { error: e }) = serde_json::from_str::<GraphErrorBody>(body) else {
        return http::error_from_response(status, headers, body);
    };
    let detail = match (e.code, e.error_subcode) {
        (Some(c), Some(s)) => format!("threads: {} (code {c}/{s})", e.message),
        (Some(c), None) => format!("threads: {} (code {c})", e.message),
        _ => format!("threads: {}", e.message),
    };
    let detail = match &e.error_user_msg {
        Some(u) if !u.is_empty() && u != &e.message => format!("{detail}: {u}"),
        _ => detail,
    };
    let text = format!("{} {}", e.message, e.error_user_msg.as_deref().unwrap_or(""));
    let kind = if text.contains(LINK_LIMIT_CODE) {
        Kind::Permanent
    } else if e.is_transient == Some(true) {
        Kind::Retryable
    } else if e.code == Some(190) {
        Kind::Auth
    } else if e.code == Some(24) && e.error_subcode == Some(4279009) {
        Kind::Retryable
    } else if matches!(e.code, Some(4 | 17 | 32 | 613)) {
        Kind::RateLimited
    } else {
        http::classify_status(status)
    };
    DeliveryError::new(kind, detail).with_status(status).with_retry_after(http::retry_after(headers))
}

/// True for the "container not propagated yet" race, worth a short in-process wait.
pub(super) fn is_not_ready(err: &DeliveryError) -> bool {
    err.message().contains("(code 24/4279009)")
}

/// Reads and container creation have no visible effect, so a lost answer is safe to retry.
pub(super) fn harmless(err: DeliveryError) -> DeliveryError {
    if err.kind() == Kind::UnknownOutcome {
        let e = DeliveryError::retryable(err.message().to_string());
        match err.status() {
            Some(s) => e.with_status(s),
            None => e,
        }
    } else {
        err
    }
}

/// The HTTP half of the adapter.
pub(super) struct Client {
    base: String,
    user: String,
    token: super::auth::TokenSource,
    timeout: Duration,
}

impl Client {
    pub(super) fn new(api_base: &str, user: &str, token: SecretString, timeout: Duration) -> Self {
        Self::with_source(api_base, user, super::auth::TokenSource::fixed(token), timeout)
    }

    /// A client whose token comes from `token` (the credential store, renewed when due).
    pub(super) fn with_source(api_base: &str, user: &str, token: super::auth::TokenSource, timeout: Duration) -> Self {
        Self { base: format!("{}/v1.0", api_base.trim_end_matches('/')), user: user.to_string(), token, timeout }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, DeliveryError> {
        let resp = req.timeout(self.timeout).send().await.map_err(|e| http::error_from_reqwest(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| http::error_from_reqwest(&e))?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &headers, &body));
        }
        serde_json::from_str(&body)
            .map_err(|e| DeliveryError::unknown_outcome(format!("threads: unreadable answer ({e}): {body}")).with_status(status))
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, DeliveryError> {
        let token = self.token.token().await?;
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("access_token", token.expose()));
        self.send(http::client().get(format!("{}/{path}", self.base)).query(&q)).await.map_err(harmless)
    }

    async fn post(&self, edge: &str, form: &[(&str, &str)]) -> Result<Value, DeliveryError> {
        let token = self.token.token().await?;
        let mut f: Vec<(&str, &str)> = form.to_vec();
        f.push(("access_token", token.expose()));
        self.send(http::client().post(format!("{}/{}/{edge}", self.base, self.user)).form(&f)).await
    }

    /// `POST /{user}/threads` → container id. Safe to repeat: containers are invisible until published.
    pub(super) async fn create_container(&self, text: &str, reply_to: Option<&str>) -> Result<String, DeliveryError> {
        let mut form = vec![("media_type", "TEXT"), ("text", text)];
        if let Some(r) = reply_to {
            form.push(("reply_to_id", r));
        }
        let v = self.post("threads", &form).await.map_err(harmless)?;
        id_of(&v).ok_or_else(|| DeliveryError::retryable(format!("threads: container answer without an id: {v}")))
    }

    /// `POST /{user}/threads_publish` → media id.
    pub(super) async fn publish(&self, container: &str) -> Result<String, DeliveryError> {
        let v = self.post("threads_publish", &[("creation_id", container)]).await?;
        id_of(&v).ok_or_else(|| DeliveryError::unknown_outcome(format!("threads: publish answer without an id: {v}")))
    }

    /// `GET /{container}?fields=status,error_message`.
    pub(super) async fn status(&self, container: &str) -> Result<Status, DeliveryError> {
        let v = self.get(container, &[("fields", "id,status,error_message")]).await?;
        let msg = v["error_message"].as_str().unwrap_or("UNKNOWN").to_string();
        Ok(match v["status"].as_str().unwrap_or("") {
            "IN_PROGRESS" => Status::InProgress,
            "FINISHED" => Status::Finished,
            "PUBLISHED" => Status::Published,
            "EXPIRED" => Status::Expired,
            "ERROR" => Status::Error(msg),
            other => return Err(DeliveryError::retryable(format!("threads: unexpected container status {other:?}"))),
        })
    }

    /// The account's recent posts (`threads`) or replies (`replies`), newest first.
    pub(super) async fn recent(&self, edge: &str) -> Result<Vec<Media>, DeliveryError> {
        let v = self
            .get(&format!("{}/{edge}", self.user), &[("fields", "id,text,permalink,timestamp,replied_to"), ("limit", "50")])
            .await?;
        let page: Page = serde_json::from_value(v).map_err(|e| DeliveryError::retryable(format!("threads: unreadable list: {e}")))?;
        Ok(page.data)
    }

    /// `GET /{media}?fields=permalink`.
    pub(super) async fn permalink(&self, media: &str) -> Result<Option<String>, DeliveryError> {
        let v = self.get(media, &[("fields", "id,permalink")]).await?;
        Ok(v["permalink"].as_str().map(str::to_string))
    }

    /// `GET /{user}?fields=id,username`: the token works and names the account.
    pub(super) async fn me(&self) -> Result<Value, DeliveryError> {
        self.get(&self.user, &[("fields", "id,username")]).await
    }
}

fn id_of(v: &Value) -> Option<String> {
    match &v["id"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
