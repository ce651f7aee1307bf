//! `herald republish`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::RepublishArgs;

/// Run `herald republish`.
pub async fn run(g: &Globals, args: RepublishArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald republish` is not built yet")
}
