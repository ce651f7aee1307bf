//! The `email_api` adapter: the same mailing as `email` (same ledger, merge tags, unsubscribe
//! links), sent through Postmark's batch API, at most 500 messages per call.
//!
//! A 200 answer carries one result per message: ErrorCode 0 is sent, 406 (inactive recipient)
//! fails and suppresses the address, any other code fails it. HTTP 401/422/429/5xx go through
//! the shared classification and stop the pass; the recipients of that call stay owed.
//!
//! Each batch carries its own `Tag` and is recorded before the call; a batch whose outcome is
//! unknown is reconciled through Postmark's message search before anyone in it is sent again
//! ([`batches`]).

mod batches;
pub mod kind;
pub use kind::EmailApi;

mod channel;

use std::sync::Arc;
use std::time::Duration;

pub use batches::{BatchLedger, DEFAULT_SETTLE_SECS, MAX_SETTLE_SECS, Reconcile, Reconciler, batch_tag};
pub use channel::PostmarkSender;

use crate::channel::email::{self, EngineOptions, RecipientLedger};
use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, EmailApiConfig, pick_secret};

/// Most messages Postmark takes in one batch call.
pub const BATCH_LIMIT: usize = 500;

/// Build the adapter for channel `name` without a ledger (enough for `herald check`);
/// `deliver` refuses until the pipeline uses [`build_with_ledger`].
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::EmailApi(c) = cfg else {
        anyhow::bail!("channel {name}: not an email_api channel");
    };
    Ok(Arc::new(adapter(name, c, ctx)?))
}

/// Build the adapter with the store's recipient ledger: what the pipeline calls for an
/// `email_api` channel.
pub fn build_with_ledger(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx, ledger: Arc<dyn RecipientLedger>) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::EmailApi(c) = cfg else {
        anyhow::bail!("channel {name}: not an email_api channel");
    };
    Ok(Arc::new(adapter(name, c, ctx)?.with_ledger(ledger)))
}

/// The typed adapter.
pub fn adapter(name: &str, c: &EmailApiConfig, ctx: &BuildCtx) -> anyhow::Result<channel::EmailApiAdapter> {
    let key = email::unsubscribe_key(name, c.unsubscribe_secret.as_ref(), c.unsubscribe_secret_file.as_ref(), ctx)?;
    let composer = email::composer(name, &c.from, c.reply_to.as_deref(), &c.unsubscribe_base_url, None, key)?;
    let token = ctx.secret(name, "server_token", pick_secret(&c.server_token, &c.server_token_file))?;
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    let opts = EngineOptions {
        channel: name.to_string(),
        list: c.subscribers.clone(),
        concurrency: c.concurrency.max(1),
        max_per_second: None,
        batch_size: BATCH_LIMIT,
        recipient_retry: email::engine::DEFAULT_RECIPIENT_RETRY.to_vec(),
        pass_budget: Some(email::engine::pass_budget_for(timeout)),
    };
    let reconciler = Reconciler::new(&c.api_base, token.clone(), timeout, Duration::from_secs(c.reconcile_settle_secs.min(MAX_SETTLE_SECS)));
    let sender = PostmarkSender::new(&c.api_base, token, &c.message_stream, composer, timeout);
    Ok(channel::EmailApiAdapter::new(opts, sender, reconciler))
}
