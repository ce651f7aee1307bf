//! One path for every report, whichever way it came: parse, tie to its mailing, apply the
//! policy. The import command, the webhook and the mailbox poller all call this.
//!
//! Two steps, so reports are stored in batches: [`Intake::prepare_mail`] and
//! [`Intake::prepare_postmark`] parse and match (reads only), and [`Intake::commit`] applies a
//! batch of prepared reports in one store transaction. [`Intake::mail`] and
//! [`Intake::postmark`] do both for one report.
//!
//! A DSN names one or more recipients. Each recipient is tied to its message on its own: the
//! matched ones are applied, the others are reported one by one ([`Unmatched`]) and never
//! applied (anyone can mail a report to the bounce address).

use super::dsn::{self, MailReport, ParseError};
use super::matcher::Matcher;
use super::postmark::PostmarkReport;
use super::{Kind, Policy, Report, Source};
use crate::channel::email::TokenKey;
use crate::store::Store;
use crate::store::bounces::BounceRecorded;

/// A recipient of a report that names no message Herald sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    /// The address the report names, if it names one.
    pub email: Option<String>,
    /// Why it was not applied.
    pub reason: String,
}

/// A report parsed and tied to its mailings, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Reports to apply, and the recipients that could not be tied to a message of ours.
    Reports {
        /// One per matched recipient.
        reports: Vec<Report>,
        /// One per unmatched recipient.
        unmatched: Vec<Unmatched>,
    },
    /// A broken report: kept for a person.
    Malformed(String),
    /// Not a report (an auto-reply): left alone.
    NotAReport,
}

/// What one message or record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Per recipient: the applied ones (address, kind, what the store did) and the unmatched
    /// ones (not applied). Both may be non-empty: a DSN for several recipients of which some
    /// name no message of ours.
    Reports {
        /// Applied (or found applied before: [`BounceRecorded::Duplicate`]).
        applied: Vec<(String, Kind, BounceRecorded)>,
        /// Not applied.
        unmatched: Vec<Unmatched>,
    },
    /// A broken report: kept for a person.
    Malformed(String),
    /// Not a report (an auto-reply): left alone.
    NotAReport,
}

impl Handled {
    /// `applied`, `partial` (some recipients applied, some unmatched), `unmatched`,
    /// `malformed` or `not_a_report`.
    pub fn status(&self) -> &'static str {
        match self {
            Handled::Reports { unmatched, .. } if unmatched.is_empty() => "applied",
            Handled::Reports { applied, .. } if applied.is_empty() => "unmatched",
            Handled::Reports { .. } => "partial",
            Handled::Malformed(_) => "malformed",
            Handled::NotAReport => "not_a_report",
        }
    }

    /// Everything in it was applied (nothing for a person to look at).
    pub fn fully_applied(&self) -> bool {
        self.status() == "applied"
    }
}

/// The intake for one store and config.
pub struct Intake {
    /// The store.
    pub store: Store,
    /// The suppression policy.
    pub policy: Policy,
    /// Every email channel's signing key (VERP tokens).
    pub keys: Vec<TokenKey>,
    /// The `unsubscribe_mailto` addresses, lowercase.
    pub unsubscribe_addresses: Vec<String>,
}

impl Intake {
    /// A matcher for one batch (it caches the mailings' Message-ID hashes).
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher::new(&self.store, &self.keys)
    }

    /// One mailed report (an `.eml` file, a message from the bounce mailbox), applied in its
    /// own transaction.
    pub async fn mail(&self, raw: &[u8], source: Source) -> anyhow::Result<Handled> {
        let p = self.prepare_mail(&mut self.matcher(), raw).await?;
        Ok(self.commit(source, vec![p]).await?.pop().unwrap_or(Handled::NotAReport))
    }

    /// One Postmark record (webhook or export), applied in its own transaction.
    pub async fn postmark(&self, r: &PostmarkReport, source: Source) -> anyhow::Result<Handled> {
        let p = self.prepare_postmark(&self.matcher(), r).await?;
        Ok(self.commit(source, vec![p]).await?.pop().unwrap_or(Handled::NotAReport))
    }

    /// Parse one mailed report and tie each recipient to its message; nothing is stored.
    pub async fn prepare_mail(&self, matcher: &mut Matcher<'_>, raw: &[u8]) -> anyhow::Result<Prepared> {
        let parsed = match dsn::parse(raw, &self.unsubscribe_addresses) {
            Ok(p) => p,
            Err(ParseError::Malformed(m)) => return Ok(Prepared::Malformed(m)),
            Err(ParseError::NotAReport) => return Ok(Prepared::NotAReport),
        };
        let report = |email: String, kind: Kind, detail: String, delivery_id: Option<i64>| Report { key: format!("mail:{}:{}", parsed.digest, email), email, kind, detail, delivery_id };
        let (mut reports, mut unmatched) = (Vec::new(), Vec::new());
        match &parsed.report {
            MailReport::Dsn { recipients } => {
                // With several recipients, a VERP token counts only for the address it was made
                // for: one recipient's token must not carry another's bounce.
                let strict = recipients.len() > 1;
                for r in recipients {
                    let m = match matcher.by_verp(&parsed.verp_tokens, Some(&r.address), strict).await? {
                        Some(m) => Some(m),
                        None => match &parsed.original_message_id {
                            Some(id) => matcher.by_message_id(id, &r.address).await?,
                            None => None,
                        },
                    };
                    let Some(m) = m else {
                        unmatched.push(Unmatched { email: Some(r.address.clone()), reason: format!("a DSN for {} names no message Herald sent to it", r.address) });
                        continue;
                    };
                    let detail = format!("{} {}{}", r.action, r.status, r.diagnostic.as_deref().map(|d| format!(" {d}")).unwrap_or_default());
                    reports.push(report(m.email, r.kind(), detail, Some(m.delivery_id)));
                }
            }
            MailReport::Complaint { address, feedback_type } => {
                let m = match matcher.by_verp(&parsed.verp_tokens, address.as_deref(), false).await? {
                    Some(m) => Some(m),
                    None => match (&parsed.original_message_id, address) {
                        (Some(id), Some(a)) => matcher.by_message_id(id, a).await?,
                        _ => None,
                    },
                };
                match m {
                    Some(m) => reports.push(report(m.email, Kind::Complaint, format!("ARF {feedback_type}"), Some(m.delivery_id))),
                    None => unmatched.push(Unmatched { email: address.clone(), reason: format!("a complaint ({feedback_type}) that names no message Herald sent") }),
                }
            }
            MailReport::Unsubscribe { address } => reports.push(report(address.clone(), Kind::MailtoUnsubscribe, "mailto unsubscribe".into(), None)),
        }
        Ok(Prepared::Reports { reports, unmatched })
    }

    /// One Postmark record. Postmark's word is trusted (the webhook is authenticated; an
    /// export is the operator's file); its MessageID ties it to the mailing when the ledger
    /// recorded it.
    pub async fn prepare_postmark(&self, matcher: &Matcher<'_>, r: &PostmarkReport) -> anyhow::Result<Prepared> {
        let delivery_id = match &r.message_id {
            Some(id) if !id.is_empty() => matcher.by_postmark_id(id, &r.email).await?.map(|m| m.delivery_id),
            _ => None,
        };
        let report = Report { key: r.key.clone(), email: r.email.clone(), kind: r.kind, detail: r.detail.clone(), delivery_id };
        Ok(Prepared::Reports { reports: vec![report], unmatched: Vec::new() })
    }

    /// Apply a batch of prepared reports from `source` in one store transaction: either all
    /// of them are stored or none is (the caller marks its inputs handled only after this
    /// returns). One [`Handled`] per input, in order; each unmatched recipient is logged.
    pub async fn commit(&self, source: Source, batch: Vec<Prepared>) -> anyhow::Result<Vec<Handled>> {
        /// A batch entry whose reports moved into `flat`: how many were its.
        enum Shape {
            Reports(usize, Vec<Unmatched>),
            Malformed(String),
            NotAReport,
        }
        let mut flat = Vec::new();
        let mut shape = Vec::with_capacity(batch.len());
        for p in batch {
            shape.push(match p {
                Prepared::Reports { reports, unmatched } => {
                    for u in &unmatched {
                        tracing::warn!(source = source.as_str(), email = u.email.as_deref().unwrap_or("-"), problem = %u.reason, "A bounce report's recipient is not tied to a Herald message; not applied.");
                    }
                    let n = reports.len();
                    flat.extend(reports);
                    Shape::Reports(n, unmatched)
                }
                Prepared::Malformed(m) => Shape::Malformed(m),
                Prepared::NotAReport => Shape::NotAReport,
            });
        }
        let outcomes = self.policy.apply_batch(&self.store, source, &flat).await?;
        let mut done = flat.into_iter().zip(outcomes);
        Ok(shape
            .into_iter()
            .map(|p| match p {
                Shape::Reports(n, unmatched) => Handled::Reports { applied: done.by_ref().take(n).map(|(r, o)| (r.email, r.kind, o)).collect(), unmatched },
                Shape::Malformed(m) => Handled::Malformed(m),
                Shape::NotAReport => Handled::NotAReport,
            })
            .collect())
    }
}

/// The `unsubscribe_mailto` addresses of every email channel, lowercase.
pub fn unsubscribe_addresses(cfg: &crate::config::LoadedConfig) -> Vec<String> {
    cfg.config
        .channels
        .values()
        .filter_map(|c| match c {
            crate::config::ChannelConfig::Email(e) => e.unsubscribe_mailto.as_deref(),
            _ => None,
        })
        .map(|m| m.trim().trim_start_matches("mailto:").split('?').next().unwrap_or("").to_lowercase())
        .filter(|m| !m.is_empty())
        .collect()
}
