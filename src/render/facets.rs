//! Bluesky rich-text facets with exact UTF-8 byte offsets.
//!
//! Follows `@atproto/api`'s `RichText.detectFacetsWithoutResolution()` (`rich-text/detection.ts`):
//! * mentions: `(^|\s|\()@handle` where the handle's last label is a known TLD (or `.test`); the
//!   handle is left in `did` for the adapter to resolve with `com.atproto.identity.resolveHandle`;
//! * links: `http(s)://…` after start, whitespace or `(`, and bare domains (`example.com/x`)
//!   whose TLD is known, which get `https://` added;
//! * tags: `#tag` after start or whitespace, stored without the `#`, at most 64 graphemes
//!   (and 640 bytes, the lexicon's limits).
//!
//! Two deliberate differences, both toward what the lexicon requires: trailing punctuation
//! (`. , ; : ! ? " ' …` and unbalanced closing brackets) is stripped from links repeatedly, not
//! once; and the result is sorted by `byteStart` with overlapping facets dropped, since facets
//! must not overlap.

use std::sync::LazyLock;

use regex::Regex;
use unicode_segmentation::UnicodeSegmentation;

use super::types::{ByteSlice, Facet, FacetFeature};

/// Longest tag, in graphemes (lexicon `maxGraphemes`).
pub const TAG_MAX_GRAPHEMES: usize = 64;
/// Longest tag, in UTF-8 bytes (lexicon `maxLength`).
pub const TAG_MAX_BYTES: usize = 640;

/// `@atproto/api` `MENTION_REGEX`: `/(^|\s|\()(@)([a-zA-Z0-9.-]+)(\b)/g`. JavaScript's `\b` is
/// ASCII-only, hence `(?-u:\b)`.
static MENTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|\s|\()(@([a-zA-Z0-9.-]+))(?-u:\b)").expect("static regex"));

/// `@atproto/api` `URL_REGEX`:
/// `/(^|\s|\()((https?:\/\/[\S]+)|((?<domain>[a-z][a-z0-9]*(\.[a-z0-9]+)+)[\S]*))/gim`.
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?im)(?:^|\s|\()((?:https?://\S+)|(?:(?P<domain>[a-z][a-z0-9]*(?:\.[a-z0-9]+)+)\S*))")
        .expect("static regex")
});

/// The characters `@atproto/api`'s `TAG_REGEX` never lets into a tag besides whitespace
/// (soft hyphen, word joiner, hair space, zero-width space/non-joiner/joiner, U+20E2).
const TAG_EXCLUDED: &str = "\u{00AD}\u{2060}\u{200A}\u{200B}\u{200C}\u{200D}\u{20E2}";

/// `(^|\s)[#＃]` followed by the longest run of characters a tag may hold. The rest of
/// `TAG_REGEX` (not starting with U+FE0F, holding at least one non-digit, non-punctuation
/// character) is checked on the run, since Rust's regex has no look-ahead.
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?:^|\s)([#＃])([^\s{TAG_EXCLUDED}]*)")).expect("static regex"));

/// A character that makes a run a tag: `[^\d\s\p{{P}}…]` (JavaScript `\d` is ASCII).
static TAG_CORE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"[^0-9\s\p{{P}}{TAG_EXCLUDED}]")).expect("static regex"));

/// `TRAILING_PUNCTUATION_REGEX`: `/\p{P}+$/u`.
static TRAILING_PUNCTUATION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\p{P}+$").expect("static regex"));

/// Detect link, tag and mention facets in `text`, sorted by `byteStart`, none overlapping.
pub fn detect(text: &str) -> Vec<Facet> {
    let mut found: Vec<Facet> = Vec::new();
    // Each kind needs its sign: a mention an `@`, a link `://` (`http://localhost`) or a `.`
    // (a bare domain), a tag `#` or `＃`. Most thread posts have none, and skip the regex
    // passes (and their compilation).
    if text.contains('@') {
        found.extend(mentions(text));
    }
    if text.contains('.') || text.contains("://") {
        found.extend(links(text));
    }
    if text.contains(['#', '＃']) {
        found.extend(tags(text));
    }
    // Stable: on equal starts the earlier kind (mention, link, tag) wins, as in detection order.
    found.sort_by_key(|f| f.index.byte_start);
    let mut out: Vec<Facet> = Vec::with_capacity(found.len());
    for f in found {
        if out.last().is_none_or(|prev| f.index.byte_start >= prev.index.byte_end) {
            out.push(f);
        }
    }
    out
}

fn facet(start: usize, end: usize, feature: FacetFeature) -> Facet {
    Facet { index: ByteSlice { byte_start: start, byte_end: end }, features: vec![feature] }
}

fn mentions(text: &str) -> Vec<Facet> {
    MENTION
        .captures_iter(text)
        .filter_map(|caps| {
            let (at, handle) = (caps.get(1)?, caps.get(2)?);
            let handle = handle.as_str();
            (is_valid_domain(handle) || handle.ends_with(".test"))
                .then(|| facet(at.start(), at.end(), FacetFeature::Mention { did: handle.to_string() }))
        })
        .collect()
}

fn links(text: &str) -> Vec<Facet> {
    LINK.captures_iter(text)
        .filter_map(|caps| {
            let m = caps.get(1)?;
            let bare = !m.as_str().get(..4).is_some_and(|s| s.eq_ignore_ascii_case("http"));
            if bare && !caps.name("domain").is_some_and(|d| is_valid_domain(d.as_str())) {
                return None;
            }
            let kept = strip_trailing_punctuation(m.as_str());
            if kept.is_empty() || kept.ends_with("://") {
                return None;
            }
            let uri = if bare { format!("https://{kept}") } else { kept.to_string() };
            Some(facet(m.start(), m.start() + kept.len(), FacetFeature::Link { uri }))
        })
        .collect()
}

/// Drops sentence punctuation and unbalanced closing brackets from the end of a link, as many
/// as there are: `(see https://a.co/x).` links `https://a.co/x`.
fn strip_trailing_punctuation(mut s: &str) -> &str {
    loop {
        let Some(last) = s.chars().next_back() else { return s };
        let strip = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '…' | '”' | '’' | '»' => true,
            ')' => s.matches('(').count() < s.matches(')').count(),
            ']' => s.matches('[').count() < s.matches(']').count(),
            '}' => s.matches('{').count() < s.matches('}').count(),
            '>' => !s.contains('<'),
            _ => false,
        };
        if !strip {
            return s;
        }
        s = &s[..s.len() - last.len_utf8()];
    }
}

fn tags(text: &str) -> Vec<Facet> {
    TAG.captures_iter(text)
        .filter_map(|caps| {
            let (hash, run) = (caps.get(1)?, caps.get(2)?);
            let run = run.as_str();
            if run.starts_with('\u{FE0F}') || !TAG_CORE.is_match(run) {
                return None;
            }
            let tag = TRAILING_PUNCTUATION.replace(run.trim(), "");
            if tag.is_empty() || tag.graphemes(true).count() > TAG_MAX_GRAPHEMES || tag.len() > TAG_MAX_BYTES {
                return None;
            }
            Some(facet(hash.start(), hash.end() + tag.len(), FacetFeature::Tag { tag: tag.into_owned() }))
        })
        .collect()
}

/// `@atproto/api`'s `isValidDomain`: the last label is a known TLD (case-insensitive here).
fn is_valid_domain(s: &str) -> bool {
    match s.rsplit_once('.') {
        Some((head, tld)) if !head.is_empty() => twitter_text::tlds::is_valid_tld_case_insensitive(tld),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(start: usize, end: usize, uri: &str) -> Facet {
        facet(start, end, FacetFeature::Link { uri: uri.into() })
    }

    /// `@atproto/api` 0.19.19 output for this text (CHANNELS.md §2).
    #[test]
    fn matches_atproto_on_the_emoji_post() {
        let text = "New issue \u{1F389} out now: https://example.com/issue/42 #newsletter @alice.bsky.social";
        assert_eq!(
            detect(text),
            vec![
                link(24, 52, "https://example.com/issue/42"),
                facet(53, 64, FacetFeature::Tag { tag: "newsletter".into() }),
                facet(65, 83, FacetFeature::Mention { did: "alice.bsky.social".into() }),
            ]
        );
    }

    /// Each kind is looked for only where its sign is: a link with a scheme needs no `.`.
    #[test]
    fn a_link_without_a_dot_is_still_found() {
        assert_eq!(detect("see http://localhost/x now"), vec![link(4, 22, "http://localhost/x")]);
        assert!(detect("Section 1: Some text with a link and a list:").is_empty());
    }

    /// `@atproto/api` adds `https://` to a bare domain; the ZWJ family is 25 bytes, one grapheme.
    #[test]
    fn matches_atproto_on_a_bare_domain_after_a_zwj_sequence() {
        let text = "Emoji \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466} and link example.com/x";
        assert_eq!(text.len(), 54);
        assert_eq!(detect(text), vec![link(41, 54, "https://example.com/x")]);
    }

    #[test]
    fn trailing_punctuation_is_not_part_of_a_link() {
        let text = "Read https://a.co/x. Or (see example.org/y), then https://b.co/z)!";
        let got: Vec<(&str, String)> = detect(text)
            .into_iter()
            .map(|f| match &f.features[0] {
                FacetFeature::Link { uri } => (&text[f.index.byte_start..f.index.byte_end], uri.clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("https://a.co/x", "https://a.co/x".to_string()),
                ("example.org/y", "https://example.org/y".to_string()),
                ("https://b.co/z", "https://b.co/z".to_string()),
            ]
        );
        // A balanced parenthesis stays.
        let wiki = "https://en.wikipedia.org/wiki/Rust_(language).";
        assert_eq!(detect(wiki), vec![link(0, wiki.len() - 1, "https://en.wikipedia.org/wiki/Rust_(language)")]);
    }

    #[test]
    fn only_known_tlds_make_bare_links_and_mentions() {
        assert!(detect("version 1.2 or foo.notatld or e.g. this").is_empty());
        assert!(detect("mail bob@example.com").is_empty(), "an e-mail address is neither link nor mention");
        assert_eq!(
            detect("hi @bob.test and @nobody"),
            vec![facet(3, 12, FacetFeature::Mention { did: "bob.test".into() })]
        );
        // A trailing full stop is not part of the handle.
        assert_eq!(
            detect("cc @alice.bsky.social."),
            vec![facet(3, 21, FacetFeature::Mention { did: "alice.bsky.social".into() })]
        );
    }

    #[test]
    fn tags_follow_atproto_rules() {
        let tags = |t: &str| -> Vec<String> {
            detect(t)
                .into_iter()
                .filter_map(|f| match &f.features[0] {
                    FacetFeature::Tag { tag } => Some(tag.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(tags("#rust, #日本語! #2024 #v2 a#b #\u{FE0F}x ＃wide"), ["rust", "日本語", "v2", "wide"]);
        assert_eq!(tags(&format!("#{}", "a".repeat(64))), ["a".repeat(64)]);
        assert!(tags(&format!("#{}", "a".repeat(65))).is_empty());
        // Full-width hash: 3 bytes, counted in the range.
        let f = detect("＃wide");
        assert_eq!(f[0].index, ByteSlice { byte_start: 0, byte_end: 7 });
    }

    #[test]
    fn facets_never_overlap_and_ranges_slice_the_text() {
        let text = "(@alice.bsky.social) https://x.com/#frag #tag\n#next https://例え.jp/パス 👩🏽‍💻 example.com";
        let facets = detect(text);
        assert!(facets.len() >= 5, "{facets:?}");
        for pair in facets.windows(2) {
            assert!(pair[0].index.byte_end <= pair[1].index.byte_start);
        }
        for f in &facets {
            assert!(text.get(f.index.byte_start..f.index.byte_end).is_some(), "{f:?}");
        }
    }
}
