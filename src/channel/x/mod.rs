//! The `x` adapter. (Not built yet: `build` refuses.)

use std::sync::Arc;

use crate::channel::{Adapter, BuildCtx};
use crate::config::ChannelConfig;

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let _ = (cfg, ctx);
    anyhow::bail!("channel {name}: the x adapter is not built yet")
}
