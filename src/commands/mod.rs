//! One file per command. Each returns an [`ExitStatus`]; `main` maps it to the process code.

pub mod bounces;
pub mod cancel;
pub mod check;
pub mod connect;
pub mod credentials;
pub mod daemon;
pub mod log;
pub mod preview;
pub mod publish;
pub mod render;
pub mod republish;
pub mod retry;
pub mod sandbox;
pub mod status;
pub mod subscribers;

use std::path::PathBuf;

use crate::cli::{Cli, Command};
use crate::config::{self, LoadedConfig};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked: 0.
    Success,
    /// The command ran but the outcome is not what was asked (a delivery failed): 1.
    Failure,
    /// Bad input (config, issue, template, credential, too long): 2. Nothing was sent.
    Error,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        }
    }
}

/// Bad input: printed as is and mapped to exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Shared by every command: the CLI's global flags.
pub struct Globals {
    /// `--config`
    pub config: Option<PathBuf>,
}

impl Globals {
    /// Load the config (discovered as documented). A missing file is an error naming the places looked.
    pub fn load_config(&self) -> Result<LoadedConfig, InputError> {
        let path = config::discover(self.config.as_deref()).ok_or_else(|| {
            InputError("no config file: pass --config PATH, set HERALD_CONFIG, or create ./herald.toml (config/herald.toml is a complete example)".into())
        })?;
        config::load(&path).map_err(|e| InputError(e.to_string()))
    }
}

/// Run the parsed command.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitStatus> {
    let g = Globals { config: cli.config };
    match cli.command {
        Command::Render(a) => render::run(&g, a).await,
        Command::Preview(a) => preview::run(&g, a).await,
        Command::Check(a) => check::run(&g, a).await,
        Command::Publish(a) => publish::run(&g, a).await,
        Command::Status(a) => status::run(&g, a).await,
        Command::Log(a) => log::run(&g, a).await,
        Command::Republish(a) => republish::run(&g, a).await,
        Command::Retry(a) => retry::run(&g, a).await,
        Command::Cancel(a) => cancel::run(&g, a).await,
        Command::Daemon(a) => daemon::run(&g, a).await,
        Command::Subscribers(a) => subscribers::run(&g, a).await,
        Command::Bounces(a) => bounces::run(&g, a).await,
        Command::Sandbox(a) => sandbox::run(&g, a).await,
        Command::Connect(a) => connect::run(&g, a).await,
        Command::Credentials(a) => credentials::run(&g, a).await,
    }
}
