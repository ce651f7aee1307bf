//! Substack adapter against the Substack fake: exact draft payload, draft-id reconciliation,
//! draft mode, cookie auth.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled, build_adapter};
use herald::config::ChannelConfig;
use herald::render::prosemirror::markdown_to_doc;
use herald::render::{ArticleRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::substack::{self, SubstackFake};
use serde_json::{Value, json};

const COOKIE_ENV: &str = "HERALD_IT_SUBSTACK_SID";

const MD: &str = "Welcome to **issue 42**.\n\n## Podcasts\n\n- [Episode one](https://pod.example.com/1)\n- *Episode two*\n\n> A quote worth keeping.\n\n---\n\nSee you next week.";

fn adapter(fake: &SubstackFake, cookie: &str, extra: &str) -> Arc<dyn Adapter> {
    adapter_without_user_id(fake, cookie, &format!("user_id = {}\n{extra}", substack::USER_ID))
}

/// No `user_id`: the adapter reads it from the fake's `/api/v1/user/profile/self`.
fn adapter_without_user_id(fake: &SubstackFake, cookie: &str, extra: &str) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig = toml::from_str(&format!(
        "type = \"substack\"\napi_base = \"{0}\"\nprofile_url = \"{0}/api/v1/user/profile/self\"\ncookie = \"${{{COOKIE_ENV}}}\"\ntimeout_secs = 2\n{extra}",
        fake.base_url,
    ))
    .expect("substack config parses");
    crate::util::build_with_secret("substack_main", &cfg, COOKIE_ENV, cookie)
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx {
        key: "issue-42/substack_main/r1".into(),
        delivery_id: 9,
        issue: "issue-42".into(),
        channel: "substack_main".into(),
        attempt,
        checkpoint: cp.clone(),
    }
}

fn rendering(slug: Option<&str>) -> Rendering {
    Rendering::Article(ArticleRendering {
        title: "Issue 42: the state of CX".into(),
        subtitle: "Podcasts, events, people".into(),
        html: "<p>unused by the adapter</p>".into(),
        doc: Some(markdown_to_doc(MD)),
        slug: slug.map(str::to_string),
        canonical_url: None,
    })
}

#[tokio::test]
async fn publish_sends_the_exact_draft_then_prepublish_then_publish() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, substack::COOKIE, "send_email = true");
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = a.deliver(&rendering(Some("issue-42")), &ctx(&cp, 1)).await.expect("published");

    let drafts = fake.drafts();
    assert_eq!(drafts.len(), 1);
    let d = &drafts[0];
    assert_eq!(r.remote_id, d.id.to_string());
    assert!(!r.awaiting_confirmation);
    assert_eq!(r.url, Some(format!("{}/p/issue-42", fake.base_url)));
    // draft_body arrived as a string holding exactly the converter's document.
    let decoded: Value = serde_json::from_str(&d.draft_body).expect("draft_body is JSON text");
    assert_eq!(decoded, markdown_to_doc(MD));
    assert_eq!(decoded["content"][1], json!({"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Podcasts"}]}));
    assert_eq!(d.draft_title, "Issue 42: the state of CX");
    assert_eq!(d.draft_subtitle.as_deref(), Some("Podcasts, events, people"));
    assert_eq!(d.draft_bylines, json!([{"id": substack::USER_ID, "is_guest": false}]));
    assert_eq!(d.audience, "everyone");
    assert_eq!(d.slug, "issue-42");
    assert!(d.prepublished && d.is_published && d.email_sent);
    let id = d.id;
    assert_eq!(
        fake.requests(),
        vec![
            "POST /api/v1/drafts".to_string(),
            format!("PUT /api/v1/drafts/{id}"),
            format!("GET /api/v1/drafts/{id}/prepublish"),
            format!("POST /api/v1/drafts/{id}/publish"),
        ]
    );
    // The post page the receipt links to exists.
    let page = herald::channel::http::client().get(r.url.unwrap()).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn lost_publish_answer_is_reconciled_by_the_draft_id() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, substack::COOKIE, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    fake.faults.push("/publish", Fault::AcceptThenDrop, 1);
    let err = a.deliver(&rendering(None), &ctx(&cp, 1)).await.expect_err("answer lost");
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(fake.published().len(), 1, "the fake did publish");
    let id = fake.drafts()[0].id.to_string();

    match a.find_existing(&rendering(None), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => {
            assert_eq!(r.remote_id, id);
            assert!(r.url.unwrap().contains("/p/issue-42-the-state-of-cx"));
        }
        other => panic!("expected Found, got {other:?}"),
    }
    let r = a.deliver(&rendering(None), &ctx(&cp, 3)).await.expect("redeliver is a no-op");
    assert_eq!(r.remote_id, id);
    assert_eq!(fake.drafts().len(), 1, "never a second draft");
    assert_eq!(fake.published().len(), 1);
}

#[tokio::test]
async fn failed_publish_resumes_with_the_saved_draft() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, substack::COOKIE, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    fake.faults.push("/publish", Fault::Status { code: 502, body: "bad gateway".into(), headers: vec![] }, 1);
    let err = a.deliver(&rendering(Some("issue-42")), &ctx(&cp, 1)).await.expect_err("502");
    assert_eq!(err.kind(), Kind::Retryable);
    assert_eq!(a.find_existing(&rendering(Some("issue-42")), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    a.deliver(&rendering(Some("issue-42")), &ctx(&cp, 3)).await.expect("published on retry");
    assert_eq!(fake.drafts().len(), 1);
    assert_eq!(fake.published().len(), 1);
    let creates = fake.requests().iter().filter(|r| *r == "POST /api/v1/drafts").count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn lost_create_answer_adopts_the_orphan_draft() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, substack::COOKIE, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    fake.faults.push("POST /api/v1/drafts", Fault::AcceptThenDrop, 1);
    let err = a.deliver(&rendering(None), &ctx(&cp, 1)).await.expect_err("answer lost");
    // An unpublished draft is invisible to readers, so this is a plain retry.
    assert_eq!(err.kind(), Kind::Retryable, "{err}");
    assert_eq!(fake.drafts().len(), 1);
    assert_eq!(a.find_existing(&rendering(None), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    let r = a.deliver(&rendering(None), &ctx(&cp, 3)).await.expect("published");
    assert_eq!(fake.drafts().len(), 1, "the orphan draft was reused");
    assert_eq!(r.remote_id, fake.drafts()[0].id.to_string());
    assert_eq!(fake.published().len(), 1);
}

#[tokio::test]
async fn draft_mode_stops_at_the_draft_awaiting_confirmation() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, substack::COOKIE, "mode = \"draft\"");
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = a.deliver(&rendering(Some("issue-42")), &ctx(&cp, 1)).await.expect("draft made");
    let drafts = fake.drafts();
    assert_eq!(drafts.len(), 1);
    assert!(r.awaiting_confirmation);
    assert_eq!(r.remote_id, drafts[0].id.to_string());
    assert_eq!(r.url, Some(format!("{}/publish/post/{}", fake.base_url, drafts[0].id)));
    assert!(fake.published().is_empty(), "nothing published");
    assert!(!drafts[0].prepublished);
    assert!(!fake.requests().iter().any(|r| r.contains("publish")), "{:?}", fake.requests());
    let editor = herald::channel::http::client().get(r.url.clone().unwrap()).send().await.unwrap();
    assert_eq!(editor.status(), 200);

    // Again: the same draft, still awaiting; reconciliation agrees.
    let again = a.deliver(&rendering(Some("issue-42")), &ctx(&cp, 2)).await.unwrap();
    assert_eq!(again, r);
    assert_eq!(a.find_existing(&rendering(Some("issue-42")), &ctx(&cp, 3)).await.unwrap(), Reconciled::Found(r));
    assert_eq!(fake.drafts().len(), 1);
}

#[tokio::test]
async fn without_a_draft_id_the_published_list_is_searched_by_slug() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, substack::COOKIE, "");
    let fresh = Arc::new(MemoryCheckpoint::default());
    assert_eq!(a.find_existing(&rendering(Some("issue-42")), &ctx(&fresh, 1)).await.unwrap(), Reconciled::NotFound);
    // Published through another checkpoint (e.g. one that was lost).
    let r = a.deliver(&rendering(Some("issue-42")), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    match a.find_existing(&rendering(Some("issue-42")), &ctx(&fresh, 2)).await.unwrap() {
        Reconciled::Found(found) => assert_eq!(found.remote_id, r.remote_id),
        other => panic!("expected Found, got {other:?}"),
    }
    assert_eq!(a.find_existing(&rendering(Some("issue-43")), &ctx(&fresh, 3)).await.unwrap(), Reconciled::NotFound);
}

#[tokio::test]
async fn expired_cookie_needs_auth() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, "stale-sid-value", "");
    let cp = Arc::new(MemoryCheckpoint::default());
    let err = a.deliver(&rendering(None), &ctx(&cp, 1)).await.expect_err("401");
    assert_eq!(err.kind(), Kind::Auth);
    assert_eq!(err.status(), Some(401));
    assert!(err.message().contains("cookie"), "{err}");
    assert!(!err.to_string().contains("stale-sid-value"));
    assert_eq!(a.healthcheck().await.unwrap_err().kind(), Kind::Auth);
    assert!(fake.drafts().is_empty());
    adapter(&fake, substack::COOKIE, "").healthcheck().await.expect("good cookie passes");
    // A full browser cookie string works too.
    let full = format!("ajs_id=1; substack.sid={}; other=2", substack::COOKIE);
    adapter(&fake, &full, "").healthcheck().await.expect("cookie string passes");
}

#[tokio::test]
async fn fake_requires_a_string_draft_body_holding_a_valid_doc() {
    let fake = SubstackFake::start().await.unwrap();
    let http = herald::channel::http::client();
    let send = |body: Value| {
        http.post(format!("{}/api/v1/drafts", fake.base_url))
            .header("Cookie", format!("substack.sid={}", substack::COOKIE))
            .header("User-Agent", herald::config::SUBSTACK_DEFAULT_UA)
            .json(&body)
            .send()
    };
    let bylines = json!([{"id": substack::USER_ID, "is_guest": false}]);
    let doc = markdown_to_doc("Hi *there*");
    let as_object = send(json!({"draft_title": "T", "draft_body": doc})).await.unwrap();
    assert_eq!(as_object.status(), 400);
    let bad_doc = send(json!({"draft_title": "T", "draft_body": r#"{"type":"doc","content":[{"type":"text","text":"loose"}]}"#})).await.unwrap();
    assert_eq!(bad_doc.status(), 400);
    let unknown = send(json!({"draft_title": "T", "draft_body": doc.to_string(), "surprise": 1})).await.unwrap();
    assert_eq!(unknown.status(), 400);
    // draft_bylines is required, and must name the signed-in author.
    let no_bylines = send(json!({"draft_title": "T", "draft_body": doc.to_string()})).await.unwrap();
    assert_eq!(no_bylines.status(), 400);
    let empty = send(json!({"draft_title": "T", "draft_body": doc.to_string(), "draft_bylines": []})).await.unwrap();
    assert_eq!(empty.status(), 400);
    let ok = send(json!({"draft_title": "T", "draft_body": doc.to_string(), "draft_bylines": bylines})).await.unwrap();
    assert_eq!(ok.status(), 200);
    let draft: Value = ok.json().await.unwrap();
    assert_eq!(draft["is_published"], false);
    assert!(draft["id"].is_u64());
    let no_cookie = http.get(format!("{}/api/v1/drafts", fake.base_url)).header("User-Agent", herald::config::SUBSTACK_DEFAULT_UA).send().await.unwrap();
    assert_eq!(no_cookie.status(), 401);
}

#[tokio::test]
async fn every_fixture_issue_converts_to_a_document_the_fake_accepts() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, substack::COOKIE, "mode = \"draft\"");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/issues");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let issue = herald::issue::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc = markdown_to_doc(&issue.markdown);
        substack::validate_doc(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = Rendering::Article(ArticleRendering {
            title: issue.meta.title.clone(),
            subtitle: issue.meta.summary.clone(),
            html: String::new(),
            doc: Some(doc),
            slug: Some(issue.meta.slug.clone()),
            canonical_url: None,
        });
        a.deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 3, "fixtures found: {n}");
    assert_eq!(fake.drafts().len(), n);
}

#[tokio::test]
async fn wrong_api_base_is_permanent() {
    let fake = SubstackFake::start().await.unwrap();
    let cfg: ChannelConfig = toml::from_str(&format!(
        "type = \"substack\"\napi_base = \"{}/not-a-publication\"\ncookie = \"${{{COOKIE_ENV}}}\"\nuser_id = {}\n",
        fake.base_url,
        substack::USER_ID
    ))
    .unwrap();
    let ctx_b = BuildCtx {
        env: Box::new(|k| (k == COOKIE_ENV).then(|| substack::COOKIE.to_string())),
        base_dir: std::env::temp_dir(),
        timeout: Duration::from_secs(5),
        vault: None,
    };
    let a = build_adapter("substack_main", &cfg, &ctx_b).unwrap();
    let err = a.deliver(&rendering(None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect_err("404");
    assert_eq!(err.kind(), Kind::Permanent);
    assert!(err.message().contains("api_base"), "{err}");
}

/// Issue 14 item 1: without `user_id`, the byline's id is read from
/// `/api/v1/user/profile/self`, once per process.
#[tokio::test]
async fn bylines_come_from_the_profile_when_user_id_is_unset() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter_without_user_id(&fake, substack::COOKIE, "mode = \"draft\"");
    a.deliver(&rendering(Some("issue-42")), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect("draft");
    a.deliver(&rendering(Some("issue-43")), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect("draft");
    let drafts = fake.drafts();
    assert_eq!(drafts.len(), 2);
    for d in &drafts {
        assert_eq!(d.draft_bylines, json!([{"id": substack::USER_ID, "is_guest": false}]));
    }
    let profile_reads = fake.requests().iter().filter(|r| r.as_str() == "GET /api/v1/user/profile/self").count();
    assert_eq!(profile_reads, 1, "{:?}", fake.requests());
}

/// Issue 14 item 1: a bare cookie value goes out under `cookie_name`, or under both session
/// names; the default User-Agent is a browser's; a non-browser one the fake refuses with 403,
/// which is a policy refusal naming both the User-Agent and the cookie (issue 14 item 3).
#[tokio::test]
async fn cookie_names_and_the_user_agent() {
    let fake = SubstackFake::start().await.unwrap();
    for extra in ["cookie_name = \"connect.sid\"", "cookie_name = \"substack.sid\"", ""] {
        adapter(&fake, substack::COOKIE, extra).healthcheck().await.unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
    let full = format!("connect.sid={}; ajs_id=1", substack::COOKIE);
    adapter(&fake, &full, "").healthcheck().await.expect("a full cookie string with connect.sid");
    assert!(fake.user_agents().iter().all(|ua| ua == herald::config::SUBSTACK_DEFAULT_UA), "{:?}", fake.user_agents());
    // The wrong name for the value is refused as a cookie problem.
    let wrong = adapter(&fake, "other", "cookie_name = \"connect.sid\"").healthcheck().await.unwrap_err();
    assert_eq!(wrong.kind(), Kind::Auth, "{wrong}");

    let bot = adapter(&fake, substack::COOKIE, "user_agent = \"herald-bot/1.0\"");
    let cp = Arc::new(MemoryCheckpoint::default());
    let err = bot.deliver(&rendering(None), &ctx(&cp, 1)).await.unwrap_err();
    assert_eq!((err.kind(), err.status()), (Kind::Forbidden, Some(403)), "{err}");
    assert!(err.message().contains("User-Agent") && err.message().contains("herald-bot/1.0"), "{err}");
    assert!(err.message().contains("cookie"), "{err}");
    assert!(!err.to_string().contains(substack::COOKIE), "never the cookie itself: {err}");
    assert!(fake.drafts().is_empty());
    fake.set_require_browser_ua(false);
    bot.healthcheck().await.expect("a fake that lets any UA through");
}

/// Issue 14 item 1: code blocks, hard breaks and numbered lists convert to nodes the fake (which
/// knows python-substack's names) accepts.
#[tokio::test]
async fn code_blocks_breaks_and_numbered_lists_are_accepted() {
    let fake = SubstackFake::start().await.unwrap();
    let a = adapter(&fake, substack::COOKIE, "mode = \"draft\"");
    let md = "Line one  \nline two<br>line three\n\n```rust\nfn main() {}\n```\n\n3. three\n4. four\n\n1. one\n";
    let r = Rendering::Article(ArticleRendering {
        title: "Code".into(),
        subtitle: String::new(),
        html: String::new(),
        doc: Some(markdown_to_doc(md)),
        slug: None,
        canonical_url: None,
    });
    a.deliver(&r, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect("accepted");
    let body: Value = serde_json::from_str(&fake.drafts()[0].draft_body).unwrap();
    assert!(body.to_string().contains("\"codeBlock\""), "{body}");
}
