//! A test adapter that records what it was asked to send and answers from a script
//! (lettre's `StubTransport` idea): "500 twice, then OK" is `[retryable, retryable, ok]`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Adapter, Delivered, DeliveryCtx, DeliveryError, Kind, Receipt, Reconciled};
use crate::render::Rendering;

/// One scripted answer to `deliver`.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Succeed with this receipt.
    Ok(Receipt),
    /// Fail with this classification, message, status and retry hint.
    Err {
        /// Classification.
        kind: Kind,
        /// Message.
        message: String,
        /// Status code.
        status: Option<u16>,
        /// Retry hint.
        retry_after: Option<Duration>,
    },
    /// Sleep, then answer with the next scripted answer (or the default).
    Delay(Duration),
    /// Panic inside `deliver` (a buggy adapter).
    Panic,
    /// Answer [`super::Delivered::Continue`] (more work owed, nothing failed).
    Continue(Option<Duration>),
}

impl Answer {
    /// A failure of `kind` with an HTTP-like status.
    pub fn err(kind: Kind, status: u16) -> Self {
        Answer::Err { kind, message: format!("scripted {status}"), status: Some(status), retry_after: None }
    }
}

/// One recorded `deliver` call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The delivery key.
    pub key: String,
    /// The attempt number the pipeline passed.
    pub attempt: u32,
    /// What it was asked to send.
    pub rendering: Rendering,
}

/// The recording adapter.
#[derive(Debug, Default)]
pub struct RecordingAdapter {
    script: Mutex<VecDeque<Answer>>,
    reconcile: Mutex<VecDeque<Reconciled>>,
    calls: Mutex<Vec<Call>>,
    finds: Mutex<Vec<String>>,
}

impl RecordingAdapter {
    /// An adapter that answers OK to everything.
    pub fn new() -> Self {
        Self::default()
    }
    /// An adapter that answers from `script`, then OK.
    pub fn with_script(script: impl IntoIterator<Item = Answer>) -> Self {
        let a = Self::default();
        a.script.lock().expect("script").extend(script);
        a
    }
    /// Queue answers to `find_existing` (default when empty: `NotFound`).
    pub fn push_reconcile(&self, r: Reconciled) {
        self.reconcile.lock().expect("reconcile").push_back(r);
    }
    /// Every `deliver` call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }
    /// Keys `find_existing` was asked about.
    pub fn finds(&self) -> Vec<String> {
        self.finds.lock().expect("finds").clone()
    }
}

#[async_trait]
impl Adapter for RecordingAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        self.deliver_step(rendering, ctx).await.and_then(Delivered::into_receipt)
    }

    async fn deliver_step(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Delivered, DeliveryError> {
        self.calls.lock().expect("calls").push(Call { key: ctx.key.clone(), attempt: ctx.attempt, rendering: rendering.clone() });
        loop {
            let next = self.script.lock().expect("script").pop_front();
            match next {
                Some(Answer::Delay(d)) => tokio::time::sleep(d).await,
                Some(Answer::Panic) => panic!("scripted adapter panic"),
                Some(Answer::Ok(r)) => return Ok(r.into()),
                Some(Answer::Continue(after)) => return Ok(Delivered::Continue { after, note: "scripted: more work owed".into() }),
                Some(Answer::Err { kind, message, status, retry_after }) => {
                    let mut e = DeliveryError::new(kind, message).with_retry_after(retry_after);
                    if let Some(s) = status {
                        e = e.with_status(s);
                    }
                    return Err(e);
                }
                None => {
                    return Ok(Delivered::Sent(Receipt {
                        remote_id: format!("rec-{}", ctx.key),
                        url: Some(format!("https://example.invalid/{}", ctx.key)),
                        ..Receipt::default()
                    }));
                }
            }
        }
    }

    async fn find_existing(&self, _rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        self.finds.lock().expect("finds").push(ctx.key.clone());
        Ok(self.reconcile.lock().expect("reconcile").pop_front().unwrap_or(Reconciled::NotFound))
    }
}
