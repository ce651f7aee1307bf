//! The delivery pipeline end to end: store, queue, Publish and Deliver jobs, retry schedule,
//! reconciliation, crash safety and the CLI, on SQLite and on PostgreSQL.
//!
//! Each test makes its own store: a temporary SQLite file (and its sibling queue file) or a
//! fresh PostgreSQL database `herald_t_<random>`, dropped at the end.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::channel::recording::{Answer, RecordingAdapter};
use herald::channel::{Kind, Receipt, Reconciled};
use herald::jobs::worker::{WaitEnd, WaitFor, WorkerOptions, run_until_settled};
use herald::jobs::{Pipeline, publish};
use herald::render::engine::RenderedChannel;
use herald::render::{BodyRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::webhook::WebhookFake;
use herald::store::{DeliveryRow, State, StoreUrl, Trigger};
use sqlx::Connection as _;

const PG_ADMIN: &str = "postgres://root@127.0.0.1:5432/postgres";

/// A store for one test: a temp dir with SQLite files, or a fresh PostgreSQL database.
pub struct TestDb {
    /// The `[store] url`.
    pub url: String,
    /// The temp dir (config, issue copies, SQLite files).
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    /// A temporary SQLite store.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/data/herald.db", dir.path().display());
        Self { url, dir, pg_name: None }
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> Self {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
        let name = format!("herald_t_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(PG_ADMIN).await.expect("PostgreSQL on 127.0.0.1:5432");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut c).await.expect("create test database");
        let _ = c.close().await;
        let dir = tempfile::tempdir().expect("temp dir");
        Self { url: format!("postgres://root@127.0.0.1:5432/{name}"), dir, pg_name: Some(name) }
    }

    /// Is this the PostgreSQL variant?
    pub fn is_pg(&self) -> bool {
        self.pg_name.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside any runtime guarantee: use a small one on a plain thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    if let Ok(mut c) = sqlx::PgConnection::connect(PG_ADMIN).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut c).await;
                    }
                });
            })
            .join();
        }
    }
}

/// A config with one webhook channel per name, all pointing at `hook_url`, a fast retry schedule
/// (`[0, 0, 0]`, no jitter) and a 1 s rate-limit floor.
pub fn config_toml(store_url: &str, hook_url: &str, channels: &[&str], extra: &str) -> String {
    let mut s = format!(
        "[store]\nurl = \"{store_url}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[retry]\nschedule_secs = [0, 0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\nrate_limit_ceiling_secs = 30\n\n"
    );
    for c in channels {
        s.push_str(&format!("[channels.{c}]\ntype = \"webhook\"\nurl = \"{hook_url}\"\ntimeout_secs = 5\n{extra}\n"));
    }
    s
}

/// Write the config into the test's dir and load it.
pub fn write_config(db: &TestDb, text: &str) -> (PathBuf, Arc<herald::config::LoadedConfig>) {
    let p = db.dir.path().join("herald.toml");
    std::fs::write(&p, text).expect("write config");
    let cfg = herald::config::load(&p).unwrap_or_else(|e| panic!("config loads: {e}"));
    (p, Arc::new(cfg))
}

/// Copy a fixture issue into the test dir (so a test may edit it).
pub fn issue_copy(db: &TestDb, fixture: &str) -> PathBuf {
    let src = crate::util::fixture(&format!("issues/{fixture}"));
    let dst = db.dir.path().join(fixture);
    std::fs::copy(&src, &dst).expect("copy issue");
    dst
}

/// Worker options for tests: quick polls and sweeps.
/// Write `text` as the config, open the pipeline, publish the fixture issue `fixture`, run the
/// workers until every delivery settles, and return the pipeline, the deliveries and the issue.
pub async fn publish_and_settle(db: &TestDb, text: &str, fixture: &str) -> (Arc<herald::jobs::Pipeline>, Vec<herald::store::DeliveryRow>, herald::issue::Issue) {
    let (_, cfg) = write_config(db, text);
    let p = Arc::new(herald::jobs::Pipeline::open(cfg).await.unwrap());
    let issue = issue_copy(db, fixture);
    let source = std::fs::read_to_string(&issue).unwrap();
    let parsed = herald::issue::parse_str(&issue, &source).unwrap();
    herald::jobs::publish::enqueue(&p, &parsed, &source, &[]).await.unwrap();
    let target = herald::jobs::worker::WaitFor::Issue { slug: parsed.meta.slug.clone(), version: parsed.version.clone(), channels: vec![] };
    let end = herald::jobs::worker::run_until_settled(p.clone(), fast(), target, Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(end, herald::jobs::worker::WaitEnd::Settled);
    let ds = p.store.list_deliveries(None, &[]).await.unwrap();
    (p, ds, parsed)
}

pub fn fast() -> WorkerOptions {
    WorkerOptions { concurrency: 4, poll: Duration::from_millis(100), sweep_every: Duration::from_millis(500), shutdown_grace: Duration::from_secs(5) }
}

/// Store and publish `issue_path` in process, then run a worker until it settles.
pub async fn publish_and_wait(p: &Arc<Pipeline>, issue_path: &Path) -> WaitEnd {
    let source = std::fs::read_to_string(issue_path).expect("issue");
    let issue = herald::issue::parse_str(issue_path, &source).expect("issue parses");
    publish::enqueue(p, &issue, &source, &[]).await.expect("enqueue");
    let target = WaitFor::Issue { slug: issue.meta.slug.clone(), version: issue.version.clone(), channels: vec![] };
    run_until_settled(p.clone(), fast(), target, Some(Duration::from_secs(60))).await.expect("worker runs")
}

async fn deliveries(p: &Pipeline) -> Vec<DeliveryRow> {
    p.store.list_deliveries(None, &[]).await.expect("list")
}


// ---- retries, permanent failures, rate limits ---------------------------------------------

both!(retries_until_sent);
async fn retries_until_sent(db: TestDb) {
    let fake = WebhookFake::start().await.unwrap();
    fake.faults.push("POST /hook", Fault::Status { code: 500, body: "{\"error\":\"boom\"}".into(), headers: vec![] }, 2);
    let (_, cfg) = write_config(&db, &config_toml(&db.url, &fake.url(), &["hook"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let end = publish_and_wait(&p, &issue_copy(&db, "minimal.md")).await;
    assert_eq!(end, WaitEnd::Settled);
    let ds = deliveries(&p).await;
    assert_eq!(ds.len(), 1);
    let d = &ds[0];
    assert_eq!(d.state(), State::Sent, "{d:?}");
    assert_eq!(d.attempts, 3);
    assert_eq!(d.delivery_key, "minimal/hook/r1");
    assert_eq!(d.remote_id.as_deref(), Some("wh_1"));
    let a = p.store.attempts(d.id).await.unwrap();
    assert_eq!(a.iter().map(|a| a.status_code).collect::<Vec<_>>(), vec![Some(500), Some(500), None]);
    assert_eq!(a.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), vec!["retryable", "retryable", "sent"]);
    assert!(a[0].next_attempt_at.is_some() && a[2].next_attempt_at.is_none());
    assert!(a.iter().all(|a| a.triggered_by == "schedule" && a.content_hash.as_deref().is_some_and(|h| h.len() == 64)));
    assert_eq!(fake.statuses(), vec![500, 500, 200]);
    assert_eq!(fake.accepted().len(), 1);
    assert_eq!(fake.accepted()[0].key, "minimal/hook/r1");
    // Finished queue jobs can be pruned; Herald's tables keep the history.
    assert!(p.queue.deliver_job_count().await.unwrap() >= 3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(p.queue.prune_finished(Duration::ZERO).await.unwrap() >= 3);
    assert_eq!(p.queue.deliver_job_count().await.unwrap(), 0);
    assert_eq!(p.store.attempts(d.id).await.unwrap().len(), 3);
    p.close().await;
}

both!(forbidden_fails_after_one_attempt);
async fn forbidden_fails_after_one_attempt(db: TestDb) {
    let fake = WebhookFake::start().await.unwrap();
    fake.faults.push("POST /hook", Fault::Status { code: 403, body: "{\"error\":\"nope\"}".into(), headers: vec![] }, 5);
    let (_, cfg) = write_config(&db, &config_toml(&db.url, &fake.url(), &["hook"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    assert_eq!(publish_and_wait(&p, &issue_copy(&db, "minimal.md")).await, WaitEnd::Settled);
    let d = &deliveries(&p).await[0];
    assert_eq!(d.state(), State::Failed);
    assert_eq!(d.attempts, 1);
    assert_eq!(d.last_status, Some(403));
    assert!(d.last_error.as_deref().unwrap_or_default().contains("nope"), "{d:?}");
    let a = p.store.attempts(d.id).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].outcome, "needs_auth");
    assert_eq!(fake.statuses(), vec![403]);
    p.close().await;
}

both!(rate_limit_waits_for_retry_after);
async fn rate_limit_waits_for_retry_after(db: TestDb) {
    let fake = WebhookFake::start().await.unwrap();
    let headers = vec![("retry-after".to_string(), "3".to_string())];
    fake.faults.push("POST /hook", Fault::Status { code: 429, body: "{\"error\":\"slow down\"}".into(), headers }, 1);
    let (_, cfg) = write_config(&db, &config_toml(&db.url, &fake.url(), &["hook"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    assert_eq!(publish_and_wait(&p, &issue_copy(&db, "minimal.md")).await, WaitEnd::Settled);
    let d = &deliveries(&p).await[0];
    assert_eq!(d.state(), State::Sent);
    assert_eq!(d.attempts, 1, "a rate-limit wait does not use up an attempt");
    assert_eq!(d.rate_limited_waits, 1);
    let a = p.store.attempts(d.id).await.unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].outcome.as_str(), a[0].status_code), ("rate_limited", Some(429)));
    let next = a[0].next_attempt_at.expect("next attempt planned");
    let ended = a[0].started_at + a[0].duration_ms;
    let delay = next - ended;
    assert!((2_900..=3_600).contains(&delay), "Retry-After 3 s honoured (floor 1 s): {delay} ms");
    assert!(a[1].started_at >= next - 1_500, "second try not early: {} vs {next}", a[1].started_at);
    p.close().await;
}

// ---- idempotent publish ---------------------------------------------------------------------

both!(concurrent_publish_creates_one_set);
async fn concurrent_publish_creates_one_set(db: TestDb) {
    let fake = WebhookFake::start().await.unwrap();
    let (_, cfg) = write_config(&db, &config_toml(&db.url, &fake.url(), &["alpha", "beta"], ""));
    let issue_path = issue_copy(&db, "minimal.md");
    let source = std::fs::read_to_string(&issue_path).unwrap();
    let issue = herald::issue::parse_str(&issue_path, &source).unwrap();
    // Two processes' worth of pools on one store; open them one after the other (migrations).
    let p1 = Arc::new(Pipeline::open(cfg.clone()).await.unwrap());
    let p2 = Arc::new(Pipeline::open(cfg).await.unwrap());
    let (a, b) = tokio::join!(publish::enqueue(&p1, &issue, &source, &[]), publish::enqueue(&p2, &issue, &source, &[]));
    a.unwrap();
    b.unwrap();
    let (a, b) = tokio::join!(publish::run(&p1, "minimal", &issue.version), publish::run(&p2, "minimal", &issue.version));
    let (a, b) = (a.unwrap(), b.unwrap());
    let created = |o: &publish::PublishOutcome| match o {
        publish::PublishOutcome::Created(ids) => ids.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(created(&a) + created(&b), 2, "one delivery per channel across both runs: {a:?} {b:?}");
    let target = WaitFor::Issue { slug: "minimal".into(), version: issue.version.clone(), channels: vec![] };
    assert_eq!(run_until_settled(p1.clone(), fast(), target, Some(Duration::from_secs(60))).await.unwrap(), WaitEnd::Settled);
    let ds = deliveries(&p1).await;
    assert_eq!(ds.len(), 2);
    assert!(ds.iter().all(|d| d.state() == State::Sent && d.attempts == 1));
    let acc = fake.accepted();
    assert_eq!(acc.len(), 2);
    assert_eq!(fake.seen("minimal/alpha/r1"), 1, "one request per channel");
    assert_eq!(fake.seen("minimal/beta/r1"), 1, "one request per channel");
    p1.close().await;
    p2.close().await;
}

both!(publishing_again_to_more_channels_sends_only_the_new_ones);
async fn publishing_again_to_more_channels_sends_only_the_new_ones(db: TestDb) {
    let fake = WebhookFake::start().await.unwrap();
    let (_, cfg) = write_config(&db, &config_toml(&db.url, &fake.url(), &["alpha", "beta"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let path = issue_copy(&db, "minimal.md");
    let source = std::fs::read_to_string(&path).unwrap();
    let issue = herald::issue::parse_str(&path, &source).unwrap();
    for only in [vec!["alpha".to_string()], vec![], vec![]] {
        publish::enqueue(&p, &issue, &source, &only).await.unwrap();
        let target = WaitFor::Issue { slug: "minimal".into(), version: issue.version.clone(), channels: vec![] };
        assert_eq!(run_until_settled(p.clone(), fast(), target, Some(Duration::from_secs(60))).await.unwrap(), WaitEnd::Settled);
        let keys: Vec<String> = fake.accepted().iter().map(|a| a.key.clone()).collect();
        assert_eq!(keys[0], "minimal/alpha/r1");
    }
    let keys: Vec<String> = fake.accepted().iter().map(|a| a.key.clone()).collect();
    assert_eq!(keys, vec!["minimal/alpha/r1", "minimal/beta/r1"], "alpha once, then beta once");
    assert_eq!(deliveries(&p).await.len(), 2);
    p.close().await;
}

// ---- reconciliation with the recording adapter -----------------------------------------------

fn body_rendering(n: u32) -> Vec<RenderedChannel> {
    vec![RenderedChannel {
        channel: "rec".into(),
        kind: "webhook".into(),
        rendering: Rendering::Body(BodyRendering { body: serde_json::json!({ "n": n }) }),
    }]
}

/// Make a delivery look like a crash mid-send: state `sending`, lease held by a dead pid here.
async fn simulate_crash(p: &Pipeline, id: i64) {
    let host = herald::store::lease::hostname();
    sqlx::query("UPDATE deliveries SET state = 'sending', lease_owner = $2, lease_until = $3 WHERE id = $1")
        .bind(id)
        .bind(format!("{host}:4194305:12345:deadbeef"))
        .bind(herald::store::now_ms() + 600_000)
        .execute(p.store.pool())
        .await
        .unwrap();
}

both!(crash_mid_send_reconciles_before_sending);
async fn crash_mid_send_reconciles_before_sending(db: TestDb) {
    let (_, cfg) = write_config(&db, &config_toml(&db.url, "http://127.0.0.1:9/", &["rec"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let rec = Arc::new(RecordingAdapter::new());
    p.set_adapter("rec", rec.clone());
    // Found: the post is there, so no send at all.
    let ids = publish::create_and_push(&p, "one", "v1", &body_rendering(1), Trigger::Schedule, None).await.unwrap();
    simulate_crash(&p, ids[0]).await;
    rec.push_reconcile(Reconciled::Found(Receipt { remote_id: "remote-1".into(), url: Some("https://x.invalid/1".into()), ..Default::default() }));
    let out = herald::jobs::deliver::run(&p, ids[0]).await.unwrap();
    assert_eq!(out, herald::jobs::deliver::DeliverOutcome::Now(State::Sent), "dead lease voided at once");
    assert!(rec.calls().is_empty(), "never re-sent");
    let d = p.store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!((d.state(), d.remote_id.as_deref()), (State::Sent, Some("remote-1")));
    assert_eq!(p.store.attempts(d.id).await.unwrap()[0].outcome, "reconciled");

    // CannotCheck: waits for the operator with the reason; nothing is sent.
    let ids = publish::create_and_push(&p, "two", "v1", &body_rendering(2), Trigger::Schedule, None).await.unwrap();
    simulate_crash(&p, ids[0]).await;
    rec.push_reconcile(Reconciled::CannotCheck("no lookup on this network".into()));
    herald::jobs::deliver::run(&p, ids[0]).await.unwrap();
    let d = p.store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!(d.state(), State::Unconfirmed);
    assert_eq!(d.next_attempt_at, None, "waits for the operator");
    assert_eq!(d.last_error.as_deref(), Some("no lookup on this network"));
    assert!(rec.calls().is_empty());
    // A second job does nothing: not owed without the operator.
    assert!(matches!(herald::jobs::deliver::run(&p, ids[0]).await.unwrap(), herald::jobs::deliver::DeliverOutcome::Skipped(_)));

    // NotFound: sent once.
    let ids = publish::create_and_push(&p, "three", "v1", &body_rendering(3), Trigger::Schedule, None).await.unwrap();
    simulate_crash(&p, ids[0]).await;
    herald::jobs::deliver::run(&p, ids[0]).await.unwrap();
    assert_eq!(rec.calls().len(), 1);
    assert_eq!(rec.calls()[0].key, "three/rec/r1");
    assert_eq!(rec.finds(), vec!["one/rec/r1", "two/rec/r1", "three/rec/r1"]);
    p.close().await;
}

both!(live_lease_excludes_a_second_worker);
async fn live_lease_excludes_a_second_worker(db: TestDb) {
    let (_, cfg) = write_config(&db, &config_toml(&db.url, "http://127.0.0.1:9/", &["rec"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let rec = Arc::new(RecordingAdapter::with_script([Answer::Delay(Duration::from_millis(800))]));
    p.set_adapter("rec", rec.clone());
    let ids = publish::create_and_push(&p, "lease", "v1", &body_rendering(1), Trigger::Schedule, None).await.unwrap();
    let (a, b) = tokio::join!(herald::jobs::deliver::run(&p, ids[0]), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        herald::jobs::deliver::run(&p, ids[0]).await
    });
    assert_eq!(a.unwrap(), herald::jobs::deliver::DeliverOutcome::Now(State::Sent));
    assert!(matches!(b.unwrap(), herald::jobs::deliver::DeliverOutcome::Skipped(_)));
    assert_eq!(rec.calls().len(), 1, "exactly one send");
    p.close().await;
}

both!(a_panicking_adapter_is_an_unknown_outcome);
async fn a_panicking_adapter_is_an_unknown_outcome(db: TestDb) {
    let (_, cfg) = write_config(&db, &config_toml(&db.url, "http://127.0.0.1:9/", &["rec"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let rec = Arc::new(RecordingAdapter::with_script([Answer::Panic]));
    p.set_adapter("rec", rec.clone());
    let ids = publish::create_and_push(&p, "boom", "v1", &body_rendering(1), Trigger::Schedule, None).await.unwrap();
    assert_eq!(herald::jobs::deliver::run(&p, ids[0]).await.unwrap(), herald::jobs::deliver::DeliverOutcome::Now(State::Unconfirmed));
    let d = p.store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!(d.lease_owner, None, "lease released");
    assert!(d.next_attempt_at.is_some(), "reconciled on the next run");
    assert!(d.last_error.unwrap().contains("panicked"));
    p.close().await;
}

both!(cancel_stops_a_retry_chain);
async fn cancel_stops_a_retry_chain(db: TestDb) {
    let (_, cfg) = write_config(&db, &config_toml(&db.url, "http://127.0.0.1:9/", &["rec"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let rec = Arc::new(RecordingAdapter::with_script([Answer::err(Kind::Retryable, 500)]));
    p.set_adapter("rec", rec.clone());
    let ids = publish::create_and_push(&p, "cx", "v1", &body_rendering(1), Trigger::Schedule, None).await.unwrap();
    assert_eq!(herald::jobs::deliver::run(&p, ids[0]).await.unwrap(), herald::jobs::deliver::DeliverOutcome::Now(State::Retrying));
    let cancelled = p.store.cancel("cx", &[]).await.unwrap();
    assert_eq!(cancelled.len(), 1);
    let d = p.store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!((d.state(), d.next_attempt_at), (State::Cancelled, None));
    // The retry job that was already queued finds nothing owed.
    assert!(matches!(herald::jobs::deliver::run(&p, ids[0]).await.unwrap(), herald::jobs::deliver::DeliverOutcome::Skipped(_)));
    assert_eq!(herald::jobs::worker::sweep(&p).await.unwrap(), 0);
    assert_eq!(rec.calls().len(), 1);
    // A sent delivery is never cancelled.
    let ids = publish::create_and_push(&p, "cy", "v1", &body_rendering(2), Trigger::Schedule, None).await.unwrap();
    herald::jobs::deliver::run(&p, ids[0]).await.unwrap();
    assert!(p.store.cancel("cy", &[]).await.unwrap().is_empty());
    p.close().await;
}

both!(manual_attempt_has_no_retry_chain);
async fn manual_attempt_has_no_retry_chain(db: TestDb) {
    let (_, cfg) = write_config(&db, &config_toml(&db.url, "http://127.0.0.1:9/", &["rec"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let rec = Arc::new(RecordingAdapter::with_script([Answer::err(Kind::Retryable, 503)]));
    p.set_adapter("rec", rec.clone());
    let ids = publish::create_and_push(&p, "man", "v1", &body_rendering(1), Trigger::Manual, Some(2)).await.unwrap();
    herald::jobs::deliver::run(&p, ids[0]).await.unwrap();
    let d = p.store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!(d.delivery_key, "man/rec/r2");
    assert_eq!(d.state(), State::Failed, "a manual attempt is one attempt");
    assert_eq!(d.next_attempt_at, None);
    assert!(d.last_error.unwrap().contains("manual attempt"));
    // `retry` redrives it once.
    assert!(p.store.redrive(d.id, &herald::jobs::queue::new_job_id()).await.unwrap());
    herald::jobs::deliver::run(&p, ids[0]).await.unwrap();
    let d = p.store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!(d.state(), State::Sent);
    assert_eq!(rec.calls().len(), 2);
    let a = p.store.attempts(d.id).await.unwrap();
    assert_eq!(a.iter().map(|a| a.triggered_by.as_str()).collect::<Vec<_>>(), vec!["manual", "manual"]);
    p.close().await;
}

both!(sweeper_pushes_owed_deliveries_without_a_live_job);
async fn sweeper_pushes_owed_deliveries_without_a_live_job(db: TestDb) {
    let (_, cfg) = write_config(&db, &config_toml(&db.url, "http://127.0.0.1:9/", &["rec"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let ids = publish::create_and_push(&p, "sw", "v1", &body_rendering(1), Trigger::Schedule, None).await.unwrap();
    // The job pushed after commit is live: nothing to do.
    assert_eq!(herald::jobs::worker::sweep(&p).await.unwrap(), 0);
    // Lose the job (as if the push after commit never happened).
    sqlx::query("UPDATE deliveries SET job_id = '01ARZ3NDEKTSV4RRFFQ69G5FAV' WHERE id = $1").bind(ids[0]).execute(p.store.pool()).await.unwrap();
    assert_eq!(herald::jobs::worker::sweep(&p).await.unwrap(), 1);
    assert_eq!(herald::jobs::worker::sweep(&p).await.unwrap(), 0, "now it has a live job");
    p.close().await;
}

// ---- durability ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pragmas_hold_on_every_pooled_connection() {
    let db = TestDb::sqlite().await;
    let url = StoreUrl::parse(&db.url, Path::new("/")).unwrap();
    let store = herald::store::Store::open(&url).await.unwrap();
    let queue = herald::jobs::Queue::open(&url, 4).await.unwrap();
    assert!(url.queue_path().unwrap().ends_with("data/herald.queue.db"));
    assert!(url.queue_path().unwrap().exists());
    // Hold every connection of the pool at once, so each is a distinct pooled connection.
    let size = herald::store::SQLITE_POOL_SIZE;
    let mut held = Vec::new();
    for _ in 0..size {
        let mut c = store.pool().acquire().await.unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *c).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *c).await.unwrap();
        assert_eq!(sync, 2, "Herald's store: synchronous=FULL");
        assert_eq!(mode, "wal");
        held.push(c);
    }
    let herald::jobs::Queue::Sqlite { pool, .. } = &queue else { panic!("sqlite queue") };
    let mut qheld = Vec::new();
    for _ in 0..size {
        let mut c = pool.acquire().await.unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *c).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *c).await.unwrap();
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *c).await.unwrap();
        assert_eq!(sync, 1, "queue: synchronous=NORMAL (never apalis's OFF)");
        assert_eq!(mode, "wal");
        assert_eq!(busy, 10_000);
        qheld.push(c);
    }
    drop((held, qheld));
    // The queue tables are in the queue file, Herald's in Herald's file.
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'Jobs'").fetch_one(store.pool()).await.unwrap();
    assert_eq!(n, 0);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'deliveries'").fetch_one(store.pool()).await.unwrap();
    assert_eq!(n, 1);
    // Reopening (a restart) migrates cleanly.
    drop(queue);
    herald::jobs::Queue::open(&url, 4).await.unwrap();
    herald::store::Store::open(&url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tables_live_in_their_schemas() {
    let db = TestDb::postgres().await;
    let url = StoreUrl::parse(&db.url, Path::new("/")).unwrap();
    let store = herald::store::Store::open(&url).await.unwrap();
    let _queue = herald::jobs::Queue::open(&url, 4).await.unwrap();
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables WHERE table_name IN ('deliveries', 'attempts', 'jobs', '_sqlx_migrations') ORDER BY 1, 2",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let rows: Vec<String> = rows.into_iter().map(|(s, t)| format!("{s}.{t}")).collect();
    assert_eq!(rows, vec!["apalis._sqlx_migrations", "apalis.jobs", "herald._sqlx_migrations", "herald.attempts", "herald.deliveries"]);
    store.close().await;
}

// ---- the built binary: crash safety, status, log, secrets, two daemons ----------------------

/// The binary under test. `HERALD_TEST_BIN` overrides it: several worktrees share one target
/// dir, and another branch's build can replace `target/debug/herald` mid-run.
pub fn herald_bin() -> PathBuf {
    std::env::var_os("HERALD_TEST_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_herald")))
}

fn herald_cmd(cfg: &Path) -> Command {
    let mut c = Command::new(herald_bin());
    c.arg("--config").arg(cfg).env_remove("HERALD_CONFIG").env("RUST_LOG", "herald=debug");
    c
}

/// A child process killed (SIGKILL) when the test ends, even on a failed assertion.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Reap {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reap {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn run_out(mut c: Command) -> (i32, String, String) {
    let o = c.output().expect("run herald");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn store_for(db: &TestDb) -> herald::store::Store {
    herald::store::Store::open(&StoreUrl::parse(&db.url, Path::new("/")).unwrap()).await.unwrap()
}

/// kill -9 `publish --wait` while the fake holds its answers, rerun, expect every delivery sent
/// and no body accepted twice. `after_accept`: the kill lands after the fake kept the body
/// (between the remote call and Herald's commit); otherwise before.
async fn crash_and_rerun(db: TestDb, after_accept: bool) {
    let fake = WebhookFake::start().await.unwrap();
    let chans = ["a", "b", "c"];
    let (cfg_path, _) = write_config(&db, &config_toml(&db.url, &fake.url(), &chans, ""));
    let issue = issue_copy(&db, "minimal.md");
    if after_accept {
        fake.set_hold_after_accept(Some(Duration::from_secs(30)));
    } else {
        fake.faults.push("POST /hook", Fault::Delay(Duration::from_secs(30)), 3);
    }
    let mut child = Reap(herald_cmd(&cfg_path)
        .args(["publish", issue.to_str().unwrap(), "--wait", "--timeout", "120"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    if after_accept {
        wait_until("three bodies kept", 60, || fake.accepted().len() == 3).await;
    } else {
        wait_until("three requests in flight", 60, || fake.requests().len() == 3).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let store = store_for(&db).await;
    let before = store.list_deliveries(None, &[]).await.unwrap();
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|d| d.state() == State::Sending), "killed mid-send: {:?}", before.iter().map(|d| &d.state).collect::<Vec<_>>());
    fake.set_hold_after_accept(None);
    fake.faults.clear();
    let started = Instant::now();
    let (code, out, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["publish", issue.to_str().unwrap(), "--wait", "--timeout", "60"]);
        c
    });
    assert_eq!(code, 0, "rerun settles all sent\n{out}\n{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "the dead lease was voided at once: {:?}", started.elapsed());
    let after = store.list_deliveries(None, &[]).await.unwrap();
    assert!(after.iter().all(|d| d.state() == State::Sent), "{after:?}");
    assert_eq!(fake.accepted().len(), 3);
    assert_eq!(fake.duplicates(), 0);
    for c in chans {
        let key = format!("minimal/{c}/r1");
        assert_eq!(fake.accepted().iter().filter(|a| a.key == key).count(), 1, "{key} accepted once");
        if after_accept {
            assert_eq!(fake.seen(&key), 2, "{key}: reconciled by a resend the receiver answered 409");
        }
    }
    store.close().await;
}

both!(crash_before_the_answer);
async fn crash_before_the_answer(db: TestDb) {
    crash_and_rerun(db, false).await
}

both!(crash_between_remote_call_and_commit);
async fn crash_between_remote_call_and_commit(db: TestDb) {
    crash_and_rerun(db, true).await
}

both!(two_publish_processes_at_once_send_each_channel_once);
async fn two_publish_processes_at_once_send_each_channel_once(db: TestDb) {
    let fake = WebhookFake::start().await.unwrap();
    fake.faults.push("POST /hook", Fault::Delay(Duration::from_millis(300)), 10);
    let (cfg_path, _) = write_config(&db, &config_toml(&db.url, &fake.url(), &["alpha", "beta", "gamma"], ""));
    let issue = issue_copy(&db, "minimal.md");
    // Both start on a fresh store: they race on migrations, the Publish job and every delivery.
    let spawn = || {
        Reap(herald_cmd(&cfg_path).args(["publish", issue.to_str().unwrap(), "--wait", "--timeout", "60"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
    };
    let (a, b) = (spawn(), spawn());
    for mut c in [a, b] {
        let st = c.0.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(c.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(st.success(), "both settle all sent: {st:?}\n{err}");
    }
    for ch in ["alpha", "beta", "gamma"] {
        assert_eq!(fake.seen(&format!("minimal/{ch}/r1")), 1, "{ch}: exactly one request");
    }
    assert_eq!(fake.accepted().len(), 3);
    let store = store_for(&db).await;
    assert_eq!(store.list_deliveries(None, &[]).await.unwrap().len(), 3);
    store.close().await;
}

both!(status_and_log_json_fields);
async fn status_and_log_json_fields(db: TestDb) {
    let fake = WebhookFake::start().await.unwrap();
    fake.faults.push("POST /hook", Fault::Status { code: 502, body: "bad gateway".into(), headers: vec![] }, 1);
    let (cfg_path, _) = write_config(&db, &config_toml(&db.url, &fake.url(), &["hook"], ""));
    let issue = issue_copy(&db, "minimal.md");
    let (code, out, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["publish", issue.to_str().unwrap(), "--wait", "--json"]);
        c
    });
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("publish --json prints the status array");
    assert_eq!(v[0]["state"], "sent");

    for arg in ["minimal", issue.to_str().unwrap()] {
        let (code, out, _) = run_out({
            let mut c = herald_cmd(&cfg_path);
            c.args(["status", arg, "--json"]);
            c
        });
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let row = &v.as_array().unwrap()[0];
        for f in ["issue", "version", "channel", "type", "revision", "key", "state", "attempts", "rate_limited_waits", "remote_id", "remote_url", "last_error", "last_status", "next_attempt_at", "trigger", "created_at", "updated_at"] {
            assert!(row.get(f).is_some(), "status --json has `{f}`: {row}");
        }
        assert_eq!(row["issue"], "minimal");
        assert_eq!(row["channel"], "hook");
        assert_eq!(row["type"], "webhook");
        assert_eq!(row["key"], "minimal/hook/r1");
        assert_eq!(row["attempts"], 2);
        assert_eq!(row["remote_url"], format!("{}/items/1", fake.base_url));
    }
    let (code, out, _) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["log", "minimal", "--json"]);
        c
    });
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(lines.len(), 2);
    for f in ["id", "key", "issue", "channel", "attempt", "started_at", "duration_ms", "trigger", "outcome", "status", "error", "next_attempt_at", "content_hash", "remote_id"] {
        assert!(lines[0].get(f).is_some(), "log --json has `{f}`");
    }
    assert_eq!((lines[0]["attempt"].as_i64(), lines[0]["outcome"].as_str(), lines[0]["status"].as_i64()), (Some(1), Some("retryable"), Some(502)));
    assert_eq!((lines[1]["attempt"].as_i64(), lines[1]["outcome"].as_str()), (Some(2), Some("sent")));
    assert_eq!(lines[1]["trigger"], "schedule");
    // Human forms mention the same things.
    let (_, out, _) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["status"]);
        c
    });
    assert!(out.contains("minimal") && out.contains("hook") && out.contains("sent"), "{out}");
    let (_, out, _) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["log"]);
        c
    });
    assert!(out.contains("minimal/hook/r1") && out.contains("retryable 502"), "{out}");

    // Republish: a new revision, a new key, one manual attempt.
    let (code, out, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["republish", "minimal", "--channel", "hook", "--wait"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let keys: Vec<String> = fake.accepted().iter().map(|a| a.key.clone()).collect();
    assert_eq!(keys, vec!["minimal/hook/r1", "minimal/hook/r2"]);
    let (_, out, _) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["status", "minimal", "--json"]);
        c
    });
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v[0]["revision"].as_i64(), v[0]["trigger"].as_str(), v[0]["state"].as_str()), (Some(2), Some("manual"), Some("sent")));
    // Nothing failed, nothing open: retry and cancel have nothing to do.
    let (code, _, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["retry", "minimal"]);
        c
    });
    assert_eq!(code, 0);
    assert!(err.contains("Nothing to retry"), "{err}");
    let (code, _, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["cancel", "minimal"]);
        c
    });
    assert_eq!(code, 0);
    assert!(err.contains("Nothing to cancel"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_finishes_in_flight_work_on_sigterm() {
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    fake.faults.push("POST /hook", Fault::Delay(Duration::from_secs(2)), 1);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = config_toml(&db.url, &fake.url(), &["hook"], "").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let (cfg_path, _) = write_config(&db, &text);
    let issue = issue_copy(&db, "minimal.md");
    let mut d = Reap(herald_cmd(&cfg_path).args(["daemon"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let (code, _, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["publish", issue.to_str().unwrap()]);
        c
    });
    assert_eq!(code, 0, "{err}");
    wait_until("the request in flight", 30, || fake.requests().len() == 1).await;
    // The HTTP side answers while it works.
    let base = format!("http://127.0.0.1:{port}");
    let http = herald::channel::http::client();
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status().as_u16(), 200);
    let status: serde_json::Value = http.get(format!("{base}/status.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["deliveries"][0]["state"], "sending", "{status}");
    Command::new("kill").args(["-TERM", &d.id().to_string()]).status().unwrap();
    let t = Instant::now();
    let st = loop {
        if let Some(st) = d.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "daemon did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(st.success(), "{st:?}");
    let store = store_for(&db).await;
    let ds = store.list_deliveries(None, &[]).await.unwrap();
    assert_eq!(ds[0].state(), State::Sent, "the in-flight delivery finished before exit");
    assert_eq!(fake.accepted().len(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_output() {
    let db = TestDb::sqlite().await;
    const SECRET: &str = "whsec-9f8e7d6c5b4a-do-not-print";
    let fake = WebhookFake::start().await.unwrap();
    fake.set_secret(SECRET);
    let mut text = config_toml(&db.url, &fake.url(), &["signed"], "secret = \"${HERALD_IT_HOOK_SECRET}\"\n");
    text.push_str(&format!("[channels.wrongkey]\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"${{HERALD_IT_WRONG_SECRET}}\"\n", fake.url()));
    let (cfg_path, _) = write_config(&db, &text);
    let issue = issue_copy(&db, "minimal.md");
    let mut all = String::new();
    for args in [
        vec!["-vv", "publish", issue.to_str().unwrap(), "--wait"],
        vec!["-vv", "status"],
        vec!["status", "--json"],
        vec!["log"],
        vec!["log", "--json"],
        vec!["-vv", "--log-format", "json", "retry", "--wait"],
    ] {
        let mut c = herald_cmd(&cfg_path);
        c.args(&args).env("HERALD_IT_HOOK_SECRET", SECRET).env("HERALD_IT_WRONG_SECRET", format!("{SECRET}-wrong"));
        let (_, out, err) = run_out(c);
        all.push_str(&out);
        all.push_str(&err);
    }
    let store = store_for(&db).await;
    let ds = store.list_deliveries(None, &[]).await.unwrap();
    let signed = ds.iter().find(|d| d.channel == "signed").unwrap();
    let wrong = ds.iter().find(|d| d.channel == "wrongkey").unwrap();
    assert_eq!(signed.state(), State::Sent, "the signature verifies");
    assert_eq!((wrong.state(), wrong.last_status), (State::Failed, Some(401)), "a bad signature is refused");
    assert!(all.contains("minimal/signed/r1"), "the outputs were captured: {all}");
    assert!(!all.contains(SECRET), "a secret leaked into the output:\n{all}");
    assert!(!all.contains("9f8e7d6c5b4a"), "part of a secret leaked");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_one_postgres_queue_exactly_once() {
    let db = TestDb::postgres().await;
    let fake = WebhookFake::start().await.unwrap();
    fake.faults.push("POST /hook", Fault::Delay(Duration::from_millis(1500)), 100);
    let chans = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"];
    let (cfg_path, _) = write_config(&db, &config_toml(&db.url, &fake.url(), &chans, ""));
    let issue = issue_copy(&db, "minimal.md");
    // Migrate once before the daemons start, so they race only on work.
    store_for(&db).await.close().await;
    let spawn = || {
        Reap(herald_cmd(&cfg_path).args(["daemon", "--concurrency", "2"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
    };
    let (mut d1, mut d2) = (spawn(), spawn());
    // Wait until both daemons' Deliver workers are registered with the queue.
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apalis.workers WHERE worker_type = 'herald.deliver'")
            .fetch_one(&mut c)
            .await
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(Instant::now() < end, "the daemons did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["publish", issue.to_str().unwrap()]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let store = store_for(&db).await;
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let ds = store.list_deliveries(None, &[]).await.unwrap();
        if ds.len() == chans.len() && ds.iter().all(|d| d.state() == State::Sent) {
            break;
        }
        assert!(Instant::now() < end, "not all sent: {:?}", ds.iter().map(|d| (&d.channel, &d.state)).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for c in chans {
        let key = format!("minimal/{c}/r1");
        assert_eq!(fake.seen(&key), 1, "{key}: exactly one request");
    }
    assert_eq!(fake.accepted().len(), chans.len());
    // Which daemon took which job is up to apalis (a worker prefetches); print it for the record.
    let workers: Vec<String> = sqlx::query_scalar("SELECT lock_by FROM apalis.jobs WHERE job_type = 'herald.deliver' AND lock_by IS NOT NULL")
        .fetch_all(&mut c)
        .await
        .unwrap();
    eprintln!("deliver jobs by worker: {workers:?}");

    // Phase 2: kill -9 the daemon holding a lease mid-send; the other finishes everything,
    // and the receiver still gets each delivery exactly once.
    fake.faults.clear();
    fake.faults.push("POST /hook", Fault::Delay(Duration::from_secs(4)), 100);
    let second = db.dir.path().join("second.md");
    std::fs::write(&second, std::fs::read_to_string(&issue).unwrap().replace("slug = \"minimal\"", "slug = \"second\"")).unwrap();
    let (code, out, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["publish", second.to_str().unwrap()]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let mut victim_pid = None;
    let end = Instant::now() + Duration::from_secs(60);
    while victim_pid.is_none() {
        for d in store.list_deliveries(Some("second"), &[]).await.unwrap() {
            if d.state() == State::Sending {
                victim_pid = d.lease_owner.as_deref().and_then(|o| o.split(':').nth(1)).map(str::to_string);
            }
        }
        assert!(Instant::now() < end, "no delivery in flight");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim_pid = victim_pid.unwrap();
    let (victim, survivor) = if d1.id().to_string() == victim_pid { (&mut d1, &mut d2) } else { (&mut d2, &mut d1) };
    assert_eq!(victim.id().to_string(), victim_pid, "the lease names a daemon's pid");
    victim.kill().unwrap();
    victim.wait().unwrap();
    fake.faults.clear();
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let ds = store.list_deliveries(Some("second"), &[]).await.unwrap();
        if ds.len() == chans.len() && ds.iter().all(|d| d.state() == State::Sent) {
            break;
        }
        assert!(Instant::now() < end, "the survivor did not finish: {:?}", ds.iter().map(|d| (&d.channel, &d.state)).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for c in chans {
        let key = format!("second/{c}/r1");
        assert_eq!(fake.accepted().iter().filter(|a| a.key == key).count(), 1, "{key} accepted exactly once");
    }
    assert_eq!(fake.accepted().len(), 2 * chans.len());
    assert_eq!(fake.duplicates(), 0);
    // Graceful shutdown of the survivor on SIGTERM.
    Command::new("kill").args(["-TERM", &survivor.id().to_string()]).status().unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = survivor.try_wait().unwrap() {
            assert!(st.success(), "daemon exits cleanly on SIGTERM: {st:?}");
            break;
        }
        assert!(Instant::now() < end, "daemon did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_stores_and_sends_nothing() {
    let db = TestDb::sqlite().await;
    let fake = WebhookFake::start().await.unwrap();
    let (cfg_path, _) = write_config(&db, &config_toml(&db.url, &fake.url(), &["hook"], ""));
    let bad = db.dir.path().join("bad.md");
    std::fs::write(&bad, "no front matter here\n").unwrap();
    let (code, _, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["publish", bad.to_str().unwrap(), "--wait"]);
        c
    });
    assert_eq!(code, 2, "{err}");
    let issue = issue_copy(&db, "minimal.md");
    let (code, _, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.args(["publish", issue.to_str().unwrap(), "--channel", "nosuch"]);
        c
    });
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nosuch"), "{err}");
    // A missing credential is bad input too, named but never printed.
    let mut text = config_toml(&db.url, &fake.url(), &["hook"], "");
    text.push_str("[channels.signed]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret = \"${HERALD_IT_UNSET_SECRET}\"\n");
    let (cfg2, _) = write_config(&db, &text);
    let (code, _, err) = run_out({
        let mut c = herald_cmd(&cfg2);
        c.args(["publish", issue.to_str().unwrap()]).env_remove("HERALD_IT_UNSET_SECRET");
        c
    });
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("HERALD_IT_UNSET_SECRET") && err.contains("signed"), "{err}");
    assert!(fake.requests().is_empty());
    assert!(!db.dir.path().join("data/herald.db").exists() || store_for(&db).await.list_deliveries(None, &[]).await.unwrap().is_empty());
}

// ---- the typed seam: outcomes, preflight, schedules -----------------------------------------

/// An issue file `slug` in `dir` (created), with `publish_at` minutes from now (negative: past).
fn scheduled_issue(dir: &Path, slug: &str, minutes: i64) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).unwrap();
    let at = (chrono::Utc::now() + chrono::Duration::minutes(minutes)).format("%Y-%m-%dT%H:%M:%SZ");
    let text = format!(
        "+++\ntitle = \"Issue {slug}\"\nslug = \"{slug}\"\ndate = 2026-11-02\nurl = \"https://news.example.com/{slug}\"\n\
         summary = \"A scheduled one.\"\npublish_at = \"{at}\"\n+++\n\nA paragraph with a [link](https://news.example.com/about).\n"
    );
    let path = dir.join(format!("{slug}.md"));
    std::fs::write(&path, &text).unwrap();
    let version = herald::issue::parse_str(&path, &text).expect("issue parses").version;
    (path, version)
}

/// A lease/claim owner on this host whose process is gone.
fn dead_tag() -> String {
    format!("{}:4194305:12345", herald::store::lease::hostname())
}

both!(every_documented_outcome_has_a_row_that_shows_it);
/// Issue 14 item 12: each outcome the attempt log documents is written by the path that
/// produces it, `exhausted` for the attempt that uses up the schedule and `interrupted` for one
/// whose process died.
async fn every_documented_outcome_has_a_row_that_shows_it(db: TestDb) {
    use herald::store::AttemptOutcome as O;
    let mut text = format!("publish_at_catch_up_secs = 3600\n{}", config_toml(&db.url, "http://127.0.0.1:9/", &["rec"], ""));
    let token = db.dir.path().join("li.token");
    std::fs::write(&token, "tok").unwrap();
    text.push_str(&format!(
        "[channels.li]\ntype = \"linkedin\"\napi_base = \"http://127.0.0.1:9\"\naccess_token_file = \"{}\"\nauthor = \"urn:li:person:abc\"\n\
         token_expires_at = \"2026-01-01T00:00:00Z\"\n",
        token.display()
    ));
    let (_, cfg) = write_config(&db, &text);
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let rec = Arc::new(RecordingAdapter::with_script([
        Answer::Ok(Receipt { remote_id: "draft-1".into(), awaiting_confirmation: true, ..Default::default() }),
        Answer::err(Kind::Permanent, 400),
        Answer::err(Kind::Forbidden, 403),
        Answer::Err { kind: Kind::RateLimited, message: "slow down".into(), status: Some(429), retry_after: Some(Duration::from_secs(7)) },
        Answer::err(Kind::UnknownOutcome, 504),
        Answer::err(Kind::Retryable, 500),
        Answer::err(Kind::Retryable, 500),
        Answer::err(Kind::Retryable, 500),
        Answer::err(Kind::Retryable, 500),
    ]));
    p.set_adapter("rec", rec.clone());
    p.set_adapter("li", rec.clone());
    let run = |id: i64| {
        let p = p.clone();
        async move { herald::jobs::deliver::run(&p, id).await.unwrap() }
    };
    let new = |slug: &'static str| {
        let p = p.clone();
        async move { publish::create_and_push(&p, slug, "v1", &body_rendering(1), Trigger::Schedule, None).await.unwrap()[0] }
    };
    let mut seen = Vec::new();
    let mut rows_of = async |id: i64| {
        let rows = p.store.attempts(id).await.unwrap();
        seen.extend(rows.iter().map(|r| r.outcome().expect("a known outcome")));
        rows
    };

    let id = new("awaiting").await;
    run(id).await;
    assert_eq!(rows_of(id).await[0].outcome, "awaiting_confirmation");
    for (slug, want, status) in [("perm", "permanent", 400), ("forb", "forbidden", 403), ("slow", "rate_limited", 429), ("unk", "unknown_outcome", 504)] {
        let id = new(slug).await;
        run(id).await;
        let rows = rows_of(id).await;
        assert_eq!((rows[0].outcome.as_str(), rows[0].status_code), (want, Some(status)), "{slug}");
    }
    // Schedule [0, 0, 0]: three retryable rows, then the attempt that uses it up.
    let id = new("tired").await;
    for _ in 0..4 {
        run(id).await;
    }
    let rows = rows_of(id).await;
    assert_eq!(rows.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), vec!["retryable", "retryable", "retryable", "exhausted"]);
    assert_eq!(rows[3].error.as_deref(), Some("gave up after 4 attempts: scripted 500"));
    assert_eq!(p.store.get_delivery(id).await.unwrap().unwrap().state(), State::Failed);
    // Sent.
    let id = new("fine").await;
    run(id).await;
    assert_eq!(rows_of(id).await[0].outcome, "sent");
    // A dead process's attempt: interrupted, then reconciled (found) or cannot_check.
    for (slug, answer, want) in [
        ("found", Reconciled::Found(Receipt { remote_id: "r-1".into(), ..Default::default() }), "reconciled"),
        ("unsure", Reconciled::CannotCheck("no lookup here".into()), "cannot_check"),
    ] {
        let id = new(slug).await;
        let dead = format!("{}:deadbeef", dead_tag());
        assert!(p.store.acquire_lease(id, &dead, herald::store::now_ms() + 600_000, None).await.unwrap());
        assert!(p.store.mark_sending(id, &dead).await.unwrap());
        rec.push_reconcile(answer);
        run(id).await;
        let rows = rows_of(id).await;
        assert_eq!(rows.iter().map(|r| (r.n, r.outcome.as_str())).collect::<Vec<_>>(), vec![(1, "interrupted"), (2, want)], "{slug}");
    }
    // An expired credential: needs_auth before any call.
    let calls = rec.calls().len();
    let rc = RenderedChannel { channel: "li".into(), kind: "linkedin".into(), rendering: Rendering::Body(BodyRendering { body: serde_json::json!({}) }) };
    let id = publish::create_and_push(&p, "expired", "v1", &[rc], Trigger::Schedule, None).await.unwrap()[0];
    run(id).await;
    let rows = rows_of(id).await;
    assert_eq!(rows[0].outcome, "needs_auth");
    assert!(rows[0].error.as_deref().unwrap().contains("re-authorise"), "{:?}", rows[0].error);
    assert_eq!(rec.calls().len(), calls, "no call");

    for o in O::ALL {
        assert!(seen.contains(&o), "no row shows `{o}`");
    }
    p.close().await;
}

both!(an_expired_credential_stops_only_its_channel_for_every_trigger);
/// Issue 14 item 11: one preflight for every trigger. A `publish_at` fire and a cron fire create
/// the deliveries; the LinkedIn channel, whose token expired, ends `needs_auth` with the fix
/// before any call, and the webhook goes on. `herald publish` and `republish` refuse (exit 2).
async fn an_expired_credential_stops_only_its_channel_for_every_trigger(db: TestDb) {
    let hook = WebhookFake::start().await.unwrap();
    let li = herald::sandbox::linkedin::LinkedinFake::start().await.unwrap();
    // A token the fake accepts: only the configured expiry says it is stale.
    let token = db.dir.path().join("li.token");
    std::fs::write(&token, herald::sandbox::linkedin::ACCESS_TOKEN).unwrap();
    let mut text = format!("issues_dir = \"issues\"\n{}", config_toml(&db.url, &hook.url(), &["hook"], ""));
    text.push_str(&format!(
        "[channels.li]\ntype = \"linkedin\"\napi_base = \"{}\"\naccess_token_file = \"{}\"\nauthor = \"{}\"\nlinkedin_version = \"{}\"\n\
         token_expires_at = \"2026-01-01T00:00:00Z\"\n\n[[schedule]]\nname = \"weekly\"\ncron = \"0 0 8 * * Mon\"\nwhat = \"cronned\"\n",
        li.base_url,
        token.display(),
        herald::sandbox::linkedin::PERSON,
        chrono::Utc::now().format("%Y%m")
    ));
    let (cfg_path, cfg) = write_config(&db, &text);
    let issues = db.dir.path().join("issues");
    let (_, v1) = scheduled_issue(&issues, "due", -5);
    let (cronned, v2) = scheduled_issue(&issues, "cronned", 60 * 24 * 30);
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    herald::jobs::cron::scan_publish_at(&p, &mut herald::schedule::ScanCache::default(), chrono::Utc::now()).await.unwrap();
    let entries = herald::jobs::cron::entries(&p).unwrap();
    herald::jobs::cron::fire(&p, &entries[0], chrono::Utc::now(), "fired").await.unwrap();
    for (slug, version) in [("due", &v1), ("cronned", &v2)] {
        let target = WaitFor::Issue { slug: slug.into(), version: version.clone(), channels: vec![] };
        assert_eq!(run_until_settled(p.clone(), fast(), target, Some(Duration::from_secs(30))).await.unwrap(), WaitEnd::Settled);
        let ds = p.store.list_deliveries(Some(slug), &[]).await.unwrap();
        let by = |c: &str| ds.iter().find(|d| d.channel == c).unwrap_or_else(|| panic!("{slug}: no {c} delivery")).clone();
        assert_eq!(by("hook").state(), State::Sent, "{slug}: the other channel goes on");
        let d = by("li");
        assert_eq!(d.state(), State::Failed, "{slug}");
        let rows = p.store.attempts(d.id).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), vec!["needs_auth"], "{slug}");
        let e = rows[0].error.clone().unwrap();
        assert!(e.contains("expired") && e.contains("re-authorise") && e.contains("token_expires_at"), "{slug}: {e}");
    }
    assert!(li.requests().is_empty(), "LinkedIn was never called: {:?}", li.requests());
    p.close().await;
    // The CLI triggers refuse before storing anything.
    for args in [vec!["publish", cronned.to_str().unwrap()], vec!["republish", "due", "--channel", "li"]] {
        let (code, _, err) = run_out({
            let mut c = herald_cmd(&cfg_path);
            c.args(&args);
            c
        });
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("channel li") && err.contains("expired"), "{args:?}: {err}");
    }
    assert!(li.requests().is_empty());
}

both!(a_daemon_started_on_an_archive_publishes_nothing);
/// Issue 14 item 10: `publish_at` has a catch-up window. A daemon started on a folder of past
/// issues publishes only the one due inside `publish_at_catch_up_secs`; the older ones are
/// recorded `skipped` and shown by `status`, and `herald publish` still sends them by hand.
async fn a_daemon_started_on_an_archive_publishes_nothing(db: TestDb) {
    let hook = WebhookFake::start().await.unwrap();
    let text = format!("issues_dir = \"issues\"\npublish_at_catch_up_secs = 3600\n{}", config_toml(&db.url, &hook.url(), &["hook"], ""));
    let (cfg_path, cfg) = write_config(&db, &text);
    let issues = db.dir.path().join("issues");
    let old: Vec<PathBuf> = [("w44", -60 * 24 * 21), ("w45", -60 * 24 * 14), ("w46", -60 * 2)].iter().map(|(s, m)| scheduled_issue(&issues, s, *m).0).collect();
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    // The scheduler, as `herald daemon` runs it, for a few scans.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let sched = tokio::spawn(herald::jobs::cron::run_until(p.clone(), async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(herald::jobs::cron::SCAN_EVERY * 2 + Duration::from_millis(500)).await;
    let _ = tx.send(());
    sched.await.unwrap().unwrap();
    assert!(p.store.unpublished_issues().await.unwrap().is_empty() && p.store.list_deliveries(None, &[]).await.unwrap().is_empty(), "nothing published");
    let fires = p.store.fires(None, 10).await.unwrap();
    assert_eq!(fires.iter().filter(|f| f.result == "skipped").count(), 3, "{fires:?}");
    assert!(fires.iter().all(|f| f.detail.as_deref().is_some_and(|d| d.contains("publish_at_catch_up_secs = 3600") && d.contains("herald publish"))));
    let (code, out, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.arg("status");
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("skipped") && out.contains("publish_at:w44@"), "{out}");
    // One due inside the window is published once.
    let (_, v) = scheduled_issue(&issues, "w47", -10);
    herald::jobs::cron::scan_publish_at(&p, &mut herald::schedule::ScanCache::default(), chrono::Utc::now()).await.unwrap();
    herald::jobs::cron::scan_publish_at(&p, &mut herald::schedule::ScanCache::default(), chrono::Utc::now()).await.unwrap();
    let target = WaitFor::Issue { slug: "w47".into(), version: v, channels: vec![] };
    assert_eq!(run_until_settled(p.clone(), fast(), target, Some(Duration::from_secs(30))).await.unwrap(), WaitEnd::Settled);
    assert_eq!(hook.requests().len(), 1);
    // By hand, a skipped one goes out.
    let issue = publish::publish_file(&p, &old[0], &[]).await.expect("published by hand");
    let target = WaitFor::Issue { slug: "w44".into(), version: issue.version, channels: vec![] };
    assert_eq!(run_until_settled(p.clone(), fast(), target, Some(Duration::from_secs(30))).await.unwrap(), WaitEnd::Settled);
    assert_eq!(hook.requests().len(), 2);
    p.close().await;
}

both!(a_fire_left_claimed_by_a_dead_process_is_redriven_or_failed);
/// Issue 15 §3: a fire left `claimed` by a process that died is re-driven once; one whose
/// re-drive died too is recorded `failed` and shown by `status`; a live claim is left alone.
async fn a_fire_left_claimed_by_a_dead_process_is_redriven_or_failed(db: TestDb) {
    let hook = WebhookFake::start().await.unwrap();
    let text = format!("issues_dir = \"issues\"\n{}", config_toml(&db.url, &hook.url(), &["hook"], ""));
    let (cfg_path, cfg) = write_config(&db, &text);
    let issues = db.dir.path().join("issues");
    let (_, v) = scheduled_issue(&issues, "lost", -5);
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let at = |m: i64| (chrono::Utc::now() - chrono::Duration::minutes(m)).timestamp_millis();
    let lost = format!("publish_at:lost@{v}");
    assert!(p.store.claim_fire_by(&lost, at(5), &dead_tag()).await.unwrap());
    // Died twice: claimed, then its re-drive died as well.
    let twice_at = at(9);
    assert!(p.store.claim_fire_by("publish_at:twice@x", twice_at, &dead_tag()).await.unwrap());
    assert!(p.store.take_over_fire("publish_at:twice@x", twice_at, "claimed", Some(&dead_tag()), "redriving", &dead_tag()).await.unwrap());
    // Still being published by this (live) process.
    let me = herald::store::lease::ProcessId::current().tag();
    assert!(p.store.claim_fire_by("publish_at:busy@y", at(1), &me).await.unwrap());
    // The scan does not fire a claimed key again by itself.
    herald::jobs::cron::scan_publish_at(&p, &mut herald::schedule::ScanCache::default(), chrono::Utc::now()).await.unwrap();
    assert!(p.store.list_deliveries(None, &[]).await.unwrap().is_empty());

    herald::jobs::cron::redrive_unfinished(&p, &[], herald::store::now_ms()).await.unwrap();
    let target = WaitFor::Issue { slug: "lost".into(), version: v, channels: vec![] };
    assert_eq!(run_until_settled(p.clone(), fast(), target, Some(Duration::from_secs(30))).await.unwrap(), WaitEnd::Settled);
    assert_eq!(hook.requests().len(), 1, "re-driven once");
    let fires = p.store.fires(None, 10).await.unwrap();
    let result = |name: &str| fires.iter().find(|f| f.schedule == name).map(|f| (f.result.clone(), f.issue.clone())).unwrap();
    assert_eq!(result(&lost), ("fired".into(), Some("lost".into())));
    assert_eq!(result("publish_at:twice@x").0, "failed");
    assert_eq!(result("publish_at:busy@y").0, "claimed");
    // A second look changes nothing.
    herald::jobs::cron::redrive_unfinished(&p, &[], herald::store::now_ms()).await.unwrap();
    assert_eq!(hook.requests().len(), 1);
    p.close().await;
    let (code, out, err) = run_out({
        let mut c = herald_cmd(&cfg_path);
        c.arg("status");
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("publish_at:twice@x") && out.contains("failed") && out.contains("died"), "{out}");
}

both!(an_attempt_whose_lease_ran_out_on_another_host_is_interrupted);
/// Issue 15 §4.2, across hosts: a lease held by a process elsewhere is only trusted until it
/// runs out; the worker that takes it over records the attempt as interrupted, then reconciles.
async fn an_attempt_whose_lease_ran_out_on_another_host_is_interrupted(db: TestDb) {
    let (_, cfg) = write_config(&db, &config_toml(&db.url, "http://127.0.0.1:9/", &["rec"], ""));
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let rec = Arc::new(RecordingAdapter::new());
    p.set_adapter("rec", rec.clone());
    let id = publish::create_and_push(&p, "far", "v1", &body_rendering(1), Trigger::Schedule, None).await.unwrap()[0];
    let elsewhere = "another-host:4242:777:cafe";
    assert!(p.store.acquire_lease(id, elsewhere, herald::store::now_ms() + 600_000, None).await.unwrap());
    assert!(p.store.mark_sending(id, elsewhere).await.unwrap());
    // While the lease lasts, nobody takes over and nothing is recorded.
    assert!(matches!(herald::jobs::deliver::run(&p, id).await.unwrap(), herald::jobs::deliver::DeliverOutcome::Skipped(_)));
    assert!(p.store.attempts(id).await.unwrap().is_empty());
    sqlx::query("UPDATE deliveries SET lease_until = $2 WHERE id = $1").bind(id).bind(herald::store::now_ms() - 1).execute(p.store.pool()).await.unwrap();
    assert_eq!(herald::jobs::deliver::run(&p, id).await.unwrap(), herald::jobs::deliver::DeliverOutcome::Now(State::Sent));
    let rows = p.store.attempts(id).await.unwrap();
    assert_eq!(rows.iter().map(|r| (r.n, r.outcome.as_str())).collect::<Vec<_>>(), vec![(1, "interrupted"), (2, "sent")]);
    assert!(rows[0].error.as_deref().unwrap().contains("lease ran out"), "{:?}", rows[0].error);
    assert_eq!(rec.finds(), vec!["far/rec/r1"], "reconciled before sending again");
    assert_eq!(rec.calls().len(), 1);
    assert_eq!(rec.calls()[0].attempt, 2, "the next attempt number");
    p.close().await;
}

both!(a_missing_credential_ends_needs_auth_before_any_call);
/// Issue 14 item 11, the other half: a credential missing when the Deliver job runs (a daemon
/// started without the variable) ends `needs_auth` before any call, naming what to set.
async fn a_missing_credential_ends_needs_auth_before_any_call(db: TestDb) {
    let fake = WebhookFake::start().await.unwrap();
    let mut text = config_toml(&db.url, &fake.url(), &[], "");
    text.push_str(&format!("[channels.signed]\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"${{HERALD_IT_NEVER_SET_SECRET}}\"\n", fake.url()));
    let (_, cfg) = write_config(&db, &text);
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    let rc = RenderedChannel { channel: "signed".into(), kind: "webhook".into(), rendering: Rendering::Body(BodyRendering { body: serde_json::json!({"n": 1}) }) };
    let id = publish::create_and_push(&p, "nosecret", "v1", &[rc], Trigger::Schedule, None).await.unwrap()[0];
    assert_eq!(herald::jobs::deliver::run(&p, id).await.unwrap(), herald::jobs::deliver::DeliverOutcome::Now(State::Failed));
    let rows = p.store.attempts(id).await.unwrap();
    assert_eq!(rows[0].outcome, "needs_auth");
    let e = rows[0].error.as_deref().unwrap();
    assert!(e.contains("HERALD_IT_NEVER_SET_SECRET") && e.contains("export it") && e.contains("herald retry"), "{e}");
    assert!(fake.requests().is_empty(), "no call");
    p.close().await;
}

/// Issue 15 §3: the daemon parses and renders an issue off the runtime within a time budget
/// (`Pipeline::render_budget`, 30 s by default). Past it, `publish` refuses the file with the
/// reason and stores nothing, and a stored issue's Publish job ends `Failed` with the reason on
/// the issue row and no delivery. Without the budget both would go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parsing_and_rendering_past_the_budget_is_refused() {
    let db = TestDb::sqlite().await;
    let text = config_toml(&db.url, "http://127.0.0.1:9/hook", &["hook"], "");
    let (_, cfg) = write_config(&db, &text);
    // 5,000 sections: well within the default budget, far past a millisecond (the parse alone).
    let mut md = String::from("+++\ntitle = \"Big\"\nslug = \"big\"\ndate = 2026-01-05\nurl = \"https://news.example.com/big\"\nsummary = \"Big.\"\n+++\nIntro.\n\n");
    for i in 1..=5_000 {
        md.push_str(&format!("## Section {i}\n\nSome *text* with a [link](https://example.org/{i}).\n\n"));
    }
    let path = db.dir.path().join("big.md");
    std::fs::write(&path, &md).unwrap();
    let mut p = Pipeline::open(cfg).await.unwrap();
    let tight = Duration::from_millis(1);

    p.render_budget = tight;
    let e = publish::publish_file(&p, &path, &[]).await.expect_err("refused past its budget");
    assert!(matches!(e, publish::PublishFileError::Input(_)), "{e:?}");
    assert!(e.to_string().contains("parsing and rendering took more than 1 ms; the issue is refused"), "{e}");
    assert!(p.store.unpublished_issues().await.unwrap().is_empty(), "nothing stored");
    assert!(p.store.list_deliveries(None, &[]).await.unwrap().is_empty());

    // Stored within the default budget; its Publish job then runs with the tight one.
    p.render_budget = publish::RENDER_BUDGET;
    let issue = publish::publish_file(&p, &path, &[]).await.expect("stored within the default budget");
    p.render_budget = tight;
    match publish::run(&p, "big", &issue.version).await.unwrap() {
        publish::PublishOutcome::Failed(m) => assert!(m.contains("took more than 1 ms"), "{m}"),
        other => panic!("published past the budget: {other:?}"),
    }
    let row = p.store.get_issue("big", &issue.version).await.unwrap().expect("stored");
    assert!(row.publish_error.as_deref().is_some_and(|m| m.contains("took more than 1 ms")), "{:?}", row.publish_error);
    assert!(row.published_at.is_none() && p.store.list_deliveries(None, &[]).await.unwrap().is_empty(), "no delivery");
    p.close().await;
}
