//! Unit tests: the token Ghost's server would accept, the key's parsing, the slug, and the
//! refusals before anything is sent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;
use crate::channel::registry::ChannelType;
use crate::render::{ArticleRendering, Rendering};

const KEY: &str = "6489f2a0c3b1d4e5f6a7b8c9:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn token_is_hs256_with_kid_aud_and_five_minutes() {
    let key = AdminKey::parse(KEY).unwrap();
    let t = key.token_at(1_700_000_000);
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    let head: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(head["alg"], "HS256");
    assert_eq!(head["kid"], "6489f2a0c3b1d4e5f6a7b8c9");
    assert_eq!(claims, serde_json::json!({"iat": 1_700_000_000, "exp": 1_700_000_300, "aud": "/admin/"}));
    // Signed with the hex-decoded secret, not the hex text.
    let secret = hex::decode(KEY.split(':').nth(1).unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap(), mac.finalize().into_bytes().to_vec());
}

#[test]
fn key_errors_name_the_problem_never_the_secret() {
    for bad in ["nocolonhere", ":00ff", "abc:zz-not-hex", "abc:"] {
        let e = AdminKey::parse(bad).unwrap_err();
        assert!(!e.contains("zz-not-hex") && !e.contains("00ff"), "{e}");
    }
    assert!(AdminKey::parse("content-api-key-without-colon").unwrap_err().contains("Content API key"));
    assert!(!format!("{:?}", AdminKey::parse(KEY).unwrap()).contains("0011223344"));
}

#[test]
fn slug_is_what_ghost_keeps() {
    assert_eq!(ghost_slug("issue-42"), "issue-42");
    assert_eq!(ghost_slug("2026/Issue 42: Rust!"), "2026-issue-42-rust");
    assert_eq!(ghost_slug("--a__b--"), "a-b");
}

fn article(title: &str, subtitle: &str) -> Rendering {
    Rendering::Article(ArticleRendering {
        title: title.into(),
        subtitle: subtitle.into(),
        html: "<p>x</p>".into(),
        doc: None,
        slug: Some("s".into()),
        canonical_url: Some("https://e.example/s".into()),
    })
}

#[test]
fn size_limit_refuses_what_ghost_refuses() {
    let cfg: GhostConfig = toml::from_str("api_url = \"https://b.example\"\nadmin_api_key = \"${K}\"").unwrap();
    assert!(Ghost::size_limit(&cfg, &article(&"t".repeat(255), &"e".repeat(300))).is_ok());
    assert!(Ghost::size_limit(&cfg, &article(&"t".repeat(256), "e")).unwrap_err().contains("255"));
    assert!(Ghost::size_limit(&cfg, &article("t", &"e".repeat(301))).unwrap_err().contains("300"));
}
