//! Ghost adapter against the Ghost Admin API fake: the exact post, the canonical URL from the
//! issue, each error class and the state it ends in, accept-then-drop reconciled by the slug,
//! and the fake's token checks.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, Checkpoint, DeliveryCtx, Delivered, Kind, MemoryCheckpoint, Reconciled};
use herald::config::{ChannelConfig, RetryConfig};
use herald::jobs::RetrySchedule;
use herald::jobs::decide::{History, decide};
use herald::render::{ArticleRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::ghost::{self, GhostFake};
use herald::store::{State, Trigger};
use serde_json::json;

const KEY_ENV: &str = "HERALD_IT_GHOST_KEY";
const POSTS: &str = "POST /ghost/api/admin/posts/";

fn config(fake: &GhostFake, extra: &str) -> ChannelConfig {
    toml::from_str(&format!("type = \"ghost\"\napi_url = \"{}\"\nadmin_api_key = \"${{{KEY_ENV}}}\"\ntimeout_secs = 1\n{extra}", fake.base_url))
        .expect("ghost config parses")
}

fn adapter_with(cfg: &ChannelConfig, key: &str) -> Arc<dyn Adapter> {
    crate::util::build_with_secret("ghost_blog", cfg, KEY_ENV, key)
}

fn adapter(fake: &GhostFake, extra: &str) -> Arc<dyn Adapter> {
    adapter_with(&config(fake, extra), &ghost::admin_api_key())
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx {
        key: "issue-42/ghost_blog/r1".into(),
        delivery_id: 7,
        issue: "issue-42".into(),
        channel: "ghost_blog".into(),
        attempt,
        checkpoint: cp.clone(),
    }
}

fn rendering() -> Rendering {
    Rendering::Article(ArticleRendering {
        title: "Issue 42: Rust & <HTML>".into(),
        subtitle: "Three things this week.".into(),
        html: "<p>Hello <em>world</em>.</p>\n".into(),
        doc: None,
        slug: Some("issue-42".into()),
        canonical_url: Some("https://news.example.com/issues/42".into()),
    })
}

/// The state the pipeline's retry policy gives this answer (first, scheduled attempt).
fn state_of(answer: &Result<Delivered, herald::channel::DeliveryError>) -> State {
    let schedule = RetrySchedule::for_channel(&RetryConfig::default(), None);
    decide(answer, &History { attempts: 0, rate_limited_waits: 0, trigger: Trigger::Schedule }, &schedule, 0.5).state
}

#[tokio::test]
async fn publishes_the_exact_post_with_a_token_ghost_accepts() {
    let fake = GhostFake::start().await.unwrap();
    let a = adapter(&fake, "tags = [\"newsletter\", \"rust\"]\naccept_version = \"v5.0\"");
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = a.deliver(&rendering(), &ctx(&cp, 1)).await.expect("published");
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    let p = &posts[0];
    assert_eq!(
        p.body,
        json!({"posts": [{
            "title": "Issue 42: Rust & <HTML>",
            "html": "<p>Hello <em>world</em>.</p>\n",
            "status": "published",
            "canonical_url": "https://news.example.com/issues/42",
            "slug": "issue-42",
            "custom_excerpt": "Three things this week.",
            "tags": ["newsletter", "rust"],
        }]})
    );
    // `?source=html` went with it: the fake kept the HTML (Ghost ignores it otherwise).
    assert_eq!(p.html.as_deref(), Some("<p>Hello <em>world</em>.</p>\n"));
    assert_eq!(fake.requests(), vec!["POST /ghost/api/admin/posts/?source=html".to_string()]);
    assert_eq!(p.accept_version.as_deref(), Some("v5.0"));
    assert_eq!((r.remote_id.as_str(), r.url.as_deref()), (p.id.as_str(), Some(format!("{}/issue-42/", fake.base_url).as_str())));
    assert_eq!(state_of(&Ok(Delivered::from(r))), State::Sent);
    // A second deliver (a retry after a crash past the answer) is the checkpoint, not a post.
    a.deliver(&rendering(), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn draft_status_waits_for_the_author() {
    let fake = GhostFake::start().await.unwrap();
    let r = adapter(&fake, "status = \"draft\"").deliver(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(fake.posts()[0].status, "draft");
    assert_eq!(state_of(&Ok(Delivered::from(r))), State::AwaitingConfirmation);
}

#[tokio::test]
async fn the_canonical_url_is_the_issues_url_from_the_rendered_sample_issue() {
    let fake = GhostFake::start().await.unwrap();
    let issue = herald::issue::parse_file(&crate::util::fixture("issues/2026-week-48.md")).unwrap();
    let cfg = config(&fake, "");
    let mut t = herald::render::engine::ChannelTemplates::load("ghost_blog", &cfg, &crate::util::root()).unwrap();
    let r = t.render(&issue).unwrap();
    adapter(&fake, "").deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    let p = &fake.posts()[0];
    assert!(!issue.meta.url.is_empty());
    assert_eq!(p.canonical_url.as_deref(), Some(issue.meta.url.as_str()));
    assert_eq!(p.body["posts"][0]["canonical_url"], json!(issue.meta.url));
    assert_eq!(p.slug, issue.meta.slug);
    assert_eq!(p.title, issue.meta.title);
    // The whole issue went as HTML: every section's title is a heading in it.
    let html = p.html.as_deref().unwrap();
    for s in &issue.sections {
        assert!(html.contains(&format!(">{}</h2>", s.title.replace('&', "&amp;"))), "{} missing from {html}", s.title);
    }
}

#[tokio::test]
async fn a_refused_key_needs_auth() {
    let fake = GhostFake::start().await.unwrap();
    // A well-formed key Ghost does not know.
    let unknown = format!("0123456789abcdef01234567:{}", ghost::KEY_SECRET);
    let e = adapter_with(&config(&fake, ""), &unknown).deliver(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(401)), "{e}");
    assert!(e.message().contains("Unknown Admin API Key"), "{e}");
    // The right id with the wrong secret: the signature fails.
    let wrong = format!("{}:{}", ghost::KEY_ID, "ab".repeat(32));
    let e = adapter_with(&config(&fake, ""), &wrong).deliver(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Auth);
    assert!(e.message().contains("Invalid token") && e.message().contains("signature"), "{e}");
    assert!(!e.message().contains(&"ab".repeat(32)));
    assert_eq!(state_of(&Err(e)), State::Failed);
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn the_fake_refuses_an_expired_or_over_long_token_as_ghost_does() {
    let fake = GhostFake::start().await.unwrap();
    let key = herald::channel::ghost::AdminKey::parse(&ghost::admin_api_key()).unwrap();
    let post = |token: String| {
        herald::channel::http::client()
            .post(format!("{}/ghost/api/admin/posts/?source=html", fake.base_url))
            .header("authorization", format!("Ghost {token}"))
            .json(&json!({"posts": [{"title": "t"}]}))
            .send()
    };
    let now = chrono::Utc::now().timestamp();
    // Issued 6 minutes ago: past its exp and Ghost's maxAge.
    let r = post(key.token_at(now - 360)).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["type"], "UnauthorizedError");
    assert_eq!(body["errors"][0]["code"], "INVALID_JWT");
    // Through the adapter, with the fake's clock 10 minutes ahead: needs_auth.
    fake.skew_clock(600);
    let e = adapter(&fake, "").deliver(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Auth, "{e}");
    fake.skew_clock(0);
    // A fresh token passes.
    assert_eq!(post(key.token()).await.unwrap().status(), 201);
    // No header at all: 403 NoPermissionError, as Ghost answers.
    let r = herald::channel::http::client().post(format!("{}/ghost/api/admin/posts/", fake.base_url)).json(&json!({"posts": [{"title": "t"}]})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn content_ghost_refuses_is_permanent() {
    let fake = GhostFake::start().await.unwrap();
    let mut r = rendering();
    if let Rendering::Article(a) = &mut r {
        a.title = "   ".into();
    }
    let e = adapter(&fake, "").deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Permanent, Some(422)), "{e}");
    assert!(e.message().contains("ValidationError") && e.message().contains("title"), "{e}");
    assert_eq!(state_of(&Err(e)), State::Failed);
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn a_rate_limit_waits_as_ghost_asks() {
    let fake = GhostFake::start().await.unwrap();
    fake.faults.push(
        POSTS,
        Fault::Status {
            code: 429,
            body: r#"{"errors":[{"message":"Too many requests.","context":"Too many attempts.","type":"TooManyRequestsError","code":null}]}"#.into(),
            headers: vec![("retry-after".into(), "120".into())],
        },
        1,
    );
    let a = adapter(&fake, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    let e = a.deliver(&rendering(), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_secs(120))), "{e}");
    assert!(e.message().contains("TooManyRequestsError"), "{e}");
    let answer = Err(e);
    let d = decide(&answer, &History { attempts: 0, rate_limited_waits: 0, trigger: Trigger::Schedule }, &RetrySchedule::for_channel(&RetryConfig::default(), None), 0.5);
    assert_eq!(d.state, State::Retrying);
    assert!(matches!(d.next, herald::jobs::decide::Next::After(w) if w >= Duration::from_secs(120)), "{:?}", d.next);
    // The retry: nothing was created, the lookup says so, one post.
    assert_eq!(a.find_existing(&rendering(), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    a.deliver(&rendering(), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let fake = GhostFake::start().await.unwrap();
    fake.faults.push(
        POSTS,
        Fault::Status { code: 503, body: r#"{"errors":[{"message":"Service Unavailable","type":"InternalServerError"}]}"#.into(), headers: vec![] },
        1,
    );
    let e = adapter(&fake, "").deliver(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable, "{e}");
    assert_eq!(state_of(&Err(e)), State::Retrying);
}

#[tokio::test]
async fn a_timeout_is_unconfirmed_then_reconciled_to_one_post() {
    let fake = GhostFake::start().await.unwrap();
    // No answer within the channel's 1 s timeout; nothing processed.
    fake.faults.push(POSTS, Fault::Hang(Duration::from_secs(3)), 1);
    let a = adapter(&fake, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    let e = a.deliver(&rendering(), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert_eq!(state_of(&Err(e)), State::Unconfirmed);
    assert_eq!(a.find_existing(&rendering(), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    a.deliver(&rendering(), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn accept_then_drop_reconciles_to_the_one_post() {
    let fake = GhostFake::start().await.unwrap();
    fake.faults.push(POSTS, Fault::AcceptThenDrop, 1);
    let a = adapter(&fake, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    let e = a.deliver(&rendering(), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert_eq!(fake.posts().len(), 1, "the fake kept the post before dropping the answer");
    let id = fake.posts()[0].id.clone();
    // Reconciling finds it by its slug.
    match a.find_existing(&rendering(), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => assert_eq!(r.remote_id, id),
        other => panic!("expected Found, got {other:?}"),
    }
    // Even a deliver straight after (no reconcile step) looks first: still one post, no `-2`.
    let cp2 = Arc::new(MemoryCheckpoint::default());
    fake.faults.push(POSTS, Fault::AcceptThenDrop, 1);
    let ctx2 = DeliveryCtx { key: "issue-43/ghost_blog/r1".into(), ..ctx(&cp2, 1) };
    let mut r43 = rendering();
    if let Rendering::Article(x) = &mut r43 {
        x.slug = Some("issue-43".into());
        x.canonical_url = Some("https://news.example.com/issues/43".into());
    }
    a.deliver(&r43, &ctx2).await.unwrap_err();
    let ctx2 = DeliveryCtx { key: "issue-43/ghost_blog/r1".into(), ..ctx(&cp2, 2) };
    a.deliver(&r43, &ctx2).await.unwrap();
    let slugs: Vec<String> = fake.posts().iter().map(|p| p.slug.clone()).collect();
    assert_eq!(slugs, vec!["issue-42", "issue-43"]);
    assert!(cp2.load().await.unwrap().is_some());
}

#[tokio::test]
async fn the_fake_appends_2_to_a_taken_slug_and_reconcile_refuses_a_stranger() {
    let fake = GhostFake::start().await.unwrap();
    fake.insert_post("Someone else's", "issue-42", Some("https://elsewhere.example/x"));
    let a = adapter(&fake, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    // The lookup finds a post under the slug that is not this issue's: the operator decides.
    match a.find_existing(&rendering(), &ctx(&cp, 1)).await.unwrap() {
        Reconciled::CannotCheck(why) => assert!(why.contains("issue-42") && why.contains("elsewhere.example"), "{why}"),
        other => panic!("expected CannotCheck, got {other:?}"),
    }
    // Posted anyway (a first attempt does not look): Ghost makes `issue-42-2`, and says so.
    let r = a.deliver(&rendering(), &ctx(&cp, 1)).await.unwrap();
    assert_eq!(fake.posts()[1].slug, "issue-42-2");
    assert!(r.warning.as_deref().unwrap_or_default().contains("issue-42-2"), "{r:?}");
}
