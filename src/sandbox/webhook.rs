//! The webhook fake: a receiver that behaves as Herald's webhook contract asks.
//!
//! - `POST /<any path>` with a JSON body → `200 {"id": "wh_<n>", "url": "<base>/items/<n>"}`,
//!   and the body is kept.
//! - Dedup on `Idempotency-Key`: a repeat of an accepted key → `409 {"id": <first id>}` and
//!   nothing is kept; a request without the header → `400`.
//! - With a secret set, `X-Herald-Signature: sha256=<hex>` must be the HMAC-SHA256 of the body,
//!   else `401`.
//! - A [`FaultPlan`] scripts failures (500s, 403, 429 with Retry-After, delays, drops,
//!   accept-then-drop); [`WebhookFake::set_hold_after_accept`] keeps the answer back after the
//!   body is kept, a window in which a client can be killed between the remote call and its commit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::fault::{Fault, FaultPlan};
use crate::channel::webhook::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature};

/// One accepted request.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The id the fake answered with.
    pub id: String,
    /// The `Idempotency-Key`.
    pub key: String,
    /// The path it was posted to.
    pub path: String,
    /// The JSON body.
    pub body: Value,
    /// Every header, lowercased names (for checking what was sent).
    pub headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Inner {
    accepted: Vec<Accepted>,
    by_key: HashMap<String, String>,
    /// Requests per key, including repeats answered 409 and faulted ones.
    seen: HashMap<String, usize>,
    /// Every request as "METHOD /path", in order.
    requests: Vec<String>,
    /// Answers by status, in order (what the fake itself answered; faults included).
    statuses: Vec<u16>,
    secret: Option<String>,
    hold_after_accept: Option<Duration>,
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
    base: Arc<String>,
}

/// A running webhook fake. Dropping it stops the server.
pub struct WebhookFake {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Faults to inject (route `"POST /path"`; empty matches all).
    pub faults: Arc<FaultPlan>,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookFake {
    /// Start on `127.0.0.1:0` (or where [`super::fault::bind_in`] says).
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(super::fault::bind_addr()).await
    }

    /// Start on a given loopback address (a test restarting the fake on the same port).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let faults = Arc::new(FaultPlan::default());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let state = AppState { inner: inner.clone(), base: Arc::new(base_url.clone()) };
        let app = Router::new()
            .route("/", post(receive))
            .route("/{*path}", post(receive))
            .with_state(state.clone())
            .layer(middleware::from_fn_with_state((faults.clone(), state), apply_faults));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url, faults, inner, task })
    }

    /// The URL to configure: `<base>/hook`.
    pub fn url(&self) -> String {
        format!("{}/hook", self.base_url)
    }

    /// Require this HMAC secret on every request.
    pub fn set_secret(&self, secret: &str) {
        self.inner.lock().expect("fake lock").secret = Some(secret.to_string());
    }

    /// After keeping a body, wait this long before answering.
    pub fn set_hold_after_accept(&self, d: Option<Duration>) {
        self.inner.lock().expect("fake lock").hold_after_accept = d;
    }

    /// Accepted requests, in order. Each key appears at most once.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.inner.lock().expect("fake lock").accepted.clone()
    }

    /// Requests seen per `Idempotency-Key` (repeats and faulted requests included).
    pub fn seen(&self, key: &str) -> usize {
        self.inner.lock().expect("fake lock").seen.get(key).copied().unwrap_or(0)
    }

    /// Every request as `"POST /path"`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().expect("fake lock").requests.clone()
    }

    /// Every status the fake answered, in order (a dropped connection is recorded as 0).
    pub fn statuses(&self) -> Vec<u16> {
        self.inner.lock().expect("fake lock").statuses.clone()
    }

    /// Bodies accepted more than once under one key. Always 0 while the fake dedups; a
    /// nonzero value means the fake itself is broken.
    pub fn duplicates(&self) -> usize {
        let g = self.inner.lock().expect("fake lock");
        let mut count: HashMap<&str, usize> = HashMap::new();
        for a in &g.accepted {
            *count.entry(a.key.as_str()).or_default() += 1;
        }
        count.values().filter(|&&n| n > 1).map(|n| n - 1).sum()
    }
}

impl Drop for WebhookFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn apply_faults(State((faults, st)): State<(Arc<FaultPlan>, AppState)>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().as_str().to_string(), req.uri().path().to_string());
    let key = req.headers().get(IDEMPOTENCY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    {
        let mut g = st.inner.lock().expect("fake lock");
        g.requests.push(format!("{method} {path}"));
        *g.seen.entry(key).or_default() += 1;
    }
    let record = |code: u16| st.inner.lock().expect("fake lock").statuses.push(code);
    let fault = faults.take(&method, &path);
    if let Some(Fault::Status { code, .. } | Fault::Oversized { code, .. }) = &fault {
        record(*code);
    }
    super::fault::apply(&faults, fault, req, next, || record(0)).await
}

async fn receive(State(st): State<AppState>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let answer = |st: &AppState, code: StatusCode, v: Value| {
        st.inner.lock().expect("fake lock").statuses.push(code.as_u16());
        (code, axum::Json(v)).into_response()
    };
    let Some(key) = headers.get(IDEMPOTENCY_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return answer(&st, StatusCode::BAD_REQUEST, json!({"error": "missing Idempotency-Key"}));
    };
    let secret = st.inner.lock().expect("fake lock").secret.clone();
    if let Some(secret) = secret {
        let got = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if got != signature(secret.as_bytes(), &body) {
            return answer(&st, StatusCode::UNAUTHORIZED, json!({"error": "bad signature"}));
        }
    }
    let Ok(json_body) = serde_json::from_slice::<Value>(&body) else {
        return answer(&st, StatusCode::BAD_REQUEST, json!({"error": "body is not JSON"}));
    };
    let hold = {
        let mut g = st.inner.lock().expect("fake lock");
        if let Some(id) = g.by_key.get(&key).cloned() {
            drop(g);
            return answer(&st, StatusCode::CONFLICT, json!({"id": id, "error": "duplicate Idempotency-Key"}));
        }
        let n = g.accepted.len() + 1;
        let id = format!("wh_{n}");
        g.by_key.insert(key.clone(), id.clone());
        let hdrs = headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect();
        g.accepted.push(Accepted { id, key: key.clone(), path: uri.path().to_string(), body: json_body, headers: hdrs });
        g.hold_after_accept
    };
    if let Some(d) = hold {
        tokio::time::sleep(d).await;
    }
    let id = st.inner.lock().expect("fake lock").by_key.get(&key).cloned().unwrap_or_default();
    let n = id.trim_start_matches("wh_").to_string();
    answer(&st, StatusCode::OK, json!({"id": id, "url": format!("{}/items/{n}", st.base)}))
}
