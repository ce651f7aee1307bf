//! The daemon: scheduled publishing exactly once (cron, catch-up, two daemons on PostgreSQL),
//! a daemon killed mid-delivery, `/metrics`, `/status` auth, and the Dockerfile.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald::sandbox::fault::Fault;
use herald::sandbox::webhook::WebhookFake;
use herald::store::{State, Store, StoreUrl};

use crate::pipeline::{TestDb, config_toml, herald_bin};

/// Write `n` ready issues (`issue-00` … oldest first) into `<dir>/issues`.
fn write_issues(dir: &Path, n: usize) -> PathBuf {
    let issues = dir.join("issues");
    std::fs::create_dir_all(&issues).unwrap();
    for i in 0..n {
        let text = format!(
            "+++\ntitle = \"Issue {i}\"\nslug = \"issue-{i:02}\"\ndate = 2026-01-{:02}\nurl = \"https://news.example.com/{i}\"\nsummary = \"Number {i}.\"\n+++\nHello {i}.\n\n## One\n\nA section.\n",
            i + 1
        );
        std::fs::write(issues.join(format!("issue-{i:02}.md")), text).unwrap();
    }
    issues
}

/// A config: `issues_dir`, one webhook channel per name, and one every-second schedule.
fn daemon_config(db: &TestDb, hook: &str, channels: &[&str], catch_up: u64, http: &str) -> PathBuf {
    let mut s = format!("issues_dir = \"issues\"\n\n{}", config_toml(&db.url, hook, channels, ""));
    s = s.replace("[http]\nlisten = \"127.0.0.1:0\"\n", http);
    s.push_str(&format!("\n[[schedule]]\nname = \"every-second\"\ncron = \"* * * * * *\"\nwhat = \"next\"\ncatch_up_secs = {catch_up}\n"));
    let p = db.dir.path().join("herald.toml");
    std::fs::write(&p, s).unwrap();
    herald::config::load(&p).unwrap_or_else(|e| panic!("config loads: {e}"));
    p
}

/// A daemon child; its JSON log goes to a file (a pipe nobody reads would fill and block it).
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Drop for Daemon {
    /// A failed assertion must not leave a daemon running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn spawn_daemon(cfg: &Path, env: &[(&str, &str)]) -> Daemon {
    let log = cfg.with_file_name(format!("daemon-{}.log", uuid::Uuid::new_v4().simple()));
    let mut c = Command::new(herald_bin());
    c.arg("--config").arg(cfg).args(["--log-format", "json", "-v", "daemon", "--concurrency", "2"]).env_remove("HERALD_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().expect("spawn daemon");
    Daemon { child, log }
}

pub(crate) fn stop(mut d: Daemon) -> String {
    // A signal before the daemon has installed its handlers ends it by the default action, not
    // by its clean shutdown (which is what this checks): wait until it says it started.
    let up = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&d.log).unwrap_or_default().contains("Daemon started") && d.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < up, "daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill").args(["-TERM", &d.child.id().to_string()]).status().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            let err = std::fs::read_to_string(&d.log).unwrap_or_default();
            assert!(st.success(), "daemon exits cleanly on SIGTERM ({st:?}):\n{err}");
            return err;
        }
        assert!(Instant::now() < end, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Like `wait_for`, but a timeout shows the daemon's log.
async fn wait_logged(d: &Daemon, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() > end {
            panic!("timed out waiting for {what}; daemon log:\n{}", std::fs::read_to_string(&d.log).unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Run Herald's and the queue's migrations once, before daemons start racing.
async fn migrate(db: &TestDb) {
    let url = StoreUrl::parse(&db.url, Path::new("/")).unwrap();
    Store::open(&url).await.unwrap().close().await;
    herald::jobs::Queue::open(&url, 4).await.unwrap().close().await;
}

async fn store(db: &TestDb) -> Store {
    Store::open(&StoreUrl::parse(&db.url, Path::new("/")).unwrap()).await.unwrap()
}

async fn wait_for(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fires that published an issue, as (fire time, result, issue).
async fn publishing_fires(s: &Store) -> Vec<(i64, String, String)> {
    s.fires(Some("every-second"), 10_000).await.unwrap().into_iter().filter_map(|f| f.issue.map(|i| (f.fire_at, f.result, i))).collect()
}

fn assert_each_once(fake: &WebhookFake, published: &[(i64, String, String)]) {
    let mut slugs: Vec<&String> = published.iter().map(|(_, _, i)| i).collect();
    slugs.sort();
    let n = slugs.len();
    slugs.dedup();
    assert_eq!(slugs.len(), n, "an issue was published by two fires: {published:?}");
    for s in slugs {
        assert_eq!(fake.seen(&format!("{s}/hook/r1")), 1, "{s}: one request at the fake");
    }
    assert_eq!(fake.accepted().len(), n, "one request per published issue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_second_cron_publishes_each_ready_issue_once() {
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    write_issues(db.dir.path(), 3);
    let cfg = daemon_config(&db, &fake.url(), &["hook"], 60, "[http]\nlisten = \"127.0.0.1:0\"\n");
    let d = spawn_daemon(&cfg, &[]);
    wait_for("three issues delivered", 40, async || fake.accepted().len() == 3).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop(d);
    let s = store(&db).await;
    let published = publishing_fires(&s).await;
    assert_eq!(published.len(), 3, "{published:?}");
    // Oldest first, one per second.
    let order: Vec<&str> = published.iter().rev().map(|(_, _, i)| i.as_str()).collect();
    assert_eq!(order, ["issue-00", "issue-01", "issue-02"]);
    let all = s.fires(Some("every-second"), 1000).await.unwrap();
    assert!(all.iter().any(|f| f.result == "nothing_ready"), "later fires find nothing ready");
    let mut times: Vec<i64> = all.iter().map(|f| f.fire_at).collect();
    times.sort();
    assert!(times.windows(2).all(|w| w[1] - w[0] == 1000), "a fire every second, none twice: {times:?}");
    assert_each_once(&fake, &published);
    let ds = s.list_deliveries(None, &[]).await.unwrap();
    assert!(ds.iter().all(|d| d.state() == State::Sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_catches_up_missed_fires_once_inside_the_window() {
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    write_issues(db.dir.path(), 40); // enough that issues never run out, however slow the machine
    let cfg = daemon_config(&db, &fake.url(), &["hook"], 60, "[http]\nlisten = \"127.0.0.1:0\"\n");
    let d = spawn_daemon(&cfg, &[]);
    wait_logged(&d, "a first publish", 30, || !fake.accepted().is_empty()).await;
    stop(d);
    // Down across (at least) three fire times.
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let d = spawn_daemon(&cfg, &[]);
    let s = store(&db).await;
    wait_for("catch-up fires", 30, async || publishing_fires(&s).await.iter().filter(|f| f.1 == "caught_up").count() >= 3).await;
    stop(d);
    // Drain what was published with a daemon that has no schedule, so no new fires happen.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, &text[..text.find("\n[[schedule]]").unwrap()]).unwrap();
    let drain = spawn_daemon(&cfg, &[]);
    let expected = publishing_fires(&s).await.len();
    wait_for("every published issue sent", 60, async || {
        let ds = s.list_deliveries(None, &[]).await.unwrap();
        ds.len() == expected && ds.iter().all(|d| d.state() == State::Sent)
    })
    .await;
    stop(drain);
    let published = publishing_fires(&s).await;
    let caught: Vec<i64> = published.iter().filter(|f| f.1 == "caught_up").map(|f| f.0).collect();
    assert!(caught.len() >= 3, "one catch-up publish per missed fire: {published:?}");
    let mut all_times: Vec<i64> = s.fires(Some("every-second"), 1000).await.unwrap().iter().map(|f| f.fire_at).collect();
    let n = all_times.len();
    all_times.sort();
    all_times.dedup();
    assert_eq!(all_times.len(), n, "no fire recorded twice");
    assert_each_once(&fake, &published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_fires_outside_the_window_are_skipped_and_shown() {
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    write_issues(db.dir.path(), 8);
    let cfg = daemon_config(&db, &fake.url(), &["hook"], 1, "[http]\nlisten = \"127.0.0.1:0\"\n");
    let d = spawn_daemon(&cfg, &[]);
    wait_logged(&d, "a first publish", 30, || !fake.accepted().is_empty()).await;
    stop(d);
    tokio::time::sleep(Duration::from_millis(5000)).await;
    let before = fake.accepted().len();
    let d = spawn_daemon(&cfg, &[]);
    let s = store(&db).await;
    wait_for("skipped fires", 30, async || s.fires(Some("every-second"), 1000).await.unwrap().iter().filter(|f| f.result == "skipped").count() >= 2).await;
    let err = stop(d);
    assert!(err.contains("Skipped a missed fire"), "skips are logged:\n{err}");
    let fires = s.fires(Some("every-second"), 1000).await.unwrap();
    let skipped = fires.iter().filter(|f| f.result == "skipped").count();
    let caught = fires.iter().filter(|f| f.result == "caught_up").count();
    assert!(skipped >= 2 && caught <= 1, "older fires are skipped, not published: {skipped} skipped, {caught} caught up");
    assert!(fake.accepted().len() >= before);
    let o = Command::new(herald_bin()).arg("--config").arg(&cfg).arg("status").output().unwrap();
    let so = String::from_utf8_lossy(&o.stdout);
    assert!(so.contains("skipped"), "status shows skipped fires:\n{so}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_postgres_fire_each_time_once() {
    let db = TestDb::postgres().await;
    let fake = WebhookFake::start().await.unwrap();
    write_issues(db.dir.path(), 14);
    let cfg = daemon_config(&db, &fake.url(), &["hook"], 60, "[http]\nlisten = \"127.0.0.1:0\"\n");
    migrate(&db).await; // so the daemons race only on fires
    let (d1, d2) = (spawn_daemon(&cfg, &[]), spawn_daemon(&cfg, &[]));
    let s = store(&db).await;
    // Fourteen ready issues: at least ten fires publish, until every issue is out and sent.
    wait_for("every issue published and sent", 90, async || {
        let ds = s.list_deliveries(None, &[]).await.unwrap();
        publishing_fires(&s).await.len() == 14 && ds.len() == 14 && ds.iter().all(|d| d.state() == State::Sent)
    })
    .await;
    stop(d1);
    stop(d2);
    let published = publishing_fires(&s).await;
    assert_eq!(published.len(), 14);
    assert_each_once(&fake, &published);
    // Both daemons saw every tick; exactly one claimed each.
    let all = s.fires(Some("every-second"), 10_000).await.unwrap();
    let mut times: Vec<i64> = all.iter().map(|f| f.fire_at).collect();
    let n = times.len();
    times.sort();
    times.dedup();
    assert_eq!(n, times.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_delivery_is_finished_by_the_other() {
    let db = TestDb::postgres().await;
    let fake = WebhookFake::start().await.unwrap();
    fake.faults.push("POST /hook", Fault::Delay(Duration::from_millis(1500)), 100);
    let chans = ["a", "b", "c", "d"];
    std::fs::create_dir_all(db.dir.path().join("issues")).unwrap();
    let mut text = config_toml(&db.url, &fake.url(), &chans, "");
    text.insert_str(0, "issues_dir = \"issues\"\n\n");
    let cfg = db.dir.path().join("herald.toml");
    std::fs::write(&cfg, text).unwrap();
    migrate(&db).await;
    let (mut d1, d2) = (spawn_daemon(&cfg, &[]), spawn_daemon(&cfg, &[]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let issue = crate::util::fixture("issues/minimal.md");
    let o = Command::new(herald_bin()).arg("--config").arg(&cfg).args(["publish", issue.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_logged(&d2, "requests in flight", 45, || !fake.requests().is_empty()).await;
    d1.child.kill().unwrap(); // SIGKILL, mid-delivery
    let _ = d1.child.wait();
    let s = store(&db).await;
    wait_for("every delivery sent by the survivor", 90, async || {
        let ds = s.list_deliveries(None, &[]).await.unwrap();
        ds.len() == chans.len() && ds.iter().all(|d| d.state() == State::Sent)
    })
    .await;
    stop(d2);
    assert_eq!(fake.accepted().len(), chans.len(), "no duplicate posts");
    assert_eq!(fake.duplicates(), 0);
}

/// Parse Prometheus/OpenMetrics text: every sample line is `name{labels} value`.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(series[..name_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad metric name in {line:?}");
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        out.push((series.to_string(), v));
    }
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
    out
}

fn sum(samples: &[(String, f64)], prefix: &str, must: &str) -> f64 {
    samples.iter().filter(|(s, _)| s.starts_with(prefix) && s.contains(must)).map(|(_, v)| v).sum()
}

/// The port the daemon bound, from its JSON start line.
pub(crate) async fn bound_port(d: &Daemon) -> u16 {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&d.log).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(l) = v["listen"].as_str() {
                    return l.rsplit(':').next().unwrap().parse().unwrap();
                }
        }
        assert!(Instant::now() < end, "the daemon never logged its listen address:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_deliveries_and_status_needs_a_token_beyond_loopback() {
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    write_issues(db.dir.path(), 0);
    let http = "[http]\nlisten = \"0.0.0.0:0\"\ntoken = \"${HERALD_TEST_HTTP_TOKEN}\"\n";
    let cfg = daemon_config(&db, &fake.url(), &["hook"], 60, http);
    let d = spawn_daemon(&cfg, &[("HERALD_TEST_HTTP_TOKEN", "s3cret-token-0123456789-abcdefghijkl")]);
    let port = bound_port(&d).await;
    let base = format!("http://127.0.0.1:{port}");
    let c = herald::channel::http::client();
    assert_eq!(c.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(format!("{base}/status")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(format!("{base}/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(format!("{base}/status")).bearer_auth("wrong").send().await.unwrap().status(), 401);
    // A browser, which sends no token, gets the refusal and nothing of the page.
    let (dom, _) = crate::preview::browse_url(&format!("{base}/status"), 800, 600, &["--dump-dom".to_string()]);
    assert!(dom.contains("a bearer token is required") && !dom.contains("<table") && !dom.contains("Herald status"), "{dom}");
    let scrape = async || {
        let r = c.get(format!("{base}/metrics")).bearer_auth("s3cret-token-0123456789-abcdefghijkl").send().await.unwrap();
        assert_eq!(r.status(), 200);
        parse_metrics(&r.text().await.unwrap())
    };
    let before = scrape().await;
    assert_eq!(sum(&before, "herald_attempts_total", "outcome=\"sent\""), 0.0);
    // Publish through the daemon.
    let issue = crate::util::fixture("issues/minimal.md");
    let o = Command::new(herald_bin()).arg("--config").arg(&cfg).args(["publish", issue.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the delivery", 30, async || fake.accepted().len() == 1).await;
    let mut after = scrape().await;
    for _ in 0..20 {
        if sum(&after, "herald_attempts_total", "outcome=\"sent\"") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = scrape().await;
    }
    assert_eq!(sum(&after, "herald_attempts_total", "outcome=\"sent\""), 1.0);
    assert_eq!(sum(&after, "herald_deliveries_total", "outcome=\"sent\""), 1.0);
    assert_eq!(sum(&after, "herald_attempt_duration_seconds_count", "channel=\"hook\""), 1.0);
    let page = c.get(format!("{base}/status")).bearer_auth("s3cret-token-0123456789-abcdefghijkl").send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<table>") && page.contains("minimal") && page.contains("sent"), "{page}");
    let logs = stop(d);
    assert!(!logs.contains("s3cret-token-0123456789-abcdefghijkl"), "the token never reaches the logs");
    // Every line of a delivery carries the issue, channel, delivery id and attempt.
    let line = logs.lines().find(|l| l.contains("Delivered.")).expect("a delivery log line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let span = &v["span"];
    for k in ["issue", "channel", "delivery_id", "attempt"] {
        assert!(!span[k].is_null(), "{k} missing from {line}");
    }
}

#[test]
fn a_public_listener_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("herald.toml");
    std::fs::write(&cfg, format!("[store]\nurl = \"sqlite://{}/h.db\"\n[http]\nlisten = \"0.0.0.0:0\"\n", dir.path().display())).unwrap();
    let o = Command::new(herald_bin()).arg("--config").arg(&cfg).arg("daemon").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("token"), "{}", String::from_utf8_lossy(&o.stderr));
    // A one-character token is no protection: refused as well, without echoing it.
    std::fs::write(&cfg, format!("[store]\nurl = \"sqlite://{}/h.db\"\n[http]\nlisten = \"0.0.0.0:0\"\ntoken = \"${{T}}\"\n", dir.path().display())).unwrap();
    let o = Command::new(herald_bin()).arg("--config").arg(&cfg).arg("daemon").env("T", "Q").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("needs at least 32") && !err.contains("\"Q\""), "{err}");
}

/// `docker build` can't run here, so the Dockerfile is checked by reading it.
#[test]
fn dockerfile_is_multistage_non_root_with_healthcheck_and_assets() {
    let text = std::fs::read_to_string(crate::util::root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage");
    assert!(froms.iter().all(|f| !f.contains(":latest") && f.contains(':')), "base images are pinned: {froms:?}");
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let runtime = &lines[last_from..];
    let user = runtime.iter().rfind(|l| l.starts_with("USER ")).expect("the runtime stage sets USER");
    let uid = user.trim_start_matches("USER ").split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as non-root: {user}");
    assert!(runtime.iter().any(|l| l.starts_with("HEALTHCHECK ") && l.contains("/healthz")) || text.contains("/healthz"), "HEALTHCHECK on /healthz");
    assert!(runtime.iter().any(|l| l.starts_with("COPY channels")), "carries channels/");
    assert!(runtime.iter().any(|l| l.starts_with("COPY config")), "carries config/");
    assert!(runtime.iter().any(|l| l.starts_with("ENTRYPOINT") && l.contains("herald")));
    // Everything `cargo build` reads: the manifest, the lock, a build script, the sources, the
    // embedded templates, and the folders of any target Cargo.toml names by path.
    let root = crate::util::root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut needed: Vec<String> = ["Cargo.toml", "Cargo.lock", "src", "channels"].map(String::from).to_vec();
    if root.join("build.rs").exists() {
        needed.push("build.rs".into());
    }
    for line in manifest.lines().filter(|l| l.trim_start().starts_with("path = ")) {
        let path = line.split('"').nth(1).unwrap();
        needed.push(path.split('/').next().unwrap().to_string());
    }
    for needed in needed {
        assert!(
            lines.iter().any(|l| l.starts_with("COPY") && l.split_whitespace().any(|w| w.trim_start_matches("./") == needed)),
            "the build stage copies {needed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_in_issue_publishes_at_its_time_with_its_latest_edit_once() {
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    let issues = write_issues(db.dir.path(), 0);
    let mut text = config_toml(&db.url, &fake.url(), &["hook"], "");
    text.insert_str(0, "issues_dir = \"issues\"\n\n");
    let cfg = db.dir.path().join("herald.toml");
    std::fs::write(&cfg, text).unwrap();
    let d = spawn_daemon(&cfg, &[]);
    let at = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let issue = |summary: &str| {
        format!("+++\ntitle = \"Timed\"\nslug = \"timed\"\ndate = 2026-11-30\nurl = \"https://news.example.com/timed\"\nsummary = \"{summary}\"\npublish_at = \"{at}\"\n+++\nBody.\n")
    };
    // Dropped in while the daemon runs, then edited before its time.
    std::fs::write(issues.join("timed.md"), issue("First draft.")).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(fake.accepted().is_empty(), "nothing before its time");
    std::fs::write(issues.join("timed.md"), issue("Edited before its time.")).unwrap();
    wait_logged(&d, "the timed issue", 30, || !fake.accepted().is_empty()).await;
    assert_eq!(fake.accepted()[0].body["issue"]["summary"], "Edited before its time.");
    // Edited after its time: not published again (that takes `herald republish`).
    std::fs::write(issues.join("timed.md"), issue("Edited after it went out.")).unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    stop(d);
    assert_eq!(fake.accepted().len(), 1, "published once");
}

/// Issue 16 item 2: a client stuck mid-request does not keep the daemon from stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_daemon_promptly_despite_a_stuck_client() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    write_issues(db.dir.path(), 0);
    let cfg = daemon_config(&db, &fake.url(), &["hook"], 60, "[http]\nlisten = \"127.0.0.1:0\"\n");
    let d = spawn_daemon(&cfg, &[]);
    let port = bound_port(&d).await;
    let mut stuck = Vec::new();
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"POST /unsubscribe/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n").await.unwrap();
        stuck.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    stop(d);
    // The HTTP drain is 3 s; no delivery was in flight, so nothing else waits.
    assert!(t.elapsed() < Duration::from_secs(8), "SIGTERM to exit took {:?}", t.elapsed());
}

/// Issue 17: the daemon mounts `POST /webhooks/postmark` when `[bounces]` gives it a password,
/// and a Postmark bounce posted there suppresses the address in the daemon's store; a wrong
/// password is 401 and changes nothing, and the password never reaches the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_takes_postmark_bounce_webhooks() {
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    write_issues(db.dir.path(), 0);
    let cfg = daemon_config(&db, &fake.url(), &["hook"], 60, "[http]\nlisten = \"127.0.0.1:0\"\n");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[bounces]\nwebhook_password = \"${PM_HOOK_PASSWORD}\"\n");
    std::fs::write(&cfg, text).unwrap();
    let store = crate::bounces::open(&db).await;
    crate::bounces::import(&store, "all", 0..2).await;
    let password = "pm-hook-password-0123456789";
    let d = spawn_daemon(&cfg, &[("PM_HOOK_PASSWORD", password)]);
    let base = format!("http://127.0.0.1:{}", bound_port(&d).await);
    let c = herald::channel::http::client();
    let bounce = serde_json::json!({
        "RecordType": "Bounce", "MessageStream": "broadcast", "ID": 4_000_001, "Type": "HardBounce", "TypeCode": 1,
        "Name": "Hard bounce", "Tag": "", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Metadata": {}, "ServerID": 23,
        "Description": "The server was unable to deliver your message", "Details": "smtp;550 5.1.1 unknown",
        "Email": crate::bounces::addr(1), "From": "news@example.com", "BouncedAt": "2026-12-06T10:00:00Z",
        "DumpAvailable": false, "Inactive": true, "CanActivate": true, "Subject": "Issue 1",
    });
    let url = format!("{base}/webhooks/postmark");
    assert_eq!(c.post(&url).basic_auth("postmark", Some("wrong")).json(&bounce).send().await.unwrap().status(), 401);
    assert!(crate::bounces::suppressed(&store).await.is_empty(), "a refused webhook changes nothing");
    assert_eq!(c.post(&url).basic_auth("postmark", Some(password)).json(&bounce).send().await.unwrap().status(), 200);
    assert_eq!(
        crate::bounces::suppressed(&store).await,
        vec![(crate::bounces::addr(1), "hard_bounce".to_string(), "postmark_webhook".to_string())]
    );
    let logs = stop(d);
    assert!(!logs.contains(password), "the webhook password never reaches the logs");
}
