//! The slack adapter against its contract fake (src/sandbox/slack.rs, built from Slack's
//! incoming webhook, chat.postMessage and conversations.history docs): the exact payload in
//! both modes, mrkdwn escaping of hostile text, each error class, accept-then-drop (bot mode
//! reconciles to one message by its metadata; webhook mode stays unconfirmed), the fake's own
//! strictness, and the pipeline's end states with the secrets kept out of the store.

use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, DeliveryCtx, Kind, Reconciled, build_adapter};
use herald::config::ChannelConfig;
use herald::render::{BodyRendering, Rendering};
use herald::sandbox::fault::Fault;
use herald::sandbox::slack::{self as fake, SlackFake};
use serde_json::{Value, json};

use crate::pipeline::TestDb;

/// A webhook-mode adapter whose `webhook_url` is `${SLACK_HOOK}` = `url`.
fn webhook(url: &str, extra: &str) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig = toml::from_str(&format!("type = \"slack\"\nwebhook_url = \"${{SLACK_HOOK}}\"\n{extra}")).unwrap();
    let url = url.to_string();
    let ctx = BuildCtx { env: Box::new(move |k| (k == "SLACK_HOOK").then(|| url.clone())), ..BuildCtx::from_env(std::env::temp_dir()) };
    build_adapter("announce", &cfg, &ctx).unwrap()
}

/// A bot-mode adapter with `token`, posting to `channel`.
fn bot(f: &SlackFake, token: &str, channel: &str, extra: &str) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig =
        toml::from_str(&format!("type = \"slack\"\nbot_token = \"${{SLACK_TOKEN}}\"\nchannel = \"{channel}\"\napi_base = \"{}\"\n{extra}", f.api_base())).unwrap();
    let token = token.to_string();
    let ctx = BuildCtx { env: Box::new(move |k| (k == "SLACK_TOKEN").then(|| token.clone())), ..BuildCtx::from_env(std::env::temp_dir()) };
    build_adapter("announce", &cfg, &ctx).unwrap()
}

fn body(text: Value) -> Rendering {
    Rendering::Body(BodyRendering {
        body: json!({
            "header": "Issue 12: Slow Software",
            "text": text,
            "sections": [["Why it is slow.", "", ["[Read the issue](<", "https://news.example.com/12?a=1&b=2", ">)"]]]
        }),
    })
}

fn simple() -> Rendering {
    body(json!([["**", "Issue 12", "**"], "", "Why it is slow."]))
}

fn ctx() -> DeliveryCtx {
    DeliveryCtx::for_test("issue-12/announce/r1")
}

/// What Herald sends for [`simple`], mrkdwn and blocks (both modes).
fn expected_message() -> Value {
    json!({
        "text": "*Issue 12*\n\nWhy it is slow.",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Issue 12: Slow Software", "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "Why it is slow.\n\n<https://news.example.com/12?a=1&amp;b=2|Read the issue>"}}
        ],
        "unfurl_links": true
    })
}

#[tokio::test]
async fn webhook_mode_posts_the_exact_payload() {
    let f = SlackFake::start().await.unwrap();
    let r = webhook(&f.webhook_url(), "").deliver(&simple(), &ctx()).await.unwrap();
    let got = f.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].via, "webhook");
    assert_eq!(got[0].body, expected_message());
    assert_eq!(r.remote_id, "incoming-webhook", "a webhook answers `ok` without an id");
}

#[tokio::test]
async fn bot_mode_posts_the_exact_payload_with_the_delivery_key_in_metadata() {
    let f = SlackFake::start().await.unwrap();
    let r = bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "unfurl_links = false").deliver(&simple(), &ctx()).await.unwrap();
    let got = f.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].via, "chat.postMessage");
    let mut want = expected_message();
    want["unfurl_links"] = json!(false);
    want["channel"] = json!(fake::CHANNEL_ID);
    want["metadata"] = json!({"event_type": "herald_delivery", "event_payload": {"key": "issue-12/announce/r1"}});
    assert_eq!(got[0].body, want);
    assert_eq!(r.remote_id, format!("{}/{}", fake::CHANNEL_ID, got[0].ts), "the receipt holds the channel and the message's ts");
    // `blocks = false`: the text alone.
    bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "blocks = false").deliver(&simple(), &DeliveryCtx::for_test("issue-12/announce/r2")).await.unwrap();
    assert!(f.messages()[1].body.get("blocks").is_none(), "{}", f.messages()[1].body);
}

#[tokio::test]
async fn hostile_text_is_escaped_and_cannot_ping_or_fake_a_link() {
    let f = SlackFake::start().await.unwrap();
    // The template's strings are Markdown: `&lt;` there is an entity for `<`, shown as `<`.
    let hostile = "Tom & Jerry <!channel> <@U024BE7LH> <https://evil.example|your bank> 5 > 3 &lt;";
    webhook(&f.webhook_url(), "").deliver(&body(json!(hostile)), &ctx()).await.unwrap();
    let text = f.messages()[0].text.clone();
    assert_eq!(text, "Tom &amp; Jerry &lt;!channel&gt; &lt;@U024BE7LH&gt; &lt;https://evil.example|your bank&gt; 5 &gt; 3 &lt;");
    assert!(!text.contains('<') && !text.contains('>'), "no control character reaches Slack: {text}");
}

#[tokio::test]
async fn a_dead_credential_needs_auth() {
    let f = SlackFake::start().await.unwrap();
    for token in ["xoxb-not-a-token-we-know", fake::REVOKED_TOKEN] {
        let e = bot(&f, token, fake::CHANNEL_ID, "").deliver(&simple(), &ctx()).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Auth, "{e}");
        assert!(!e.message().contains(token), "{e}");
    }
    let wrong_secret = format!("{}/services/{}/{}/not-the-secret", f.base_url, fake::TEAM_ID, fake::HOOK_ID);
    let e = webhook(&wrong_secret, "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(403)), "{e}");
    assert!(e.message().contains("invalid_token"), "{e}");
    let removed = format!("{}/services/{}/B0GONE0001/{}", f.base_url, fake::TEAM_ID, fake::HOOK_SECRET);
    let e = webhook(&removed, "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(404)), "{e}");
    assert!(e.message().contains("no_service"), "{e}");
    assert!(f.messages().is_empty());
}

#[tokio::test]
async fn what_slack_refuses_is_permanent_and_limits_are_refused_before_sending() {
    let f = SlackFake::start().await.unwrap();
    let e = bot(&f, fake::BOT_TOKEN, fake::NOT_MEMBER_CHANNEL_ID, "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent, "{e}");
    assert!(e.message().contains("not_in_channel") && e.message().contains("/invite"), "{e}");
    let e = bot(&f, fake::BOT_TOKEN, fake::ARCHIVED_CHANNEL_ID, "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert!(e.kind() == Kind::Permanent && e.message().contains("is_archived"), "{e}");
    let archived_hook = format!("{}/services/{}/{}/{}", f.base_url, fake::TEAM_ID, fake::ARCHIVED_HOOK_ID, fake::HOOK_SECRET);
    let e = webhook(&archived_hook, "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Permanent, Some(410)), "{e}");
    // 51 sections: refused before any call (Slack would answer invalid_blocks).
    let many = Rendering::Body(BodyRendering { body: json!({"text": "t", "sections": vec!["s"; 50], "header": "h"}) });
    let e = bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "").deliver(&many, &ctx()).await.unwrap_err();
    assert!(e.kind() == Kind::Permanent && e.message().contains("51 blocks"), "{e}");
    // Past 40,000 characters of text: refused (Slack would truncate it).
    let long = body(json!("x".repeat(40_001)));
    let e = webhook(&f.webhook_url(), "").deliver(&long, &ctx()).await.unwrap_err();
    assert!(e.kind() == Kind::Permanent && e.message().contains("40001"), "{e}");
    assert!(f.messages().is_empty());
    // A long section is split into sections Slack accepts, not refused.
    let para = "word ".repeat(500);
    let split = Rendering::Body(BodyRendering { body: json!({"text": "t", "sections": [format!("{para}\n\n{para}")]}) });
    bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "").deliver(&split, &ctx()).await.unwrap();
    let blocks = f.messages()[0].body["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks.len(), 2);
    assert!(blocks.iter().all(|b| b["text"]["text"].as_str().unwrap().chars().count() <= 3000));
}

#[tokio::test]
async fn a_429_waits_for_slacks_retry_after_in_both_modes() {
    let f = SlackFake::start().await.unwrap();
    f.faults.push("POST /api/chat.postMessage", Fault::Status { code: 429, body: r#"{"ok":false,"error":"ratelimited"}"#.into(), headers: vec![("retry-after".into(), "30".into())] }, 1);
    let a = bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "");
    let e = a.deliver(&simple(), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after(), e.status()), (Kind::RateLimited, Some(Duration::from_secs(30)), Some(429)), "{e}");
    f.faults.push("POST /services", Fault::Status { code: 429, body: "rate_limited".into(), headers: vec![("retry-after".into(), "7".into())] }, 1);
    let e = webhook(&f.webhook_url(), "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after()), (Kind::RateLimited, Some(Duration::from_secs(7))), "{e}");
    // The next try goes through.
    a.deliver(&simple(), &DeliveryCtx::for_test("issue-12/announce/r9")).await.unwrap();
    assert_eq!(f.messages().len(), 1);
}

#[tokio::test]
async fn a_5xx_retries_and_a_timeout_is_an_unknown_outcome() {
    let f = SlackFake::start().await.unwrap();
    f.faults.push("POST", Fault::Status { code: 503, body: "<html>Service Unavailable</html>".into(), headers: vec![] }, 1);
    let a = webhook(&f.webhook_url(), "timeout_secs = 1");
    assert_eq!(a.deliver(&simple(), &ctx()).await.unwrap_err().kind(), Kind::Retryable);
    f.faults.push("POST", Fault::Hang(Duration::from_secs(3)), 1);
    let e = a.deliver(&simple(), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert!(!e.message().contains(fake::HOOK_SECRET), "{e}");
}

#[tokio::test]
async fn bot_mode_finds_a_message_whose_answer_was_lost_and_never_posts_twice() {
    let f = SlackFake::start().await.unwrap();
    // Other messages in the channel, before and after: the lookup must pick ours by its key.
    let noise = bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "");
    noise.deliver(&simple(), &DeliveryCtx::for_test("issue-11/announce/r1")).await.unwrap();
    f.faults.push("POST /api/chat.postMessage", Fault::AcceptThenDrop, 1);
    let a = bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "");
    let c = ctx();
    let e = a.deliver(&simple(), &c).await.unwrap_err();
    assert!(matches!(e.kind(), Kind::UnknownOutcome | Kind::Retryable), "{e}");
    for i in 0..3 {
        webhook(&f.webhook_url(), "").deliver(&simple(), &DeliveryCtx::for_test(&format!("x/y/r{i}"))).await.unwrap();
    }
    assert_eq!(f.messages().len(), 5);
    let ours = f.messages()[1].clone();
    match a.find_existing(&simple(), &c).await.unwrap() {
        Reconciled::Found(r) => assert_eq!(r.remote_id, format!("{}/{}", fake::CHANNEL_ID, ours.ts)),
        other => panic!("the message is in the channel's history: {other:?}"),
    }
    // A redelivery after that makes no call: the checkpoint has the ts.
    a.deliver(&simple(), &c).await.unwrap();
    assert_eq!(f.messages().len(), 5, "posted once");
    // The lookup read conversations.history with the documented arguments.
    let lost = DeliveryCtx::for_test("issue-13/announce/r1");
    f.faults.push("POST /api/chat.postMessage", Fault::Drop, 1);
    a.deliver(&simple(), &lost).await.unwrap_err();
    assert_eq!(a.find_existing(&simple(), &lost).await.unwrap(), Reconciled::NotFound, "dropped before Slack saw it: safe to send");
}

#[tokio::test]
async fn a_redelivery_after_a_lost_answer_looks_before_posting_again() {
    let f = SlackFake::start().await.unwrap();
    f.faults.push("POST /api/chat.postMessage", Fault::AcceptThenDrop, 1);
    let a = bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "");
    let c = ctx();
    a.deliver(&simple(), &c).await.unwrap_err();
    // The pipeline may call deliver again (a dropped connection can read as retryable): the
    // saved start makes it look first, and it finds the message instead of posting a second.
    let r = a.deliver(&simple(), &c).await.unwrap();
    assert_eq!(f.messages().len(), 1, "posted once");
    assert_eq!(r.remote_id, format!("{}/{}", fake::CHANNEL_ID, f.messages()[0].ts));
}

#[tokio::test]
async fn a_refused_post_leaves_nothing_to_look_up() {
    let f = SlackFake::start().await.unwrap();
    // A token without `channels:history`: any lookup would fail. After a refusal Slack
    // answered (nothing posted), the next try must post, not look.
    f.faults.push("POST /api/chat.postMessage", Fault::Status { code: 429, body: r#"{"ok":false,"error":"ratelimited"}"#.into(), headers: vec![("retry-after".into(), "1".into())] }, 1);
    let a = bot(&f, fake::WRITE_ONLY_TOKEN, fake::CHANNEL_ID, "");
    let c = ctx();
    assert_eq!(a.deliver(&simple(), &c).await.unwrap_err().kind(), Kind::RateLimited);
    a.deliver(&simple(), &c).await.unwrap();
    assert_eq!(f.messages().len(), 1);
    // And with that token, a lost answer cannot be checked: said so, never resent.
    f.faults.push("POST /api/chat.postMessage", Fault::AcceptThenDrop, 1);
    let lost = DeliveryCtx::for_test("issue-12/announce/r2");
    a.deliver(&simple(), &lost).await.unwrap_err();
    match a.find_existing(&simple(), &lost).await.unwrap() {
        Reconciled::CannotCheck(why) => assert!(why.contains("channels:history"), "{why}"),
        other => panic!("no history scope, no check: {other:?}"),
    }
    assert_eq!(a.deliver(&simple(), &lost).await.unwrap_err().kind(), Kind::UnknownOutcome);
    assert_eq!(f.messages().len(), 2, "never resent blindly");
}

#[tokio::test]
async fn bot_mode_reads_every_page_of_history() {
    let f = SlackFake::start().await.unwrap();
    f.faults.push("POST /api/chat.postMessage", Fault::AcceptThenDrop, 1);
    let a = bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "");
    let c = ctx();
    a.deliver(&simple(), &c).await.unwrap_err();
    // 450 later messages: ours is on the third page of 200.
    for i in 0..450 {
        webhook(&f.webhook_url(), "").deliver(&simple(), &DeliveryCtx::for_test(&format!("x/y/r{i}"))).await.unwrap();
    }
    assert!(matches!(a.find_existing(&simple(), &c).await.unwrap(), Reconciled::Found(_)));
}

#[tokio::test]
async fn webhook_mode_cannot_check_a_lost_answer_and_says_why() {
    let f = SlackFake::start().await.unwrap();
    f.faults.push("POST", Fault::AcceptThenDrop, 1);
    let a = webhook(&f.webhook_url(), "");
    let e = a.deliver(&simple(), &ctx()).await.unwrap_err();
    assert!(matches!(e.kind(), Kind::UnknownOutcome | Kind::Retryable), "{e}");
    assert_eq!(f.messages().len(), 1, "the post exists");
    match a.find_existing(&simple(), &ctx()).await.unwrap() {
        Reconciled::CannotCheck(why) => assert!(why.contains("cannot read the channel"), "{why}"),
        other => panic!("a webhook cannot look the message up: {other:?}"),
    }
}

/// The fake refuses what Slack refuses, in Slack's shapes (checked with plain HTTP, not the adapter).
#[tokio::test]
async fn the_fake_is_as_strict_as_slack() {
    let f = SlackFake::start().await.unwrap();
    let c = herald::channel::http::client();
    let api = |m: &str| format!("{}/{m}", f.api_base());
    let j = |r: reqwest::Response| async move { (r.status().as_u16(), r.json::<Value>().await.unwrap()) };
    // No token, a wrong one, a token in a JSON body (not read).
    let (s, v) = j(c.post(api("chat.postMessage")).json(&json!({"channel": fake::CHANNEL_ID, "text": "x"})).send().await.unwrap()).await;
    assert_eq!((s, v["ok"].clone(), v["error"].clone()), (200, json!(false), json!("not_authed")));
    let (_, v) = j(c.post(api("chat.postMessage")).json(&json!({"token": fake::BOT_TOKEN, "channel": fake::CHANNEL_ID, "text": "x"})).send().await.unwrap()).await;
    assert_eq!(v["error"], "not_authed");
    let (_, v) = j(c.post(api("chat.postMessage")).bearer_auth("xoxb-wrong").json(&json!({"channel": fake::CHANNEL_ID, "text": "x"})).send().await.unwrap()).await;
    assert_eq!(v["error"], "invalid_auth");
    // Required fields, metadata's format, blocks' limits, the content type.
    let post = |body: Value| c.post(api("chat.postMessage")).bearer_auth(fake::BOT_TOKEN).json(&body).send();
    assert_eq!(j(post(json!({"channel": fake::CHANNEL_ID})).await.unwrap()).await.1["error"], "no_text");
    assert_eq!(j(post(json!({"channel": "C0NOWHERE1", "text": "x"})).await.unwrap()).await.1["error"], "channel_not_found");
    assert_eq!(j(post(json!({"channel": fake::CHANNEL_ID, "text": "x", "metadata": {"event_type": "bad type!", "event_payload": {}}})).await.unwrap()).await.1["error"], "invalid_metadata_format");
    let (_, v) = j(post(json!({"channel": fake::CHANNEL_ID, "text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(3001)}}]})).await.unwrap()).await;
    assert_eq!(v["error"], "invalid_blocks");
    assert!(v["errors"][0].as_str().unwrap().contains("/blocks/0/text/text"), "{v}");
    let (_, v) = j(c.post(api("chat.postMessage")).bearer_auth(fake::BOT_TOKEN).header("content-type", "text/plain").body("x").send().await.unwrap()).await;
    assert_eq!(v["error"], "invalid_post_type");
    let (_, v) = j(c.post(api("chat.postMessage")).bearer_auth(fake::BOT_TOKEN).header("content-type", "application/json").body(r#"{"channel":"C0HERALD01","text":"x"}"#).send().await.unwrap()).await;
    assert_eq!((v["ok"].clone(), v["warning"].clone()), (json!(true), json!("missing_charset")));
    // A form works too, with blocks and metadata as JSON strings, and the token as a field.
    let form = [("token", fake::BOT_TOKEN), ("channel", "#herald-news"), ("text", "y"), ("metadata", r#"{"event_type":"herald_delivery","event_payload":{"key":"k1"}}"#)];
    let (_, v) = j(c.post(api("chat.postMessage")).form(&form).send().await.unwrap()).await;
    assert_eq!((v["ok"].clone(), v["channel"].clone()), (json!(true), json!(fake::CHANNEL_ID)), "{v}");
    assert_eq!(v["message"]["metadata"]["event_payload"]["key"], "k1");
    // Text past 40,000 characters is truncated, as Slack does.
    j(post(json!({"channel": fake::CHANNEL_ID, "text": "z".repeat(40_010)})).await.unwrap()).await;
    assert_eq!(f.messages().last().unwrap().text.chars().count(), 40_000);
    // History: metadata only with include_all_metadata; cursor pagination; scopes; ids only.
    let hist = |token: &str, params: Vec<(&str, String)>| c.post(api("conversations.history")).bearer_auth(token).form(&params).send();
    let (_, v) = j(hist(fake::BOT_TOKEN, vec![("channel", fake::CHANNEL_ID.into())]).await.unwrap()).await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 3);
    assert!(v["messages"].as_array().unwrap().iter().all(|m| m.get("metadata").is_none()), "{v}");
    let (_, v) = j(hist(fake::BOT_TOKEN, vec![("channel", fake::CHANNEL_ID.into()), ("include_all_metadata", "true".into()), ("limit", "2".into())]).await.unwrap()).await;
    assert_eq!(v["messages"][1]["metadata"]["event_payload"]["key"], "k1", "newest first: {v}");
    assert_eq!(v["has_more"], true);
    let cursor = v["response_metadata"]["next_cursor"].as_str().unwrap().to_string();
    let (_, v) = j(hist(fake::BOT_TOKEN, vec![("channel", fake::CHANNEL_ID.into()), ("limit", "2".into()), ("cursor", cursor)]).await.unwrap()).await;
    assert_eq!((v["messages"].as_array().unwrap().len(), v["has_more"].clone()), (1, json!(false)), "{v}");
    assert_eq!(j(hist(fake::BOT_TOKEN, vec![("channel", fake::CHANNEL_ID.into()), ("cursor", "bm90IG91cnM=".into())]).await.unwrap()).await.1["error"], "invalid_cursor");
    let (_, v) = j(hist(fake::WRITE_ONLY_TOKEN, vec![("channel", fake::CHANNEL_ID.into())]).await.unwrap()).await;
    assert_eq!((v["error"].clone(), v["needed"].clone()), (json!("missing_scope"), json!("channels:history")));
    assert_eq!(j(hist(fake::BOT_TOKEN, vec![("channel", "#herald-news".into())]).await.unwrap()).await.1["error"], "channel_not_found");
    // The webhook: text answers, JSON or a `payload` form only.
    let r = c.post(f.webhook_url()).header("content-type", "text/plain").body("hi").send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (400, "invalid_payload".to_string()));
    let r = c.post(f.webhook_url()).json(&json!({"unfurl_links": true})).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (400, "no_text".to_string()));
    let r = c.post(f.webhook_url()).form(&[("payload", r#"{"text":"hi"}"#)]).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "ok".to_string()));
}

#[tokio::test]
async fn secrets_never_show_in_errors() {
    // Nothing listens on port 9: reqwest would print the URL, whose path is the secret.
    let e = webhook(&format!("http://127.0.0.1:9/services/{}/{}/{}", fake::TEAM_ID, fake::HOOK_ID, fake::HOOK_SECRET), "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable, "{e}");
    assert!(!e.message().contains(fake::HOOK_SECRET), "{e}");
    // A service echoing the secret or the token in its error is blanked by the redactor.
    let f = SlackFake::start().await.unwrap();
    f.faults.push("POST /services", Fault::Status { code: 400, body: format!("invalid_payload {}", fake::HOOK_SECRET), headers: vec![] }, 1);
    let e = webhook(&f.webhook_url(), "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert!(!e.message().contains(fake::HOOK_SECRET) && e.message().contains("[redacted]"), "{e}");
    f.faults.push("POST /api", Fault::Status { code: 500, body: format!("internal_error for {}", fake::BOT_TOKEN), headers: vec![] }, 1);
    let e = bot(&f, fake::BOT_TOKEN, fake::CHANNEL_ID, "").deliver(&simple(), &ctx()).await.unwrap_err();
    assert!(!e.message().contains(fake::BOT_TOKEN) && e.message().contains("[redacted]"), "{e}");
}

#[test]
fn build_errors_name_the_key_not_the_secret() {
    let cfg: ChannelConfig = toml::from_str("type = \"slack\"\nbot_token = \"${SLACK_TOKEN}\"\nchannel = \"#general\"").unwrap();
    let ctx = BuildCtx { env: Box::new(|k| (k == "SLACK_TOKEN").then(|| "xoxb-secret-value-123".to_string())), ..BuildCtx::from_env(std::env::temp_dir()) };
    let e = build_adapter("announce", &cfg, &ctx).err().expect("a #name is not an id").to_string();
    assert!(e.contains("`channel`") && e.contains("Channel ID") && !e.contains("xoxb-secret-value-123"), "{e}");
    let cfg: ChannelConfig = toml::from_str("type = \"slack\"\nwebhook_url = \"${SLACK_HOOK}\"").unwrap();
    let ctx = BuildCtx { env: Box::new(|k| (k == "SLACK_HOOK").then(|| "https://example.com/hooks/secret-hook-path".to_string())), ..BuildCtx::from_env(std::env::temp_dir()) };
    let e = build_adapter("announce", &cfg, &ctx).err().expect("not a webhook URL").to_string();
    assert!(e.contains("webhook_url") && !e.contains("secret-hook-path"), "{e}");
}

#[test]
fn the_validator_wants_one_way_to_post() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("herald.toml");
    std::fs::write(&p, "[channels.team]\ntype = \"slack\"\n\n[channels.bot]\ntype = \"slack\"\nbot_token = \"${T}\"\n").unwrap();
    let Err(e) = herald::config::load(&p) else { panic!("refused") };
    let e = e.to_string();
    assert!(e.contains("channels.team.webhook_url") && e.contains("bot_token"), "{e}");
    assert!(e.contains("channels.bot.channel") && e.contains("C0123456789"), "{e}");
    // Both ways at once: refused, naming the bot's key, the file and the line.
    std::fs::write(&p, "[channels.both]\ntype = \"slack\"\nwebhook_url = \"${H}\"\nbot_token = \"${T}\"\nchannel = \"C0123456789\"\n").unwrap();
    let Err(e) = herald::config::load(&p) else { panic!("both ways refused") };
    let e = e.to_string();
    assert!(e.contains("channels.both.bot_token") && e.contains("not both") && e.contains("herald.toml:4"), "{e}");
}

/// In the pipeline, each class ends in its state; a lost answer in bot mode reconciles to one
/// message, in webhook mode stays unconfirmed; the secrets are nowhere in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_pipeline_each_error_class_ends_in_its_state() {
    let db = TestDb::sqlite().await;
    let f: Vec<SlackFake> = futures::future::join_all((0..7).map(|_| SlackFake::start())).await.into_iter().map(Result::unwrap).collect();
    let (ok, auth, bad, limited, hang, dropped_bot, dropped_hook) = (&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]);
    limited.faults.push("POST /api/chat.postMessage", Fault::Status { code: 429, body: r#"{"ok":false,"error":"ratelimited"}"#.into(), headers: vec![("retry-after".into(), "1".into())] }, 1);
    hang.faults.push("POST", Fault::AcceptThenStall(Duration::from_secs(3)), 1);
    dropped_bot.faults.push("POST /api/chat.postMessage", Fault::AcceptThenDrop, 1);
    dropped_hook.faults.push("POST", Fault::AcceptThenDrop, 1);
    let secrets = db.dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let mut text = format!("[store]\nurl = \"{}\"\n[retry]\nschedule_secs = [0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\n", db.url);
    let tok = |name: &str, token: &str| {
        let p = secrets.join(name);
        std::fs::write(&p, token).unwrap();
        p.display().to_string()
    };
    let bot_table = |name: &str, fk: &SlackFake, token: &str, channel: &str, extra: &str| {
        format!("\n[channels.{name}]\ntype = \"slack\"\nbot_token_file = \"{}\"\nchannel = \"{channel}\"\napi_base = \"{}\"\n{extra}", tok(name, token), fk.api_base())
    };
    text.push_str(&bot_table("ok", ok, fake::BOT_TOKEN, fake::CHANNEL_ID, ""));
    text.push_str(&bot_table("auth", auth, fake::REVOKED_TOKEN, fake::CHANNEL_ID, ""));
    text.push_str(&bot_table("bad", bad, fake::BOT_TOKEN, fake::NOT_MEMBER_CHANNEL_ID, ""));
    text.push_str(&bot_table("limited", limited, fake::BOT_TOKEN, fake::CHANNEL_ID, ""));
    text.push_str(&format!("\n[channels.hang]\ntype = \"slack\"\nwebhook_url_file = \"{}\"\ntimeout_secs = 1\n", tok("hang", &hang.webhook_url())));
    text.push_str(&bot_table("dropped_bot", dropped_bot, fake::BOT_TOKEN, fake::CHANNEL_ID, ""));
    text.push_str(&format!("\n[channels.dropped_hook]\ntype = \"slack\"\nwebhook_url_file = \"{}\"\n", tok("dropped_hook", &dropped_hook.webhook_url())));
    let (p, ds, parsed) = crate::pipeline::publish_and_settle(&db, &text, "unicode-edge.md").await;
    let row = |n: &str| ds.iter().find(|d| d.channel == n).unwrap_or_else(|| panic!("{n}: {ds:?}"));
    let outcomes = |n: &str| {
        let id = row(n).id;
        let p = p.clone();
        async move { p.store.attempts(id).await.unwrap().into_iter().map(|a| a.outcome).collect::<Vec<_>>() }
    };
    assert_eq!(row("ok").state, "sent", "{:?}", row("ok"));
    let m = &ok.messages()[0];
    assert_eq!(row("ok").remote_id.as_deref(), Some(format!("{}/{}", fake::CHANNEL_ID, m.ts).as_str()));
    // The shipped template went out: the title as the header, mrkdwn links, one section per
    // issue section after the summary, and the delivery key in the metadata.
    assert_eq!(m.body["blocks"][0]["text"]["text"], json!(parsed.meta.title), "{}", m.body);
    assert_eq!(m.body["blocks"].as_array().unwrap().len(), 2 + parsed.sections.len(), "{}", m.body);
    assert!(m.text.contains("|Read the issue>"), "{}", m.text);
    assert_eq!(m.metadata.as_ref().unwrap()["event_payload"]["key"], json!(row("ok").delivery_key));
    assert_eq!((row("auth").state.as_str(), outcomes("auth").await.last().unwrap().as_str()), ("failed", "needs_auth"), "{:?}", row("auth"));
    assert_eq!((row("bad").state.as_str(), outcomes("bad").await.last().unwrap().as_str()), ("failed", "permanent"), "{:?}", row("bad"));
    assert_eq!(row("limited").state, "sent", "{:?}", row("limited"));
    assert_eq!(row("limited").rate_limited_waits, 1, "{:?}", row("limited"));
    assert_eq!(limited.messages().len(), 1);
    assert_eq!(row("hang").state, "unconfirmed", "{:?}", row("hang"));
    assert_eq!(hang.messages().len(), 1, "posted once, never resent blindly");
    assert_eq!(row("dropped_bot").state, "sent", "{:?}", row("dropped_bot"));
    assert_eq!(outcomes("dropped_bot").await.last().map(String::as_str), Some("reconciled"), "{:?}", outcomes("dropped_bot").await);
    assert_eq!(dropped_bot.messages().len(), 1, "reconciled to exactly one message");
    assert_eq!(row("dropped_bot").remote_id.as_deref(), Some(format!("{}/{}", fake::CHANNEL_ID, dropped_bot.messages()[0].ts).as_str()));
    assert_eq!(row("dropped_hook").state, "unconfirmed", "{:?}", row("dropped_hook"));
    assert!(row("dropped_hook").last_error.as_deref().unwrap_or_default().contains("cannot read the channel"), "{:?}", row("dropped_hook"));
    assert_eq!(dropped_hook.messages().len(), 1, "posted once, never resent blindly");
    for d in &ds {
        let s = format!("{d:?}");
        assert!(!s.contains(fake::BOT_TOKEN) && !s.contains(fake::HOOK_SECRET), "{d:?}");
    }
    drop(p);
    let mut todo = vec![db.dir.path().to_path_buf()];
    let mut read = 0;
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if !path.starts_with(&secrets) && path.to_string_lossy().contains("herald.db") {
                let Ok(bytes) = std::fs::read(&path) else { continue };
                for s in [fake::BOT_TOKEN, fake::HOOK_SECRET] {
                    assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "a secret is in {}", path.display());
                }
                read += 1;
            }
        }
    }
    assert!(read > 0, "the store's files were read");
}
