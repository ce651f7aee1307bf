//! `EmailAdapter`: a mailing over SMTP with lettre's pooled async transport.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::compose::{Composer, Mailing};
use super::direct::{DirectError, DirectPool, Open};
use super::engine::{self, Calls, EngineOptions, Gate, Session, Transport};
use super::ledger::{Outcome, Recipient, RecipientLedger};
use crate::channel::{Adapter, Delivered, DeliveryCtx, DeliveryError, Receipt, Reconciled};
use crate::render::Rendering;

/// SMTP reply codes that mean the credentials were refused: the whole mailing stops.
const AUTH_CODES: &[u16] = &[530, 534, 535, 538];

/// The SMTP client: Herald's `TCP_NODELAY` pool for `smtp://`, lettre's pool for `smtps://`.
pub enum Smtp {
    /// lettre's pooled transport.
    Lettre(AsyncSmtpTransport<Tokio1Executor>),
    /// Herald's pool of lettre connections (see [`super::direct`]).
    Direct(DirectPool),
}

/// Delivers a mailing to a subscriber list through one SMTP relay.
pub struct EmailAdapter {
    opts: EngineOptions,
    composer: Arc<Composer>,
    smtp: Arc<SmtpSender>,
    ledger: Option<Arc<dyn RecipientLedger>>,
}

impl EmailAdapter {
    /// An adapter sending through `transport` (built by [`super::build`]).
    pub fn new(opts: EngineOptions, composer: Composer, transport: Smtp) -> Self {
        let composer = Arc::new(composer);
        Self { opts, smtp: Arc::new(SmtpSender { transport, composer: composer.clone() }), composer, ledger: None }
    }

    /// Give it the recipient ledger (the pipeline passes the store's).
    pub fn with_ledger(mut self, ledger: Arc<dyn RecipientLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Replace the waits before a deferred recipient is retried (tests shorten them).
    pub fn with_recipient_retry(mut self, waits: Vec<Duration>) -> Self {
        self.opts.recipient_retry = waits;
        self
    }

    /// Replace the pass budget (`None`: no limit).
    pub fn with_pass_budget(mut self, budget: Option<Duration>) -> Self {
        self.opts.pass_budget = budget;
        self
    }

    /// The composer (unsubscribe URLs, Message-IDs).
    pub fn composer(&self) -> &Composer {
        &self.composer
    }

}

#[async_trait]
impl Adapter for EmailAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        self.deliver_step(rendering, ctx).await.and_then(Delivered::into_receipt)
    }

    async fn deliver_step(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Delivered, DeliveryError> {
        engine::deliver("email", &self.opts, self.ledger.as_ref(), self.smtp.clone(), rendering, ctx).await
    }

    async fn find_existing(&self, _rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        engine::find_existing("email", &self.opts, self.ledger.as_ref(), ctx).await
    }

    async fn preflight(&self, rendering: &Rendering) -> Result<(), String> {
        // Only Herald's own pool reads the EHLO extensions; lettre's transport keeps them private.
        let (Smtp::Direct(pool), Rendering::Email(r)) = (&self.smtp.transport, rendering) else { return Ok(()) };
        let Some(limit) = pool.size_limit().await else { return Ok(()) };
        // Every copy is at least its subject and both parts, before headers and encoding.
        let size = (r.subject.len() + r.html.len() + r.text.len()) as u64;
        if size > limit {
            return Err(format!(
                "channel {}: each message is at least {:.1} MB, over the {:.1} MB the SMTP server advertises (SIZE {limit}); every recipient would be refused",
                self.opts.channel,
                size as f64 / 1048576.0,
                limit as f64 / 1048576.0
            ));
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        match &self.smtp.transport {
            Smtp::Lettre(t) => match t.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(DeliveryError::retryable("the SMTP server did not answer NOOP")),
                Err(e) => Err(classify_call_error(&e)),
            },
            Smtp::Direct(p) => match p.check().await {
                Ok(()) => Ok(()),
                Err(DirectError::Smtp(e)) => Err(classify_call_error(&e)),
                Err(DirectError::Connect(m)) => Err(DeliveryError::retryable(m)),
                Err(DirectError::Stopped(e)) => Err(e),
            },
        }
    }
}

/// One recipient per SMTP transaction, over the pooled transport.
pub struct SmtpSender {
    transport: Smtp,
    composer: Arc<Composer>,
}

#[async_trait]
impl Transport for SmtpSender {
    fn batch_limit(&self) -> usize {
        1
    }

    async fn send(&self, mailing: &Mailing, recipients: &[Recipient], gate: Gate) -> Result<Vec<Outcome>, DeliveryError> {
        // One recipient per call (batch_limit), so one gate.
        let Some(r) = recipients.first() else { return Ok(Vec::new()) };
        debug_assert_eq!(recipients.len(), 1);
        match &self.transport {
            Smtp::Lettre(t) => {
                let message = match self.composer.message(mailing, r) {
                    Ok(m) => m,
                    Err(e) => return Ok(vec![Outcome::Failed { code: 0, reply: e, suppress: false }]),
                };
                gate.wait().await?;
                outcome(t.send(message).await.map_err(DirectError::Smtp))
            }
            Smtp::Direct(pool) => send_direct(pool, &self.composer, mailing, r, gate, None, &mut None).await,
        }
    }

    fn session(self: Arc<Self>) -> Box<dyn Session> {
        match &self.transport {
            Smtp::Direct(_) => Box::new(SmtpSession { sender: self, started: None }),
            Smtp::Lettre(_) => Box::new(Calls::new(self)),
        }
    }
}

/// The SMTP answer to one call, as its outcome (or an error for the call).
fn outcome(sent: Result<lettre::transport::smtp::response::Response, DirectError>) -> Result<Vec<Outcome>, DeliveryError> {
    Ok(vec![match sent {
        Ok(resp) => Outcome::Sent { code: u16::from(resp.code()), reply: resp.message().collect::<Vec<_>>().join(" ") },
        Err(DirectError::Smtp(e)) => classify(&e)?,
        Err(DirectError::Connect(m)) => return Err(DeliveryError::retryable(format!("SMTP connection: {m}"))),
        Err(DirectError::Stopped(e)) => return Err(e),
    }])
}

/// A worker's SMTP session on Herald's pool. While it sends a body it starts the worker's next
/// transaction in the same write (see [`DirectPool::finish`]): per message one write and one
/// wait for the server instead of two. The started transaction belongs to one recipient; a
/// call for anyone else, or the worker's end, closes its connection instead.
struct SmtpSession {
    sender: Arc<SmtpSender>,
    started: Option<Started>,
}

/// The next transaction, started: for which recipient, their message, and the server's answer
/// to its envelope.
struct Started {
    recipient: i64,
    message: Vec<u8>,
    open: Result<Open, DirectError>,
}

#[async_trait]
impl Session for SmtpSession {
    async fn send(&mut self, mailing: &Mailing, recipients: &[Recipient], gate: Gate, next: Option<&[Recipient]>) -> Result<Vec<Outcome>, DeliveryError> {
        let Some(r) = recipients.first() else { return Ok(Vec::new()) };
        debug_assert_eq!(recipients.len(), 1);
        let Smtp::Direct(pool) = &self.sender.transport else { return self.sender.send(mailing, recipients, gate).await };
        send_direct(pool, &self.sender.composer, mailing, r, gate, next.and_then(|n| n.first()), &mut self.started).await
    }

    fn looks_ahead(&self) -> bool {
        true
    }

    async fn close(&mut self) {
        // A transaction waiting for a body that will not come: closing the connection makes
        // the server drop it.
        self.started = None;
    }
}

/// One message through Herald's pool: `r`'s transaction (the one `started` holds for `r`, or a
/// new one), its body once `gate` opens, and, when `next` is given and the server pipelines,
/// `next`'s envelope in the same write, left in `started` for the call that sends it.
async fn send_direct(
    pool: &DirectPool,
    composer: &Composer,
    mailing: &Mailing,
    r: &Recipient,
    gate: Gate,
    next: Option<&Recipient>,
    started: &mut Option<Started>,
) -> Result<Vec<Outcome>, DeliveryError> {
    let (message, open) = match started.take() {
        Some(s) if s.recipient == r.id => (s.message, s.open),
        other => {
            // A transaction started for someone else is dropped with its connection.
            drop(other);
            let m = match composer.message_for(mailing, r, pool.eight_bit_mime().await) {
                Ok(m) => m,
                Err(e) => return Ok(vec![Outcome::Failed { code: 0, reply: e, suppress: false }]),
            };
            let bytes = m.formatted();
            let open = pool.open(m.envelope(), &bytes).await;
            (bytes, open)
        }
    };
    let open = match open {
        Ok(o) => o,
        Err(e) => return outcome(Err(e)),
    };
    // The next recipient's copy, composed now so its envelope can ride with this body.
    let next = match next.filter(|_| open.pipelining()) {
        Some(n) => {
            let eight_bit = pool.eight_bit_mime().await;
            composer.message_for(mailing, n, eight_bit).ok().map(|m| (n.id, m.envelope().clone(), m.formatted()))
        }
        None => None,
    };
    let (sent, opened) = pool.finish(open, &message, gate, next.as_ref().map(|(_, env, bytes)| (env, bytes.as_slice()))).await;
    if let (Some((recipient, _, message)), Some(open)) = (next, opened) {
        *started = Some(Started { recipient, message, open });
    }
    outcome(sent)
}

/// Map lettre's error: 4xx defers the recipient, 5xx fails it (suppressing it for an address
/// bounce), an auth refusal or no answer at all is an error for the call.
fn classify(e: &lettre::transport::smtp::Error) -> Result<Outcome, DeliveryError> {
    let Some(code) = e.status().map(u16::from) else {
        return Err(classify_call_error(e));
    };
    let reply = reply_text(e);
    if AUTH_CODES.contains(&code) {
        return Err(DeliveryError::auth(format!("the SMTP server refused the credentials: {code} {reply}")).with_status(code));
    }
    Ok(match code {
        400..=499 => Outcome::Deferred { code, reply, retry_at_ms: 0 },
        _ => Outcome::Failed { code, suppress: is_address_bounce(code, &reply), reply },
    })
}

/// The server's words, without lettre's prefix.
fn reply_text(e: &lettre::transport::smtp::Error) -> String {
    let s = e.to_string();
    // lettre: "permanent error (550): 5.1.1 No such user here"
    match s.split_once("): ") {
        Some((_, rest)) => rest.trim().to_string(),
        None => s,
    }
}

/// A hard bounce about the address itself: 550/551/553 with no enhanced status, or with a
/// `5.1.x` (bad mailbox or domain) or `5.2.1` (mailbox disabled) one. `550 5.7.1` (policy,
/// relaying denied) is about the sender, and must not suppress the subscriber.
pub fn is_address_bounce(code: u16, reply: &str) -> bool {
    if !matches!(code, 550 | 551 | 553) {
        return false;
    }
    let first = reply.split_whitespace().next().unwrap_or("");
    let enhanced = first.split('.').count() == 3 && first.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    !enhanced || first.starts_with("5.1.") || first == "5.2.1"
}

/// An error with no SMTP reply: connection refused, TLS, timeout, dropped connection.
fn classify_call_error(e: &lettre::transport::smtp::Error) -> DeliveryError {
    if e.is_tls() {
        DeliveryError::permanent(format!("TLS with the SMTP server failed: {e}"))
    } else if e.is_timeout() {
        DeliveryError::retryable(format!("the SMTP server timed out: {e}"))
    } else if let Some(code) = e.status().map(u16::from) {
        DeliveryError::new(if code >= 500 { crate::channel::Kind::Permanent } else { crate::channel::Kind::Retryable }, e.to_string()).with_status(code)
    } else {
        DeliveryError::retryable(format!("SMTP connection: {e}"))
    }
}

/// The lettre pool for `concurrency` messages in flight.
pub fn pool(concurrency: usize) -> PoolConfig {
    PoolConfig::new().max_size(concurrency.max(1) as u32).min_idle(0).idle_timeout(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_address_bounces_suppress() {
        assert!(is_address_bounce(550, "5.1.1 No such user"));
        assert!(is_address_bounce(550, "No such user"));
        assert!(is_address_bounce(553, "5.1.3 Bad address syntax"));
        assert!(is_address_bounce(550, "5.2.1 Mailbox disabled"));
        assert!(!is_address_bounce(550, "5.7.1 Relaying denied"));
        assert!(!is_address_bounce(554, "5.7.1 Rejected as spam"));
        assert!(!is_address_bounce(552, "5.2.2 Mailbox full"));
    }
}
