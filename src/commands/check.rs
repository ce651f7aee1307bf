//! `herald check`: the config, every template, and (given an issue) a full preflight render.
//! Exits 0 when all is well and 2 with every problem listed.

use super::{ExitStatus, Globals};
use crate::channel::{BuildCtx, build_adapter};
use crate::cli::CheckArgs;
use crate::config;
use crate::issue;
use crate::render::engine::{compile_all, render_channels};

/// Run `herald check`.
pub async fn run(g: &Globals, args: CheckArgs) -> anyhow::Result<ExitStatus> {
    let mut problems: Vec<String> = Vec::new();
    let Some(path) = config::discover(g.config.as_deref()) else {
        eprintln!("error: no config file: pass --config PATH, set HERALD_CONFIG, or create ./herald.toml");
        return Ok(ExitStatus::Error);
    };
    let cfg = match config::load(&path) {
        Ok(c) => Some(c),
        Err(errs) => {
            problems.extend(errs.0.iter().map(|e| e.to_string()));
            None
        }
    };
    if let Some(cfg) = &cfg {
        problems.extend(config::check::check_files(cfg).iter().map(|e| e.to_string()));
        problems.extend(compile_all(cfg).iter().map(|e| e.to_string()));
        problems.extend(linkedin_token_warnings(cfg));
        if args.credentials {
            let env = |k: &str| std::env::var(k).ok();
            let missing = config::check::check_credentials(cfg, &env);
            problems.extend(missing.iter().map(|e| e.to_string()));
            if missing.is_empty() {
                problems.extend(stored_credentials(cfg).await);
            }
        }
    }
    let mut rendered = 0;
    if let Some(issue_path) = &args.issue {
        match issue::parse_file(issue_path) {
            Err(e) => problems.push(e.to_string()),
            Ok(issue) => {
                if let Some(cfg) = &cfg {
                    match render_channels(&issue, cfg, &args.channels) {
                        Ok(r) => rendered = r.len(),
                        Err(errs) => problems.extend(errs.iter().map(|e| e.to_string())),
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        let n = cfg.as_ref().map(|c| c.config.channels.len()).unwrap_or(0);
        print!("ok: {} ({n} channels", path.display());
        if args.issue.is_some() {
            print!(", {rendered} rendered and within their limits");
        }
        println!(")");
        Ok(ExitStatus::Success)
    } else {
        for p in &problems {
            eprintln!("error: {p}");
        }
        eprintln!("{} problem(s) found.", problems.len());
        Ok(ExitStatus::Error)
    }
}

/// With `--credentials`: every enabled channel's credential, config or stored, resolves and
/// opens with the credential store's key, and each adapter builds. Prints the credentials with
/// their days left; one expiring within `[credentials] warn_days` is a warning, an expired or
/// refused one a problem.
async fn stored_credentials(cfg: &config::LoadedConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let store = match super::status::open_store(cfg).await {
        Ok(s) => s,
        Err(e) => return vec![format!("cannot open the store to read stored credentials: {e:#}")],
    };
    let vault = std::sync::Arc::new(crate::credentials::Vault::from_config(store.clone(), cfg));
    if let Err(e) = vault.preload().await {
        problems.push(format!("cannot read the credential store: {e:#}"));
    }
    let names: Vec<String> = cfg.config.channels.iter().filter(|(_, c)| c.common().enabled).map(|(n, _)| n.clone()).collect();
    problems.extend(crate::credentials::preflight(&vault, cfg, &names).await);
    if problems.is_empty() {
        // Every secret resolves: build each adapter too (URLs, clients, key material).
        let mut ctx = BuildCtx::from_env(cfg.base_dir.clone());
        ctx.vault = Some(vault);
        for (name, c) in cfg.config.channels.iter().filter(|(_, c)| c.common().enabled) {
            if let Err(e) = build_adapter(name, c, &ctx) {
                problems.push(format!("{e:#}"));
            }
        }
    }
    match crate::credentials::view::views(cfg, &store, crate::store::now_ms()).await {
        Ok(views) => {
            if !views.is_empty() {
                print!("{}", crate::credentials::view::table(&views));
            }
            // LinkedIn tokens given in the config are warned about above.
            for v in views.iter().filter(|v| v.source != "config") {
                match v.status.as_str() {
                    "expiring" => eprintln!("warning: channel {}: {}", v.channel, v.note.clone().unwrap_or_default()),
                    "expired" | "needs_auth" => problems.push(format!("channel {}: {}", v.channel, v.note.clone().unwrap_or_default())),
                    _ => {}
                }
            }
        }
        Err(e) => problems.push(format!("cannot read the credential store: {e:#}")),
    }
    store.close().await;
    problems
}

/// Print a warning for a LinkedIn token within 7 days of expiry or a `linkedin_version` more
/// than 10 months old; an expired token is a problem.
fn linkedin_token_warnings(cfg: &config::LoadedConfig) -> Vec<String> {
    let now = chrono::Utc::now();
    let mut problems = Vec::new();
    for (name, c) in &cfg.config.channels {
        let config::ChannelConfig::Linkedin(li) = c else { continue };
        if let Some(w) = crate::channel::linkedin::version_age_warning(li, now) {
            eprintln!("warning: channel {name}: {w}");
        }
        if let Some(w) = crate::channel::linkedin::token_expiry_warning(li, now) {
            let expired = li
                .token_expires_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
                .is_none_or(|t| t <= now);
            if expired {
                problems.push(format!("channel {name}: {w}"));
            } else {
                eprintln!("warning: channel {name}: {w}");
            }
        }
    }
    problems
}
