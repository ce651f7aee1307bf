//! `herald render`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::RenderArgs;

/// Run `herald render`.
pub async fn run(g: &Globals, args: RenderArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald render` is not built yet")
}
