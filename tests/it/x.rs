//! X adapter against the X fake: threads, reconciliation, rate limits, resume, both auth flavours.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, Checkpoint, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled};
use herald::config::ChannelConfig;
use herald::render::count::Network;
use herald::render::{Post, PostsRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::x::{self as fake, XFake};

fn adapter(fake: &XFake, extra: &str) -> Arc<dyn Adapter> {
    let toml = format!(
        "type = \"x\"\napi_base = \"{}\"\naccess_token = \"${{X_ACCESS}}\"\nrefresh_token = \"${{X_REFRESH}}\"\nclient_id = \"{}\"\ntimeout_secs = 5\n{extra}",
        fake.base_url,
        fake::CLIENT_ID
    );
    build(&toml)
}

fn build(toml: &str) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig = toml::from_str(toml).expect("channel config parses");
    let ctx = BuildCtx {
        env: Box::new(|k| {
            Some(
                match k {
                    "X_ACCESS" => fake::ACCESS_TOKEN,
                    "X_REFRESH" => fake::REFRESH_TOKEN,
                    "X_CK" => fake::CONSUMER_KEY,
                    "X_CS" => fake::CONSUMER_SECRET,
                    "X_TOKEN1" => fake::OAUTH1_TOKEN,
                    "X_TS" => fake::OAUTH1_TOKEN_SECRET,
                    _ => return None,
                }
                .to_string(),
            )
        }),
        base_dir: std::env::temp_dir(),
        timeout: Duration::from_secs(5),
        vault: None,
    };
    herald::channel::x::build("x", &cfg, &ctx).expect("adapter builds")
}

fn with_user(fake: &XFake) -> Arc<dyn Adapter> {
    adapter(fake, &format!("user_id = \"{}\"", fake::USER_ID))
}

fn rendering(texts: &[&str]) -> Rendering {
    Rendering::Posts(PostsRendering {
        posts: texts
            .iter()
            .map(|t| Post { text: t.to_string(), facets: vec![], entities: vec![], count: Network::X.count(t), limit: 280 })
            .collect(),
        card: None,
    })
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx {
        key: "issue-42/x/r1".into(),
        delivery_id: 7,
        issue: "issue-42".into(),
        channel: "x".into(),
        attempt,
        checkpoint: cp.clone() as Arc<dyn Checkpoint>,
    }
}

const THREAD: [&str; 4] = [
    "1/4 Issue 42 is out: https://example.com/issues/42",
    "2/4 Podcasts this week, with two new shows.",
    "3/4 Events: three conferences & one meetup.",
    "4/4 People: who moved where.",
];

#[tokio::test]
async fn thread_arrives_in_order_and_chained() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let receipt = x.deliver(&rendering(&THREAD), &ctx(&cp, 1)).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(), THREAD);
    assert_eq!(posts[0].in_reply_to, None);
    for w in posts.windows(2) {
        assert_eq!(w[1].in_reply_to.as_deref(), Some(w[0].id.as_str()), "each part replies to the one before");
    }
    for p in &posts {
        assert!(Network::X.check(&p.text).is_ok());
    }
    assert_eq!(receipt.remote_id, posts[0].id);
    assert_eq!(receipt.url.as_deref(), Some(format!("https://x.com/i/web/status/{}", posts[0].id).as_str()));
    // Delivering again with the same checkpoint sends nothing.
    let again = x.deliver(&rendering(&THREAD), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(again, receipt);
    assert_eq!(fake.create_calls(), 4);
}

#[tokio::test]
async fn accept_then_drop_is_unknown_then_found_on_the_timeline() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&["New issue: https://example.com/issues/43"]);
    fake.faults.push("POST /2/tweets", Fault::AcceptThenDrop, 1);
    let err = x.deliver(&r, &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(fake.posts().len(), 1, "the fake kept the post");

    let Reconciled::Found(receipt) = x.find_existing(&r, &ctx(&cp, 2)).await.unwrap() else { panic!("not found") };
    assert_eq!(receipt.remote_id, fake.posts()[0].id);
    // A retry sends nothing twice.
    let again = x.deliver(&r, &ctx(&cp, 2)).await.unwrap();
    assert_eq!(again.remote_id, receipt.remote_id);
    assert_eq!(fake.create_calls(), 1);
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn dropped_middle_part_is_adopted_and_the_thread_finishes() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&THREAD[..3]);
    // Part 1 passes, part 2 is accepted then the connection drops.
    fake.faults.push("POST /2/tweets", Fault::Delay(Duration::ZERO), 1);
    fake.faults.push("POST /2/tweets", Fault::AcceptThenDrop, 1);
    let err = x.deliver(&r, &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::UnknownOutcome);
    // Part 2 is found and recorded; part 3 is still owed, so a retry is safe.
    assert_eq!(x.find_existing(&r, &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    let receipt = x.deliver(&r, &ctx(&cp, 2)).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(fake.create_calls(), 3);
    assert_eq!(posts[2].in_reply_to.as_deref(), Some(posts[1].id.as_str()));
    assert_eq!(receipt.remote_id, posts[0].id);
}

#[tokio::test]
async fn duplicate_content_is_an_unknown_outcome_that_reconciles() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    let r = rendering(&["Same words & a link https://example.com/x"]);
    let first = x.deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    // A delivery that lost its record of the first post gets X's 403 duplicate answer.
    let cp = Arc::new(MemoryCheckpoint::default());
    let err = x.deliver(&r, &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(err.status(), Some(403));
    let Reconciled::Found(found) = x.find_existing(&r, &ctx(&cp, 2)).await.unwrap() else { panic!("not found") };
    assert_eq!(found.remote_id, first.remote_id);
}

#[tokio::test]
async fn rate_limit_429_carries_the_reset() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    let reset = chrono::Utc::now().timestamp() + 120;
    fake.faults.push(
        "POST /2/tweets",
        Fault::Status {
            code: 429,
            body: r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#.into(),
            headers: vec![("x-rate-limit-reset".into(), reset.to_string()), ("x-rate-limit-remaining".into(), "0".into())],
        },
        1,
    );
    let err = x.deliver(&rendering(&["hello"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::RateLimited);
    assert_eq!(err.status(), Some(429));
    let after = err.retry_after().expect("retry_after").as_secs();
    assert!((118..=120).contains(&after), "retry_after {after}");

    // The fake's own window: one post allowed, the second part is throttled with a reset.
    fake.set_rate_limit(1, Duration::from_secs(900));
    let cp = Arc::new(MemoryCheckpoint::default());
    let err = x.deliver(&rendering(&["a 1/2", "a 2/2"]), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::RateLimited);
    assert!(err.retry_after().unwrap() > Duration::from_secs(800));
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn thread_failing_at_part_two_resumes_there() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&THREAD);
    fake.faults.push("POST /2/tweets", Fault::Delay(Duration::ZERO), 1);
    fake.faults.push(
        "POST /2/tweets",
        Fault::Status { code: 503, body: r#"{"title":"Service Unavailable"}"#.into(), headers: vec![] },
        1,
    );
    let err = x.deliver(&r, &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Retryable);
    assert_eq!(fake.posts().len(), 1);
    let receipt = x.deliver(&r, &ctx(&cp, 2)).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(), THREAD, "part 1 never reposted");
    assert_eq!(posts[1].in_reply_to.as_deref(), Some(posts[0].id.as_str()));
    assert_eq!(receipt.remote_id, posts[0].id);
}

#[tokio::test]
async fn expired_token_is_refreshed_once_in_memory() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    fake.expire_access_token();
    x.deliver(&rendering(&["after refresh"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(fake.refreshes(), 1);
    x.deliver(&rendering(&["second, same token"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(fake.refreshes(), 1);
    x.healthcheck().await.unwrap();
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn oauth1_signed_requests_are_accepted() {
    let fake = XFake::start().await.unwrap();
    let toml = format!(
        "type = \"x\"\napi_base = \"{}\"\nauth = \"oauth1\"\nuser_id = \"{}\"\nconsumer_key = \"${{X_CK}}\"\nconsumer_secret = \"${{X_CS}}\"\naccess_token = \"${{X_TOKEN1}}\"\naccess_token_secret = \"${{X_TS}}\"\n",
        fake.base_url,
        fake::USER_ID
    );
    let x = build(&toml);
    x.healthcheck().await.unwrap();
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&["signed 1/2", "signed 2/2"]);
    x.deliver(&r, &ctx(&cp, 1)).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().all(|p| p.auth == "oauth1"));
    // The timeline read (a GET with a query string) verifies too.
    assert!(matches!(x.find_existing(&r, &ctx(&cp, 2)).await.unwrap(), Reconciled::Found(_)));
}

#[tokio::test]
async fn without_user_id_reconciliation_cannot_check() {
    let fake = XFake::start().await.unwrap();
    let x = adapter(&fake, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = rendering(&["hello"]);
    assert_eq!(x.find_existing(&r, &ctx(&cp, 1)).await.unwrap(), Reconciled::NotFound, "nothing started");
    fake.faults.push("POST /2/tweets", Fault::Drop, 1);
    assert_eq!(x.deliver(&r, &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::UnknownOutcome);
    assert!(matches!(x.find_existing(&r, &ctx(&cp, 2)).await.unwrap(), Reconciled::CannotCheck(_)));
}

#[tokio::test]
async fn refused_replies_fail_the_thread_as_forbidden_after_part_one() {
    let fake = XFake::start().await.unwrap();
    fake.set_reject_replies(true);
    let x = with_user(&fake);
    let err = x.deliver(&rendering(&THREAD[..2]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Forbidden, "{err}");
    assert!(err.message().contains("format = \"short\""));
    assert_eq!(fake.posts().len(), 1);
}

/// Issue 14 item 4: every known wording of the refusal is recognised; with the default
/// `thread_fallback = "stop"` the thread stays partial and the error says which parts are up.
#[tokio::test]
async fn every_reply_refusal_wording_stops_the_thread_and_names_the_parts_up() {
    for wording in fake::REPLY_REFUSALS {
        let fake = XFake::start().await.unwrap();
        fake.set_reply_refusal(wording);
        let x = with_user(&fake);
        let cp = Arc::new(MemoryCheckpoint::default());
        let err = x.deliver(&rendering(&THREAD), &ctx(&cp, 1)).await.unwrap_err();
        assert_eq!((err.kind(), err.status()), (Kind::Forbidden, Some(403)), "{wording}: {err}");
        assert!(err.message().contains(wording), "X's own message is shown: {err}");
        let first = &fake.posts()[0].id;
        assert!(err.message().contains(&format!("1 of 4 parts are up (https://x.com/i/web/status/{first})")), "{err}");
        assert!(err.message().contains("thread_fallback = \"link\""), "the hint names the option: {err}");
        assert!(!err.message().contains("re-authorise"), "{err}");
        assert_eq!(fake.posts().len(), 1, "{wording}");
    }
}

/// `thread_fallback = "link"`: the refused rest goes out as one standalone post with the link,
/// once; a second deliver with the same checkpoint posts nothing more.
#[tokio::test]
async fn link_fallback_posts_the_rest_as_one_post_with_the_link() {
    let fake = XFake::start().await.unwrap();
    fake.set_reply_refusal(fake::REPLY_REFUSALS[1]);
    let x = adapter(&fake, &format!("user_id = \"{}\"\nthread_fallback = \"link\"", fake::USER_ID));
    let parts = ["1/3 Issue 42 is out.", "2/3 Podcasts this week.", "3/3 Read it all: https://example.com/issues/42"];
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = x.deliver(&rendering(&parts), &ctx(&cp, 1)).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[1].in_reply_to, None, "the fallback stands alone");
    assert_eq!(posts[1].text, "The rest of this thread: https://example.com/issues/42");
    assert_eq!(r.remote_id, posts[0].id);
    assert!(r.note.as_deref().unwrap_or("").contains(&posts[1].id), "{r:?}");
    let again = x.deliver(&rendering(&parts), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(again.remote_id, posts[0].id);
    assert_eq!(fake.posts().len(), 2, "no second fallback post");
    // Reconciliation sees the delivery as complete.
    assert!(matches!(x.find_existing(&rendering(&parts), &ctx(&cp, 3)).await.unwrap(), Reconciled::Found(_)));
}

/// Issue 14 item 3: X's 402 credits-depleted and 403 "not permitted" are policy refusals with
/// X's message and a hint, not "re-authorise".
#[tokio::test]
async fn credits_depleted_and_not_permitted_are_forbidden_with_a_hint() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    let body = r#"{"title":"CreditsDepleted","detail":"Your enrolled account [1234] does not have any credits to fulfill this request.","type":"https://api.x.com/2/problems/credits-depleted","status":402}"#;
    fake.faults.push("POST /2/tweets", Fault::Status { code: 402, body: body.into(), headers: vec![] }, 1);
    let err = x.deliver(&rendering(&THREAD[..1]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!((err.kind(), err.status()), (Kind::Forbidden, Some(402)), "{err}");
    assert!(err.message().contains("does not have any credits"), "{err}");
    assert!(err.message().contains("add credits"), "{err}");
    let body = r#"{"title":"Forbidden","detail":"You are not permitted to perform this action.","type":"about:blank","status":403}"#;
    fake.faults.push("POST /2/tweets", Fault::Status { code: 403, body: body.into(), headers: vec![] }, 1);
    let err = x.deliver(&rendering(&THREAD[..1]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!((err.kind(), err.status()), (Kind::Forbidden, Some(403)), "{err}");
    assert!(err.message().contains("You are not permitted to perform this action."), "{err}");
    assert!(err.message().contains("Read and Write"), "{err}");
    assert!(fake.posts().is_empty());
}

/// The fake refuses a second cashtag, as X does; the renderer's check catches it first.
#[tokio::test]
async fn a_second_cashtag_is_refused_by_the_fake_and_by_the_preflight() {
    let fake = XFake::start().await.unwrap();
    let x = with_user(&fake);
    let text = "Compare $TSLA with $AAPL this week";
    let err = x.deliver(&rendering(&[text]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!((err.kind(), err.status()), (Kind::Permanent, Some(400)), "{err}");
    assert!(Network::X.check(text).is_err());
    x.deliver(&rendering(&["Shares of $TSLA, priced at $5"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
}

/// The real renderer's output for every sample issue, short and thread, is accepted by the fake.
#[tokio::test]
async fn every_sample_issue_renders_into_posts_the_fake_accepts() {
    for format in ["short", "thread"] {
        let fake = XFake::start().await.unwrap();
        let adapter = with_user(&fake);
        let expected = crate::util::deliver_every_sample(adapter.as_ref(), "x", format).await;
        assert!(expected > 0);
        assert_eq!(fake.posts().len(), expected, "{format}: every rendered post accepted once");
    }
}
