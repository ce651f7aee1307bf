//! Hashnode adapter against the Hashnode fake: the exact `PublishPostInput` received, the
//! canonical URL (`originalArticleURL`) equal to the issue's `url`, each error class ending in
//! its state, accept-then-drop reconciled by slug to one post, a cached "not found" never
//! trusted after a publish, and the preflight refusing what Hashnode refuses.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled};
use herald::config::{ChannelConfig, RetryConfig};
use herald::jobs::decide::{History, Next, decide};
use herald::jobs::schedule::RetrySchedule;
use herald::render::{BodyRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::hashnode::{self, HashnodeFake, SlugTaken};
use herald::store::{AttemptOutcome, State, Trigger};
use serde_json::{Value, json};

use crate::util::{fixture, root};

const TOKEN_ENV: &str = "HERALD_IT_HASHNODE_TOKEN";
const CANONICAL: &str = "https://news.example.com/2026/issue-42";

fn config(fake: &HashnodeFake, extra: &str) -> ChannelConfig {
    toml::from_str(&format!(
        "type = \"hashnode\"\napi_url = \"{}\"\naccess_token = \"${{{TOKEN_ENV}}}\"\npublication_id = \"{}\"\ntimeout_secs = 1\n{extra}",
        fake.base_url,
        hashnode::PUBLICATION_ID
    ))
    .expect("hashnode config parses")
}

fn adapter_with(cfg: &ChannelConfig, token: &str) -> Arc<dyn Adapter> {
    crate::util::build_with_secret("hashnode", cfg, TOKEN_ENV, token)
}

fn adapter(fake: &HashnodeFake) -> Arc<dyn Adapter> {
    adapter_with(&config(fake, ""), hashnode::TOKEN)
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx { key: "issue-42/hashnode/r1".into(), delivery_id: 7, issue: "issue-42".into(), channel: "hashnode".into(), attempt, checkpoint: cp.clone() }
}

fn fresh() -> Arc<MemoryCheckpoint> {
    Arc::new(MemoryCheckpoint::default())
}

/// A rendering as channels/hashnode/body.json.hbs produces it (Markdown in parts).
fn rendering(tags: Value) -> Rendering {
    Rendering::Body(BodyRendering {
        body: json!({
            "title": "Issue 42: pipes & queues",
            "subtitle": "Five stories about queues.",
            "slug": "issue-42",
            "canonical_url": CANONICAL,
            "tags": tags,
            "content_markdown": ["Hello *readers*.", "\n\n## ", "Queues", "\n\n", "A [link](https://a.example/q)."],
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

fn publishes(fake: &HashnodeFake) -> usize {
    fake.requests().iter().filter(|r| r.as_str() == "POST / publishPost").count()
}

#[tokio::test]
async fn publishes_the_exact_input_hashnode_receives() {
    let fake = HashnodeFake::start().await.unwrap();
    let a = adapter_with(&config(&fake, ""), hashnode::TOKEN);
    let cp = fresh();
    let r = a.deliver(&rendering(json!(["Rust", "Message Queues"])), &ctx(&cp, 1)).await.expect("posted");

    let got = fake.posts();
    assert_eq!(got.len(), 1);
    let post = &got[0];
    assert_eq!(
        post.input,
        json!({
            "publicationId": hashnode::PUBLICATION_ID,
            "title": "Issue 42: pipes & queues",
            "subtitle": "Five stories about queues.",
            "contentMarkdown": "Hello *readers*.\n\n## Queues\n\nA [link](https://a.example/q).",
            "slug": "issue-42",
            "originalArticleURL": CANONICAL,
            "tags": [{"slug": "rust", "name": "Rust"}, {"slug": "message-queues", "name": "Message Queues"}],
        })
    );
    assert_eq!(post.slug, "issue-42");
    assert_eq!(post.canonical_url.as_deref(), Some(CANONICAL));
    assert_eq!(r.remote_id, post.id);
    assert_eq!(r.url.as_deref(), Some(post.url.as_str()));
    assert_eq!((r.awaiting_confirmation, r.warning.as_deref()), (false, None));
    assert_eq!(fake.requests(), vec!["POST / publishPost"]);
    // Redelivery answers from the checkpoint, without a call.
    assert_eq!(a.deliver(&rendering(json!([])), &ctx(&cp, 2)).await.unwrap().remote_id, r.remote_id);
    assert_eq!(fake.requests().len(), 1);
    // The healthcheck asks `me` with the token.
    a.healthcheck().await.expect("the token is good");
    let e = adapter_with(&config(&fake, ""), "wrong").healthcheck().await.unwrap_err();
    assert_eq!(e.kind(), Kind::Auth, "{e}");
}

/// The real templates and renderer, a sample issue: the canonical URL sent is the issue's
/// `url`, the slug the issue's `slug`, and the Markdown carries the intro and every section.
#[tokio::test]
async fn the_rendered_issue_carries_its_canonical_url() {
    let fake = HashnodeFake::start().await.unwrap();
    let cfg = herald::config::load(&root().join("config/herald.toml")).expect("sample config loads");
    let issue = herald::issue::parse_file(&fixture("issues/2026-week-48.md")).unwrap();
    let rendered = herald::render::engine::render_channels(&issue, &cfg, &["hashnode".into()]).expect("renders");
    adapter(&fake).deliver(&rendered[0].rendering, &ctx(&fresh(), 1)).await.expect("posted");

    let post = &fake.posts()[0];
    assert_eq!(post.input["originalArticleURL"], json!(issue.meta.url));
    assert_eq!(post.canonical_url.as_deref(), Some(issue.meta.url.as_str()));
    assert_eq!(post.slug, issue.meta.slug);
    assert_eq!(post.title, issue.meta.title);
    assert_eq!(post.subtitle.as_deref(), Some(issue.meta.summary.as_str()));
    let names: Vec<&str> = post.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, issue.meta.tags.iter().map(String::as_str).collect::<Vec<_>>());
    let md = &post.content_markdown;
    let intro = issue.intro.markdown.split('[').next().unwrap();
    assert!(intro.len() > 20 && md.starts_with(intro), "{md}");
    for s in &issue.sections {
        assert!(md.contains(&format!("\n## {}\n", s.title)), "section {:?} missing: {md}", s.title);
    }
    assert!(md.contains(&issue.meta.url), "the footer links home");
}

#[tokio::test]
async fn each_error_class_ends_in_its_state() {
    let fake = HashnodeFake::start().await.unwrap();
    let cp = fresh();

    // A wrong token: Hashnode's UNAUTHENTICATED (HTTP 200), needs_auth.
    let bad = adapter_with(&config(&fake, ""), "not-the-token");
    let e = bad.deliver(&rendering(json!([])), &ctx(&fresh(), 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(200)), "{e}");
    assert!(e.message().contains("You must be authenticated") && e.message().contains("Developer") && !e.message().contains("not-the-token"), "{e}");
    assert_eq!(state_after(e), (State::Failed, Some(AttemptOutcome::NeedsAuth), Next::Never));

    let a = adapter(&fake);
    // The publication is not on Pro: forbidden, not needs_auth (a new token won't help).
    fake.set_pro(false);
    let e = a.deliver(&rendering(json!([])), &ctx(&fresh(), 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Forbidden, "{e}");
    assert!(e.message().contains("active Pro plan") && e.message().contains("upgrade"), "{e}");
    assert_eq!(state_after(e), (State::Failed, Some(AttemptOutcome::Forbidden), Next::Never));
    fake.set_pro(true);

    // Hashnode refuses the post (its slug taken, with the fake set to refuse): permanent.
    fake.seed_post("issue-42", Some("https://elsewhere.example/old"));
    fake.set_slug_taken(SlugTaken::Refuse);
    let e = a.deliver(&rendering(json!([])), &ctx(&fresh(), 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Permanent, Some(200)), "{e}");
    assert!(e.message().contains("already taken"), "Hashnode's own message: {e}");
    assert_eq!(state_after(e), (State::Failed, Some(AttemptOutcome::Permanent), Next::Never));
    let fake = HashnodeFake::start().await.unwrap();
    let a = adapter(&fake);

    // Rate limited by the fake's own per-minute budget: 429 with its Retry-After.
    fake.set_mutation_limit(0);
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.status(), e.retry_after()), (Kind::RateLimited, Some(429), Some(Duration::from_secs(60))), "{e}");
    assert_eq!(state_after(e), (State::Retrying, Some(AttemptOutcome::RateLimited), Next::After(Duration::from_secs(60))));
    fake.set_mutation_limit(hashnode::MUTATIONS_PER_MINUTE);
    // A 429 with another hint is honoured as given.
    fake.faults.push("publishPost", Fault::Status { code: 429, body: r#"{"errors":[{"message":"slow down"}]}"#.into(), headers: vec![("retry-after".into(), "7".into())] }, 1);
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_secs(7))), "{e}");

    // A 502 after the request went out: Hashnode may have published; reconcile first.
    fake.faults.push("publishPost", Fault::Status { code: 502, body: "<html>bad gateway</html>".into(), headers: vec![] }, 1);
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::UnknownOutcome, Some(502)), "{e}");
    assert_eq!(state_after(e).0, State::Unconfirmed);

    // A timeout (no answer within timeout_secs = 1): unknown outcome, reconciled before any
    // retry. The fake processed nothing, so reconciliation finds nothing.
    fake.faults.push("publishPost", Fault::Hang(Duration::from_secs(3)), 1);
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert_eq!(state_after(e).0, State::Unconfirmed);
    assert_eq!(a.find_existing(&rendering(json!([])), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    assert!(fake.posts().is_empty(), "nothing was posted by any of the failures");
    assert!(fake.requests().contains(&"POST / publication".to_string()), "{:?}", fake.requests());
    // And the retry then posts it once.
    a.deliver(&rendering(json!([])), &ctx(&cp, 2)).await.expect("posted after all");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn accept_then_drop_reconciles_to_one_post() {
    let fake = HashnodeFake::start().await.unwrap();
    fake.seed_post("older-post", Some("https://news.example.com/2026/issue-41"));
    let a = adapter(&fake);
    let cp = fresh();
    fake.faults.push("publishPost", Fault::AcceptThenDrop, 1);
    let e = a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    let ours: Vec<_> = fake.posts().into_iter().filter(|p| p.canonical_url.as_deref() == Some(CANONICAL)).collect();
    assert_eq!(ours.len(), 1, "the fake kept the post");

    match a.find_existing(&rendering(json!([])), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => {
            assert_eq!(r.remote_id, ours[0].id);
            assert_eq!(r.url.as_deref(), Some(ours[0].url.as_str()));
        }
        other => panic!("expected Found, got {other:?}"),
    }
    // The redelivery after reconciliation makes no second publish.
    let before = publishes(&fake);
    let r = a.deliver(&rendering(json!([])), &ctx(&cp, 3)).await.unwrap();
    assert_eq!(r.remote_id, ours[0].id);
    assert_eq!(publishes(&fake), before);
    assert_eq!(fake.posts().iter().filter(|p| p.canonical_url.as_deref() == Some(CANONICAL)).count(), 1);
}

/// Hashnode may answer a read from its cache for ~25 s. A lookup that found nothing, then a
/// publish whose answer was lost, then the same lookup at once would get the cached "not there"
/// and post twice: the adapter waits out the cache instead, then finds the post.
#[tokio::test]
async fn a_cached_not_found_is_not_trusted_after_a_publish() {
    let fake = HashnodeFake::start().await.unwrap();
    fake.set_read_cache(Duration::from_secs(2));
    let a = adapter_with(&config(&fake, "read_cache_secs = 2"), hashnode::TOKEN);
    let cp = fresh();
    fake.faults.push("publishPost", Fault::Hang(Duration::from_secs(3)), 1);
    assert_eq!(a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::UnknownOutcome);
    assert_eq!(a.find_existing(&rendering(json!([])), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    fake.faults.push("publishPost", Fault::AcceptThenDrop, 1);
    assert_eq!(a.deliver(&rendering(json!([])), &ctx(&cp, 2)).await.unwrap_err().kind(), Kind::UnknownOutcome);
    assert_eq!(fake.posts().len(), 1);

    // The fake's cache would answer "not there" now: the adapter does not ask.
    let lookup = json!({"query": herald::channel::hashnode::POST_BY_SLUG, "variables": {"publicationId": hashnode::PUBLICATION_ID, "slug": "issue-42"}});
    let stale: Value = herald::channel::http::client().post(&fake.base_url).header("authorization", hashnode::TOKEN).json(&lookup).send().await.unwrap().json().await.unwrap();
    assert_eq!(stale["data"]["publication"]["post"], Value::Null, "the cached answer is stale: {stale}");
    let e = a.find_existing(&rendering(json!([])), &ctx(&cp, 3)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable, "{e}");
    assert!(e.retry_after().is_some_and(|d| d <= Duration::from_secs(2)) && e.message().contains("cache"), "{e}");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    match a.find_existing(&rendering(json!([])), &ctx(&cp, 3)).await.unwrap() {
        Reconciled::Found(r) => assert_eq!(r.remote_id, fake.posts()[0].id),
        other => panic!("expected Found, got {other:?}"),
    }
    assert_eq!(publishes(&fake), 1, "the hung one never reached the handler; the dropped one was kept");
    assert_eq!(fake.posts().len(), 1);
}

/// Another post already holds the slug: Hashnode (as the fake is set by default) gives ours a
/// suffixed slug, and the receipt says so; after a lost answer the lookup finds the other post
/// and says it cannot tell, rather than posting again or claiming the wrong post.
#[tokio::test]
async fn a_slug_held_by_another_post_is_never_taken_for_ours() {
    let fake = HashnodeFake::start().await.unwrap();
    fake.seed_post("issue-42", Some("https://elsewhere.example/old"));
    let r = adapter(&fake).deliver(&rendering(json!([])), &ctx(&fresh(), 1)).await.unwrap();
    assert_eq!(fake.posts()[1].slug, "issue-42-1");
    assert!(r.warning.as_deref().unwrap_or_default().contains("issue-42-1"), "{r:?}");

    let fake = HashnodeFake::start().await.unwrap();
    fake.seed_post("issue-42", Some("https://elsewhere.example/old"));
    let a = adapter(&fake);
    let cp = fresh();
    fake.faults.push("publishPost", Fault::AcceptThenDrop, 1);
    assert_eq!(a.deliver(&rendering(json!([])), &ctx(&cp, 1)).await.unwrap_err().kind(), Kind::UnknownOutcome);
    match a.find_existing(&rendering(json!([])), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::CannotCheck(why) => assert!(why.contains("elsewhere.example/old") && why.contains("by hand"), "{why}"),
        other => panic!("expected CannotCheck, got {other:?}"),
    }
}

#[tokio::test]
async fn preflight_refuses_what_hashnode_refuses_before_any_call() {
    let fake = HashnodeFake::start().await.unwrap();
    let cfg = config(&fake, "");
    let sixteen = rendering(Value::Array((0..16).map(|i| json!(format!("tag{i}"))).collect()));
    let why = cfg.size_limit(&sixteen).expect_err("sixteen tags refused at render time");
    assert!(why.contains("16 tags") && why.contains("at most 15"), "{why}");
    let e = adapter(&fake).deliver(&sixteen, &ctx(&fresh(), 1)).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent);
    let mut big = rendering(json!([]));
    if let Rendering::Body(b) = &mut big {
        b.body["content_markdown"] = json!("x".repeat(hashnode::MAX_BODY));
    }
    assert!(cfg.size_limit(&big).unwrap_err().contains("100 KB"));
    assert!(fake.requests().is_empty(), "nothing was sent: {:?}", fake.requests());
    assert!(cfg.size_limit(&rendering(Value::Array((0..15).map(|i| json!(format!("t{i}"))).collect()))).is_ok());
}

/// The fake refuses, as Hashnode does, what the adapter never sends: so the fake is strict
/// without Herald, and the preflight is not the only line.
#[tokio::test]
async fn the_fake_refuses_what_hashnode_refuses() {
    let fake = HashnodeFake::start().await.unwrap();
    let c = herald::channel::http::client();
    let send = |body: Value, token: &str| c.post(&fake.base_url).header("authorization", token).json(&body).send();
    let publish = |input: Value| json!({"query": herald::channel::hashnode::PUBLISH_POST, "variables": {"input": input}});
    let ok = json!({"publicationId": hashnode::PUBLICATION_ID, "title": "T", "contentMarkdown": "m", "slug": "t"});
    let code = |v: &Value| v["errors"][0]["extensions"]["code"].as_str().unwrap_or_default().to_string();

    // Transport: a JSON POST with a query.
    let r = c.post(&fake.base_url).header("authorization", hashnode::TOKEN).body(publish(ok.clone()).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 400, "no JSON content type: Apollo's CSRF guard");
    let r = send(json!({"variables": {}}), hashnode::TOKEN).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(c.get(&fake.base_url).send().await.unwrap().status(), 405);
    // Validation: unknown field, fragment, wrong variable type.
    let r = send(json!({"query": "mutation { deletePost(id: \"x\") { post { id } } }"}), hashnode::TOKEN).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), "GRAPHQL_VALIDATION_FAILED");
    let q = "mutation P($input: PublishPostInput!) { publishPost(input: $input) { post { id nonsense } } }";
    let v: Value = send(json!({"query": q, "variables": {"input": ok}}), hashnode::TOKEN).await.unwrap().json().await.unwrap();
    assert_eq!((code(&v), v["errors"][0]["message"].clone()), ("GRAPHQL_VALIDATION_FAILED".into(), json!("Cannot query field \"nonsense\" on type \"Post\".")));
    let q = "mutation P($input: PublishPostInput) { publishPost(input: $input) { post { id } } }";
    let r = send(json!({"query": q, "variables": {"input": ok}}), hashnode::TOKEN).await.unwrap();
    assert_eq!(r.status(), 400, "a nullable variable in a non-null position");
    // Coercion: required fields, unknown fields, the tag shape.
    for (input, want) in [
        (json!({"publicationId": hashnode::PUBLICATION_ID, "contentMarkdown": "m"}), "Field \"title\" of required type \"String!\" was not provided."),
        (json!({"publicationId": "not-an-id", "title": "T", "contentMarkdown": "m"}), "input.publicationId"),
        (json!({"publicationId": hashnode::PUBLICATION_ID, "title": "T", "contentMarkdown": "m", "canonicalUrl": "u"}), "\"canonicalUrl\" is not defined"),
        (json!({"publicationId": hashnode::PUBLICATION_ID, "title": "T", "contentMarkdown": "m", "tags": [{"name": "Rust"}]}), "\"slug\" of required type"),
        (json!({"publicationId": hashnode::PUBLICATION_ID, "title": "T", "contentMarkdown": "m", "tags": [{"id": "x", "slug": "r"}]}), "\"id\" is not defined"),
    ] {
        let r = send(publish(input.clone()), hashnode::TOKEN).await.unwrap();
        assert_eq!(r.status(), 400, "{input}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains(want), "{v}");
    }
    // Resolver errors: HTTP 200, data null.
    let v: Value = send(publish(ok.clone()), "wrong").await.unwrap().json().await.unwrap();
    assert_eq!((code(&v), v["data"].clone(), v["errors"][0]["path"].clone()), ("UNAUTHENTICATED".into(), Value::Null, json!(["publishPost"])));
    let mut other = ok.clone();
    other["publicationId"] = json!("65a1b2c3d4e5f60718293a4c");
    assert_eq!(code(&send(publish(other), hashnode::TOKEN).await.unwrap().json().await.unwrap()), "NOT_FOUND");
    let mut many = ok.clone();
    many["tags"] = Value::Array((0..16).map(|i| json!({"slug": format!("t{i}")})).collect());
    assert_eq!(code(&send(publish(many), hashnode::TOKEN).await.unwrap().json().await.unwrap()), "BAD_USER_INPUT");
    let mut big = ok.clone();
    big["contentMarkdown"] = json!("x".repeat(hashnode::MAX_BODY));
    assert_eq!(send(publish(big), hashnode::TOKEN).await.unwrap().status(), 413);
    assert!(fake.posts().is_empty());
    // Accepted: a `Bearer ` prefix is optional; the answer has the selected fields only.
    let v: Value = send(publish(ok), &format!("bearer {}", hashnode::TOKEN)).await.unwrap().json().await.unwrap();
    let post = &v["data"]["publishPost"]["post"];
    let mut keys: Vec<&String> = post.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["canonicalUrl", "id", "slug", "url"], "{v}");
    assert_eq!((post["slug"].clone(), post["canonicalUrl"].clone()), (json!("t"), Value::Null));
    assert_eq!(fake.posts().len(), 1);
}

/// `check` refuses sixteen `tags` and a missing token in the config, with file, line, key and
/// hint, every problem at once; the alias names the type to write.
#[test]
fn the_config_is_checked_with_file_and_line() {
    let tags: Vec<String> = (0..16).map(|i| format!("\"t{i}\"")).collect();
    let text = format!(
        "[store]\nurl = \"sqlite://h.db\"\n\n[channels.hn]\ntype = \"hashnode\"\npublication_id = \"{}\"\ntags = [{}]\n\n[channels.hn2]\ntype = \"hashnode.com\"\n",
        hashnode::PUBLICATION_ID,
        tags.join(", ")
    );
    let errs = herald::config::parse(std::path::Path::new("inline.toml"), &text).map(|_| ()).unwrap_err().0;
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let t = errs.iter().find(|e| e.key == "channels.hn.tags").unwrap_or_else(|| panic!("{shown:#?}"));
    assert_eq!(t.line, Some(7), "{t}");
    assert!(t.message.contains("16 tags") && t.hint.as_deref().unwrap_or_default().contains("at most 15"), "{t}");
    let key = errs.iter().find(|e| e.key.starts_with("channels.hn.access_token")).unwrap_or_else(|| panic!("{shown:#?}"));
    assert_eq!(key.line, Some(4), "{key}");
    assert!(errs.iter().any(|e| e.key == "channels.hn2.type" && e.hint.as_deref().unwrap_or_default().contains("hashnode")), "{shown:#?}");
}

/// `republish` is a new revision and a new post: it gets its own slug, so a lost answer for
/// revision 2 reconciles to revision 2's post, never to the first one's (same canonical URL).
#[tokio::test]
async fn a_republish_is_its_own_post_and_reconciles_to_itself() {
    let fake = HashnodeFake::start().await.unwrap();
    let a = adapter(&fake);
    let first = a.deliver(&rendering(json!([])), &ctx(&fresh(), 1)).await.unwrap();
    let r2 = |cp: &Arc<MemoryCheckpoint>, attempt| DeliveryCtx { key: "issue-42/hashnode/r2".into(), ..ctx(cp, attempt) };
    let cp = fresh();
    fake.faults.push("publishPost", Fault::AcceptThenDrop, 1);
    assert_eq!(a.deliver(&rendering(json!([])), &r2(&cp, 1)).await.unwrap_err().kind(), Kind::UnknownOutcome);
    let posts = fake.posts();
    assert_eq!(posts.iter().map(|p| p.slug.as_str()).collect::<Vec<_>>(), ["issue-42", "issue-42-r2"]);
    match a.find_existing(&rendering(json!([])), &r2(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => {
            assert_eq!(r.remote_id, posts[1].id);
            assert_ne!(r.remote_id, first.remote_id);
        }
        other => panic!("expected Found, got {other:?}"),
    }
    assert_eq!(herald::channel::hashnode::revision_of("a/b/r12"), 12);
    assert_eq!(herald::channel::hashnode::revision_of("no-revision"), 1);
}
