//! Reports that arrive by mail, parsed with `mail-parser`:
//!
//! - DSNs (RFC 3464): `multipart/report; report-type=delivery-status`, one `Final-Recipient`,
//!   `Action` and `Status` per recipient. `Action: failed` with a `5.x.x` status is a hard
//!   bounce, with `4.x.x` a soft one; `Action: delayed` says the server is still trying and
//!   suppresses nothing;
//! - ARF complaints (RFC 5965): `multipart/report; report-type=feedback-report`;
//! - `mailto:` unsubscribe requests: a message to the `List-Unsubscribe` mailto address
//!   Herald sets (`unsubscribe_mailto`), or with the subject `unsubscribe`.
//!
//! Each keeps what ties it to the message it is about: every VERP token in it, and the
//! original message's `Message-ID` from the returned headers.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::Kind;

/// One recipient of a DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient` (or `Original-Recipient`), lowercase, without the `rfc822;` type.
    pub address: String,
    /// `Action`, lowercase.
    pub action: String,
    /// `Status`, e.g. `5.1.1`.
    pub status: String,
    /// `Diagnostic-Code`, if any.
    pub diagnostic: Option<String>,
}

impl DsnRecipient {
    /// What this recipient's entry says.
    pub fn kind(&self) -> Kind {
        match (self.action.as_str(), self.status.chars().next()) {
            ("delayed", _) => Kind::Delayed,
            ("failed", Some('5')) => Kind::HardBounce,
            ("failed", _) => Kind::SoftBounce,
            _ => Kind::Info,
        }
    }
}

/// What a message in the bounce mailbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailReport {
    /// A delivery status notification.
    Dsn {
        /// One entry per recipient.
        recipients: Vec<DsnRecipient>,
    },
    /// A complaint.
    Complaint {
        /// The complaining address (`Original-Rcpt-To`, else the original's `To`), if given.
        address: Option<String>,
        /// `Feedback-Type` (`abuse`, `fraud`, …).
        feedback_type: String,
    },
    /// Someone asking to unsubscribe by mail.
    Unsubscribe {
        /// The sender (lowercase).
        address: String,
    },
}

/// A parsed message and what ties it to Herald's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// What it is.
    pub report: MailReport,
    /// Every VERP token in the message.
    pub verp_tokens: Vec<String>,
    /// The original message's `Message-ID`, with its angle brackets, if returned.
    pub original_message_id: Option<String>,
    /// SHA-256 of the raw message: the report's key, so it is applied once.
    pub digest: String,
}

/// Why a message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A report whose structure is broken; kept in the mailbox for a person.
    #[error("malformed report: {0}")]
    Malformed(String),
    /// Neither a report nor an unsubscribe request (an auto-reply, a reply to a mailing).
    #[error("not a bounce report or an unsubscribe request")]
    NotAReport,
}

/// Parse one message. `unsubscribe_addresses` are the `unsubscribe_mailto` addresses
/// (lowercase) of the configured channels.
pub fn parse(raw: &[u8], unsubscribe_addresses: &[String]) -> Result<Parsed, ParseError> {
    let msg = MessageParser::default().parse(raw).ok_or_else(|| ParseError::Malformed("no message headers".into()))?;
    let digest = hex::encode(Sha256::digest(raw));
    let verp_tokens = super::verp::find_tokens(raw);
    let ct = msg.content_type();
    let is_report = ct.is_some_and(|c| c.ctype().eq_ignore_ascii_case("multipart") && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report")));
    if is_report {
        let report_type = ct.and_then(|c| c.attribute("report-type")).unwrap_or("").to_ascii_lowercase();
        let mut status_part: Option<&[u8]> = None;
        let mut feedback_part: Option<&[u8]> = None;
        let mut original: Option<String> = None;
        for part in msg.parts.iter().skip(1) {
            let Some(pct) = part.content_type() else { continue };
            let t = format!("{}/{}", pct.ctype(), pct.subtype().unwrap_or("")).to_ascii_lowercase();
            match t.as_str() {
                "message/delivery-status" | "message/global-delivery-status" => status_part = Some(part.contents()),
                "message/feedback-report" => feedback_part = Some(part.contents()),
                "message/rfc822" | "message/global" => {
                    if let PartType::Message(m) = &part.body {
                        original = original.or_else(|| m.message_id().map(|id| format!("<{id}>")));
                    }
                }
                "text/rfc822-headers" | "message/rfc822-headers" | "message/global-headers" => {
                    original = original.or_else(|| MessageParser::default().parse_headers(part.contents()).and_then(|h| h.message_id().map(|id| format!("<{id}>"))));
                }
                _ => {}
            }
        }
        let report = match report_type.as_str() {
            "delivery-status" => {
                let body = status_part.ok_or_else(|| ParseError::Malformed("a delivery-status report without its message/delivery-status part".into()))?;
                MailReport::Dsn { recipients: dsn_recipients(body)? }
            }
            "feedback-report" => {
                let body = feedback_part.ok_or_else(|| ParseError::Malformed("a feedback report without its message/feedback-report part".into()))?;
                let groups = field_groups(body);
                let fields = groups.first().ok_or_else(|| ParseError::Malformed("an empty feedback report".into()))?;
                let feedback_type = field(fields, "feedback-type").ok_or_else(|| ParseError::Malformed("a feedback report without Feedback-Type".into()))?.to_ascii_lowercase();
                let address = field(fields, "original-rcpt-to").map(clean_address);
                MailReport::Complaint { address, feedback_type }
            }
            other => return Err(ParseError::Malformed(format!("a report of type `{other}`, which Herald does not read"))),
        };
        return Ok(Parsed { report, verp_tokens, original_message_id: original, digest });
    }
    // An unsubscribe request: to an unsubscribe address, or with the subject `unsubscribe`.
    let to_unsub = ["to", "delivered-to", "x-original-to", "envelope-to", "cc"].iter().any(|h| {
        msg.header_raw(*h).is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            unsubscribe_addresses.iter().any(|a| v.contains(a.as_str()))
        })
    });
    let subject_unsub = msg.subject().is_some_and(|s| s.trim().eq_ignore_ascii_case("unsubscribe"));
    if to_unsub || subject_unsub {
        let from = msg.from().and_then(|f| f.first()).and_then(|a| a.address()).map(clean_address);
        return match from {
            Some(address) if address.contains('@') => Ok(Parsed { report: MailReport::Unsubscribe { address }, verp_tokens, original_message_id: None, digest }),
            _ => Err(ParseError::Malformed("an unsubscribe request without a From address".into())),
        };
    }
    Err(ParseError::NotAReport)
}

/// The per-recipient groups of a `message/delivery-status` body.
fn dsn_recipients(body: &[u8]) -> Result<Vec<DsnRecipient>, ParseError> {
    let groups = field_groups(body);
    let mut out = Vec::new();
    // The first group is per-message; the rest are per-recipient. Some servers omit the
    // per-message group: any group with a recipient counts.
    for g in &groups {
        let Some(rcpt) = field(g, "final-recipient").or_else(|| field(g, "original-recipient")) else { continue };
        let address = clean_address(rcpt.split_once(';').map(|(_, a)| a).unwrap_or(rcpt));
        let action = field(g, "action").ok_or_else(|| ParseError::Malformed(format!("no Action for {address}")))?.to_ascii_lowercase();
        let status = field(g, "status").ok_or_else(|| ParseError::Malformed(format!("no Status for {address}")))?.split_whitespace().next().unwrap_or("").to_string();
        if !address.contains('@') {
            return Err(ParseError::Malformed(format!("Final-Recipient `{address}` is not an address")));
        }
        if !status.split('.').count().eq(&3) || !status.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(ParseError::Malformed(format!("Status `{status}` for {address} is not `class.subject.detail`")));
        }
        out.push(DsnRecipient { address, action, status, diagnostic: field(g, "diagnostic-code").map(str::to_string) });
    }
    if out.is_empty() {
        return Err(ParseError::Malformed("a delivery-status report that names no recipient".into()));
    }
    Ok(out)
}

/// Header-style field groups separated by blank lines; continuation lines unfolded.
fn field_groups(body: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(body);
    let mut groups = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                groups.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = cur.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

fn field<'a>(g: &'a [(String, String)], name: &str) -> Option<&'a str> {
    g.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `<Ana@Example.org>` → `ana@example.org`.
fn clean_address(a: &str) -> String {
    a.trim().trim_start_matches('<').trim_end_matches('>').trim().to_lowercase()
}
