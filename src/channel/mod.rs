//! Adapters: the deliver half of every channel type.
//!
//! An adapter receives the stored [`Rendering`] and the delivery's key, sends it, and returns a
//! [`Receipt`] or a classified [`DeliveryError`]. It never renders and never touches the queue;
//! what it needs from the store (a thread's progress, a pre-call marker such as Bluesky's rkey)
//! it gets through the narrow [`Checkpoint`] handle in [`DeliveryCtx`].

pub mod build;
pub mod error;
pub mod http;
pub mod recording;
pub mod redact;
pub mod registry;
pub(crate) mod thread;

pub mod bluesky;
pub mod devto;
pub mod discord;
pub mod email;
pub mod email_api;
pub mod exec;
pub mod ghost;
pub mod hashnode;
pub mod linkedin;
pub mod mastodon;
pub mod slack;
pub mod substack;
pub mod telegram;
pub mod threads;
pub mod webhook;
pub mod wordpress;
pub mod x;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use build::{build_adapter, build_adapter_with_ledger};
pub use error::{DeliveryError, Kind};

use crate::render::Rendering;

/// What a successful delivery returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The network's id of the (first) post, message or draft.
    pub remote_id: String,
    /// A public URL, where the network has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// True when the adapter only prepared the work and a person must finish it
    /// (Substack `mode = "draft"`): the delivery becomes `awaiting_confirmation`.
    #[serde(default)]
    pub awaiting_confirmation: bool,
    /// A short note for the attempt log (e.g. "reconciled via getRecord").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What went wrong in a delivery that still succeeded (a mailing's failed recipients):
    /// kept as the delivery's `last_error`, so `status` and `/status` show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// What [`Adapter::deliver_step`] achieved when it did not fail: the adapter's half of the
/// typed seam; the pipeline's `decide` turns it (or the error) into the next state.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivered {
    /// Done: the network has it.
    Sent(Receipt),
    /// Prepared; a person must finish it (Substack `mode = "draft"`).
    AwaitingConfirmation(Receipt),
    /// More work is owed and nothing failed: a long mailing's pass ended for its time budget
    /// (`after: None`, go on at once), or everyone still owed is due later (`after`: the wait
    /// until the first is). Not an attempt, not a rate-limit wait, and never capped.
    Continue {
        /// How long until there is work again; `None`: at once.
        after: Option<std::time::Duration>,
        /// Progress, for `status` (e.g. "1200 of 5000 recipients still owed").
        note: String,
    },
}

impl From<Receipt> for Delivered {
    fn from(r: Receipt) -> Self {
        if r.awaiting_confirmation { Delivered::AwaitingConfirmation(r) } else { Delivered::Sent(r) }
    }
}

impl Delivered {
    /// For callers of the plain [`Adapter::deliver`]: the receipt, or a `Continue` as the
    /// rate-limited error it was before the typed answer (`Retry-After` = its wait).
    pub fn into_receipt(self) -> Result<Receipt, DeliveryError> {
        match self {
            Delivered::Sent(r) | Delivered::AwaitingConfirmation(r) => Ok(r),
            Delivered::Continue { after, note } => Err(DeliveryError::rate_limited(note, Some(after.unwrap_or_default()))),
        }
    }
}

/// The answer of [`Adapter::find_existing`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// The post is there: the delivery is `sent` with this receipt.
    Found(Receipt),
    /// The network says it is not there: a retry is safe.
    NotFound,
    /// The adapter can't tell; the delivery waits for the operator, with this reason.
    CannotCheck(String),
}

/// Durable per-delivery state an adapter keeps between attempts: the parts of a thread already
/// sent, a Bluesky rkey or a Threads container id chosen before the call. `save` commits before
/// it returns, so a crash right after it loses nothing.
#[async_trait]
pub trait Checkpoint: Send + Sync {
    /// The last saved state, if any.
    async fn load(&self) -> Result<Option<serde_json::Value>, DeliveryError>;
    /// Replace the state, durably.
    async fn save(&self, state: &serde_json::Value) -> Result<(), DeliveryError>;
}

/// A checkpoint held in memory, for `render`-side tests and adapter unit tests.
#[derive(Default)]
pub struct MemoryCheckpoint(std::sync::Mutex<Option<serde_json::Value>>);

#[async_trait]
impl Checkpoint for MemoryCheckpoint {
    async fn load(&self) -> Result<Option<serde_json::Value>, DeliveryError> {
        Ok(self.0.lock().expect("checkpoint lock").clone())
    }
    async fn save(&self, state: &serde_json::Value) -> Result<(), DeliveryError> {
        *self.0.lock().expect("checkpoint lock") = Some(state.clone());
        Ok(())
    }
}

/// Everything an adapter knows about the delivery it is working on.
pub struct DeliveryCtx {
    /// `{issue}/{channel}/r{revision}`: the idempotency key.
    pub key: String,
    /// The delivery's row id.
    pub delivery_id: i64,
    /// The issue's slug.
    pub issue: String,
    /// The channel's configured name.
    pub channel: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Durable adapter state for this delivery.
    pub checkpoint: Arc<dyn Checkpoint>,
}

impl DeliveryCtx {
    /// A context with an in-memory checkpoint (tests, dry runs).
    pub fn for_test(key: &str) -> Self {
        Self {
            key: key.to_string(),
            delivery_id: 0,
            issue: key.split('/').next().unwrap_or_default().to_string(),
            channel: key.split('/').nth(1).unwrap_or_default().to_string(),
            attempt: 1,
            checkpoint: Arc::new(MemoryCheckpoint::default()),
        }
    }
    /// Load the checkpoint as `T` (default when empty).
    pub async fn load_state<T: DeserializeOwned + Default>(&self) -> Result<T, DeliveryError> {
        match self.checkpoint.load().await? {
            None => Ok(T::default()),
            Some(v) => serde_json::from_value(v)
                .map_err(|e| DeliveryError::permanent(format!("corrupt checkpoint: {e}"))),
        }
    }
    /// Save `T` as the checkpoint, durably.
    pub async fn save_state<T: Serialize>(&self, state: &T) -> Result<(), DeliveryError> {
        let v = serde_json::to_value(state)
            .map_err(|e| DeliveryError::permanent(format!("checkpoint encode: {e}")))?;
        self.checkpoint.save(&v).await
    }
}

/// Progress of a multi-part delivery (a thread), kept in the checkpoint. Part `i` is sent
/// when `parts[i].remote_id` is set; a network-specific marker saved *before* the call
/// (`prepared`) lets reconciliation find a part whose answer was lost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ThreadProgress {
    /// One entry per part, in order, for the parts started so far.
    pub parts: Vec<PartState>,
}

/// One part of a thread.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PartState {
    /// Set once the network confirmed the part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Public URL of the part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Network-specific data saved before the call or from its answer (rkey, cid, container id).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub prepared: serde_json::Value,
}

/// The deliver half of a channel. One instance per configured channel, shared by workers.
#[async_trait]
pub trait Adapter: Send + Sync {
    /// Send the rendering. Must be safe to call again with the same `ctx.key` after a failure:
    /// use the checkpoint to skip parts already sent and to reuse pre-call markers.
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError>;

    /// What the pipeline calls: [`Adapter::deliver`] as a typed answer. Adapters that can end
    /// with more work owed and nothing failed (a mailing's pass) override it to answer
    /// [`Delivered::Continue`].
    async fn deliver_step(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Delivered, DeliveryError> {
        self.deliver(rendering, ctx).await.map(Delivered::from)
    }

    /// After an unknown outcome or a crash mid-send: is the post already there?
    async fn find_existing(&self, _rendering: &Rendering, _ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        Ok(Reconciled::CannotCheck("this channel type offers no way to check for an earlier post".into()))
    }

    /// Check the credentials and reachability, without posting.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// Before anything is stored or sent: is there a limit of the remote side this rendering
    /// surely breaks (the SIZE an SMTP server advertises)? `Err` is the reason, for exit 2.
    async fn preflight(&self, _rendering: &Rendering) -> Result<(), String> {
        Ok(())
    }
}

/// An environment lookup for `${VAR}` secrets.
pub type EnvFn = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What building an adapter may need beyond its own config table.
pub struct BuildCtx {
    /// Environment lookup for `${VAR}` secrets (the process env, or a test's own).
    pub env: EnvFn,
    /// Folder relative paths (secret files, the exec command, images) resolve against.
    pub base_dir: std::path::PathBuf,
    /// Default per-request timeout.
    pub timeout: std::time::Duration,
    /// The credential store, where adapters read stored credentials and keep rotated ones
    /// (`None`: config secrets only, rotations kept in memory).
    pub vault: Option<Arc<crate::credentials::Vault>>,
}

impl BuildCtx {
    /// Read secrets from the process environment.
    pub fn from_env(base_dir: std::path::PathBuf) -> Self {
        Self { env: Box::new(|k| std::env::var(k).ok()), base_dir, timeout: http::DEFAULT_TIMEOUT, vault: None }
    }
    /// The channel's stored credential (from `herald connect` or a rotation), preloaded by the
    /// pipeline; `Ok(None)` when there is none or no credential store.
    pub fn stored(&self, channel: &str) -> anyhow::Result<Option<crate::credentials::Loaded>> {
        match self.vault.as_ref().and_then(|v| v.stored(channel)) {
            None => Ok(None),
            Some(Ok(l)) => Ok(Some(l)),
            Some(Err(e)) => Err(anyhow::anyhow!("{e}")),
        }
    }

    /// A secret from the stored credential when there is one (it wins), else from the config.
    pub fn stored_or_secret(&self, channel: &str, key: &str, s: Option<crate::config::Secret>) -> anyhow::Result<crate::config::SecretString> {
        if let Some(v) = self.stored(channel)?.and_then(|l| l.secrets.get(key)) {
            return Ok(v);
        }
        if s.is_none() && self.vault.is_some() {
            anyhow::bail!("channel {channel}: no credential: run `herald connect {channel}`, or give `{key} = \"${{ENV_VAR}}\"` (or `{key}_file`) in the config");
        }
        self.secret(channel, key, s)
    }

    /// Resolve a secret, naming the channel and key (never the value) when it is missing.
    pub fn secret(&self, channel: &str, key: &str, s: Option<crate::config::Secret>) -> anyhow::Result<crate::config::SecretString> {
        let s = s.ok_or_else(|| anyhow::anyhow!("channel {channel}: `{key}` is required (write `{key} = \"${{ENV_VAR}}\"` or `{key}_file = \"/path\"`)"))?;
        s.resolve_with(&|k| (self.env)(k)).map_err(|e| anyhow::anyhow!("channel {channel}: `{key}`: {e}"))
    }
}
