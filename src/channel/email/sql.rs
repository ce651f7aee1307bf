//! The store's email tables as the adapter's [`RecipientLedger`] and the unsubscribe routes'
//! [`SuppressionList`]. The pipeline passes `Arc::new(store.clone())` to
//! [`super::build_with_ledger`]; the adapter itself only ever sees the traits.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::ledger::{LedgerProgress, Outcome, Recipient, RecipientLedger, RecipientResult, SuppressionList, Unsubscribed};
use crate::channel::{DeliveryError, error::excerpt};
use crate::store::email::{SendUpdate, SuppressOutcome};
use crate::store::Store;

/// Longest server reply kept per recipient.
const REPLY_MAX: usize = 300;

fn ledger_error(e: anyhow::Error) -> DeliveryError {
    // A store failure is not the network's answer: retry the delivery later.
    DeliveryError::retryable(format!("recipient ledger: {e:#}"))
}

fn short(s: &str) -> String {
    let mut t = excerpt(s);
    if t.len() > REPLY_MAX {
        let mut end = REPLY_MAX;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
    }
    t
}

/// Parse a stored JSON object of extra columns into variables (non-strings as JSON text).
pub fn vars_from_json(extra: &str) -> BTreeMap<String, String> {
    match serde_json::from_str::<serde_json::Value>(extra) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[async_trait]
impl RecipientLedger for Store {
    async fn seed(&self, delivery_id: i64, list: &str) -> Result<u64, DeliveryError> {
        self.seed_recipients(delivery_id, list).await.map(|n| n as u64).map_err(ledger_error)
    }

    async fn owed(&self, delivery_id: i64, after_id: i64, now_ms: i64, limit: usize) -> Result<Vec<Recipient>, DeliveryError> {
        let rows = self.owed_recipients(delivery_id, after_id, now_ms, limit as i64).await.map_err(ledger_error)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let skip = if r.suppressed {
                    Some("suppressed".to_string())
                } else if r.subscriber.is_none() {
                    Some("removed from the list".to_string())
                } else {
                    None
                };
                let (name, extra) = r.subscriber.unwrap_or_default();
                Recipient {
                    id: r.id,
                    email: r.email,
                    name,
                    vars: vars_from_json(&extra),
                    subscriber_id: r.subscriber_id,
                    attempts: r.attempts.max(0) as u32,
                    skip,
                }
            })
            .collect())
    }

    async fn record(&self, _delivery_id: i64, results: &[RecipientResult]) -> Result<(), DeliveryError> {
        let updates: Vec<SendUpdate> = results
            .iter()
            .map(|r| {
                let base = SendUpdate { id: r.id, email: r.email.clone(), state: "pending", code: None, reply: None, tried: true, retry_at: None, suppress: None };
                match &r.outcome {
                    Outcome::Sent { code, reply } => SendUpdate { state: "sent", code: Some(i64::from(*code)), reply: Some(short(reply)), ..base },
                    Outcome::Deferred { code, reply, retry_at_ms } => {
                        SendUpdate { code: Some(i64::from(*code)), reply: Some(short(reply)), retry_at: Some(*retry_at_ms), ..base }
                    }
                    Outcome::Failed { code, reply, suppress } => SendUpdate {
                        state: "failed",
                        code: Some(i64::from(*code)),
                        reply: Some(short(reply)),
                        suppress: suppress.then(|| short(&format!("bounce: {code} {reply}"))),
                        ..base
                    },
                    Outcome::Skipped { reason } => SendUpdate { state: "skipped", reply: Some(short(reason)), tried: false, ..base },
                }
            })
            .collect();
        self.record_sends(&updates).await.map_err(ledger_error)
    }

    async fn progress(&self, delivery_id: i64) -> Result<LedgerProgress, DeliveryError> {
        let c = self.send_counts(delivery_id).await.map_err(ledger_error)?;
        Ok(LedgerProgress {
            seeded: c.seeded,
            total: c.total as u64,
            sent: c.sent as u64,
            failed: c.failed as u64,
            skipped: c.skipped as u64,
            pending: c.pending as u64,
            next_due_ms: c.next_due,
        })
    }

    async fn release(&self) {
        self.release_writer().await;
    }

    fn batches(&self) -> Option<&dyn crate::channel::email_api::BatchLedger> {
        Some(self)
    }
}

#[async_trait]
impl SuppressionList for Store {
    async fn unsubscribe(&self, email: &str, reason: &str) -> anyhow::Result<Unsubscribed> {
        Ok(match self.suppress_subscriber(&email.to_lowercase(), reason).await? {
            SuppressOutcome::Added => Unsubscribed::Now,
            SuppressOutcome::Already => Unsubscribed::Already,
            SuppressOutcome::Unknown => Unsubscribed::Unknown,
        })
    }

    async fn subscriber_email(&self, id: i64) -> anyhow::Result<Option<String>> {
        self.subscriber_email_by_id(id).await
    }
}
