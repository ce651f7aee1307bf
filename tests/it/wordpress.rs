//! WordPress adapter against the WordPress fake: the exact post payload, the canonical link in
//! the content, each error class, and an accept-then-drop reconciled by the slug to one post.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled};
use herald::config::{self, ChannelConfig};
use herald::issue;
use herald::render::engine::render_channels;
use herald::render::{ArticleRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::wordpress::{self, WordpressFake};
use serde_json::json;

use crate::util::{sample_issues, temp_config};

const PASSWORD_ENV: &str = "HERALD_IT_WP_APP_PASSWORD";
const POSTS: &str = "POST /wp-json/wp/v2/posts";

fn adapter(fake: &WordpressFake, password: &str, extra: &str) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig = toml::from_str(&format!(
        "type = \"wordpress\"\nsite_url = \"{}\"\nusername = \"{}\"\napplication_password = \"${{{PASSWORD_ENV}}}\"\ntimeout_secs = 1\n{extra}",
        fake.base_url,
        wordpress::USERNAME,
    ))
    .expect("wordpress config parses");
    crate::util::build_with_secret("blog", &cfg, PASSWORD_ENV, password)
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx {
        key: "issue-42/blog/r1".into(),
        delivery_id: 7,
        issue: "issue-42".into(),
        channel: "blog".into(),
        attempt,
        checkpoint: cp.clone(),
    }
}

fn rendering() -> Rendering {
    Rendering::Article(ArticleRendering {
        title: "Issue 42: the state of CX".into(),
        subtitle: "Podcasts, events, people".into(),
        html: "<p>Welcome.</p>\n<p><em>Originally published at <a href=\"https://news.example.com/issue-42\">https://news.example.com/issue-42</a>.</em></p>\n".into(),
        doc: None,
        canonical_url: None,
        slug: Some("issue-42".into()),
    })
}

/// The first sample issue rendered by the default WordPress templates.
fn rendered_sample() -> (issue::Issue, ArticleRendering) {
    let (_d, p) = temp_config(
        "[channels.blog]\ntype = \"wordpress\"\nsite_url = \"https://blog.example.com\"\nusername = \"ana\"\napplication_password = \"${WP}\"\n",
    );
    let cfg = config::load(&p).expect("config loads");
    // A sample issue's body under front matter that names no other channel.
    let path = sample_issues().into_iter().next().expect("a sample issue");
    let text = std::fs::read_to_string(&path).unwrap();
    let body = text.splitn(3, "+++").nth(2).expect("front matter then body");
    let text = format!("+++\ntitle = \"Issue 42: the state of CX\"\nslug = \"issue-42\"\nnumber = 42\ndate = 2026-11-23\nurl = \"https://news.example.com/2026/issue-42?from=wp&x=1\"\nsummary = \"Podcasts, events, people.\"\n+++{body}");
    let issue = issue::parse_str(&path, &text).expect("issue parses");
    let mut r = render_channels(&issue, &cfg, &[]).expect("renders");
    assert_eq!(r.len(), 1);
    let Rendering::Article(a) = r.remove(0).rendering else { panic!("wordpress renders an article") };
    (issue, a)
}

#[tokio::test]
async fn publish_sends_the_exact_post_with_the_canonical_link_to_the_issue_url() {
    let (issue, a) = rendered_sample();
    let fake = WordpressFake::start().await.unwrap();
    // The password as WordPress shows it, with its spaces.
    let ad = adapter(&fake, wordpress::APPLICATION_PASSWORD, "categories = [3]\ntags = [14, 15]");
    let cp = Arc::new(MemoryCheckpoint::default());
    let r = ad.deliver(&Rendering::Article(a.clone()), &ctx(&cp, 1)).await.expect("published");

    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    let p = &posts[0];
    assert_eq!(
        p.request,
        json!({
            "title": issue.meta.title,
            "content": a.html,
            "status": "publish",
            "slug": issue.meta.slug,
            "excerpt": issue.meta.summary,
            "categories": [3],
            "tags": [14, 15],
        })
    );
    assert_eq!(p.status, "publish");
    assert_eq!(p.slug, issue.meta.slug);
    assert_eq!(r.remote_id, p.id.to_string());
    assert_eq!(r.url, Some(format!("{}/{}/", fake.base_url, issue.meta.slug)));
    assert!(!r.awaiting_confirmation);

    // The canonical link: the content's "Originally published at" link is the issue's own `url`
    // (not the UTM-tagged link the other channels carry).
    let re = regex::Regex::new(r#"Originally published at <a href="([^"]+)">"#).unwrap();
    let href = re.captures(&p.content).map(|c| c[1].to_string()).unwrap_or_else(|| panic!("no canonical link in {}", p.content));
    assert_eq!(href.replace("&amp;", "&"), issue.meta.url);
    assert_eq!(fake.requests(), vec![POSTS.to_string()], "one create, no lookup on a first attempt");
}

#[tokio::test]
async fn draft_status_waits_for_the_author() {
    let fake = WordpressFake::start().await.unwrap();
    let ad = adapter(&fake, wordpress::APPLICATION_PASSWORD, "status = \"draft\"");
    let r = ad.deliver(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect("draft made");
    assert_eq!(fake.posts()[0].status, "draft");
    assert!(r.awaiting_confirmation);
    // A draft is found by its slug too (authenticated, `status=publish,draft`).
    match ad.find_existing(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 2)).await.unwrap() {
        Reconciled::Found(f) => assert_eq!(f.remote_id, r.remote_id),
        other => panic!("expected Found, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_application_password_needs_auth_and_is_not_echoed() {
    let fake = WordpressFake::start().await.unwrap();
    let ad = adapter(&fake, "wxyz wxyz wxyz wxyz wxyz wxyz", "");
    let err = ad.deliver(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect_err("401");
    assert_eq!(err.kind(), Kind::Auth, "{err}");
    assert_eq!(err.status(), Some(401));
    assert!(err.message().contains("incorrect_password"), "{err}");
    assert!(!err.to_string().contains("wxyz"), "{err}");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn an_empty_post_is_refused_for_good() {
    let fake = WordpressFake::start().await.unwrap();
    let ad = adapter(&fake, wordpress::APPLICATION_PASSWORD, "");
    let empty = Rendering::Article(ArticleRendering { title: String::new(), subtitle: String::new(), html: String::new(), doc: None, canonical_url: None, slug: Some("issue-42".into()) });
    let err = ad.deliver(&empty, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect_err("400");
    assert_eq!(err.kind(), Kind::Permanent, "{err}");
    assert_eq!(err.status(), Some(400));
    assert!(err.message().contains("empty_content"), "{err}");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn rate_limit_and_server_errors_retry_with_the_hint() {
    let fake = WordpressFake::start().await.unwrap();
    let ad = adapter(&fake, wordpress::APPLICATION_PASSWORD, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    let body = r#"{"code":"too_many_requests","message":"Too many requests.","data":{"status":429}}"#;
    fake.faults.push(POSTS, Fault::Status { code: 429, body: body.into(), headers: vec![("retry-after".into(), "120".into())] }, 1);
    let err = ad.deliver(&rendering(), &ctx(&cp, 1)).await.expect_err("429");
    assert_eq!(err.kind(), Kind::RateLimited, "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));

    fake.faults.push(POSTS, Fault::Status { code: 503, body: "{}".into(), headers: vec![] }, 1);
    let err = ad.deliver(&rendering(), &ctx(&cp, 2)).await.expect_err("503");
    assert_eq!(err.kind(), Kind::Retryable, "{err}");
    assert!(fake.posts().is_empty());
    // The retry looks the slug up first (an earlier create was sent), finds nothing, creates one.
    ad.deliver(&rendering(), &ctx(&cp, 3)).await.expect("published on retry");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn a_timeout_is_an_unknown_outcome_and_reconciles_to_not_found() {
    let fake = WordpressFake::start().await.unwrap();
    let ad = adapter(&fake, wordpress::APPLICATION_PASSWORD, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    fake.faults.push(POSTS, Fault::Hang(Duration::from_secs(3)), 1);
    let err = ad.deliver(&rendering(), &ctx(&cp, 1)).await.expect_err("timeout");
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(ad.find_existing(&rendering(), &ctx(&cp, 2)).await.unwrap(), Reconciled::NotFound);
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn accept_then_drop_reconciles_to_one_post_by_the_slug() {
    let fake = WordpressFake::start().await.unwrap();
    let ad = adapter(&fake, wordpress::APPLICATION_PASSWORD, "");
    let cp = Arc::new(MemoryCheckpoint::default());
    fake.faults.push(POSTS, Fault::AcceptThenDrop, 1);
    let err = ad.deliver(&rendering(), &ctx(&cp, 1)).await.expect_err("answer lost");
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "the fake did create the post");
    let id = posts[0].id.to_string();

    match ad.find_existing(&rendering(), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => assert_eq!(r.remote_id, id),
        other => panic!("expected Found, got {other:?}"),
    }
    // A redelivery on the same checkpoint finds it too and never posts again.
    let r = ad.deliver(&rendering(), &ctx(&cp, 3)).await.expect("found, not re-posted");
    assert_eq!(r.remote_id, id);
    assert_eq!(fake.posts().len(), 1, "one post");
    assert_eq!(fake.requests().iter().filter(|r| *r == POSTS).count(), 1, "{:?}", fake.requests());

    // Why the lookup matters: WordPress makes a taken slug unique instead of refusing it, so a
    // blind second create would have made a second post.
    ad.deliver(&rendering(), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(fake.posts()[1].slug, "issue-42-2");
}

// ---- through the pipeline: each class ends in its state ------------------------------------

mod pipeline {
    use std::sync::Arc;
    use std::time::Duration;

    use herald::jobs::Pipeline;
    use herald::jobs::worker::WaitEnd;
    use herald::sandbox::fault::Fault;
    use herald::sandbox::wordpress::{self, WordpressFake};
    use herald::store::{DeliveryRow, State};

    use super::POSTS;
    use crate::pipeline::{TestDb, config_toml, issue_copy, publish_and_wait, write_config};

    /// Publish `minimal.md` to one WordPress channel on the fake; the settled delivery and its
    /// attempts' outcomes.
    async fn publish(fake: &WordpressFake, password: &str) -> (DeliveryRow, Vec<String>) {
        let db = TestDb::sqlite().await;
        let secret = db.dir.path().join("wp-password");
        std::fs::write(&secret, password).unwrap();
        let text = format!(
            "{}[channels.blog]\ntype = \"wordpress\"\nsite_url = \"{}\"\nusername = \"{}\"\napplication_password_file = \"{}\"\ntimeout_secs = 1\n",
            config_toml(&db.url, "http://127.0.0.1:9/unused", &[], ""),
            fake.base_url,
            wordpress::USERNAME,
            secret.display()
        );
        let (_, cfg) = write_config(&db, &text);
        let p = Arc::new(Pipeline::open(cfg).await.unwrap());
        assert_eq!(publish_and_wait(&p, &issue_copy(&db, "minimal.md")).await, WaitEnd::Settled);
        let ds = p.store.list_deliveries(None, &[]).await.unwrap();
        assert_eq!(ds.len(), 1);
        let outcomes = p.store.attempts(ds[0].id).await.unwrap().into_iter().map(|a| a.outcome).collect();
        p.close().await;
        (ds[0].clone(), outcomes)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_password_ends_needs_auth_after_one_attempt() {
        let fake = WordpressFake::start().await.unwrap();
        let (d, outcomes) = publish(&fake, "wrong wrong wrong wrong wrong wrong").await;
        assert_eq!(d.state(), State::Failed, "{d:?}");
        assert_eq!(outcomes, vec!["needs_auth"]);
        assert_eq!(d.last_status, Some(401));
        assert!(!d.last_error.unwrap_or_default().contains("wrong wrong"));
        assert!(fake.posts().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invalid_param_fails_for_good_after_one_attempt() {
        let fake = WordpressFake::start().await.unwrap();
        let body = r#"{"code":"rest_invalid_param","message":"Invalid parameter(s): categories","data":{"status":400,"params":{"categories":"categories[0] is not of type integer."}}}"#;
        fake.faults.push(POSTS, Fault::Status { code: 400, body: body.into(), headers: vec![] }, 5);
        let (d, outcomes) = publish(&fake, wordpress::APPLICATION_PASSWORD).await;
        assert_eq!(d.state(), State::Failed, "{d:?}");
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        assert_eq!(d.last_status, Some(400));
        assert!(d.last_error.unwrap_or_default().contains("rest_invalid_param"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limit_then_timeout_then_sent_once() {
        let fake = WordpressFake::start().await.unwrap();
        fake.faults.push(POSTS, Fault::Status { code: 429, body: "{}".into(), headers: vec![("retry-after".into(), "1".into())] }, 1);
        fake.faults.push(POSTS, Fault::Hang(Duration::from_secs(3)), 1);
        let (d, outcomes) = publish(&fake, wordpress::APPLICATION_PASSWORD).await;
        assert_eq!(d.state(), State::Sent, "{d:?} {outcomes:?}");
        assert!(outcomes.len() >= 3, "{outcomes:?}");
        assert_eq!(outcomes.last().map(String::as_str), Some("sent"));
        assert_eq!(fake.posts().len(), 1);
        assert_eq!(d.remote_id, Some(fake.posts()[0].id.to_string()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accept_then_drop_ends_sent_with_one_post() {
        let fake = WordpressFake::start().await.unwrap();
        fake.faults.push(POSTS, Fault::AcceptThenDrop, 1);
        let (d, outcomes) = publish(&fake, wordpress::APPLICATION_PASSWORD).await;
        assert_eq!(d.state(), State::Sent, "{d:?} {outcomes:?}");
        let posts = fake.posts();
        assert_eq!(posts.len(), 1, "reconciled, never posted twice: {posts:?}");
        assert_eq!(d.remote_id, Some(posts[0].id.to_string()));
        assert_eq!(fake.requests().iter().filter(|r| *r == POSTS).count(), 1, "{:?}", fake.requests());
    }
}
