//! `herald daemon`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::DaemonArgs;

/// Run `herald daemon`.
pub async fn run(g: &Globals, args: DaemonArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald daemon` is not built yet")
}
