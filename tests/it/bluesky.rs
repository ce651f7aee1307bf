//! Bluesky adapter against the PDS fake: threads with reply refs, facets and a card with a
//! thumbnail, one login across deliveries, refresh on expiry, rkey + getRecord reconciliation,
//! and resume after a failed part.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, Checkpoint, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled};
use herald::config::ChannelConfig;
use herald::render::{ByteSlice, Facet, FacetFeature, LinkCard, Post, PostsRendering, Rendering};
use herald::sandbox::bluesky::{self as fake, BlueskyFake};
use herald::sandbox::fault::Fault;
use unicode_segmentation::UnicodeSegmentation;

fn adapter(fake: &BlueskyFake, base_dir: &std::path::Path) -> Arc<dyn Adapter> {
    let toml = format!(
        "type = \"bluesky\"\napi_base = \"{}\"\nidentifier = \"{}\"\napp_password = \"${{BSKY_PASSWORD}}\"\ntimeout_secs = 5\n",
        fake.base_url,
        fake::HANDLE
    );
    let cfg: ChannelConfig = toml::from_str(&toml).expect("channel config parses");
    let ctx = BuildCtx {
        env: Box::new(|k| (k == "BSKY_PASSWORD").then(|| fake::APP_PASSWORD.to_string())),
        base_dir: base_dir.to_path_buf(),
        timeout: Duration::from_secs(5),
        vault: None,
    };
    herald::channel::bluesky::build("bsky", &cfg, &ctx).expect("adapter builds")
}

/// A post with facets for every `needle` found in the text.
fn post(text: &str, marks: &[(&str, FacetFeature)]) -> Post {
    let facets = marks
        .iter()
        .map(|(needle, feature)| {
            let start = text.find(needle).expect("needle in text");
            Facet { index: ByteSlice { byte_start: start, byte_end: start + needle.len() }, features: vec![feature.clone()] }
        })
        .collect();
    Post { text: text.into(), facets, entities: vec![], count: text.graphemes(true).count(), limit: 300 }
}

fn plain(texts: &[&str]) -> Rendering {
    Rendering::Posts(PostsRendering { posts: texts.iter().map(|t| post(t, &[])).collect(), card: None })
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx {
        key: "issue-42/bsky/r1".into(),
        delivery_id: 5,
        issue: "issue-42".into(),
        channel: "bsky".into(),
        attempt,
        checkpoint: cp.clone() as Arc<dyn Checkpoint>,
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn thread_with_facets_card_and_thumb_is_chained() {
    let fake = BlueskyFake::start().await.unwrap();
    let dir = tmp();
    std::fs::write(dir.path().join("cover.png"), b"\x89PNG\r\n\x1a\nnot really a png but bytes").unwrap();
    let bsky = adapter(&fake, dir.path());
    let url = "https://example.com/issue/42";
    let first = post(
        "New issue 🎉 out now: https://example.com/issue/42 #newsletter @alice.bsky.social @nobody.invalid",
        &[
            (url, FacetFeature::Link { uri: url.into() }),
            ("#newsletter", FacetFeature::Tag { tag: "newsletter".into() }),
            ("@alice.bsky.social", FacetFeature::Mention { did: "alice.bsky.social".into() }),
            ("@nobody.invalid", FacetFeature::Mention { did: "nobody.invalid".into() }),
        ],
    );
    let r = Rendering::Posts(PostsRendering {
        posts: vec![first, post("2/3 Podcasts: two new shows.", &[]), post("3/3 People: who moved where. 👨‍👩‍👧‍👦", &[])],
        card: Some(LinkCard {
            uri: url.into(),
            title: "Issue 42".into(),
            description: "This week".into(),
            image: Some("cover.png".into()),
        }),
    });
    let cp = Arc::new(MemoryCheckpoint::default());
    let receipt = bsky.deliver(&r, &ctx(&cp, 1)).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    assert!(posts[1].text().starts_with("2/3") && posts[2].text().starts_with("3/3"));
    assert_eq!(posts[0].reply(), None);
    assert_eq!(posts[1].reply(), Some((posts[0].uri.clone(), posts[0].uri.clone())));
    assert_eq!(posts[2].reply(), Some((posts[0].uri.clone(), posts[1].uri.clone())));
    // Facets: the mention is resolved to a DID; the unresolvable one is dropped.
    let facets = posts[0].record["facets"].as_array().unwrap();
    assert_eq!(facets.len(), 3);
    assert_eq!(facets[2]["features"][0]["did"], "did:plc:fakealice");
    assert_eq!(facets[0]["index"]["byteStart"], 24);
    // Card with an uploaded thumb.
    let ext = &posts[0].record["embed"]["external"];
    assert_eq!(ext["uri"], url);
    let link = ext["thumb"]["ref"]["$link"].as_str().unwrap();
    assert_eq!(fake.blobs()[link].0, "image/png");
    assert!(posts[1].record.get("embed").is_none());
    // Receipt: first post's at-uri and its bsky.app URL.
    assert_eq!(receipt.remote_id, posts[0].uri);
    assert_eq!(receipt.url, Some(format!("https://bsky.app/profile/{}/post/{}", fake::HANDLE, posts[0].rkey)));
    for p in &posts {
        assert!(p.text().graphemes(true).count() <= 300 && p.text().len() <= 3000);
    }
}

#[tokio::test]
async fn logs_in_once_across_deliveries_and_refreshes_on_expiry() {
    let fake = BlueskyFake::start().await.unwrap();
    let bsky = adapter(&fake, tmp().path());
    for i in 0..5 {
        let text = format!("post number {i}");
        bsky.deliver(&plain(&[&text]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    }
    bsky.healthcheck().await.unwrap();
    assert_eq!(fake.logins(), 1);
    fake.expire_access_tokens();
    bsky.deliver(&plain(&["after expiry"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(fake.refreshes(), 1, "refreshSession, not a new login");
    assert_eq!(fake.logins(), 1);
    assert_eq!(fake.posts().len(), 6);
}

#[tokio::test]
async fn accept_then_drop_is_found_by_get_record() {
    let fake = BlueskyFake::start().await.unwrap();
    let bsky = adapter(&fake, tmp().path());
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = plain(&["A post whose answer is lost"]);
    fake.faults.push("POST /xrpc/com.atproto.repo.createRecord", Fault::AcceptThenDrop, 1);
    let err = bsky.deliver(&r, &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(fake.posts().len(), 1);

    let Reconciled::Found(receipt) = bsky.find_existing(&r, &ctx(&cp, 2)).await.unwrap() else { panic!("not found") };
    assert_eq!(receipt.remote_id, fake.posts()[0].uri);
    let again = bsky.deliver(&r, &ctx(&cp, 2)).await.unwrap();
    assert_eq!(again, Receipt { note: None, ..receipt });
    assert_eq!(fake.create_calls(), 1, "the retry created nothing");
}

use herald::channel::Receipt;

#[tokio::test]
async fn dropped_before_the_write_retries_with_the_same_rkey() {
    let fake = BlueskyFake::start().await.unwrap();
    let bsky = adapter(&fake, tmp().path());
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = plain(&["Never arrived the first time"]);
    fake.faults.push("POST /xrpc/com.atproto.repo.createRecord", Fault::Drop, 1);
    assert_eq!(bsky.deliver(&r, &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::UnknownOutcome);
    let saved = cp.load().await.unwrap().unwrap();
    let rkey = saved["parts"][0]["prepared"]["rkey"].as_str().unwrap().to_string();
    assert!(herald::channel::bluesky::tid::is_valid(&rkey));
    assert_eq!(bsky.find_existing(&r, &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    bsky.deliver(&r, &ctx(&cp, 2)).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].rkey, rkey, "the rkey chosen before the first call is reused");
}

#[tokio::test]
async fn thread_failing_at_part_two_resumes_there() {
    let fake = BlueskyFake::start().await.unwrap();
    let bsky = adapter(&fake, tmp().path());
    let cp = Arc::new(MemoryCheckpoint::default());
    let texts = ["1/4 start", "2/4 podcasts", "3/4 events", "4/4 people"];
    let r = plain(&texts);
    fake.faults.push("POST /xrpc/com.atproto.repo.createRecord", Fault::Delay(Duration::ZERO), 1);
    fake.faults.push(
        "POST /xrpc/com.atproto.repo.createRecord",
        Fault::Status { code: 502, body: r#"{"error":"UpstreamFailure","message":"Upstream Failure"}"#.into(), headers: vec![] },
        1,
    );
    assert_eq!(bsky.deliver(&r, &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::Retryable);
    assert_eq!(fake.posts().len(), 1);
    let receipt = bsky.deliver(&r, &ctx(&cp, 2)).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.iter().map(|p| p.text()).collect::<Vec<_>>(), texts, "part 1 never reposted");
    assert_eq!(posts[3].reply(), Some((posts[0].uri.clone(), posts[2].uri.clone())));
    assert_eq!(receipt.remote_id, posts[0].uri);
}

#[tokio::test]
async fn too_long_text_is_permanent_and_a_big_thumb_is_skipped() {
    let fake = BlueskyFake::start().await.unwrap();
    let dir = tmp();
    std::fs::write(dir.path().join("huge.jpg"), vec![0u8; 1_000_001]).unwrap();
    let bsky = adapter(&fake, dir.path());
    let long = "a".repeat(301);
    let err = bsky.deliver(&plain(&[&long]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Permanent);
    assert!(err.message().contains("300 graphemes"), "{err}");

    let r = Rendering::Posts(PostsRendering {
        posts: vec![post("with a card", &[])],
        card: Some(LinkCard { uri: "https://example.com".into(), title: "t".into(), description: "d".into(), image: Some("huge.jpg".into()) }),
    });
    bsky.deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    let p = &fake.posts()[0];
    assert_eq!(p.record["embed"]["external"]["uri"], "https://example.com");
    assert!(p.record["embed"]["external"].get("thumb").is_none());
    assert!(fake.blobs().is_empty());
}

#[tokio::test]
async fn one_login_per_process_even_across_adapters_and_the_fake_limits_logins() {
    let fake = BlueskyFake::start().await.unwrap();
    // The pipeline may build the adapter more than once: the session is still shared.
    for _ in 0..3 {
        adapter(&fake, tmp().path()).healthcheck().await.unwrap();
    }
    assert_eq!(fake.logins(), 1);
    // A client that logs in per job hits Bluesky's 30 per 5 minutes.
    let client = herald::channel::http::client();
    let login = || {
        client
            .post(format!("{}/xrpc/com.atproto.server.createSession", fake.base_url))
            .json(&serde_json::json!({ "identifier": fake::HANDLE, "password": fake::APP_PASSWORD }))
            .send()
    };
    for _ in 1..fake::LOGIN_LIMIT {
        assert_eq!(login().await.unwrap().status(), 200);
    }
    let refused = login().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers()["ratelimit-reset"].to_str().unwrap().parse::<i64>().unwrap() > chrono::Utc::now().timestamp());
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "RateLimitExceeded");
}

#[tokio::test]
async fn dead_refresh_token_logs_in_again_and_429_carries_the_reset() {
    let fake = BlueskyFake::start().await.unwrap();
    let bsky = adapter(&fake, tmp().path());
    bsky.deliver(&plain(&["first"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    fake.expire_access_tokens();
    fake.revoke_refresh_tokens();
    bsky.deliver(&plain(&["second"]), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(fake.logins(), 2, "a dead refresh JWT falls back to one new login");
    assert_eq!(fake.posts().len(), 2);

    let reset = chrono::Utc::now().timestamp() + 300;
    fake.faults.push(
        "POST /xrpc/com.atproto.repo.createRecord",
        Fault::Status {
            code: 429,
            body: r#"{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}"#.into(),
            headers: vec![("ratelimit-reset".into(), reset.to_string()), ("ratelimit-remaining".into(), "0".into())],
        },
        1,
    );
    let cp = Arc::new(MemoryCheckpoint::default());
    let err = bsky.deliver(&plain(&["third"]), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::RateLimited);
    assert!((298..=300).contains(&err.retry_after().unwrap().as_secs()));
    // The throttled create wrote nothing; the retry checks its rkey and posts once.
    bsky.deliver(&plain(&["third"]), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(fake.posts().len(), 3);
}

/// The real renderer's output for every sample issue, short and thread, is accepted by the fake.
#[tokio::test]
async fn every_sample_issue_renders_into_posts_the_fake_accepts() {
    for format in ["short", "thread"] {
        let fake = BlueskyFake::start().await.unwrap();
        let adapter = adapter(&fake, tmp().path());
        let expected = crate::util::deliver_every_sample(adapter.as_ref(), "bluesky", format).await;
        assert!(expected > 0);
        assert_eq!(fake.posts().len(), expected, "{format}: every rendered post accepted once");
    }
}

/// Issue 16 item 4: a remote thumbnail is read under Bluesky's 1,000,000-byte cap however it is
/// framed: an endless chunked answer without `content-length` is cut at once, not read until
/// the timeout, and the card goes out without a thumb.
#[tokio::test]
async fn an_endless_chunked_thumbnail_is_cut_at_the_cap() {
    let fake = BlueskyFake::start().await.unwrap();
    let images = herald::sandbox::fault::serve(axum::Router::new().route(
        "/big.png",
        axum::routing::get(|| async { herald::sandbox::fault::oversized_response(200, 8 * 1024 * 1024 * 1024) }),
    ))
    .await
    .unwrap();
    let bsky = adapter(&fake, tmp().path());
    let r = Rendering::Posts(PostsRendering {
        posts: vec![post("with a remote card image", &[])],
        card: Some(LinkCard {
            uri: "https://example.com".into(),
            title: "t".into(),
            description: "d".into(),
            image: Some(format!("{}/big.png", images.base_url)),
        }),
    });
    let started = std::time::Instant::now();
    bsky.deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "read past the cap: {:?}", started.elapsed());
    assert!(fake.posts()[0].record["embed"]["external"].get("thumb").is_none());
    assert!(fake.blobs().is_empty());
}

/// Issue 14 item 7: the explicit duplicate-rkey error of newer PDSes means an earlier attempt
/// wrote the part: it is adopted from getRecord, not failed as permanent.
#[tokio::test]
async fn an_explicit_duplicate_rkey_is_reconciled_with_get_record() {
    let fake = BlueskyFake::start().await.unwrap();
    let bsky = adapter(&fake, tmp().path());
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = plain(&["1/2 written, answer lost", "2/2 the rest"]);
    fake.faults.push("POST /xrpc/com.atproto.repo.createRecord", Fault::AcceptThenDrop, 1);
    assert_eq!(bsky.deliver(&r, &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::UnknownOutcome);
    // A lagging read misses the record, so the retry sends the same rkey again.
    fake.faults.push(
        "GET /xrpc/com.atproto.repo.getRecord",
        Fault::Status { code: 400, body: r#"{"error":"RecordNotFound","message":"Could not locate record"}"#.into(), headers: vec![] },
        1,
    );
    let receipt = bsky.deliver(&r, &ctx(&cp, 2)).await.expect("the duplicate rkey is adopted");
    let posts = fake.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(receipt.remote_id, posts[0].uri);
    assert_eq!(posts[1].reply().map(|(_, parent)| parent), Some(posts[0].uri.clone()));
}
