//! The daemon's `/status` page in a real browser (Debian's chromium, headless, as the preview
//! tests drive it): a 5,000-recipient mailing against the loopback SMTP sink, slowed so it is
//! still running across two loads of the page, whose progress bar must have moved; a webhook
//! delivery refused twice (with `<script>` in the refusal) whose timeline must list exactly the
//! attempts `herald log --json` lists; an issue title with `<script>` shown as text; no console
//! error and no external fetch. Screenshots land in target/status-*.png.

use std::process::Command;
use std::time::{Duration, Instant};

use herald::sandbox::fault::Fault;
use herald::sandbox::smtp::SmtpServer;
use herald::sandbox::webhook::WebhookFake;
use serde_json::Value;

use crate::daemon::{bound_port, spawn_daemon, stop};
use crate::email::{SECRET, SECRET_ENV, email_toml};
use crate::pipeline::{TestDb, herald_bin};
use crate::preview::{browse, browse_url, no_console_errors, probe_result, with_probe};
use crate::util::root;

const N: usize = 5000;
const TITLE: &str = "Week <script>alert(\"title\")</script> & more";
const REFUSAL: &str = "<script>alert('err')</script> busy";
/// A LinkedIn channel's token in the config: its expiry is shown, never the token.
const LI_TOKEN_ENV: &str = "HERALD_IT_STATUS_LI_TOKEN";
const LI_TOKEN: &str = "li-secret-token-never-shown-4f1c";

/// Reads what the page shows: mailings, timelines, the matrix's row headers, scripts and
/// anything fetched from elsewhere.
const STATUS_PROBE: &str = r#"
(function(){
  var r={errors:window.__errors,mailings:[],timelines:{},rows:[],scripts:document.querySelectorAll('script').length,external:[],
    landmarks:[!!document.querySelector('header'),!!document.querySelector('nav'),!!document.querySelector('main')],
    unscoped:document.querySelectorAll('th:not([scope])').length,captions:document.querySelectorAll('table > caption').length,tables:document.querySelectorAll('table').length};
  document.querySelectorAll('tr.mailing').forEach(function(m){var p=m.querySelector('progress');r.mailings.push([m.getAttribute('data-key'),p.value,p.max,+m.getAttribute('data-sent'),+m.getAttribute('data-owed'),+m.getAttribute('data-failed')])});
  document.querySelectorAll('details.timeline').forEach(function(d){
    var rows=[];d.querySelectorAll('tr.attempt').forEach(function(t){var c=t.querySelectorAll('td');rows.push([+c[0].textContent,c[3].textContent,c[4].textContent,c[6].textContent])});
    r.timelines[d.getAttribute('data-key')]=rows;
  });
  document.querySelectorAll('#matrix tbody th').forEach(function(t){r.rows.push(t.textContent)});
  r.creds=[];document.querySelectorAll('#credentials tbody tr').forEach(function(t){var c=t.querySelectorAll('th,td');r.creds.push([c[0].textContent,c[5].textContent,c[6].textContent,c[7].textContent])});
  document.querySelectorAll('[src],link[href]').forEach(function(e){r.external.push(e.outerHTML.slice(0,120))});
  var p=document.createElement('pre');p.textContent='PROBE['+encodeURIComponent(JSON.stringify(r))+']PROBE';document.body.appendChild(p);
})();
"#;

/// The settled count in the first mailing row of a dumped page.
fn progress_in(dom: &str) -> (u64, u64) {
    let row = &dom[dom.find("class=\"mailing\"").unwrap_or_else(|| panic!("a mailing row on the page:\n{dom}"))..];
    let attr = |name: &str| -> u64 {
        let at = row.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("{name} on the mailing row")) + name.len() + 2;
        row[at..at + row[at..].find('"').expect("end quote")].parse().expect("a number")
    };
    (attr("data-done"), attr("data-total"))
}

fn herald(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(herald_bin())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("HERALD_CONFIG")
        .env(SECRET_ENV, SECRET)
        .env(LI_TOKEN_ENV, LI_TOKEN)
        .output()
        .expect("run herald");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

async fn status_json(base: &str) -> Value {
    herald::channel::http::client().get(format!("{base}/status.json")).send().await.expect("GET /status.json").json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_chromium_shows_a_mailing_moving_and_every_attempt_of_a_delivery() {
    let target = root().join("target");
    let db = TestDb::sqlite().await;
    let smtp = SmtpServer::start().await.expect("SMTP sink");
    smtp.keep_bodies(false);
    // Two connections at 20 ms a message: about 100 a second, so the mailing runs for a while.
    smtp.set_latency(Duration::from_millis(20));
    let hook = WebhookFake::start().await.expect("webhook fake");
    for _ in 0..2 {
        hook.faults.push("POST /", Fault::Status { code: 503, body: REFUSAL.into(), headers: vec![] }, 1);
    }
    let cfg = db.dir.path().join("herald.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[retry]\nschedule_secs = [0, 0, 0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\nrate_limit_ceiling_secs = 30\n\n\
             [channels.newsletter]\n{}\n[channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout_secs = 5\n\n\
             [channels.linkedin]\ntype = \"linkedin\"\napi_base = \"http://127.0.0.1:9\"\naccess_token = \"${{{LI_TOKEN_ENV}}}\"\n\
             token_expires_at = \"{}\"\nauthor = \"urn:li:person:StatusPage01\"\n",
            db.url,
            email_toml(&smtp.url(), "concurrency = 2\nbatch_size = 100"),
            hook.url(),
            (chrono::Utc::now() + chrono::Duration::hours(60)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    )
    .expect("config");
    let mut csv = String::from("email,name\n");
    for i in 0..N {
        csv.push_str(&format!("reader{i}@example.org,Reader {i}\n"));
    }
    std::fs::write(db.dir.path().join("list.csv"), csv).expect("csv");
    let (code, out, err) = herald(&cfg, &["subscribers", "import", db.dir.path().join("list.csv").to_str().expect("path")]);
    assert_eq!(code, 0, "{out}\n{err}");
    let issue = db.dir.path().join("week.md");
    std::fs::write(
        &issue,
        format!("+++\ntitle = {TITLE:?}\nslug = \"week-49\"\ndate = 2026-12-06\nurl = \"https://news.example.com/49\"\nsummary = \"Fine.\"\n+++\nHello.\n\n## One\n\nA section.\n"),
    )
    .expect("issue");

    let d = spawn_daemon(&cfg, &[(SECRET_ENV, SECRET), (LI_TOKEN_ENV, LI_TOKEN)]);
    let base = format!("http://127.0.0.1:{}", bound_port(&d).await);
    // LinkedIn is configured (its credential is on the page) but not published to.
    let (code, out, err) = herald(&cfg, &["publish", issue.to_str().expect("path"), "--channel", "newsletter", "--channel", "hook"]);
    assert_eq!(code, 0, "{out}\n{err}");

    // Running: two loads in the browser, a few seconds apart, and the bar has moved.
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status_json(&base).await;
        if s["mailings"][0]["running"] == true && s["mailings"][0]["sent"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < end, "the mailing never started: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = format!("{base}/status");
    let (dom1, err1) = browse_url(&url, 1280, 1600, &["--dump-dom".to_string()]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shot = target.join("status-running.png");
    let (_, shot_err) = browse_url(&url, 1280, 1600, &[format!("--screenshot={}", shot.display())]);
    let (dom2, err2) = browse_url(&url, 1280, 1600, &["--dump-dom".to_string()]);
    let ((done1, total1), (done2, total2)) = (progress_in(&dom1), progress_in(&dom2));
    assert_eq!((total1, total2), (N as u64, N as u64), "the bar's length is the list");
    assert!(done1 < done2 && done2 < N as u64, "the bar moved between two loads while running: {done1} then {done2} of {N}");
    assert!(dom1.contains("(running)") && dom1.contains("http-equiv=\"refresh\" content=\"5\""), "a running mailing, reloading every 5 s");
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000), "screenshot written: {shot_err}");
    for line in err1.lines().chain(err2.lines()).chain(shot_err.lines()) {
        let l = line.to_lowercase();
        assert!(!(line.contains("Uncaught") || (l.contains("console") && l.contains("error"))), "console error: {line}");
    }

    // Settled: let the sink go at full speed, then every attempt of every delivery is on the page.
    smtp.set_latency(Duration::ZERO);
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        let s = status_json(&base).await;
        let states: Vec<&str> = s["deliveries"].as_array().expect("deliveries").iter().filter_map(|d| d["state"].as_str()).collect();
        if states.len() == 2 && states.iter().all(|st| *st == "sent") {
            break;
        }
        assert!(Instant::now() < end, "the deliveries never settled: {s}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let html = herald::channel::http::client().get(&url).send().await.expect("GET /status").text().await.expect("page");
    let json = status_json(&base).await;
    let shot = target.join("status-settled.png");
    let (_, shot_err) = browse_url(&url, 1280, 1600, &[format!("--screenshot={}", shot.display())]);
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000), "screenshot written: {shot_err}");
    stop(d);

    let probed = target.join("status-settled.probe.html");
    std::fs::write(&probed, with_probe(&html, STATUS_PROBE)).expect("write probe page");
    let (dom, err) = browse(&probed, 1280, 1600, &["--dump-dom".to_string()]);
    let r = probe_result(&dom);
    no_console_errors(&err, &r, "status");
    assert_eq!(r["external"], serde_json::json!([]), "the page fetches nothing");
    assert_eq!(r["scripts"], 2, "no script but the probe's two: the title and the refusal stayed text");
    assert_eq!(r["landmarks"], serde_json::json!([true, true, true]), "header, nav and main");
    assert_eq!(r["unscoped"], 0, "every table header has a scope");
    assert_eq!(r["captions"], r["tables"], "every table has a caption");
    assert!(r["rows"].as_array().expect("rows").iter().any(|t| t.as_str().is_some_and(|t| t.contains(TITLE))), "the title, as text: {}", r["rows"]);
    assert_eq!(r["mailings"][0], serde_json::json!(["week-49/newsletter/r1", N, N, N, 0, 0]), "the settled mailing");
    // LinkedIn's token expires in 60 hours: three days left (rounded up), expiring, what to do.
    let li = r["creds"].as_array().expect("credentials").iter().find(|c| c[0] == "linkedin").unwrap_or_else(|| panic!("linkedin's credential: {}", r["creds"]));
    assert_eq!((li[1].as_str(), li[2].as_str()), (Some("3"), Some("expiring")), "{li}");
    assert!(li[3].as_str().is_some_and(|n| n.contains("herald connect linkedin")), "{li}");
    assert!(!html.contains(LI_TOKEN) && !json.to_string().contains(LI_TOKEN), "never a secret on the page or in the JSON");

    // Every attempt of `herald log --json`, per delivery, in order, with its outcome, status
    // and error; and nothing else.
    let (code, out, err) = herald(&cfg, &["log", "--json"]);
    assert_eq!(code, 0, "{err}");
    let mut want: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for line in out.lines() {
        let a: Value = serde_json::from_str(line).expect("a JSON line");
        let status = a["status"].as_i64().map(|s| s.to_string()).unwrap_or_default();
        want.entry(a["key"].as_str().expect("key").to_string()).or_default().push(serde_json::json!([
            a["attempt"],
            a["outcome"],
            status,
            a["error"].as_str().unwrap_or("")
        ]));
    }
    let got: std::collections::BTreeMap<String, Vec<Value>> =
        serde_json::from_value(r["timelines"].clone()).expect("timelines");
    assert_eq!(got, want, "each timeline lists exactly the attempts of herald log --json");
    let hook_log = &want["week-49/hook/r1"];
    assert_eq!(hook_log.len(), 3, "two refusals, then sent: {hook_log:?}");
    assert!(hook_log[0][3].as_str().is_some_and(|e| e.contains("<script>")), "the refusal's text reached the error: {hook_log:?}");

    // /status.json carries the same: the title, the timelines, the mailing, the credentials.
    let hook = json["deliveries"].as_array().expect("deliveries").iter().find(|d| d["channel"] == "hook").expect("hook delivery");
    assert_eq!(hook["title"], TITLE);
    assert_eq!(hook["timeline"].as_array().map(Vec::len), Some(3));
    assert!(hook["remote_url"].as_str().is_some_and(|u| u.starts_with("http://")), "{hook}");
    assert_eq!(json["mailings"][0]["sent"], N);
    assert_eq!(json["credentials"][0]["status"], "expiring", "{json}");
    assert!(json["page"] == 1 && json["pages"] == 1 && json["issues_total"] == 1, "{json}");
}

/// With more issues than a page holds, `/status` shows 20, newest first, and links to the
/// older ones; `/status.json?page=2` has the rest. The page stays the same size however many
/// issues the store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pages_hold_twenty_issues_each_newest_first() {
    const ISSUES: usize = 23;
    let db = TestDb::sqlite().await;
    let hook = WebhookFake::start().await.expect("webhook fake");
    let cfg = db.dir.path().join("herald.toml");
    std::fs::write(&cfg, crate::pipeline::config_toml(&db.url, &hook.url(), &["hook"], "")).expect("config");
    let d = spawn_daemon(&cfg, &[]);
    let base = format!("http://127.0.0.1:{}", bound_port(&d).await);
    for i in 0..ISSUES {
        let issue = db.dir.path().join(format!("issue-{i:02}.md"));
        std::fs::write(
            &issue,
            format!("+++\ntitle = \"Issue {i}\"\nslug = \"issue-{i:02}\"\ndate = 2026-01-{:02}\nurl = \"https://news.example.com/{i}\"\nsummary = \"Number {i}.\"\n+++\nHello {i}.\n\n## One\n\nA section.\n", i + 1),
        )
        .expect("issue");
        let (code, out, err) = herald(&cfg, &["publish", issue.to_str().expect("path")]);
        assert_eq!(code, 0, "{out}\n{err}");
    }
    let end = Instant::now() + Duration::from_secs(120);
    while hook.accepted().len() < ISSUES {
        assert!(Instant::now() < end, "{} of {ISSUES} delivered", hook.accepted().len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let get = async |path: &str| -> String {
        herald::channel::http::client().get(format!("{base}{path}")).send().await.expect("GET").text().await.expect("body")
    };
    let slugs = |v: &Value| -> Vec<String> {
        let mut s: Vec<String> = v["deliveries"].as_array().expect("deliveries").iter().map(|d| d["issue"].as_str().expect("issue").to_string()).collect();
        s.dedup();
        s
    };
    let p1: Value = serde_json::from_str(&get("/status.json").await).expect("JSON");
    let p2: Value = serde_json::from_str(&get("/status.json?page=2").await).expect("JSON");
    let page1 = get("/status").await;
    let page2 = get("/status?page=2").await;
    stop(d);
    assert_eq!((p1["issues_total"].as_u64(), p1["pages"].as_u64(), p1["page"].as_u64()), (Some(ISSUES as u64), Some(2), Some(1)), "{p1}");
    let want1: Vec<String> = (ISSUES - 20..ISSUES).rev().map(|i| format!("issue-{i:02}")).collect();
    let want2: Vec<String> = (0..ISSUES - 20).rev().map(|i| format!("issue-{i:02}")).collect();
    assert_eq!(slugs(&p1), want1, "page 1: the 20 newest, newest first");
    assert_eq!(slugs(&p2), want2, "page 2: the rest");
    assert_eq!(page1.matches("<tr><th scope=\"row\">").count(), 20, "20 rows in page 1's matrix");
    assert!(page1.contains("issues 1\u{2013}20 of 23") && page1.contains("href=\"?page=2\"") && !page1.contains("href=\"?page=0\""), "page 1 links to older issues");
    assert!(page2.contains("issues 21\u{2013}23 of 23") && page2.contains("href=\"?page=1\"") && !page2.contains("href=\"?page=3\""), "page 2 links back");
    let matrix = |page: &str| -> String {
        let at = page.find("<section id=\"matrix\"").expect("matrix");
        page[at..at + page[at..].find("</section>").expect("end")].to_string()
    };
    assert!(matrix(&page2).contains("issue-00") && !matrix(&page2).contains("issue-22"), "page 2's matrix holds the oldest");
    assert!(matrix(&page1).contains("issue-22") && !matrix(&page1).contains("issue-02"), "page 1's the newest");
}
