//! Rows of Herald's tables and the delivery state machine's states.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A delivery's state. `scheduled → queued → sending → sent`, with `retrying`, `unconfirmed`,
/// `failed`, `cancelled` and `awaiting_confirmation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its publish time.
    Scheduled,
    /// Ready; a Deliver job will pick it up.
    Queued,
    /// A worker committed this before calling the network; found after a crash, it is reconciled.
    Sending,
    /// Done: the network has it.
    Sent,
    /// A retryable failure; the next attempt is at `next_attempt_at`.
    Retrying,
    /// The outcome is unknown; reconciled before any retry (or waiting for the operator).
    Unconfirmed,
    /// Dead, with the reason in `last_error`.
    Failed,
    /// Cancelled by the operator.
    Cancelled,
    /// The adapter prepared the work and a person must finish it (a Substack draft).
    AwaitingConfirmation,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 9] = [
        State::Scheduled,
        State::Queued,
        State::Sending,
        State::Sent,
        State::Retrying,
        State::Unconfirmed,
        State::Failed,
        State::Cancelled,
        State::AwaitingConfirmation,
    ];

    /// The name stored in the table and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Retrying => "retrying",
            State::Unconfirmed => "unconfirmed",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::AwaitingConfirmation => "awaiting_confirmation",
        }
    }

    /// Nothing more will happen without the operator.
    pub fn is_final(self) -> bool {
        matches!(self, State::Sent | State::Failed | State::Cancelled | State::AwaitingConfirmation)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL.iter().copied().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown delivery state `{s}`"))
    }
}

/// What started an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The pipeline (publish, or the retry schedule).
    Schedule,
    /// The operator (`republish`, `retry`): one attempt, no automatic retry chain.
    Manual,
}

impl Trigger {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
    /// Parse the stored name (anything unknown reads as `schedule`).
    pub fn parse(s: &str) -> Self {
        if s == "manual" { Trigger::Manual } else { Trigger::Schedule }
    }
}

/// What one attempt row says happened: the `attempts.outcome` column, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The network has it.
    Sent,
    /// A person must finish it (a Substack draft).
    AwaitingConfirmation,
    /// A passing failure; retried on the schedule (or, by hand, not at all).
    Retryable,
    /// Throttled; waits for the hint, without using up an attempt.
    RateLimited,
    /// Refused for good.
    Permanent,
    /// The credential is missing, expired or refused.
    NeedsAuth,
    /// Refused by the network's policy, not for the credential.
    Forbidden,
    /// The request may have landed; reconciled before any retry.
    UnknownOutcome,
    /// A retryable failure on the schedule's last attempt (or the last rate-limit wait allowed).
    Exhausted,
    /// Reconciliation found the post: sent without sending again.
    Reconciled,
    /// Reconciliation cannot tell: waits for the operator.
    CannotCheck,
    /// The process running this attempt died (or its lease ran out) before it recorded anything.
    Interrupted,
}

impl AttemptOutcome {
    /// Every outcome.
    pub const ALL: [AttemptOutcome; 12] = [
        AttemptOutcome::Sent,
        AttemptOutcome::AwaitingConfirmation,
        AttemptOutcome::Retryable,
        AttemptOutcome::RateLimited,
        AttemptOutcome::Permanent,
        AttemptOutcome::NeedsAuth,
        AttemptOutcome::Forbidden,
        AttemptOutcome::UnknownOutcome,
        AttemptOutcome::Exhausted,
        AttemptOutcome::Reconciled,
        AttemptOutcome::CannotCheck,
        AttemptOutcome::Interrupted,
    ];

    /// The name stored in `attempts.outcome` and printed by `herald log`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Sent => "sent",
            AttemptOutcome::AwaitingConfirmation => "awaiting_confirmation",
            AttemptOutcome::Retryable => "retryable",
            AttemptOutcome::RateLimited => "rate_limited",
            AttemptOutcome::Permanent => "permanent",
            AttemptOutcome::NeedsAuth => "needs_auth",
            AttemptOutcome::Forbidden => "forbidden",
            AttemptOutcome::UnknownOutcome => "unknown_outcome",
            AttemptOutcome::Exhausted => "exhausted",
            AttemptOutcome::Reconciled => "reconciled",
            AttemptOutcome::CannotCheck => "cannot_check",
            AttemptOutcome::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttemptOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttemptOutcome::ALL.iter().copied().find(|o| o.as_str() == s).ok_or_else(|| format!("unknown attempt outcome `{s}`"))
    }
}

/// One stored issue version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueRow {
    /// The slug.
    pub slug: String,
    /// The content hash.
    pub version: String,
    /// Where it was read from.
    pub path: String,
    /// Title, for display.
    pub title: String,
    /// The file's text, as published.
    pub source: String,
    /// JSON array of channel names (`[]` = every enabled channel).
    pub channels: String,
    /// When it was stored.
    pub created_at: i64,
    /// When the Publish job created its deliveries.
    pub published_at: Option<i64>,
    /// Why the Publish job could not render it, if it could not.
    pub publish_error: Option<String>,
}

impl IssueRow {
    /// The `--channel` filter it was published with.
    pub fn channel_filter(&self) -> Vec<String> {
        serde_json::from_str(&self.channels).unwrap_or_default()
    }
}

/// One delivery row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Row id.
    pub id: i64,
    /// Issue slug.
    pub issue: String,
    /// Issue version.
    pub version: String,
    /// Channel name.
    pub channel: String,
    /// Channel type.
    pub channel_type: String,
    /// Revision (1 at publish; `republish` raises it).
    pub revision: i64,
    /// `{issue}/{channel}/r{revision}`.
    pub delivery_key: String,
    /// Stored state name.
    pub state: String,
    /// Attempts that counted against the schedule.
    pub attempts: i64,
    /// Waits caused by rate limits (these do not use up an attempt).
    pub rate_limited_waits: i64,
    /// The network's id.
    pub remote_id: Option<String>,
    /// The public URL.
    pub remote_url: Option<String>,
    /// The last error (excerpt).
    pub last_error: Option<String>,
    /// The last HTTP/SMTP status.
    pub last_status: Option<i64>,
    /// When the next attempt is due (unix ms).
    pub next_attempt_at: Option<i64>,
    /// `schedule` or `manual`.
    pub triggered_by: String,
    /// Adapter checkpoint, JSON.
    pub checkpoint: Option<String>,
    /// Who holds the lease.
    pub lease_owner: Option<String>,
    /// Until when (unix ms).
    pub lease_until: Option<i64>,
    /// The id of the last Deliver job pushed for it.
    pub job_id: Option<String>,
    /// Created (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
    /// When the attempt in flight started (set with `sending`, cleared when its row is written).
    pub attempt_started_at: Option<i64>,
}

impl DeliveryRow {
    /// The parsed state.
    pub fn state(&self) -> State {
        self.state.parse().unwrap_or(State::Failed)
    }
    /// The parsed trigger.
    pub fn trigger(&self) -> Trigger {
        Trigger::parse(&self.triggered_by)
    }
}

/// One attempt row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// Row id.
    pub id: i64,
    /// The delivery.
    pub delivery_id: i64,
    /// 1-based sequence number within the delivery.
    pub n: i64,
    /// Start (unix ms).
    pub started_at: i64,
    /// Duration.
    pub duration_ms: i64,
    /// `schedule` or `manual`.
    pub triggered_by: String,
    /// An [`AttemptOutcome`] name (see [`AttemptRow::outcome`]).
    pub outcome: String,
    /// HTTP/SMTP status.
    pub status_code: Option<i64>,
    /// Error excerpt.
    pub error: Option<String>,
    /// When the next try is due.
    pub next_attempt_at: Option<i64>,
    /// sha256 of the rendering sent.
    pub content_hash: Option<String>,
    /// The remote id, on success.
    pub remote_id: Option<String>,
}

impl AttemptRow {
    /// The typed outcome (None for a name this version does not know).
    pub fn outcome(&self) -> Option<AttemptOutcome> {
        self.outcome.parse().ok()
    }
}

/// An attempt joined with its delivery, for `herald log`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    /// Attempt row id (a cursor for `--follow`).
    pub id: i64,
    /// Delivery key.
    pub delivery_key: String,
    /// Issue slug.
    pub issue: String,
    /// Channel.
    pub channel: String,
    /// Attempt number.
    pub n: i64,
    /// Start (unix ms).
    pub started_at: i64,
    /// Duration.
    pub duration_ms: i64,
    /// `schedule` or `manual`.
    pub triggered_by: String,
    /// Outcome.
    pub outcome: String,
    /// Status code.
    pub status_code: Option<i64>,
    /// Error excerpt.
    pub error: Option<String>,
    /// Next try.
    pub next_attempt_at: Option<i64>,
    /// Content hash.
    pub content_hash: Option<String>,
    /// Remote id.
    pub remote_id: Option<String>,
}
