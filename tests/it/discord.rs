//! The discord adapter against its contract fake (src/sandbox/discord.rs, built from Discord's
//! Execute Webhook docs): the exact payload, each error class, accept-then-drop, the pipeline's
//! end states, and the webhook token kept out of errors and the store.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, DeliveryCtx, Kind, Reconciled, build_adapter};
use herald::config::ChannelConfig;
use herald::render::{BodyRendering, Rendering};
use herald::sandbox::discord::{DiscordFake, WEBHOOK_ID, WEBHOOK_TOKEN};
use herald::sandbox::fault::Fault;
use serde_json::json;

use crate::pipeline::{TestDb, fast, issue_copy, write_config};

/// An adapter whose `webhook_url` is `${DISCORD_HOOK}` = `url`.
fn adapter(url: &str, extra: &str) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig = toml::from_str(&format!("type = \"discord\"\nwebhook_url = \"${{DISCORD_HOOK}}\"\n{extra}")).unwrap();
    let url = url.to_string();
    let ctx = BuildCtx { env: Box::new(move |k| (k == "DISCORD_HOOK").then(|| url.clone())), ..BuildCtx::from_env(std::env::temp_dir()) };
    build_adapter("announce", &cfg, &ctx).unwrap()
}

fn body(content: serde_json::Value) -> Rendering {
    Rendering::Body(BodyRendering {
        body: json!({
            "content": content,
            "embeds": [{"title": "Issue 12: Slow Software", "description": "Why it is slow.", "url": "https://news.example.com/12"}]
        }),
    })
}

fn ctx() -> DeliveryCtx {
    DeliveryCtx::for_test("issue-12/announce/r1")
}

#[tokio::test]
async fn publishes_the_exact_payload_with_wait_and_keeps_the_message_id() {
    let fake = DiscordFake::start().await.unwrap();
    let a = adapter(&fake.webhook_url(), "username = \"Herald\"\navatar_url = \"https://news.example.com/a.png\"");
    let r = a.deliver(&body(json!(["Issue 12", "", "@everyone Why it is slow.", "", "https://news.example.com/12"])), &ctx()).await.unwrap();
    let got = fake.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].wait, "Herald always asks wait=true");
    assert_eq!(
        got[0].body,
        json!({
            "content": "Issue 12\n\n@everyone Why it is slow.\n\nhttps://news.example.com/12",
            "embeds": [{"title": "Issue 12: Slow Software", "description": "Why it is slow.", "url": "https://news.example.com/12"}],
            "username": "Herald",
            "avatar_url": "https://news.example.com/a.png",
            "allowed_mentions": {"parse": []}
        })
    );
    assert_eq!(r.remote_id, got[0].id, "the receipt holds the message id from the wait=true answer");
    assert!(r.remote_id.parse::<u64>().is_ok(), "a snowflake: {}", r.remote_id);
}

#[tokio::test]
async fn embed_false_sends_the_content_alone() {
    let fake = DiscordFake::start().await.unwrap();
    adapter(&fake.webhook_url(), "embed = false").deliver(&body(json!("Hello")), &ctx()).await.unwrap();
    assert_eq!(fake.messages()[0].body, json!({"content": "Hello", "allowed_mentions": {"parse": []}}));
}

#[tokio::test]
async fn a_wrong_token_or_a_deleted_webhook_needs_auth() {
    let fake = DiscordFake::start().await.unwrap();
    let wrong_token = format!("{}/api/webhooks/{WEBHOOK_ID}/not-the-token", fake.base_url);
    let e = adapter(&wrong_token, "").deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(401)), "{e}");
    assert!(e.message().contains("50027"), "{e}");
    let deleted = format!("{}/api/webhooks/999/{WEBHOOK_TOKEN}", fake.base_url);
    let e = adapter(&deleted, "").deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(404)), "{e}");
    assert!(e.message().contains("Unknown Webhook"), "{e}");
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn a_message_discord_refuses_is_permanent() {
    let fake = DiscordFake::start().await.unwrap();
    // Discord refuses a webhook username naming "discord" (50035); Herald does not check it.
    let e = adapter(&fake.webhook_url(), "username = \"Discord news\"").deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Permanent, Some(400)), "{e}");
    assert!(e.message().contains("50035") && e.message().contains("username"), "{e}");
    // Over 2,000: refused before the call (the fake would answer 50035 too).
    let e = adapter(&fake.webhook_url(), "").deliver(&body(json!("x".repeat(2001))), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent, "{e}");
    assert!(e.message().contains("2001"), "{e}");
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn the_fake_refuses_what_discord_refuses() {
    let fake = DiscordFake::start().await.unwrap();
    let c = herald::channel::http::client();
    let post = |v: serde_json::Value| c.post(format!("{}?wait=true", fake.webhook_url())).json(&v).send();
    let r = post(json!({"content": "x".repeat(2001)})).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((v["code"].as_u64(), v["errors"]["content"]["_errors"][0]["code"].as_str()), (Some(50035), Some("BASE_TYPE_MAX_LENGTH")));
    let r = post(json!({"content": "", "embeds": []})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["code"], 50006);
    let r = post(json!({"embeds": [{"title": "t".repeat(257)}]})).await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["errors"]["embeds"]["0"]["title"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH");
    // Without wait=true: 204, no body, no id.
    let r = c.post(fake.webhook_url()).json(&json!({"content": "hi"})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_from_the_body() {
    let fake = DiscordFake::start().await.unwrap();
    fake.faults.push(
        "POST /api/webhooks",
        Fault::Status {
            code: 429,
            body: r#"{"message": "You are being rate limited.", "retry_after": 2.5, "global": false}"#.into(),
            headers: vec![("retry-after".into(), "3".into()), ("x-ratelimit-reset-after".into(), "2.500".into()), ("x-ratelimit-scope".into(), "shared".into())],
        },
        1,
    );
    let a = adapter(&fake.webhook_url(), "");
    let e = a.deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_millis(2500)), "the body's float, not the header's whole seconds");
    // The body alone (no headers): its float is the wait.
    fake.faults.push("POST", Fault::Status { code: 429, body: r#"{"message": "You are being rate limited.", "retry_after": 1.25, "global": true}"#.into(), headers: vec![] }, 1);
    let e = a.deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_millis(1250))), "{e}");
    assert!(e.message().contains("global"), "{e}");
    // The next try goes through.
    a.deliver(&body(json!("x")), &ctx()).await.unwrap();
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn a_5xx_is_retryable_and_a_timeout_is_an_unknown_outcome() {
    let fake = DiscordFake::start().await.unwrap();
    fake.faults.push("POST", Fault::Status { code: 502, body: "<html>Bad Gateway</html>".into(), headers: vec![] }, 1);
    let a = adapter(&fake.webhook_url(), "timeout_secs = 1");
    assert_eq!(a.deliver(&body(json!("x")), &ctx()).await.unwrap_err().kind(), Kind::Retryable);
    fake.faults.push("POST", Fault::Hang(Duration::from_secs(3)), 1);
    let e = a.deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert!(!e.message().contains(WEBHOOK_TOKEN), "{e}");
}

#[tokio::test]
async fn accept_then_drop_cannot_be_checked_and_says_why() {
    let fake = DiscordFake::start().await.unwrap();
    fake.faults.push("POST", Fault::AcceptThenDrop, 1);
    let a = adapter(&fake.webhook_url(), "");
    let e = a.deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert_eq!(fake.messages().len(), 1, "the post exists");
    match a.find_existing(&body(json!("x")), &ctx()).await.unwrap() {
        Reconciled::CannotCheck(why) => assert!(why.contains("cannot list"), "{why}"),
        other => panic!("a webhook cannot look the message up: {other:?}"),
    }
}

#[tokio::test]
async fn transport_errors_never_show_the_webhook_token() {
    // Nothing listens on port 9: connect fails, and reqwest would print the URL.
    let a = adapter(&format!("http://127.0.0.1:9/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"), "");
    let e = a.deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable, "{e}");
    assert!(!e.message().contains(WEBHOOK_TOKEN), "{e}");
    // A service echoing the token in its error body is blanked by the redactor.
    let fake = DiscordFake::start().await.unwrap();
    fake.faults.push("POST", Fault::Status { code: 400, body: format!(r#"{{"message": "bad {WEBHOOK_TOKEN}", "code": 50035}}"#), headers: vec![] }, 1);
    let e = adapter(&fake.webhook_url(), "").deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert!(!e.message().contains(WEBHOOK_TOKEN) && e.message().contains("[redacted]"), "{e}");
}

#[test]
fn build_errors_name_the_key_not_the_url() {
    let cfg: ChannelConfig = toml::from_str("type = \"discord\"\nwebhook_url = \"${DISCORD_HOOK}\"").unwrap();
    let bad = "https://discord.com/channels/secret-token-value-123";
    let ctx = BuildCtx { env: Box::new(move |k| (k == "DISCORD_HOOK").then(|| bad.to_string())), ..BuildCtx::from_env(std::env::temp_dir()) };
    let e = build_adapter("announce", &cfg, &ctx).err().expect("not a webhook URL").to_string();
    assert!(e.contains("webhook_url") && !e.contains("secret-token-value-123"), "{e}");
}

/// In the pipeline, each class ends in its state, and the token is nowhere in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_pipeline_each_error_class_ends_in_its_state() {
    let db = TestDb::sqlite().await;
    let (ok, auth, bad, limited, hang, dropped) =
        (DiscordFake::start().await.unwrap(), DiscordFake::start().await.unwrap(), DiscordFake::start().await.unwrap(), DiscordFake::start().await.unwrap(), DiscordFake::start().await.unwrap(), DiscordFake::start().await.unwrap());
    limited.faults.push("POST", Fault::Status { code: 429, body: r#"{"message": "You are being rate limited.", "retry_after": 0.5, "global": false}"#.into(), headers: vec![] }, 1);
    hang.faults.push("POST", Fault::AcceptThenStall(Duration::from_secs(3)), 1);
    dropped.faults.push("POST", Fault::AcceptThenDrop, 1);
    let secrets = db.dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let mut text = format!("[store]\nurl = \"{}\"\n[retry]\nschedule_secs = [0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\n", db.url);
    let wrong = format!("{}/api/webhooks/{WEBHOOK_ID}/wrong-token", auth.base_url);
    for (name, url, extra) in [
        ("ok", ok.webhook_url(), ""),
        ("auth", wrong, ""),
        ("bad", bad.webhook_url(), "username = \"clyde\"\n"),
        ("limited", limited.webhook_url(), ""),
        ("hang", hang.webhook_url(), "timeout_secs = 1\n"),
        ("dropped", dropped.webhook_url(), ""),
    ] {
        let f = secrets.join(name);
        std::fs::write(&f, &url).unwrap();
        text.push_str(&format!("\n[channels.{name}]\ntype = \"discord\"\nwebhook_url_file = \"{}\"\n{extra}", f.display()));
    }
    let (_, cfg) = write_config(&db, &text);
    let p = Arc::new(herald::jobs::Pipeline::open(cfg).await.unwrap());
    let issue = issue_copy(&db, "minimal.md");
    let source = std::fs::read_to_string(&issue).unwrap();
    let parsed = herald::issue::parse_str(&issue, &source).unwrap();
    herald::jobs::publish::enqueue(&p, &parsed, &source, &[]).await.unwrap();
    let target = herald::jobs::worker::WaitFor::Issue { slug: "minimal".into(), version: parsed.version.clone(), channels: vec![] };
    let end = herald::jobs::worker::run_until_settled(p.clone(), fast(), target, Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(end, herald::jobs::worker::WaitEnd::Settled);
    let ds = p.store.list_deliveries(None, &[]).await.unwrap();
    let row = |n: &str| ds.iter().find(|d| d.channel == n).unwrap_or_else(|| panic!("{n}: {ds:?}"));
    let outcome = |n: &str| {
        let id = row(n).id;
        let p = p.clone();
        async move { p.store.attempts(id).await.unwrap().last().map(|a| a.outcome.clone()).unwrap_or_default() }
    };
    let sent = row("ok");
    assert_eq!(sent.state, "sent", "{sent:?}");
    assert_eq!(sent.remote_id.as_deref(), Some(ok.messages()[0].id.as_str()));
    // The rendered template went out: the issue's title and link, as a message the fake accepted.
    let m = &ok.messages()[0].body;
    assert!(m["embeds"][0]["url"].as_str().unwrap().starts_with(&parsed.meta.url), "{m}");
    assert!(m["content"].as_str().unwrap().contains(&parsed.meta.title), "{m}");
    assert_eq!(m["allowed_mentions"], json!({"parse": []}));
    assert_eq!((row("auth").state.as_str(), outcome("auth").await.as_str()), ("failed", "needs_auth"), "{:?}", row("auth"));
    assert_eq!((row("bad").state.as_str(), outcome("bad").await.as_str()), ("failed", "permanent"), "{:?}", row("bad"));
    assert_eq!(row("limited").state, "sent", "{:?}", row("limited"));
    assert_eq!(row("limited").rate_limited_waits, 1, "{:?}", row("limited"));
    assert_eq!(limited.messages().len(), 1);
    assert_eq!(row("hang").state, "unconfirmed", "{:?}", row("hang"));
    assert_eq!(hang.messages().len(), 1, "posted once, never resent blindly");
    assert_eq!(row("dropped").state, "unconfirmed", "{:?}", row("dropped"));
    assert!(row("dropped").last_error.as_deref().unwrap_or_default().contains("cannot list"), "{:?}", row("dropped"));
    assert_eq!(dropped.messages().len(), 1, "posted once, never resent blindly");
    // The token is in no row and nowhere in the database files.
    for d in &ds {
        assert!(!format!("{d:?}").contains(WEBHOOK_TOKEN), "{d:?}");
    }
    drop(p);
    let mut files = Vec::new();
    let mut todo = vec![db.dir.path().to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != secrets {
                    todo.push(path);
                }
            } else {
                // A -wal/-shm file may go as the pool closes.
                let Ok(bytes) = std::fs::read(&path) else { continue };
                assert!(!bytes.windows(WEBHOOK_TOKEN.len()).any(|w| w == WEBHOOK_TOKEN.as_bytes()), "the webhook token is in {}", path.display());
                files.push(path);
            }
        }
    }
    let files = files.iter().filter(|p| p.to_string_lossy().contains("herald.db")).count();
    assert!(files > 0, "the store's files were read");
}

/// The health check reads the webhook (Get Webhook with Token) and posts nothing: the right URL
/// passes; a wrong token (401, 50027) or a deleted webhook (404, 10015) needs a new URL; an
/// outage at Discord is retryable; no answer is an error too. The token is in no error.
#[tokio::test]
async fn healthcheck_reads_the_webhook_and_posts_nothing() {
    let fake = DiscordFake::start().await.unwrap();
    adapter(&fake.webhook_url(), "").healthcheck().await.expect("the right webhook URL passes");
    let wrong_token = format!("{}/api/webhooks/{WEBHOOK_ID}/not-the-token", fake.base_url);
    let e = adapter(&wrong_token, "").healthcheck().await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(401)), "{e}");
    assert!(e.message().contains("50027"), "{e}");
    let deleted = format!("{}/api/webhooks/999/{WEBHOOK_TOKEN}", fake.base_url);
    let e = adapter(&deleted, "").healthcheck().await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(404)), "{e}");
    assert!(e.message().contains("Unknown Webhook"), "{e}");
    fake.faults.push("GET /api/webhooks", Fault::Status { code: 503, body: "<html>Service Unavailable</html>".into(), headers: vec![] }, 1);
    let e = adapter(&fake.webhook_url(), "").healthcheck().await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Retryable, Some(503)), "{e}");
    assert!(fake.messages().is_empty(), "a health check never posts");
    let e = adapter(&format!("http://127.0.0.1:9/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"), "").healthcheck().await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable, "{e}");
    assert!(!e.to_string().contains(WEBHOOK_TOKEN), "{e}");
}
