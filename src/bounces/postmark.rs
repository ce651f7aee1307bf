//! Postmark's bounce records, from its webhooks (`RecordType` `Bounce`, `SpamComplaint`,
//! `SubscriptionChange`) and from a bounce export (`GET /bounces`: `{"Bounces": [...]}`, or a
//! plain array of bounce objects).
//!
//! Every bounce `Type` Postmark documents is mapped (the list is Postmark's `BounceType`, as its
//! official client publishes it). A type that says nothing about the address (an auto-reply, a
//! DMARC failure of ours, a template error) is recorded as `info` and suppresses nothing;
//! `Transient` (Postmark is still retrying) is a delay. When Postmark itself deactivated the
//! address (`Inactive: true`), it will refuse further sends: Herald suppresses it as a hard bounce.

use serde::Deserialize;

use super::Kind;

/// Postmark's bounce `Type` → what Herald makes of it. `None`: a type Postmark does not document.
pub fn kind_of(bounce_type: &str) -> Option<Kind> {
    Some(match bounce_type {
        "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated" => Kind::HardBounce,
        "SoftBounce" | "DnsError" | "SpamNotification" | "VirusNotification" | "Blocked" | "Unknown" => Kind::SoftBounce,
        "Transient" => Kind::Delayed,
        "SpamComplaint" => Kind::Complaint,
        "Unsubscribe" => Kind::Unsubscribe,
        "Subscribe" | "AutoResponder" | "AddressChange" | "OpenRelayTest" | "ChallengeVerification" | "Unconfirmed" | "SMTPApiError" | "InboundError"
        | "DMARCPolicy" | "TemplateRenderingFailed" => Kind::Info,
        _ => return None,
    })
}

/// Every documented bounce type (fixtures are made for each).
pub const BOUNCE_TYPES: &[&str] = &[
    "HardBounce",
    "Transient",
    "Unsubscribe",
    "Subscribe",
    "AutoResponder",
    "AddressChange",
    "DnsError",
    "SpamNotification",
    "OpenRelayTest",
    "Unknown",
    "SoftBounce",
    "VirusNotification",
    "ChallengeVerification",
    "BadEmailAddress",
    "SpamComplaint",
    "ManuallyDeactivated",
    "Unconfirmed",
    "Blocked",
    "SMTPApiError",
    "InboundError",
    "DMARCPolicy",
    "TemplateRenderingFailed",
];

/// A bounce or complaint record (webhook or export).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BounceRecord {
    /// `Bounce` or `SpamComplaint` (absent in an export).
    #[serde(default)]
    pub record_type: Option<String>,
    /// Postmark's bounce id.
    #[serde(rename = "ID")]
    pub id: serde_json::Value,
    /// The bounce type.
    #[serde(rename = "Type")]
    pub bounce_type: String,
    /// The message's id at Postmark (what the send API answered).
    #[serde(rename = "MessageID", default)]
    pub message_id: Option<String>,
    /// The address.
    pub email: String,
    /// Postmark deactivated the address.
    #[serde(default)]
    pub inactive: bool,
    /// Short description.
    #[serde(default)]
    pub description: Option<String>,
    /// The server's words.
    #[serde(default)]
    pub details: Option<String>,
}

/// A `SubscriptionChange` webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscriptionChange {
    /// The message's id at Postmark.
    #[serde(rename = "MessageID", default)]
    pub message_id: Option<String>,
    /// The address.
    pub recipient: String,
    /// When (Postmark's timestamp, part of the report's key).
    #[serde(default)]
    pub changed_at: Option<String>,
    /// Whether sending is now suppressed.
    pub suppress_sending: bool,
    /// `HardBounce`, `SpamComplaint`, `ManualSuppression`, or null on reactivation.
    #[serde(default)]
    pub suppression_reason: Option<String>,
    /// Where the change came from (`Recipient`, `Customer`, `Admin`).
    #[serde(default)]
    pub origin: Option<String>,
}

/// One report from Postmark, before it is tied to a mailing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostmarkReport {
    /// Unique per Postmark record.
    pub key: String,
    /// The address (lowercase).
    pub email: String,
    /// What it says.
    pub kind: Kind,
    /// Postmark's type and words.
    pub detail: String,
    /// Postmark's MessageID, to tie it to the ledger row that recorded it.
    pub message_id: Option<String>,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostmarkError {
    /// Not JSON of a known shape.
    #[error("not a Postmark record: {0}")]
    Shape(String),
    /// A `RecordType` Herald does not take (Delivery, Open, Click, …).
    #[error("RecordType `{0}` is not a bounce, complaint or subscription change")]
    RecordType(String),
    /// A bounce `Type` Postmark does not document.
    #[error("unknown bounce Type `{0}`")]
    BounceType(String),
}

impl BounceRecord {
    /// Herald's report for this record.
    pub fn report(&self) -> Result<PostmarkReport, PostmarkError> {
        let mut kind = kind_of(&self.bounce_type).ok_or_else(|| PostmarkError::BounceType(self.bounce_type.clone()))?;
        if self.inactive && matches!(kind, Kind::SoftBounce | Kind::Delayed | Kind::Info) {
            kind = Kind::HardBounce;
        }
        let id = match &self.id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let words = self.details.as_deref().or(self.description.as_deref()).unwrap_or("").trim();
        Ok(PostmarkReport {
            key: format!("postmark:bounce:{id}"),
            email: self.email.trim().to_lowercase(),
            kind,
            detail: format!("{}{}{}{}", self.bounce_type, if self.inactive { " (inactive)" } else { "" }, if words.is_empty() { "" } else { ": " }, words),
            message_id: self.message_id.clone(),
        })
    }
}

impl SubscriptionChange {
    /// Herald's report: a suppression of the address, or (reactivation) a note only. Herald
    /// never lifts a suppression on a webhook's word.
    pub fn report(&self) -> PostmarkReport {
        let kind = match (self.suppress_sending, self.suppression_reason.as_deref()) {
            (false, _) => Kind::Info,
            (true, Some("HardBounce")) => Kind::HardBounce,
            (true, Some("SpamComplaint")) => Kind::Complaint,
            (true, _) => Kind::Unsubscribe,
        };
        let email = self.recipient.trim().to_lowercase();
        PostmarkReport {
            key: format!("postmark:subscription:{}:{}:{}", email, self.changed_at.as_deref().unwrap_or(""), self.suppress_sending),
            email,
            kind,
            detail: format!(
                "SubscriptionChange {} ({}, by {})",
                if self.suppress_sending { "suppressed" } else { "reactivated" },
                self.suppression_reason.as_deref().unwrap_or("-"),
                self.origin.as_deref().unwrap_or("-")
            ),
            message_id: self.message_id.clone(),
        }
    }
}

/// One webhook body.
pub fn parse_webhook(body: &[u8]) -> Result<PostmarkReport, PostmarkError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| PostmarkError::Shape(e.to_string()))?;
    let rt = v.get("RecordType").and_then(|r| r.as_str()).ok_or_else(|| PostmarkError::Shape("no RecordType".into()))?.to_string();
    match rt.as_str() {
        "Bounce" | "SpamComplaint" => serde_json::from_value::<BounceRecord>(v).map_err(|e| PostmarkError::Shape(e.to_string()))?.report(),
        "SubscriptionChange" => Ok(serde_json::from_value::<SubscriptionChange>(v).map_err(|e| PostmarkError::Shape(e.to_string()))?.report()),
        _ => Err(PostmarkError::RecordType(rt)),
    }
}

/// A bounce export: `{"Bounces": [...]}` (Postmark's `GET /bounces` answer) or an array.
/// Each record's own error is returned in its place, so one bad record stops nothing else.
pub fn parse_export(body: &[u8]) -> Result<Vec<Result<PostmarkReport, PostmarkError>>, PostmarkError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| PostmarkError::Shape(e.to_string()))?;
    let list = match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => match o.remove("Bounces") {
            Some(serde_json::Value::Array(a)) => a,
            _ => return Err(PostmarkError::Shape("an object without a `Bounces` array".into())),
        },
        _ => return Err(PostmarkError::Shape("neither an array nor an object".into())),
    };
    Ok(list
        .into_iter()
        .map(|r| {
            if r.get("RecordType").is_some() {
                parse_webhook(r.to_string().as_bytes())
            } else {
                serde_json::from_value::<BounceRecord>(r).map_err(|e| PostmarkError::Shape(e.to_string()))?.report()
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_type_is_mapped() {
        for t in BOUNCE_TYPES {
            assert!(kind_of(t).is_some(), "{t}");
        }
        assert_eq!(kind_of("NotAType"), None);
    }
}
