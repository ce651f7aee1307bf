//! The exec adapter with the plugin scripts in tests/fixtures/plugins/, alone and in the pipeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::channel::{Adapter, BuildCtx, DeliveryCtx, Kind, Reconciled, build_adapter};
use herald::config::ChannelConfig;
use herald::render::{BodyRendering, Rendering};

use crate::pipeline::TestDb;

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
    // A missing program fails when the adapter is built (publish's preflight), not mid-publish.
    let cfg: ChannelConfig = toml::from_str("type = \"exec\"\ncommand = [\"./no-such-plugin.sh\"]").unwrap();
    let e = build_adapter("plug", &cfg, &BuildCtx::from_env(crate::util::fixture("plugins"))).err().unwrap().to_string();
    assert!(e.contains("channel plug") && e.contains("no-such-plugin.sh") && e.contains("not found"), "{e}");
    let cfg: ChannelConfig = toml::from_str("type = \"exec\"\ncommand = [\"no-such-plugin-on-path\"]").unwrap();
    let e = build_adapter("plug", &cfg, &BuildCtx::from_env(crate::util::fixture("plugins"))).err().unwrap().to_string();
    assert!(e.contains("not found on PATH"), "{e}");
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
    let (p, ds, _) = crate::pipeline::publish_and_settle(&db, &text, "minimal.md").await;
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

fn ctx_with(env: &'static [(&'static str, &'static str)]) -> BuildCtx {
    let mut ctx = BuildCtx::from_env(crate::util::fixture("plugins"));
    ctx.env = Box::new(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()).or_else(|| std::env::var(k).ok()));
    ctx
}

/// Issue 16 item 3: the plugin's environment is cleared to PATH, HOME, LANG, the delivery
/// variables and what the channel lists in `env`; herald's other variables never reach it.
#[tokio::test]
async fn a_plugin_gets_a_cleared_environment_and_only_its_listed_variables() {
    let out = tempfile::tempdir().unwrap();
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")), "the test process has variables a plugin must not see");
    let cfg: ChannelConfig =
        toml::from_str(&format!("type = \"exec\"\ncommand = [\"./env.sh\", \"{}\"]\nenv = [\"PLUGIN_TOKEN\"]", out.path().display())).unwrap();
    let ctx = ctx_with(&[("PLUGIN_TOKEN", "tok-123"), ("HERALD_UNSUBSCRIBE_SECRET", "unsub-s3cret"), ("HERALD_HTTP_TOKEN", "http-s3cret")]);
    let a = build_adapter("plug", &cfg, &ctx).unwrap();
    let r = a.deliver(&rendering(), &DeliveryCtx::for_test("ex4/plug/r1")).await.unwrap();
    assert_eq!(r.remote_id, "env-1");
    let env = std::fs::read_to_string(out.path().join("env.txt")).unwrap();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    assert!(env.lines().any(|l| l == "PLUGIN_TOKEN=tok-123"), "{env}");
    assert!(env.lines().any(|l| l == "HERALD_DELIVERY_KEY=ex4/plug/r1"), "{env}");
    assert!(names.contains(&"PATH"), "{env}");
    // Only what the shell adds itself (PWD, SHLVL, _) besides what herald passed.
    let allowed = ["PATH", "HOME", "LANG", "PLUGIN_TOKEN", "HERALD_DELIVERY_KEY", "HERALD_ISSUE", "HERALD_CHANNEL", "HERALD_ATTEMPT", "PWD", "SHLVL", "_", "OLDPWD"];
    let extra: Vec<&&str> = names.iter().filter(|n| !allowed.contains(n)).collect();
    assert!(extra.is_empty(), "the plugin saw variables it was not given: {extra:?}");
    assert!(!env.contains("s3cret"));
    // A listed variable that is not set fails the build (publish's preflight), naming it.
    let cfg: ChannelConfig = toml::from_str("type = \"exec\"\ncommand = [\"./env.sh\"]\nenv = [\"HERALD_TEST_SURELY_UNSET_VAR\"]").unwrap();
    let e = build_adapter("plug", &cfg, &ctx_with(&[])).err().unwrap().to_string();
    assert!(e.contains("HERALD_TEST_SURELY_UNSET_VAR") && e.contains("not set"), "{e}");
}

/// Issue 16 item 3: a background child holding stdout open does not turn a good receipt into
/// an unknown outcome.
#[tokio::test]
async fn a_background_child_holding_stdout_does_not_cost_the_receipt() {
    let t = Instant::now();
    let r = plugin("background.sh", 10).deliver(&rendering(), &DeliveryCtx::for_test("ex5/plug/r1")).await.unwrap();
    assert_eq!((r.remote_id.as_str(), r.url.as_deref()), ("bg-1", Some("https://plugin.example/bg-1")));
    assert!(t.elapsed() < Duration::from_secs(5), "answered when the plugin exited: {:?}", t.elapsed());
}

fn alive(pid: u32) -> bool {
    // A zombie waiting for its reaper is dead for our purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// Issue 16 item 3: at the timeout the plugin's whole process group is killed.
#[tokio::test]
async fn the_timeout_kills_the_plugins_whole_process_group() {
    let out = tempfile::tempdir().unwrap();
    let cfg: ChannelConfig =
        toml::from_str(&format!("type = \"exec\"\ncommand = [\"./hang-group.sh\", \"{}\"]\ntimeout_secs = 1", out.path().display())).unwrap();
    let a = build_adapter("plug", &cfg, &BuildCtx::from_env(crate::util::fixture("plugins"))).unwrap();
    let e = a.deliver(&rendering(), &DeliveryCtx::for_test("ex6/plug/r1")).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome);
    let pid: u32 = std::fs::read_to_string(out.path().join("bg.pid")).unwrap().trim().parse().unwrap();
    let t = Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(pid), "the plugin's background child {pid} outlived the timeout");
}

/// Issue 16 item 4: stdout and stderr are capped; an oversized stdout is no receipt.
#[tokio::test]
async fn plugin_output_is_capped() {
    let e = plugin("flood.sh", 20).deliver(&rendering(), &DeliveryCtx::for_test("ex7/plug/r1")).await.unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownOutcome);
    assert!(e.message().contains("more than"), "{e}");
    let cfg: ChannelConfig = toml::from_str("type = \"exec\"\ncommand = [\"./flood.sh\", \"err\"]\ntimeout_secs = 20").unwrap();
    let a = build_adapter("plug", &cfg, &BuildCtx::from_env(crate::util::fixture("plugins"))).unwrap();
    let e = a.deliver(&rendering(), &DeliveryCtx::for_test("ex7/plug/r1")).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Permanent);
    assert!(e.message().len() <= herald::channel::error::EXCERPT_MAX + 4, "{}", e.message().len());
}

/// Issue 15 §4 item 4: `check_command` lets a plugin reconcile: absent, then found.
#[tokio::test]
async fn check_command_answers_absent_or_the_receipt() {
    let state = tempfile::tempdir().unwrap();
    let cfg: ChannelConfig = toml::from_str(&format!(
        "type = \"exec\"\ncommand = [\"./post-then-hang.sh\", \"{d}\"]\ncheck_command = [\"./check.sh\", \"{d}\"]\ntimeout_secs = 1",
        d = state.path().display()
    ))
    .unwrap();
    let a = build_adapter("plug", &cfg, &BuildCtx::from_env(crate::util::fixture("plugins"))).unwrap();
    let ctx = DeliveryCtx::for_test("ex8/plug/r1");
    assert_eq!(a.find_existing(&rendering(), &ctx).await.unwrap(), Reconciled::NotFound);
    assert_eq!(a.deliver(&rendering(), &ctx).await.unwrap_err().kind(), Kind::UnknownOutcome);
    match a.find_existing(&rendering(), &ctx).await.unwrap() {
        Reconciled::Found(r) => assert_eq!((r.remote_id.as_str(), r.url.as_deref()), ("late-1", Some("https://plugin.example/late-1"))),
        other => panic!("expected the post, got {other:?}"),
    }
    // Another delivery's key is not this post.
    assert_eq!(a.find_existing(&rendering(), &DeliveryCtx::for_test("ex8/plug/r2")).await.unwrap(), Reconciled::NotFound);
}

/// Issue 15 §4 item 4, in the pipeline: a plugin that posted and then timed out is reconciled
/// to `sent` through its check_command, not left `unconfirmed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_pipeline_check_command_reconciles_a_timed_out_plugin() {
    let db = TestDb::sqlite().await;
    let plugins = crate::util::fixture("plugins");
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "[store]\nurl = \"{}\"\n[retry]\nschedule_secs = [0, 0]\njitter = 0.0\nrate_limit_floor_secs = 1\n\n\
         [channels.late]\ntype = \"exec\"\ncommand = [\"{p}/post-then-hang.sh\", \"{d}\"]\ncheck_command = [\"{p}/check.sh\", \"{d}\"]\ntimeout_secs = 1\n",
        db.url,
        p = plugins.display(),
        d = state.path().display()
    );
    let (p, ds, _) = crate::pipeline::publish_and_settle(&db, &text, "minimal.md").await;
    let late = ds.iter().find(|d| d.channel == "late").unwrap();
    assert_eq!(late.state.as_str(), "sent", "{late:?}");
    assert_eq!(late.remote_id.as_deref(), Some("late-1"));
    let a = p.store.attempts(late.id).await.unwrap();
    assert_eq!(a.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), vec!["unknown_outcome", "reconciled"], "found, not resent");
    p.close().await;
}
