//! `herald subscribers`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::SubscribersCommand;

/// Run `herald subscribers`.
pub async fn run(g: &Globals, args: SubscribersCommand) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald subscribers` is not built yet")
}
