//! Unit tests: Graph error classification.

use reqwest::header::HeaderMap;

use super::client::{classify, is_not_ready};
use crate::channel::Kind;

fn graph(code: i64, sub: Option<i64>, transient: bool, msg: &str) -> String {
    let mut e = serde_json::json!({"message": msg, "type": "OAuthException", "code": code, "is_transient": transient});
    if let Some(s) = sub {
        e["error_subcode"] = s.into();
    }
    serde_json::json!({ "error": e }).to_string()
}

#[test]
fn graph_errors_are_classified_by_code_not_only_status() {
    let h = HeaderMap::new();
    assert_eq!(classify(400, &h, &graph(190, None, false, "Invalid OAuth access token")).kind(), Kind::Auth);
    assert_eq!(classify(400, &h, &graph(2, None, true, "Service temporarily unavailable")).kind(), Kind::Retryable);
    let race = classify(400, &h, &graph(24, Some(4279009), false, "The requested resource does not exist"));
    assert_eq!(race.kind(), Kind::Retryable);
    assert!(is_not_ready(&race));
    assert_eq!(classify(400, &h, &graph(4, None, false, "Application request limit reached")).kind(), Kind::RateLimited);
    assert_eq!(classify(400, &h, &graph(100, None, false, "THREADS_API__LINK_LIMIT_EXCEEDED")).kind(), Kind::Permanent);
    assert_eq!(classify(400, &h, &graph(100, Some(33), false, "Unsupported request")).kind(), Kind::Permanent);
    assert_eq!(classify(500, &h, &graph(1, None, false, "An unknown error occurred")).kind(), Kind::Retryable);
    // Not a Graph body: the status decides.
    assert_eq!(classify(503, &h, "<html>busy</html>").kind(), Kind::Retryable);
}

#[test]
fn messages_name_the_code() {
    let e = classify(400, &HeaderMap::new(), &graph(24, Some(4279009), false, "The requested resource does not exist"));
    assert_eq!(e.status(), Some(400));
    assert!(e.message().contains("code 24/4279009"), "{}", e.message());
}
