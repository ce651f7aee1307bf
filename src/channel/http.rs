//! The shared HTTP client and the one place HTTP status codes are classified.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::header::HeaderMap;

use super::error::{DeliveryError, Kind};

/// Default per-request timeout; a channel's `timeout_secs` overrides it per request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The process-wide reqwest client. Every adapter shares it (one pool, one TLS config).
pub fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // reqwest 0.13 with `rustls-no-provider` panics without a process provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .timeout(DEFAULT_TIMEOUT)
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
                .expect("the HTTP client builds with static settings")
        })
        .clone()
}

/// Classify an HTTP status: 408, 429 and 5xx other than 501 retry; 401 and 403 need auth;
/// any other 4xx (and 501) is permanent. 2xx/3xx never reach here.
pub fn classify_status(status: u16) -> Kind {
    match status {
        408 => Kind::Retryable,
        429 => Kind::RateLimited,
        401 | 403 => Kind::Auth,
        501 => Kind::Permanent,
        500..=599 => Kind::Retryable,
        _ => Kind::Permanent,
    }
}

/// Build a classified error from a non-success response's status, headers and body.
pub fn error_from_response(status: u16, headers: &HeaderMap, body: &str) -> DeliveryError {
    let kind = classify_status(status);
    DeliveryError::new(kind, body.to_string())
        .with_status(status)
        .with_retry_after(retry_after(headers))
}

/// Map a transport error. A connect failure means nothing was sent, so a plain retry is safe;
/// a timeout or a dropped connection after the request went out is an unknown outcome.
pub fn error_from_reqwest(err: &reqwest::Error) -> DeliveryError {
    let msg = strip_url_query(&err.to_string());
    if err.is_connect() {
        DeliveryError::retryable(format!("connect failed: {msg}"))
    } else if err.is_builder() {
        DeliveryError::permanent(format!("bad request: {msg}"))
    } else if err.is_decode() {
        // The network answered success but the body was not what we expected.
        DeliveryError::unknown_outcome(format!("unreadable response: {msg}"))
    } else {
        DeliveryError::unknown_outcome(format!("no answer after the request was sent: {msg}"))
    }
}

/// Read a retry hint: `Retry-After` (seconds or HTTP date), X's `x-rate-limit-reset` and
/// Bluesky's `RateLimit-Reset` (unix seconds), Mastodon's `X-RateLimit-Reset` (ISO 8601).
/// Only consulted for 429/503-style answers; the caller clamps it.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let now = chrono::Utc::now();
    if let Some(v) = header_str(headers, "retry-after") {
        if let Ok(secs) = v.trim().parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc2822(v.trim()) {
            return Some((t.with_timezone(&chrono::Utc) - now).to_std().unwrap_or_default());
        }
    }
    for name in ["x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"] {
        if let Some(v) = header_str(headers, name)
            && let Some(d) = parse_reset(v, now) {
                return Some(d);
            }
    }
    None
}

/// Parse a reset value that is either unix seconds or an ISO 8601 instant.
pub fn parse_reset(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(epoch) = v.parse::<i64>() {
        // Small numbers are delta-seconds (RateLimit draft); large ones are epochs.
        if epoch < 1_000_000_000 {
            return Some(Duration::from_secs(epoch.max(0) as u64));
        }
        return Some(Duration::from_secs((epoch - now.timestamp()).max(0) as u64));
    }
    let t = chrono::DateTime::parse_from_rfc3339(v).ok()?;
    Some((t.with_timezone(&chrono::Utc) - now).to_std().unwrap_or_default())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// reqwest errors print the URL; drop its query, where tokens sometimes travel.
fn strip_url_query(s: &str) -> String {
    let re = regex::Regex::new(r"\?[^\s)]*").expect("static regex");
    re.replace_all(s, "?…").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        assert_eq!(classify_status(408), Kind::Retryable);
        assert_eq!(classify_status(429), Kind::RateLimited);
        assert_eq!(classify_status(500), Kind::Retryable);
        assert_eq!(classify_status(503), Kind::Retryable);
        assert_eq!(classify_status(501), Kind::Permanent);
        assert_eq!(classify_status(400), Kind::Permanent);
        assert_eq!(classify_status(422), Kind::Permanent);
        assert_eq!(classify_status(401), Kind::Auth);
        assert_eq!(classify_status(403), Kind::Auth);
    }

    #[test]
    fn reset_headers() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T21:00:00Z").unwrap().to_utc();
        assert_eq!(parse_reset("1795554060", now), Some(Duration::from_secs(1795554060 - now.timestamp() as u64)));
        assert_eq!(parse_reset("2026-11-24T21:01:00.000000Z", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_reset("30", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_reset("2026-11-24T20:00:00Z", now), Some(Duration::ZERO));
    }
}
