//! The discord adapter against its contract fake (src/sandbox/discord.rs, built from Discord's
//! Execute Webhook and Create Message docs): the exact payload, each error class,
//! accept-then-drop (unconfirmed through a webhook, reconciled through a bot's nonce), the
//! pipeline's end states, and the webhook URL and bot token kept out of errors and the store.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, DeliveryCtx, Kind, Reconciled, build_adapter};
use herald::config::ChannelConfig;
use herald::render::{BodyRendering, Rendering};
use herald::sandbox::discord::{BOT_TOKEN, CHANNEL_ID, DiscordFake, WEBHOOK_ID, WEBHOOK_TOKEN};
use herald::sandbox::fault::Fault;
use serde_json::json;

use crate::pipeline::TestDb;

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
    let (p, ds, parsed) = crate::pipeline::publish_and_settle(&db, &text, "minimal.md").await;
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

// Bot mode: Create Message with `Authorization: Bot <token>`, a nonce per delivery and
// `enforce_nonce`, so a lost answer is sent again safely within Discord's window.

/// An adapter in bot mode: `bot_token = "${DISCORD_BOT}"` = `token`, the fake's channel.
fn bot_adapter(fake: &DiscordFake, token: &str, extra: &str) -> Arc<dyn Adapter> {
    let text = format!("type = \"discord\"\nbot_token = \"${{DISCORD_BOT}}\"\nchannel_id = \"{CHANNEL_ID}\"\napi_base = \"{}\"\n{extra}", fake.api_base());
    let cfg: ChannelConfig = toml::from_str(&text).unwrap();
    let token = token.to_string();
    let ctx = BuildCtx { env: Box::new(move |k| (k == "DISCORD_BOT").then(|| token.clone())), ..BuildCtx::from_env(std::env::temp_dir()) };
    build_adapter("announce", &cfg, &ctx).unwrap()
}

#[tokio::test]
async fn bot_mode_sends_the_exact_create_message_payload_with_a_nonce() {
    let fake = DiscordFake::start().await.unwrap();
    let a = bot_adapter(&fake, BOT_TOKEN, "");
    let r = a.deliver(&body(json!(["Issue 12", "", "@everyone Why it is slow."])), &ctx()).await.unwrap();
    let got = fake.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].by_bot, "Create Message, not the webhook");
    let nonce = got[0].body["nonce"].as_str().expect("a string nonce").to_string();
    assert_eq!(
        got[0].body,
        json!({
            "content": "Issue 12\n\n@everyone Why it is slow.",
            "embeds": [{"title": "Issue 12: Slow Software", "description": "Why it is slow.", "url": "https://news.example.com/12"}],
            "allowed_mentions": {"parse": []},
            "nonce": nonce,
            "enforce_nonce": true
        })
    );
    assert!(nonce.len() <= 25 && !nonce.is_empty(), "Discord takes up to 25 characters: {nonce}");
    assert!(!nonce.contains("issue-12"), "the nonce is derived from the key, not the key itself: {nonce}");
    assert_eq!(r.remote_id, got[0].id);
    // The same delivery sends the same nonce (Discord answers with the same message); a
    // republish (a new revision) a new one.
    let again = a.deliver(&body(json!("x")), &ctx()).await.unwrap();
    assert_eq!((again.remote_id.as_str(), fake.messages().len()), (r.remote_id.as_str(), 1), "the same nonce within the window: one message");
    a.deliver(&body(json!("x")), &DeliveryCtx::for_test("issue-12/announce/r2")).await.unwrap();
    let got = fake.messages();
    assert_eq!(got.len(), 2);
    assert_ne!(got[1].body["nonce"], got[0].body["nonce"]);
}

#[tokio::test]
async fn bot_mode_accept_then_drop_reconciles_to_one_message() {
    let fake = DiscordFake::start().await.unwrap();
    fake.faults.push("POST /api/v10/channels", Fault::AcceptThenDrop, 1);
    let a = bot_adapter(&fake, BOT_TOKEN, "");
    let c = ctx();
    let e = a.deliver(&body(json!("x")), &c).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert_eq!(fake.messages().len(), 1, "the message exists, its answer was lost");
    match a.find_existing(&body(json!("x")), &c).await.unwrap() {
        Reconciled::Found(r) => {
            assert_eq!(r.remote_id, fake.messages()[0].id, "Discord returned the message the lost answer was about");
            assert!(r.note.as_deref().unwrap_or_default().contains("nonce"), "{r:?}");
        }
        other => panic!("a bot can reconcile through its nonce: {other:?}"),
    }
    assert_eq!(fake.messages().len(), 1, "still one message");
}

/// Past `nonce_window_secs`, Discord no longer promises to return the message: Herald says it
/// cannot check and sends nothing.
#[tokio::test]
async fn bot_mode_past_the_nonce_window_is_unconfirmed_and_sends_nothing() {
    let fake = DiscordFake::start().await.unwrap();
    fake.faults.push("POST /api/v10/channels", Fault::AcceptThenDrop, 1);
    let a = bot_adapter(&fake, BOT_TOKEN, "nonce_window_secs = 1");
    let c = ctx();
    assert_eq!(a.deliver(&body(json!("x")), &c).await.unwrap_err().kind(), Kind::UnknownOutcome);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    match a.find_existing(&body(json!("x")), &c).await.unwrap() {
        Reconciled::CannotCheck(why) => assert!(why.contains("nonce window") && why.contains("past few minutes"), "{why}"),
        other => panic!("past the window: {other:?}"),
    }
    assert_eq!(fake.messages().len(), 1, "nothing sent again");
    // No record of a bot send (an earlier attempt may have gone through a webhook): can't tell.
    match a.find_existing(&body(json!("x")), &DeliveryCtx::for_test("issue-12/announce/r9")).await.unwrap() {
        Reconciled::CannotCheck(why) => assert!(why.contains("no bot send"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bot_mode_errors_are_classified_and_the_token_is_never_shown() {
    let fake = DiscordFake::start().await.unwrap();
    let e = bot_adapter(&fake, "not-the-bot-token", "").deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(401)), "{e}");
    assert!(e.message().contains("bot_token"), "{e}");
    let text = format!("type = \"discord\"\nbot_token = \"${{DISCORD_BOT}}\"\nchannel_id = \"42\"\napi_base = \"{}\"\n", fake.api_base());
    let cfg: ChannelConfig = toml::from_str(&text).unwrap();
    let ctx_env = BuildCtx { env: Box::new(|k| (k == "DISCORD_BOT").then(|| BOT_TOKEN.to_string())), ..BuildCtx::from_env(std::env::temp_dir()) };
    let e = build_adapter("announce", &cfg, &ctx_env).unwrap().deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Permanent, Some(404)), "{e}");
    assert!(e.message().contains("10003") && e.message().contains("channel_id"), "{e}");
    fake.set_bot_can_send(false);
    let a = bot_adapter(&fake, BOT_TOKEN, "");
    let e = a.deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Forbidden, Some(403)), "{e}");
    fake.set_bot_can_send(true);
    fake.faults.push(
        "POST /api/v10/channels",
        Fault::Status { code: 429, body: r#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#.into(), headers: vec![("retry-after".into(), "2".into())] },
        1,
    );
    let e = a.deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_millis(1500))), "{e}");
    let e = a.deliver(&body(json!("x".repeat(2001))), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent, "{e}");
    assert!(fake.messages().is_empty());
    // A service echoing the token is blanked by the redactor; health checks use Get Channel.
    fake.faults.push("POST", Fault::Status { code: 400, body: format!(r#"{{"message": "bad {BOT_TOKEN}", "code": 50035}}"#), headers: vec![] }, 1);
    let e = a.deliver(&body(json!("x")), &ctx()).await.unwrap_err();
    assert!(!e.message().contains(BOT_TOKEN) && e.message().contains("[redacted]"), "{e}");
    a.healthcheck().await.expect("the bot sees its channel");
    let e = bot_adapter(&fake, "wrong", "").healthcheck().await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(401)), "{e}");
    assert!(fake.messages().is_empty(), "nothing was posted");
}

/// The fake holds a bot to Discord's documented rules: `Bot` auth, the 25-character nonce, and
/// `enforce_nonce` (without it, a repeated nonce is another message).
#[tokio::test]
async fn the_fake_applies_discords_nonce_and_bot_auth_rules() {
    let fake = DiscordFake::start().await.unwrap();
    let c = herald::channel::http::client();
    let url = format!("{}/channels/{CHANNEL_ID}/messages", fake.api_base());
    let post = |auth: String, v: serde_json::Value| c.post(&url).header("authorization", auth).json(&v).send();
    let bot = format!("Bot {BOT_TOKEN}");
    let r = post(format!("Bearer {BOT_TOKEN}"), json!({"content": "x"})).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!({"message": "401: Unauthorized", "code": 0}));
    let r = post(bot.clone(), json!({"content": "x", "nonce": "n".repeat(26)})).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((v["code"].as_u64(), v["errors"]["nonce"]["_errors"][0]["code"].as_str()), (Some(50035), Some("BASE_TYPE_MAX_LENGTH")));
    let first: serde_json::Value = post(bot.clone(), json!({"content": "x", "nonce": "abc", "enforce_nonce": true})).await.unwrap().json().await.unwrap();
    let second: serde_json::Value = post(bot.clone(), json!({"content": "y", "nonce": "abc", "enforce_nonce": true})).await.unwrap().json().await.unwrap();
    assert_eq!(first["id"], second["id"], "the same nonce within the window returns the first message");
    assert_eq!((second["content"].as_str(), second["nonce"].as_str()), (Some("x"), Some("abc")));
    assert_eq!(fake.messages().len(), 1);
    let third: serde_json::Value = post(bot.clone(), json!({"content": "x", "nonce": "abc"})).await.unwrap().json().await.unwrap();
    assert_ne!(third["id"], first["id"], "without enforce_nonce the nonce does not dedupe");
    fake.set_nonce_window(Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fourth: serde_json::Value = post(bot, json!({"content": "x", "nonce": "abc", "enforce_nonce": true})).await.unwrap().json().await.unwrap();
    assert_ne!(fourth["id"], first["id"], "past the window a new message is created");
    assert_eq!(fake.messages().len(), 3);
}

/// Bot mode is checked with file, line and hint: not beside a webhook, with a channel id, and
/// without the webhook-only keys; a webhook refuses the bot's keys.
#[test]
fn bot_mode_config_is_checked_with_file_line_and_hint() {
    let errors = |body: &str| -> Vec<herald::config::ConfigError> {
        let text = format!("[channels.announce]\ntype = \"discord\"\n{body}");
        match herald::config::parse(std::path::Path::new("herald.toml"), &text) {
            Ok(_) => vec![],
            Err(e) => e.0,
        }
    };
    let ok = errors(&format!("bot_token = \"${{DISCORD_BOT}}\"\nchannel_id = \"{CHANNEL_ID}\"\nnonce_window_secs = 60\n"));
    assert!(ok.is_empty(), "{ok:?}");
    let e = errors("webhook_url = \"${HOOK}\"\nbot_token = \"${DISCORD_BOT}\"\nchannel_id = \"1\"\n");
    let both = e.iter().find(|e| e.key == "channels.announce.bot_token").unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(both.line, Some(4), "{both}");
    assert!(both.message.contains("not both") && both.hint.as_deref().unwrap_or_default().contains("webhook_url"), "{both}");
    let e = errors("bot_token = \"${DISCORD_BOT}\"\nusername = \"Herald\"\n");
    assert!(e.iter().any(|e| e.key == "channels.announce.channel_id" && e.message.contains("required") && e.hint.as_deref().unwrap_or_default().contains("Copy Channel ID")), "{e:?}");
    assert!(e.iter().any(|e| e.key == "channels.announce.username" && e.line == Some(4)), "{e:?}");
    let e = errors("bot_token = \"${DISCORD_BOT}\"\nchannel_id = \"#announcements\"\n");
    assert!(e.iter().any(|e| e.key == "channels.announce.channel_id" && e.message.contains("not a channel id") && e.line == Some(4)), "{e:?}");
    let e = errors("webhook_url = \"${HOOK}\"\nnonce_window_secs = 60\n");
    assert!(e.iter().any(|e| e.key == "channels.announce.nonce_window_secs" && e.hint.as_deref().unwrap_or_default().contains("bot_token")), "{e:?}");
    let e = errors("nonce_window_secs = 60\n");
    assert!(e.iter().any(|e| e.key == "channels.announce.webhook_url" && e.message.contains("bot_token")), "{e:?}");
    let e = errors(&format!("bot_token = \"${{DISCORD_BOT}}\"\nchannel_id = \"{CHANNEL_ID}\"\nnonce_window_secs = 3600\n"));
    assert!(e.iter().any(|e| e.key == "channels.announce.nonce_window_secs"), "{e:?}");
}

/// In the pipeline, a bot's lost answer ends `sent` with one message (the webhook's ends
/// `unconfirmed`, above), and the bot token is in no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_pipeline_a_bot_s_lost_answer_ends_sent_with_one_message() {
    let db = TestDb::sqlite().await;
    let fake = DiscordFake::start().await.unwrap();
    fake.faults.push("POST /api/v10/channels", Fault::AcceptThenDrop, 1);
    let secret = db.dir.path().join("bot.token");
    std::fs::write(&secret, BOT_TOKEN).unwrap();
    let text = format!(
        "[store]\nurl = \"{}\"\n[retry]\nschedule_secs = [0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\n\n[channels.announce]\ntype = \"discord\"\nbot_token_file = \"{}\"\nchannel_id = \"{CHANNEL_ID}\"\napi_base = \"{}\"\n",
        db.url,
        secret.display(),
        fake.api_base()
    );
    let (p, ds, _) = crate::pipeline::publish_and_settle(&db, &text, "minimal.md").await;
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].state, "sent", "{:?}", ds[0]);
    let m = fake.messages();
    assert_eq!(m.len(), 1, "one message: {m:?}");
    assert_eq!(ds[0].remote_id.as_deref(), Some(m[0].id.as_str()));
    let attempts = p.store.attempts(ds[0].id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), ["unknown_outcome", "reconciled"], "{attempts:?}");
    let all = format!("{ds:?}{attempts:?}");
    assert!(!all.contains(BOT_TOKEN), "the bot token is in the store");
}

/// `publish --sandbox` keeps a bot a bot: the hook points `api_base`, the channel and the token
/// (as a file in the run folder) at the fake, and the adapter built from that posts there.
#[tokio::test]
async fn the_sandbox_points_a_bot_at_the_fake() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    let mut cfg: ChannelConfig = toml::from_str("type = \"discord\"\nbot_token = \"${DISCORD_BOT}\"\nchannel_id = \"42\"\n").unwrap();
    let run = herald::sandbox::wiring::SandboxCtx { name: "announce", dir: dir.path() };
    let herald::sandbox::wiring::Fake::Http(fake) = cfg.sandbox(&run).await.unwrap() else { panic!("an HTTP fake") };
    let ChannelConfig::Discord(d) = &cfg else { panic!() };
    assert_eq!((d.channel_id.as_deref(), d.webhook_url.is_none()), (Some(CHANNEL_ID), true), "{d:?}");
    assert!(d.api_base.starts_with(&fake.address()), "{d:?}");
    let a = build_adapter("announce", &cfg, &BuildCtx::from_env(dir.path().to_path_buf())).unwrap();
    a.deliver(&body(json!("x")), &ctx()).await.unwrap();
    let (accepted, summary) = fake.accepted_json().unwrap();
    assert_eq!(summary, "1 message(s)");
    assert_eq!(accepted[0]["by_bot"], true, "{accepted}");
}
