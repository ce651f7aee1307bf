//! One recipient's copy of a mailing: merge tags filled, the unsubscribe link and headers made,
//! the deterministic Message-ID derived. Shared by the SMTP and the API adapters; the SMTP
//! adapter turns it into a MIME message here too.

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use sha2::{Digest, Sha256};

use super::ledger::Recipient;
use super::merge::{MergeTemplate, QpTemplate};
use super::token::TokenKey;
use crate::render::EmailRendering;

/// The parts of a mailing that are the same for every recipient.
#[derive(Debug, Clone)]
pub struct Composer {
    /// The sender.
    pub from: Mailbox,
    /// Optional Reply-To.
    pub reply_to: Option<Mailbox>,
    /// `unsubscribe_base_url` without a trailing `/`.
    pub unsubscribe_base: String,
    /// `mailto:` address (without the scheme) for List-Unsubscribe, if configured.
    pub unsubscribe_mailto: Option<String>,
    /// Signs unsubscribe tokens (and VERP Return-Paths).
    pub key: TokenKey,
    /// VERP: the domain of each message's own Return-Path `bounces+<token>@domain`
    /// (`bounce_domain`); `None`: the Return-Path is `from`.
    pub bounce_domain: Option<String>,
}

/// The rendering, parsed once for a mailing.
#[derive(Debug, Clone)]
pub struct Mailing {
    /// The delivery key (`{issue}/{channel}/r{rev}`).
    pub key: String,
    /// First 16 hex digits of SHA-256 of the key: the Message-ID's left half.
    pub key_hash: String,
    subject: MergeTemplate,
    html: MergeTemplate,
    text: MergeTemplate,
    /// The HTML and text parts quoted-printable encoded once, for SMTP.
    html_qp: QpTemplate,
    text_qp: QpTemplate,
    /// The parts with CRLF line breaks, to send as they are (`8bit`) where their lines allow
    /// it; `None` for a part whose template does not (see [`eight_bit_template`]).
    html_8bit: Option<MergeTemplate>,
    text_8bit: Option<MergeTemplate>,
}

/// The longest line SMTP carries (RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF).
const MAX_WIRE_LINE: usize = 998;

/// `src` with CRLF line breaks, parsed for merging, if it could go as an `8bit` part: no NUL,
/// no lone CR, every line at most 998 octets. Long lines of HTML or text are common enough
/// that quoted-printable stays the fallback.
fn eight_bit_template(src: &str) -> Option<MergeTemplate> {
    let crlf = src.replace("\r\n", "\n").replace('\n', "\r\n");
    wire_ok(crlf.as_bytes()).then(|| MergeTemplate::parse(&crlf))
}

/// Whether `b` may be sent as an `8bit` MIME part: no NUL, CR and LF only as CRLF, lines of at
/// most 998 octets.
pub fn wire_ok(b: &[u8]) -> bool {
    // Line by line with memchr (SIMD): this runs over every personal copy.
    let mut rest = b;
    loop {
        let (line, more) = match memchr::memchr(b'\n', rest) {
            // A line break must be CRLF: the line ends with its CR.
            Some(i) => match rest[..i].strip_suffix(b"\r") {
                Some(line) => (line, Some(&rest[i + 1..])),
                None => return false,
            },
            None => (rest, None),
        };
        if line.len() > MAX_WIRE_LINE || memchr::memchr2(b'\r', 0, line).is_some() {
            return false;
        }
        match more {
            Some(m) => rest = m,
            None => return true,
        }
    }
}

impl Mailing {
    /// Parse the rendering's merge tags.
    pub fn new(key: &str, r: &EmailRendering) -> Self {
        let html = MergeTemplate::parse(&r.html);
        let text = MergeTemplate::parse(&r.text);
        Self {
            key: key.to_string(),
            key_hash: short_hash(key),
            subject: MergeTemplate::parse(&r.subject),
            html_qp: html.to_qp(),
            text_qp: text.to_qp(),
            html_8bit: eight_bit_template(&r.html),
            text_8bit: eight_bit_template(&r.text),
            html,
            text,
        }
    }
}

/// One recipient's message, before it takes a wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personal {
    /// The recipient's mailbox.
    pub to: Mailbox,
    /// Subject, tags filled.
    pub subject: String,
    /// HTML part, tags filled (values escaped).
    pub html: String,
    /// Text part, tags filled.
    pub text: String,
    /// `<keyhash.rcpthash@domain>`, the same on every resend.
    pub message_id: String,
    /// The one-click URL.
    pub unsubscribe_url: String,
    /// The `List-Unsubscribe` value.
    pub list_unsubscribe: String,
}

/// `List-Unsubscribe-Post` value (RFC 8058).
pub const LIST_UNSUBSCRIBE_POST: &str = "List-Unsubscribe=One-Click";

/// First 16 hex digits of SHA-256.
pub fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    hex::encode(&d[..8])
}

impl Composer {
    /// The one-click URL for an address (the first token form, which names the address).
    pub fn unsubscribe_url(&self, email: &str) -> String {
        format!("{}/{}", self.unsubscribe_base, self.key.token(email))
    }

    /// The one-click URL for a recipient: its opaque token names the subscriber's id, so the
    /// address never shows in the URL.
    pub fn unsubscribe_url_for(&self, r: &Recipient) -> String {
        match r.subscriber_id {
            Some(id) => format!("{}/{}", self.unsubscribe_base, self.key.token_for_subscriber(id)),
            None => self.unsubscribe_url(&r.email),
        }
    }

    /// The Message-ID for (mailing, address): deterministic, so a resend reuses it.
    pub fn message_id(&self, mailing: &Mailing, email: &str) -> String {
        format!("<{}.{}@{}>", mailing.key_hash, short_hash(&email.to_lowercase()), self.from.email.domain())
    }

    /// The parts of a personal copy both wire forms share: mailbox, subject, Message-ID and the
    /// unsubscribe URL and header.
    fn envelope_parts(&self, mailing: &Mailing, r: &Recipient) -> Result<Common, String> {
        let addr: Address = r.email.parse().map_err(|e| format!("`{}` is not a valid address: {e}", r.email))?;
        let unsubscribe_url = self.unsubscribe_url_for(r);
        let mut list_unsubscribe = format!("<{unsubscribe_url}>");
        if let Some(m) = &self.unsubscribe_mailto {
            list_unsubscribe.push_str(&format!(", <mailto:{m}?subject=unsubscribe>"));
        }
        let to = mailbox(&r.name, addr)?;
        let subject = header_line(&mailing.subject.fill(&vars(r, &unsubscribe_url), false));
        Ok(Common { to, subject, message_id: self.message_id(mailing, &r.email), unsubscribe_url, list_unsubscribe })
    }

    /// Fill the mailing for one recipient. Built-in variables (`name`, `email`,
    /// `unsubscribe_url`) win over CSV columns of the same name.
    pub fn personalize(&self, mailing: &Mailing, r: &Recipient) -> Result<Personal, String> {
        let c = self.envelope_parts(mailing, r)?;
        let (html, text) = {
            let vars = vars(r, &c.unsubscribe_url);
            (mailing.html.fill(&vars, true), mailing.text.fill(&vars, false))
        };
        Ok(Personal {
            to: c.to,
            subject: c.subject,
            html,
            text,
            message_id: c.message_id,
            unsubscribe_url: c.unsubscribe_url,
            list_unsubscribe: c.list_unsubscribe,
        })
    }

    /// One recipient's MIME message: multipart/alternative (text, then HTML, both
    /// quoted-printable from the mailing's pre-encoded parts), Date, Message-ID and the RFC 8058
    /// headers.
    pub fn message(&self, mailing: &Mailing, r: &Recipient) -> Result<Message, String> {
        self.message_for(mailing, r, false)
    }

    /// As [`Composer::message`]; with `eight_bit` (the server takes 8BITMIME), each part whose
    /// filled lines fit goes as it is, `8bit` (`7bit` when ASCII), and the rest as
    /// quoted-printable. Unencoded parts are smaller, cost nothing to encode, and come to the
    /// server as a few hundred long lines fewer per message.
    pub fn message_for(&self, mailing: &Mailing, r: &Recipient, eight_bit: bool) -> Result<Message, String> {
        let c = self.envelope_parts(mailing, r)?;
        let vars = vars(r, &c.unsubscribe_url);
        let part = |raw: &Option<MergeTemplate>, qp: &QpTemplate, escape: bool| {
            if eight_bit && let Some(t) = raw {
                let filled = t.fill(&vars, escape).into_bytes();
                if wire_ok(&filled) {
                    let cte = if filled.is_ascii() { ContentTransferEncoding::SevenBit } else { ContentTransferEncoding::EightBit };
                    return Body::dangerous_pre_encoded(filled, cte);
                }
            }
            let mut out = Vec::new();
            qp.fill_into(&mut out, &vars, escape);
            Body::dangerous_pre_encoded(out, ContentTransferEncoding::QuotedPrintable)
        };
        let body = MultiPart::alternative()
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(part(&mailing.text_8bit, &mailing.text_qp, false)))
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(part(&mailing.html_8bit, &mailing.html_qp, true)));
        // The envelope, given: lettre would otherwise parse it back out of the From and To
        // headers it has just formatted, for every copy.
        let envelope = Envelope::new(Some(self.return_path(r)?), vec![c.to.email.clone()]).map_err(|e| format!("cannot build the message: {e}"))?;
        self.headers(c.to, c.subject, c.message_id, c.list_unsubscribe).envelope(envelope).multipart(body).map_err(|e| format!("cannot build the message: {e}"))
    }

    /// The envelope sender (the Return-Path the receiving server writes): the message's own
    /// VERP address when `bounce_domain` is set, else `from`.
    pub fn return_path(&self, r: &Recipient) -> Result<Address, String> {
        match &self.bounce_domain {
            Some(d) => crate::bounces::verp::return_path(&self.key, r.id, &r.email, d).parse().map_err(|e| format!("the VERP Return-Path for `{d}` is not an address: {e}")),
            None => Ok(self.from.email.clone()),
        }
    }

    fn headers(&self, to: Mailbox, subject: String, message_id: String, list_unsubscribe: String) -> lettre::message::MessageBuilder {
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id))
            .date_now()
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), list_unsubscribe))
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe-Post"), LIST_UNSUBSCRIBE_POST.to_string()));
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        b
    }
}

/// A recipient's mailbox, checked now: a name lettre cannot write into a header (a line break
/// in it) is this recipient's error, not a panic when the message is formatted later.
pub fn mailbox(name: &str, addr: Address) -> Result<Mailbox, String> {
    let name = name.trim();
    if name.chars().any(char::is_control) {
        return Err(format!(
            "the subscriber's name {:?} holds control characters and cannot go in a To: header; fix it and import the list again",
            super::import::escape_controls(name)
        ));
    }
    let m = Mailbox::new((!name.is_empty()).then(|| name.to_string()), addr);
    format_mailbox(&m)?;
    Ok(m)
}

/// A mailbox as header text, or an error where lettre's `Display` would fail (never
/// `to_string()`, which panics on that).
pub fn format_mailbox(m: &Mailbox) -> Result<String, String> {
    use std::fmt::Write;
    let mut s = String::new();
    write!(s, "{m}").map_err(|_| format!("the mailbox of {} cannot be written as a header", m.email))?;
    Ok(s)
}

/// A filled header line: control characters (line breaks first) become spaces.
fn header_line(s: &str) -> String {
    if s.chars().any(char::is_control) { s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect() } else { s.to_string() }
}

/// What [`Composer::personalize`] and [`Composer::message`] share.
struct Common {
    to: Mailbox,
    subject: String,
    message_id: String,
    unsubscribe_url: String,
    list_unsubscribe: String,
}

/// A recipient's variables: the built-ins (`name`, `email`, `unsubscribe_url`) win over CSV
/// columns of the same name.
fn vars<'a>(r: &'a Recipient, unsubscribe_url: &'a str) -> impl Fn(&str) -> Option<String> + 'a {
    move |k: &str| match k {
        "name" => Some(r.name.clone()),
        "email" => Some(r.email.clone()),
        "unsubscribe_url" => Some(unsubscribe_url.to_string()),
        _ => r.vars.get(k).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::SecretString;

    fn composer(mailto: Option<&str>) -> Composer {
        Composer {
            from: "Signal & Noise <news@example.com>".parse().unwrap(),
            reply_to: None,
            unsubscribe_base: "https://news.example.com/unsubscribe".into(),
            unsubscribe_mailto: mailto.map(str::to_string),
            key: TokenKey::new(&SecretString::new("k")),
            bounce_domain: None,
        }
    }

    fn recipient(email: &str, name: &str) -> Recipient {
        let mut vars = BTreeMap::new();
        vars.insert("city".into(), "Porto & <Lisboa>".into());
        Recipient { id: 1, email: email.into(), name: name.into(), vars, subscriber_id: None, attempts: 0, skip: None }
    }

    fn rendering() -> EmailRendering {
        EmailRendering {
            subject: "Issue 9 for [[name]]".into(),
            html: r#"<p>Hi [[name]] from [[city]]</p><a href="[[unsubscribe_url]]">u</a>"#.into(),
            text: "Hi [[name]] from [[city]] [[nope]]\nUnsubscribe: [[unsubscribe_url]]\n".into(),
        }
    }

    /// Issue 17: with `bounce_domain`, each message's envelope sender (the Return-Path the
    /// receiving server writes) is its own VERP address, which verifies for that message only.
    #[test]
    fn each_message_carries_its_own_verp_return_path() {
        let mut c = composer(None);
        let m = Mailing::new("a/email/r1", &rendering());
        let mut a = recipient("ana@example.org", "Ana");
        let mut b = recipient("bob@example.org", "Bob");
        (a.id, b.id) = (11, 12);
        assert_eq!(c.message(&m, &a).unwrap().envelope().from().unwrap().to_string(), "news@example.com", "no bounce_domain: from");
        c.bounce_domain = Some("bounces.example.com".into());
        let ra = c.message(&m, &a).unwrap().envelope().from().unwrap().to_string();
        let rb = c.message(&m, &b).unwrap().envelope().from().unwrap().to_string();
        assert_ne!(ra, rb);
        assert!(ra.starts_with("bounces+") && ra.ends_with("@bounces.example.com"), "{ra}");
        let t = crate::bounces::verp::find_tokens(ra.as_bytes());
        assert!(crate::bounces::verp::verify(std::slice::from_ref(&c.key), &t[0], 11, "ana@example.org"));
        assert!(!crate::bounces::verp::verify(std::slice::from_ref(&c.key), &t[0], 11, "bob@example.org"));
        assert!(!crate::bounces::verp::verify(std::slice::from_ref(&c.key), &t[0], 12, "bob@example.org"));
        // The From header is unchanged.
        let raw = String::from_utf8(c.message(&m, &a).unwrap().formatted()).unwrap();
        assert!(raw.lines().any(|l| l.starts_with("From: ") && l.ends_with(" <news@example.com>")), "{raw}");
    }

    #[test]
    fn personal_copy_fills_tags_and_headers() {
        let c = composer(Some("unsub@example.com"));
        let m = Mailing::new("issue-9/newsletter/r1", &rendering());
        let p = c.personalize(&m, &recipient("ana@example.org", "Ana")).unwrap();
        assert_eq!(p.subject, "Issue 9 for Ana");
        assert!(p.html.contains("from Porto &amp; &lt;Lisboa&gt;"), "{}", p.html);
        assert!(p.text.contains("from Porto & <Lisboa> \n"), "{}", p.text);
        assert!(p.text.contains(&p.unsubscribe_url));
        assert!(p.unsubscribe_url.starts_with("https://news.example.com/unsubscribe/"));
        assert_eq!(c.key.verify(p.unsubscribe_url.rsplit('/').next().unwrap()).as_deref(), Some("ana@example.org"));
        assert_eq!(p.list_unsubscribe, format!("<{}>, <mailto:unsub@example.com?subject=unsubscribe>", p.unsubscribe_url));
        assert!(p.message_id.starts_with('<') && p.message_id.ends_with("@example.com>"));
    }

    #[test]
    fn message_id_is_stable_per_key_and_recipient() {
        let c = composer(None);
        let m1 = Mailing::new("a/email/r1", &rendering());
        let m2 = Mailing::new("a/email/r2", &rendering());
        assert_eq!(c.message_id(&m1, "x@y.z"), c.message_id(&m1, "X@y.z"));
        assert_ne!(c.message_id(&m1, "x@y.z"), c.message_id(&m1, "w@y.z"));
        assert_ne!(c.message_id(&m1, "x@y.z"), c.message_id(&m2, "x@y.z"));
    }

    #[test]
    fn mime_has_both_parts_and_the_rfc8058_headers() {
        let c = composer(None);
        let m = Mailing::new("a/email/r1", &rendering());
        let r = recipient("ana@example.org", "");
        let p = c.personalize(&m, &r).unwrap();
        let raw = String::from_utf8(c.message(&m, &r).unwrap().formatted()).unwrap();
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        let text_at = raw.find("text/plain").unwrap();
        let html_at = raw.find("text/html").unwrap();
        assert!(text_at < html_at, "text part first");
        assert!(raw.contains(&format!("Message-ID: {}", p.message_id)));
        assert!(raw.contains("\r\nTo: ana@example.org\r\n"), "an empty name gives a bare address: {raw}");
        // The pre-encoded parts decode to exactly the personal copy.
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("parses");
        assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n"), p.text);
        assert_eq!(parsed.body_html(0).unwrap().replace("\r\n", "\n"), p.html);
        assert!(raw.contains("Content-Transfer-Encoding: quoted-printable"), "{raw}");
    }

    #[test]
    fn eight_bit_parts_go_as_they_are_and_decode_to_the_same_copy() {
        let c = composer(None);
        let mut rend = rendering();
        rend.html.push_str("<p>caf\u{e9} \u{b7} .dot</p>\n.leading\n");
        let m = Mailing::new("a/email/r1", &rend);
        let r = recipient("ana@example.org", "Ana");
        let p = c.personalize(&m, &r).unwrap();
        let raw = String::from_utf8(c.message_for(&m, &r, true).unwrap().formatted()).unwrap();
        assert!(raw.contains("Content-Transfer-Encoding: 7bit"), "the ASCII text part: {raw}");
        assert!(raw.contains("Content-Transfer-Encoding: 8bit"), "the UTF-8 HTML part: {raw}");
        assert!(!raw.contains("quoted-printable"), "{raw}");
        assert!(wire_ok(raw.as_bytes()), "CRLF only, short lines");
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("parses");
        assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n"), p.text);
        assert_eq!(parsed.body_html(0).unwrap().replace("\r\n", "\n"), p.html);
    }

    #[test]
    fn a_part_that_cannot_go_unencoded_falls_back_to_quoted_printable() {
        let c = composer(None);
        // A template line longer than SMTP carries: the HTML part is encoded.
        let mut rend = rendering();
        rend.html = format!("<p>{}</p>", "x".repeat(1200));
        let m = Mailing::new("a/email/r1", &rend);
        let r = recipient("ana@example.org", "Ana");
        let raw = String::from_utf8(c.message_for(&m, &r, true).unwrap().formatted()).unwrap();
        assert!(raw.contains("Content-Transfer-Encoding: 7bit"), "the text part still fits: {raw}");
        assert!(raw.contains("Content-Transfer-Encoding: quoted-printable"), "{raw}");
        // A merge value with a line break would leave a bare LF: that copy's text part is encoded.
        let mut r2 = recipient("bo@example.org", "Bo");
        r2.vars.insert("city".into(), "Porto\nLisboa".into());
        let m = Mailing::new("a/email/r1", &rendering());
        let raw = String::from_utf8(c.message_for(&m, &r2, true).unwrap().formatted()).unwrap();
        assert!(raw.contains("quoted-printable"), "{raw}");
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("parses");
        assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n"), c.personalize(&m, &r2).unwrap().text);
        assert!(!wire_ok(b"a\nb") && !wire_ok(b"a\rb") && !wire_ok(b"a\0") && wire_ok(b"a\r\nb"));
    }
}
