//! The `telegram` adapter: Bot API `sendMessage` to a channel, `parse_mode` HTML, one message per
//! post of the rendering (a long rendering is split into several, in order).

pub mod kind;
pub use kind::Telegram;

mod channel;

use std::sync::Arc;
use std::time::Duration;

pub use channel::TelegramChannel;

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// `@channelusername` (Telegram usernames: 5–32 of `a-z`, `0-9`, `_`; 4 are seen on old ones),
/// or a numeric chat id (`-100…` for a channel).
fn chat_id_ok(s: &str) -> bool {
    match s.strip_prefix('@') {
        Some(u) => (4..=32).contains(&u.len()) && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        None => s.parse::<i64>().is_ok(),
    }
}

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Telegram(c) = cfg else { anyhow::bail!("channel {name}: not a telegram channel") };
    if !chat_id_ok(&c.chat_id) {
        anyhow::bail!(
            "channel {name}: `chat_id` must be the channel's @username (`chat_id = \"@yourchannel\"`) or its numeric id (`chat_id = \"-1001234567890\"`); got `{}`",
            c.chat_id
        );
    }
    let token = ctx.secret(name, "bot_token", pick_secret(&c.bot_token, &c.bot_token_file))?;
    if token.expose().is_empty() || token.expose().contains(['/', '?', '#', ' ']) {
        anyhow::bail!("channel {name}: `bot_token` is not a Bot API token (it looks like `123456789:AA…`, as @BotFather gives it)");
    }
    Ok(Arc::new(TelegramChannel {
        api_base: c.api_base.trim_end_matches('/').to_string(),
        timeout: c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout),
        token,
        chat_id: c.chat_id.clone(),
        link_preview: c.link_preview,
    }))
}

#[cfg(test)]
mod tests {
    use super::chat_id_ok;

    #[test]
    fn chat_ids() {
        assert!(chat_id_ok("@herald_news"));
        assert!(chat_id_ok("-1001234567890"));
        assert!(!chat_id_ok("herald_news"));
        assert!(!chat_id_ok("@a b"));
        assert!(!chat_id_ok("https://t.me/herald_news"));
    }
}
