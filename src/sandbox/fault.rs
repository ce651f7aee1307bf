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
    // Deliberate: the only way an axum handler can sever the socket mid-request.
    panic!("sandbox fault: dropping the connection")
}
