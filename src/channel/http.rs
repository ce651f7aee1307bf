//! The shared HTTP client, the one "send, read headers and a bounded body, classify" helper
//! every adapter uses, and the one place HTTP status codes are classified.

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

/// Longest success body read (4 MiB): far above any JSON answer a network gives, low enough
/// that a broken or hostile server can't fill the daemon's memory.
pub const SUCCESS_BODY_MAX: usize = 4 * 1024 * 1024;
/// Longest error body kept (64 KiB); the rest is not read. Error excerpts are shorter still.
pub const ERROR_BODY_MAX: usize = 64 * 1024;

/// A network's answer, any status: the status, the headers and the body, read under a cap.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as text (lossy UTF-8). An error body is cut at [`ERROR_BODY_MAX`].
    pub body: String,
}

impl Answer {
    /// 2xx?
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The classified error for a non-success answer ([`error_from_response`]).
    pub fn error(&self) -> DeliveryError {
        error_from_response(self.status, &self.headers, &self.body)
    }
    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// Send a request and read the answer: status, headers and the body, never more than
/// [`SUCCESS_BODY_MAX`] bytes for a 2xx (an answer past that is an error: unknown outcome,
/// since the request was applied or not) nor more than [`ERROR_BODY_MAX`] for any other
/// status (cut, then classified by its status). The cap counts bytes as they arrive, so a
/// chunked answer, or one whose `content-length` lies, is bounded too.
pub async fn send(req: reqwest::RequestBuilder) -> Result<Answer, DeliveryError> {
    let res = req.send().await.map_err(|e| error_from_reqwest(&e))?;
    read_answer(res).await
}

/// Read a response already received, under the caps of [`send`].
pub async fn read_answer(res: reqwest::Response) -> Result<Answer, DeliveryError> {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let success = (200..300).contains(&status);
    let cap = if success { SUCCESS_BODY_MAX } else { ERROR_BODY_MAX };
    let (bytes, over) = read_capped(res, cap).await?;
    if over && success {
        return Err(DeliveryError::unknown_outcome(format!(
            "the answer ({status}) is larger than {} MiB; stopped reading it",
            SUCCESS_BODY_MAX / (1024 * 1024)
        ))
        .with_status(status));
    }
    Ok(Answer { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() })
}

/// Fetch a binary body (an image) of at most `max` bytes. A 2xx answer over `max` is a
/// permanent error naming the limit; a non-2xx answer is classified by its status.
pub async fn fetch_bytes(req: reqwest::RequestBuilder, max: usize) -> Result<(HeaderMap, Vec<u8>), DeliveryError> {
    let res = req.send().await.map_err(|e| error_from_reqwest(&e))?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    if !(200..300).contains(&status) {
        let (bytes, _) = read_capped(res, ERROR_BODY_MAX).await?;
        return Err(error_from_response(status, &headers, &String::from_utf8_lossy(&bytes)));
    }
    let (bytes, over) = read_capped(res, max).await?;
    if over {
        return Err(DeliveryError::permanent(format!("the file is larger than {max} bytes; stopped reading it")).with_status(status));
    }
    Ok((headers, bytes))
}

/// Read at most `cap` bytes of the body, chunk by chunk. Returns the bytes and whether more
/// were on the way (then the connection is dropped, not drained).
async fn read_capped(mut res: reqwest::Response, cap: usize) -> Result<(Vec<u8>, bool), DeliveryError> {
    let mut out: Vec<u8> = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| error_from_reqwest(&e))? {
        let room = cap - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

/// A refusal by the network's policy (not the credential): the network's own message, then
/// what to do. Re-authorising would not help, so this is never `needs_auth`.
pub fn forbidden(network: &str, status: u16, message: &str, hint: &str) -> DeliveryError {
    DeliveryError::forbidden(format!("{network} refused this by policy: {message} ({hint})")).with_status(status)
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
