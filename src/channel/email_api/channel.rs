//! `EmailApiAdapter` and the Postmark batch call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::BATCH_LIMIT;
use super::batches::{Reconcile, Reconciler, batch_tag};
use crate::channel::email::compose::{Composer, LIST_UNSUBSCRIBE_POST, Mailing, format_mailbox};
use crate::channel::email::engine::{self, EngineOptions, Gate, Transport};
use crate::channel::email::{Outcome, Recipient, RecipientLedger};
use crate::channel::{Adapter, Delivered, DeliveryCtx, DeliveryError, Receipt, Reconciled, http};
use crate::config::SecretString;
use crate::render::Rendering;

/// Postmark's ErrorCode for a recipient marked inactive (hard bounce, complaint, suppression).
pub const INACTIVE_RECIPIENT: i64 = 406;

/// Delivers a mailing through Postmark.
pub struct EmailApiAdapter {
    opts: EngineOptions,
    sender: Arc<PostmarkSender>,
    ledger: Option<Arc<dyn RecipientLedger>>,
    reconciler: Reconciler,
}

impl EmailApiAdapter {
    /// An adapter over `sender`; `reconciler` looks up batches whose outcome is unknown.
    pub fn new(opts: EngineOptions, sender: PostmarkSender, reconciler: Reconciler) -> Self {
        Self { opts, sender: Arc::new(sender), ledger: None, reconciler }
    }

    /// Give it the recipient ledger (and, when the ledger keeps batches, the sender too: it
    /// records each batch there before the call).
    pub fn with_ledger(mut self, ledger: Arc<dyn RecipientLedger>) -> Self {
        if let Some(sender) = Arc::get_mut(&mut self.sender) {
            sender.ledger = Some(ledger.clone());
        }
        self.ledger = Some(ledger);
        self
    }

    /// Replace the waits before a deferred recipient is retried.
    pub fn with_recipient_retry(mut self, waits: Vec<Duration>) -> Self {
        self.opts.recipient_retry = waits;
        self
    }

}

#[async_trait]
impl Adapter for EmailApiAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        self.deliver_step(rendering, ctx).await.and_then(Delivered::into_receipt)
    }

    async fn deliver_step(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Delivered, DeliveryError> {
        // Batches in doubt first: nobody in one is sent again before Postmark's search says
        // whether it took them.
        if let Some(ledger) = &self.ledger
            && let Some(batches) = ledger.batches()
            && let Reconcile::Wait(after, note) = self.reconciler.reconcile(ledger.as_ref(), batches, ctx.delivery_id, engine::now_ms()).await?
        {
            return Ok(Delivered::Continue { after: Some(after), note });
        }
        engine::deliver("email_api", &self.opts, self.ledger.as_ref(), self.sender.clone(), rendering, ctx).await
    }

    async fn find_existing(&self, _rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        engine::find_existing("email_api", &self.opts, self.ledger.as_ref(), ctx).await
    }
}

/// One `POST {api_base}/email/batch` per ≤500 recipients.
pub struct PostmarkSender {
    url: String,
    token: SecretString,
    stream: String,
    composer: Composer,
    timeout: Duration,
    /// Where each batch is recorded before its call (the store's ledger, when it keeps batches).
    ledger: Option<Arc<dyn RecipientLedger>>,
}

impl PostmarkSender {
    /// A sender to `api_base` (e.g. `https://api.postmarkapp.com`).
    pub fn new(api_base: &str, token: SecretString, stream: &str, composer: Composer, timeout: Duration) -> Self {
        Self { url: format!("{}/email/batch", api_base.trim_end_matches('/')), token, stream: stream.to_string(), composer, timeout, ledger: None }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchResult {
    error_code: i64,
    #[serde(default)]
    message: String,
    #[serde(rename = "MessageID", default)]
    message_id: Option<String>,
}

#[async_trait]
impl Transport for PostmarkSender {
    fn batch_limit(&self) -> usize {
        BATCH_LIMIT
    }

    async fn send(&self, mailing: &Mailing, recipients: &[Recipient], gate: Gate) -> Result<Vec<Outcome>, DeliveryError> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; recipients.len()];
        let mut body = Vec::with_capacity(recipients.len());
        let mut index = Vec::with_capacity(recipients.len());
        let tag = batch_tag(&mailing.key_hash, recipients.first().map_or(0, |r| r.id));
        for (i, r) in recipients.iter().enumerate() {
            let personal = self.composer.personalize(mailing, r).and_then(|p| {
                let from = format_mailbox(&self.composer.from)?;
                let to = format_mailbox(&p.to)?;
                let reply_to = self.composer.reply_to.as_ref().map(format_mailbox).transpose()?;
                Ok((p, from, to, reply_to))
            });
            match personal {
                Ok((p, from, to, reply_to)) => {
                    let mut m = json!({
                        "From": from,
                        "To": to,
                        "Subject": p.subject,
                        "HtmlBody": p.html,
                        "TextBody": p.text,
                        "MessageStream": self.stream,
                        "Headers": [
                            { "Name": "List-Unsubscribe", "Value": p.list_unsubscribe },
                            { "Name": "List-Unsubscribe-Post", "Value": LIST_UNSUBSCRIBE_POST },
                            { "Name": "X-Herald-Message-ID", "Value": p.message_id },
                        ],
                        "Tag": tag,
                        "Metadata": { "herald_key": mailing.key },
                    });
                    if let Some(rt) = reply_to {
                        m["ReplyTo"] = Value::String(rt);
                    }
                    body.push(m);
                    index.push(i);
                }
                Err(e) => outcomes[i] = Some(Outcome::Failed { code: 0, reply: e, suppress: false }),
            }
        }
        if !body.is_empty() {
            // The call may reach recipients: the worker's previous batch must be recorded first.
            gate.wait().await?;
            // Recorded before the call: if its outcome is lost, the tag finds what Postmark took.
            let batches = self.ledger.as_ref().and_then(|l| l.batches());
            if let Some(b) = batches {
                let ids: Vec<i64> = index.iter().map(|&i| recipients[i].id).collect();
                b.open_batch(&tag, &ids).await?;
            }
            let req = http::client()
                .post(&self.url)
                .header("Accept", "application/json")
                .header("X-Postmark-Server-Token", self.token.expose())
                .timeout(self.timeout)
                .json(&body);
            let answer = match http::send(req).await {
                Ok(a) => a,
                Err(e) => {
                    // Nothing reached Postmark (no connection): no need to search for it.
                    if e.kind() != crate::channel::Kind::UnknownOutcome
                        && let Some(b) = batches
                    {
                        close_quietly(b, &tag, "refused").await;
                    }
                    return Err(e);
                }
            };
            if !answer.is_success() {
                // A 4xx refuses the whole call before anything is sent; a 5xx may come from a
                // server that took part of it: that batch stays open, to be searched.
                if (400..500).contains(&answer.status)
                    && let Some(b) = batches
                {
                    close_quietly(b, &tag, "refused").await;
                }
                return Err(answer.error());
            }
            let results: Vec<BatchResult> = answer.json()
                .map_err(|e| DeliveryError::unknown_outcome(format!("Postmark answered 200 with an unreadable body: {e}")))?;
            if results.len() != index.len() {
                return Err(DeliveryError::unknown_outcome(format!(
                    "Postmark answered {} results for {} messages",
                    results.len(),
                    index.len()
                )));
            }
            for (res, i) in results.into_iter().zip(index) {
                outcomes[i] = Some(match res.error_code {
                    0 => Outcome::Sent { code: 0, reply: res.message_id.unwrap_or(res.message) },
                    c => Outcome::Failed {
                        code: u16::try_from(c).unwrap_or(u16::MAX),
                        reply: res.message,
                        suppress: c == INACTIVE_RECIPIENT,
                    },
                });
            }
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every recipient has an outcome")).collect())
    }
}

/// Close a batch whose call was refused; if the store fails, the batch stays open and is
/// searched (and found empty) before its recipients are sent again.
async fn close_quietly(b: &dyn super::BatchLedger, tag: &str, state: &str) {
    if let Err(e) = b.close_batch(tag, state).await {
        tracing::warn!(error = %e, tag, "Could not close a Postmark batch; it will be searched before a resend.");
    }
}
