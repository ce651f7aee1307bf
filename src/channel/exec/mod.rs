//! The `exec` adapter: hand the rendering to an external plugin program.
//!
//! Contract: the program gets the rendering's JSON on stdin and the delivery in its
//! environment (`HERALD_DELIVERY_KEY`, `HERALD_ISSUE`, `HERALD_CHANNEL`, `HERALD_ATTEMPT`; the
//! key is stable across retries, so a plugin can dedup on it). It prints a JSON receipt
//! `{"id": "...", "url": "..."}` on stdout and exits 0. Exit 75 (EX_TEMPFAIL) means "try again
//! later"; any other non-zero exit is permanent, with an excerpt of stderr as the reason. A
//! program that outlives `timeout_secs` is killed, and the outcome is unknown (it may have
//! posted), so the delivery waits for the operator: a plugin offers no way to check.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use crate::channel::{Adapter, BuildCtx, DeliveryCtx, DeliveryError, Receipt};
use crate::config::ChannelConfig;
use crate::render::Rendering;

/// `EX_TEMPFAIL` from sysexits.h: a temporary failure.
pub const EXIT_TEMPFAIL: i32 = 75;

/// A configured plugin.
#[derive(Debug)]
pub struct ExecAdapter {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    timeout: Duration,
}

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Exec(c) = cfg else {
        anyhow::bail!("channel {name}: not an exec channel");
    };
    let Some((program, args)) = c.command.split_first() else {
        anyhow::bail!("channel {name}: `command` is empty; e.g. `command = [\"./plugins/post.sh\", \"--flag\"]`");
    };
    // A relative path with a slash is relative to the config's folder; a bare name is looked
    // up on PATH by the OS.
    let p = PathBuf::from(program);
    let program = if p.is_relative() && program.contains('/') { ctx.base_dir.join(p) } else { p };
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(ExecAdapter { name: name.to_string(), program, args: args.to_vec(), cwd: ctx.base_dir.clone(), timeout }))
}

#[async_trait]
impl Adapter for ExecAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let input = serde_json::to_vec(rendering).map_err(|e| DeliveryError::permanent(format!("rendering encode: {e}")))?;
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env("HERALD_DELIVERY_KEY", &ctx.key)
            .env("HERALD_ISSUE", &ctx.issue)
            .env("HERALD_CHANNEL", &ctx.channel)
            .env("HERALD_ATTEMPT", ctx.attempt.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DeliveryError::permanent(format!("channel {}: cannot run {}: {e}", self.name, self.program.display())))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let run = async move {
            // A plugin that exits without reading stdin closes the pipe: not an error by itself.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let out = match tokio::time::timeout(self.timeout, run).await {
            // Dropping the future drops the child, which kill_on_drop kills.
            Err(_) => {
                return Err(DeliveryError::unknown_outcome(format!(
                    "channel {}: the plugin ran longer than {}s and was killed; it may have posted",
                    self.name,
                    self.timeout.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(DeliveryError::unknown_outcome(format!("channel {}: waiting for the plugin: {e}", self.name))),
            Ok(Ok(out)) => out,
        };
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        match out.status.code() {
            Some(0) => {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
                    DeliveryError::unknown_outcome(format!("channel {}: the plugin exited 0 but its stdout is not a JSON receipt ({e})", self.name))
                })?;
                let id = match v.get("id") {
                    Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => return Err(DeliveryError::unknown_outcome(format!("channel {}: the plugin's receipt has no \"id\"", self.name))),
                };
                let url = v.get("url").and_then(|u| u.as_str()).map(str::to_string);
                Ok(Receipt { remote_id: id, url, ..Receipt::default() })
            }
            Some(EXIT_TEMPFAIL) => Err(DeliveryError::retryable(format!("plugin exit 75 (temporary): {stderr}"))),
            Some(code) => Err(DeliveryError::permanent(format!("plugin exit {code}: {stderr}"))),
            None => Err(DeliveryError::unknown_outcome(format!("the plugin was killed by a signal: {stderr}"))),
        }
    }
}
