//! `herald publish`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::PublishArgs;

/// Run `herald publish`.
pub async fn run(g: &Globals, args: PublishArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald publish` is not built yet")
}
