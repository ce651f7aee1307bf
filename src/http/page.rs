//! The read-only `/status` page an operator keeps open: the issue × channel matrix, each
//! delivery's attempt timeline, a progress bar per mailing, the schedule fires and the
//! credentials' expiry. Server-rendered, CSS inline, no script and no external fetch; it
//! reloads itself with `<meta http-equiv="refresh">`. Everything shown is escaped: issue titles,
//! errors and remote replies come from outside.
//!
//! The page stays bounded however many issues the store holds: [`ISSUES_PER_PAGE`] issues per
//! page (`/status?page=N`, newest first), at most [`TIMELINE_CAP`] attempts per delivery, the
//! newest [`RECENT_ATTEMPTS`] attempts and [`FIRES_CAP`] fires.

use serde::Serialize;

use crate::credentials::view::CredentialView;

/// Issues per page of the matrix (and of `/status.json`'s deliveries).
pub const ISSUES_PER_PAGE: usize = 20;
/// Attempts shown per delivery's timeline (the newest); `herald log` has the rest.
pub const TIMELINE_CAP: usize = 20;
/// Rows of the recent-attempts table.
pub const RECENT_ATTEMPTS: usize = 50;
/// Rows of the schedule-fires table.
pub const FIRES_CAP: usize = 50;
/// Reload interval while something is in flight, in seconds.
pub const REFRESH_BUSY_SECS: u32 = 5;
/// Reload interval when everything is settled, in seconds.
pub const REFRESH_IDLE_SECS: u32 = 30;

/// What the request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// 1-based page of issues.
    pub page: usize,
}

impl Default for Query {
    fn default() -> Self {
        Self { page: 1 }
    }
}

impl Query {
    /// From a raw query string (`page=2`); anything else is ignored, a bad page is page 1.
    pub fn parse(raw: Option<&str>) -> Self {
        let page = raw
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("page="))
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        Self { page }
    }
}

/// One delivery row.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// `{issue}/{channel}/r{revision}`.
    pub key: String,
    /// The issue's title (untrusted text).
    pub title: Option<String>,
    /// The channel's type.
    pub channel_type: String,
    /// The last HTTP or SMTP status.
    pub last_status: Option<i64>,
    /// Its attempts, oldest first (the newest [`TIMELINE_CAP`]).
    pub timeline: Vec<AttemptRow>,
    /// Older attempts left out of `timeline`.
    pub timeline_omitted: usize,
    /// When the attempt in flight started (RFC 3339): it has no row until it ends.
    pub in_flight_since: Option<String>,
}

/// One attempt row.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// The delivery's key.
    pub key: String,
    /// How long it took.
    pub duration_ms: i64,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// The network's id for what it published.
    pub remote_id: Option<String>,
}

/// A schedule fire: fired, caught up, skipped (outside its catch-up window), nothing ready…
#[derive(Debug, Clone, Default, Serialize)]
pub struct FireRow {
    /// Schedule name.
    pub schedule: String,
    /// The fire time (RFC 3339).
    pub fire_at: String,
    /// fired, caught_up or skipped.
    pub result: String,
    /// The issue it published.
    pub issue: Option<String>,
    /// Why (the skip reason, a preflight error).
    pub detail: Option<String>,
}

/// One mailing's ledger: where a running mailing is.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MailingRow {
    /// The delivery's key.
    pub key: String,
    /// Issue slug.
    pub issue: String,
    /// Channel name.
    pub channel: String,
    /// The delivery's state.
    pub state: String,
    /// True while the delivery is not settled.
    pub running: bool,
    /// Recipients in the ledger.
    pub total: i64,
    /// Sent.
    pub sent: i64,
    /// Failed.
    pub failed: i64,
    /// Skipped (suppressed mid-mailing, invalid address).
    pub skipped: i64,
    /// Still owed (pending, deferrals included).
    pub owed: i64,
    /// Recipients settled per second over the last minute, while running.
    pub rate_per_sec: Option<f64>,
    /// Seconds left at that rate.
    pub eta_secs: Option<i64>,
}

impl MailingRow {
    /// Settled recipients.
    pub fn done(&self) -> i64 {
        self.sent + self.failed + self.skipped
    }
}

/// Everything on the page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Deliveries of this page's issues, newest issue first.
    pub deliveries: Vec<DeliveryRow>,
    /// Recent attempts, newest first.
    pub attempts: Vec<AttemptRow>,
    /// Recent schedule fires, newest first.
    pub fires: Vec<FireRow>,
    /// When the snapshot was taken (RFC 3339).
    pub generated_at: String,
    /// Mailings of this page's issues, running ones first.
    pub mailings: Vec<MailingRow>,
    /// Each enabled channel's credential: source, account, expiry, never a secret.
    pub credentials: Vec<CredentialView>,
    /// This page (1-based).
    pub page: usize,
    /// Pages of issues.
    pub pages: usize,
    /// Issues with deliveries, on all pages.
    pub issues_total: usize,
    /// Issues per page.
    pub issues_per_page: usize,
}

impl Snapshot {
    /// True while anything is in flight: the page then reloads more often.
    pub fn busy(&self) -> bool {
        self.mailings.iter().any(|m| m.running)
            || self.deliveries.iter().any(|d| matches!(d.state.as_str(), "queued" | "sending" | "retrying" | "unconfirmed"))
    }
}

pub use crate::render::html::escape as esc;

/// A delivery state's mark and colour class: the word is always shown beside it, so colour is
/// never the only cue.
fn state_mark(state: &str) -> (&'static str, &'static str) {
    match state {
        "sent" => ("\u{2713}", "ok"),
        "failed" => ("\u{2717}", "bad"),
        "retrying" => ("\u{21bb}", "warn"),
        "unconfirmed" => ("?", "warn"),
        "sending" => ("\u{25b6}", "busy"),
        "queued" => ("\u{25cb}", "idle"),
        "scheduled" => ("\u{25f7}", "idle"),
        "awaiting_confirmation" => ("\u{270e}", "todo"),
        "cancelled" => ("\u{2013}", "idle"),
        _ => ("\u{2022}", "idle"),
    }
}

/// An attempt outcome's colour class.
fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "sent" | "reconciled" => "ok",
        "permanent" | "needs_auth" | "forbidden" | "exhausted" => "bad",
        "awaiting_confirmation" => "todo",
        _ => "warn",
    }
}

/// A credential status's colour class.
fn credential_class(status: &str) -> &'static str {
    match status {
        "ok" => "ok",
        "expiring" => "warn",
        _ => "bad",
    }
}

fn remote_link(u: &str) -> String {
    if u.starts_with("http://") || u.starts_with("https://") {
        format!("<a href=\"{0}\" rel=\"noreferrer noopener\">{0}</a>", esc(u))
    } else {
        esc(u)
    }
}

/// An id attribute for a delivery's timeline (no whitespace; escaped where written).
fn anchor(key: &str) -> String {
    format!("t-{}", key.replace(char::is_whitespace, "_"))
}

fn opt(s: &Option<String>) -> String {
    esc(s.as_deref().unwrap_or(""))
}

fn duration(ms: i64) -> String {
    if ms < 1000 { format!("{ms} ms") } else { format!("{:.1} s", ms as f64 / 1000.0) }
}

const STYLE: &str = "\
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--busy:#0969da;--idle:#57606a;--todo:#8250df}\
body{font-family:system-ui,sans-serif;margin:0;color:#1f2328;background:#fff;font-size:14px}\
header,main,nav{padding:0 1.5em}header{border-bottom:1px solid #d0d7de}h1{font-size:1.5em;margin:.6em 0 .2em}\
h2{font-size:1.2em;margin:1.5em 0 .5em}header p{margin:.2em 0 .8em;color:#57606a}\
nav ul{list-style:none;padding:0;margin:.6em 0;display:flex;gap:1.2em;flex-wrap:wrap}\
table{border-collapse:collapse;margin-bottom:1em}caption{text-align:left;font-weight:600;padding:.3em 0;color:#57606a}\
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}\
td.num{text-align:right;font-variant-numeric:tabular-nums}.err{max-width:40em;overflow-wrap:anywhere}\
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}.busy{color:var(--busy)}.idle{color:var(--idle)}.todo{color:var(--todo)}\
td.st{font-weight:600}td.st.ok{background:#dafbe1}td.st.bad{background:#ffebe9}td.st.warn{background:#fff8c5}\
td.st.busy{background:#ddf4ff}td.st.todo{background:#fbefff}td.st a{color:inherit;text-decoration:none}\
ul.legend{list-style:none;padding:0;display:flex;gap:1em;flex-wrap:wrap;margin:.3em 0 .8em}\
ul.legend li{padding:1px 6px;border:1px solid #d0d7de;font-weight:600}\
.title{color:#57606a;font-weight:400}\
progress{width:24em;height:1.1em;vertical-align:middle;accent-color:var(--ok)}\
tr.skipped td{background:#fff8c5}details{margin:.4em 0}summary{cursor:pointer;font-weight:600}\
.note{color:#57606a}footer{padding:1em 1.5em;color:#57606a;border-top:1px solid #d0d7de}";

/// Render the page. Everything is escaped; links only for http(s) remote URLs.
pub fn render(s: &Snapshot) -> String {
    let refresh = if s.busy() { REFRESH_BUSY_SECS } else { REFRESH_IDLE_SECS };
    let mut h = String::with_capacity(16 * 1024);
    h.push_str(&format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"{refresh}\"><title>Herald status</title><style>{STYLE}</style></head><body>\
<header><h1>Herald status</h1><p>Taken at <time datetime=\"{t}\">{t}</time>. Read-only; this page reloads itself every {refresh} s.</p></header>",
        t = esc(&s.generated_at)
    ));
    h.push_str(
        "<nav aria-label=\"Sections\"><ul><li><a href=\"#mailings\">Mailings</a></li><li><a href=\"#matrix\">Issues \u{d7} channels</a></li>\
<li><a href=\"#timelines\">Attempt timelines</a></li><li><a href=\"#attempts\">Recent attempts</a></li>\
<li><a href=\"#fires\">Schedule fires</a></li><li><a href=\"#credentials\">Credentials</a></li></ul></nav><main>",
    );
    mailings(&mut h, s);
    matrix(&mut h, s);
    timelines(&mut h, s);
    recent(&mut h, s);
    fires(&mut h, s);
    credentials(&mut h, s);
    h.push_str(&format!(
        "</main><footer>Page {} of {}. The same data as JSON: <a href=\"/status.json?page={}\">/status.json</a>.</footer></body></html>",
        s.page,
        s.pages.max(1),
        s.page
    ));
    h
}

fn mailings(h: &mut String, s: &Snapshot) {
    h.push_str("<section id=\"mailings\" aria-labelledby=\"h-mailings\"><h2 id=\"h-mailings\">Mailings</h2>");
    if s.mailings.is_empty() {
        h.push_str("<p class=\"note\">No mailing among this page's issues.</p></section>");
        return;
    }
    h.push_str(
        "<table><caption>Each email delivery's recipients: settled (sent, failed, skipped) out of the list, and the rate over the last minute</caption>\
<thead><tr><th scope=\"col\">delivery</th><th scope=\"col\">state</th><th scope=\"col\">progress</th><th scope=\"col\">sent</th><th scope=\"col\">owed</th>\
<th scope=\"col\">failed</th><th scope=\"col\">skipped</th><th scope=\"col\">rate</th><th scope=\"col\">time left</th></tr></thead><tbody>",
    );
    for m in &s.mailings {
        let (mark, class) = state_mark(&m.state);
        let pct = if m.total > 0 { m.done() as f64 * 100.0 / m.total as f64 } else { 100.0 };
        let rate = m.rate_per_sec.map(|r| format!("{r:.0}/s")).unwrap_or_else(|| "\u{2013}".into());
        let eta = m.eta_secs.map(|e| if e >= 120 { format!("{} min", e / 60) } else { format!("{e} s") }).unwrap_or_else(|| "\u{2013}".into());
        h.push_str(&format!(
            "<tr class=\"mailing\" data-key=\"{k}\" data-done=\"{done}\" data-total=\"{total}\" data-sent=\"{sent}\" data-owed=\"{owed}\" data-failed=\"{failed}\">\
<th scope=\"row\"><a href=\"#{a}\">{k}</a></th><td class=\"{class}\">{mark} {state}{running}</td>\
<td><progress max=\"{total}\" value=\"{done}\" aria-label=\"{k}: {done} of {total} recipients settled\">{pct:.0}%</progress> {pct:.1}%</td>\
<td class=\"num ok\">{sent}</td><td class=\"num\">{owed}</td><td class=\"num{bad}\">{failed}</td><td class=\"num\">{skipped}</td><td class=\"num\">{rate}</td><td class=\"num\">{eta}</td></tr>",
            k = esc(&m.key),
            a = esc(&anchor(&m.key)),
            done = m.done(),
            total = m.total,
            sent = m.sent,
            owed = m.owed,
            failed = m.failed,
            skipped = m.skipped,
            state = esc(&m.state),
            running = if m.running { " (running)" } else { "" },
            bad = if m.failed > 0 { " bad" } else { "" },
        ));
    }
    h.push_str("</tbody></table></section>");
}

fn matrix(h: &mut String, s: &Snapshot) {
    h.push_str("<section id=\"matrix\" aria-labelledby=\"h-matrix\"><h2 id=\"h-matrix\">Issues \u{d7} channels</h2>");
    h.push_str("<ul class=\"legend\" aria-label=\"Legend\">");
    for st in ["sent", "sending", "queued", "scheduled", "retrying", "unconfirmed", "awaiting_confirmation", "failed", "cancelled"] {
        let (mark, class) = state_mark(st);
        h.push_str(&format!("<li class=\"{class}\">{mark} {st}</li>"));
    }
    h.push_str("</ul>");
    // Issues in the order the deliveries come (newest first); channels sorted.
    let mut issues: Vec<(&str, Option<&str>)> = Vec::new();
    let mut channels: Vec<&str> = Vec::new();
    for d in &s.deliveries {
        if !issues.iter().any(|(i, _)| *i == d.issue) {
            issues.push((&d.issue, d.title.as_deref()));
        }
        if !channels.contains(&d.channel.as_str()) {
            channels.push(&d.channel);
        }
    }
    channels.sort_unstable();
    if issues.is_empty() {
        h.push_str("<p class=\"note\">No deliveries yet.</p>");
    } else {
        let first = (s.page - 1) * s.issues_per_page + 1;
        h.push_str(&format!(
            "<table><caption>The latest revision's state per issue and channel: issues {first}\u{2013}{} of {}, newest first</caption><thead><tr><th scope=\"col\">issue</th>",
            first + issues.len() - 1,
            s.issues_total
        ));
        for c in &channels {
            h.push_str(&format!("<th scope=\"col\">{}</th>", esc(c)));
        }
        h.push_str("</tr></thead><tbody>");
        for (issue, title) in &issues {
            h.push_str(&format!("<tr><th scope=\"row\">{}", esc(issue)));
            if let Some(t) = title {
                h.push_str(&format!("<br><span class=\"title\">{}</span>", esc(t)));
            }
            h.push_str("</th>");
            for c in &channels {
                let latest = s.deliveries.iter().filter(|d| d.issue == *issue && d.channel == *c).max_by_key(|d| d.revision);
                match latest {
                    Some(d) => {
                        let (mark, class) = state_mark(&d.state);
                        let rev = if d.revision > 1 { format!(" r{}", d.revision) } else { String::new() };
                        h.push_str(&format!(
                            "<td class=\"st {class}\" data-state=\"{st}\"><a href=\"#{a}\">{mark} {st}{rev}</a></td>",
                            st = esc(&d.state),
                            a = esc(&anchor(&d.key))
                        ));
                    }
                    None => h.push_str("<td class=\"idle\">\u{2013} not published</td>"),
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>");
    }
    if s.pages > 1 {
        h.push_str("<nav aria-label=\"Pages\"><ul>");
        if s.page > 1 {
            h.push_str(&format!("<li><a href=\"?page={}\">\u{2190} newer issues</a></li>", s.page - 1));
        }
        h.push_str(&format!("<li>page {} of {}</li>", s.page, s.pages));
        if s.page < s.pages {
            h.push_str(&format!("<li><a href=\"?page={}\">older issues \u{2192}</a></li>", s.page + 1));
        }
        h.push_str("</ul></nav>");
    }
    h.push_str("</section>");
}

fn timelines(h: &mut String, s: &Snapshot) {
    h.push_str(&format!(
        "<section id=\"timelines\" aria-labelledby=\"h-timelines\"><h2 id=\"h-timelines\">Attempt timelines</h2>\
<p class=\"note\">Every attempt of each delivery on this page (the newest {TIMELINE_CAP}; <code>herald log ISSUE --channel NAME</code> lists all). Deliveries settled at their first attempt are folded.</p>"
    ));
    for d in &s.deliveries {
        let (mark, class) = state_mark(&d.state);
        // Folded once settled at the first try; open while anything is left to see.
        let settled = matches!(d.state.as_str(), "sent" | "cancelled") && d.timeline.len() <= 1;
        let open = if settled { "" } else { " open" };
        h.push_str(&format!(
            "<details id=\"{a}\" class=\"timeline\" data-key=\"{k}\"{open}><summary>{k} \u{2014} <span class=\"{class}\">{mark} {st}</span>, {n} attempt{pl}</summary>",
            a = esc(&anchor(&d.key)),
            k = esc(&d.key),
            st = esc(&d.state),
            n = d.attempts,
            pl = if d.attempts == 1 { "" } else { "s" }
        ));
        if d.timeline.is_empty() && d.in_flight_since.is_none() {
            h.push_str("<p class=\"note\">No attempt yet.</p>");
        } else {
            h.push_str(&format!(
                "<table><caption>Attempts of {}</caption><thead><tr><th scope=\"col\">#</th><th scope=\"col\">started</th><th scope=\"col\">trigger</th>\
<th scope=\"col\">outcome</th><th scope=\"col\">status</th><th scope=\"col\">duration</th><th scope=\"col\">error</th><th scope=\"col\">remote</th></tr></thead><tbody>",
                esc(&d.key)
            ));
            if d.timeline_omitted > 0 {
                h.push_str(&format!("<tr><td colspan=\"8\" class=\"note\">{} earlier attempts not shown</td></tr>", d.timeline_omitted));
            }
            for a in &d.timeline {
                // The delivery's link goes with the attempt that published it.
                let remote = match (&a.remote_id, &d.remote_url) {
                    (Some(_), Some(u)) if a.outcome == "sent" || a.outcome == "reconciled" => remote_link(u),
                    (Some(id), _) => esc(id),
                    _ => String::new(),
                };
                h.push_str(&format!(
                    "<tr class=\"attempt\" data-n=\"{n}\" data-outcome=\"{o}\"><td class=\"num\">{n}</td><td><time datetime=\"{at}\">{at}</time></td><td>{tr}</td>\
<td class=\"{oc}\">{o}</td><td class=\"num\">{st}</td><td class=\"num\">{du}</td><td class=\"err\">{e}</td><td>{remote}</td></tr>",
                    n = a.n,
                    at = esc(&a.at),
                    tr = esc(&a.trigger),
                    oc = outcome_class(&a.outcome),
                    o = esc(&a.outcome),
                    st = a.status.map(|s| s.to_string()).unwrap_or_default(),
                    du = duration(a.duration_ms),
                    e = opt(&a.error),
                ));
            }
            if let Some(since) = &d.in_flight_since {
                h.push_str(&format!(
                    "<tr class=\"inflight\"><td class=\"num\">{}</td><td><time datetime=\"{t}\">{t}</time></td><td></td><td class=\"busy\">\u{25b6} in flight</td>\
<td></td><td></td><td class=\"note\">no outcome yet: its row is written when it ends</td><td></td></tr>",
                    d.timeline.last().map_or(1, |a| a.n + 1),
                    t = esc(since)
                ));
            }
            h.push_str("</tbody></table>");
        }
        let mut now = Vec::new();
        if let Some(e) = &d.last_error
            && d.state != "sent"
        {
            now.push(format!("last error / reason: <span class=\"err\">{}</span>", esc(e)));
        }
        if let Some(n) = &d.next_attempt_at
            && matches!(d.state.as_str(), "queued" | "retrying" | "scheduled" | "unconfirmed")
        {
            now.push(format!("next attempt at <time datetime=\"{0}\">{0}</time>", esc(n)));
        }
        if let Some(u) = &d.remote_url {
            now.push(format!("published at {}", remote_link(u)));
        }
        if !now.is_empty() {
            h.push_str(&format!("<p>{}</p>", now.join("; ")));
        }
        h.push_str("</details>");
    }
    if s.deliveries.is_empty() {
        h.push_str("<p class=\"note\">No deliveries yet.</p>");
    }
    h.push_str("</section>");
}

fn recent(h: &mut String, s: &Snapshot) {
    h.push_str(&format!(
        "<section id=\"attempts\" aria-labelledby=\"h-attempts\"><h2 id=\"h-attempts\">Recent attempts</h2>\
<table><caption>The newest {RECENT_ATTEMPTS} attempts on every issue, newest first</caption><thead><tr><th scope=\"col\">started</th><th scope=\"col\">delivery</th>\
<th scope=\"col\">#</th><th scope=\"col\">outcome</th><th scope=\"col\">status</th><th scope=\"col\">duration</th><th scope=\"col\">error</th></tr></thead><tbody>"
    ));
    for a in s.attempts.iter().take(RECENT_ATTEMPTS) {
        h.push_str(&format!(
            "<tr><td><time datetime=\"{at}\">{at}</time></td><td>{k}</td><td class=\"num\">{n}</td><td class=\"{oc}\">{o}</td><td class=\"num\">{st}</td><td class=\"num\">{du}</td><td class=\"err\">{e}</td></tr>",
            at = esc(&a.at),
            k = esc(&a.key),
            n = a.n,
            oc = outcome_class(&a.outcome),
            o = esc(&a.outcome),
            st = a.status.map(|s| s.to_string()).unwrap_or_default(),
            du = duration(a.duration_ms),
            e = opt(&a.error),
        ));
    }
    if s.attempts.is_empty() {
        h.push_str("<tr><td colspan=\"7\" class=\"note\">No attempts yet.</td></tr>");
    }
    h.push_str("</tbody></table></section>");
}

fn fires(h: &mut String, s: &Snapshot) {
    h.push_str(&format!(
        "<section id=\"fires\" aria-labelledby=\"h-fires\"><h2 id=\"h-fires\">Schedule fires</h2>\
<table><caption>The newest {FIRES_CAP} fires, skipped ones marked</caption><thead><tr><th scope=\"col\">fire time</th><th scope=\"col\">schedule</th>\
<th scope=\"col\">result</th><th scope=\"col\">issue</th><th scope=\"col\">detail</th></tr></thead><tbody>"
    ));
    for f in s.fires.iter().take(FIRES_CAP) {
        let (class, mark) = match f.result.as_str() {
            "skipped" => ("warn", "\u{23ed} "),
            "failed" => ("bad", "\u{2717} "),
            "fired" | "caught_up" => ("ok", "\u{2713} "),
            _ => ("idle", ""),
        };
        h.push_str(&format!(
            "<tr class=\"{row}\"><td><time datetime=\"{t}\">{t}</time></td><td>{sc}</td><td class=\"{class}\">{mark}{r}</td><td>{i}</td><td class=\"err\">{d}</td></tr>",
            row = if f.result == "skipped" { "skipped" } else { "" },
            t = esc(&f.fire_at),
            sc = esc(&f.schedule),
            r = esc(&f.result),
            i = opt(&f.issue),
            d = opt(&f.detail),
        ));
    }
    if s.fires.is_empty() {
        h.push_str("<tr><td colspan=\"5\" class=\"note\">No schedule has fired yet.</td></tr>");
    }
    h.push_str("</tbody></table></section>");
}

fn credentials(h: &mut String, s: &Snapshot) {
    h.push_str(
        "<section id=\"credentials\" aria-labelledby=\"h-credentials\"><h2 id=\"h-credentials\">Credentials</h2>\
<table><caption>Each channel's credential as <code>herald credentials</code> shows it (never a secret)</caption><thead><tr><th scope=\"col\">channel</th>\
<th scope=\"col\">type</th><th scope=\"col\">source</th><th scope=\"col\">account</th><th scope=\"col\">expires</th><th scope=\"col\">days left</th>\
<th scope=\"col\">status</th><th scope=\"col\">what to do</th></tr></thead><tbody>",
    );
    for c in &s.credentials {
        h.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&c.channel),
            esc(&c.channel_type),
            esc(&c.source),
            opt(&c.account),
            opt(&c.expires_at),
            c.days_left.map(|d| d.to_string()).unwrap_or_default(),
            credential_class(&c.status),
            esc(&c.status),
            opt(&c.note),
        ));
    }
    if s.credentials.is_empty() {
        h.push_str("<tr><td colspan=\"8\" class=\"note\">No channel with a credential to show.</td></tr>");
    }
    h.push_str("</tbody></table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> Snapshot {
        let attempt = AttemptRow {
            at: "2026-12-06T10:00:00Z".into(),
            issue: "w48".into(),
            channel: "hook".into(),
            n: 1,
            outcome: "retryable".into(),
            status: Some(503),
            error: Some("503: <script>alert('err')</script>".into()),
            key: "w48/hook/r1".into(),
            duration_ms: 1200,
            trigger: "manual".into(),
            remote_id: None,
        };
        Snapshot {
            deliveries: vec![DeliveryRow {
                issue: "w48".into(),
                channel: "hook".into(),
                revision: 1,
                state: "retrying".into(),
                attempts: 1,
                remote_url: Some("javascript:alert(1)".into()),
                last_error: Some("<img src=x onerror=alert(2)>".into()),
                key: "w48/hook/r1".into(),
                title: Some("Week <script>alert(\"title\")</script> & more".into()),
                channel_type: "webhook".into(),
                timeline: vec![attempt.clone()],
                ..Default::default()
            }],
            attempts: vec![attempt],
            fires: vec![FireRow { schedule: "<b>s</b>".into(), fire_at: "t".into(), result: "skipped".into(), issue: None, detail: Some("\"quoted\" <i>".into()) }],
            generated_at: "2026-12-06T10:00:01Z".into(),
            page: 1,
            pages: 1,
            issues_total: 1,
            issues_per_page: ISSUES_PER_PAGE,
            ..Default::default()
        }
    }

    /// Titles, errors, fire details and remote URLs are text, never markup or a script link.
    #[test]
    fn untrusted_text_is_escaped() {
        let html = render(&hostile());
        assert!(!html.contains("<script"), "no script element reaches the page");
        assert!(!html.contains("<img") && !html.contains("<b>s") && !html.contains("<i>"), "no markup from the data");
        assert!(html.contains("Week &lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt; &amp; more"), "the title, escaped");
        assert!(html.contains("503: &lt;script&gt;alert(&#39;err&#39;)&lt;/script&gt;"), "the error, escaped");
        assert!(!html.contains("href=\"javascript:"), "only http(s) remote URLs become links");
    }

    /// Landmarks, captions and header scopes; the legend names every state in words.
    #[test]
    fn semantic_structure_and_a_legend_in_words() {
        let html = render(&hostile());
        for needle in ["<header>", "<nav aria-label=\"Sections\">", "<main>", "<caption>", "<th scope=\"col\">", "<th scope=\"row\">", "http-equiv=\"refresh\""] {
            assert!(html.contains(needle), "{needle} missing");
        }
        for st in ["sent", "failed", "retrying", "unconfirmed", "queued"] {
            assert!(html.contains(&format!(" {st}</li>")), "legend names {st}");
        }
        assert!(html.contains("\u{21bb} retrying</a>"), "the cell says its state in words too");
        assert!(html.contains("content=\"5\""), "a retrying delivery makes the page reload every 5 s");
        assert!(!html.contains(" src=\"") && !html.contains("<link") && !html.contains("url("), "no external fetch");
    }

    /// A sending delivery's attempt in flight is on its timeline, numbered after the last row;
    /// a stale next-attempt time is not shown while it sends.
    #[test]
    fn the_attempt_in_flight_is_on_the_timeline() {
        let mut s = hostile();
        s.deliveries[0].state = "sending".into();
        s.deliveries[0].in_flight_since = Some("2026-12-06T10:00:05Z".into());
        s.deliveries[0].next_attempt_at = Some("2026-12-06T09:00:00Z".into());
        let html = render(&s);
        assert!(html.contains("<tr class=\"inflight\"><td class=\"num\">2</td><td><time datetime=\"2026-12-06T10:00:05Z\">"), "{html}");
        assert!(!html.contains("next attempt at"), "no next attempt while one is in flight");
        s.deliveries[0].state = "retrying".into();
        s.deliveries[0].in_flight_since = None;
        let html = render(&s);
        assert!(!html.contains("class=\"inflight\"") && html.contains("next attempt at"), "a retrying delivery says when it goes next");
    }

    #[test]
    fn query_parses_the_page_and_ignores_the_rest() {
        assert_eq!(Query::parse(Some("page=3")).page, 3);
        assert_eq!(Query::parse(Some("x=1&page=2")).page, 2);
        assert_eq!(Query::parse(Some("page=0")).page, 1);
        assert_eq!(Query::parse(Some("page=<x>")).page, 1);
        assert_eq!(Query::parse(None).page, 1);
    }
}
