//! `type = "exec"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::Common;
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx};

/// `type = "exec"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct ExecConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Environment variables passed on to the plugin, by name. Its environment is otherwise
    /// cleared to `PATH`, `HOME`, `LANG` and the `HERALD_*` delivery variables.
    #[serde(default)]
    pub env: Vec<String>,
    /// Run the plugin for real under `publish --sandbox`; without it the channel is skipped there.
    #[serde(default)]
    pub run_in_sandbox: bool,
    /// Optional reconciliation program: it gets the delivery's variables, like `command`, and
    /// prints the earlier post's JSON receipt, or `absent`.
    #[serde(default)]
    pub check_command: Option<Vec<String>>,
}

/// The `exec` type: an external plugin program.
pub struct Exec;

impl ChannelType for Exec {
    const TYPE: &'static str = "exec";
    const ALIASES: &'static [&'static str] = &["plugin", "command", "script"];
    const KEYS: &'static [KeySpec] = &[
        req("command", Kind::Command),
        opt("check_command", Kind::Command),
        opt("env", Kind::EnvNames),
        opt("run_in_sandbox", Kind::Bool),
    ];
    type Config = ExecConfig;
    kind_basics!();

    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        // What the plugin is given, it may print.
        out.plain.extend(c.env.iter().filter_map(|k| (_ctx.env)(k)));
    }
    async fn sandbox(e: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        if !e.run_in_sandbox {
            // A plugin is real code with real effects: it runs only on the author's say.
            e.common.enabled = false;
            return Ok(Fake::Skipped);
        }
        // The plugin runs for real; point its output (and anything else that honours these
        // variables) into the run folder, never the author's.
        let out = ctx.dir.join(ctx.name);
        let wrap = |cmd: &mut Vec<String>| {
            let mut w = vec!["env".to_string(), "HERALD_SANDBOX=1".into(), format!("HERALD_PLUGIN_DIR={}", out.display())];
            w.append(cmd);
            *cmd = w;
        };
        wrap(&mut e.command);
        if let Some(c) = e.check_command.as_mut() {
            wrap(c);
        }
        Ok(Fake::Local(out))
    }
    fn sandbox_fragment(e: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set_value("command", toml::Value::Array(e.command.iter().map(|a| toml::Value::String(a.clone())).collect()));
    }
}
