//! The exec adapter with the plugin scripts in tests/fixtures/plugins/, alone and in the pipeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::channel::{Adapter, BuildCtx, DeliveryCtx, Kind, Reconciled, build_adapter};
use herald::config::ChannelConfig;
use herald::render::{BodyRendering, Rendering};

use crate::pipeline::{TestDb, fast, issue_copy, write_config};

fn plugin(script: &str, timeout: u64) -> Arc<dyn Adapter> {
    let cfg: ChannelConfig = toml::from_str(&format!("type = \"exec\"\ncommand = [\"./{script}\"]\ntimeout_secs = {timeout}")).unwrap();
    build_adapter("plug", &cfg, &BuildCtx::from_env(crate::util::fixture("plugins"))).unwrap()
}

fn rendering() -> Rendering {
    Rendering::Body(BodyRendering { body: serde_json::json!({ "title": "Exec ✓", "n": 1 }) })
}

#[tokio::test]
async fn a_receipt_on_stdout_is_success() {
    let out = tempfile::tempdir().unwrap();
    let cfg: ChannelConfig = toml::from_str(&format!("type = \"exec\"\ncommand = [\"./post.sh\", \"{}\"]", out.path().display())).unwrap();
    let a = build_adapter("plug", &cfg, &BuildCtx::from_env(crate::util::fixture("plugins"))).unwrap();
    let mut ctx = DeliveryCtx::for_test("ex1/plug/r1");
    ctx.attempt = 2;
    let r = a.deliver(&rendering(), &ctx).await.unwrap();
    assert_eq!(r.remote_id, "plug-1");
    assert_eq!(r.url.as_deref(), Some("https://plugin.example/1"));
    let stdin: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("1.json")).unwrap()).unwrap();
    assert_eq!(stdin, serde_json::json!({ "body": { "title": "Exec ✓", "n": 1 } }), "the rendering JSON on stdin");
    assert_eq!(std::fs::read_to_string(out.path().join("1.env")).unwrap().trim(), "ex1/plug/r1 ex1 plug 2");
    assert!(matches!(a.find_existing(&rendering(), &ctx).await.unwrap(), Reconciled::CannotCheck(_)));
}

#[tokio::test]
async fn exit_codes_are_classified() {
    let ctx = DeliveryCtx::for_test("ex2/plug/r1");
    let e = plugin("tempfail.sh", 10).deliver(&rendering(), &ctx).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Retryable);
    assert!(e.message().contains("upstream busy"), "{e}");
    let e = plugin("reject.sh", 10).deliver(&rendering(), &ctx).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent);
    assert!(e.message().contains("exit 3") && e.message().contains("title too long"), "{e}");
    let e = plugin("garbage.sh", 10).deliver(&rendering(), &ctx).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome, "exit 0 without a receipt: {e}");
    let e = plugin("no-such-plugin.sh", 10).deliver(&rendering(), &ctx).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent);
}

#[tokio::test]
async fn a_plugin_past_its_timeout_is_killed_with_an_unknown_outcome() {
    let t = Instant::now();
    let e = plugin("hang.sh", 1).deliver(&rendering(), &DeliveryCtx::for_test("ex3/plug/r1")).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome);
    assert!(e.message().contains("killed"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "killed at the timeout, not at exit: {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_pipeline_a_tempfail_is_retried_and_a_timeout_waits_for_the_operator() {
    let db = TestDb::sqlite().await;
    let plugins = crate::util::fixture("plugins");
    let text = format!(
        "[store]\nurl = \"{}\"\n[retry]\nschedule_secs = [0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\n\n\
         [channels.busy]\ntype = \"exec\"\ncommand = [\"{p}/tempfail.sh\"]\n\n\
         [channels.slow]\ntype = \"exec\"\ncommand = [\"{p}/hang.sh\"]\ntimeout_secs = 1\nretry_schedule_secs = [0]\n",
        db.url,
        p = plugins.display()
    );
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
    let busy = ds.iter().find(|d| d.channel == "busy").unwrap();
    assert_eq!((busy.state.as_str(), busy.attempts), ("failed", 3), "schedule [0,0] = 3 attempts");
    assert!(busy.last_error.as_deref().unwrap().contains("gave up after 3 attempts"), "{busy:?}");
    let slow = ds.iter().find(|d| d.channel == "slow").unwrap();
    assert_eq!(slow.state.as_str(), "unconfirmed", "{slow:?}");
    assert_eq!(slow.next_attempt_at, None, "a plugin cannot be checked: the operator decides");
    let a = p.store.attempts(slow.id).await.unwrap();
    assert_eq!(a.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), vec!["unknown_outcome", "cannot_check"], "reconciled before any resend");
    p.close().await;
}
