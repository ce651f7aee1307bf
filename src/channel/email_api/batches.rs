//! Batch reconciliation. Postmark has no idempotency key, so a batch call whose outcome is
//! unknown (the process was killed, the call timed out, the connection was reset after the
//! request went out) cannot simply be sent again: Postmark may have taken all 500 messages.
//!
//! Each batch carries a `Tag` unique to (mailing, batch) and is recorded with its recipients
//! ([`BatchLedger::open_batch`]) before the call. Before a pass sends anything, every batch of
//! the delivery still `open` with recipients pending is looked up with Postmark's outbound
//! message search (`GET /messages/outbound?tag=…`): whoever it shows is recorded `sent`; only
//! the others stay owed and are sent again, in a new batch with a new tag.
//!
//! The search is an index and may lag behind the send. An answer is trusted only once the
//! call's timeout and `reconcile_settle_secs` have passed since the batch was recorded; until
//! then the pass waits (a `Continue` with a wait). A message Postmark accepted but had not
//! indexed by then is sent again: that is the residual window (README, "Postmark batches").

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::channel::email::{Outcome, RecipientLedger, RecipientResult};
use crate::channel::{DeliveryError, Kind, http};
use crate::config::SecretString;
use crate::store::Store;
use crate::store::postmark::OpenBatchRow;

/// Most messages one search page returns (Postmark: `count` max 500).
pub const SEARCH_PAGE: u64 = 500;
/// Postmark's search returns at most this many messages (`count + offset` ≤ 10,000).
pub const SEARCH_WINDOW: u64 = 10_000;
/// The default `reconcile_settle_secs`. Postmark documents no indexing delay for its message
/// search; in practice a message is searchable within seconds. Ten seconds, past the call's
/// own timeout, is a margin, not a guarantee.
pub const DEFAULT_SETTLE_SECS: u64 = 10;
/// The largest `reconcile_settle_secs` the config takes.
pub const MAX_SETTLE_SECS: u64 = 600;

/// Where batch calls are recorded before they are made. The store implements it.
#[async_trait]
pub trait BatchLedger: Send + Sync {
    /// Record a batch (its tag and ledger rows) before the call.
    async fn open_batch(&self, tag: &str, send_ids: &[i64]) -> Result<(), DeliveryError>;
    /// The call was answered with a refusal of the whole batch (`refused`), or the batch was
    /// reconciled (`reconciled`): nothing more to look up.
    async fn close_batch(&self, tag: &str, state: &str) -> Result<(), DeliveryError>;
    /// The delivery's open batches with recipients still pending, oldest first.
    async fn open_batches(&self, delivery_id: i64) -> Result<Vec<OpenBatchRow>, DeliveryError>;
}

fn store_error(e: anyhow::Error) -> DeliveryError {
    DeliveryError::retryable(format!("Postmark batch ledger: {e:#}"))
}

#[async_trait]
impl BatchLedger for Store {
    async fn open_batch(&self, tag: &str, send_ids: &[i64]) -> Result<(), DeliveryError> {
        self.open_postmark_batch(tag, send_ids).await.map_err(store_error)
    }
    async fn close_batch(&self, tag: &str, state: &str) -> Result<(), DeliveryError> {
        self.close_postmark_batch(tag, state).await.map_err(store_error)
    }
    async fn open_batches(&self, delivery_id: i64) -> Result<Vec<OpenBatchRow>, DeliveryError> {
        self.open_postmark_batches(delivery_id).await.map_err(store_error)
    }
}

/// A tag unique to (mailing, batch): the mailing's key hash, the batch's first ledger row and
/// a random part (a row sent again goes in a batch with a new tag). Postmark takes up to 1,000
/// characters; this is 42.
pub fn batch_tag(key_hash: &str, first_id: i64) -> String {
    format!("herald-{key_hash}-{first_id}-{:08x}", rand::random::<u32>())
}

/// What reconciliation left to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconcile {
    /// No batch is in doubt: the pass may send whoever is owed.
    Clear,
    /// A batch is in doubt and its search cannot be trusted yet: wait this long.
    Wait(Duration, String),
}

/// Looks up batches in doubt with Postmark's outbound message search.
pub struct Reconciler {
    url: String,
    token: SecretString,
    /// The call timeout: a batch may have been taken up to this long after it was recorded.
    timeout: Duration,
    /// How long after that the search is trusted to show what Postmark took.
    settle: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SearchPage {
    total_count: u64,
    #[serde(default)]
    messages: Vec<FoundMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FoundMessage {
    #[serde(rename = "MessageID")]
    message_id: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    to: Vec<FoundAddress>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FoundAddress {
    email: String,
}

impl Reconciler {
    /// A reconciler against `api_base`.
    pub fn new(api_base: &str, token: SecretString, timeout: Duration, settle: Duration) -> Self {
        Self { url: format!("{}/messages/outbound", api_base.trim_end_matches('/')), token, timeout, settle }
    }

    /// When a batch recorded at `opened_at` (unix ms) may be looked up.
    fn ready_at(&self, opened_at: i64) -> i64 {
        opened_at.saturating_add((self.timeout + self.settle).as_millis() as i64)
    }

    /// Every address Postmark shows under `tag`, with its MessageID.
    pub async fn search(&self, tag: &str) -> Result<HashMap<String, String>, DeliveryError> {
        let mut found = HashMap::new();
        let mut offset = 0u64;
        loop {
            let count = SEARCH_PAGE.min(SEARCH_WINDOW - offset);
            let req = http::client()
                .get(&self.url)
                .query(&[("count", count.to_string()), ("offset", offset.to_string()), ("tag", tag.to_string())])
                .header("Accept", "application/json")
                .header("X-Postmark-Server-Token", self.token.expose())
                .timeout(self.timeout);
            // A search changes nothing: a lost answer is a plain retry, never an unknown outcome.
            let answer = http::send(req).await.map_err(|e| match e.kind() {
                Kind::UnknownOutcome => DeliveryError::retryable(format!("Postmark's message search: {}", e.message())),
                _ => e,
            })?;
            if !answer.is_success() {
                return Err(answer.error());
            }
            let page: SearchPage = answer
                .json()
                .map_err(|e| DeliveryError::retryable(format!("Postmark's message search answered an unreadable body: {e}")))?;
            let n = page.messages.len() as u64;
            for m in page.messages {
                if m.tag.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case(tag)) {
                    continue;
                }
                let addrs = m.recipients.into_iter().chain(m.to.into_iter().map(|a| a.email));
                for a in addrs {
                    found.entry(a.trim().to_lowercase()).or_insert_with(|| m.message_id.clone());
                }
            }
            offset += n;
            if n == 0 || offset >= page.total_count || offset >= SEARCH_WINDOW {
                break;
            }
        }
        Ok(found)
    }

    /// Reconcile the delivery's batches in doubt: record whom the search shows as sent and
    /// close each batch, or say how long to wait before its search can be trusted.
    pub async fn reconcile(&self, ledger: &dyn RecipientLedger, batches: &dyn BatchLedger, delivery_id: i64, now_ms: i64) -> Result<Reconcile, DeliveryError> {
        let open = batches.open_batches(delivery_id).await?;
        let mut wait: Option<i64> = None;
        let mut in_doubt = 0usize;
        for b in open {
            let ready = self.ready_at(b.opened_at);
            if now_ms < ready {
                wait = Some(wait.map_or(ready - now_ms, |w| w.max(ready - now_ms)));
                in_doubt += b.pending.len();
                continue;
            }
            let found = self.search(&b.tag).await?;
            let results: Vec<RecipientResult> = b
                .pending
                .iter()
                .filter_map(|(id, email)| {
                    found.get(email).map(|mid| RecipientResult {
                        id: *id,
                        email: email.clone(),
                        outcome: Outcome::Sent { code: 0, reply: format!("{mid} (found by Postmark's search for tag {})", b.tag) },
                    })
                })
                .collect();
            ledger.record(delivery_id, &results).await?;
            batches.close_batch(&b.tag, "reconciled").await?;
            tracing::info!(
                tag = %b.tag,
                in_doubt = b.pending.len(),
                found = results.len(),
                resend = b.pending.len() - results.len(),
                "Reconciled a Postmark batch whose outcome was unknown."
            );
        }
        ledger.release().await;
        Ok(match wait {
            Some(ms) => Reconcile::Wait(
                Duration::from_millis(ms.max(0) as u64),
                format!("{in_doubt} recipients in Postmark batches whose outcome is unknown; searching by tag once the index has settled"),
            ),
            None => Reconcile::Clear,
        })
    }
}
