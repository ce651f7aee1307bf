//! Mastodon adapter against the Mastodon fake: threads, Idempotency-Key reconciliation,
//! rate limits, 503 retries with the same key, resume, and the one-hour horizon.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, Checkpoint, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled};
use herald::config::ChannelConfig;
use herald::render::{Post, PostsRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::mastodon::{self as fake, MastodonFake, status_length};

fn adapter(fake: &MastodonFake) -> Arc<dyn Adapter> {
    adapter_at(&fake.base_url, 5)
}

fn adapter_at(base_url: &str, timeout_secs: u64) -> Arc<dyn Adapter> {
    let toml = format!(
        "type = \"mastodon\"\napi_base = \"{base_url}\"\naccess_token = \"${{MASTO_TOKEN}}\"\nvisibility = \"unlisted\"\ntimeout_secs = {timeout_secs}\n"
    );
    let cfg: ChannelConfig = toml::from_str(&toml).expect("channel config parses");
    let ctx = BuildCtx {
        env: Box::new(|k| (k == "MASTO_TOKEN").then(|| fake::ACCESS_TOKEN.to_string())),
        base_dir: std::env::temp_dir(),
        timeout: Duration::from_secs(5),
        vault: None,
    };
    herald::channel::mastodon::build("masto", &cfg, &ctx).expect("adapter builds")
}

fn rendering(texts: &[&str]) -> Rendering {
    Rendering::Posts(PostsRendering {
        posts: texts
            .iter()
            .map(|t| Post { text: t.to_string(), facets: vec![], entities: vec![], count: status_length(t), limit: 500 })
            .collect(),
        card: None,
    })
}

const KEY: &str = "issue-42/masto/r1";

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx {
        key: KEY.into(),
        delivery_id: 3,
        issue: "issue-42".into(),
        channel: "masto".into(),
        attempt,
        checkpoint: cp.clone() as Arc<dyn Checkpoint>,
    }
}

const THREAD: [&str; 4] = [
    "1/4 Issue 42 is out: https://example.com/issues/42",
    "2/4 Podcasts this week.",
    "3/4 Events & meetups.",
    "4/4 People on the move.",
];

#[tokio::test]
async fn thread_arrives_in_order_chained_with_a_key_per_part() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter(&fake);
    m.healthcheck().await.unwrap();
    let cp = Arc::new(MemoryCheckpoint::default());
    let receipt = m.deliver(&rendering(&THREAD), &ctx(&cp, 1)).await.unwrap();
    let st = fake.statuses();
    assert_eq!(st.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(), THREAD);
    assert_eq!(st[0].in_reply_to_id, None);
    for w in st.windows(2) {
        assert_eq!(w[1].in_reply_to_id.as_deref(), Some(w[0].id.as_str()));
    }
    for (i, s) in st.iter().enumerate() {
        assert_eq!(s.idempotency_key.as_deref(), Some(format!("{KEY}#{i}").as_str()));
        assert_eq!(s.visibility, "unlisted");
        assert!(status_length(&s.text) <= 500);
    }
    assert_eq!(receipt.remote_id, st[0].id);
    assert_eq!(receipt.url, Some(format!("{}/@{}/{}", fake.base_url, fake::USERNAME, st[0].id)));
}

#[tokio::test]
async fn accept_then_drop_reconciles_through_the_key() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&["New issue: https://example.com/issues/43"]);
    fake.faults.push("POST /api/v1/statuses", Fault::AcceptThenDrop, 1);
    let err = m.deliver(&r, &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(fake.statuses().len(), 1);

    let Reconciled::Found(receipt) = m.find_existing(&r, &ctx(&cp, 2)).await.unwrap() else { panic!("not found") };
    assert_eq!(receipt.remote_id, fake.statuses()[0].id);
    let again = m.deliver(&r, &ctx(&cp, 2)).await.unwrap();
    assert_eq!(again.remote_id, receipt.remote_id);
    assert_eq!(fake.statuses().len(), 1, "nothing posted twice");
}

#[tokio::test]
async fn a_resend_with_the_same_key_is_answered_with_the_original() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter(&fake);
    let r = rendering(&["once only"]);
    let first = m.deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    // Even a delivery that lost its checkpoint gets the same status back within the hour.
    let second = m.deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(first.remote_id, second.remote_id);
    assert_eq!(fake.statuses().len(), 1);
    assert_eq!(fake.create_calls(), 2);
}

#[tokio::test]
async fn service_unavailable_retries_with_the_same_key() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&["through a 503"]);
    // A concurrent request holding the key's lock gets Mastodon's 503.
    fake.set_processing_delay(Duration::from_millis(400));
    let cp2 = Arc::new(MemoryCheckpoint::default());
    let ctx_a = ctx(&cp, 1);
    let (a, b) = tokio::join!(m.deliver(&r, &ctx_a), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        m.deliver(&r, &ctx(&cp2, 1)).await
    });
    let a = a.unwrap();
    let err = b.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.kind(), Kind::Retryable);
    fake.set_processing_delay(Duration::ZERO);
    let b = m.deliver(&r, &ctx(&cp2, 2)).await.unwrap();
    assert_eq!(a.remote_id, b.remote_id);
    assert_eq!(fake.statuses().len(), 1);
}

#[tokio::test]
async fn rate_limit_reset_is_iso_8601() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter(&fake);
    let reset = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    fake.faults.push(
        "POST /api/v1/statuses",
        Fault::Status { code: 429, body: r#"{"error":"Too many requests"}"#.into(), headers: vec![("x-ratelimit-reset".into(), reset)] },
        1,
    );
    let err = m.deliver(&rendering(&["hi"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::RateLimited);
    let after = err.retry_after().unwrap().as_secs();
    assert!((88..=90).contains(&after), "retry_after {after}");

    // The fake's own family limit.
    fake.set_rate_limit(0, Duration::from_secs(600));
    let err = m.deliver(&rendering(&["hi again"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::RateLimited);
    assert!(err.retry_after().unwrap() > Duration::from_secs(590));
}

#[tokio::test]
async fn thread_failing_at_part_two_resumes_there() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&THREAD);
    fake.faults.push("POST /api/v1/statuses", Fault::Delay(Duration::ZERO), 1);
    fake.faults.push(
        "POST /api/v1/statuses",
        Fault::Status { code: 502, body: "<html>Bad Gateway</html>".into(), headers: vec![] },
        1,
    );
    assert_eq!(m.deliver(&r, &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::Retryable);
    assert_eq!(fake.statuses().len(), 1);
    let receipt = m.deliver(&r, &ctx(&cp, 2)).await.unwrap();
    let st = fake.statuses();
    assert_eq!(st.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(), THREAD, "part 1 never reposted");
    assert_eq!(receipt.remote_id, st[0].id);
    assert_eq!(st[1].in_reply_to_id.as_deref(), Some(st[0].id.as_str()));
}

#[tokio::test]
async fn past_the_hour_reconciliation_cannot_check() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&["lost answer"]);
    fake.faults.push("POST /api/v1/statuses", Fault::AcceptThenDrop, 1);
    assert_eq!(m.deliver(&r, &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::UnknownOutcome);
    // Age the part's preparation time past Mastodon's key lifetime.
    let mut state = cp.load().await.unwrap().unwrap();
    state["parts"][0]["prepared"]["prepared_at"] = (chrono::Utc::now() - chrono::Duration::minutes(61)).to_rfc3339().into();
    cp.save(&state).await.unwrap();
    fake.expire_idempotency_keys();
    let Reconciled::CannotCheck(why) = m.find_existing(&r, &ctx(&cp, 2)).await.unwrap() else { panic!("expected CannotCheck") };
    assert!(why.contains("hour"), "{why}");
    assert_eq!(fake.create_calls(), 1, "reconciliation sent nothing");
}

#[tokio::test]
async fn too_long_is_permanent() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter(&fake);
    let long = "word ".repeat(120);
    // The instance's limit is checked first: nothing is sent.
    let err = m.deliver(&rendering(&[&long]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Permanent);
    assert!(err.message().contains("this instance allows 500"), "{err}");
    assert_eq!(fake.create_calls(), 0);
    // When the instance can't tell its limit, Mastodon's own 422 says it.
    fake.faults.push("GET /api/v2/instance", Fault::Status { code: 503, body: "{}".into(), headers: vec![] }, 1);
    let err = adapter(&fake).deliver(&rendering(&[&long]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Permanent);
    assert_eq!(err.status(), Some(422));
    assert!(err.message().contains("character limit"));
}

#[tokio::test]
async fn timeout_after_send_is_unknown_and_connect_failure_is_retryable() {
    let fake = MastodonFake::start().await.unwrap();
    let m = adapter_at(&fake.base_url, 1);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&["slow network"]);
    fake.faults.push("POST /api/v1/statuses", Fault::Delay(Duration::from_millis(1500)), 1);
    let err = m.deliver(&r, &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    // The slow request still landed; reconciliation returns it instead of posting again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let Reconciled::Found(found) = m.find_existing(&r, &ctx(&cp, 2)).await.unwrap() else { panic!("not found") };
    assert_eq!(fake.statuses().len(), 1);
    assert_eq!(found.remote_id, fake.statuses()[0].id);

    // Nothing listening: the request never left, a plain retry is safe.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = adapter_at(&format!("http://127.0.0.1:{port}"), 1);
    let err = dead.deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Retryable, "{err}");
}

/// The real renderer's output for every sample issue, short and thread, is accepted by the fake.
#[tokio::test]
async fn every_sample_issue_renders_into_posts_the_fake_accepts() {
    for format in ["short", "thread"] {
        let fake = MastodonFake::start().await.unwrap();
        let adapter = adapter(&fake);
        let expected = crate::util::deliver_every_sample(adapter.as_ref(), "mastodon", format).await;
        assert!(expected > 0);
        assert_eq!(fake.statuses().len(), expected, "{format}: every rendered post accepted once");
    }
}

fn adapter_with(fake: &MastodonFake, extra: &str) -> Arc<dyn Adapter> {
    let toml = format!(
        "type = \"mastodon\"\napi_base = \"{}\"\naccess_token = \"${{MASTO_TOKEN}}\"\ntimeout_secs = 5\n{extra}",
        fake.base_url
    );
    let cfg: ChannelConfig = toml::from_str(&toml).expect("channel config parses");
    let ctx = BuildCtx {
        env: Box::new(|k| (k == "MASTO_TOKEN").then(|| fake::ACCESS_TOKEN.to_string())),
        base_dir: std::env::temp_dir(),
        timeout: Duration::from_secs(5),
        vault: None,
    };
    herald::channel::mastodon::build("masto", &cfg, &ctx).expect("adapter builds")
}

/// Issue 14 item 6: `max_characters` is the limit the renderer fits posts to.
#[test]
fn max_characters_is_the_rendering_limit() {
    use herald::render::count::Network;
    use herald::render::split::{SplitOptions, split_thread};
    let cfg = |extra: &str| -> ChannelConfig { toml::from_str(&format!("type = \"mastodon\"\naccess_token = \"${{T}}\"\n{extra}")).unwrap() };
    let long = vec![format!("{}.", "word ".repeat(180).trim_end())]; // 900 characters
    let default = cfg("").rules(Network::Mastodon);
    assert_eq!(default.limit, 500);
    assert_eq!(split_thread(&long, default, SplitOptions { counter: false }).unwrap().len(), 2);
    let big = cfg("max_characters = 1000").rules(Network::Mastodon);
    assert_eq!(big.limit, 1000);
    assert_eq!(split_thread(&long, big, SplitOptions { counter: false }).unwrap().len(), 1);
}

/// Issue 14 item 6: the instance's own limit (`/api/v2/instance`) is read once and checked
/// before any status is created; a post the instance allows goes out.
#[tokio::test]
async fn the_instance_limit_is_checked_before_posting() {
    let fake = MastodonFake::start().await.unwrap();
    let long = format!("{}.", "word ".repeat(180).trim_end());
    // Rendered for 1000, on an instance that allows 500: refused before any call.
    let a = adapter_with(&fake, "max_characters = 1000");
    let err = a.deliver(&rendering(&[long.as_str()]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Permanent, "{err}");
    assert!(err.message().contains("set max_characters = 500"), "{err}");
    assert_eq!(fake.create_calls(), 0);
    // An instance that allows 1000 takes it.
    fake.set_max_characters(1000);
    let a = adapter_with(&fake, "max_characters = 1000");
    a.deliver(&rendering(&[long.as_str()]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(fake.statuses().len(), 1);
}

/// Issue 14 item 6: a token with only `write:statuses` passes the health check; the fake
/// refuses `accounts/verify_credentials` to it, as Mastodon does.
#[tokio::test]
async fn a_write_statuses_token_passes_the_health_check() {
    let fake = MastodonFake::start().await.unwrap();
    adapter(&fake).healthcheck().await.expect("write:statuses is enough");
    let res = herald::channel::http::client()
        .get(format!("{}/api/v1/accounts/verify_credentials", fake.base_url))
        .bearer_auth(fake::ACCESS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    fake.set_token_scopes("read:accounts");
    let err = adapter(&fake).deliver(&rendering(&["hi"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
}
