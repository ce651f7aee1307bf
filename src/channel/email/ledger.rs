//! The recipient ledger: what a mailing still owes, one row per (delivery, subscriber).
//!
//! The pipeline hands the adapter a [`RecipientLedger`]; the adapter never reaches the store or
//! the queue. The store implements it over SQL (`src/channel/email/sql.rs`); [`MemoryLedger`]
//! implements it in memory for unit tests and dry runs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::channel::DeliveryError;

/// One recipient still owed a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The ledger row id (increasing in the order rows were seeded).
    pub id: i64,
    /// The address (lowercase).
    pub email: String,
    /// The subscriber's name (may be empty).
    pub name: String,
    /// The subscriber's other CSV columns, keys normalised.
    pub vars: BTreeMap<String, String>,
    /// The subscriber's row id, which its unsubscribe token names (`None`: removed since the
    /// mailing was seeded; the token then names the address).
    pub subscriber_id: Option<i64>,
    /// Tries so far (each 4xx deferral counts one).
    pub attempts: u32,
    /// Set when the address must not be mailed after all: it was suppressed, or removed from
    /// the list, since the mailing was seeded. The adapter records it as skipped.
    pub skip: Option<String>,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server accepted the message.
    Sent {
        /// Reply code (250) or 0 for an API.
        code: u16,
        /// The server's reply or the API's message id.
        reply: String,
    },
    /// A temporary refusal (SMTP 4xx): still owed, not before `retry_at_ms`.
    Deferred {
        /// Reply code.
        code: u16,
        /// The server's reply.
        reply: String,
        /// Unix milliseconds.
        retry_at_ms: i64,
    },
    /// A permanent refusal (SMTP 5xx, API error): never retried in this mailing.
    Failed {
        /// Reply or error code.
        code: u16,
        /// The reply.
        reply: String,
        /// A hard bounce: add the address to the suppression list.
        suppress: bool,
    },
    /// Not sent, on purpose (suppressed or removed meanwhile).
    Skipped {
        /// Why.
        reason: String,
    },
}

/// One recipient's outcome, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    /// The ledger row.
    pub id: i64,
    /// The address.
    pub email: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Counts for one mailing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerProgress {
    /// The ledger was seeded (the mailing started).
    pub seeded: bool,
    /// Rows in the ledger.
    pub total: u64,
    /// Accepted by the server.
    pub sent: u64,
    /// Refused permanently.
    pub failed: u64,
    /// Not sent on purpose.
    pub skipped: u64,
    /// Still owed.
    pub pending: u64,
    /// The earliest `retry_at` among pending rows deferred by a 4xx, unix ms.
    pub next_due_ms: Option<i64>,
}

/// The ledger of one store. Every call names the delivery, so one handle serves all mailings.
#[async_trait]
pub trait RecipientLedger: Send + Sync {
    /// On first use for `delivery_id`, add one `pending` row per subscriber of `list` who is not
    /// suppressed, in one transaction; later calls change nothing (the audience of a mailing is
    /// fixed when it starts). Returns the number of rows the ledger holds.
    async fn seed(&self, delivery_id: i64, list: &str) -> Result<u64, DeliveryError>;

    /// Up to `limit` pending rows with an id above `after_id` that are due by `now_ms`, in id
    /// order, with the subscriber's current variables.
    async fn owed(&self, delivery_id: i64, after_id: i64, now_ms: i64, limit: usize) -> Result<Vec<Recipient>, DeliveryError>;

    /// Record outcomes in one transaction; hard bounces are added to the suppression list in
    /// the same transaction.
    async fn record(&self, delivery_id: i64, results: &[RecipientResult]) -> Result<(), DeliveryError>;

    /// The mailing's counts.
    async fn progress(&self, delivery_id: i64) -> Result<LedgerProgress, DeliveryError>;

    /// The pass is over: let go of anything held for recording (the store's writer connection).
    async fn release(&self) {}

    /// Where a batch API records its calls before making them (`email_api`: Postmark batches,
    /// reconciled by tag after an unknown outcome). `None`: this ledger keeps no batches, and a
    /// batch with an unknown outcome is sent again.
    fn batches(&self) -> Option<&dyn crate::channel::email_api::BatchLedger> {
        None
    }
}

/// Whether an unsubscribe changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsubscribed {
    /// The address is now suppressed.
    Now,
    /// It already was.
    Already,
    /// Not a subscriber and not suppressed: nothing changed.
    Unknown,
}

/// The one write the unsubscribe routes need.
#[async_trait]
pub trait SuppressionList: Send + Sync {
    /// Suppress a subscriber's address (lowercase) with this reason.
    async fn unsubscribe(&self, email: &str, reason: &str) -> anyhow::Result<Unsubscribed>;
    /// The address of the subscriber with this row id (an opaque token names the id).
    async fn subscriber_email(&self, id: i64) -> anyhow::Result<Option<String>>;
}

/// A subscriber held by [`MemoryLedger`].
#[derive(Debug, Clone)]
struct MemSubscriber {
    id: i64,
    email: String,
    name: String,
    list: String,
    vars: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct MemRow {
    id: i64,
    email: String,
    state: &'static str,
    code: Option<u16>,
    reply: Option<String>,
    attempts: u32,
    retry_at: Option<i64>,
}

#[derive(Default)]
struct Mem {
    subscribers: Vec<MemSubscriber>,
    suppressed: HashMap<String, String>,
    rows: HashMap<i64, Vec<MemRow>>,
    seeded: HashSet<i64>,
    next_id: i64,
    record_calls: usize,
}

/// An in-memory ledger, subscriber list and suppression list.
#[derive(Default)]
pub struct MemoryLedger(Mutex<Mem>);

impl MemoryLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add (or replace) a subscriber.
    pub fn add_subscriber(&self, email: &str, name: &str, list: &str, vars: BTreeMap<String, String>) {
        let email = email.to_lowercase();
        let mut g = self.lock();
        g.subscribers.retain(|s| s.email != email);
        g.next_id += 1;
        let id = g.next_id;
        g.subscribers.push(MemSubscriber { id, email, name: name.into(), list: list.into(), vars });
    }

    /// Remove a subscriber.
    pub fn remove_subscriber(&self, email: &str) {
        let email = email.to_lowercase();
        self.lock().subscribers.retain(|s| s.email != email);
    }

    /// Suppress an address.
    pub fn suppress(&self, email: &str, reason: &str) {
        self.lock().suppressed.insert(email.to_lowercase(), reason.to_string());
    }

    /// The suppression list: address → reason.
    pub fn suppressed(&self) -> HashMap<String, String> {
        self.lock().suppressed.clone()
    }

    /// A row's state, code and attempts (tests).
    pub fn row(&self, delivery_id: i64, email: &str) -> Option<(String, Option<u16>, u32)> {
        let g = self.lock();
        g.rows.get(&delivery_id)?.iter().find(|r| r.email == email).map(|r| (r.state.to_string(), r.code, r.attempts))
    }

    /// How many `record` transactions were made.
    pub fn record_calls(&self) -> usize {
        self.lock().record_calls
    }
}

#[async_trait]
impl RecipientLedger for MemoryLedger {
    async fn seed(&self, delivery_id: i64, list: &str) -> Result<u64, DeliveryError> {
        let mut g = self.lock();
        if g.seeded.insert(delivery_id) {
            let emails: Vec<String> = g
                .subscribers
                .iter()
                .filter(|s| s.list == list && !g.suppressed.contains_key(&s.email))
                .map(|s| s.email.clone())
                .collect();
            let mut rows = Vec::with_capacity(emails.len());
            for email in emails {
                g.next_id += 1;
                rows.push(MemRow { id: g.next_id, email, state: "pending", code: None, reply: None, attempts: 0, retry_at: None });
            }
            g.rows.insert(delivery_id, rows);
        }
        Ok(g.rows.get(&delivery_id).map_or(0, |r| r.len() as u64))
    }

    async fn owed(&self, delivery_id: i64, after_id: i64, now_ms: i64, limit: usize) -> Result<Vec<Recipient>, DeliveryError> {
        let g = self.lock();
        let Some(rows) = g.rows.get(&delivery_id) else { return Ok(Vec::new()) };
        Ok(rows
            .iter()
            .filter(|r| r.id > after_id && r.state == "pending" && r.retry_at.is_none_or(|t| t <= now_ms))
            .take(limit)
            .map(|r| {
                let sub = g.subscribers.iter().find(|s| s.email == r.email);
                let skip = if g.suppressed.contains_key(&r.email) {
                    Some("suppressed".to_string())
                } else if sub.is_none() {
                    Some("removed from the list".to_string())
                } else {
                    None
                };
                Recipient {
                    id: r.id,
                    email: r.email.clone(),
                    name: sub.map(|s| s.name.clone()).unwrap_or_default(),
                    vars: sub.map(|s| s.vars.clone()).unwrap_or_default(),
                    subscriber_id: sub.map(|s| s.id),
                    attempts: r.attempts,
                    skip,
                }
            })
            .collect())
    }

    async fn record(&self, delivery_id: i64, results: &[RecipientResult]) -> Result<(), DeliveryError> {
        let mut g = self.lock();
        g.record_calls += 1;
        let mut bounces = Vec::new();
        let rows = g.rows.entry(delivery_id).or_default();
        for res in results {
            let Some(row) = rows.iter_mut().find(|r| r.id == res.id) else { continue };
            match &res.outcome {
                Outcome::Sent { code, reply } => {
                    row.state = "sent";
                    row.code = Some(*code);
                    row.reply = Some(reply.clone());
                    row.attempts += 1;
                }
                Outcome::Deferred { code, reply, retry_at_ms } => {
                    row.code = Some(*code);
                    row.reply = Some(reply.clone());
                    row.attempts += 1;
                    row.retry_at = Some(*retry_at_ms);
                }
                Outcome::Failed { code, reply, suppress } => {
                    row.state = "failed";
                    row.code = Some(*code);
                    row.reply = Some(reply.clone());
                    row.attempts += 1;
                    if *suppress {
                        bounces.push((row.email.clone(), format!("bounce: {code} {reply}")));
                    }
                }
                Outcome::Skipped { reason } => {
                    row.state = "skipped";
                    row.reply = Some(reason.clone());
                }
            }
        }
        for (email, reason) in bounces {
            g.suppressed.entry(email).or_insert(reason);
        }
        Ok(())
    }

    async fn progress(&self, delivery_id: i64) -> Result<LedgerProgress, DeliveryError> {
        let g = self.lock();
        let mut p = LedgerProgress { seeded: g.seeded.contains(&delivery_id), ..Default::default() };
        for r in g.rows.get(&delivery_id).into_iter().flatten() {
            p.total += 1;
            match r.state {
                "sent" => p.sent += 1,
                "failed" => p.failed += 1,
                "skipped" => p.skipped += 1,
                _ => {
                    p.pending += 1;
                    if let Some(t) = r.retry_at {
                        p.next_due_ms = Some(p.next_due_ms.map_or(t, |m: i64| m.min(t)));
                    }
                }
            }
        }
        Ok(p)
    }
}

#[async_trait]
impl SuppressionList for MemoryLedger {
    async fn unsubscribe(&self, email: &str, reason: &str) -> anyhow::Result<Unsubscribed> {
        let email = email.to_lowercase();
        let mut g = self.lock();
        if g.suppressed.contains_key(&email) {
            return Ok(Unsubscribed::Already);
        }
        if !g.subscribers.iter().any(|s| s.email == email) {
            return Ok(Unsubscribed::Unknown);
        }
        g.suppressed.insert(email, reason.to_string());
        Ok(Unsubscribed::Now)
    }

    async fn subscriber_email(&self, id: i64) -> anyhow::Result<Option<String>> {
        Ok(self.lock().subscribers.iter().find(|s| s.id == id).map(|s| s.email.clone()))
    }
}
