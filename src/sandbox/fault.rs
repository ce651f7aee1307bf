//! Fault plans for the fakes: scripted answers that stand in for a misbehaving network.
//!
//! A plan is a queue of rules. Each request a fake receives takes the first rule whose route
//! matches (and which has uses left); with no rule, the fake answers normally.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::journal::{self, Journal};

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
    /// Answer with this status and a chunked body (no `content-length`) of `bytes` bytes,
    /// without processing the request: a broken or hostile server's endless reply.
    Oversized {
        /// HTTP status.
        code: u16,
        /// Body length, sent in 64 KiB chunks.
        bytes: usize,
    },
    /// Close the connection without answering, without processing the request.
    Drop,
    /// Process and keep the request (the post exists), then close without answering:
    /// the client sees a dropped connection or a timeout after the write happened.
    AcceptThenDrop,
    /// Process the request (a token endpoint rotates its tokens), then hold the answer this
    /// long before sending it: a test kills the client in between, as a crash after the network
    /// acted and before the client could record it.
    AcceptThenStall(Duration),
    /// Answer nothing for this long (past the client's timeout), then close without answering
    /// and without processing the request.
    Hang(Duration),
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

/// A fake's fault plan: scripted rules first, then (for `sandbox serve`) faults drawn at a rate,
/// and the fake's [`Journal`] when it keeps one.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Mutex<VecDeque<Rule>>,
    random: Mutex<Option<RandomFaults>>,
    journal: std::sync::OnceLock<std::sync::Arc<Journal>>,
}

/// Faults drawn at random, each with its own rate.
#[derive(Debug)]
struct RandomFaults {
    /// `(cumulative probability, fault)`, ascending.
    table: Vec<(f64, Fault)>,
    rng: rand::rngs::StdRng,
}

impl FaultPlan {
    /// Add a rule at the end.
    pub fn push(&self, route: &str, fault: Fault, times: usize) {
        self.rules.lock().expect("fault plan lock").push_back(Rule { route: route.into(), fault, times });
    }
    /// Take the fault for this request: a matching rule, else one drawn from the rates.
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        if let Some(f) = self.take_rule(method, path) {
            return Some(f);
        }
        let mut random = self.random.lock().expect("fault plan lock");
        let r = random.as_mut()?;
        let x: f64 = rand::Rng::r#gen(&mut r.rng);
        r.table.iter().find(|(p, _)| x < *p).map(|(_, f)| f.clone())
    }
    fn take_rule(&self, method: &str, path: &str) -> Option<Fault> {
        let key = format!("{method} {path}");
        let mut q = self.rules.lock().expect("fault plan lock");
        let idx = q.iter().position(|r| r.times > 0 && key.contains(&r.route))?;
        let rule = &mut q[idx];
        rule.times -= 1;
        let f = rule.fault.clone();
        if rule.times == 0 {
            q.remove(idx);
        }
        Some(f)
    }
    /// Drop every rule (and the random faults).
    pub fn clear(&self) {
        self.rules.lock().expect("fault plan lock").clear();
        *self.random.lock().expect("fault plan lock") = None;
    }
    /// Draw faults at these rates from now on (after the scripted rules), from `seed`.
    pub fn set_rates(&self, rates: &[(f64, Fault)], seed: u64) {
        let mut table = Vec::new();
        let mut acc = 0.0;
        for (p, f) in rates {
            acc += p;
            table.push((acc, f.clone()));
        }
        *self.random.lock().expect("fault plan lock") = Some(RandomFaults { table, rng: rand::SeedableRng::seed_from_u64(seed) });
    }
    /// Keep a journal of every request the fake handles (set once, before the first request).
    pub fn set_journal(&self, journal: std::sync::Arc<Journal>) {
        let _ = self.journal.set(journal);
    }
    /// The journal, if the fake keeps one.
    pub fn journal(&self) -> Option<&std::sync::Arc<Journal>> {
        self.journal.get()
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
    let fault = plan.take(req.method().as_str(), req.uri().path());
    apply(&plan, fault, req, next, || ()).await
}

/// Answer `req` as `fault` says (normally when `None`), journaling it when the plan keeps a
/// journal. `on_drop` runs just before a connection is dropped (a fake counting its answers).
pub async fn apply(
    plan: &FaultPlan,
    fault: Option<Fault>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
    on_drop: impl FnOnce(),
) -> axum::response::Response {
    let Some(journal) = plan.journal().cloned() else {
        return match fault {
            None => next.run(req).await,
            Some(Fault::Status { code, body, headers }) => status_response(code, body, headers),
            Some(Fault::Oversized { code, bytes }) => oversized_response(code, bytes),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                next.run(req).await
            }
            Some(Fault::Drop) => {
                on_drop();
                drop_connection()
            }
            Some(Fault::Hang(d)) => {
                tokio::time::sleep(d).await;
                on_drop();
                drop_connection()
            }
            Some(Fault::AcceptThenDrop) => {
                // Let the handler commit the write, then sever the socket before answering.
                let _accepted = next.run(req).await;
                on_drop();
                drop_connection()
            }
            Some(Fault::AcceptThenStall(d)) => {
                let answer = next.run(req).await;
                tokio::time::sleep(d).await;
                answer
            }
        };
    };
    let arrived = journal::now();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut entry = serde_json::json!({
        "arrived": arrived,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": kept_headers(&parts.headers),
        "request": journal::body_value(&bytes),
        "fault": fault.as_ref().map(fault_name),
    });
    // A read changes nothing: it is kept, but nobody waits for the disk.
    let sync = parts.method != axum::http::Method::GET;
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    let run = |req| async {
        let res = next.run(req).await;
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        (parts, bytes)
    };
    let handled = match fault {
        Some(Fault::Status { code, body, headers }) => {
            entry["status"] = code.into();
            return answer_after(&journal, entry, sync, status_response(code, body, headers)).await;
        }
        Some(Fault::Oversized { code, bytes }) => {
            entry["status"] = code.into();
            return answer_after(&journal, entry, sync, oversized_response(code, bytes)).await;
        }
        Some(Fault::Drop) => {
            entry["status"] = 0.into();
            let _ = journal.append(entry, sync).await;
            on_drop();
            drop_connection()
        }
        Some(Fault::Hang(d)) => {
            entry["status"] = 0.into();
            let _ = journal.append(entry, sync).await;
            tokio::time::sleep(d).await;
            on_drop();
            drop_connection()
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            run(req).await
        }
        Some(Fault::AcceptThenStall(d)) => {
            let answer = run(req).await;
            tokio::time::sleep(d).await;
            answer
        }
        None | Some(Fault::AcceptThenDrop) => run(req).await,
    };
    let (res_parts, res_bytes) = handled;
    entry["status"] = res_parts.status.as_u16().into();
    entry["response"] = journal::body_value(&res_bytes);
    entry["response_headers"] = kept_headers(&res_parts.headers);
    entry["answered"] = journal::now().into();
    let res = axum::response::Response::from_parts(res_parts, axum::body::Body::from(res_bytes));
    if matches!(fault, Some(Fault::AcceptThenDrop)) {
        let _ = journal.append(entry, sync).await;
        on_drop();
        drop_connection()
    }
    answer_after(&journal, entry, sync, res).await
}

/// Journal `entry` (on disk first when `sync`), then answer. A journal that cannot be written
/// turns the answer into a 500: the fake must not claim what it could not keep.
async fn answer_after(journal: &std::sync::Arc<Journal>, entry: serde_json::Value, sync: bool, res: axum::response::Response) -> axum::response::Response {
    match journal.append(entry, sync).await {
        Ok(()) => res,
        Err(error) => {
            tracing::error!(error = %error, path = %journal.path().display(), "Sandbox journal write failed.");
            status_response(500, r#"{"error":"sandbox journal write failed"}"#.into(), Vec::new())
        }
    }
}

/// Headers worth keeping in a journal: ids and keys, never credentials.
fn kept_headers(h: &axum::http::HeaderMap) -> serde_json::Value {
    const KEEP: &[&str] = &["idempotency-key", "x-restli-id", "location", "retry-after", "content-type", "x-herald-delivery"];
    let mut out = serde_json::Map::new();
    for (k, v) in h {
        if KEEP.contains(&k.as_str()) {
            out.insert(k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned().into());
        }
    }
    serde_json::Value::Object(out)
}

/// How a fault is named in a journal and in a fault plan spec.
pub fn fault_name(f: &Fault) -> String {
    match f {
        Fault::Status { code, .. } => code.to_string(),
        Fault::Delay(_) => "slow".into(),
        Fault::Oversized { .. } => "oversized".into(),
        Fault::Drop => "drop".into(),
        Fault::Hang(_) => "hang".into(),
        Fault::AcceptThenDrop => "reset".into(),
        Fault::AcceptThenStall(_) => "stall".into(),
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

/// The answer for a [`Fault::Oversized`]: `bytes` bytes of `x`, streamed in 64 KiB chunks so
/// the response is chunked and carries no `content-length`.
pub fn oversized_response(code: u16, bytes: usize) -> axum::response::Response {
    const CHUNK: usize = 64 * 1024;
    let stream = futures::stream::unfold(bytes, |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK);
        Some((Ok::<_, std::convert::Infallible>(bytes::Bytes::from(vec![b'x'; n])), left - n))
    });
    let mut res = axum::response::Response::new(axum::body::Body::from_stream(stream));
    *res.status_mut() = axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::OK);
    res.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("application/json"));
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

tokio::task_local! {
    /// The address the next fake started in this scope binds (see [`bind_in`]).
    static BIND: std::net::SocketAddr;
}

/// Run `f` (which starts one fake) so that the fake listens on `addr` instead of
/// `127.0.0.1:0`: `herald sandbox serve --listen` gives each fake a known port this way,
/// without a second way of starting each fake.
pub async fn bind_in<F: std::future::Future>(addr: std::net::SocketAddr, f: F) -> F::Output {
    BIND.scope(addr, f).await
}

/// The address a fake starting now should listen on: the one [`bind_in`] set, else
/// `127.0.0.1:0`.
pub fn bind_addr() -> std::net::SocketAddr {
    BIND.try_with(|a| *a).unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Serve a router on [`bind_addr`] (`127.0.0.1:0` unless set) in the background.
pub async fn serve(router: axum::Router) -> std::io::Result<Served> {
    quiet_drop_panics();
    let listener = tokio::net::TcpListener::bind(bind_addr()).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(error = %error, "Sandbox fake stopped.");
        }
    });
    Ok(Served { base_url: format!("http://{addr}"), task })
}

/// A fault plan for `herald sandbox serve --fault-plan`: faults drawn at a rate per kind.
///
/// The text is a list of `KIND=RATE` items (commas, spaces or lines; `#` starts a comment):
/// `KIND` is an HTTP status (`500`, `503`, `429`…), `hang` (no answer past the client's
/// timeout, then the connection closes; nothing is processed), `reset` (the request is
/// processed and kept, then the connection closes: accept-then-reset), `drop` (closed at
/// once, nothing processed) or `slow` (processed and answered late); `RATE` is a fraction
/// (`0.06`) or a percentage (`6%`). `all=RATE` spreads a rate evenly over `500`, `503`, `429`,
/// `hang` and `reset`. Settings: `retry_after=SECS` (the `Retry-After` of 429 and 503,
/// default 1), `hang_secs=SECS` (default 35, past Herald's 30 s default timeout),
/// `slow_secs=SECS` (default 35) and `seed=N`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// `(rate, fault)` per kind.
    pub rates: Vec<(f64, Fault)>,
    /// The random seed (each fake draws from `seed + its index`).
    pub seed: u64,
}

impl FaultSpec {
    /// Parse the text form described on [`FaultSpec`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mut retry_after, mut hang, mut slow, mut seed) = (1u64, 35u64, 35u64, None);
        let mut kinds: Vec<(String, f64)> = Vec::new();
        let items = text.lines().map(|l| l.split('#').next().unwrap_or_default()).flat_map(|l| l.split([',', ' ', '\t'])).filter(|i| !i.trim().is_empty());
        for item in items {
            let (k, v) = item.trim().split_once('=').ok_or_else(|| format!("`{item}`: expected KIND=RATE or SETTING=VALUE, e.g. `503=5%` or `hang_secs=40`"))?;
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            let secs = || v.parse::<u64>().ok().filter(|s| *s <= 3600).ok_or_else(|| format!("`{item}`: {k} takes whole seconds from 0 to 3600"));
            match k.as_str() {
                "retry_after" => retry_after = secs()?,
                "hang_secs" => hang = secs()?,
                "slow_secs" => slow = secs()?,
                "seed" => seed = Some(v.parse::<u64>().map_err(|_| format!("`{item}`: seed takes a whole number"))?),
                _ => {
                    let rate = match v.strip_suffix('%') {
                        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                        None => v.parse::<f64>(),
                    }
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("`{item}`: the rate must be a fraction from 0 to 1 or a percentage, e.g. `0.06` or `6%`"))?;
                    if k == "all" {
                        for kind in ["500", "503", "429", "hang", "reset"] {
                            kinds.push((kind.into(), rate / 5.0));
                        }
                    } else {
                        kinds.push((k, rate));
                    }
                }
            }
        }
        let mut rates = Vec::new();
        for (k, rate) in kinds {
            let fault = match k.as_str() {
                "hang" => Fault::Hang(Duration::from_secs(hang)),
                "reset" => Fault::AcceptThenDrop,
                "drop" => Fault::Drop,
                "slow" => Fault::Delay(Duration::from_secs(slow)),
                code => {
                    let code: u16 = code.parse().ok().filter(|c| (400..=599).contains(c)).ok_or_else(|| {
                        format!("`{k}`: unknown fault; use an HTTP status from 400 to 599, hang, reset, drop, slow or all")
                    })?;
                    let headers = if code == 429 || code == 503 { vec![("retry-after".to_string(), retry_after.to_string())] } else { Vec::new() };
                    Fault::Status { code, body: format!(r#"{{"error":"sandbox fault: {code}"}}"#), headers }
                }
            };
            rates.push((rate, fault));
        }
        let total: f64 = rates.iter().map(|(r, _)| r).sum();
        if total > 1.0 + 1e-9 {
            return Err(format!("the rates add up to {:.0}%; they must add up to 100% or less", total * 100.0));
        }
        Ok(Self { rates, seed: seed.unwrap_or_else(rand::random) })
    }
}

#[cfg(test)]
mod spec_tests {
    use super::*;

    #[test]
    fn a_spec_names_rates_settings_and_refuses_nonsense() {
        let s = FaultSpec::parse("500=6%, 429=0.06 # throttled\nhang=5% reset=1% retry_after=2 hang_secs=3 seed=7").unwrap();
        assert_eq!(s.seed, 7);
        assert_eq!(s.rates.len(), 4);
        assert!((s.rates[0].0 - 0.06).abs() < 1e-12);
        assert_eq!(s.rates[1].1, Fault::Status { code: 429, body: r#"{"error":"sandbox fault: 429"}"#.into(), headers: vec![("retry-after".into(), "2".into())] });
        assert_eq!(s.rates[2].1, Fault::Hang(Duration::from_secs(3)));
        assert_eq!(s.rates[3].1, Fault::AcceptThenDrop);
        assert_eq!(FaultSpec::parse("all=30%").unwrap().rates.len(), 5);
        for bad in ["500", "600=1%", "500=150%", "500=0.6 503=0.6", "hang_secs=-1", "teapot=1%"] {
            assert!(FaultSpec::parse(bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn rates_are_drawn_after_scripted_rules_at_about_the_rate() {
        let plan = FaultPlan::default();
        plan.push("POST /a", Fault::Drop, 1);
        plan.set_rates(&FaultSpec::parse("503=30%").unwrap().rates, 1);
        assert_eq!(plan.take("POST", "/a"), Some(Fault::Drop));
        let faulted = (0..10_000).filter(|_| plan.take("POST", "/a").is_some()).count();
        assert!((2_700..3_300).contains(&faulted), "{faulted} of 10,000 at 30%");
    }
}
