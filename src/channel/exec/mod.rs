//! The `exec` adapter: hand the rendering to an external plugin program.
//!
//! Contract: the program gets the rendering's JSON on stdin and the delivery in its
//! environment (`HERALD_DELIVERY_KEY`, `HERALD_ISSUE`, `HERALD_CHANNEL`, `HERALD_ATTEMPT`; the
//! key is stable across retries, so a plugin can dedup on it). It prints a JSON receipt
//! `{"id": "...", "url": "..."}` on stdout and exits 0. Exit 75 (EX_TEMPFAIL) means "try again
//! later"; any other non-zero exit is permanent, with an excerpt of stderr as the reason.
//!
//! The plugin's environment is cleared: it gets `PATH`, `HOME`, `LANG`, the delivery variables
//! above and only the variables the channel names in `env = [...]`, never herald's other
//! secrets. It runs in its own process group. A program that outlives `timeout_secs` is killed
//! with its whole group, and the outcome is unknown (it may have posted). Once the program
//! exits, its answer counts even if a background child still holds its stdout open. Stdout is
//! capped at [`STDOUT_MAX`], stderr at [`STDERR_MAX`], the receipt's `id` at [`RECEIPT_ID_MAX`]
//! and its `url` (http or https only) at [`RECEIPT_URL_MAX`].
//!
//! An optional `check_command` reconciles after an unknown outcome: run with the same
//! variables, it prints the earlier post's receipt, or `absent` when there is none.

pub mod kind;
pub use kind::Exec;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::channel::{Adapter, BuildCtx, DeliveryCtx, DeliveryError, Receipt, Reconciled};
use crate::config::ChannelConfig;
use crate::render::Rendering;

/// `EX_TEMPFAIL` from sysexits.h: a temporary failure.
pub const EXIT_TEMPFAIL: i32 = 75;
/// Most of a plugin's stdout read: a receipt is a few hundred bytes.
pub const STDOUT_MAX: usize = 1024 * 1024;
/// Most of a plugin's stderr kept (the stored excerpt is shorter still).
pub const STDERR_MAX: usize = 64 * 1024;
/// Longest receipt `id` accepted.
pub const RECEIPT_ID_MAX: usize = 512;
/// Longest receipt `url` kept.
pub const RECEIPT_URL_MAX: usize = 2048;
/// How long the pipes may stay open once the plugin has exited (a background child).
const PIPE_GRACE: Duration = Duration::from_millis(300);
/// Variables every plugin gets from herald's environment, when set.
const PASS_THROUGH: &[&str] = &["PATH", "HOME", "LANG"];

/// A configured plugin.
#[derive(Debug)]
pub struct ExecAdapter {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    check: Option<(PathBuf, Vec<String>)>,
    cwd: PathBuf,
    timeout: Duration,
    /// The plugin's whole inherited environment: [`PASS_THROUGH`] and the channel's `env`.
    env: Vec<(String, String)>,
}

/// Build the adapter for channel `name`. Fails when a program is not found, or a variable named
/// in `env` is not set.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Exec(c) = cfg else {
        anyhow::bail!("channel {name}: not an exec channel");
    };
    let Some((program, args)) = c.command.split_first() else {
        anyhow::bail!("channel {name}: `command` is empty; e.g. `command = [\"./plugins/post.sh\", \"--flag\"]`");
    };
    let path = (ctx.env)("PATH");
    let program = resolve_program(name, "command", program, &ctx.base_dir, path.as_deref())?;
    let check = match c.check_command.as_deref().map(<[String]>::split_first) {
        None => None,
        Some(None) => anyhow::bail!("channel {name}: `check_command` is empty; e.g. `check_command = [\"./plugins/check.sh\"]`"),
        Some(Some((p, a))) => Some((resolve_program(name, "check_command", p, &ctx.base_dir, path.as_deref())?, a.to_vec())),
    };
    let mut env: Vec<(String, String)> = PASS_THROUGH.iter().filter_map(|k| (ctx.env)(k).map(|v| (k.to_string(), v))).collect();
    for k in &c.env {
        match (ctx.env)(k) {
            Some(v) => env.push((k.clone(), v)),
            None => anyhow::bail!("channel {name}: `env` passes {k} to the plugin, but it is not set (export it, or drop it from `env`)"),
        }
    }
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(ExecAdapter { name: name.to_string(), program, args: args.to_vec(), check, cwd: ctx.base_dir.clone(), timeout, env }))
}

/// A relative path with a slash is relative to the config's folder; a bare name is looked up on
/// `PATH`. Either way the program must be there now, so a publish fails before sending.
fn resolve_program(channel: &str, key: &str, program: &str, base: &Path, path: Option<&str>) -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(program);
    if program.contains('/') {
        let p = if p.is_relative() { base.join(p) } else { p };
        if !p.is_file() {
            anyhow::bail!("channel {channel}: `{key}` program {} not found (a relative path is relative to the config file's folder)", p.display());
        }
        return Ok(p);
    }
    let found = path.is_some_and(|paths| std::env::split_paths(paths).any(|d| d.join(program).is_file()));
    if !found {
        anyhow::bail!("channel {channel}: `{key}` program `{program}` not found on PATH (give a path, e.g. \"./plugins/{program}\")");
    }
    Ok(p)
}

/// What a finished plugin left behind.
struct Finished {
    code: Option<i32>,
    stdout: Vec<u8>,
    stdout_over: bool,
    stderr: String,
}

/// Why a plugin gave no answer.
enum RunError {
    Spawn(std::io::Error),
    TimedOut,
    Wait(std::io::Error),
}

/// Kills the plugin's process group when dropped or asked: at the timeout, and when the
/// delivery future is dropped mid-run.
struct Group(Option<rustix::process::Pid>);

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    over: bool,
}

/// Read `r` to its end on a task, keeping at most `cap` bytes (the rest is read and dropped, so
/// the plugin never blocks on a full pipe).
fn capture<R: AsyncRead + Unpin + Send + 'static>(r: Option<R>, cap: usize) -> (Arc<Mutex<Captured>>, tokio::task::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Captured::default()));
    let b = buf.clone();
    let task = tokio::spawn(async move {
        let Some(mut r) = r else { return };
        let mut chunk = vec![0u8; 8192];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut c = b.lock().unwrap_or_else(PoisonError::into_inner);
                    let room = cap.saturating_sub(c.bytes.len());
                    if n > room {
                        c.over = true;
                    }
                    c.bytes.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    });
    (buf, task)
}

fn take(buf: &Mutex<Captured>) -> Captured {
    std::mem::take(&mut *buf.lock().unwrap_or_else(PoisonError::into_inner))
}

impl ExecAdapter {
    /// Run `program` with the delivery's environment, `input` on stdin, until it exits or the
    /// timeout kills its group.
    async fn run(&self, program: &Path, args: &[String], input: Option<Vec<u8>>, ctx: &DeliveryCtx) -> Result<Finished, RunError> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("HERALD_DELIVERY_KEY", &ctx.key)
            .env("HERALD_ISSUE", &ctx.issue)
            .env("HERALD_CHANNEL", &ctx.channel)
            .env("HERALD_ATTEMPT", ctx.attempt.to_string())
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(RunError::Spawn)?;
        let mut group = Group(child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw));
        let (out, out_task) = capture(child.stdout.take(), STDOUT_MAX);
        let (err, err_task) = capture(child.stderr.take(), STDERR_MAX);
        // A plugin that exits without reading stdin closes the pipe: not an error by itself.
        let feed = match (child.stdin.take(), input) {
            (Some(mut stdin), Some(input)) => Some(tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
            })),
            _ => None,
        };
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Err(_) => {
                group.kill();
                let _ = child.kill().await;
                for t in [Some(out_task), Some(err_task), feed].into_iter().flatten() {
                    t.abort();
                }
                return Err(RunError::TimedOut);
            }
            Ok(Err(e)) => return Err(RunError::Wait(e)),
            Ok(Ok(status)) => status,
        };
        // The plugin has exited. Its pipes close with it, unless a background child it started
        // still holds them: that child's silence must not cost the plugin's answer.
        let (oa, ea) = (out_task.abort_handle(), err_task.abort_handle());
        let _ = tokio::time::timeout(PIPE_GRACE, async {
            let _ = out_task.await;
            let _ = err_task.await;
        })
        .await;
        oa.abort();
        ea.abort();
        if let Some(f) = feed {
            f.abort();
        }
        // Leave the group alone from here: the leader is reaped and its id may be reused.
        group.0 = None;
        let (o, e) = (take(&out), take(&err));
        Ok(Finished { code: status.code(), stdout: o.bytes, stdout_over: o.over, stderr: String::from_utf8_lossy(&e.bytes).trim().to_string() })
    }

    /// Read a receipt from a plugin's stdout (shared by `command` and `check_command`).
    fn receipt(&self, f: &Finished, what: &str) -> Result<Receipt, String> {
        if f.stdout_over {
            return Err(format!("channel {}: the {what} printed more than {STDOUT_MAX} bytes on stdout; a receipt is one small JSON object", self.name));
        }
        let v: serde_json::Value = serde_json::from_slice(&f.stdout)
            .map_err(|e| format!("channel {}: the {what} exited 0 but its stdout is not a JSON receipt ({e})", self.name))?;
        parse_receipt(&v).map_err(|e| format!("channel {}: the {what}'s receipt {e}", self.name))
    }
}

/// Check a plugin's receipt: an `id` (string or number, at most [`RECEIPT_ID_MAX`] bytes, no
/// control characters) and an optional http(s) `url`; a bad `url` is dropped with a note.
fn parse_receipt(v: &serde_json::Value) -> Result<Receipt, String> {
    let id = match v.get("id") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err("has no \"id\"".into()),
    };
    if id.len() > RECEIPT_ID_MAX {
        return Err(format!("\"id\" is {} bytes, over the {RECEIPT_ID_MAX}-byte limit", id.len()));
    }
    if id.chars().any(char::is_control) {
        return Err("\"id\" holds control characters".into());
    }
    let mut note = None;
    let url = match v.get("url") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(u)) if u.len() > RECEIPT_URL_MAX => {
            note = Some(format!("the plugin's url was dropped: over {RECEIPT_URL_MAX} bytes"));
            None
        }
        Some(serde_json::Value::String(u)) => match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => Some(p.to_string()),
            _ => {
                note = Some("the plugin's url was dropped: not an http(s) URL".into());
                None
            }
        },
        Some(_) => {
            note = Some("the plugin's url was dropped: not a string".into());
            None
        }
    };
    Ok(Receipt { remote_id: id, url, note, ..Receipt::default() })
}

#[async_trait]
impl Adapter for ExecAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let input = serde_json::to_vec(rendering).map_err(|e| DeliveryError::permanent(format!("rendering encode: {e}")))?;
        let out = match self.run(&self.program, &self.args, Some(input), ctx).await {
            Ok(out) => out,
            Err(RunError::Spawn(e)) => {
                return Err(DeliveryError::permanent(format!("channel {}: cannot run {}: {e}", self.name, self.program.display())));
            }
            Err(RunError::TimedOut) => {
                return Err(DeliveryError::unknown_outcome(format!(
                    "channel {}: the plugin ran longer than {}s and was killed; it may have posted",
                    self.name,
                    self.timeout.as_secs()
                )));
            }
            Err(RunError::Wait(e)) => return Err(DeliveryError::unknown_outcome(format!("channel {}: waiting for the plugin: {e}", self.name))),
        };
        match out.code {
            Some(0) => self.receipt(&out, "plugin").map_err(DeliveryError::unknown_outcome),
            Some(EXIT_TEMPFAIL) => Err(DeliveryError::retryable(format!("plugin exit 75 (temporary): {}", out.stderr))),
            Some(code) => Err(DeliveryError::permanent(format!("plugin exit {code}: {}", out.stderr))),
            None => Err(DeliveryError::unknown_outcome(format!("the plugin was killed by a signal: {}", out.stderr))),
        }
    }

    async fn find_existing(&self, _rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let Some((program, args)) = &self.check else {
            return Ok(Reconciled::CannotCheck("a plugin without `check_command` offers no way to check for an earlier post".into()));
        };
        let out = match self.run(program, args, None, ctx).await {
            Ok(out) => out,
            Err(RunError::Spawn(e)) => return Ok(Reconciled::CannotCheck(format!("channel {}: cannot run {}: {e}", self.name, program.display()))),
            Err(RunError::TimedOut) => {
                return Err(DeliveryError::unknown_outcome(format!(
                    "channel {}: check_command ran longer than {}s and was killed",
                    self.name,
                    self.timeout.as_secs()
                )));
            }
            Err(RunError::Wait(e)) => return Err(DeliveryError::unknown_outcome(format!("channel {}: waiting for check_command: {e}", self.name))),
        };
        match out.code {
            Some(0) if String::from_utf8_lossy(&out.stdout).trim() == "absent" => Ok(Reconciled::NotFound),
            Some(0) => match self.receipt(&out, "check_command") {
                Ok(mut r) => {
                    r.note = Some(r.note.map_or_else(|| "reconciled via check_command".to_string(), |n| format!("reconciled via check_command; {n}")));
                    Ok(Reconciled::Found(r))
                }
                Err(e) => Ok(Reconciled::CannotCheck(format!("{e}; it must print a receipt or `absent`"))),
            },
            Some(EXIT_TEMPFAIL) => Err(DeliveryError::retryable(format!("check_command exit 75 (temporary): {}", out.stderr))),
            Some(code) => Ok(Reconciled::CannotCheck(format!("channel {}: check_command exit {code}: {}", self.name, out.stderr))),
            None => Ok(Reconciled::CannotCheck(format!("channel {}: check_command was killed by a signal: {}", self.name, out.stderr))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_capped_and_urls_must_be_http() {
        let r = parse_receipt(&serde_json::json!({"id": "a1", "url": "https://x.example/1"})).unwrap();
        assert_eq!((r.remote_id.as_str(), r.url.as_deref(), r.note), ("a1", Some("https://x.example/1"), None));
        let r = parse_receipt(&serde_json::json!({"id": 7, "url": "javascript:alert(1)"})).unwrap();
        assert_eq!((r.remote_id.as_str(), r.url), ("7", None));
        assert!(r.note.unwrap().contains("not an http(s) URL"));
        let long_url = format!("https://x.example/{}", "a".repeat(RECEIPT_URL_MAX));
        let r = parse_receipt(&serde_json::json!({"id": "a", "url": long_url})).unwrap();
        assert_eq!(r.url, None);
        let e = parse_receipt(&serde_json::json!({"id": "i".repeat(RECEIPT_ID_MAX + 1)})).unwrap_err();
        assert!(e.contains("limit"), "{e}");
        assert!(parse_receipt(&serde_json::json!({"id": "a\r\nb"})).is_err());
        assert!(parse_receipt(&serde_json::json!({"url": "https://x.example"})).is_err());
    }
}
