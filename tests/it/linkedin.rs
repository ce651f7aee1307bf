//! LinkedIn adapter against the LinkedIn fake: exact payload, escaping, DUPLICATE_POST
//! reconciliation, rate limits, versions, token expiry.

use std::sync::Arc;

use herald::channel::{Adapter, Checkpoint, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled};
use herald::config::ChannelConfig;
use herald::render::{LinkCard, Post, PostsRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::linkedin::{self, LinkedinFake};
use serde_json::json;

const TOKEN_ENV: &str = "HERALD_IT_LINKEDIN_TOKEN";

/// An active `LinkedIn-Version` (this month), so the test never ages out of the fake's window.
fn version() -> String {
    chrono::Utc::now().format("%Y%m").to_string()
}

fn config(fake: &LinkedinFake, version: &str, extra: &str) -> ChannelConfig {
    toml::from_str(&format!(
        "type = \"linkedin\"\napi_base = \"{}\"\naccess_token = \"${{{TOKEN_ENV}}}\"\nauthor = \"{}\"\nlinkedin_version = \"{version}\"\ntimeout_secs = 2\n{extra}",
        fake.base_url,
        linkedin::PERSON
    ))
    .expect("linkedin config parses")
}

fn adapter_with(cfg: &ChannelConfig, token: &str) -> Arc<dyn Adapter> {
    crate::util::build_with_secret("linkedin_me", cfg, TOKEN_ENV, token)
}

fn adapter(fake: &LinkedinFake) -> Arc<dyn Adapter> {
    adapter_with(&config(fake, &version(), ""), linkedin::ACCESS_TOKEN)
}

fn ctx(cp: &Arc<MemoryCheckpoint>, attempt: u32) -> DeliveryCtx {
    DeliveryCtx {
        key: "issue-42/linkedin_me/r1".into(),
        delivery_id: 3,
        issue: "issue-42".into(),
        channel: "linkedin_me".into(),
        attempt,
        checkpoint: cp.clone(),
    }
}

/// Little-text escaping, written here independently of the renderer.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\|{}@[]()<>#*_~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn rendering(text: &str, card: Option<LinkCard>) -> Rendering {
    Rendering::Posts(PostsRendering {
        posts: vec![Post { text: text.to_string(), facets: vec![], entities: vec![], count: text.chars().count(), limit: 3000 }],
        card,
    })
}

const ORIGINAL: &str = "Issue #42 (weekly) is out: CX_ops, *podcasts* & [events] ~ <people> {news} | @all \\o/ https://news.example.com/42";

#[tokio::test]
async fn exact_payload_headers_and_escaping() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let card = LinkCard {
        uri: "https://news.example.com/42".into(),
        title: "Issue #42 (weekly)".into(),
        description: "Five *stories*".into(),
        image: None,
    };
    let escaped = escape(ORIGINAL);
    let r = a.deliver(&rendering(&escaped, Some(card)), &ctx(&cp, 1)).await.expect("posted");

    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    let p = &posts[0];
    assert_eq!(r.remote_id, p.urn);
    assert_eq!(r.url.as_deref(), Some(format!("https://www.linkedin.com/feed/update/{}", p.urn).as_str()));
    assert_eq!(p.version, version());
    assert_eq!(p.restli_version, "2.0.0");
    assert_eq!(
        p.body,
        json!({
            "author": linkedin::PERSON,
            "commentary": escaped,
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
            // Article fields are plain strings: no escaping there.
            "content": {"article": {"source": "https://news.example.com/42", "title": "Issue #42 (weekly)", "description": "Five *stories*"}},
        })
    );
    assert!(!p.truncated);
    assert_eq!(p.commentary, ORIGINAL, "LinkedIn shows the whole text, escapes resolved");
}

#[tokio::test]
async fn unescaped_commentary_is_silently_truncated_by_the_fake() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    // Success, as LinkedIn answers; the damage only shows in what was stored.
    a.deliver(&rendering(ORIGINAL, None), &ctx(&cp, 1)).await.expect("201 even so");
    let p = &fake.posts()[0];
    assert!(p.truncated);
    assert_eq!(p.commentary, "Issue ");
}

#[tokio::test]
async fn accept_then_drop_then_duplicate_post_names_the_one_post() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let text = escape("Issue 42 is out (finally).");
    fake.faults.push("POST /rest/posts", Fault::AcceptThenDrop, 1);
    let err = a.deliver(&rendering(&text, None), &ctx(&cp, 1)).await.expect_err("answer lost");
    assert_eq!(err.kind(), Kind::UnknownOutcome, "{err}");
    assert_eq!(fake.posts().len(), 1, "the fake kept the post");

    let urn = fake.posts()[0].urn.clone();
    match a.find_existing(&rendering(&text, None), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => {
            assert_eq!(r.remote_id, urn, "the URN parsed from DUPLICATE_POST");
            assert!(r.note.unwrap_or_default().contains("DUPLICATE_POST"));
        }
        other => panic!("expected Found, got {other:?}"),
    }
    // Redelivery answers from the checkpoint without another call.
    let before = fake.requests().len();
    let r = a.deliver(&rendering(&text, None), &ctx(&cp, 3)).await.unwrap();
    assert_eq!(r.remote_id, urn);
    assert_eq!(fake.requests().len(), before);
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn deliver_treats_duplicate_post_as_sent() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let text = escape("Same words twice.");
    let first = a.deliver(&rendering(&text, None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    // A fresh checkpoint (e.g. the checkpoint write was lost): LinkedIn's duplicate check answers.
    let second = a.deliver(&rendering(&text, None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap();
    assert_eq!(second.remote_id, first.remote_id);
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn dropped_before_processing_is_posted_once_by_the_probe() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let text = escape("Never arrived the first time.");
    fake.faults.push("POST /rest/posts", Fault::Drop, 1);
    let err = a.deliver(&rendering(&text, None), &ctx(&cp, 1)).await.expect_err("dropped");
    assert_eq!(err.kind(), Kind::UnknownOutcome);
    assert!(fake.posts().is_empty());
    match a.find_existing(&rendering(&text, None), &ctx(&cp, 2)).await.unwrap() {
        Reconciled::Found(r) => assert_eq!(r.remote_id, fake.posts()[0].urn),
        other => panic!("expected Found, got {other:?}"),
    }
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn reconciliation_refuses_beyond_the_duplicate_window() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    cp.save(&json!({ "first_post_at": two_days_ago })).await.unwrap();
    let rec = a.find_existing(&rendering("x", None), &ctx(&cp, 2)).await.unwrap();
    assert!(matches!(rec, Reconciled::CannotCheck(ref why) if why.contains("duplicate-detection window")), "{rec:?}");
    assert!(fake.requests().is_empty(), "no probe was sent");
    // Never attempted at all: nothing to find, a send is safe.
    let fresh = Arc::new(MemoryCheckpoint::default());
    assert_eq!(a.find_existing(&rendering("x", None), &ctx(&fresh, 1)).await.unwrap(), Reconciled::NotFound);
}

#[tokio::test]
async fn rate_limit_without_headers() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let cp = Arc::new(MemoryCheckpoint::default());
    fake.faults.push(
        "POST /rest/posts",
        Fault::Status { code: 429, body: r#"{"status":429,"message":"Resource level throttle limit for calls to this resource is reached."}"#.into(), headers: vec![] },
        1,
    );
    let err = a.deliver(&rendering("hello", None), &ctx(&cp, 1)).await.expect_err("throttled");
    assert_eq!(err.kind(), Kind::RateLimited);
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.retry_after(), None);
    assert!(fake.posts().is_empty());
    a.deliver(&rendering("hello", None), &ctx(&cp, 2)).await.expect("next attempt goes through");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn sunset_version_and_missing_headers_are_refused() {
    let fake = LinkedinFake::start().await.unwrap();
    let old = adapter_with(&config(&fake, "202301", ""), linkedin::ACCESS_TOKEN);
    let err = old.deliver(&rendering("hi", None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect_err("sunset");
    assert_eq!(err.kind(), Kind::Permanent);
    assert_eq!(err.status(), Some(426));
    assert!(err.message().contains("linkedin_version"), "{err}");

    let http = herald::channel::http::client();
    let url = format!("{}/rest/posts", fake.base_url);
    let body = json!({"author": linkedin::PERSON, "commentary": "hi", "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED"}, "lifecycleState": "PUBLISHED"});
    let no_version = http.post(&url).bearer_auth(linkedin::ACCESS_TOKEN).header("X-Restli-Protocol-Version", "2.0.0").json(&body).send().await.unwrap();
    assert_eq!(no_version.status(), 400);
    assert_eq!(no_version.json::<serde_json::Value>().await.unwrap()["code"], "VERSION_MISSING");
    let no_restli = http.post(&url).bearer_auth(linkedin::ACCESS_TOKEN).header("LinkedIn-Version", version()).json(&body).send().await.unwrap();
    assert_eq!(no_restli.status(), 400);
    let ok = http
        .post(&url)
        .bearer_auth(linkedin::ACCESS_TOKEN)
        .header("LinkedIn-Version", version())
        .header("X-Restli-Protocol-Version", "2.0.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    assert!(ok.headers()["x-restli-id"].to_str().unwrap().starts_with("urn:li:share:"));
    let mut extra = body.clone();
    extra["surprise"] = json!(1);
    let unknown = http
        .post(&url)
        .bearer_auth(linkedin::ACCESS_TOKEN)
        .header("LinkedIn-Version", version())
        .header("X-Restli-Protocol-Version", "2.0.0")
        .json(&extra)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn too_long_and_bad_token() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let long = "a".repeat(3001);
    let err = a.deliver(&rendering(&long, None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect_err("too long");
    assert_eq!(err.kind(), Kind::Permanent);
    assert_eq!(err.status(), Some(422));

    let bad = adapter_with(&config(&fake, &version(), ""), "expired-token");
    let err = bad.deliver(&rendering("hi", None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect_err("401");
    assert_eq!(err.kind(), Kind::Auth);
    assert!(!err.to_string().contains("expired-token"));
    assert_eq!(bad.healthcheck().await.unwrap_err().kind(), Kind::Auth);
    a.healthcheck().await.expect("good token passes");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn two_posts_are_refused_before_any_call() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let two = Rendering::Posts(PostsRendering {
        posts: vec![
            Post { text: "a".into(), facets: vec![], entities: vec![], count: 1, limit: 3000 },
            Post { text: "b".into(), facets: vec![], entities: vec![], count: 1, limit: 3000 },
        ],
        card: None,
    });
    let err = a.deliver(&two, &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect_err("one post only");
    assert_eq!(err.kind(), Kind::Permanent);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn token_expiry_warning_reads_the_config() {
    let fake = LinkedinFake::start().await.unwrap();
    let soon = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let ChannelConfig::Linkedin(c) = config(&fake, &version(), &format!("token_expires_at = \"{soon}\"\n")) else {
        unreachable!()
    };
    let w = herald::channel::linkedin::token_expiry_warning(&c, chrono::Utc::now()).expect("warns 3 days ahead");
    assert!(w.contains("expires"), "{w}");
    let ChannelConfig::Linkedin(c) = config(&fake, &version(), "") else { unreachable!() };
    assert_eq!(herald::channel::linkedin::token_expiry_warning(&c, chrono::Utc::now()), None);
}

#[tokio::test]
async fn the_renderers_escaping_survives_the_fakes_little_text_check() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let originals = [
        ORIGINAL,
        r"Backslash \ first, then \( and a trailing \",
        "Mentions like @ana and tags like #cx stay literal: {not|a|template}",
        "Emoji 🎉 and accents café, with _under_ and *star* and ~tilde~ <angle> [square]",
    ];
    for (i, original) in originals.iter().enumerate() {
        let sent = herald::render::count::linkedin_escape(original);
        let cp = Arc::new(MemoryCheckpoint::default());
        a.deliver(&rendering(&sent, None), &ctx(&cp, 1)).await.expect("posted");
        let p = &fake.posts()[i];
        assert!(!p.truncated, "{original:?} was cut to {:?}", p.commentary);
        assert_eq!(&p.commentary, original);
    }
}

#[tokio::test]
async fn malformed_author_is_refused() {
    let fake = LinkedinFake::start().await.unwrap();
    let cfg: ChannelConfig = toml::from_str(&format!(
        "type = \"linkedin\"\napi_base = \"{}\"\naccess_token = \"${{{TOKEN_ENV}}}\"\nauthor = \"ana\"\nlinkedin_version = \"{}\"\n",
        fake.base_url,
        version()
    ))
    .unwrap();
    let a = adapter_with(&cfg, linkedin::ACCESS_TOKEN);
    let err = a.deliver(&rendering("hi", None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect_err("bad author");
    assert_eq!(err.kind(), Kind::Permanent);
    assert!(err.message().contains("author"), "{err}");
    // An organization the token's member administers posts.
    let ChannelConfig::Linkedin(mut c) = cfg else { unreachable!() };
    c.author = linkedin::ORGANIZATION.into();
    let org = adapter_with(&ChannelConfig::Linkedin(c), linkedin::ACCESS_TOKEN);
    org.deliver(&rendering("hi", None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect("org post");
    assert_eq!(fake.posts()[0].author, linkedin::ORGANIZATION);
}

/// Issue 14 item 2: URLs stay links (with `_`, `(` and `)` in them) and `#hashtag`s stay
/// hashtags; only the text between them is escaped.
#[tokio::test]
async fn urls_and_hashtags_survive_as_links_and_hashtags() {
    let fake = LinkedinFake::start().await.unwrap();
    let a = adapter(&fake);
    let original = "New issue (42): https://news.example.com/42?utm_source=linkedin&utm_medium=social and \
        https://en.wikipedia.org/wiki/Rust_(programming_language) #rustlang #news_letter, not #42";
    let sent = herald::render::count::linkedin_escape(original);
    a.deliver(&rendering(&sent, None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.expect("posted");
    let p = &fake.posts()[0];
    assert!(!p.truncated, "{:?}", p.commentary);
    assert_eq!(p.commentary, original);
    assert_eq!(
        p.links,
        vec![
            "https://news.example.com/42?utm_source=linkedin&utm_medium=social",
            "https://en.wikipedia.org/wiki/Rust_(programming_language)"
        ]
    );
    assert_eq!(p.hashtags, vec!["rustlang", "news_letter"]);
}

/// Issue 14 item 3: an author the token's member may not post as is a policy refusal with
/// LinkedIn's message and a hint, not "re-authorise".
#[tokio::test]
async fn author_mismatch_is_forbidden_with_a_hint() {
    let fake = LinkedinFake::start().await.unwrap();
    let ChannelConfig::Linkedin(mut c) = config(&fake, &version(), "") else { unreachable!() };
    c.author = "urn:li:person:SomeoneElse".into();
    let a = adapter_with(&ChannelConfig::Linkedin(c), linkedin::ACCESS_TOKEN);
    let err = a.deliver(&rendering("hi", None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!((err.kind(), err.status()), (Kind::Forbidden, Some(403)), "{err}");
    assert!(err.message().contains("is not permitted to create posts as author urn:li:person:SomeoneElse"), "{err}");
    assert!(err.message().contains("/v2/userinfo"), "{err}");
    assert!(err.message().contains("author = \"urn:li:person:SomeoneElse\""), "{err}");
    assert!(fake.posts().is_empty());
    // A missing scope stays an auth problem.
    fake.faults.push(
        "POST /rest/posts",
        Fault::Status { code: 403, body: r#"{"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: partnerApiPostsExternal.CREATE.20261101"}"#.into(), headers: vec![] },
        1,
    );
    let err = adapter(&fake).deliver(&rendering("hi", None), &ctx(&Arc::new(MemoryCheckpoint::default()), 1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Auth, "{err}");
    assert!(err.message().contains("w_member_social"), "{err}");
}
