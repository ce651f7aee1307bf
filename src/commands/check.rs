//! `herald check`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::CheckArgs;

/// Run `herald check`.
pub async fn run(g: &Globals, args: CheckArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald check` is not built yet")
}
