//! XRPC client for one Bluesky account: one `createSession` per process (shared by every
//! adapter for the same account and PDS), refreshed with the
//! refresh JWT on `ExpiredToken`/401, never a login per job (createSession is limited to 30
//! per 5 minutes and 300 per day per account).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::RequestBuilder;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::channel::{DeliveryError, Kind, http};
use crate::config::SecretString;

/// An XRPC answer, any status.
#[derive(Debug)]
pub(crate) struct XrpcResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl XrpcResponse {
    /// 2xx?
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The XRPC error name (`{"error": "<Name>", …}`).
    pub fn error_name(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        v.get("error")?.as_str().map(String::from)
    }
    /// Classify a non-success answer.
    pub fn to_error(&self) -> DeliveryError {
        http::error_from_response(self.status, &self.headers, &self.body)
    }
}

/// A live session, in memory only.
#[derive(Clone)]
pub(crate) struct Session {
    access: SecretString,
    refresh: SecretString,
    pub did: String,
    pub handle: String,
    generation: u64,
    /// The account's PDS, from the session's DID document.
    pub pds: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    access_jwt: String,
    refresh_jwt: String,
    handle: String,
    did: String,
    #[serde(default)]
    did_doc: Option<serde_json::Value>,
}

/// The client.
pub(crate) struct BskyClient {
    pub api_base: String,
    pub timeout: Duration,
    identifier: String,
    password: SecretString,
    session: Arc<tokio::sync::Mutex<Option<Session>>>,
    /// Where repo calls go: the account's PDS once known (from the stored credential or the
    /// session's DID document), else `api_base` (the entryway, which only proxies).
    service: Mutex<Option<String>>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// The process-wide session slot for one account on one PDS: every adapter built for it (the
/// pipeline may build more than one) shares a single login.
fn shared_slot(api_base: &str, identifier: &str) -> Slot {
    static SLOTS: OnceLock<Mutex<HashMap<(String, String), Slot>>> = OnceLock::new();
    let mut slots = SLOTS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    slots.entry((api_base.to_string(), identifier.to_ascii_lowercase())).or_default().clone()
}

/// A failure of a call that writes nothing (login, read): never an unknown outcome.
pub(crate) fn read_error(e: &reqwest::Error) -> DeliveryError {
    let err = http::error_from_reqwest(e);
    if err.kind() == Kind::UnknownOutcome { DeliveryError::retryable(err.message().to_string()) } else { err }
}

impl BskyClient {
    /// A client sharing the process-wide session of `identifier` on `api_base`.
    pub fn new(api_base: &str, timeout: Duration, identifier: String, password: SecretString) -> Self {
        let api_base = api_base.trim_end_matches('/').to_string();
        let session = shared_slot(&api_base, &identifier);
        Self { api_base, timeout, identifier, password, session, service: Mutex::new(None) }
    }

    /// Send repo calls to `pds` (as `herald connect` recorded it) from the start.
    pub fn with_pds(self, pds: Option<String>) -> Self {
        *self.service.lock().unwrap_or_else(|e| e.into_inner()) = pds.map(|p| p.trim_end_matches('/').to_string());
        self
    }

    /// `{pds}/xrpc/{nsid}`: the account's PDS once known, else `{api_base}/xrpc/{nsid}`.
    pub fn url(&self, nsid: &str) -> String {
        let service = self.service.lock().unwrap_or_else(|e| e.into_inner()).clone();
        format!("{}/xrpc/{nsid}", service.as_deref().unwrap_or(&self.api_base))
    }

    fn use_session(&self, s: &Session) {
        if let Some(p) = &s.pds {
            *self.service.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.trim_end_matches('/').to_string());
        }
    }

    /// The current session, logging in if there is none yet.
    pub async fn session(&self) -> Result<Session, DeliveryError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            self.use_session(s);
            return Ok(s.clone());
        }
        let s = self.create_session(0).await?;
        self.use_session(&s);
        *guard = Some(s.clone());
        Ok(s)
    }

    async fn create_session(&self, generation: u64) -> Result<Session, DeliveryError> {
        let body = serde_json::json!({ "identifier": self.identifier, "password": self.password.expose() });
        // A login goes to the entryway (`api_base`); the session names the PDS for the rest.
        let res = http::client()
            .post(format!("{}/xrpc/com.atproto.server.createSession", self.api_base))
            .timeout(self.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| read_error(&e))?;
        let res = Self::read(res).await?;
        if !res.is_success() {
            let err = res.to_error();
            return Err(if res.status == 401 {
                DeliveryError::auth(format!(
                    "Bluesky refused the login for {} (check the identifier and app password)",
                    self.identifier
                ))
                .with_status(401)
            } else {
                err
            });
        }
        tracing::info!(identifier = %self.identifier, "Bluesky session created.");
        Self::parse_session(&res.body, generation + 1)
    }

    fn parse_session(body: &str, generation: u64) -> Result<Session, DeliveryError> {
        let a: SessionAnswer = serde_json::from_str(body)
            .map_err(|e| DeliveryError::retryable(format!("Bluesky session answer unreadable: {e}")))?;
        Ok(Session {
            access: SecretString::new(a.access_jwt),
            refresh: SecretString::new(a.refresh_jwt),
            pds: a.did_doc.as_ref().and_then(crate::commands::connect::pds_from_did_doc),
            did: a.did,
            handle: a.handle,
            generation,
        })
    }

    /// Refresh the session unless another task already did since `seen`; falls back to a login
    /// only when the refresh JWT itself is dead.
    async fn refresh(&self, seen: u64) -> Result<(), DeliveryError> {
        let mut guard = self.session.lock().await;
        let current = match guard.as_ref() {
            Some(s) if s.generation != seen => return Ok(()),
            Some(s) => s.clone(),
            None => {
                *guard = Some(self.create_session(seen).await?);
                return Ok(());
            }
        };
        let res = http::client()
            .post(self.url("com.atproto.server.refreshSession"))
            .timeout(self.timeout)
            .bearer_auth(current.refresh.expose())
            .send()
            .await
            .map_err(|e| read_error(&e))?;
        let res = Self::read(res).await?;
        if res.is_success() {
            tracing::info!("Bluesky session refreshed.");
            *guard = Some(Self::parse_session(&res.body, seen + 1)?);
            return Ok(());
        }
        let dead = res.status == 401
            || matches!(res.error_name().as_deref(), Some("ExpiredToken" | "InvalidToken"));
        if !dead {
            return Err(res.to_error());
        }
        tracing::info!("Bluesky refresh token expired; logging in again.");
        *guard = Some(self.create_session(seen).await?);
        Ok(())
    }

    async fn read(res: reqwest::Response) -> Result<XrpcResponse, DeliveryError> {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.map_err(|e| http::error_from_reqwest(&e))?;
        Ok(XrpcResponse { status, headers, body })
    }

    /// An authenticated call. `build` gets the access token; on 401 or `400 ExpiredToken`
    /// (the server refused before doing anything) the session is refreshed and the call sent once more.
    pub async fn call<F>(&self, build: F) -> Result<XrpcResponse, DeliveryError>
    where
        F: Fn(&str) -> RequestBuilder,
    {
        let session = self.session().await?;
        let res = Self::read(build(session.access.expose()).timeout(self.timeout).send().await.map_err(|e| http::error_from_reqwest(&e))?).await?;
        let expired = res.status == 401 || (res.status == 400 && res.error_name().as_deref() == Some("ExpiredToken"));
        if !expired {
            return Ok(res);
        }
        self.refresh(session.generation).await?;
        let session = self.session().await?;
        Self::read(build(session.access.expose()).timeout(self.timeout).send().await.map_err(|e| http::error_from_reqwest(&e))?).await
    }
}
