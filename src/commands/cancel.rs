//! `herald cancel`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::CancelArgs;

/// Run `herald cancel`.
pub async fn run(g: &Globals, args: CancelArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald cancel` is not built yet")
}
