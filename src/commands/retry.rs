//! `herald retry`. (Not built yet.)

use super::{ExitStatus, Globals};
use crate::cli::RetryArgs;

/// Run `herald retry`.
pub async fn run(g: &Globals, args: RetryArgs) -> anyhow::Result<ExitStatus> {
    let _ = (g, args);
    anyhow::bail!("`herald retry` is not built yet")
}
