//! The suppression policy: which reports suppress an address, and when.
//!
//! - A hard bounce, a complaint or an unsubscribe (link, `mailto:`, Postmark's
//!   `SubscriptionChange`) suppresses at once.
//! - A soft bounce suppresses once the address has `soft_bounce_limit` of them within
//!   `soft_bounce_days` (defaults 3 in 30): a full mailbox today is not a dead address.
//! - A delay (`Action: delayed`) or an informational report is recorded and suppresses nothing.

use std::fmt;

use crate::config::BouncesConfig;
use crate::store::Store;
use crate::store::bounces::{BounceEventRow, BounceRecorded, SuppressRule};

/// What a report says about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Permanent failure (DSN `5.x.x`, Postmark `HardBounce`, …).
    HardBounce,
    /// Temporary failure that gave up (DSN `4.x.x` with `Action: failed`, Postmark `SoftBounce`, …).
    SoftBounce,
    /// "This is spam" (ARF, Postmark `SpamComplaint`).
    Complaint,
    /// An unsubscribe reported by the ESP (Postmark `SubscriptionChange`).
    Unsubscribe,
    /// An email to the `mailto:` of `List-Unsubscribe`.
    MailtoUnsubscribe,
    /// Still trying (DSN `Action: delayed`, Postmark `Transient`): recorded, never suppresses.
    Delayed,
    /// Says nothing about the address (an auto-reply, a challenge, a DMARC report).
    Info,
}

impl Kind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HardBounce => "hard_bounce",
            Kind::SoftBounce => "soft_bounce",
            Kind::Complaint => "complaint",
            Kind::Unsubscribe => "unsubscribe",
            Kind::MailtoUnsubscribe => "mailto_unsubscribe",
            Kind::Delayed => "delayed",
            Kind::Info => "info",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The SMTP server refused during the session.
    Smtp,
    /// `POST /webhooks/postmark`.
    PostmarkWebhook,
    /// The bounce mailbox.
    Imap,
    /// `herald bounces import`.
    Import,
    /// The one-click link.
    Link,
}

impl Source {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Smtp => "smtp",
            Source::PostmarkWebhook => "postmark_webhook",
            Source::Imap => "imap",
            Source::Import => "import",
            Source::Link => "link",
        }
    }
}

/// One report about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Unique per report, so it is applied once.
    pub key: String,
    /// The address (lowercased when applied).
    pub email: String,
    /// What it says.
    pub kind: Kind,
    /// Details to keep (a DSN status, Postmark's type), short.
    pub detail: String,
    /// The mailing it is about, if known.
    pub delivery_id: Option<i64>,
}

/// The configured policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Soft bounces that suppress.
    pub soft_limit: u32,
    /// Within this many days.
    pub soft_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self { soft_limit: 3, soft_days: 30 }
    }
}

impl Policy {
    /// From `[bounces]`.
    pub fn from_config(c: &BouncesConfig) -> Self {
        Self { soft_limit: c.soft_bounce_limit.max(1), soft_days: c.soft_bounce_days.max(1) }
    }

    /// The rule for one report of `kind` received at `now_ms`.
    pub fn rule(&self, kind: Kind, now_ms: i64) -> SuppressRule {
        match kind {
            Kind::HardBounce | Kind::Complaint | Kind::Unsubscribe | Kind::MailtoUnsubscribe => SuppressRule::Now,
            Kind::SoftBounce => SuppressRule::AfterCount { limit: i64::from(self.soft_limit), since_ms: now_ms - i64::from(self.soft_days) * 86_400_000 },
            Kind::Delayed | Kind::Info => SuppressRule::Never,
        }
    }

    /// Record `report` from `source` and suppress its address if the policy says so. A report
    /// applied before changes nothing.
    pub async fn apply(&self, store: &Store, source: Source, report: &Report) -> anyhow::Result<BounceRecorded> {
        self.apply_at(store, source, report, crate::store::now_ms()).await
    }

    /// As [`Policy::apply`], at a given time (tests of the soft-bounce window).
    pub async fn apply_at(&self, store: &Store, source: Source, report: &Report, now_ms: i64) -> anyhow::Result<BounceRecorded> {
        let mut out = self.apply_batch_at(store, source, std::slice::from_ref(report), now_ms).await?;
        Ok(out.pop().unwrap_or(BounceRecorded::Duplicate))
    }

    /// Record a batch of reports from `source` in one store transaction (one commit for the
    /// batch; see [`Store::record_bounces`]): one outcome per report, in order. Metrics and
    /// logs follow the commit, so nothing is counted that was not stored.
    pub async fn apply_batch(&self, store: &Store, source: Source, reports: &[Report]) -> anyhow::Result<Vec<BounceRecorded>> {
        self.apply_batch_at(store, source, reports, crate::store::now_ms()).await
    }

    async fn apply_batch_at(&self, store: &Store, source: Source, reports: &[Report], now_ms: i64) -> anyhow::Result<Vec<BounceRecorded>> {
        let rows: Vec<_> = reports.iter().map(|r| self.row(source, r, now_ms)).collect();
        let done = store.record_bounces(&rows).await?;
        for ((report, (row, _, _)), outcome) in reports.iter().zip(&rows).zip(&done) {
            if *outcome != BounceRecorded::Duplicate {
                crate::metrics::global().bounce(report.kind.as_str(), source.as_str());
                tracing::info!(email = %row.email, kind = %report.kind, source = source.as_str(), delivery_id = report.delivery_id, outcome = ?outcome, "Bounce report recorded.");
            }
        }
        Ok(done)
    }

    /// The stored row of `report`, its rule and the suppression's reason.
    fn row(&self, source: Source, report: &Report, now_ms: i64) -> (BounceEventRow, SuppressRule, String) {
        let row = BounceEventRow {
            event_key: report.key.clone(),
            email: report.email.trim().to_lowercase(),
            kind: report.kind.as_str().into(),
            source: source.as_str().into(),
            detail: crate::channel::error::excerpt(&report.detail).chars().take(300).collect(),
            delivery_id: report.delivery_id,
            at: now_ms,
        };
        let reason = if row.detail.trim().is_empty() { format!("{} ({})", report.kind, source.as_str()) } else { format!("{} ({}): {}", report.kind, source.as_str(), row.detail.trim()) };
        (row, self.rule(report.kind, now_ms), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_bounces_complaints_and_unsubscribes_suppress_at_once_delays_never() {
        let p = Policy::default();
        for k in [Kind::HardBounce, Kind::Complaint, Kind::Unsubscribe, Kind::MailtoUnsubscribe] {
            assert_eq!(p.rule(k, 0), SuppressRule::Now, "{k}");
        }
        for k in [Kind::Delayed, Kind::Info] {
            assert_eq!(p.rule(k, 0), SuppressRule::Never, "{k}");
        }
        let now = 100 * 86_400_000;
        assert_eq!(p.rule(Kind::SoftBounce, now), SuppressRule::AfterCount { limit: 3, since_ms: now - 30 * 86_400_000 });
    }
}
