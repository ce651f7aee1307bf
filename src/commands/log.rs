//! `herald log`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::LogArgs;

/// Run `herald log`.
pub async fn run(g: &Globals, args: LogArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald log` is not built yet")
}
