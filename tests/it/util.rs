//! Shared test helpers: paths, the built binary, and a config that enables every channel type.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crate root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under tests/fixtures/.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Every sample issue (not the bad ones).
pub fn sample_issues() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture("issues"))
        .expect("tests/fixtures/issues exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    v.sort();
    v
}

/// A config with one channel of every type. `format` is "short" or "thread" for the post networks.
pub fn all_channels_toml(format: &str) -> String {
    format!(
        r#"
issues_dir = "{issues}"

[store]
url = "sqlite://herald.db"

[channels.newsletter]
type = "email"
smtp_url = "smtp://127.0.0.1:2525"
from = "Signal & Noise <news@example.com>"
unsubscribe_base_url = "https://news.example.com/unsubscribe"
unsubscribe_secret = "${{HERALD_TEST_UNSUB}}"

[channels.postmark]
type = "email_api"
server_token = "${{POSTMARK_SERVER_TOKEN}}"
from = "news@example.com"
unsubscribe_base_url = "https://news.example.com/unsubscribe"

[channels.substack]
type = "substack"
api_base = "https://signalnoise.substack.com"
cookie = "${{SUBSTACK_COOKIE}}"

[channels.linkedin]
type = "linkedin"
author = "urn:li:person:abc123"
access_token = "${{LINKEDIN_ACCESS_TOKEN}}"

[channels.x]
type = "x"
access_token = "${{X_ACCESS_TOKEN}}"
format = "{format}"

[channels.bluesky]
type = "bluesky"
identifier = "signalnoise.example.com"
app_password = "${{BLUESKY_APP_PASSWORD}}"
format = "{format}"

[channels.mastodon]
type = "mastodon"
access_token = "${{MASTODON_ACCESS_TOKEN}}"
format = "{format}"

[channels.threads]
type = "threads"
access_token = "${{THREADS_ACCESS_TOKEN}}"
format = "{format}"

[channels.webhook]
type = "webhook"
url = "https://hooks.example.com/herald"
secret = "${{HERALD_TEST_WEBHOOK_SECRET}}"

[channels.plugin]
type = "exec"
command = ["python3", "plugin.py"]
"#,
        issues = fixture("issues").display()
    )
}

/// Write `text` as herald.toml in a fresh temp dir.
pub fn temp_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("herald.toml");
    std::fs::write(&p, text).expect("write config");
    (dir, p)
}

/// Run the built `herald` binary with `args` in `cwd`.
pub fn herald(cwd: &Path, args: &[&str]) -> Output {
    Command::new(crate::pipeline::herald_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("HERALD_CONFIG")
        .output()
        .expect("run herald")
}

/// stdout and stderr as text.
pub fn out(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Render every sample issue for `channel` (as `format`) with the real renderer and deliver each
/// rendering through `adapter` as a delivery of its own (fresh checkpoint, own key). Returns how
/// many posts were sent, for the caller to compare with what its fake accepted.
pub async fn deliver_every_sample(adapter: &dyn herald::channel::Adapter, channel: &str, format: &str) -> usize {
    use std::sync::Arc;

    use herald::channel::{Checkpoint, DeliveryCtx, MemoryCheckpoint};

    let (_dir, path) = temp_config(&all_channels_toml(format));
    let cfg = herald::config::load(&path).expect("test config loads");
    let mut sent = 0;
    for issue_path in sample_issues() {
        let issue = herald::issue::parse_file(&issue_path).expect("sample issue parses");
        let rendered = herald::render::engine::render_channels(&issue, &cfg, &[channel.to_string()]).expect("renders");
        for r in rendered {
            let posts = r.rendering.posts().expect("posts").posts.len();
            let key = format!("{}/{channel}-{format}/r1", issue.meta.slug);
            let checkpoint: Arc<dyn Checkpoint> = Arc::new(MemoryCheckpoint::default());
            let ctx = DeliveryCtx { key, delivery_id: 1, issue: issue.meta.slug.clone(), channel: channel.to_string(), attempt: 1, checkpoint };
            let receipt = adapter.deliver(&r.rendering, &ctx).await.unwrap_or_else(|e| panic!("{} ({format}): {e}", issue_path.display()));
            assert!(!receipt.remote_id.is_empty());
            sent += posts;
        }
    }
    sent
}

/// Build the adapter of channel `name` from `cfg`, whose secret is written `${env_key}`, with
/// that variable (and no other) set to `value`.
pub fn build_with_secret(name: &str, cfg: &herald::config::ChannelConfig, env_key: &'static str, value: &str) -> std::sync::Arc<dyn herald::channel::Adapter> {
    let value = value.to_string();
    let ctx = herald::channel::BuildCtx {
        env: Box::new(move |k| (k == env_key).then(|| value.clone())),
        base_dir: std::env::temp_dir(),
        timeout: std::time::Duration::from_secs(5),
        vault: None,
    };
    herald::channel::build_adapter(name, cfg, &ctx).unwrap_or_else(|e| panic!("{name} adapter builds: {e:#}"))
}
