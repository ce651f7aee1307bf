//! The read-only `/status` page: the issue × channel matrix and the recent attempts, server-rendered.

use serde::Serialize;

/// One delivery row.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// Issue slug.
    pub issue: String,
    /// Channel name.
    pub channel: String,
    /// Revision.
    pub revision: i64,
    /// State.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// Remote URL.
    pub remote_url: Option<String>,
    /// Last error, or why it waits.
    pub last_error: Option<String>,
    /// Next attempt (RFC 3339).
    pub next_attempt_at: Option<String>,
}

/// One attempt row.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    /// When it started (RFC 3339).
    pub at: String,
    /// Issue slug.
    pub issue: String,
    /// Channel name.
    pub channel: String,
    /// Attempt number.
    pub n: i64,
    /// Outcome.
    pub outcome: String,
    /// HTTP or SMTP status.
    pub status: Option<i64>,
    /// Error excerpt.
    pub error: Option<String>,
}

/// A skipped schedule fire (outside its catch-up window).
#[derive(Debug, Clone, Serialize)]
pub struct FireRow {
    /// Schedule name.
    pub schedule: String,
    /// The fire time (RFC 3339).
    pub fire_at: String,
    /// fired, caught_up or skipped.
    pub result: String,
}

/// Everything on the page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Deliveries, newest issue first.
    pub deliveries: Vec<DeliveryRow>,
    /// Recent attempts, newest first.
    pub attempts: Vec<AttemptRow>,
    /// Recent schedule fires.
    pub fires: Vec<FireRow>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Render the page. Everything is escaped; links only for http(s) remote URLs.
pub fn render(s: &Snapshot) -> String {
    let mut h = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"15\"><title>Herald status</title>\
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}table{border-collapse:collapse;margin-bottom:2em}\
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;font-size:14px}th{background:#f6f8fa}\
.sent{color:#1a7f37}.failed{color:#cf222e}.unconfirmed,.retrying{color:#9a6700}</style></head><body><h1>Herald status</h1>",
    );
    h.push_str("<h2>Deliveries</h2><table><tr><th>issue</th><th>channel</th><th>rev</th><th>state</th><th>attempts</th><th>remote</th><th>last error / reason</th><th>next attempt</th></tr>");
    for d in &s.deliveries {
        let remote = match &d.remote_url {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => format!("<a href=\"{0}\">{0}</a>", esc(u)),
            Some(u) => esc(u),
            None => String::new(),
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.issue),
            esc(&d.channel),
            d.revision,
            esc(&d.state),
            esc(&d.state),
            d.attempts,
            remote,
            esc(d.last_error.as_deref().unwrap_or("")),
            esc(d.next_attempt_at.as_deref().unwrap_or(""))
        ));
    }
    h.push_str("</table><h2>Recent attempts</h2><table><tr><th>at</th><th>issue</th><th>channel</th><th>#</th><th>outcome</th><th>status</th><th>error</th></tr>");
    for a in &s.attempts {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.at),
            esc(&a.issue),
            esc(&a.channel),
            a.n,
            esc(&a.outcome),
            esc(&a.outcome),
            a.status.map(|s| s.to_string()).unwrap_or_default(),
            esc(a.error.as_deref().unwrap_or(""))
        ));
    }
    h.push_str("</table><h2>Schedule fires</h2><table><tr><th>schedule</th><th>fire time</th><th>result</th></tr>");
    for f in &s.fires {
        h.push_str(&format!("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&f.schedule), esc(&f.fire_at), esc(&f.result)));
    }
    h.push_str("</table></body></html>");
    h
}
