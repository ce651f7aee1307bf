//! Accounts that keep working (issue 13): the encrypted credential store, X refresh-token
//! rotation across processes, a crash between the token answer and the commit, two daemons on
//! PostgreSQL, and a missing or wrong key. Every publish is a real `herald` process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use herald::credentials::{Key, Vault};
use herald::sandbox::fault::Fault;
use herald::sandbox::x::{self as fake, XFake};
use herald::store::{Store, StoreUrl};

use crate::pipeline::{TestDb, herald_bin};

/// A sealing key for the tests (base64 of 32 bytes).
pub fn test_key(seed: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([seed; 32])
}

/// Write `n` ready issues (`issue-00` …) into `<dir>/issues`; returns their paths.
pub fn write_issues(dir: &Path, n: usize) -> Vec<PathBuf> {
    let issues = dir.join("issues");
    std::fs::create_dir_all(&issues).unwrap();
    (0..n)
        .map(|i| {
            let text = format!(
                "+++\ntitle = \"Issue {i}\"\nslug = \"issue-{i:02}\"\ndate = 2026-01-{:02}\nurl = \"https://news.example.com/{i}\"\nsummary = \"Number {i} of the accounts test.\"\n+++\nHello {i}.\n\n## One\n\nA section.\n",
                i + 1
            );
            let p = issues.join(format!("issue-{i:02}.md"));
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect()
}

/// A config with one X channel (OAuth 2.0, confidential client) on the fake.
fn x_config(db: &TestDb, x: &XFake, extra: &str) -> PathBuf {
    let text = format!(
        "[store]\nurl = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[retry]\nschedule_secs = [0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\n\n\
         [channels.x]\ntype = \"x\"\napi_base = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"${{X_SECRET}}\"\n\
         access_token = \"${{X_ACCESS}}\"\nrefresh_token = \"${{X_REFRESH}}\"\nuser_id = \"{}\"\ntimeout_secs = 5\n{extra}\n",
        db.url,
        x.base_url,
        fake::CLIENT_ID,
        fake::USER_ID
    );
    let p = db.dir.path().join("herald.toml");
    std::fs::write(&p, text).unwrap();
    herald::config::load(&p).unwrap_or_else(|e| panic!("config loads: {e}"));
    p
}

/// `herald` with the config and the X secrets in the environment; `key`: HERALD_SECRET_KEY.
fn herald_x(cfg: &Path, key: Option<&str>) -> Command {
    let mut c = Command::new(herald_bin());
    c.arg("--config")
        .arg(cfg)
        .env_remove("HERALD_CONFIG")
        .env_remove("HERALD_SECRET_KEY")
        .env("X_SECRET", fake::CLIENT_SECRET)
        .env("X_ACCESS", fake::ACCESS_TOKEN)
        .env("X_REFRESH", fake::REFRESH_TOKEN)
        .env("RUST_LOG", "herald=info");
    if let Some(k) = key {
        c.env("HERALD_SECRET_KEY", k);
    }
    c
}

fn run(mut c: Command) -> (i32, String) {
    let o: Output = c.stdin(Stdio::null()).output().expect("run herald");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), text)
}

fn publish(cfg: &Path, key: Option<&str>, issue: &Path) -> (i32, String) {
    let mut c = herald_x(cfg, key);
    c.args(["publish", "--wait", "--timeout", "60"]).arg(issue);
    run(c)
}

/// The stored X refresh token, opened with `key`.
async fn stored_refresh(db: &TestDb, key: &str) -> Option<String> {
    let store = Store::open(&StoreUrl::parse(&db.url, db.dir.path()).unwrap()).await.unwrap();
    let vault = Vault::new(store.clone(), Key::parse(key));
    let got = vault.load("x").await.expect("stored credential opens").and_then(|l| l.secrets.get("refresh_token")).map(|s| s.expose().to_string());
    store.close().await;
    got
}

/// Every file of the SQLite store (Herald's, its WAL, the queue's).
fn store_files(db: &TestDb) -> Vec<PathBuf> {
    let dir = db.dir.path().join("data");
    std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_refresh_token_rotates_across_three_processes_and_is_never_at_rest_in_clear() {
    let db = TestDb::sqlite().await;
    let x = XFake::start().await.unwrap();
    x.set_confidential(Some(fake::CLIENT_SECRET));
    let cfg = x_config(&db, &x, "");
    let issues = write_issues(db.dir.path(), 3);
    let key = test_key(3);

    // 1: the config's tokens work as they are; nothing to rotate yet.
    let (code, out) = publish(&cfg, Some(&key), &issues[0]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(x.posts().len(), 1);

    // 2 and 3: each a new process, each after the access token expired.
    let mut seen = vec![fake::REFRESH_TOKEN.to_string()];
    let mut tokens = vec![fake::ACCESS_TOKEN.to_string()];
    for (n, issue) in issues[1..].iter().enumerate() {
        x.expire_access_token();
        let (code, out) = publish(&cfg, Some(&key), issue);
        assert_eq!(code, 0, "process {}: {out}", n + 2);
        assert_eq!(x.posts().len(), n + 2, "process {} posted", n + 2);
        assert_eq!(x.refreshes(), n as u32 + 1, "one refresh per process");
        let stored = stored_refresh(&db, &key).await.expect("a refresh token is stored");
        assert_eq!(stored, x.current_refresh_token(), "the store holds the live refresh token");
        assert!(!seen.contains(&stored), "the stored refresh token changed");
        seen.push(stored);
        tokens.push(x.current_access_token());
    }
    assert!(x.posts().iter().all(|p| p.auth == "oauth2"));

    // No token, nor the client secret, is in any store file in clear (nor base64'd).
    let mut secrets: Vec<String> = seen.iter().chain(tokens.iter()).cloned().collect();
    secrets.push(fake::CLIENT_SECRET.to_string());
    for f in store_files(&db) {
        let bytes = std::fs::read(&f).unwrap();
        for s in &secrets {
            for needle in [s.clone(), base64::engine::general_purpose::STANDARD.encode(s)] {
                assert!(
                    memchr::memmem::find(&bytes, needle.as_bytes()).is_none(),
                    "{} holds a token in clear",
                    f.display()
                );
            }
        }
    }
    // Nor does what Herald prints.
    let (_, status) = run({
        let mut c = herald_x(&cfg, Some(&key));
        c.args(["status"]);
        c
    });
    for s in &secrets {
        assert!(!status.contains(s.as_str()), "status prints a secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_key_is_exit_2_and_nothing_is_sent() {
    let db = TestDb::sqlite().await;
    let x = XFake::start().await.unwrap();
    x.set_confidential(Some(fake::CLIENT_SECRET));
    let cfg = x_config(&db, &x, "");
    let issues = write_issues(db.dir.path(), 2);
    let key = test_key(5);

    // A refresh token in the config with no key: the rotated one could not be kept.
    let (code, out) = publish(&cfg, None, &issues[0]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("HERALD_SECRET_KEY") && out.contains("nothing was sent"), "{out}");
    assert_eq!(x.create_calls(), 0);

    // Store a rotated credential, then come back without the key, and with another key.
    x.expire_access_token();
    let (code, out) = publish(&cfg, Some(&key), &issues[0]);
    assert_eq!(code, 0, "{out}");
    let calls = x.create_calls();
    let (code, out) = publish(&cfg, None, &issues[1]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("HERALD_SECRET_KEY is not set"), "{out}");
    let (code, out) = publish(&cfg, Some(&test_key(6)), &issues[1]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not the one it was written with"), "{out}");
    let (code, out) = publish(&cfg, Some("not-a-key"), &issues[1]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("32"), "{out}");
    assert!(!out.contains("not-a-key"), "the key is never printed: {out}");
    assert_eq!(x.create_calls(), calls, "nothing was sent");
    assert_eq!(x.posts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_refresh_answer_and_the_commit_is_named_and_not_retried() {
    let db = TestDb::sqlite().await;
    let x = XFake::start().await.unwrap();
    x.set_confidential(Some(fake::CLIENT_SECRET));
    let cfg = x_config(&db, &x, "");
    let issues = write_issues(db.dir.path(), 3);
    let key = test_key(7);
    let (code, out) = publish(&cfg, Some(&key), &issues[0]);
    assert_eq!(code, 0, "{out}");

    // X rotates the tokens and holds its answer; the process dies before it could store them.
    x.expire_access_token();
    x.faults.push("POST /2/oauth2/token", Fault::AcceptThenStall(Duration::from_secs(30)), 1);
    let mut c = herald_x(&cfg, Some(&key));
    c.args(["publish", "--wait"]).arg(&issues[1]).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    while x.refreshes() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the refresh reached X");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let posts = x.posts().len();
    let token_calls = x.token_calls();

    // The next run: one try of the stored (spent) token, then needs_auth naming the command.
    let (code, out) = publish(&cfg, Some(&key), &issues[2]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("needs_auth"), "{out}");
    assert!(out.contains("herald connect x"), "{out}");
    assert_eq!(x.posts().len(), posts, "nothing was sent");
    assert!(x.token_calls() <= token_calls + 1, "at most one more token request");

    // And the one after: no token request at all, the same clear message, no loop.
    let calls = x.token_calls();
    let mut c = herald_x(&cfg, Some(&key));
    c.args(["retry", "--wait"]);
    let (_, out) = run(c);
    assert_eq!(x.token_calls(), calls, "a dead credential is not tried again");
    let mut c = herald_x(&cfg, Some(&key));
    c.args(["status"]);
    let (_, out2) = run(c);
    assert!(out2.contains("herald connect x"), "{out}\n{out2}");
    assert!(out2.contains("interrupted") || out2.contains("ended before its answer was stored"), "{out2}");
    assert_eq!(x.posts().len(), posts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_postgres_refresh_an_expired_x_token_once() {
    let db = TestDb::postgres().await;
    let x = XFake::start().await.unwrap();
    x.set_confidential(Some(fake::CLIENT_SECRET));
    let cfg = x_config(&db, &x, "");
    let issues = write_issues(db.dir.path(), 4);
    let key = test_key(9);
    // Queue work for both daemons, with an access token that has expired.
    for issue in &issues {
        let mut c = herald_x(&cfg, Some(&key));
        c.arg("publish").arg(issue);
        let (code, out) = run(c);
        assert_eq!(code, 0, "{out}");
    }
    x.expire_access_token();
    // Slow the token endpoint a little, so both daemons want it at once.
    x.faults.push("POST /2/oauth2/token", Fault::Delay(Duration::from_millis(700)), 1);
    let spawn = || {
        let mut c = herald_x(&cfg, Some(&key));
        c.args(["daemon", "--concurrency", "2"]).stdout(Stdio::null()).stderr(Stdio::null());
        Reaped(c.spawn().unwrap())
    };
    let (a, b) = (spawn(), spawn());
    let t0 = Instant::now();
    while x.posts().len() < issues.len() {
        assert!(t0.elapsed() < Duration::from_secs(60), "all posts went out: {:?}", x.posts());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((a, b));
    assert_eq!(x.refreshes(), 1, "exactly one refresh");
    assert_eq!(x.token_calls(), 1, "exactly one token request");
}

/// A child killed when the test ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Drive `herald connect` as a browser would: read the authorize URL it prints, follow the
/// network's redirect to Herald's loopback callback. Returns the child's exit code and output.
pub async fn connect_with_browser(mut c: Command) -> (i32, String) {
    use std::io::BufRead as _;
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    let mut child = c.spawn().expect("spawn herald connect");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(u) = line.trim().strip_prefix("http").map(|rest| format!("http{rest}")) {
                let _ = tx.send(u);
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20))).await.unwrap().expect("herald printed the authorize URL");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let consent = browser.get(&url).send().await.expect("authorize page answers");
    assert_eq!(consent.status().as_u16(), 302, "the authorize step redirects: {}", consent.text().await.unwrap_or_default());
    let back = consent.headers()["location"].to_str().unwrap().to_string();
    let page = browser.get(&back).send().await.expect("Herald's callback answers");
    assert_eq!(page.status().as_u16(), 200);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let err = reader.join().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{err}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_connect_then_three_processes_each_rotating_the_stored_refresh_token() {
    let db = TestDb::sqlite().await;
    let x = XFake::start().await.unwrap();
    x.set_confidential(Some(fake::CLIENT_SECRET));
    // No tokens in the config: `herald connect` obtains them.
    let text = std::fs::read_to_string(x_config(&db, &x, "")).unwrap()
        .replace("access_token = \"${X_ACCESS}\"\nrefresh_token = \"${X_REFRESH}\"\nuser_id = \"1900000000000000001\"\n", "");
    let cfg = db.dir.path().join("herald.toml");
    std::fs::write(&cfg, text).unwrap();
    let issues = write_issues(db.dir.path(), 3);
    let key = test_key(11);

    let mut c = herald_x(&cfg, Some(&key));
    c.args(["connect", "x", "--port", "0"]);
    let (code, out) = connect_with_browser(c).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("as {}", fake::USER_ID)), "the user id from /2/users/me: {out}");
    assert!(!out.contains(&x.current_access_token()) && !out.contains(&x.current_refresh_token()), "no token printed: {out}");
    let mut seen = vec![stored_refresh(&db, &key).await.expect("connect stored a refresh token")];
    assert_eq!(seen[0], x.current_refresh_token());

    for (n, issue) in issues.iter().enumerate() {
        if n > 0 {
            x.expire_access_token();
        }
        let (code, out) = publish(&cfg, Some(&key), issue);
        assert_eq!(code, 0, "process {}: {out}", n + 1);
        assert_eq!(x.posts().len(), n + 1);
        let stored = stored_refresh(&db, &key).await.unwrap();
        assert_eq!(stored, x.current_refresh_token());
        if n > 0 {
            assert!(!seen.contains(&stored), "process {}: the stored refresh token changed", n + 1);
        }
        seen.push(stored);
    }
    assert_eq!(x.refreshes(), 2);
    // `herald credentials` shows the account and scopes, never a secret.
    let mut c = herald_x(&cfg, Some(&key));
    c.args(["credentials", "--json"]);
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out[out.find('[').unwrap()..]).unwrap();
    assert_eq!(v[0]["account"], fake::USER_ID);
    assert_eq!(v[0]["source"], "store (refresh)");
    assert!(v[0]["scopes"].as_str().unwrap().contains("offline.access"));
    for s in &seen {
        assert!(!out.contains(s.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_connect_refuses_a_confidential_app_without_its_secret() {
    let db = TestDb::sqlite().await;
    let x = XFake::start().await.unwrap();
    x.set_confidential(Some(fake::CLIENT_SECRET));
    let cfg = x_config(&db, &x, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("client_secret = \"${X_SECRET}\"\n", "");
    std::fs::write(&cfg, text).unwrap();
    let mut c = herald_x(&cfg, Some(&test_key(12)));
    c.args(["connect", "x", "--port", "0"]);
    let (code, out) = connect_with_browser(c).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unauthorized_client"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threads_token_with_5_days_left_is_renewed_once_and_status_shows_the_new_expiry() {
    use herald::sandbox::threads::{self as tfake, ThreadsFake};
    let db = TestDb::sqlite().await;
    let t = ThreadsFake::start().await.unwrap();
    t.set_token_times(chrono::Duration::days(55), chrono::Duration::days(5));
    let text = format!(
        "[store]\nurl = \"{}\"\n\n[retry]\nschedule_secs = [0]\njitter = 0.0\n\n[channels.threads]\ntype = \"threads\"\napi_base = \"{}\"\ntimeout_secs = 5\n",
        db.url, t.base_url
    );
    let cfg = db.dir.path().join("herald.toml");
    std::fs::write(&cfg, text).unwrap();
    let key = test_key(13);
    // The credential as `herald connect threads` leaves it, 55 days ago.
    let store = Store::open(&StoreUrl::parse(&db.url, db.dir.path()).unwrap()).await.unwrap();
    let vault = Vault::new(store.clone(), Key::parse(&key));
    let now = herald::store::now_ms();
    let w = herald::store::credentials::CredentialWrite {
        channel_type: "threads".into(),
        source: "connect".into(),
        account: Some(tfake::USER_ID.into()),
        obtained_at: now - 55 * 86_400_000,
        expires_at: Some(now + 5 * 86_400_000),
        ..Default::default()
    };
    let secrets = herald::credentials::Secrets::default().with("access_token", &herald::config::SecretString::new(tfake::ACCESS_TOKEN));
    vault.put("threads", w, &secrets).await.unwrap();
    let mut c = herald_x(&cfg, Some(&key));
    c.arg("status");
    let (_, before) = run(c);
    assert!(before.contains("expiring"), "status warns 7 days ahead: {before}");

    let issues = write_issues(db.dir.path(), 2);
    for issue in &issues {
        let (code, out) = publish(&cfg, Some(&key), issue);
        assert_eq!(code, 0, "{out}");
    }
    assert_eq!(t.posts().len(), 2);
    assert_eq!(t.refreshes(), 1, "renewed once");
    let row = store.credential("threads").await.unwrap().unwrap();
    let expires = row.expires_at.unwrap();
    assert!(expires > now + 59 * 86_400_000, "the new expiry (60 days) is stored");
    let renewed = vault.load("threads").await.unwrap().unwrap().secrets.get("access_token").unwrap();
    assert_ne!(renewed.expose(), tfake::ACCESS_TOKEN);
    store.close().await;
    let mut c = herald_x(&cfg, Some(&key));
    c.arg("status");
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    let day = &herald::store::fmt_ms(expires)[..10];
    assert!(out.contains(day), "status shows the new expiry {day}: {out}");
    assert!(!out.contains("expiring"), "{out}");
    assert!(!out.contains(renewed.expose()));
}

/// `herald` with `key`, the config, and `env`.
fn herald_env(cfg: &Path, key: &str, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(herald_bin());
    c.arg("--config").arg(cfg).env_remove("HERALD_CONFIG").env("HERALD_SECRET_KEY", key).env("RUST_LOG", "herald=info");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn write_cfg(db: &TestDb, channel: &str) -> PathBuf {
    let text = format!(
        "[store]\nurl = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[retry]\nschedule_secs = [0]\njitter = 0.0\n\n{channel}",
        db.url
    );
    let p = db.dir.path().join("herald.toml");
    std::fs::write(&p, text).unwrap();
    herald::config::load(&p).unwrap_or_else(|e| panic!("config loads: {e}"));
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_linkedin_token_names_herald_connect_and_reconnecting_then_retry_finishes_it() {
    use herald::sandbox::linkedin::{self as lfake, LinkedinFake};
    let db = TestDb::sqlite().await;
    let li = LinkedinFake::start().await.unwrap();
    let version = chrono::Utc::now().format("%Y%m").to_string();
    let cfg = write_cfg(
        &db,
        &format!(
            "[channels.linkedin]\ntype = \"linkedin\"\napi_base = \"{}\"\naccess_token = \"${{LI_TOKEN}}\"\nauthor = \"urn:li:person:someoneelse\"\n\
             linkedin_version = \"{version}\"\nclient_id = \"{}\"\nclient_secret = \"${{LI_SECRET}}\"\ntimeout_secs = 5\n",
            li.base_url,
            lfake::CLIENT_ID
        ),
    );
    let key = test_key(21);
    let env = [("LI_TOKEN", "an-expired-linkedin-token"), ("LI_SECRET", lfake::CLIENT_SECRET)];
    let issue = &write_issues(db.dir.path(), 1)[0];

    let mut c = herald_env(&cfg, &key, &env);
    c.args(["publish", "--wait"]).arg(issue);
    let (code, out) = run(c);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("run `herald connect linkedin` then `herald retry`"), "{out}");
    assert!(li.posts().is_empty());

    let mut c = herald_env(&cfg, &key, &env);
    c.args(["connect", "linkedin", "--port", "0"]);
    let (code, out) = connect_with_browser(c).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(lfake::PERSON), "the person URN from /v2/userinfo: {out}");

    let mut c = herald_env(&cfg, &key, &env);
    c.args(["retry", "--wait"]);
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    let posts = li.posts();
    assert_eq!(posts.len(), 1, "{out}");
    assert_eq!(posts[0].body["author"], lfake::PERSON, "the connected member is the author");

    let mut c = herald_env(&cfg, &key, &env);
    c.args(["credentials"]);
    let (_, out) = run(c);
    assert!(out.contains("store (connect)") && out.contains(lfake::PERSON), "{out}");
    assert!(!out.contains(lfake::ACCESS_TOKEN), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastodon_connect_registers_the_app_and_the_stored_token_posts() {
    use herald::sandbox::mastodon::MastodonFake;
    let db = TestDb::sqlite().await;
    let m = MastodonFake::start().await.unwrap();
    let cfg = write_cfg(&db, &format!("[channels.masto]\ntype = \"mastodon\"\napi_base = \"{}\"\ntimeout_secs = 5\n", m.base_url));
    let key = test_key(22);
    let issue = &write_issues(db.dir.path(), 1)[0];
    // No token anywhere yet: preflight says what to run; exit 2, nothing sent.
    let mut c = herald_env(&cfg, &key, &[]);
    c.args(["publish", "--wait"]).arg(issue);
    let (code, out) = run(c);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("herald connect masto"), "{out}");

    let mut c = herald_env(&cfg, &key, &[]);
    c.args(["connect", "masto", "--port", "0", "--json"]);
    let (code, out) = connect_with_browser(c).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"account\": \"@herald\""), "verify_credentials names the account: {out}");
    assert!(out.contains("write:statuses"), "{out}");

    let mut c = herald_env(&cfg, &key, &[]);
    c.args(["publish", "--wait"]).arg(issue);
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    assert_eq!(m.statuses().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bluesky_connect_records_the_did_and_pds_and_repo_writes_go_to_the_pds() {
    use herald::sandbox::bluesky::{self as bfake, BlueskyFake};
    let db = TestDb::sqlite().await;
    let b = BlueskyFake::start().await.unwrap();
    b.set_separate_pds();
    let cfg = write_cfg(&db, &format!("[channels.bsky]\ntype = \"bluesky\"\napi_base = \"{}\"\nidentifier = \"{}\"\ntimeout_secs = 5\n", b.base_url, bfake::HANDLE));
    let key = test_key(23);
    let mut c = herald_env(&cfg, &key, &[]);
    c.args(["connect", "bsky", "--json"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", bfake::APP_PASSWORD).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(bfake::DID), "{out}");
    assert!(out.contains(&format!("{}/pds", b.base_url)), "the PDS from the didDoc: {out}");
    assert!(!out.contains(bfake::APP_PASSWORD));

    let issue = &write_issues(db.dir.path(), 1)[0];
    let mut c = herald_env(&cfg, &key, &[]);
    c.args(["publish", "--wait"]).arg(issue);
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    assert_eq!(b.posts().len(), 1);
    let paths = b.paths();
    let writes: Vec<&String> = paths.iter().filter(|p| p.ends_with("com.atproto.repo.createRecord")).collect();
    assert!(!writes.is_empty() && writes.iter().all(|p| p.starts_with("/pds/")), "repo writes go to the PDS, not the entryway: {paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substack_connect_checks_the_cookie_and_records_the_user_id() {
    use herald::sandbox::substack::{self as sfake, SubstackFake};
    let db = TestDb::sqlite().await;
    let s = SubstackFake::start().await.unwrap();
    // The profile lives on substack.com, apart from the publication (`api_base`): both at the fake.
    let cfg = write_cfg(
        &db,
        &format!(
            "[channels.stack]\ntype = \"substack\"\napi_base = \"{0}\"\nprofile_url = \"{0}/api/v1/user/profile/self\"\nmode = \"draft\"\ntimeout_secs = 5\n",
            s.base_url
        ),
    );
    let key = test_key(24);
    for (cookie, want) in [("not-the-cookie", 2), (sfake::COOKIE, 0)] {
        let mut c = herald_env(&cfg, &key, &[]);
        c.args(["connect", "stack"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{cookie}").unwrap();
        }
        let o = child.wait_with_output().unwrap();
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(want), "{out}");
        assert!(!out.contains(cookie), "the cookie is never printed: {out}");
        if want == 0 {
            assert!(out.contains(&format!("as {}", sfake::USER_ID)), "{out}");
        }
    }
    let mut c = herald_env(&cfg, &key, &[]);
    c.args(["credentials", "--json"]);
    let (_, out) = run(c);
    assert!(out.contains(&format!("\"account\": \"{}\"", sfake::USER_ID)), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_connect_exchanges_for_a_long_lived_token_and_records_its_expiry() {
    use herald::sandbox::threads::{self as tfake, ThreadsFake};
    let db = TestDb::sqlite().await;
    let t = ThreadsFake::start().await.unwrap();
    let cfg = write_cfg(
        &db,
        &format!("[channels.threads]\ntype = \"threads\"\napi_base = \"{}\"\napp_id = \"{}\"\napp_secret = \"${{TH_SECRET}}\"\ntimeout_secs = 5\n", t.base_url, tfake::APP_ID),
    );
    let key = test_key(25);
    let env = [("TH_SECRET", tfake::APP_SECRET)];
    let mut c = herald_env(&cfg, &key, &env);
    c.args(["connect", "threads", "--port", "0", "--json"]);
    let (code, out) = connect_with_browser(c).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(tfake::USER_ID), "{out}");
    let day = &herald::store::fmt_ms(herald::store::now_ms() + 60 * 86_400_000)[..10];
    assert!(out.contains(day), "60 days from now: {out}");
    let issue = &write_issues(db.dir.path(), 1)[0];
    let mut c = herald_env(&cfg, &key, &env);
    c.args(["publish", "--wait"]).arg(issue);
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.posts().len(), 1);
    assert_eq!(t.refreshes(), 0, "a fresh token is not renewed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_shows_in_check_credentials_with_days_left_and_in_metrics() {
    use herald::sandbox::threads::{self as tfake, ThreadsFake};
    let db = TestDb::sqlite().await;
    let t = ThreadsFake::start().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = write_cfg(&db, &format!("[channels.threads]\ntype = \"threads\"\napi_base = \"{}\"\ntimeout_secs = 5\n", t.base_url));
    let text = std::fs::read_to_string(&cfg).unwrap().replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""));
    std::fs::write(&cfg, text).unwrap();
    let key = test_key(26);
    let store = Store::open(&StoreUrl::parse(&db.url, db.dir.path()).unwrap()).await.unwrap();
    let now = herald::store::now_ms();
    let expires = now + 5 * 86_400_000 - 60_000;
    // Issued an hour ago (a short-lived grant): not renewable yet, so the expiry stays put.
    let w = herald::store::credentials::CredentialWrite {
        channel_type: "threads".into(),
        source: "connect".into(),
        account: Some(tfake::USER_ID.into()),
        obtained_at: now - 3_600_000,
        expires_at: Some(expires),
        ..Default::default()
    };
    let secrets = herald::credentials::Secrets::default().with("access_token", &herald::config::SecretString::new(tfake::ACCESS_TOKEN));
    Vault::new(store.clone(), Key::parse(&key)).put("threads", w, &secrets).await.unwrap();
    store.close().await;
    std::fs::create_dir_all(db.dir.path().join("issues")).unwrap();

    let mut c = herald_env(&cfg, &key, &[]);
    c.args(["check", "--credentials"]);
    let o = c.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("warning: channel threads: expires on"), "{stderr}");
    let row = stdout.lines().find(|l| l.starts_with("threads")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.split_whitespace().any(|w| w == "5") && row.contains("expiring"), "5 days left: {row}");

    let mut c = herald_env(&cfg, &key, &[]);
    c.arg("daemon").stdout(Stdio::null()).stderr(Stdio::null());
    let _d = Reaped(c.spawn().unwrap());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let want = format!("herald_credential_expiry_timestamp_seconds{{channel=\"threads\"}} {}", expires.div_euclid(1000));
    let t0 = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await
            && r.text().await.unwrap_or_default().contains(&want)
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "/metrics has {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linkedin_token_with_a_refresh_token_is_renewed_before_it_expires() {
    use herald::sandbox::linkedin::{self as lfake, LinkedinFake};
    let db = TestDb::sqlite().await;
    let li = LinkedinFake::start().await.unwrap();
    li.grant_refresh_tokens();
    let version = chrono::Utc::now().format("%Y%m").to_string();
    let cfg = write_cfg(
        &db,
        &format!(
            "[channels.li]\ntype = \"linkedin\"\napi_base = \"{}\"\nauthor = \"{}\"\nlinkedin_version = \"{version}\"\nclient_id = \"{}\"\nclient_secret = \"${{LI_SECRET}}\"\ntimeout_secs = 5\n",
            li.base_url,
            lfake::PERSON,
            lfake::CLIENT_ID
        ),
    );
    let key = test_key(27);
    let env = [("LI_SECRET", lfake::CLIENT_SECRET)];
    let mut c = herald_env(&cfg, &key, &env);
    c.args(["connect", "li", "--port", "0"]);
    let (code, out) = connect_with_browser(c).await;
    assert_eq!(code, 0, "{out}");
    // Three days left.
    let store = Store::open(&StoreUrl::parse(&db.url, db.dir.path()).unwrap()).await.unwrap();
    let soon = herald::store::now_ms() + 3 * 86_400_000;
    sqlx::query("UPDATE credentials SET expires_at = $1 WHERE channel = 'li'").bind(soon).execute(store.pool()).await.unwrap();
    let before = store.credential("li").await.unwrap().unwrap();

    let issue = &write_issues(db.dir.path(), 1)[0];
    let mut c = herald_env(&cfg, &key, &env);
    c.args(["publish", "--wait"]).arg(issue);
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    assert_eq!(li.posts().len(), 1);
    assert_eq!(li.refreshes(), 1, "renewed once");
    let after = store.credential("li").await.unwrap().unwrap();
    assert!(after.expires_at.unwrap() > herald::store::now_ms() + 59 * 86_400_000, "the new expiry is stored");
    assert!(after.generation > before.generation);
    assert_eq!(after.source, "refresh");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_picks_up_a_reconnected_account_and_retry_finishes_the_delivery() {
    use herald::sandbox::linkedin::{self as lfake, LinkedinFake};
    let db = TestDb::sqlite().await;
    let li = LinkedinFake::start().await.unwrap();
    let version = chrono::Utc::now().format("%Y%m").to_string();
    let cfg = write_cfg(
        &db,
        &format!(
            "[channels.linkedin]\ntype = \"linkedin\"\napi_base = \"{}\"\naccess_token = \"${{LI_TOKEN}}\"\nauthor = \"{}\"\n\
             linkedin_version = \"{version}\"\nclient_id = \"{}\"\nclient_secret = \"${{LI_SECRET}}\"\ntimeout_secs = 5\n",
            li.base_url,
            lfake::PERSON,
            lfake::CLIENT_ID
        ),
    );
    let key = test_key(28);
    let env = [("LI_TOKEN", "a-revoked-linkedin-token"), ("LI_SECRET", lfake::CLIENT_SECRET)];
    let issue = &write_issues(db.dir.path(), 1)[0];
    let mut c = herald_env(&cfg, &key, &env);
    c.arg("daemon").stdout(Stdio::null()).stderr(Stdio::null());
    let _d = Reaped(c.spawn().unwrap());
    let mut c = herald_env(&cfg, &key, &env);
    c.arg("publish").arg(issue);
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    let status = || {
        let mut c = herald_env(&cfg, &key, &env);
        c.arg("status");
        run(c).1
    };
    let t0 = Instant::now();
    while !status().contains("failed") {
        assert!(t0.elapsed() < Duration::from_secs(30), "the delivery failed: {}", status());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(status().contains("herald connect linkedin"), "{}", status());

    let mut c = herald_env(&cfg, &key, &env);
    c.args(["connect", "linkedin", "--port", "0"]);
    let (code, out) = connect_with_browser(c).await;
    assert_eq!(code, 0, "{out}");
    let mut c = herald_env(&cfg, &key, &env);
    c.arg("retry");
    let (code, out) = run(c);
    assert_eq!(code, 0, "{out}");
    let t0 = Instant::now();
    while li.posts().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the daemon sent it with the new token: {}", status());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(li.posts().len(), 1);
}
