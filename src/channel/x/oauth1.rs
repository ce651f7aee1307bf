//! OAuth 1.0a HMAC-SHA1 request signing (X "user context"), shared by the adapter and the fake.
//!
//! Signing key = `pct(consumer_secret)&pct(token_secret)`; base string =
//! `METHOD&pct(base_url)&pct(sorted, encoded params)`, where params are the query string, any
//! form body and the `oauth_*` values. JSON bodies are not signed (X's docs list only query and
//! form parameters).

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha1::Sha1;

/// RFC 3986 §2.3: everything but unreserved characters is encoded.
const OAUTH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encode the OAuth way.
pub fn pct(s: &str) -> String {
    utf8_percent_encode(s, OAUTH).to_string()
}

/// The signature base string for a request.
pub fn base_string(method: &str, base_url: &str, params: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = params.iter().map(|(k, v)| (pct(k), pct(v))).collect();
    enc.sort();
    let joined = enc.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    format!("{}&{}&{}", method.to_ascii_uppercase(), pct(base_url), pct(&joined))
}

/// HMAC-SHA1 over a base string, base64.
pub fn sign(base: &str, consumer_secret: &str, token_secret: &str) -> String {
    use base64::Engine;
    let key = format!("{}&{}", pct(consumer_secret), pct(token_secret));
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A URL's signing form: scheme and host lowercased, default port dropped, no query or fragment.
/// Returns it with the query's parameters.
pub fn split_url(url: &url::Url) -> (String, Vec<(String, String)>) {
    let mut base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default().to_ascii_lowercase());
    if let Some(port) = url.port() {
        base.push_str(&format!(":{port}"));
    }
    base.push_str(url.path());
    let query = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    (base, query)
}

/// The user-context credentials.
#[derive(Clone)]
pub struct Keys {
    /// Consumer (API) key.
    pub consumer_key: String,
    /// Consumer secret.
    pub consumer_secret: String,
    /// Access token.
    pub token: String,
    /// Access token secret.
    pub token_secret: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oauth1::Keys([redacted])")
    }
}

/// The `Authorization: OAuth …` header value for a request with no form body.
pub fn authorization(method: &str, url: &url::Url, keys: &Keys, nonce: &str, timestamp: u64) -> String {
    let (base_url, mut params) = split_url(url);
    let oauth = [
        ("oauth_consumer_key", keys.consumer_key.clone()),
        ("oauth_nonce", nonce.to_string()),
        ("oauth_signature_method", "HMAC-SHA1".to_string()),
        ("oauth_timestamp", timestamp.to_string()),
        ("oauth_token", keys.token.clone()),
        ("oauth_version", "1.0".to_string()),
    ];
    params.extend(oauth.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let sig = sign(&base_string(method, &base_url, &params), &keys.consumer_secret, &keys.token_secret);
    let mut fields: Vec<String> = oauth.iter().map(|(k, v)| format!("{k}=\"{}\"", pct(v))).collect();
    fields.push(format!("oauth_signature=\"{}\"", pct(&sig)));
    fields.sort();
    format!("OAuth {}", fields.join(", "))
}

/// A fresh random nonce (32 alphanumerics).
pub fn nonce() -> String {
    use rand::Rng;
    rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(32).map(char::from).collect()
}

/// Parse an `OAuth k="v", …` header into decoded pairs.
pub fn parse_header(value: &str) -> Option<Vec<(String, String)>> {
    let rest = value.trim().strip_prefix("OAuth ")?;
    let mut out = Vec::new();
    for field in rest.split(',') {
        let (k, v) = field.trim().split_once('=')?;
        let v = v.trim().trim_matches('"');
        out.push((k.trim().to_string(), percent_decode_str(v).decode_utf8().ok()?.into_owned()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of X's "Creating a signature" page (CHANNELS.md §1).
    #[test]
    fn documented_vector() {
        let url = url::Url::parse("https://api.x.com/1.1/statuses/update.json?include_entities=true").unwrap();
        let (base_url, mut params) = split_url(&url);
        assert_eq!(base_url, "https://api.x.com/1.1/statuses/update.json");
        params.extend(
            [
                ("status", "Hello Ladies + Gentlemen, a signed OAuth request!"),
                ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
                ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "1318622958"),
                ("oauth_token", "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"),
                ("oauth_version", "1.0"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let base = base_string("post", &base_url, &params);
        assert!(base.starts_with(
            "POST&https%3A%2F%2Fapi.x.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26"
        ));
        assert!(base.ends_with("%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"));
        let sig = sign(&base, "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE");
        assert_eq!(sig, "Ls93hJiZbQ3akF3HF3x1Bz8/zU4=");
    }

    #[test]
    fn header_round_trips_and_verifies() {
        let keys = Keys {
            consumer_key: "ck".into(),
            consumer_secret: "cs".into(),
            token: "tok".into(),
            token_secret: "ts".into(),
        };
        let url = url::Url::parse("http://127.0.0.1:8080/2/tweets?a=b c").unwrap();
        let h = authorization("POST", &url, &keys, "n0nce", 1_700_000_000);
        let parsed = parse_header(&h).unwrap();
        let sig = parsed.iter().find(|(k, _)| k == "oauth_signature").unwrap().1.clone();
        let (base_url, mut params) = split_url(&url);
        assert_eq!(base_url, "http://127.0.0.1:8080/2/tweets");
        params.extend(parsed.into_iter().filter(|(k, _)| k != "oauth_signature"));
        assert_eq!(sign(&base_string("POST", &base_url, &params), "cs", "ts"), sig);
        assert_ne!(sign(&base_string("POST", &base_url, &params), "cs", "wrong"), sig);
    }
}
