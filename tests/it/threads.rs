//! Threads adapter against the Threads fake: chaining, resume, reconciliation, limits, auth.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled, ThreadProgress, build_adapter};
use herald::config::ChannelConfig;
use herald::render::{Post, PostsRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::threads::{self, ThreadsFake};

const TOKEN_ENV: &str = "HERALD_IT_THREADS_TOKEN";

fn adapter(fake: &ThreadsFake, token: &str, timeout_secs: u64) -> Arc<dyn Adapter> {
    adapter_with(fake, token, &format!("timeout_secs = {timeout_secs}"))
}

fn adapter_with(fake: &ThreadsFake, token: &str, extra: &str) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig = toml::from_str(&format!(
        "type = \"threads\"\napi_base = \"{}\"\naccess_token = \"${{{TOKEN_ENV}}}\"\n{extra}\n",
        fake.base_url
    ))
    .expect("threads config parses");
    crate::util::build_with_secret("threads_main", &cfg, TOKEN_ENV, token)
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx {
        key: "issue-42/threads_main/r1".into(),
        delivery_id: 7,
        issue: "issue-42".into(),
        channel: "threads_main".into(),
        attempt,
        checkpoint: cp.clone(),
    }
}

fn rendering(texts: &[&str]) -> Rendering {
    Rendering::Posts(PostsRendering {
        posts: texts
            .iter()
            .map(|t| Post { text: t.to_string(), facets: vec![], entities: vec![], count: t.chars().count(), limit: 500 })
            .collect(),
        card: None,
    })
}

const FOUR: [&str; 4] = [
    "Issue 42 is out: five stories on the state of CX. https://news.example.com/42 1/4",
    "First: podcasts worth your commute. 2/4",
    "Then: event news, with dates. 3/4",
    "Last: people moves. Read it all at https://news.example.com/42 4/4",
];

fn assert_chained(fake: &ThreadsFake, texts: &[&str]) {
    let posts = fake.posts();
    assert_eq!(posts.len(), texts.len(), "exactly one post per part: {posts:#?}");
    for (i, p) in posts.iter().enumerate() {
        assert_eq!(p.text, texts[i], "part {} text", i + 1);
        let want = if i == 0 { None } else { Some(posts[i - 1].id.clone()) };
        assert_eq!(p.reply_to_id, want, "part {} replies to the previous part", i + 1);
    }
}

async fn progress(cp: &Arc<MemoryCheckpoint>) -> ThreadProgress {
    ctx(cp, 1).load_state().await.expect("checkpoint")
}

#[tokio::test]
async fn a_thread_of_four_arrives_in_order_and_chained() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = a.deliver(&rendering(&FOUR), &ctx(&cp, 1)).await.expect("delivered");

    assert_chained(&fake, &FOUR);
    let posts = fake.posts();
    assert_eq!(r.remote_id, posts[0].id);
    assert_eq!(r.url.as_deref(), Some(posts[0].permalink.as_str()));
    assert!(!r.awaiting_confirmation);
    // One container per part, each published; the checkpoint holds both ids per part.
    assert_eq!(fake.containers().len(), 4);
    let p = progress(&cp).await;
    for (i, part) in p.parts.iter().enumerate() {
        assert_eq!(part.remote_id.as_deref(), Some(posts[i].id.as_str()));
        assert_eq!(part.prepared["container_id"], posts[i].container_id);
    }
    // Delivering again is a no-op: every part is done.
    let again = a.deliver(&rendering(&FOUR), &ctx(&cp, 2)).await.expect("no-op");
    assert_eq!(again.remote_id, r.remote_id);
    assert_eq!(fake.posts().len(), 4);
}

#[tokio::test]
async fn a_single_post_is_one_container_and_one_publish() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = a.deliver(&rendering(&["Just one 👋 https://news.example.com/42"]), &ctx(&cp, 1)).await.unwrap();
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(r.remote_id, fake.posts()[0].id);
    let reqs = fake.requests();
    assert_eq!(reqs.iter().filter(|r| r.ends_with("/threads")).count(), 1, "{reqs:?}");
    assert_eq!(reqs.iter().filter(|r| r.ends_with("/threads_publish")).count(), 1, "{reqs:?}");
}

#[tokio::test]
async fn failing_at_part_two_of_four_resumes_at_part_two() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    // The first publish passes; the second answers 500.
    fake.faults.push("POST /v1.0/me/threads_publish", Fault::Delay(Duration::ZERO), 1);
    fake.faults.push(
        "POST /v1.0/me/threads_publish",
        Fault::Status { code: 500, body: r#"{"error":{"message":"An unexpected error has occurred","code":2,"is_transient":true}}"#.into(), headers: vec![] },
        1,
    );
    let err = a.deliver(&rendering(&FOUR), &ctx(&cp, 1)).await.expect_err("part 2 fails");
    assert_eq!(err.kind(), Kind::Retryable, "{err}");
    assert_eq!(fake.posts().len(), 1, "only part 1 is out");
    let p = progress(&cp).await;
    assert!(p.parts[0].remote_id.is_some());
    assert!(p.parts[1].remote_id.is_none() && p.parts[1].prepared["container_id"].is_string(), "part 2's container is saved");

    a.deliver(&rendering(&FOUR), &ctx(&cp, 2)).await.expect("the retry finishes the thread");
    assert_chained(&fake, &FOUR);
    // Part 1 was never re-sent, part 2 reused its saved container: four containers in all.
    assert_eq!(fake.containers().len(), 4);
    assert_eq!(fake.requests().iter().filter(|r| r.ends_with("/threads")).count(), 4);
}

#[tokio::test]
async fn accept_then_drop_is_unknown_then_reconciled_by_container_status() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    let texts = &FOUR[..3];
    // Part 2's publish goes through, but the answer is lost.
    fake.faults.push("POST /v1.0/me/threads_publish", Fault::Delay(Duration::ZERO), 1);
    fake.faults.push("POST /v1.0/me/threads_publish", Fault::AcceptThenDrop, 1);
    let err = a.deliver(&rendering(texts), &ctx(&cp, 1)).await.expect_err("answer lost");
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(fake.posts().len(), 2, "the fake did publish part 2");

    // Reconcile: part 2's container is PUBLISHED, its id is found by text; part 3 is not out.
    let rec = a.find_existing(&rendering(texts), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(rec, Reconciled::NotFound, "part 3 is still owed");
    let p = progress(&cp).await;
    assert_eq!(p.parts[1].remote_id.as_deref(), Some(fake.posts()[1].id.as_str()), "part 2's media id recovered");

    a.deliver(&rendering(texts), &ctx(&cp, 3)).await.expect("resumes at part 3");
    assert_chained(&fake, texts);
    let rec = a.find_existing(&rendering(texts), &ctx(&cp, 4)).await.unwrap();
    match rec {
        Reconciled::Found(r) => assert_eq!(r.remote_id, fake.posts()[0].id),
        other => panic!("expected Found, got {other:?}"),
    }
}

#[tokio::test]
async fn lost_single_post_publish_is_found_with_the_right_id() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    let texts = ["One post, answer lost."];
    fake.faults.push("POST /v1.0/me/threads_publish", Fault::AcceptThenDrop, 1);
    let err = a.deliver(&rendering(&texts), &ctx(&cp, 1)).await.expect_err("answer lost");
    assert_eq!(err.kind(), Kind::UnknownOutcome);
    match a.find_existing(&rendering(&texts), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => {
            assert_eq!(r.remote_id, fake.posts()[0].id);
            assert_eq!(r.url.as_deref(), Some(fake.posts()[0].permalink.as_str()));
        }
        other => panic!("expected Found, got {other:?}"),
    }
    // A redelivery (pipeline or operator) posts nothing new.
    let r = a.deliver(&rendering(&texts), &ctx(&cp, 3)).await.unwrap();
    assert_eq!(r.remote_id, fake.posts()[0].id);
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn timed_out_publish_not_applied_publishes_the_saved_container() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 1);
    let cp = Arc::new(MemoryCheckpoint::default());
    let texts = ["Slow network day."];
    fake.faults.push("POST /v1.0/me/threads_publish", Fault::Delay(Duration::from_secs(3)), 1);
    let err = a.deliver(&rendering(&texts), &ctx(&cp, 1)).await.expect_err("timeout");
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(a.find_existing(&rendering(&texts), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    a.deliver(&rendering(&texts), &ctx(&cp, 3)).await.unwrap();
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(fake.containers().len(), 1, "the saved FINISHED container was published, no second one");
}

#[tokio::test]
async fn expired_container_is_replaced() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    let texts = ["Posted a day late."];
    fake.faults.push(
        "POST /v1.0/me/threads_publish",
        Fault::Status { code: 503, body: "upstream busy".into(), headers: vec![] },
        1,
    );
    assert_eq!(a.deliver(&rendering(&texts), &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::Retryable);
    fake.expire_unpublished();
    a.deliver(&rendering(&texts), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(fake.containers().len(), 2, "a new container replaced the expired one");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn propagation_race_is_waited_out() {
    let fake = ThreadsFake::start().await.unwrap();
    fake.set_processing(Duration::from_millis(400));
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    a.deliver(&rendering(&FOUR[..2]), &ctx(&cp, 1)).await.expect("delivered after waiting");
    assert_chained(&fake, &FOUR[..2]);
    let publishes = fake.requests().iter().filter(|r| r.ends_with("/threads_publish")).count();
    assert!(publishes > 2, "the fake answered 24/4279009 at least once per part ({publishes} publish calls)");
}

#[tokio::test]
async fn too_many_links_is_permanent_and_sends_nothing() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    let links = "a https://1.example b https://2.example c https://3.example d https://4.example e https://5.example f https://6.example";
    let err = a.deliver(&rendering(&["fine", links]), &ctx(&cp, 1)).await.expect_err("link limit");
    assert_eq!(err.kind(), Kind::Permanent);
    assert!(err.message().contains("THREADS_API__LINK_LIMIT_EXCEEDED"), "{err}");
    assert!(fake.requests().is_empty(), "nothing sent for a thread with a bad part");

    // The fake enforces the rule itself, in Graph's error shape.
    let resp = herald::channel::http::client()
        .post(format!("{}/v1.0/me/threads", fake.base_url))
        .form(&[("media_type", "TEXT"), ("text", links), ("access_token", threads::ACCESS_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("THREADS_API__LINK_LIMIT_EXCEEDED"));
}

#[tokio::test]
async fn fake_checks_length_params_and_reply_target() {
    let fake = ThreadsFake::start().await.unwrap();
    let http = herald::channel::http::client();
    let post = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{}/v1.0/{}/threads", fake.base_url, threads::USER_ID);
        async move { http.post(url).form(&form).send().await.unwrap() }
    };
    let tok = || ("access_token", threads::ACCESS_TOKEN.to_string());
    let long = "x".repeat(501);
    assert_eq!(post(vec![("media_type", "TEXT".into()), ("text", long), tok()]).await.status(), 400);
    assert_eq!(post(vec![("media_type", "TEXT".into()), ("text", "ok".into()), ("txet", "typo".into()), tok()]).await.status(), 400);
    assert_eq!(post(vec![("text", "no media type".into()), tok()]).await.status(), 400);
    assert_eq!(post(vec![("media_type", "TEXT".into()), ("text", "r".into()), ("reply_to_id", "999".into()), tok()]).await.status(), 400);
    let ok = post(vec![("media_type", "TEXT".into()), ("text", "x".repeat(500)), tok()]).await;
    assert_eq!(ok.status(), 200);
    let id = ok.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let status: serde_json::Value = http
        .get(format!("{}/v1.0/{id}", fake.base_url))
        .query(&[("fields", "status"), ("access_token", threads::ACCESS_TOKEN)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "FINISHED");
}

#[tokio::test]
async fn bad_token_needs_auth() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, "wrong-token", 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    let err = a.deliver(&rendering(&["hello"]), &ctx(&cp, 1)).await.expect_err("bad token");
    assert_eq!(err.kind(), Kind::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-token"), "the token never appears in errors");
    assert_eq!(a.healthcheck().await.unwrap_err().kind(), Kind::Auth);
    assert!(fake.posts().is_empty());
    let good = adapter(&fake, threads::ACCESS_TOKEN, 5);
    good.healthcheck().await.expect("healthcheck passes with the right token");
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let fake = ThreadsFake::start().await.unwrap();
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    drop(fake);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cp = Arc::new(MemoryCheckpoint::default());
    let err = a.deliver(&rendering(&["hello"]), &ctx(&cp, 1)).await.expect_err("down");
    assert_eq!(err.kind(), Kind::Retryable, "{err}");
}

#[tokio::test]
async fn fake_container_goes_in_progress_finished_published() {
    let fake = ThreadsFake::start().await.unwrap();
    fake.set_processing(Duration::from_millis(300));
    let http = herald::channel::http::client();
    let base = fake.base_url.clone();
    let status = |id: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let v: serde_json::Value = http
                .get(format!("{base}/v1.0/{id}"))
                .query(&[("fields", "status"), ("access_token", threads::ACCESS_TOKEN)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["status"].as_str().unwrap_or_default().to_string()
        }
    };
    let publish = |id: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/v1.0/me/threads_publish"))
                .form(&[("creation_id", id.as_str()), ("access_token", threads::ACCESS_TOKEN)])
                .send()
                .await
                .unwrap()
        }
    };
    let created: serde_json::Value = http
        .post(format!("{base}/v1.0/me/threads"))
        .form(&[("media_type", "TEXT"), ("text", "hello"), ("access_token", threads::ACCESS_TOKEN)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(status(id.clone()).await, "IN_PROGRESS");
    let early = publish(id.clone()).await;
    assert_eq!(early.status(), 400);
    let e: serde_json::Value = early.json().await.unwrap();
    assert_eq!((e["error"]["code"].as_i64(), e["error"]["error_subcode"].as_i64()), (Some(24), Some(4279009)));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status(id.clone()).await, "FINISHED");
    assert_eq!(publish(id.clone()).await.status(), 200);
    assert_eq!(status(id.clone()).await, "PUBLISHED");
    assert_eq!(publish(id.clone()).await.status(), 400, "a container publishes once");
    let quota: serde_json::Value = http
        .get(format!("{base}/v1.0/me/threads_publishing_limit"))
        .query(&[("access_token", threads::ACCESS_TOKEN)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quota["data"][0]["quota_usage"], 1);
    assert_eq!(quota["data"][0]["config"]["quota_total"], 250);
}

#[test]
fn build_names_a_missing_credential() {
    let ctx = BuildCtx { env: Box::new(|_| None), base_dir: std::env::temp_dir(), timeout: Duration::from_secs(5), vault: None };
    let none: ChannelConfig = toml::from_str("type = \"threads\"\n").unwrap();
    let e = build_adapter("threads_main", &none, &ctx).err().expect("no token").to_string();
    assert!(e.contains("threads_main") && e.contains("access_token"), "{e}");
    let unset: ChannelConfig = toml::from_str(&format!("type = \"threads\"\naccess_token = \"${{{TOKEN_ENV}}}\"\n")).unwrap();
    let e = build_adapter("threads_main", &unset, &ctx).err().expect("env unset").to_string();
    assert!(e.contains(TOKEN_ENV), "{e}");
}

/// Issue 14 item 5: the link limit is the channel's `max_links`, 4 by default (some accounts are
/// refused from 4; Meta documents 5).
#[tokio::test]
async fn the_link_limit_is_configurable_and_four_by_default() {
    let fake = ThreadsFake::start().await.unwrap();
    fake.set_link_limit(4);
    let five = "a https://1.example b https://2.example c https://3.example d https://4.example e https://5.example";
    let err = adapter(&fake, threads::ACCESS_TOKEN, 5).deliver(&rendering(&[five]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Permanent);
    assert!(err.message().contains("5 unique links; this channel allows 4 (`max_links`)"), "{err}");
    assert!(fake.posts().is_empty() && fake.requests().is_empty(), "refused before any call");
    // `max_links = 5` on an account Threads allows 5: accepted.
    fake.set_link_limit(5);
    adapter_with(&fake, threads::ACCESS_TOKEN, "max_links = 5").deliver(&rendering(&[five]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(fake.posts().len(), 1);
}

/// Issue 14 item 5: the health check names a missing permission: `threads_content_publish`
/// always, `threads_read_replies` for a thread channel.
#[tokio::test]
async fn the_health_check_names_a_missing_permission() {
    let fake = ThreadsFake::start().await.unwrap();
    let thread = adapter_with(&fake, threads::ACCESS_TOKEN, "format = \"thread\"");
    thread.healthcheck().await.expect("every permission granted");
    fake.set_permissions(&["threads_basic", "threads_content_publish", "threads_manage_replies"]);
    let err = thread.healthcheck().await.unwrap_err();
    assert_eq!(err.kind(), Kind::Auth, "{err}");
    assert!(err.message().contains("`threads_read_replies`"), "{err}");
    adapter(&fake, threads::ACCESS_TOKEN, 5).healthcheck().await.expect("a short channel reads no replies");
    fake.set_permissions(&["threads_basic"]);
    let err = adapter(&fake, threads::ACCESS_TOKEN, 5).healthcheck().await.unwrap_err();
    assert!(err.message().contains("`threads_content_publish`"), "{err}");
}

/// Issue 14 item 5: reconciliation asks each edge only for the fields it documents (the fake
/// refuses `replied_to` on the `threads` edge, as Threads does).
#[tokio::test]
async fn the_threads_edge_is_asked_only_documented_fields() {
    let fake = ThreadsFake::start().await.unwrap();
    let res = herald::channel::http::client()
        .get(format!("{}/v1.0/me/threads", fake.base_url))
        .query(&[("fields", "id,text,replied_to"), ("access_token", threads::ACCESS_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let a = adapter(&fake, threads::ACCESS_TOKEN, 5);
    let cp = Arc::new(MemoryCheckpoint::default());
    fake.faults.push("POST /v1.0/me/threads_publish", Fault::AcceptThenDrop, 1);
    let _ = a.deliver(&rendering(&["Issue 42 is out."]), &ctx(&cp, 1)).await.expect_err("answer lost");
    assert!(matches!(a.find_existing(&rendering(&["Issue 42 is out."]), &ctx(&cp, 2)).await.unwrap(), Reconciled::Found(_)));
}
