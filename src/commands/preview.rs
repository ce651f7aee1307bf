//! `herald preview`: write (or serve on loopback) one HTML page showing every channel as its
//! reader will see it. Needs no credentials and sends nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use super::{ExitStatus, Globals, InputError};
use crate::cli::PreviewArgs;
use crate::config::LoadedConfig;
use crate::issue;
use crate::preview::{self, PreviewOptions};
use crate::render::engine::render_channels;

/// Run `herald preview`.
pub async fn run(g: &Globals, args: PreviewArgs) -> anyhow::Result<ExitStatus> {
    if args.serve && !args.listen.ip().is_loopback() {
        return Err(InputError(format!(
            "--listen {}: the preview is served on loopback only (hint: --listen 127.0.0.1:{})",
            args.listen,
            args.listen.port()
        ))
        .into());
    }
    if args.serve && (args.out.is_some() || args.json) {
        return Err(InputError("--serve cannot be combined with --out or --json (hint: drop one)".into()).into());
    }
    if args.max_thread == 0 {
        return Err(InputError("--max-thread 0: a thread has at least one post (hint: --max-thread 10)".into()).into());
    }
    let cfg = g.load_config()?;
    let (merge, merge_from) = merge_values(&cfg).await;
    let opts = PreviewOptions { max_thread: args.max_thread, merge, merge_from, ..PreviewOptions::default() };
    if args.serve {
        return serve(cfg, args, opts).await;
    }
    let built = match build(&cfg, &args.issue, &args.channels, &opts) {
        Ok(b) => b,
        Err(Failure::Input(e)) => return Err(InputError(e).into()),
        Err(Failure::Render(errors)) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} channel(s) failed to render; no preview was written.", errors.len());
            return Ok(ExitStatus::Error);
        }
    };
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "channels": built.channels, "warnings": built.warnings }))?;
        writeln!(out)?;
        return Ok(ExitStatus::Success);
    }
    match &args.out {
        Some(path) => {
            std::fs::write(path, &built.html).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} ({} channel(s), {} warning(s))", path.display(), built.channels.len(), built.warnings.len());
        }
        None => std::io::stdout().lock().write_all(built.html.as_bytes())?,
    }
    Ok(ExitStatus::Success)
}

/// Values for `[[merge]]` tags: the first subscriber not suppressed when a store exists (its
/// name, address and extra columns), the sample values for anything else. `unsubscribe_url`
/// always stays a sample: a real one needs the signing secret. Never creates a store.
async fn merge_values(cfg: &LoadedConfig) -> (Vec<(String, String)>, String) {
    use crate::store::{Store, StoreUrl};
    let samples = preview::sample_merge_values();
    let sample = (samples.clone(), "sample values".to_string());
    let Ok(url) = StoreUrl::parse(&cfg.config.store.url, &cfg.base_dir) else { return sample };
    if let StoreUrl::Sqlite { path } = &url
        && !path.exists()
    {
        return sample;
    }
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let store = Store::open(&url).await.ok()?;
        let rows = store.subscribers_page(0, 100).await.ok();
        store.close().await;
        rows?.into_iter().find(|r| r.suppressed.is_none())
    })
    .await
    .ok()
    .flatten();
    let Some(sub) = first else { return sample };
    let mut values: Vec<(String, String)> = vec![
        ("email".into(), sub.email.clone()),
        ("name".into(), sub.name.clone()),
        ("first_name".into(), sub.name.split_whitespace().next().unwrap_or_default().to_string()),
    ];
    if let Ok(serde_json::Value::Object(extra)) = serde_json::from_str::<serde_json::Value>(&sub.extra) {
        for (k, v) in extra {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            let k = k.trim().to_lowercase().split_whitespace().collect::<Vec<_>>().join("_");
            if !values.iter().any(|(have, _)| *have == k) {
                values.push((k, v));
            }
        }
    }
    for (k, v) in samples {
        if !values.iter().any(|(have, _)| *have == k) {
            values.push((k, v));
        }
    }
    (values, format!("the first subscriber, {}", sub.email))
}

/// A built page.
struct Built {
    html: String,
    channels: Vec<String>,
    warnings: Vec<preview::Warning>,
}

enum Failure {
    Input(String),
    Render(Vec<crate::render::engine::RenderError>),
}

fn build(cfg: &LoadedConfig, issue_path: &Path, only: &[String], opts: &PreviewOptions) -> Result<Built, Failure> {
    let issue = issue::parse_file(issue_path).map_err(|e| Failure::Input(e.to_string()))?;
    let rendered = render_channels(&issue, cfg, only).map_err(Failure::Render)?;
    Ok(Built {
        html: preview::page(&issue, cfg, &rendered, opts),
        channels: rendered.iter().map(|r| r.channel.clone()).collect(),
        warnings: preview::warnings(&rendered, opts),
    })
}

struct Served {
    cfg_path: Option<PathBuf>,
    cfg: std::sync::Mutex<LoadedConfig>,
    issue: PathBuf,
    only: Vec<String>,
    opts: PreviewOptions,
    version: AtomicU64,
}

/// Everything whose change should reload the page: the issue, the config and template folders.
fn watched(cfg: &LoadedConfig, issue: &Path) -> Vec<PathBuf> {
    let mut paths = vec![issue.to_path_buf()];
    paths.extend(cfg.path.clone());
    for c in cfg.config.channels.values() {
        if let Some(t) = &c.common().template {
            paths.push(cfg.base_dir.join(t));
        }
    }
    paths
}

async fn serve(cfg: LoadedConfig, args: PreviewArgs, opts: PreviewOptions) -> anyhow::Result<ExitStatus> {
    use notify::{RecursiveMode, Watcher};
    // Fail early, with the reason, when the issue does not render at all.
    if let Err(Failure::Input(e)) = build(&cfg, &args.issue, &args.channels, &opts) {
        return Err(InputError(e).into());
    }
    let paths = watched(&cfg, &args.issue);
    let state = Arc::new(Served {
        cfg_path: cfg.path.clone(),
        cfg: std::sync::Mutex::new(cfg),
        issue: args.issue.clone(),
        only: args.channels.clone(),
        opts,
        version: AtomicU64::new(1),
    });
    let st = state.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && (ev.kind.is_modify() || ev.kind.is_create() || ev.kind.is_remove())
        {
            st.version.fetch_add(1, Ordering::SeqCst);
        }
    })
    .context("cannot start the file watcher")?;
    for p in &paths {
        // Watch the folder holding a file, so editors that replace the file are seen too.
        let (target, mode) = if p.is_dir() { (p.clone(), RecursiveMode::Recursive) } else { (p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")), RecursiveMode::NonRecursive) };
        let target = if target.as_os_str().is_empty() { PathBuf::from(".") } else { target };
        watcher.watch(&target, mode).with_context(|| format!("cannot watch {}", target.display()))?;
    }
    let app = Router::new().route("/", get(page)).route("/version", get(version)).with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("preview of {} on http://{addr}/ (reloads when the issue, the config or a template changes; Ctrl-C stops)", args.issue.display());
    crate::http::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(watcher);
    Ok(ExitStatus::Success)
}

async fn version(State(st): State<Arc<Served>>) -> impl IntoResponse {
    st.version.load(Ordering::SeqCst).to_string()
}

async fn page(State(st): State<Arc<Served>>) -> impl IntoResponse {
    let v = st.version.load(Ordering::SeqCst);
    let opts = PreviewOptions { reload_version: Some(v), ..st.opts.clone() };
    // Re-read the config too: a changed config (or template path) shows on reload.
    let mut cfg = st.cfg.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = &st.cfg_path
        && let Ok(fresh) = crate::config::load(path)
    {
        *cfg = fresh;
    }
    match build(&cfg, &st.issue, &st.only, &opts) {
        Ok(b) => Html(b.html),
        Err(f) => {
            let msg = match f {
                Failure::Input(e) => e,
                Failure::Render(errors) => errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
            };
            let mut h = format!(
                "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Preview: error</title></head><body><h1>The issue does not render</h1><pre>{}</pre>",
                preview::escape(&msg)
            );
            // Keep polling, so fixing the file brings the page back.
            h.push_str(&format!(
                "<script>(function(){{var v={v};setInterval(function(){{fetch('/version').then(function(r){{return r.text()}}).then(function(t){{if(t.trim()!==String(v))location.reload()}}).catch(function(){{}})}},1000)}})()</script></body></html>"
            ));
            Html(h)
        }
    }
}
