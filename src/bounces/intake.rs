//! One path for every report, whichever way it came: parse, tie to its mailing, apply the
//! policy. The import command, the webhook and the mailbox poller all call this.

use super::dsn::{self, MailReport, ParseError};
use super::matcher::Matcher;
use super::postmark::PostmarkReport;
use super::{Kind, Policy, Report, Source};
use crate::channel::email::TokenKey;
use crate::store::Store;
use crate::store::bounces::BounceRecorded;

/// What one message or record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Reports applied: (address, kind, what the store did).
    Applied(Vec<(String, Kind, BounceRecorded)>),
    /// A report that names no message Herald sent (no VERP token or Message-ID of ours): not
    /// applied, since anyone can mail a report to the bounce address.
    Unmatched(String),
    /// A broken report: kept for a person.
    Malformed(String),
    /// Not a report (an auto-reply): left alone.
    NotAReport,
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
    /// One mailed report (an `.eml` file, a message from the bounce mailbox).
    pub async fn mail(&self, raw: &[u8], source: Source) -> anyhow::Result<Handled> {
        let parsed = match dsn::parse(raw, &self.unsubscribe_addresses) {
            Ok(p) => p,
            Err(ParseError::Malformed(m)) => return Ok(Handled::Malformed(m)),
            Err(ParseError::NotAReport) => return Ok(Handled::NotAReport),
        };
        let mut matcher = Matcher::new(&self.store, &self.keys);
        let mut applied = Vec::new();
        let apply = |email: String, kind: Kind, detail: String, delivery_id: Option<i64>| {
            let report = Report { key: format!("mail:{}:{}", parsed.digest, email), email, kind, detail, delivery_id };
            async move {
                let done = self.policy.apply(&self.store, source, &report).await?;
                anyhow::Ok((report.email, kind, done))
            }
        };
        match &parsed.report {
            MailReport::Dsn { recipients } => {
                for r in recipients {
                    let m = match matcher.by_verp(&parsed.verp_tokens, Some(&r.address)).await? {
                        Some(m) => Some(m),
                        None => match &parsed.original_message_id {
                            Some(id) => matcher.by_message_id(id, &r.address).await?,
                            None => None,
                        },
                    };
                    let Some(m) = m else {
                        return Ok(Handled::Unmatched(format!("a DSN for {} names no message Herald sent", r.address)));
                    };
                    let detail = format!("{} {}{}", r.action, r.status, r.diagnostic.as_deref().map(|d| format!(" {d}")).unwrap_or_default());
                    applied.push(apply(m.email, r.kind(), detail, Some(m.delivery_id)).await?);
                }
            }
            MailReport::Complaint { address, feedback_type } => {
                let m = match matcher.by_verp(&parsed.verp_tokens, address.as_deref()).await? {
                    Some(m) => Some(m),
                    None => match (&parsed.original_message_id, address) {
                        (Some(id), Some(a)) => matcher.by_message_id(id, a).await?,
                        _ => None,
                    },
                };
                let Some(m) = m else {
                    return Ok(Handled::Unmatched(format!("a complaint ({feedback_type}) that names no message Herald sent")));
                };
                applied.push(apply(m.email, Kind::Complaint, format!("ARF {feedback_type}"), Some(m.delivery_id)).await?);
            }
            MailReport::Unsubscribe { address } => {
                applied.push(apply(address.clone(), Kind::MailtoUnsubscribe, "mailto unsubscribe".into(), None).await?);
            }
        }
        Ok(Handled::Applied(applied))
    }

    /// One Postmark record (webhook or export). Postmark's word is trusted (the webhook is
    /// authenticated; an export is the operator's file); its MessageID ties it to the mailing
    /// when the ledger recorded it.
    pub async fn postmark(&self, r: &PostmarkReport, source: Source) -> anyhow::Result<Handled> {
        let matcher = Matcher::new(&self.store, &self.keys);
        let delivery_id = match &r.message_id {
            Some(id) if !id.is_empty() => matcher.by_postmark_id(id, &r.email).await?.map(|m| m.delivery_id),
            _ => None,
        };
        let report = Report { key: r.key.clone(), email: r.email.clone(), kind: r.kind, detail: r.detail.clone(), delivery_id };
        let done = self.policy.apply(&self.store, source, &report).await?;
        Ok(Handled::Applied(vec![(report.email, r.kind, done)]))
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
