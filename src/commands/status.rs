//! `herald status`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::StatusArgs;

/// Run `herald status`.
pub async fn run(g: &Globals, args: StatusArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald status` is not built yet")
}
