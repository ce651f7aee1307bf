//! Postmark batches reconcile (issue 17 item 2): a batch whose outcome is unknown (Postmark
//! took it, then the answer was lost to a timeout, a reset or a `kill -9`) is looked up by its
//! tag with Postmark's outbound message search before anyone in it is sent again. The verdict
//! comes from the Postmark fake's own record of what it accepted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::channel::email::RecipientLedger;
use herald::channel::{Adapter, BuildCtx, Delivered, DeliveryCtx, Receipt};
use herald::config::ChannelConfig;
use herald::render::{EmailRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::postmark::{self, PostmarkFake};
use herald::store::email::SubscriberUpsert;
use herald::store::{Store, StoreUrl};

use crate::pipeline::TestDb;

const SECRET_ENV: &str = "HERALD_IT_UNSUB_SECRET";
const SECRET: &str = "it-unsubscribe-secret-0123456789";
const TOKEN_ENV: &str = "HERALD_IT_POSTMARK_TOKEN";

fn addr(i: usize) -> String {
    format!("reader{i:05}@example.org")
}

fn channel_toml(fake: &PostmarkFake, extra: &str) -> String {
    format!(
        "type = \"email_api\"\napi_base = \"{}\"\nserver_token = \"${{{TOKEN_ENV}}}\"\nfrom = \"Signal & Noise <news@example.com>\"\n\
         unsubscribe_base_url = \"https://news.example.com/unsubscribe\"\nunsubscribe_secret = \"${{{SECRET_ENV}}}\"\n{}{extra}\n",
        fake.base_url,
        if extra.contains("concurrency") { "" } else { "concurrency = 2\n" }
    )
}

fn adapter(fake: &PostmarkFake, extra: &str, ledger: Arc<dyn RecipientLedger>) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig = toml::from_str(&channel_toml(fake, extra)).unwrap();
    let ctx = BuildCtx {
        env: Box::new(|k| match k {
            TOKEN_ENV => Some(postmark::TOKEN.to_string()),
            SECRET_ENV => Some(SECRET.to_string()),
            _ => None,
        }),
        base_dir: std::env::temp_dir(),
        timeout: Duration::from_secs(10),
        vault: None,
    };
    herald::channel::email_api::build_with_ledger("postmark", &cfg, &ctx, ledger).expect("email_api adapter builds")
}

fn rendering() -> Rendering {
    Rendering::Email(EmailRendering { subject: "Issue for [[name]]".into(), html: "<p>Hello [[name]]</p>".into(), text: "Hello [[name]]".into() })
}

async fn store_with(db: &TestDb, n: usize) -> Store {
    let store = Store::open(&StoreUrl::parse(&db.url, db.dir.path()).unwrap()).await.expect("store opens");
    let rows: Vec<SubscriberUpsert> = (0..n).map(|i| SubscriberUpsert { email: addr(i), name: format!("Reader {i}"), extra_json: "{}".into() }).collect();
    for chunk in rows.chunks(500) {
        store.upsert_subscribers("all", chunk).await.unwrap();
    }
    store
}

/// Run passes the way the pipeline does until the mailing is sent: a `Continue` waits what it
/// asks, a failed pass (an unknown outcome) is run again. Returns the receipt and the waits.
async fn drive(a: &Arc<dyn Adapter>, delivery_id: i64) -> (Receipt, usize) {
    let mut ctx = DeliveryCtx::for_test("issue-17/postmark/r1");
    ctx.delivery_id = delivery_id;
    let end = Instant::now() + Duration::from_secs(120);
    let mut waits = 0;
    loop {
        assert!(Instant::now() < end, "the mailing did not settle in time");
        match a.deliver_step(&rendering(), &ctx).await {
            Ok(Delivered::Sent(r)) => return (r, waits),
            Ok(Delivered::Continue { after, .. }) => {
                waits += 1;
                tokio::time::sleep(after.unwrap_or_default().max(Duration::from_millis(50))).await;
            }
            Ok(other) => panic!("unexpected answer: {other:?}"),
            Err(e) => {
                eprintln!("pass failed (retried): {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How many messages the fake accepted per address, and the duplicates among `n` recipients.
fn tally(fake: &PostmarkFake, n: usize) -> usize {
    let mut per: HashMap<String, usize> = HashMap::new();
    for a in fake.accepted() {
        *per.entry(a.message.to.rsplit('<').next().unwrap().trim_end_matches('>').to_string()).or_default() += 1;
    }
    let mut dups = 0;
    for i in 0..n {
        let c = per.get(&addr(i)).copied().unwrap_or(0);
        assert!(c >= 1, "{} was never mailed", addr(i));
        dups += c - 1;
    }
    assert_eq!(per.len(), n, "nobody else mailed");
    dups
}

async fn found_by_search(store: &Store, delivery_id: i64, n: usize) -> usize {
    let mut found = 0;
    for i in 0..n {
        let row = store.recipient_send(delivery_id, &addr(i)).await.unwrap().expect("a ledger row");
        assert_eq!(row.state, "sent", "{}", addr(i));
        found += usize::from(row.reply.as_deref().is_some_and(|r| r.contains("found by Postmark's search")));
    }
    found
}

both!(a_batch_taken_then_timed_out_or_reset_is_found_by_tag_and_not_sent_again);
/// Postmark takes two batch calls of 500 but one answer never comes in time (the call times
/// out) and the other's connection is reset: both outcomes unknown. The reruns search by tag,
/// record the 1,000 as sent, and send only the last 200: every recipient exactly once.
async fn a_batch_taken_then_timed_out_or_reset_is_found_by_tag_and_not_sent_again(db: TestDb) {
    let fake = PostmarkFake::start().await.unwrap();
    let store = store_with(&db, 1200).await;
    fake.faults.push("POST /email/batch", Fault::AcceptThenStall(Duration::from_secs(4)), 1);
    fake.faults.push("POST /email/batch", Fault::AcceptThenDrop, 1);
    let a = adapter(&fake, "timeout_secs = 1\nreconcile_settle_secs = 1", Arc::new(store.clone()));
    let (r, waits) = drive(&a, 7).await;
    assert_eq!(r.note.as_deref(), Some("1200 sent, 0 failed, 0 skipped of 1200 recipients"));
    let dups = tally(&fake, 1200);
    assert_eq!(dups, 0, "no batch sent twice");
    assert_eq!(found_by_search(&store, 7, 1200).await, 1000, "the two batches in doubt were found by their tags");
    assert!(fake.searches() >= 2, "one search per batch in doubt: {}", fake.searches());
    assert!(waits >= 1, "the search was trusted only after the settle time");
    // The store: the two batches in doubt reconciled; the others swept to `answered` once their
    // outcomes were recorded, so later passes look at nothing.
    assert!(store.open_postmark_batches(7).await.unwrap().is_empty());
    let states: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM postmark_batches GROUP BY state ORDER BY state").fetch_all(store.pool()).await.unwrap();
    let count = |s: &str| states.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    assert_eq!((count("reconciled"), count("open")), (2, 0), "{states:?}");
    assert!(count("answered") >= 1, "{states:?}");
    // Every accepted message carried a tag unique to its batch.
    let mut tags: HashMap<String, usize> = HashMap::new();
    for m in fake.accepted() {
        *tags.entry(m.message.tag.clone().expect("a Tag on every message")).or_default() += 1;
    }
    assert!(tags.keys().all(|t| t.starts_with("herald-") && t.len() < postmark::TAG_MAX), "{tags:?}");
    assert_eq!(tags.values().sum::<usize>(), 1200);
    assert!(tags.values().all(|&n| n <= 500), "one tag per batch: {tags:?}");
}

/// The residual window: when Postmark's index lags more than the call's timeout plus
/// `reconcile_settle_secs`, the empty answer is trusted and the batch in doubt is sent again;
/// the duplicates are bounded by that batch (500). With a settle time past the lag: none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_slower_than_the_settle_time_costs_at_most_the_batch_in_doubt() {
    let db = TestDb::sqlite().await;
    let store = store_with(&db, 700).await;
    let mut dups = Vec::new();
    for (delivery, settle) in [(1, 0), (2, 3)] {
        let fake = PostmarkFake::start().await.unwrap();
        fake.set_search_lag(Duration::from_secs(3));
        fake.faults.push("POST /email/batch", Fault::AcceptThenDrop, 1);
        let a = adapter(&fake, &format!("timeout_secs = 1\nreconcile_settle_secs = {settle}\nconcurrency = 1"), Arc::new(store.clone()));
        let (r, _) = drive(&a, delivery).await;
        assert_eq!(r.note.as_deref(), Some("700 sent, 0 failed, 0 skipped of 700 recipients"));
        dups.push(tally(&fake, 700));
    }
    eprintln!("index lag 3 s, timeout 1 s: settle 0 s → {} duplicates (bound: the 500 of the batch in doubt); settle 3 s → {}", dups[0], dups[1]);
    assert!(dups[0] > 0 && dups[0] <= 500, "bounded by the batch in doubt: {}", dups[0]);
    assert_eq!(dups[1], 0, "a settle time past the lag finds the batch");
}

fn herald(cfg: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_herald"));
    c.arg("--config")
        .arg(cfg)
        .env_remove("HERALD_CONFIG")
        .env(SECRET_ENV, SECRET)
        .env(TOKEN_ENV, postmark::TOKEN)
        .env("RUST_LOG", "herald=info");
    c
}

fn run(mut c: Command) -> (i32, String, String) {
    let o = c.output().expect("run herald");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn config(db: &TestDb, fake: &PostmarkFake, extra: &str) -> PathBuf {
    let text = format!(
        "[store]\nurl = \"{}\"\n\n[retry]\nschedule_secs = [0, 0, 0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\nrate_limit_ceiling_secs = 30\n\n[channels.postmark]\n{}",
        db.url,
        channel_toml(fake, extra)
    );
    let p = db.dir.path().join("herald.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `kill -9` of `herald publish --wait` while two batch calls of 500 are in flight, both taken
/// by Postmark and unanswered; then a rerun. Before, the rerun sent both batches again (1,000
/// duplicates); now it finds them by tag: every recipient once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_mid_batch_then_rerun_mails_everyone_once() {
    const N: usize = 3000;
    let db = TestDb::sqlite().await;
    let fake = PostmarkFake::start().await.unwrap();
    // Two calls answered at once, then two taken but not answered before the kill.
    fake.faults.push("POST /email/batch", Fault::Delay(Duration::ZERO), 2);
    fake.faults.push("POST /email/batch", Fault::AcceptThenStall(Duration::from_secs(600)), 2);
    let cfg = config(&db, &fake, "timeout_secs = 5\nreconcile_settle_secs = 1");
    let csv = db.dir.path().join("list.csv");
    let mut text = String::from("email,name\n");
    for i in 0..N {
        text.push_str(&format!("{},Reader {i}\n", addr(i)));
    }
    std::fs::write(&csv, text).unwrap();
    let mut import = herald(&cfg);
    import.args(["subscribers", "import", csv.to_str().unwrap()]);
    let (code, out, err) = run(import);
    assert_eq!(code, 0, "{out}\n{err}");
    let issue = db.dir.path().join("minimal.md");
    std::fs::copy(crate::util::fixture("issues/minimal.md"), &issue).unwrap();

    let mut child = herald(&cfg)
        .args(["publish", issue.to_str().unwrap(), "--wait", "--timeout", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(120);
    while fake.accepted().len() < 2000 {
        assert!(Instant::now() < end, "four batches never reached the fake: {}", fake.accepted().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL, two answers still owed
    child.wait().unwrap();
    let at_kill = fake.accepted().len();
    assert_eq!(at_kill, 2000, "killed with 1,000 taken and unanswered");

    let mut rerun = herald(&cfg);
    rerun.args(["publish", issue.to_str().unwrap(), "--wait", "--timeout", "600", "--json"]);
    let (code, out, err) = run(rerun);
    assert_eq!(code, 0, "the rerun settles the mailing\n{out}\n{}", &err[err.len().saturating_sub(3000)..]);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status[0]["state"], "sent", "{status}");
    let dups = tally(&fake, N);
    eprintln!("killed with {at_kill} accepted (1,000 unanswered); {dups} duplicates after the rerun; {} searches", fake.searches());
    assert_eq!(dups, 0, "the batches in doubt were found by tag, not sent again");
    assert!(fake.searches() >= 2, "each batch in doubt was searched");
}
