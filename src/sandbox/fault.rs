//! Fault plans for the fakes: scripted answers that stand in for a misbehaving network.
//!
//! A plan is a queue of rules. Each request a fake receives takes the first rule whose route
//! matches (and which has uses left); with no rule, the fake answers normally.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// What to do instead of (or besides) answering normally.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status, body and headers, without processing the request.
    Status {
        /// HTTP status.
        code: u16,
        /// Body (JSON text, usually in the network's error shape).
        body: String,
        /// Extra headers, e.g. `retry-after`.
        headers: Vec<(String, String)>,
    },
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Close the connection without answering, without processing the request.
    Drop,
    /// Process and keep the request (the post exists), then close without answering:
    /// the client sees a dropped connection or a timeout after the write happened.
    AcceptThenDrop,
    /// Process the request (a token endpoint rotates its tokens), then hold the answer this
    /// long before sending it: a test kills the client in between, as a crash after the network
    /// acted and before the client could record it.
    AcceptThenStall(Duration),
}

/// One rule: a route matcher, a fault and how many times it applies.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Substring of `"METHOD /path"`, e.g. `"POST /2/tweets"`; empty matches all.
    pub route: String,
    /// The fault.
    pub fault: Fault,
    /// Uses left.
    pub times: usize,
}

/// A fake's fault plan.
#[derive(Debug, Default)]
pub struct FaultPlan(Mutex<VecDeque<Rule>>);

impl FaultPlan {
    /// Add a rule at the end.
    pub fn push(&self, route: &str, fault: Fault, times: usize) {
        self.0.lock().expect("fault plan lock").push_back(Rule { route: route.into(), fault, times });
    }
    /// Take the fault for this request, if any rule matches.
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let key = format!("{method} {path}");
        let mut q = self.0.lock().expect("fault plan lock");
        let idx = q.iter().position(|r| r.times > 0 && key.contains(&r.route))?;
        let rule = &mut q[idx];
        rule.times -= 1;
        let f = rule.fault.clone();
        if rule.times == 0 {
            q.remove(idx);
        }
        Some(f)
    }
    /// Drop every rule.
    pub fn clear(&self) {
        self.0.lock().expect("fault plan lock").clear();
    }
}

/// A response that makes hyper close the connection without answering: the handler panics,
/// and the server's connection task is torn down. Used for `Drop` and `AcceptThenDrop`.
pub fn drop_connection() -> ! {
    // Deliberate: the only way an axum handler can sever the socket mid-request. With axum 0.8
    // `axum::serve` runs each connection in its own tokio task, so the panic ends that task
    // and hyper closes the socket without a response (checked by the adapter tests).
    std::panic::panic_any(DropConnection)
}

/// The panic payload of [`drop_connection`], recognised (and kept quiet) by the panic hook
/// that [`serve`] installs.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Keep deliberate connection drops out of stderr; every other panic reports as before.
fn quiet_drop_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<DropConnection>().is_none() {
                previous(info);
            }
        }));
    });
}

/// axum middleware that applies a [`FaultPlan`] in front of a fake's handlers. Wrap a fake's
/// router with [`with_faults`] rather than calling this directly.
///
/// `AcceptThenDrop` runs the handler (so the fake keeps the post) and then drops the
/// connection; `Drop` drops it before the handler runs.
pub async fn fault_middleware(
    axum::extract::State(plan): axum::extract::State<std::sync::Arc<FaultPlan>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    match plan.take(&method, &path) {
        None => next.run(req).await,
        Some(Fault::Status { code, body, headers }) => status_response(code, body, headers),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(Fault::Drop) => drop_connection(),
        Some(Fault::AcceptThenDrop) => {
            // Let the handler commit the write, then sever the socket before answering.
            let _accepted = next.run(req).await;
            drop_connection()
        }
        Some(Fault::AcceptThenStall(d)) => {
            let answer = next.run(req).await;
            tokio::time::sleep(d).await;
            answer
        }
    }
}

/// The answer for a [`Fault::Status`]: the code, a JSON body and the extra headers.
pub fn status_response(code: u16, body: String, headers: Vec<(String, String)>) -> axum::response::Response {
    let mut res = axum::response::Response::new(axum::body::Body::from(body));
    *res.status_mut() = axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("application/json"));
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::try_from(k.as_str()), axum::http::HeaderValue::try_from(v.as_str())) {
            res.headers_mut().insert(k, v);
        }
    }
    res
}

/// Put a fault plan in front of every route of a fake.
pub fn with_faults(router: axum::Router, plan: std::sync::Arc<FaultPlan>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(plan, fault_middleware))
}

/// A running fake server: its base URL, and a task aborted when this is dropped.
#[derive(Debug)]
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve a router on `127.0.0.1:0` in the background.
pub async fn serve(router: axum::Router) -> std::io::Result<Served> {
    quiet_drop_panics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(error = %error, "Sandbox fake stopped.");
        }
    });
    Ok(Served { base_url: format!("http://{addr}"), task })
}
