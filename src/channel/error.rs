//! The one error type every adapter returns, classified once at the adapter boundary.
//!
//! Opaque on purpose (lettre's `smtp::Error` style): callers ask predicates, they don't
//! match on variants, so a new classification never breaks the pipeline.

use std::fmt;
use std::time::Duration;

/// How the pipeline must treat a failed delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Network trouble, 408, 5xx (not 501), SMTP 4xx: retry on the schedule.
    Retryable,
    /// 429 or a throttling answer: retry after the hint; does not use up an attempt.
    RateLimited,
    /// Any other 4xx, 501, SMTP 5xx, content rejected: stop, record the reason.
    Permanent,
    /// 401 or 403, an expired or revoked credential: stop until the operator re-authorises.
    Auth,
    /// Refused by the network's policy, not for the credential (X's reply restrictions, a
    /// LinkedIn author mismatch, Substack refusing the User-Agent): re-authorising won't help.
    Forbidden,
    /// The request may have reached the network and we can't tell: reconcile before any retry.
    UnknownOutcome,
}

impl Kind {
    /// Stable lowercase name used in the attempts log and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Retryable => "retryable",
            Kind::RateLimited => "rate_limited",
            Kind::Permanent => "permanent",
            Kind::Auth => "needs_auth",
            Kind::Forbidden => "forbidden",
            Kind::UnknownOutcome => "unknown_outcome",
        }
    }
}

/// A classified delivery failure. Its message must never contain a secret.
#[derive(Debug)]
pub struct DeliveryError {
    kind: Kind,
    message: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
}

impl DeliveryError {
    /// Build an error of the given kind.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, message: excerpt(&message.into()), status: None, retry_after: None }
    }
    /// Retry on the normal schedule.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(Kind::Retryable, message)
    }
    /// Throttled; `retry_after` is the network's hint, if it gave one.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::new(Kind::RateLimited, message).with_retry_after(retry_after)
    }
    /// Never retry.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(Kind::Permanent, message)
    }
    /// Refused by the network's policy (not the credential): stop, with the network's message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, message)
    }
    /// Credentials are missing, expired or refused.
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(Kind::Auth, message)
    }
    /// The request may have been applied remotely; reconcile first.
    pub fn unknown_outcome(message: impl Into<String>) -> Self {
        Self::new(Kind::UnknownOutcome, message)
    }
    /// Attach the HTTP or SMTP status code.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    /// Attach a retry hint (already parsed from `Retry-After` or a reset header).
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
    /// The classification.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// True for errors the schedule retries (including rate limits).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, Kind::Retryable | Kind::RateLimited)
    }
    /// True for errors that end the delivery (`failed`).
    pub fn is_permanent(&self) -> bool {
        matches!(self.kind, Kind::Permanent | Kind::Auth | Kind::Forbidden)
    }
    /// The network's retry hint.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
    /// HTTP or SMTP status code, where there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }
    /// The human message (already trimmed to an excerpt).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} ({}): {}", self.kind.as_str(), s, self.message),
            None => write!(f, "{}: {}", self.kind.as_str(), self.message),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Longest error excerpt kept in the attempts log.
pub const EXCERPT_MAX: usize = 2048;

/// Trim a remote answer to something fit for a log row, on a char boundary.
pub fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT_MAX {
        return s.to_string();
    }
    let mut end = EXCERPT_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
