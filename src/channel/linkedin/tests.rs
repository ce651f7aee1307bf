//! Unit tests: duplicate parsing, error classification, token expiry warnings.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use super::channel::{classify, duplicate_urn};
use super::{token_expiry_warning, version_age_warning};
use crate::channel::Kind;
use crate::config::LinkedinConfig;

fn cfg(expires: Option<&str>) -> LinkedinConfig {
    let mut t = String::from("author = \"urn:li:person:abc\"\n");
    if let Some(e) = expires {
        t.push_str(&format!("token_expires_at = \"{e}\"\n"));
    }
    toml::from_str(&t).expect("linkedin config parses")
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap().to_utc()
}

#[test]
fn duplicate_message_yields_the_urn() {
    let body = r#"{"errorDetailType":"com.linkedin.common.error.BadRequest","message":"com.linkedin.content.common.exception.BadRequestResponseException: Content is a duplicate of urn:li:share:7141138937766391808","errorDetails":{"inputErrors":[{"description":"Duplicate post is detected","input":{},"code":"DUPLICATE_POST"}]},"status":422}"#;
    assert_eq!(duplicate_urn(body).as_deref(), Some("urn:li:share:7141138937766391808"));
    assert_eq!(duplicate_urn(r#"{"message":"Content is a duplicate of urn:li:ugcPost:123"}"#).as_deref(), Some("urn:li:ugcPost:123"));
    assert_eq!(duplicate_urn(r#"{"message":"Duplicate"}"#), None);
}

#[test]
fn classification() {
    let h = HeaderMap::new();
    let e = classify(429, &h, "");
    assert_eq!(e.kind(), Kind::RateLimited);
    assert_eq!(e.retry_after(), None, "LinkedIn sends no rate-limit headers");
    assert!(e.message().contains("midnight UTC"));
    assert_eq!(classify(401, &h, r#"{"status":401,"code":"INVALID_ACCESS_TOKEN","message":"Invalid access token"}"#).kind(), Kind::Auth);
    let v = classify(426, &h, r#"{"status":426,"code":"NONEXISTENT_VERSION","message":"Requested version 20240401 is not active"}"#);
    assert_eq!(v.kind(), Kind::Permanent);
    assert!(v.message().contains("linkedin_version"), "{}", v.message());
    assert_eq!(classify(502, &h, "bad gateway").kind(), Kind::Retryable);
    assert_eq!(classify(422, &h, r#"{"message":"Unrecognized field x"}"#).kind(), Kind::Permanent);
}

#[test]
fn token_expiry_warnings() {
    assert_eq!(token_expiry_warning(&cfg(None), now()), None);
    assert_eq!(token_expiry_warning(&cfg(Some("2027-01-20T00:00:00Z")), now()), None, "two months left");
    let soon = token_expiry_warning(&cfg(Some("2026-11-30T12:00:00Z")), now()).expect("5 days left warns");
    assert!(soon.contains("in 5 days"), "{soon}");
    let hours = token_expiry_warning(&cfg(Some("2026-11-25T20:00:00Z")), now()).expect("hours left warns");
    assert!(hours.contains("in 8 h"), "{hours}");
    let edge = token_expiry_warning(&cfg(Some("2026-12-02T12:00:00Z")), now());
    assert!(edge.is_some(), "exactly 7 days warns");
    assert_eq!(token_expiry_warning(&cfg(Some("2026-12-02T12:00:01Z")), now()), None);
    let past = token_expiry_warning(&cfg(Some("2026-11-20")), now()).expect("expired warns");
    assert!(past.contains("expired") && past.contains("5 days ago"), "{past}");
    let bad = token_expiry_warning(&cfg(Some("next tuesday")), now()).expect("unreadable warns");
    assert!(bad.contains("RFC 3339"), "{bad}");
}

/// Issue 14 item 8: `check` warns when `linkedin_version` is more than 10 months old.
#[test]
fn version_age_warning_after_ten_months() {
    let at = |v: &str| {
        let mut c = cfg(None);
        c.linkedin_version = v.into();
        version_age_warning(&c, now())
    };
    assert_eq!(at("202611"), None);
    assert_eq!(at("202601"), None, "10 months");
    let w = at("202512").expect("11 months warns");
    assert!(w.contains("11 months old") && w.contains("linkedin_version = \"202611\""), "{w}");
    assert!(at("202401.01").is_some());
}
