//! Unsubscribe tokens. Mailings sign the subscriber's opaque id:
//! `base64url(0x02 ‖ id as 8 bytes big-endian ‖ HMAC-SHA256(secret, "herald-unsubscribe-v2\0" ‖ id))`,
//! so the address never shows in a URL (or a proxy's log). Tokens of the first form,
//! `base64url(address ‖ HMAC-SHA256(secret, "herald-unsubscribe-v1\0" ‖ address))`, in mail
//! already sent, stay valid.
//!
//! Either form carries a MAC over what it names, so it cannot be forged without the secret and
//! cannot be edited to unsubscribe someone else. RFC 8058 requires exactly this: the one-click
//! POST carries no cookie or other context, only the URL.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::SecretString;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC at the end of a token.
const MAC_LEN: usize = 32;
/// Domain separation: a MAC made for something else never verifies as a token.
const CONTEXT: &[u8] = b"herald-unsubscribe-v1\0";
/// Longest address a token may carry (RFC 5321 path limit).
const MAX_ADDRESS: usize = 256;
/// Domain separation of the opaque form.
const CONTEXT_V2: &[u8] = b"herald-unsubscribe-v2\0";
/// First byte of an opaque token (an address never starts with it).
const V2: u8 = 2;

/// What a genuine token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The subscriber's row id (the opaque form).
    Subscriber(i64),
    /// The address itself (the first form, in mail sent before the opaque form).
    Address(String),
}

/// Signs and verifies unsubscribe tokens with one secret.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

impl TokenKey {
    /// A key from the configured `unsubscribe_secret`.
    pub fn new(secret: &SecretString) -> Self {
        Self { key: secret.expose().as_bytes().to_vec() }
    }

    fn mac(&self, address: &str) -> [u8; MAC_LEN] {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        m.update(CONTEXT);
        m.update(address.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// The token for `address` (lowercased first, as the subscriber list stores it).
    pub fn token(&self, address: &str) -> String {
        let address = address.trim().to_lowercase();
        let mut raw = Vec::with_capacity(address.len() + MAC_LEN);
        raw.extend_from_slice(address.as_bytes());
        raw.extend_from_slice(&self.mac(&address));
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn mac_v2(&self, id: i64) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        m.update(CONTEXT_V2);
        m.update(&id.to_be_bytes());
        m
    }

    /// HMAC-SHA256 of `parts` under this key, after a `context` that keeps it apart from every
    /// other use of the key (the VERP Return-Path signs with it: `src/bounces/verp.rs`).
    pub fn sign(&self, context: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        m.update(context);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Whether `tag` is the leading bytes (at least 16) of [`TokenKey::sign`]'s MAC, compared in
    /// constant time.
    pub fn verify_signed(&self, context: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        if tag.len() < 16 {
            return false;
        }
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        m.update(context);
        for p in parts {
            m.update(p);
        }
        m.verify_truncated_left(tag).is_ok()
    }

    /// The opaque token for the subscriber with row id `id`.
    pub fn token_for_subscriber(&self, id: i64) -> String {
        let mut raw = Vec::with_capacity(1 + 8 + MAC_LEN);
        raw.push(V2);
        raw.extend_from_slice(&id.to_be_bytes());
        raw.extend_from_slice(&self.mac_v2(id).finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// What a genuine token of either form names; `None` for anything forged, altered or
    /// malformed.
    pub fn verify_subject(&self, token: &str) -> Option<Subject> {
        let t = token.trim();
        if t.len() == (1 + 8 + MAC_LEN).div_ceil(3) * 4 - 1 {
            let raw = URL_SAFE_NO_PAD.decode(t).ok()?;
            if raw.len() == 1 + 8 + MAC_LEN && raw[0] == V2 {
                let id = i64::from_be_bytes(raw[1..9].try_into().ok()?);
                self.mac_v2(id).verify_slice(&raw[9..]).ok()?;
                return Some(Subject::Subscriber(id));
            }
        }
        self.verify(t).map(Subject::Address)
    }

    /// The address a genuine token of the first form names; `None` for anything forged,
    /// altered or malformed (and for the opaque form: see [`TokenKey::verify_subject`]).
    pub fn verify(&self, token: &str) -> Option<String> {
        if token.len() > (MAX_ADDRESS + MAC_LEN) * 4 / 3 + 4 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        if raw.len() <= MAC_LEN {
            return None;
        }
        let (addr, mac) = raw.split_at(raw.len() - MAC_LEN);
        let address = std::str::from_utf8(addr).ok()?;
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        m.update(CONTEXT);
        m.update(addr);
        // Constant-time comparison.
        m.verify_slice(mac).ok()?;
        Some(address.to_string())
    }
}

/// Verify `token` with any of `keys` (several email channels may use different secrets).
pub fn verify_token(keys: &[TokenKey], token: &str) -> Option<Subject> {
    keys.iter().find_map(|k| k.verify_subject(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> TokenKey {
        TokenKey::new(&SecretString::new(s))
    }

    #[test]
    fn a_token_round_trips_to_its_lowercased_address() {
        let k = key("s3cret");
        let t = k.token("Ana@Example.org");
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "URL-safe: {t}");
        assert_eq!(k.verify(&t).as_deref(), Some("ana@example.org"));
        assert_eq!(k.token("ana@example.org"), t, "deterministic");
    }

    /// Issue 16 item 9: the opaque form names the subscriber's id, never the address, and
    /// can't be moved to another id; the first form still verifies.
    #[test]
    fn an_opaque_token_names_the_subscriber_id_and_old_tokens_stay_valid() {
        let k = key("s3cret");
        let t = k.token_for_subscriber(42);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "URL-safe: {t}");
        assert_eq!(k.verify_subject(&t), Some(Subject::Subscriber(42)));
        assert_eq!(k.verify(&t), None, "not an address token");
        assert_eq!(key("other").verify_subject(&t), None);
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[8] ^= 1; // id 42 → 43, same MAC
        assert_eq!(k.verify_subject(&URL_SAFE_NO_PAD.encode(&raw)), None);
        let old = k.token("ana@example.org");
        assert_eq!(k.verify_subject(&old), Some(Subject::Address("ana@example.org".into())));
        assert!(!String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(&t).unwrap()).contains('@'));
    }

    #[test]
    fn another_secret_does_not_verify() {
        let t = key("one").token("ana@example.org");
        assert_eq!(key("two").verify(&t), None);
        assert_eq!(verify_token(&[key("two"), key("one")], &t), Some(Subject::Address("ana@example.org".into())));
    }

    #[test]
    fn a_token_cannot_be_moved_to_another_address() {
        let k = key("s3cret");
        let t = k.token("ana@example.org");
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        // Swap the address, keep the MAC.
        let mac = raw.split_off(raw.len() - MAC_LEN);
        let mut forged = b"bob@example.org".to_vec();
        forged.extend_from_slice(&mac);
        assert_eq!(k.verify(&URL_SAFE_NO_PAD.encode(forged)), None);
        // Flip one bit of the MAC.
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(k.verify(&URL_SAFE_NO_PAD.encode(raw)), None);
    }

    #[test]
    fn garbage_is_refused() {
        let k = key("s3cret");
        for t in ["", "abc", "!!!!", &"A".repeat(5000), &URL_SAFE_NO_PAD.encode([0u8; 32])] {
            assert_eq!(k.verify(t), None, "{t:.40}");
        }
    }
}
