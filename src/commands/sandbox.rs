//! `herald sandbox serve [--dir DIR] [--listen ADDR] [--fault-plan FILE|SPEC] [--json]`: every
//! channel's contract fake as a standalone process, until SIGTERM or SIGINT.
//!
//! Each fake journals what it handled to `DIR/journal/<channel>.jsonl`, on disk before it
//! answers, so whatever happens to the Herald talking to it, what the fake accepted is known.
//! The printed `[channels.*]` tables (also written to `DIR/herald-sandbox.toml`) point every
//! channel at its fake; its secrets are files under `DIR/secrets`.

use std::io::Write as _;

use anyhow::Context as _;

use super::{ExitStatus, Globals, InputError};
use crate::cli::{SandboxCommand, ServeArgs};
use crate::jobs::worker::shutdown_signal;
use crate::sandbox::fault::FaultSpec;
use crate::sandbox::run::{Sandbox, ServeOptions, config_fragment};

/// Run `herald sandbox …`.
pub async fn run(g: &Globals, cmd: SandboxCommand) -> anyhow::Result<ExitStatus> {
    match cmd {
        SandboxCommand::Serve(a) => serve(g, a).await,
    }
}

/// The fault plan from `--fault-plan`: a file holding the text, or the text itself.
pub fn fault_plan(arg: &str) -> Result<FaultSpec, InputError> {
    let path = std::path::Path::new(arg);
    let (text, from) = if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| InputError(format!("--fault-plan {arg}: cannot read it: {e}")))?;
        (text, format!("{arg}: "))
    } else {
        (arg.to_string(), String::new())
    };
    FaultSpec::parse(&text).map_err(|e| InputError(format!("--fault-plan: {from}{e}")))
}

async fn serve(g: &Globals, args: ServeArgs) -> anyhow::Result<ExitStatus> {
    // Signals first, so a SIGTERM during start-up still ends the fakes cleanly.
    let stop = shutdown_signal();
    let cfg = g.load_config()?;
    let faults = args.fault_plan.as_deref().map(fault_plan).transpose()?;
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::path::PathBuf::from(".sandbox").join(format!("serve-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")))
    });
    let opts = ServeOptions { listen: args.listen, journal: true, faults: faults.clone() };
    let (sb, out) = Sandbox::start_with(&cfg, &dir, None, &opts).await?;
    let (fragment, env) = config_fragment(&cfg, &out)?;
    let fragment_path = sb.dir.join("herald-sandbox.toml");
    std::fs::write(&fragment_path, &fragment).with_context(|| format!("cannot write {}", fragment_path.display()))?;
    let fakes = sb.fakes(&out);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let env: serde_json::Map<_, _> = env.iter().map(|(k, p)| (k.clone(), p.display().to_string().into())).collect();
        let v = serde_json::json!({
            "dir": sb.dir,
            "fakes": fakes,
            "fault_plan": faults.as_ref().map(|f| f.rates.iter().map(|(r, f)| (crate::sandbox::fault::fault_name(f), *r)).collect::<std::collections::BTreeMap<_, _>>()),
            "config_fragment": fragment_path,
            "env_files": env,
        });
        writeln!(stdout, "{v}")?;
    } else {
        writeln!(stdout, "# herald sandbox serve: {} fake(s), journals in {}", fakes.len(), sb.dir.join("journal").display())?;
        for f in &fakes {
            writeln!(stdout, "#   {:<16} {:<10} {}", f.channel, f.r#type, f.address)?;
        }
        for (var, p) in &env {
            writeln!(stdout, "# export {var}=\"$(cat {})\"", p.display())?;
        }
        writeln!(stdout, "# Point Herald here: use these tables as the config's [channels.*] (also in {}).", fragment_path.display())?;
        write!(stdout, "{fragment}")?;
    }
    stdout.flush()?;
    drop(stdout);
    stop.await;
    tracing::info!(dir = %sb.dir.display(), "Sandbox fakes stopped.");
    Ok(ExitStatus::Success)
}
