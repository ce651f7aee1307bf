//! dev.to (Forem) adapter against the dev.to fake: the exact article received, the canonical
//! URL equal to the issue's `url`, each error class ending in its state, accept-then-drop
//! reconciled to one article, and the preflight refusing what Forem refuses.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled};
use herald::config::{ChannelConfig, RetryConfig};
use herald::jobs::decide::{History, Next, decide};
use herald::jobs::schedule::RetrySchedule;
use herald::render::{BodyRendering, Rendering};
use herald::sandbox::devto::{self, DevtoFake};
use herald::sandbox::fault::Fault;
use herald::store::{AttemptOutcome, State, Trigger};
use serde_json::json;

use crate::util::{fixture, root};

const KEY_ENV: &str = "HERALD_IT_DEVTO_KEY";

fn config(fake: &DevtoFake, extra: &str) -> ChannelConfig {
    toml::from_str(&format!("type = \"devto\"\napi_base = \"{}\"\napi_key = \"${{{KEY_ENV}}}\"\ntimeout_secs = 1\n{extra}", fake.base_url))
        .expect("devto config parses")
}

fn adapter_with(cfg: &ChannelConfig, key: &str) -> Arc<dyn Adapter> {
    crate::util::build_with_secret("devto", cfg, KEY_ENV, key)
}

fn adapter(fake: &DevtoFake) -> Arc<dyn Adapter> {
    adapter_with(&config(fake, ""), devto::API_KEY)
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx { key: "issue-42/devto/r1".into(), delivery_id: 7, issue: "issue-42".into(), channel: "devto".into(), attempt, checkpoint: cp.clone() }
}

const CANONICAL: &str = "https://news.example.com/2026/issue-42";

/// A rendering as channels/devto/body.json.hbs produces it (Markdown in parts).
fn rendering(tags: serde_json::Value) -> Rendering {
    Rendering::Body(BodyRendering {
        body: json!({
            "title": "Issue 42: pipes & queues",
            "description": "Five stories about queues.",
            "canonical_url": CANONICAL,
            "main_image": "https://news.example.com/img/42.png",
            "tags": tags,
            "body_markdown": ["Hello *readers*.", "\n\n## ", "Queues", "\n\n", "A [link](https://a.example/q)."],
        }),
    })
}

fn schedule() -> RetrySchedule {
    let retry = RetryConfig { schedule_secs: vec![10, 100], jitter: 0.0, rate_limit_floor_secs: 1, rate_limit_ceiling_secs: 3600 };
    RetrySchedule::for_channel(&retry, None)
}

/// The state the pipeline's one retry policy puts a delivery in after this answer.
fn state_after(e: herald::channel::DeliveryError) -> (State, Option<AttemptOutcome>, Next) {
    let d = decide(&Err(e), &History { attempts: 0, rate_limited_waits: 0, trigger: Trigger::Schedule }, &schedule(), 0.0);
    (d.state, d.row.map(|r| r.outcome), d.next)
}

#[tokio::test]
async fn publishes_the_exact_article_forem_receives() {
    let fake = DevtoFake::start().await.unwrap();
    let a = adapter_with(&config(&fake, "series = \"Herald Weekly\""), devto::API_KEY);
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = a.deliver(&rendering(json!(["queues", "Rust"])), &ctx(&cp, 1)).await.expect("posted");

    let got = fake.articles();
    assert_eq!(got.len(), 1);
    let art = &got[0];
    assert_eq!(
        art.request,
        json!({"article": {
            "title": "Issue 42: pipes & queues",
            "body_markdown": "Hello *readers*.\n\n## Queues\n\nA [link](https://a.example/q).",
            "published": true,
            "canonical_url": CANONICAL,
            "description": "Five stories about queues.",
            "tags": ["queues", "Rust"],
            "series": "Herald Weekly",
            "main_image": "https://news.example.com/img/42.png",
        }})
    );
    assert_eq!(r.remote_id, art.id.to_string());
    assert_eq!(r.url.as_deref(), Some(art.url.as_str()));
    assert!(!r.awaiting_confirmation);
    assert_eq!(art.tags, vec!["queues", "rust"], "Forem lowercases tags");
    // Redelivery answers from the checkpoint, without a call.
    let before = fake.requests().len();
    assert_eq!(a.deliver(&rendering(json!(["queues"])), &ctx(&cp, 2)).await.unwrap().remote_id, r.remote_id);
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn a_draft_awaits_confirmation() {
    let fake = DevtoFake::start().await.unwrap();
    let a = adapter_with(&config(&fake, "published = false"), devto::API_KEY);
    let r = a.deliver(&rendering(json!([])), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert!(r.awaiting_confirmation);
    assert!(!fake.articles()[0].published);
    assert_eq!(fake.articles()[0].request["article"]["published"], json!(false));
}

/// The real templates and renderer, a sample issue: the canonical URL sent is the issue's
/// `url`, and the Markdown carries the intro and every section.
#[tokio::test]
async fn the_rendered_issue_carries_its_canonical_url() {
    let fake = DevtoFake::start().await.unwrap();
    // The sample config's devto channel renders it (the issue's front matter names the
    // sample's other channels); the adapter points at the fake.
    let cfg = herald::config::load(&root().join("config/herald.toml")).expect("sample config loads");
    let issue = herald::issue::parse_file(&fixture("issues/2026-week-48.md")).unwrap();
    let rendered = herald::render::engine::render_channels(&issue, &cfg, &["devto".into()]).expect("renders");
    let a = adapter(&fake);
    a.deliver(&rendered[0].rendering, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect("posted");

    let art = &fake.articles()[0];
    assert_eq!(art.request["article"]["canonical_url"], json!(issue.meta.url));
    assert_eq!(art.canonical_url.as_deref(), Some(issue.meta.url.as_str()));
    assert_eq!(art.title, issue.meta.title);
    assert_eq!(art.request["article"]["tags"], json!(issue.meta.tags));
    let md = &art.body_markdown;
    // The intro first (its links to the site carry UTM tags, so compare up to the first link).
    let intro = issue.intro.markdown.split('[').next().unwrap();
    assert!(intro.len() > 20 && md.starts_with(intro), "{md}");
    for s in &issue.sections {
        assert!(md.contains(&format!("\n## {}\n", s.title)), "section {:?} missing: {md}", s.title);
    }
    assert!(md.contains(&issue.meta.url), "the footer links home");
}

#[tokio::test]
async fn each_error_class_ends_in_its_state() {
    let fake = DevtoFake::start().await.unwrap();
    let cp = Arc::new(MemoryCheckpoint::default());

    // A wrong key: Forem's 401, needs_auth.
    let bad = adapter_with(&config(&fake, ""), "not-the-key");
    let e = bad.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(401)), "{e}");
    assert!(e.message().contains("DEV Community API Keys") && !e.message().contains("not-the-key"), "{e}");
    assert_eq!(state_after(e), (State::Failed, Some(AttemptOutcome::NeedsAuth), Next::Never));

    let a = adapter(&fake);
    // Forem refuses the article (a canonical URL it can't take, past the preflight): permanent.
    let mut local = rendering(json!([]));
    if let Rendering::Body(b) = &mut local {
        b.body["canonical_url"] = json!("http://localhost/42");
    }
    let e = a.deliver(&local, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Permanent, Some(422)), "{e}");
    assert!(e.message().contains("Canonical url is not a valid URL"), "Forem's own sentence: {e}");
    assert_eq!(state_after(e), (State::Failed, Some(AttemptOutcome::Permanent), Next::Never));

    // Rate limited, with Forem's Retry-After.
    fake.faults.push(
        "POST /api/articles",
        Fault::Status { code: 429, body: r#"{"error":"Rate limit reached, try again in 30 seconds","status":429}"#.into(), headers: vec![("retry-after".into(), "30".into())] },
        1,
    );
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_secs(30))), "{e}");
    assert_eq!(state_after(e), (State::Retrying, Some(AttemptOutcome::RateLimited), Next::After(Duration::from_secs(30))));

    // 5xx: retried on the schedule.
    fake.faults.push("POST /api/articles", Fault::Status { code: 503, body: "{}".into(), headers: vec![] }, 1);
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable, "{e}");
    assert_eq!(state_after(e), (State::Retrying, Some(AttemptOutcome::Retryable), Next::After(Duration::from_secs(10))));

    // A timeout (no answer within timeout_secs = 1): unknown outcome, unconfirmed, reconciled
    // before any retry. The fake processed nothing, so reconciliation finds nothing.
    fake.faults.push("POST /api/articles", Fault::Hang(Duration::from_secs(3)), 1);
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert_eq!(state_after(e).0, State::Unconfirmed);
    assert_eq!(a.find_existing(&rendering(json!([])), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    assert!(fake.articles().is_empty(), "nothing was posted by any of the failures");
    // And the retry then posts it once.
    a.deliver(&rendering(json!([])), &ctx(&cp, 2)).await.expect("posted after all");
    assert_eq!(fake.articles().len(), 1);
}

#[tokio::test]
async fn the_fakes_own_rate_limit_answers_with_retry_after() {
    let fake = DevtoFake::start().await.unwrap();
    let a = adapter(&fake);
    for i in 0..devto::RATE_LIMIT {
        let mut r = rendering(json!([]));
        if let Rendering::Body(b) = &mut r {
            b.body["canonical_url"] = json!(format!("{CANONICAL}/{i}"));
            b.body["title"] = json!(format!("Issue {i}"));
        }
        a.deliver(&r, &DeliveryCtx::for_test(&format!("i{i}/devto/r1"))).await.expect("under the limit");
    }
    let e = a.deliver(&rendering(json!([])), &DeliveryCtx::for_test("last/devto/r1")).await.unwrap_err();
    assert_eq!(fake.articles().len(), devto::RATE_LIMIT, "the refused one was not kept");
    assert_eq!((e.kind(), e.status(), e.retry_after()), (Kind::RateLimited, Some(429), Some(Duration::from_secs(30))), "{e}");
}

#[tokio::test]
async fn accept_then_drop_reconciles_to_one_article() {
    let fake = DevtoFake::start().await.unwrap();
    fake.seed_articles(250); // the account's history: the lookup pages through it
    let a = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    fake.faults.push("POST /api/articles", Fault::AcceptThenDrop, 1);
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    let ours: Vec<_> = fake.articles().into_iter().filter(|x| x.canonical_url.as_deref() == Some(CANONICAL)).collect();
    assert_eq!(ours.len(), 1, "the fake kept the article");

    match a.find_existing(&rendering(json!([])), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => assert_eq!(r.remote_id, ours[0].id.to_string()),
        other => panic!("expected Found, got {other:?}"),
    }
    assert!(
        fake.requests().iter().any(|r| r.starts_with("GET /api/articles/me/all?") && r.contains("per_page=100")),
        "{:?}",
        fake.requests()
    );
    // The redelivery after reconciliation makes no second POST.
    let posts = fake.requests().iter().filter(|r| r.starts_with("POST")).count();
    let r = a.deliver(&rendering(json!([])), &ctx(&cp, 3)).await.unwrap();
    assert_eq!(r.remote_id, ours[0].id.to_string());
    assert_eq!(fake.requests().iter().filter(|r| r.starts_with("POST")).count(), posts);
    assert_eq!(fake.articles().iter().filter(|x| x.canonical_url.as_deref() == Some(CANONICAL)).count(), 1);
}

/// The checkpoint lost too (a fresh one): the repeat POST meets Forem's site-wide unique
/// canonical URL, and the adapter records the article already there instead of failing.
#[tokio::test]
async fn a_repeat_post_finds_the_article_forem_already_has() {
    let fake = DevtoFake::start().await.unwrap();
    let a = adapter(&fake);
    let first = a.deliver(&rendering(json!([])), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    let second = a.deliver(&rendering(json!([])), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(second.remote_id, first.remote_id);
    assert_eq!(fake.articles().len(), 1);
    // Another account's article holding the URL is a permanent refusal that says so.
    let other = DevtoFake::start().await.unwrap();
    other.claim_canonical_elsewhere(CANONICAL);
    let e = adapter(&other).deliver(&rendering(json!([])), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent);
    assert!(e.message().contains("another dev.to article"), "{e}");
}

#[tokio::test]
async fn preflight_refuses_five_tags_before_any_call() {
    let fake = DevtoFake::start().await.unwrap();
    let cfg = config(&fake, "");
    let five = rendering(json!(["a", "b", "c", "d", "e"]));
    let why = cfg.size_limit(&five).expect_err("five tags refused at render time");
    assert!(why.contains("5 tags") && why.contains("at most 4"), "{why}");
    let e = adapter(&fake).deliver(&five, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent);
    assert!(fake.requests().is_empty(), "nothing was sent: {:?}", fake.requests());
    let dash = rendering(json!(["web-dev"]));
    assert!(cfg.size_limit(&dash).unwrap_err().contains("\"web-dev\""));
    assert!(cfg.size_limit(&rendering(json!(["rust", "queues", "news", "go"]))).is_ok());
}

/// The fake refuses, as Forem does, what the adapter's preflight stops: so the preflight is
/// not the only line, and the fake is strict without Herald.
#[tokio::test]
async fn the_fake_refuses_what_forem_refuses() {
    let fake = DevtoFake::start().await.unwrap();
    let c = herald::channel::http::client();
    let post = |body: serde_json::Value, key: &str, accept: &str| {
        c.post(format!("{}/api/articles", fake.base_url)).header("api-key", key).header("accept", accept).json(&body).send()
    };
    let v1 = devto::ACCEPT_V1;
    let ok = |tags: serde_json::Value| json!({"article": {"title": "T", "body_markdown": "b", "published": true, "tags": tags}});
    let r = post(ok(json!(["a", "b", "c", "d", "e"])), devto::API_KEY, v1).await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!({"error": "Tag list exceed the maximum of 4 tags", "status": 422}));
    let r = post(ok(json!(["web-dev"])), devto::API_KEY, v1).await.unwrap();
    assert_eq!(r.status(), 422);
    let r = post(json!({"article": {"body_markdown": "b"}}), devto::API_KEY, v1).await.unwrap();
    assert_eq!((r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap()["error"].clone()), (422, json!("Title can't be blank")));
    let r = post(json!({"article": "x"}), devto::API_KEY, v1).await.unwrap();
    assert_eq!(r.status(), 422);
    let r = post(ok(json!([])), "wrong", v1).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = post(ok(json!([])), devto::API_KEY, "application/json").await.unwrap();
    assert_eq!(r.status(), 406, "no v1 Accept header");
    assert!(fake.articles().is_empty());
    let r = post(ok(json!(["rust"])), devto::API_KEY, v1).await.unwrap();
    assert_eq!(r.status(), 201);
    // Paging of /me/all.
    fake.seed_articles(5);
    let page = |q: &str| c.get(format!("{}/api/articles/me/all?{q}", fake.base_url)).header("api-key", devto::API_KEY).header("accept", v1).send();
    let p1: Vec<serde_json::Value> = page("per_page=4&page=1").await.unwrap().json().await.unwrap();
    let p2: Vec<serde_json::Value> = page("per_page=4&page=2").await.unwrap().json().await.unwrap();
    assert_eq!((p1.len(), p2.len()), (4, 2));
    assert_eq!(p1[0]["title"], json!("T"), "newest first");
    assert_eq!(page("per_page=4").await.unwrap().status(), 200);
}

/// `check` refuses bad `tags` and a missing key in the config, with file, line, key and hint,
/// every problem at once.
#[test]
fn the_config_is_checked_with_file_and_line() {
    let text = "[store]\nurl = \"sqlite://h.db\"\n\n[channels.dev]\ntype = \"devto\"\ntags = [\"rust\", \"web-dev\"]\n\n[channels.dev2]\ntype = \"dev.to\"\n";
    let errs = herald::config::parse(std::path::Path::new("inline.toml"), text).map(|_| ()).unwrap_err().0;
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let tags = errs.iter().find(|e| e.key == "channels.dev.tags").unwrap_or_else(|| panic!("{shown:#?}"));
    assert_eq!(tags.line, Some(6), "{tags}");
    assert!(tags.message.contains("\"web-dev\"") && tags.hint.as_deref().unwrap_or_default().contains("at most 4"), "{tags}");
    let key = errs.iter().find(|e| e.key.starts_with("channels.dev.api_key")).unwrap_or_else(|| panic!("{shown:#?}"));
    assert_eq!(key.line, Some(4), "{key}");
    // The alias names the type to write.
    assert!(errs.iter().any(|e| e.key == "channels.dev2.type" && e.hint.as_deref().unwrap_or_default().contains("devto")), "{shown:#?}");
}
