//! All apalis wiring, and the pipeline the jobs drive: Publish (re-render from the stored
//! source, create the deliveries in one transaction) and Deliver (lease, reconcile, send,
//! record, reschedule). apalis appears only in this module.
//!
//! apalis delivers a job at least once, so every handler reads the delivery first and acts
//! only on what is still owed; Herald's tables are the truth, the queue only wakes workers.
//! Because apalis cannot join a transaction of Herald's store (another file or pool), jobs are
//! pushed after commit, and a sweeper re-pushes a job for any delivery still owed that has no
//! live job (an outbox discipline); an extra job is harmless.

pub mod bench;
pub mod cron;
pub mod decide;
pub mod deliver;
pub mod preflight;
pub mod publish;
pub mod queue;
pub mod schedule;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::channel::{Adapter, BuildCtx, DeliveryError};
use crate::config::LoadedConfig;
use crate::store::{Store, StoreUrl};

pub use queue::Queue;
pub use schedule::RetrySchedule;

/// The Publish job: ids only; the handler reloads the stored source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum PublishJob {
    /// Version 1.
    V1 {
        /// Issue slug.
        issue: String,
        /// Issue version (content hash).
        version: String,
    },
}

/// The Deliver job: the delivery's row id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum DeliverJob {
    /// Version 1.
    V1 {
        /// `deliveries.id`.
        delivery_id: i64,
    },
}

/// How long a worker holds a delivery's lease before another host may take it over. Longer
/// than any single adapter call (those are bounded by [`Pipeline::call_timeout`]).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(600);

/// The outer bound on one adapter call for a channel `timeout` under a `lease`: `2 × timeout +
/// 5 s`, never more than the lease less 5 s (saturating: a timeout of centuries is the lease).
pub fn call_timeout_for(timeout: Duration, lease: Duration) -> Duration {
    timeout.saturating_mul(2).saturating_add(Duration::from_secs(5)).min(lease.saturating_sub(Duration::from_secs(5)).max(Duration::from_secs(1)))
}

/// The store, the queue, the config and the adapters: everything a handler needs.
pub struct Pipeline {
    /// Herald's tables.
    pub store: Store,
    /// The apalis queue.
    pub queue: Queue,
    /// The loaded config.
    pub config: Arc<LoadedConfig>,
    /// Lease length.
    pub lease: Duration,
    /// When the scheduler's loop last came round, in ms since the epoch (0: not running).
    /// `/healthz` reports a scheduler stalled past [`cron::STALL_AFTER`].
    pub scheduler_beat: Arc<std::sync::atomic::AtomicI64>,
    /// Set when the workers are shutting down: a mailing stops between passes and hands the
    /// rest to the next process instead of starting another.
    pub stopping: std::sync::atomic::AtomicBool,
    /// The credential store (stored and rotated tokens), on `store`.
    pub vault: Arc<crate::credentials::Vault>,
    /// The most parsing and rendering one issue may take ([`publish::RENDER_BUDGET`] unless a
    /// test sets less).
    pub render_budget: Duration,
    adapters: Mutex<HashMap<String, Arc<dyn Adapter>>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("store", &self.store.url().display()).finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Open the store and the queue named by `[store] url`.
    pub async fn open(config: Arc<LoadedConfig>) -> anyhow::Result<Self> {
        let url = StoreUrl::parse(&config.config.store.url, &config.base_dir)?;
        Self::open_url(config, &url).await
    }

    /// Open the store and the queue at `url` (tests pass their own).
    pub async fn open_url(config: Arc<LoadedConfig>, url: &StoreUrl) -> anyhow::Result<Self> {
        let store = Store::open(url).await?.with_ledger_flush(std::time::Duration::from_millis(config.config.store.ledger_flush_ms));
        let queue = Queue::open(url, 4).await?;
        let vault = Arc::new(crate::credentials::Vault::from_config(store.clone(), &config));
        if !crate::credentials::renew_due(&vault, &config).await.is_empty() {
            tracing::debug!("Renewed credentials before building adapters.");
        }
        vault.preload().await?;
        Ok(Self { store, queue, config, lease: DEFAULT_LEASE, vault, render_budget: publish::RENDER_BUDGET, scheduler_beat: Arc::default(), stopping: Default::default(), adapters: Mutex::new(HashMap::new()) })
    }

    /// Renew the credentials that are due, reread the store, and rebuild the adapters whose
    /// credential changed (renewed here or elsewhere, or `herald connect` run again): the daemon
    /// calls this every minute; adapters hold the token they were built with.
    pub async fn renew_credentials(&self) {
        crate::credentials::renew_due(&self.vault, &self.config).await;
        let changed = match self.vault.preload().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "Cannot reread the credential store.");
                return;
            }
        };
        let mut cache = self.adapters.lock().expect("adapter cache");
        for c in changed {
            if cache.remove(&c).is_some() {
                tracing::info!(channel = %c, "The stored credential changed; the channel's adapter is rebuilt.");
            }
        }
    }

    /// Use this adapter for `channel` instead of building one from the config (tests).
    pub fn set_adapter(&self, channel: &str, adapter: Arc<dyn Adapter>) {
        self.adapters.lock().expect("adapter cache").insert(channel.to_string(), adapter);
    }

    /// The adapter for a channel, built on first use. A channel that no longer exists, or whose
    /// credentials are missing, is an error that ends the delivery with the reason.
    pub fn adapter(&self, channel: &str) -> Result<Arc<dyn Adapter>, DeliveryError> {
        if let Some(a) = self.adapters.lock().expect("adapter cache").get(channel) {
            return Ok(a.clone());
        }
        let cfg = self
            .config
            .config
            .channels
            .get(channel)
            .ok_or_else(|| DeliveryError::permanent(format!("channel {channel} is no longer in the config")))?;
        let ctx = self.build_ctx(channel);
        // Email adapters get the store's recipient ledger.
        let ledger = Arc::new(self.store.clone());
        let a = crate::channel::build_adapter_with_ledger(channel, cfg, &ctx, ledger).map_err(|e| DeliveryError::auth(format!("{e:#}")))?;
        let rebuild = crate::credentials::Rebuild { vault: self.vault.clone(), base_dir: self.config.base_dir.clone(), timeout: ctx.timeout };
        let a = crate::credentials::with_connect_hint(channel, cfg, a, Some(rebuild));
        self.adapters.lock().expect("adapter cache").insert(channel.to_string(), a.clone());
        Ok(a)
    }

    /// What building `channel`'s adapter needs: the process environment, the channel's
    /// timeout and the credential store.
    pub fn build_ctx(&self, channel: &str) -> BuildCtx {
        let mut ctx = BuildCtx::from_env(self.config.base_dir.clone());
        if let Some(t) = self.config.config.channels.get(channel).and_then(|c| c.common().timeout_secs) {
            // Validation bounds it; the clamp keeps a timer from overflowing whatever the source.
            ctx.timeout = Duration::from_secs(t.min(crate::config::validate::MAX_TIMEOUT_SECS as u64));
        }
        ctx.vault = Some(self.vault.clone());
        ctx
    }

    /// The retry schedule of a channel.
    pub fn schedule(&self, channel: &str) -> RetrySchedule {
        RetrySchedule::for_channel(&self.config.config.retry, self.config.config.channels.get(channel))
    }

    /// The outer bound on one adapter call: the channel's timeout plus a margin, and never more
    /// than the lease. Reaching it is an unknown outcome.
    pub fn call_timeout(&self, channel: &str) -> Duration {
        let t = self.config.config.channels.get(channel).and_then(|c| c.common().timeout_secs).unwrap_or(30);
        call_timeout_for(Duration::from_secs(t), self.lease)
    }

    /// How long the scheduler's loop has not come round, when it runs and is stalled past
    /// [`cron::STALL_AFTER`].
    pub fn scheduler_stalled(&self, now_ms: i64) -> Option<Duration> {
        cron::stalled(self.scheduler_beat.load(std::sync::atomic::Ordering::Relaxed), now_ms)
    }

    /// Close both pools.
    pub async fn close(&self) {
        self.queue.close().await;
        self.store.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_timeout_is_twice_the_channel_timeout_within_the_lease() {
        let lease = DEFAULT_LEASE;
        assert_eq!(call_timeout_for(Duration::from_secs(30), lease), Duration::from_secs(65));
        assert_eq!(call_timeout_for(Duration::from_secs(1000), lease), Duration::from_secs(595));
        assert_eq!(call_timeout_for(Duration::from_secs(u64::MAX), lease), Duration::from_secs(595), "saturates, never overflows");
        assert_eq!(call_timeout_for(Duration::from_secs(30), Duration::ZERO), Duration::from_secs(1));
        assert_eq!(crate::channel::email::engine::pass_budget_for(Duration::from_secs(u64::MAX)), Duration::from_secs(540));
    }
}
