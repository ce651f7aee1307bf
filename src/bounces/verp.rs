//! VERP: each message goes out with its own Return-Path, `bounces+<token>@<bounce_domain>`,
//! so a bounce that comes back to it names the message it is about (RFC 3464 reports are
//! mailed to the Return-Path, whatever else they quote).
//!
//! `token = hex(row id as 8 bytes big-endian ‖ first 16 bytes of HMAC-SHA256(secret,
//! "herald-verp-v1\0" ‖ row id ‖ address))`, signed with the channel's unsubscribe secret like
//! the unsubscribe token. The row id is the message's recipient-ledger row, so the token is
//! unique per message (one row per mailing and address); the MAC covers the address too, so a
//! token cannot be edited to name another row, nor verify for another address, without the
//! secret. Hex, not base64: some servers lowercase the local part; 48 characters plus
//! `bounces+` stay inside the 64-octet local-part limit (RFC 5321 §4.5.3.1.1).

use super::super::channel::email::TokenKey;

/// The Return-Path's local part before the `+`.
pub const PREFIX: &str = "bounces";
/// Domain separation from the unsubscribe tokens made with the same secret.
const CONTEXT: &[u8] = b"herald-verp-v1\0";
/// Bytes of MAC kept in a token.
const TAG: usize = 16;
/// Hex characters in a token.
pub const TOKEN_HEX: usize = (8 + TAG) * 2;

/// The VERP token for ledger row `row` sent to `email`.
pub fn token(key: &TokenKey, row: i64, email: &str) -> String {
    let email = email.trim().to_lowercase();
    let mac = key.sign(CONTEXT, &[&row.to_be_bytes(), email.as_bytes()]);
    let mut raw = Vec::with_capacity(8 + TAG);
    raw.extend_from_slice(&row.to_be_bytes());
    raw.extend_from_slice(&mac[..TAG]);
    hex::encode(raw)
}

/// The Return-Path for ledger row `row` sent to `email`.
pub fn return_path(key: &TokenKey, row: i64, email: &str, domain: &str) -> String {
    format!("{PREFIX}+{}@{domain}", token(key, row, email))
}

/// The ledger row a token names, unverified (the caller looks the row up, then calls
/// [`verify`] with its address).
pub fn row_of(token: &str) -> Option<i64> {
    let t = token.trim();
    if t.len() != TOKEN_HEX {
        return None;
    }
    let raw = hex::decode(t.to_ascii_lowercase()).ok()?;
    Some(i64::from_be_bytes(raw[..8].try_into().ok()?))
}

/// Whether `token` is genuine for row `row` and address `email` under any of `keys`.
pub fn verify(keys: &[TokenKey], token: &str, row: i64, email: &str) -> bool {
    let Ok(raw) = hex::decode(token.trim().to_ascii_lowercase()) else { return false };
    if raw.len() != 8 + TAG || raw[..8] != row.to_be_bytes() {
        return false;
    }
    let email = email.trim().to_lowercase();
    keys.iter().any(|k| k.verify_signed(CONTEXT, &[&row.to_be_bytes(), email.as_bytes()], &raw[8..]))
}

/// Every VERP token in `raw` (a bounce's headers and body: the report is addressed to the
/// Return-Path, and most servers also quote it), in order, without duplicates.
pub fn find_tokens(raw: &[u8]) -> Vec<String> {
    let needle = format!("{PREFIX}+");
    let mut out: Vec<String> = Vec::new();
    for at in memchr::memmem::find_iter(raw, needle.as_bytes()) {
        let start = at + needle.len();
        let Some(t) = raw.get(start..start + TOKEN_HEX) else { continue };
        if t.iter().all(u8::is_ascii_hexdigit) && raw.get(start + TOKEN_HEX) == Some(&b'@') {
            let t = String::from_utf8_lossy(t).to_ascii_lowercase();
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    fn key(s: &str) -> TokenKey {
        TokenKey::new(&SecretString::new(s))
    }

    #[test]
    fn each_message_has_its_own_return_path_that_verifies() {
        let k = key("a-secret-of-some-length");
        let a = return_path(&k, 1, "ana@example.org", "b.example.com");
        let b = return_path(&k, 2, "bob@example.org", "b.example.com");
        let a2 = return_path(&k, 3, "ana@example.org", "b.example.com");
        assert!(a != b && a != a2, "unique per message");
        let local = a.split('@').next().unwrap();
        assert!(local.len() <= 64, "local part within RFC 5321: {local}");
        assert!(a.parse::<lettre::Address>().is_ok(), "a valid address: {a}");
        let t = find_tokens(a.as_bytes());
        assert_eq!(t.len(), 1);
        assert_eq!(row_of(&t[0]), Some(1));
        assert!(verify(std::slice::from_ref(&k), &t[0], 1, "ANA@example.org"));
        assert!(verify(std::slice::from_ref(&k), &t[0].to_uppercase(), 1, "ana@example.org"), "case folded by a server still verifies");
    }

    #[test]
    fn a_token_cannot_be_forged_for_another_address_or_row() {
        let k = key("a-secret-of-some-length");
        let t = token(&k, 7, "ana@example.org");
        assert!(!verify(std::slice::from_ref(&k), &t, 7, "bob@example.org"), "another address");
        assert!(!verify(std::slice::from_ref(&k), &t, 8, "ana@example.org"), "another row");
        // The row id edited in the token: the MAC no longer matches.
        let mut raw = hex::decode(&t).unwrap();
        raw[7] ^= 1;
        let edited = hex::encode(&raw);
        assert_eq!(row_of(&edited), Some(6));
        assert!(!verify(std::slice::from_ref(&k), &edited, 6, "ana@example.org"));
        // Another secret, a MAC bit flipped, garbage.
        assert!(!verify(&[key("another-secret-entirely")], &t, 7, "ana@example.org"));
        let mut raw = hex::decode(&t).unwrap();
        raw[20] ^= 0x80;
        assert!(!verify(std::slice::from_ref(&k), &hex::encode(raw), 7, "ana@example.org"));
        for g in ["", "zz", &"0".repeat(TOKEN_HEX), &t[..TOKEN_HEX - 2]] {
            assert!(!verify(std::slice::from_ref(&k), g, 7, "ana@example.org"), "{g}");
        }
        // The unsubscribe token of the same key never passes as a VERP token.
        assert!(find_tokens(format!("bounces+{}@x", k.token_for_subscriber(7)).as_bytes()).is_empty());
    }
}
