//! Telegram adapter against the Telegram fake (built from the Bot API docs), through the whole
//! pipeline and store: the exact `sendMessage` payload, a long issue split into several valid
//! messages, each error class ending in its state, an answer lost after the message was
//! accepted ending `unconfirmed` (the Bot API cannot be asked), and the token (which travels in
//! the URL path) never in the store, the errors or the logs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herald::channel::{Adapter, BuildCtx, Checkpoint, DeliveryCtx, Kind, MemoryCheckpoint, Reconciled};
use herald::config::ChannelConfig;
use herald::jobs::Pipeline;
use herald::jobs::worker::WaitEnd;
use herald::sandbox::fault::Fault;
use herald::sandbox::telegram::{self as fake, TelegramFake, parse_html};
use herald::store::State;

use crate::pipeline::{TestDb, issue_copy, publish_and_wait, write_config};

/// A config with one Telegram channel `tg` pointed at `base`, its token in a file.
fn config(db: &TestDb, base: &str, token: &str, chat_id: &str, extra: &str) -> String {
    let token_file = db.dir.path().join("tg.token");
    std::fs::write(&token_file, token).unwrap();
    format!(
        "[store]\nurl = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[retry]\nschedule_secs = [0, 0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\nrate_limit_ceiling_secs = 30\n\n\
         [channels.tg]\ntype = \"telegram\"\napi_base = \"{base}\"\nbot_token_file = \"{}\"\nchat_id = \"{chat_id}\"\ntimeout_secs = 1\nutm = false\n{extra}\n",
        db.url,
        token_file.display()
    )
}

async fn run(db: &TestDb, text: &str, issue: &str) -> (Arc<Pipeline>, herald::store::DeliveryRow) {
    run_path(db, text, &issue_copy(db, issue)).await
}

async fn run_path(db: &TestDb, text: &str, issue: &Path) -> (Arc<Pipeline>, herald::store::DeliveryRow) {
    let (_, cfg) = write_config(db, text);
    let p = Arc::new(Pipeline::open(cfg).await.unwrap());
    assert_eq!(publish_and_wait(&p, issue).await, WaitEnd::Settled);
    let ds = p.store.list_deliveries(None, &[]).await.unwrap();
    assert_eq!(ds.len(), 1);
    (p.clone(), ds[0].clone())
}

/// Everything the store holds about the deliveries, as text (rows and attempts).
async fn store_text(p: &Pipeline) -> String {
    let mut out = String::new();
    for d in p.store.list_deliveries(None, &[]).await.unwrap() {
        out.push_str(&format!("{d:?}\n"));
        for a in p.store.attempts(d.id).await.unwrap() {
            out.push_str(&format!("{a:?}\n"));
        }
    }
    out
}

/// The short: one `sendMessage` with exactly the documented fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_sends_exactly_the_documented_payload() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    let (p, d) = run(&db, &config(&db, &f.base_url, fake::BOT_TOKEN, fake::CHANNEL, ""), "minimal.md").await;
    assert_eq!(d.state(), State::Sent, "{d:?}");
    let m = f.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].chat_id, serde_json::json!("@herald_sandbox"));
    assert_eq!(m[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(
        m[0].text,
        "<b>A short one</b>\n\nOnly the required keys and one paragraph.\n\n<a href=\"https://news.example.com/2026/minimal\">Read the issue</a>"
    );
    assert_eq!(m[0].parsed, "A short one\n\nOnly the required keys and one paragraph.\n\nRead the issue");
    assert_eq!(
        m[0].link_preview_options,
        Some(serde_json::json!({ "is_disabled": false, "url": "https://news.example.com/2026/minimal" }))
    );
    assert_eq!(m[0].reply_parameters, None);
    assert_eq!(d.remote_id.as_deref(), Some(m[0].message_id.to_string().as_str()));
    assert_eq!(d.remote_url.as_deref(), Some(format!("https://t.me/herald_sandbox/{}", m[0].message_id).as_str()));
    p.close().await;
}

/// `link_preview = false` and a numeric chat id are sent as Telegram takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_chat_id_and_no_preview() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    let text = config(&db, &f.base_url, fake::BOT_TOKEN, &fake::CHANNEL_ID.to_string(), "link_preview = false");
    let (p, d) = run(&db, &text, "minimal.md").await;
    assert_eq!(d.state(), State::Sent, "{d:?}");
    let m = f.messages();
    assert_eq!(m[0].chat_id, serde_json::json!(fake::CHANNEL_ID));
    assert_eq!(m[0].link_preview_options, Some(serde_json::json!({ "is_disabled": true })));
    p.close().await;
}

/// An issue whose section is far over 4096 characters, with markup: `format = "thread"` sends
/// several messages, in order, each valid HTML by Telegram's rules (the fake parses them) and
/// each at most 4096 characters after entity parsing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_issue_is_split_into_several_valid_messages() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    f.set_rate_limit(1000, Duration::from_secs(60));
    let para = "Teams & tools <moved> here: the **new release** ships a faster parser, see [the notes](https://example.com/notes?a=1&b=2). It is 😀 good.";
    let body: Vec<String> = (0..90).map(|i| format!("Paragraph {i}. {para}")).collect();
    let issue = format!(
        "+++\ntitle = \"Long & <odd>\"\nslug = \"long\"\ndate = 2026-11-02\nurl = \"https://news.example.com/2026/long\"\nsummary = \"A long one.\"\n+++\n\nIntro.\n\n## The big section\n\n{}\n\n## A small one\n\nShort.\n",
        body.join("\n\n")
    );
    let path = db.dir.path().join("long.md");
    std::fs::write(&path, issue).unwrap();
    let (p, d) = run_path(&db, &config(&db, &f.base_url, fake::BOT_TOKEN, fake::CHANNEL, "format = \"thread\""), &path).await;
    assert_eq!(d.state(), State::Sent, "{d:?}");
    let m = f.messages();
    assert!(m.len() >= 4, "intro, the big section in several parts, the small one: {}", m.len());
    let total = m.len();
    for (i, msg) in m.iter().enumerate() {
        let parsed = parse_html(&msg.text).unwrap_or_else(|e| panic!("message {i} is not valid Telegram HTML: {e}\n{}", msg.text));
        assert!(parsed.trim().encode_utf16().count() <= fake::MAX_TEXT, "message {i}: {}", parsed.encode_utf16().count());
        assert!(msg.text.ends_with(&format!(" {}/{total}", i + 1)), "counter on {i}: {}", msg.text);
        // Only the first message carries the preview.
        assert_eq!(msg.link_preview_options.as_ref().unwrap()["is_disabled"], serde_json::json!(i != 0));
    }
    assert!(m[0].parsed.starts_with("Long & <odd>"), "{}", m[0].parsed);
    assert!(m[1].parsed.starts_with("The big section"), "{}", m[1].parsed);
    assert!(m[m.len() - 1].parsed.starts_with("A small one"));
    // In order: message ids ascending, and the big section's text continues across its parts.
    assert!(m.windows(2).all(|w| w[0].message_id < w[1].message_id));
    let big: String = m[1..m.len() - 1].iter().map(|x| x.parsed.clone()).collect::<Vec<_>>().join(" ");
    for i in [0, 45, 89] {
        assert!(big.contains(&format!("Paragraph {i}.")), "paragraph {i} missing");
    }
    p.close().await;
}

/// 401: a token Telegram doesn't know → `failed`, `needs_auth`, one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_needs_auth_and_is_never_stored() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    let bad = "7000000001:AAHwrongTokenWrongTokenWrongToken999";
    let (p, d) = run(&db, &config(&db, &f.base_url, bad, fake::CHANNEL, ""), "minimal.md").await;
    assert_eq!((d.state(), d.attempts, d.last_status), (State::Failed, 1, Some(401)), "{d:?}");
    let a = p.store.attempts(d.id).await.unwrap();
    assert_eq!(a[0].outcome, "needs_auth");
    assert!(d.last_error.as_deref().unwrap().contains("@BotFather"), "{d:?}");
    let text = store_text(&p).await;
    assert!(!text.contains(bad) && !text.contains("AAHwrongToken"), "the token is in the store: {text}");
    assert!(f.messages().is_empty());
    p.close().await;
}

/// 400 "chat not found" → `failed`, `permanent`, Telegram's words kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_chat_is_permanent() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    let (p, d) = run(&db, &config(&db, &f.base_url, fake::BOT_TOKEN, "@not_our_channel", ""), "minimal.md").await;
    assert_eq!((d.state(), d.attempts, d.last_status), (State::Failed, 1, Some(400)), "{d:?}");
    assert_eq!(p.store.attempts(d.id).await.unwrap()[0].outcome, "permanent");
    assert!(d.last_error.as_deref().unwrap().contains("chat not found"), "{d:?}");
    p.close().await;
}

/// 403 "bot is not a member of the channel chat": the token is good, so not `needs_auth`:
/// `failed` as `forbidden`, saying to add the bot as an admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_without_rights_is_forbidden_not_needs_auth() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    f.set_bot_admin(false);
    let (p, d) = run(&db, &config(&db, &f.base_url, fake::BOT_TOKEN, fake::CHANNEL, ""), "minimal.md").await;
    assert_eq!((d.state(), d.attempts, d.last_status), (State::Failed, 1, Some(403)), "{d:?}");
    assert_eq!(p.store.attempts(d.id).await.unwrap()[0].outcome, "forbidden");
    let e = d.last_error.unwrap();
    assert!(e.contains("not a member") && e.contains("administrator"), "{e}");
    p.close().await;
}

/// 429 with `parameters.retry_after` (no header): the wait is Telegram's, then `sent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_retry_after_then_sends() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#;
    f.faults.push("/sendMessage", Fault::Status { code: 429, body: body.into(), headers: vec![] }, 1);
    let (p, d) = run(&db, &config(&db, &f.base_url, fake::BOT_TOKEN, fake::CHANNEL, ""), "minimal.md").await;
    assert_eq!(d.state(), State::Sent, "{d:?}");
    assert_eq!((d.attempts, d.rate_limited_waits), (1, 1));
    let a = p.store.attempts(d.id).await.unwrap();
    assert_eq!((a[0].outcome.as_str(), a[0].status_code), ("rate_limited", Some(429)));
    let delay = a[0].next_attempt_at.unwrap() - (a[0].started_at + a[0].duration_ms);
    assert!((2_900..=3_600).contains(&delay), "retry_after 3 s honoured: {delay} ms");
    assert_eq!(f.messages().len(), 1);
    p.close().await;
}

/// The fake's own rate (20 a minute per chat) answers the documented 429 shape too.
#[tokio::test]
async fn the_fakes_own_rate_limit_answers_retry_after() {
    let f = TelegramFake::start().await.unwrap();
    f.set_rate_limit(1, Duration::from_secs(30));
    let a = adapter(&f.base_url, fake::BOT_TOKEN);
    let cp = Arc::new(MemoryCheckpoint::default());
    a.deliver(&rendering(&["<b>one</b>"]), &ctx(&cp, "k1")).await.unwrap();
    let cp = Arc::new(MemoryCheckpoint::default());
    let e = a.deliver(&rendering(&["<b>two</b>"]), &ctx(&cp, "k2")).await.unwrap_err();
    assert_eq!(e.kind(), Kind::RateLimited, "{e}");
    assert!(e.retry_after().is_some_and(|d| d > Duration::from_secs(20)), "{:?}", e.retry_after());
}

/// The message was accepted and the answer lost (dropped, or past the timeout): the Bot API
/// can't be asked whether it arrived, so the delivery ends `unconfirmed`, never sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_then_drop_ends_unconfirmed_without_a_second_message() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    f.faults.push("/sendMessage", Fault::AcceptThenDrop, 1);
    let (p, d) = run(&db, &config(&db, &f.base_url, fake::BOT_TOKEN, fake::CHANNEL, ""), "minimal.md").await;
    assert_eq!(d.state(), State::Unconfirmed, "{d:?}");
    assert_eq!(d.next_attempt_at, None, "waits for the operator");
    assert!(d.last_error.as_deref().unwrap().contains("cannot list"), "{d:?}");
    assert_eq!(f.messages().len(), 1, "accepted once, never re-sent");
    assert_eq!(f.send_calls(), 1);
    p.close().await;
}

/// A timeout (the fake answers after `timeout_secs`): unknown outcome, then `unconfirmed`; the
/// token is in no error and nowhere in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_unconfirmed_and_the_token_is_nowhere() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    f.faults.push("/sendMessage", Fault::Delay(Duration::from_millis(2500)), 1);
    let (p, d) = run(&db, &config(&db, &f.base_url, fake::BOT_TOKEN, fake::CHANNEL, ""), "minimal.md").await;
    assert_eq!(d.state(), State::Unconfirmed, "{d:?}");
    let a = p.store.attempts(d.id).await.unwrap();
    assert_eq!(a[0].outcome, "unknown_outcome", "{a:?}");
    let text = store_text(&p).await;
    assert!(!text.contains(fake::BOT_TOKEN), "the token is in the store: {text}");
    assert!(!text.contains("AAHsandbox"), "part of the token is in the store: {text}");
    p.close().await;
}

fn adapter(base: &str, token: &str) -> Arc<dyn Adapter> {
    adapter_for_chat(base, token, "@herald_sandbox")
}

fn adapter_for_chat(base: &str, token: &str, chat: &str) -> Arc<dyn Adapter> {
    let toml = format!("type = \"telegram\"\napi_base = \"{base}\"\nbot_token = \"${{TG_TOKEN}}\"\nchat_id = \"{chat}\"\ntimeout_secs = 1\n");
    let cfg: ChannelConfig = toml::from_str(&toml).expect("channel config parses");
    let token = token.to_string();
    let ctx = BuildCtx {
        env: Box::new(move |k| (k == "TG_TOKEN").then(|| token.clone())),
        base_dir: std::env::temp_dir(),
        timeout: Duration::from_secs(1),
        vault: None,
    };
    herald::channel::telegram::build("tg", &cfg, &ctx).expect("adapter builds")
}

fn rendering(texts: &[&str]) -> herald::render::Rendering {
    use herald::render::{Post, PostsRendering, Rendering};
    Rendering::Posts(PostsRendering {
        posts: texts.iter().map(|t| Post { text: t.to_string(), facets: vec![], entities: vec![], count: 0, limit: 4096 }).collect(),
        card: None,
    })
}

fn ctx(cp: &Arc<MemoryCheckpoint>, key: &str) -> DeliveryCtx {
    DeliveryCtx { key: key.into(), delivery_id: 1, issue: "i".into(), channel: "tg".into(), attempt: 1, checkpoint: cp.clone() as Arc<dyn Checkpoint> }
}

/// A transport error prints the request's URL, which holds the token: the adapter's errors
/// never do (connection refused, and a timeout).
#[tokio::test]
async fn transport_errors_never_print_the_token() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let a = adapter(&format!("http://127.0.0.1:{port}"), fake::BOT_TOKEN);
    let cp = Arc::new(MemoryCheckpoint::default());
    let e = a.deliver(&rendering(&["hi"]), &ctx(&cp, "k")).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable, "{e}");
    assert!(e.message().contains("<bot_token>"), "the URL is shown, without the token: {e}");
    assert!(!e.to_string().contains(fake::BOT_TOKEN), "{e}");
    let h = a.healthcheck().await.unwrap_err();
    assert!(!h.to_string().contains(fake::BOT_TOKEN), "{h}");

    let f = TelegramFake::start().await.unwrap();
    f.faults.push("/sendMessage", Fault::Hang(Duration::from_secs(3)), 1);
    let a = adapter(&f.base_url, fake::BOT_TOKEN);
    let cp = Arc::new(MemoryCheckpoint::default());
    let e = a.deliver(&rendering(&["hi"]), &ctx(&cp, "k")).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "{e}");
    assert!(!e.to_string().contains(fake::BOT_TOKEN), "{e}");
    // Reconciling says plainly that Telegram can't be checked.
    let Reconciled::CannotCheck(why) = a.find_existing(&rendering(&["hi"]), &ctx(&cp, "k")).await.unwrap() else { panic!("expected CannotCheck") };
    assert!(why.contains("cannot list"), "{why}");
}

/// What the fake refuses, Telegram refuses: an unsupported tag is a permanent 400.
#[tokio::test]
async fn unsupported_html_is_refused_as_telegram_does() {
    let f = TelegramFake::start().await.unwrap();
    let a = adapter(&f.base_url, fake::BOT_TOKEN);
    let cp = Arc::new(MemoryCheckpoint::default());
    let e = a.deliver(&rendering(&["<p>para</p>"]), &ctx(&cp, "k")).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent, "{e}");
    assert!(e.message().contains("can't parse entities"), "{e}");
    assert!(f.messages().is_empty());
    a.healthcheck().await.unwrap();
}

/// Every sample issue, both formats, renders into messages the fake accepts (valid HTML by
/// Telegram's rules, each within 4096 after parsing).
#[tokio::test]
async fn every_sample_issue_renders_into_messages_the_fake_accepts() {
    for format in ["short", "thread"] {
        let f = TelegramFake::start().await.unwrap();
        f.set_rate_limit(1000, Duration::from_secs(60));
        let a = adapter(&f.base_url, fake::BOT_TOKEN);
        // The sample issues name the other channels in their front matter: configure them all.
        let (_dir, path) = crate::util::temp_config(&format!(
            "{}\n[channels.telegram]\ntype = \"telegram\"\nbot_token = \"${{TG_TOKEN}}\"\nchat_id = \"@herald_sandbox\"\nformat = \"{format}\"\n",
            crate::util::all_channels_toml(format)
        ));
        let cfg = herald::config::load(&path).expect("config loads");
        let mut expected = 0;
        for issue_path in crate::util::sample_issues() {
            let issue = herald::issue::parse_file(&issue_path).expect("sample issue parses");
            for r in herald::render::engine::render_channels(&issue, &cfg, &["telegram".to_string()]).expect("renders") {
                expected += r.rendering.posts().expect("posts").posts.len();
                let cp = Arc::new(MemoryCheckpoint::default());
                a.deliver(&r.rendering, &ctx(&cp, &format!("{}/{format}", issue.meta.slug)))
                    .await
                    .unwrap_or_else(|e| panic!("{} ({format}): {e}", issue_path.display()));
            }
        }
        assert!(expected > 0);
        assert_eq!(f.messages().len(), expected, "{format}");
    }
}

/// The CLI at full verbosity (`HERALD_LOG=trace`, so reqwest and hyper log too), a message whose
/// answer is lost, then a bot that is refused: the token appears in no log line, no output, and
/// nowhere in the store's file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_in_no_log_output_or_store_file() {
    let db = TestDb::sqlite().await;
    let f = TelegramFake::start().await.unwrap();
    f.faults.push("/sendMessage", Fault::AcceptThenDrop, 1);
    let (cfg, _) = write_config(&db, &config(&db, &f.base_url, fake::BOT_TOKEN, fake::CHANNEL, ""));
    let mut all = String::new();
    for issue in ["minimal.md", "unicode-edge.md"] {
        let o = std::process::Command::new(crate::pipeline::herald_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["publish"])
            .arg(issue_copy(&db, issue))
            .args(["--wait", "--timeout", "30"])
            .env("HERALD_LOG", "trace")
            .env_remove("HERALD_CONFIG")
            .output()
            .expect("run herald");
        all.push_str(&String::from_utf8_lossy(&o.stdout));
        all.push_str(&String::from_utf8_lossy(&o.stderr));
        f.set_bot_admin(false);
    }
    assert!(all.contains("sendMessage") || all.contains("Telegram") || all.contains("tg"), "the run logged something: {all}");
    assert!(all.contains("unconfirmed"), "the lost answer ended unconfirmed: {all}");
    assert!(!all.contains(fake::BOT_TOKEN), "the token is in the logs");
    assert!(!all.contains("AAHsandboxTelegramToken"), "part of the token is in the logs");
    let mut store_bytes = Vec::new();
    for e in std::fs::read_dir(db.dir.path().join("data")).unwrap() {
        store_bytes.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    assert!(!store_bytes.is_empty());
    assert!(!String::from_utf8_lossy(&store_bytes).contains("AAHsandboxTelegramToken"), "the token is in the store's files");
    assert_eq!(f.messages().len(), 1, "one message accepted, never re-sent");
}

/// The health check asks `getMe` (the token) and `getChat` (the channel), and sends nothing:
/// the right token and channel pass, by `@username` or numeric id; a wrong token needs auth; a
/// channel the bot cannot see is permanent, in Telegram's words; an outage is retryable.
#[tokio::test]
async fn healthcheck_checks_the_token_and_the_channel_and_sends_nothing() {
    let f = TelegramFake::start().await.unwrap();
    adapter(&f.base_url, fake::BOT_TOKEN).healthcheck().await.expect("the right token and channel pass");
    adapter_for_chat(&f.base_url, fake::BOT_TOKEN, &fake::CHANNEL_ID.to_string()).healthcheck().await.expect("the numeric id passes");
    let e = adapter(&f.base_url, "7000000001:AAHwrongTokenwrongTokenwrongToken00").healthcheck().await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Auth, Some(401)), "{e}");
    let e = adapter_for_chat(&f.base_url, fake::BOT_TOKEN, "@not_our_channel").healthcheck().await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (Kind::Permanent, Some(400)), "{e}");
    assert!(e.message().contains("chat not found"), "{e}");
    f.faults.push("/getMe", Fault::Status { code: 502, body: "<html>Bad Gateway</html>".into(), headers: vec![] }, 1);
    let e = adapter(&f.base_url, fake::BOT_TOKEN).healthcheck().await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable, "{e}");
    assert!(!e.to_string().contains(fake::BOT_TOKEN), "{e}");
    assert_eq!((f.send_calls(), f.messages().len()), (0, 0), "a health check never sends");
}
