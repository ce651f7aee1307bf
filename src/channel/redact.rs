//! Keep secrets out of error excerpts. A service that echoes the request in its error body
//! (some do, and a hostile one will) would otherwise put the channel's token into
//! `attempts.error`, `deliveries.last_error`, `status`, `/status` and the log.
//!
//! Two layers: [`echoes`] blanks what looks like a credential header or parameter
//! (`Authorization`, `Cookie`, `Bearer …`, `access_token=…`, `"password": "…"`), for any error;
//! [`Redacting`] wraps each adapter built in [`super::build`] and also blanks the channel's own
//! secret values, however they appear, before an error or a note leaves the adapter.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use regex::Regex;

use super::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled};
use crate::render::Rendering;

/// What a blanked secret reads as.
pub const REDACTED: &str = "[redacted]";

/// Shortest secret value blanked by value: shorter ones would blank ordinary words.
const MIN_SECRET_LEN: usize = 6;

/// Credential parameters, as a service might echo them: the name, its separator, the value
/// (up to a quote, a space or a JSON/form delimiter).
static PARAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(x-postmark-server-token|x-api-key|api[_-]?key|access_?token|refresh_?token|access_?jwt|refresh_?jwt|app_?password|password|client_secret|oauth_token|oauth_signature|oauth_consumer_key|token)(\\?["']?\s*[:=]\s*\\?["']?)([^"'\\\s,&;}$\[][^"'\\\s,&;}]*)"#,
    )
    .expect("the parameter pattern compiles")
});

/// Credential headers: the whole value, up to the end of the line or a quote.
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)((?:proxy-)?authorization|(?:set-)?cookie)(\\?["']?\s*[:=]\s*\\?["']?)([^"'\\\r\n$\[][^"'\\\r\n]*)"#)
        .expect("the header pattern compiles")
});

/// `Bearer <token>` / `Basic <credentials>` anywhere.
static SCHEME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(bearer|basic|dpop)\s+[A-Za-z0-9._~+/=:-]{6,}"#).expect("the scheme pattern compiles"));

/// Blank credential-looking echoes in `s` (header names and parameters whatever the channel).
pub fn echoes(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    for (re, named) in [(&*SCHEME, false), (&*PARAM, true), (&*HEADER, true)] {
        if !re.is_match(&out) {
            continue;
        }
        let replaced = if named {
            re.replace_all(&out, |c: &regex::Captures<'_>| format!("{}{}{REDACTED}", &c[1], &c[2])).into_owned()
        } else {
            re.replace_all(&out, |c: &regex::Captures<'_>| format!("{} {REDACTED}", &c[1])).into_owned()
        };
        out = Cow::Owned(replaced);
    }
    out
}

/// Blanks one channel's secret values, in the forms an echo may carry them: as they are,
/// percent-encoded, JSON-escaped and base64 (Basic auth).
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so a value containing another is blanked whole.
    values: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values (short or empty ones are ignored).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        use base64::Engine;
        let mut values = Vec::new();
        for v in secrets {
            if v.chars().count() < MIN_SECRET_LEN {
                continue;
            }
            let encoded = percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC).to_string();
            let json = serde_json::to_string(&v).map(|j| j[1..j.len() - 1].to_string()).unwrap_or_default();
            let b64 = base64::engine::general_purpose::STANDARD.encode(v.as_bytes());
            // Each line of a multi-line secret (a key file) on its own, too.
            let lines: Vec<String> = v.lines().map(str::trim).filter(|l| l.len() >= MIN_SECRET_LEN).map(str::to_string).collect();
            values.extend([v, encoded, json, b64]);
            values.extend(lines);
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self { values }
    }

    /// `s` with every known secret value and every credential echo blanked.
    pub fn redact(&self, s: &str) -> String {
        let mut out = echoes(s).into_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }

    /// The error with its message redacted; kind, status and retry hint kept.
    pub fn error(&self, e: DeliveryError) -> DeliveryError {
        let message = self.redact(e.message());
        if message == e.message() {
            return e;
        }
        let mut out = DeliveryError::new(e.kind(), message).with_retry_after(e.retry_after());
        if let Some(s) = e.status() {
            out = out.with_status(s);
        }
        out
    }
}

/// An adapter whose errors, notes and reconciliation reasons pass through a [`Redactor`].
pub struct Redacting {
    inner: Arc<dyn Adapter>,
    redactor: Redactor,
}

impl Redacting {
    /// Wrap `inner`, blanking `redactor`'s values.
    pub fn wrap(inner: Arc<dyn Adapter>, redactor: Redactor) -> Arc<dyn Adapter> {
        Arc::new(Self { inner, redactor })
    }

    fn receipt(&self, mut r: Receipt) -> Receipt {
        r.note = r.note.map(|n| self.redactor.redact(&n));
        r.warning = r.warning.map(|w| self.redactor.redact(&w));
        r
    }
}

#[async_trait]
impl Adapter for Redacting {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        self.inner.deliver(rendering, ctx).await.map(|r| self.receipt(r)).map_err(|e| self.redactor.error(e))
    }

    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        match self.inner.find_existing(rendering, ctx).await {
            Ok(Reconciled::Found(r)) => Ok(Reconciled::Found(self.receipt(r))),
            Ok(Reconciled::CannotCheck(reason)) => Ok(Reconciled::CannotCheck(self.redactor.redact(&reason))),
            Ok(Reconciled::NotFound) => Ok(Reconciled::NotFound),
            Err(e) => Err(self.redactor.error(e)),
        }
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        self.inner.healthcheck().await.map_err(|e| self.redactor.error(e))
    }

    async fn preflight(&self, rendering: &Rendering) -> Result<(), String> {
        self.inner.preflight(rendering).await.map_err(|e| self.redactor.redact(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_credentials_are_blanked() {
        let cases = [
            ("Authorization: Bearer abcdef123456", "abcdef123456"),
            (r#"{"headers":{"authorization":"OAuth oauth_consumer_key=\"ck-123456\", oauth_token=\"tok-123456\""}}"#, "ck-123456"),
            (r#"{"headers":{"authorization":"OAuth oauth_consumer_key=\"ck-123456\", oauth_token=\"tok-123456\""}}"#, "tok-123456"),
            ("cookie: substack.sid=s%3Asecretvalue; other=1", "secretvalue"),
            (r#"{"identifier":"me.bsky.social","password":"app-pass-1234"}"#, "app-pass-1234"),
            ("GET /x?access_token=EAAG123456&fields=id", "EAAG123456"),
            ("X-Postmark-Server-Token: pm-1234567", "pm-1234567"),
        ];
        for (echo, secret) in cases {
            let r = echoes(echo);
            assert!(!r.contains(secret), "{echo} → {r}");
            assert!(r.contains(REDACTED), "{r}");
        }
        let plain = "400 Bad Request: the text is too long (max 500 characters)";
        assert!(matches!(echoes(plain), Cow::Borrowed(_)));
    }

    #[test]
    fn the_channels_own_values_are_blanked_in_every_form() {
        let r = Redactor::new(["s3cr3t/value+1".to_string(), "abc".to_string()]);
        for form in ["s3cr3t/value+1", "s3cr3t%2Fvalue%2B1", "czNjcjN0L3ZhbHVlKzE="] {
            let out = r.redact(&format!("the service said: {form} is wrong"));
            assert!(!out.contains(form) && out.contains(REDACTED), "{out}");
        }
        assert_eq!(r.redact("abc stays: too short to be told from a word"), "abc stays: too short to be told from a word");
        let e = r.error(DeliveryError::rate_limited("echo s3cr3t/value+1", Some(std::time::Duration::from_secs(7))).with_status(429));
        assert_eq!((e.kind(), e.status(), e.retry_after()), (super::super::Kind::RateLimited, Some(429), Some(std::time::Duration::from_secs(7))));
        assert_eq!(e.message(), "echo [redacted]");
    }
}
