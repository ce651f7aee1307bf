//! Each network's own length count and limits, as the network itself counts.
//!
//! * X: twitter-text v3 weighted length (NFC first, URLs 23, emoji 2, CJK 2), ≤ 280, via the
//!   `twitter-text` crate.
//! * Bluesky: ≤ 300 grapheme clusters and ≤ 3000 UTF-8 bytes.
//! * Mastodon: grapheme clusters, with every `http(s)` URL counted as 23 and `@user@domain`
//!   counted as `@user` (Mastodon's `StatusLengthValidator`), ≤ 500.
//! * Threads: ≤ 500, counted conservatively: an emoji counts its UTF-8 bytes, anything else one
//!   per grapheme (Meta documents "emojis are counted as the number of UTF-8 bytes"); at most
//!   5 unique links per post.
//! * LinkedIn: ≤ 3000 characters of the commentary as sent, that is after little-text escaping
//!   ([`linkedin_escape`]).
//!
//! * Telegram: the message text after HTML entity parsing (tags dropped, `&lt;` `&#…;` one
//!   character), in UTF-16 code units, ≤ 4096 (Bot API `sendMessage`: "1-4096 characters after
//!   entities parsing"; Telegram's lengths and entity offsets are UTF-16 code units).
//!
//! All functions take the text exactly as it will be sent: for LinkedIn, the escaped text.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use twitter_text::extractor::{Extract, Extractor};
use unicode_normalization::{UnicodeNormalization, is_nfc};
use unicode_segmentation::UnicodeSegmentation;

/// A network whose posts are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// X: twitter-text v3 weighted length.
    X,
    /// Bluesky: graphemes and bytes.
    Bluesky,
    /// Mastodon: graphemes, URLs count 23.
    Mastodon,
    /// Threads (Meta).
    Threads,
    /// LinkedIn commentary.
    Linkedin,
    /// Telegram messages (`parse_mode` HTML): UTF-16 code units after entity parsing.
    Telegram,
}

/// Why a text does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{network:?}: {message}")]
pub struct LimitError {
    /// The network.
    pub network: Network,
    /// What is over, e.g. "312 of 280 weighted characters".
    pub message: String,
}

/// Bluesky's byte limit on `app.bsky.feed.post#text`.
pub const BLUESKY_MAX_BYTES: usize = 3000;
/// Threads' limit on unique links in one post (`THREADS_API__LINK_LIMIT_EXCEEDED` above it).
/// Meta's docs say 5, failures from 4 are reported: 4 is the safe default; a channel's
/// `max_links` overrides it.
pub const THREADS_MAX_LINKS: usize = 4;
/// What a URL counts on X and Mastodon (t.co length; Mastodon's `characters_reserved_per_url`).
pub const URL_LENGTH: usize = 23;

/// Telegram's limit on a message's text after entity parsing (`sendMessage`).
pub const TELEGRAM_MAX_TEXT: usize = 4096;

/// The text Telegram keeps of an HTML-mode message: tags dropped, the named entities it knows
/// (`&lt;` `&gt;` `&amp;` `&quot;`) and every numeric one (`&#39;`, `&#x3D;`) decoded. Counting
/// only: validity (supported tags, balance) is the network's to judge, and the template's.
pub fn telegram_parsed_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(['<', '&']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with('<') {
            match rest.find('>') {
                Some(end) => rest = &rest[end + 1..],
                None => {
                    out.push_str(rest);
                    rest = "";
                }
            }
            continue;
        }
        let decoded = rest.find(';').filter(|&e| e <= 10).and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .map(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').map(|d| d.parse::<u32>().ok()))
                    .flatten()
                    .and_then(char::from_u32),
            }?;
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The extended grapheme clusters in `text` (UAX #29). In ASCII every character is one, but
/// for CR LF, which is one cluster (rule GB3; ASCII has no Extend, ZWJ, Prepend or
/// SpacingMark): most posts are counted without the segmenter.
pub fn graphemes(text: &str) -> usize {
    if text.is_ascii() {
        text.len() - memchr::memmem::find_iter(text.as_bytes(), b"\r\n").count()
    } else {
        text.graphemes(true).count()
    }
}

/// Characters twitter-text rejects outright (its `invalid_chars_group`).
/// X refuses a post with more than one cashtag (`$TSLA`).
pub const X_MAX_CASHTAGS: usize = 1;

/// The distinct cashtags of a post (twitter-text's extractor, case-insensitive), in order.
pub fn x_cashtags(text: &str) -> Vec<String> {
    let safe = defuse_at_signs(text);
    let mut seen = Vec::<String>::new();
    for t in Extractor::new().extract_cashtags(&safe) {
        if !seen.iter().any(|s| s.eq_ignore_ascii_case(&t)) {
            seen.push(t);
        }
    }
    seen
}

const X_INVALID_CHARS: [char; 3] = ['\u{FFFE}', '\u{FEFF}', '\u{FFFF}'];

impl Network {
    /// Every network, in a stable order.
    pub const ALL: [Network; 6] =
        [Network::X, Network::Bluesky, Network::Mastodon, Network::Threads, Network::Linkedin, Network::Telegram];

    /// The network's main limit, in its own unit.
    pub fn limit(self) -> usize {
        match self {
            Network::X => 280,
            Network::Bluesky => 300,
            Network::Mastodon | Network::Threads => 500,
            Network::Linkedin => 3000,
            Network::Telegram => TELEGRAM_MAX_TEXT,
        }
    }

    /// The unit [`Network::count`] measures in, for messages.
    pub fn unit(self) -> &'static str {
        match self {
            Network::X => "weighted characters",
            Network::Bluesky => "graphemes",
            Network::Mastodon => "characters (graphemes, URLs as 23)",
            Network::Threads => "characters (graphemes, emoji as UTF-8 bytes)",
            Network::Linkedin => "characters (escaped little text)",
            Network::Telegram => "characters (UTF-16 code units after HTML entity parsing)",
        }
    }

    /// The text's length as the network counts it.
    pub fn count(self, text: &str) -> usize {
        match self {
            Network::X => x_weighted_length(text),
            Network::Bluesky => graphemes(text),
            Network::Mastodon => graphemes(&mastodon_countable_text(text)),
            // ASCII holds no emoji: one per grapheme.
            Network::Threads if text.is_ascii() => graphemes(text),
            Network::Threads => text.graphemes(true).map(threads_grapheme_weight).sum(),
            // The commentary as sent: the caller escapes first (an escaped `\(` counts 2).
            Network::Linkedin => text.chars().count(),
            Network::Telegram => telegram_parsed_text(text).encode_utf16().count(),
        }
    }

    /// All of the network's checks (length, bytes, link count, characters X refuses).
    pub fn check(self, text: &str) -> Result<(), LimitError> {
        Rules::from(self).check(text)
    }

    fn error(self, message: String) -> LimitError {
        LimitError { network: self, message }
    }
}

/// A network's rules as one channel applies them: the network's own, with the limits a channel
/// may set (Mastodon's `max_characters`, Threads' `max_links`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The network.
    pub network: Network,
    /// The length limit, in the network's unit.
    pub limit: usize,
    /// Unique links allowed in one post (Threads only).
    pub max_links: usize,
}

impl From<Network> for Rules {
    fn from(network: Network) -> Self {
        Rules { network, limit: network.limit(), max_links: THREADS_MAX_LINKS }
    }
}

impl Rules {
    /// The length limit.
    pub fn limit(self) -> usize {
        self.limit
    }

    /// The text's length as the network counts it.
    pub fn count(self, text: &str) -> usize {
        self.network.count(text)
    }

    /// All of the checks (length, bytes, link count, characters and cashtags X refuses).
    pub fn check(self, text: &str) -> Result<(), LimitError> {
        let network = self.network;
        if network == Network::X {
            if text.is_empty() {
                return Err(network.error("the post is empty".to_string()));
            }
            let bad: Vec<String> =
                X_INVALID_CHARS.iter().filter(|c| text.contains(**c)).map(|c| format!("U+{:04X}", *c as u32)).collect();
            if !bad.is_empty() {
                return Err(network.error(format!("contains characters X refuses: {}", bad.join(", "))));
            }
            let tags = x_cashtags(text);
            if tags.len() > X_MAX_CASHTAGS {
                return Err(network.error(format!(
                    "{} cashtags ({}); X allows one per post: keep one, or write the others without `$`",
                    tags.len(),
                    tags.iter().map(|t| format!("${t}")).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        match self.over(text) {
            Some(message) => Err(network.error(message)),
            None => Ok(()),
        }
    }

    /// The first size rule `text` breaks (length, bytes, links), or `None` if it fits.
    ///
    /// These are the rules a shorter text can satisfy, which is what the splitter needs;
    /// [`Network::check`] adds the ones no split can fix.
    pub fn over(self, text: &str) -> Option<String> {
        self.measure(text).1
    }

    /// [`Rules::count`] and [`Rules::over`] at once: the splitter needs both, and counting is
    /// the costly part.
    pub fn measure(self, text: &str) -> (usize, Option<String>) {
        let n = self.count(text);
        (n, self.over_counted(text, n))
    }

    /// [`Rules::over`] for a text already counted (`n`).
    fn over_counted(self, text: &str, n: usize) -> Option<String> {
        if n > self.limit {
            return Some(format!("{n} of {} {}", self.limit, self.network.unit()));
        }
        match self.network {
            Network::Bluesky if text.len() > BLUESKY_MAX_BYTES => {
                Some(format!("{} of {BLUESKY_MAX_BYTES} UTF-8 bytes", text.len()))
            }
            Network::Threads => {
                let links = unique_links(text);
                (links > self.max_links)
                    .then(|| format!("{links} unique links, at most {} per post on Threads (`max_links`)", self.max_links))
            }
            _ => None,
        }
    }
}

/// twitter-text v3 weighted length, as twitter-text 3.x (JavaScript) computes it.
///
/// The `twitter-text` 0.3.1 crate normalises to NFC and weighs code points, emoji and URLs with a
/// scheme correctly, but weighs a scheme-less URL (`example.com/x`) as text, where twitter-text
/// counts every extracted URL as 23 (`see example.com/x and https://a.co` is 55, not 45; see the
/// trial table in CHANNELS.md §1). This adds that difference back.
fn x_weighted_length(text: &str) -> usize {
    // ASCII weighs 1 a character, and without a `.` there is no URL to count as 23 (see
    // `urls_with`): most thread posts need no twitter-text pass.
    if text.is_ascii() && !text.contains('.') {
        return text.len();
    }
    let config = twitter_text_config::config_v3();
    let nfc: Cow<'_, str> = if is_nfc(text) { Cow::Borrowed(text) } else { Cow::Owned(text.nfc().collect()) };
    // twitter-text is quadratic in a long unbroken word: it hands it only the words that can
    // hold an entity, and counts the others (plain ASCII, weight 1 a character) itself.
    let inert = Inert::find(&nfc);
    let parsed = twitter_text::parse(&defuse_at_signs(&inert.reduced(&nfc)), config, true);
    let mut weighted = i64::from(parsed.weighted_length) + i64::try_from(inert.removed()).unwrap_or(i64::MAX);
    for range in urls_with(&nfc, true) {
        let url = &nfc[range];
        if !has_http_scheme(url) {
            let as_text: i64 = url.chars().map(|c| i64::from(x_code_point_weight(config, c))).sum();
            weighted += i64::from(config.transformed_url_length) - as_text / i64::from(config.scale);
        }
    }
    usize::try_from(weighted).unwrap_or(0)
}

/// A code point's weight in `config` (in `config.scale` units), as twitter-text weighs text.
fn x_code_point_weight(config: &twitter_text_config::Configuration, c: char) -> i32 {
    let cp = c as i32;
    config.ranges.iter().find(|r| r.contains(cp)).map_or(config.default_weight, |r| r.weight)
}

/// Whether `url` starts with `http://` or `https://`, in any case.
fn has_http_scheme(url: &str) -> bool {
    let head = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    head.starts_with("http://") || head.starts_with("https://")
}

/// Byte ranges of URLs in `text`, as twitter-text detects them (with or without a scheme, so
/// `example.com/x` is one). X, Threads' link rule and the splitter use these.
pub fn find_urls(text: &str) -> Vec<Range<usize>> {
    urls_with(text, true)
}

/// Byte ranges of URLs that start with a scheme (`http://`, `https://`), as Mastodon detects them
/// for its length rule (`extract_url_without_protocol: false`).
pub fn find_urls_with_scheme(text: &str) -> Vec<Range<usize>> {
    urls_with(text, false)
}

/// URL byte ranges found by twitter-text's extractor; `bare` includes scheme-less domains.
fn urls_with(text: &str, bare: bool) -> Vec<Range<usize>> {
    // twitter-text finds a URL only at a domain with a TLD, after an ASCII dot: a text without
    // one (most thread posts) needs no extractor pass.
    if !text.contains('.') {
        return Vec::new();
    }
    let mut extractor = Extractor::new();
    extractor.set_extract_url_without_protocol(bare);
    // Long words that cannot hold a URL are shortened first (the extractor is quadratic in a
    // word); offsets are mapped back below.
    let inert = Inert::find(text);
    let reduced = inert.reduced(text);
    let safe = defuse_at_signs(&reduced);
    let entities = extractor.extract_urls_with_indices(&safe);
    // Byte offsets in `safe` are byte offsets in `reduced`.
    let offsets = Utf16ToByte::new(&safe);
    entities
        .iter()
        .filter_map(|e| {
            let start = inert.original(offsets.byte(usize::try_from(e.get_start()).ok()?)?);
            let end = inert.original(offsets.byte(usize::try_from(e.get_end()).ok()?)?);
            (start < end).then_some(start..end)
        })
        .collect()
}

/// Whitespace-separated words longer than [`Inert::KEEP`] bytes made only of ASCII characters
/// that can neither be nor start an entity (no `.`, `:`, `/`, `@`, `#`, `$`, `&`), so no URL,
/// mention, hashtag or cashtag lies in them and each weighs 1 per character for X. Only their
/// first [`Inert::KEEP`] bytes are given to twitter-text.
struct Inert {
    /// The byte range of each word's dropped tail in the original text, in order.
    tails: Vec<Range<usize>>,
    /// Per tail: where it starts in the reduced text, and the bytes dropped up to its end.
    reduced_starts: Vec<(usize, usize)>,
}

impl Inert {
    /// How much of an inert word is kept: a word still, for the extractor's context rules.
    const KEEP: usize = 16;

    fn find(text: &str) -> Self {
        let inert_byte = |b: u8| b.is_ascii_graphic() && !matches!(b, b'.' | b':' | b'/' | b'@' | b'#' | b'$' | b'&');
        let mut tails = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_whitespace() || !bytes[i].is_ascii() {
                i += 1;
                continue;
            }
            // A word: up to the next ASCII whitespace (a non-ASCII byte ends inertness).
            let start = i;
            let mut inert = true;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                inert &= inert_byte(bytes[i]);
                i += 1;
            }
            // Bounded by whitespace (or the text's ends) on both sides, as the extractor sees it.
            let after_ok = i == bytes.len() || bytes[i].is_ascii_whitespace();
            let before_ok = start == 0 || bytes[start - 1].is_ascii_whitespace();
            if inert && after_ok && before_ok && i - start > Self::KEEP {
                tails.push(start + Self::KEEP..i);
            }
        }
        let mut dropped = 0;
        let reduced_starts = tails
            .iter()
            .map(|r| {
                let at = r.start - dropped;
                dropped += r.len();
                (at, dropped)
            })
            .collect();
        Self { tails, reduced_starts }
    }

    /// Bytes left out.
    fn removed(&self) -> usize {
        self.tails.iter().map(|r| r.len()).sum()
    }

    /// The text without the tails.
    fn reduced<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.tails.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() - self.removed());
        let mut pos = 0;
        for r in &self.tails {
            out.push_str(&text[pos..r.start]);
            pos = r.end;
        }
        out.push_str(&text[pos..]);
        Cow::Owned(out)
    }

    /// A byte offset in the reduced text → the same place in the original. Entities never
    /// touch an inert word, so an offset is never inside a dropped tail.
    fn original(&self, at: usize) -> usize {
        // The tails that start (in the reduced text) at or before `at`: each moves it by its length.
        let n = self.reduced_starts.partition_point(|&(start, _)| start <= at);
        at + n.checked_sub(1).map_or(0, |i| self.reduced_starts[i].1)
    }
}

/// X's entities in `text` (URLs, hashtags, mentions, cashtags), as UTF-8 byte ranges: where X
/// will link them, found by twitter-text as for the count (`x.example` is no TLD, so not a link).
pub fn x_entities(text: &str) -> Vec<crate::render::XEntity> {
    use crate::render::{ByteSlice, XEntity};
    use twitter_text::entity::Type;
    let entity = |r: Range<usize>, kind: &str| XEntity { index: ByteSlice { byte_start: r.start, byte_end: r.end }, kind: kind.into() };
    // URLs as the count finds them (the extractor's combined call misses some, e.g. after a
    // cashtag); then hashtags, mentions and cashtags that do not overlap a URL.
    let urls = find_urls(text);
    let mut out: Vec<XEntity> = urls.iter().map(|r| entity(r.clone(), "url")).collect();
    // Hashtags, mentions and cashtags each start at a sign (`#`, `＃`, `@`, `＠`, `$`).
    if !text.contains(['#', '\u{FF03}', '@', '\u{FF20}', '$']) {
        return out;
    }
    let extractor = Extractor::new();
    let safe = defuse_at_signs(text);
    let offsets = Utf16ToByte::new(&safe);
    for e in extractor.extract_entities_with_indices(&safe) {
        let kind = match e.get_type() {
            Type::HASHTAG => "hashtag",
            Type::MENTION => "mention",
            Type::CASHTAG => "cashtag",
            Type::URL | Type::FEDERATEDMENTION => continue,
        };
        let (Some(start), Some(end)) = (
            usize::try_from(e.get_start()).ok().and_then(|s| offsets.byte(s)),
            usize::try_from(e.get_end()).ok().and_then(|s| offsets.byte(s)),
        ) else {
            continue;
        };
        if start < end && !urls.iter().any(|u| u.start < end && start < u.end) {
            out.push(entity(start..end, kind));
        }
    }
    out.sort_by_key(|e| e.index.byte_start);
    out
}

/// Works around a panic in `twitter-text` 0.3.1: at an `@` (or `＠`) whose previous character
/// rules out a mention (a letter, digit, `_ @ ! # $ % & * = /` or `＠`), its "RT@" check slices the
/// two bytes before the `@` without looking for a character boundary, and panics when they split a
/// character (`日a@b`, `🎉x@y`, `＠@z`).
///
/// Such an at sign can never start a mention (the check it crashes in only accepts ASCII `RT`).
/// It is swapped for what the crate treats the same way there, with the same UTF-8 length and
/// weight: `@` becomes `$`, `＠` becomes `·$`. Both keep a URL from starting right after them, as
/// the at sign does; the equivalence was checked against the crate for every previous character
/// that reaches the faulty check. Byte offsets are unchanged (UTF-16 offsets are not).
fn defuse_at_signs(text: &str) -> Cow<'_, str> {
    let needs = |before: &str| -> bool {
        let Some(prev) = before.chars().next_back() else { return false };
        let rules_out_mention = prev.is_ascii_alphanumeric()
            || matches!(prev, '_' | '@' | '!' | '#' | '$' | '%' | '&' | '*' | '=' | '/' | '\u{FF20}');
        rules_out_mention && before.len() >= 2 && !before.is_char_boundary(before.len() - 2)
    };
    if !text.char_indices().any(|(i, c)| matches!(c, '@' | '\u{FF20}') && needs(&text[..i])) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        match c {
            '@' if needs(&text[..i]) => out.push('$'),
            '\u{FF20}' if needs(&text[..i]) => out.push_str("\u{B7}$"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Maps UTF-16 code-unit offsets (twitter-text's entity indices) to UTF-8 byte offsets.
struct Utf16ToByte {
    /// `(utf16_offset, byte_offset)` at every char boundary, plus the end.
    marks: Vec<(usize, usize)>,
}

impl Utf16ToByte {
    fn new(text: &str) -> Self {
        let mut marks = Vec::with_capacity(text.len() + 1);
        let mut u16_pos = 0;
        for (b, c) in text.char_indices() {
            marks.push((u16_pos, b));
            u16_pos += c.len_utf16();
        }
        marks.push((u16_pos, text.len()));
        Utf16ToByte { marks }
    }

    fn byte(&self, u16_offset: usize) -> Option<usize> {
        self.marks.binary_search_by_key(&u16_offset, |m| m.0).ok().map(|i| self.marks[i].1)
    }
}

/// How many distinct links `text` holds (exact strings, so "distinct" errs on the high side).
fn unique_links(text: &str) -> usize {
    find_urls(text).into_iter().map(|r| &text[r]).collect::<BTreeSet<_>>().len()
}

/// Mastodon's mention: `Account::MENTION_RE`, `(?<![=/[:word:]])@((USERNAME_RE)(?:@[[:word:].-]+[[:word:]]+)?)`
/// with `USERNAME_RE = [a-z0-9_]+([.-]+[a-z0-9_]+)*` (case-insensitive). The look-behind is
/// emulated by capturing the character before the `@`.
static MASTODON_MENTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[^=/\w])(@[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(@[\w.-]+\w+)?").expect("static regex")
});

/// Mastodon's `countable_text`: each URL (with a scheme) becomes 23 `x`, each `@user@domain`
/// becomes `@user`; overlapping entities keep the earlier one.
fn mastodon_countable_text(text: &str) -> String {
    // (range to replace, replacement)
    let mut entities: Vec<(Range<usize>, Option<Range<usize>>)> =
        urls_with(text, false).into_iter().map(|r| (r, None)).collect();
    // A mention has an `@`: without one, no regex pass (nor its compilation).
    for caps in text.contains('@').then(|| MASTODON_MENTION.captures_iter(text)).into_iter().flatten() {
        let (Some(user), Some(domain)) = (caps.get(1), caps.get(2)) else { continue };
        entities.push((user.start()..domain.end(), Some(user.range())));
    }
    entities.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (range, keep) in entities {
        if range.start < pos {
            continue;
        }
        out.push_str(&text[pos..range.start]);
        match keep {
            Some(user) => out.push_str(&text[user]),
            None => out.extend(std::iter::repeat_n('x', URL_LENGTH)),
        }
        pos = range.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Threads' conservative weight of one grapheme: its UTF-8 bytes if it is (or may be) an emoji,
/// else 1.
fn threads_grapheme_weight(g: &str) -> usize {
    if g.chars().any(is_pictographic) { g.len() } else { 1 }
}

/// Characters that make a grapheme an emoji, or possibly one. Deliberately broad (arrows,
/// geometric shapes and letterlike symbols such as ™ have emoji forms): over-counting only
/// makes the Threads budget safer.
fn is_pictographic(c: char) -> bool {
    matches!(c,
        '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{20E3}' | '\u{24C2}'
        | '\u{2100}'..='\u{214F}'
        | '\u{2190}'..='\u{21FF}'
        | '\u{2300}'..='\u{23FF}'
        | '\u{25A0}'..='\u{27BF}'
        | '\u{2900}'..='\u{297F}'
        | '\u{2B00}'..='\u{2BFF}'
        | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}'
        | '\u{1F000}'..='\u{1FAFF}'
        | '\u{E0020}'..='\u{E007F}')
}

/// The little-text reserved characters, which LinkedIn wants backslash-escaped everywhere.
const LINKEDIN_RESERVED: &[char] = &['\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~'];

/// Byte ranges of the hashtags LinkedIn links in a post's text (little-text `HashtagElement`s
/// outside URLs), for the preview.
pub fn linkedin_hashtags(text: &str) -> Vec<Range<usize>> {
    let urls = find_urls(text);
    LINKEDIN_HASHTAG
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| m.range())
        .filter(|r| !urls.iter().any(|u| u.start < r.end && r.start < u.end))
        .collect()
}

/// A little-text `HashtagElement`: `#` after the start or a character that can't end a word,
/// then letters, digits and `_`, with at least one letter (`#42` stays text).
static LINKEDIN_HASHTAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^\p{L}\p{N}_&/#])(#[\p{L}\p{N}_]*\p{L}[\p{L}\p{N}_]*)").expect("static regex")
});

/// Escape LinkedIn little-text reserved characters (`\ | { } @ [ ] ( ) < > # * _ ~`) with a
/// backslash in the text **between** URLs and hashtags. URLs are left exactly as written (an
/// escape inside one would show, `utm\_source`, and break the link) and `#hashtag`s stay
/// hashtags, a supported little-text element. One pass, so a backslash is escaped before, and
/// never after, the others.
///
/// Unescaped, LinkedIn accepts the post and silently truncates it at the first reserved
/// character. Only for `commentary`: article titles and descriptions are plain strings.
pub fn linkedin_escape(text: &str) -> String {
    let mut keep: Vec<Range<usize>> = find_urls_with_scheme(text);
    for c in LINKEDIN_HASHTAG.captures_iter(text) {
        if let Some(tag) = c.get(1)
            && !keep.iter().any(|k| k.start < tag.end() && tag.start() < k.end)
        {
            keep.push(tag.range());
        }
    }
    keep.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut last = 0;
    let escape = |out: &mut String, t: &str| {
        for c in t.chars() {
            if LINKEDIN_RESERVED.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
    };
    for r in keep {
        escape(&mut out, &text[last..r.start]);
        out.push_str(&text[r.clone()]);
        last = r.end;
    }
    escape(&mut out, &text[last..]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_words_are_counted_in_linear_time_and_the_same_way() {
        use super::*;
        // A 40 kB word took 1.6 s and an 80 kB one 14.6 s (quadratic in twitter-text).
        let word = "a".repeat(200_000);
        let start = std::time::Instant::now();
        for network in Network::ALL {
            assert!(network.count(&word) >= 200_000, "{network:?}");
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
        // The shortcut changes nothing: the same counts and URL ranges as the whole text gives.
        let long = "x".repeat(300);
        for t in [
            format!("{long} https://example.com/a {long} example.org/b"),
            format!("see example.com/x and https://a.co {long}"),
            format!("{long}@{long} #{long} $ABC {long}.com {long}"),
            format!("日本 {long} @user@mastodon.example {long}\nhttps://e.example/{long}"),
        ] {
            same_as_twitter_text(&t);
        }
    }

    /// X's count and the URL ranges of `t` equal what twitter-text gives for the whole text.
    fn same_as_twitter_text(t: &str) {
        use super::*;
        let direct = twitter_text::parse(&defuse_at_signs(t), twitter_text_config::config_v3(), true).weighted_length;
        let direct_urls = {
            let mut e = Extractor::new();
            e.set_extract_url_without_protocol(true);
            let safe = defuse_at_signs(t);
            let offsets = Utf16ToByte::new(&safe);
            e.extract_urls_with_indices(&safe)
                .iter()
                .filter_map(|x| Some(offsets.byte(x.get_start() as usize)?..offsets.byte(x.get_end() as usize)?))
                .filter(|r| r.start < r.end)
                .collect::<Vec<_>>()
        };
        assert_eq!(find_urls(t), direct_urls, "{t}");
        // Plus the scheme-less correction, which both share.
        let mut weighted = i64::from(direct);
        for r in direct_urls {
            if !has_http_scheme(&t[r.clone()]) {
                let as_text: i64 = t[r].chars().map(|c| i64::from(x_code_point_weight(twitter_text_config::config_v3(), c))).sum();
                weighted += 23 - as_text / 100;
            }
        }
        assert_eq!(x_weighted_length(t) as i64, weighted, "{t}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
        #[test]
        fn the_long_word_shortcut_counts_like_twitter_text(words in proptest::collection::vec(proptest::prop_oneof![
            "[a-zA-Z0-9_*!?,;'()-]{17,60}", "[a-z]{1,8}", "[a-z]{2,20}\\.(com|org|co)(/[a-z]{0,10})?", "https?://[a-z]{1,10}\\.com",
            "[@#$][a-z]{1,20}", "[日é🎉]{1,3}", "[a-z]{20,40}[.:/@#$&][a-z]{0,20}",
        ], 0..12), seps in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(" "), proptest::strategy::Just("\n"), proptest::strategy::Just("  ")], 12)) {
            let t: String = words.iter().zip(seps.iter()).map(|(w, s)| format!("{w}{s}")).collect();
            same_as_twitter_text(t.trim_end());
        }
    }

    use super::*;

    /// The trial table of CHANNELS.md §1 (twitter-text 3.1.0 under node).
    #[test]
    fn x_entities_are_byte_ranges_of_what_x_links() {
        let text = "日本 #CommsTech by @herald_news on $TWLO: example.com/a and https://news.example.com/b?c=1 or x.example 🎉";
        let entities = x_entities(text);
        let got: Vec<(&str, &str)> = entities.iter().map(|e| (e.kind.as_str(), &text[e.index.byte_start..e.index.byte_end])).collect();
        assert_eq!(
            got,
            vec![("hashtag", "#CommsTech"), ("mention", "@herald_news"), ("cashtag", "$TWLO"), ("url", "example.com/a"), ("url", "https://news.example.com/b?c=1")]
        );
        // An at sign that cannot start a mention (the twitter-text panic case) yields nothing.
        assert!(x_entities("日a@b").is_empty());
    }

    #[test]
    fn x_matches_the_twitter_text_trials() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
        let coder = "\u{1F469}\u{1F3FD}\u{200D}\u{1F4BB}";
        let cases: Vec<(String, usize, bool)> = vec![
            ("Hello, world! \u{1F44B}".into(), 16, true),
            ("New issue out: https://example.com/newsletter/issue-42?utm_source=x #newsletter".into(), 50, true),
            (format!("日本語のテキスト{family} café"), 23, true),
            ("x".repeat(280), 280, true),
            ("x".repeat(281), 281, false),
            ("cafe\u{0301}".into(), 4, true),
            ("see example.com/x and https://a.co".into(), 55, true),
            (coder.repeat(140), 280, true),
            (coder.repeat(141), 282, false),
        ];
        for (text, len, valid) in cases {
            assert_eq!(Network::X.count(&text), len, "{text:?}");
            assert_eq!(Network::X.check(&text).is_ok(), valid, "{text:?}");
        }
    }

    #[test]
    fn x_rejects_empty_and_invalid_characters() {
        assert!(Network::X.check("").unwrap_err().message.contains("empty"));
        let e = Network::X.check("ab\u{FFFE}").unwrap_err();
        assert!(e.message.contains("U+FFFE"), "{e}");
        let e = Network::X.check(&"é".repeat(300)).unwrap_err();
        assert_eq!(e.message, "300 of 280 weighted characters");
    }

    #[test]
    fn bluesky_counts_graphemes_and_bytes() {
        let text = "New issue \u{1F389} out now: https://example.com/issue/42 #newsletter @alice.bsky.social";
        assert_eq!(Network::Bluesky.count(text), 80);
        assert_eq!(text.len(), 83);
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
        assert_eq!(Network::Bluesky.count(&format!("Emoji {family} and link example.com/x")), 30);
        // 300 graphemes fit; 301 do not.
        assert!(Network::Bluesky.check(&"a".repeat(300)).is_ok());
        assert!(Network::Bluesky.check(&"a".repeat(301)).is_err());
        // 150 family emoji: 150 graphemes but 25 bytes each = 3750 bytes.
        let e = Network::Bluesky.check(&family.repeat(150)).unwrap_err();
        assert_eq!(e.message, "3750 of 3000 UTF-8 bytes");
    }

    #[test]
    fn mastodon_counts_urls_as_23_and_federated_mentions_as_local() {
        let url = format!("https://example.com/{}", "a".repeat(100));
        assert_eq!(Network::Mastodon.count(&format!("read {url} now")), 5 + 23 + 4);
        // Bare domains are not URLs on Mastodon (extract_url_without_protocol: false).
        assert_eq!(Network::Mastodon.count("see example.com/x"), 17);
        assert_eq!(Network::Mastodon.count("hi @alice@social.example.org!"), "hi @alice!".len());
        assert_eq!(Network::Mastodon.count("hi @alice"), 9);
        // An e-mail address is not a mention.
        assert_eq!(Network::Mastodon.count("bob@example.org"), 15);
        // Emoji and ZWJ sequences are one grapheme each.
        assert_eq!(Network::Mastodon.count("\u{1F469}\u{1F3FD}\u{200D}\u{1F4BB} ok"), 4);
        assert!(Network::Mastodon.check(&"a".repeat(500)).is_ok());
        assert!(Network::Mastodon.check(&"a".repeat(501)).is_err());
    }

    #[test]
    fn threads_counts_emoji_by_bytes_and_limits_links() {
        assert_eq!(Network::Threads.count("héllo"), 5);
        assert_eq!(Network::Threads.count("日本"), 2);
        assert_eq!(Network::Threads.count("ok \u{1F389}"), 3 + 4);
        assert_eq!(Network::Threads.count("\u{1F469}\u{1F3FD}\u{200D}\u{1F4BB}"), 15);
        assert_eq!(Network::Threads.count("1\u{FE0F}\u{20E3}"), 7);
        let six: Vec<String> = (1..=6).map(|i| format!("https://example.com/{i}")).collect();
        let e = Network::Threads.check(&six.join(" ")).unwrap_err();
        assert!(e.message.contains("6 unique links"), "{e}");
        // The same link six times is one unique link.
        assert!(Network::Threads.check(&vec![six[0].clone(); 6].join(" ")).is_ok());
        // Issue 14 item 5: 4 by default (failures from 4 reported), `max_links` raises it.
        assert!(Network::Threads.check(&six[..4].join(" ")).is_ok());
        let e = Network::Threads.check(&six[..5].join(" ")).unwrap_err();
        assert!(e.message.contains("5 unique links, at most 4"), "{e}");
        let five = Rules { max_links: 5, ..Rules::from(Network::Threads) };
        assert!(five.check(&six[..5].join(" ")).is_ok());
    }

    /// Issue 14 item 2: URLs and hashtags are little-text elements and stay as written; only
    /// the text between them is escaped. The examples of LinkedIn's little-text page, and a URL
    /// with `_`, `(` and `)`.
    #[test]
    fn linkedin_escape_leaves_urls_and_hashtags_alone() {
        assert_eq!(linkedin_escape("Hello World"), "Hello World");
        assert_eq!(linkedin_escape("#hashtag"), "#hashtag");
        assert_eq!(
            linkedin_escape("New issue: https://example.com/i/42?utm_source=linkedin&utm_medium=social #news_letter"),
            r"New issue: https://example.com/i/42?utm_source=linkedin&utm_medium=social #news_letter"
        );
        assert_eq!(
            linkedin_escape("(see https://en.wikipedia.org/wiki/Rust_(programming_language)) a_b"),
            r"\(see https://en.wikipedia.org/wiki/Rust_(programming_language)\) a\_b"
        );
        // Not hashtags: a number, a fragment, an entity; a `#` inside a word.
        assert_eq!(linkedin_escape("Issue #42, C# and a#b"), r"Issue \#42, C\# and a\#b");
        assert_eq!(linkedin_escape("https://e.com/a#top"), "https://e.com/a#top");
    }

    #[test]
    fn x_refuses_a_second_cashtag() {
        assert!(Network::X.check("Shares of $TSLA rose").is_ok());
        assert!(Network::X.check("$TSLA and $tsla again").is_ok(), "the same cashtag twice is one");
        let e = Network::X.check("Compare $TSLA with $AAPL today").unwrap_err();
        assert!(e.message.contains("2 cashtags ($TSLA, $AAPL)"), "{}", e.message);
        // Prices are not cashtags.
        assert!(Network::X.check("It costs $5 or $10").is_ok());
    }

    #[test]
    fn linkedin_escapes_every_reserved_character_backslash_first() {
        assert_eq!(linkedin_escape(r"a\b"), r"a\\b");
        assert_eq!(linkedin_escape("Issue 42 (weekly) #news @me"), r"Issue 42 \(weekly\) #news \@me");
        assert_eq!(linkedin_escape(r"|{}[]<>*_~"), r"\|\{\}\[\]\<\>\*\_\~");
        assert_eq!(linkedin_escape(r"\("), r"\\\(");
        assert_eq!(linkedin_escape("plain, text: ok!"), "plain, text: ok!");
        // Counted on the escaped text, as sent.
        assert_eq!(Network::Linkedin.count(&linkedin_escape("(a)")), 5);
        assert_eq!(Network::Linkedin.count("日本 \u{1F389}"), 4);
        assert!(Network::Linkedin.check(&"a".repeat(3000)).is_ok());
        assert!(Network::Linkedin.check(&linkedin_escape(&format!("{}#", "a".repeat(2999)))).is_err());
    }

    /// `twitter-text` 0.3.1 panics on these as given (see [`defuse_at_signs`]).
    #[test]
    fn x_counts_at_signs_after_wide_characters_without_panicking() {
        assert_eq!(Network::X.count("日a@b"), 5);
        assert_eq!(Network::X.count("\u{1F389}x@y"), 5);
        assert_eq!(Network::X.count("\u{FF20}@z"), 4);
        assert_eq!(Network::X.count("\u{3000}\u{FF20}\u{FF20}z"), 7);
        // The at sign still keeps a URL from starting right after it, as in twitter-text.
        assert_eq!(Network::X.count("日a@example.com"), 2 + 1 + 1 + 11);
        assert_eq!(find_urls("日a@example.com x.com"), vec![Range { start: 17, end: 22 }]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1024, ..Default::default() })]

        /// No text makes a counter, `check`, `find_urls` or the facet detector panic.
        #[test]
        fn counting_never_panics(text in "[a-zRT_@!#$%&*=/:.,\\- \n\u{FF20}\u{FF03}\u{3000}日é\u{301}\u{1F389}\u{200D}\u{FE0F}]{0,40}") {
            for network in Network::ALL {
                let n = network.count(&text);
                let _ = network.check(&text);
                proptest::prop_assert!(n <= 2 * 23 * (text.len() + 1));
            }
            for r in find_urls(&text) {
                proptest::prop_assert!(text.get(r).is_some());
            }
            let _ = crate::render::facets::detect(&text);
        }
    }

    #[test]
    fn find_urls_gives_byte_ranges_after_multibyte_text() {
        let text = "\u{1F389} 日本 https://example.com/a and example.org/b.";
        let urls: Vec<&str> = find_urls(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(urls, ["https://example.com/a", "example.org/b"]);
    }

    /// The ASCII shortcut counts as the segmenter does, CR LF included; so do X's.
    #[test]
    fn ascii_shortcuts_count_as_the_segmenter_and_twitter_text_do() {
        for t in ["", "a", "a\r\nb", "\r\r\n\n", "\r\n\r\n", "tab\there\u{7f}\u{1b}[0m", "Section 1: Some text with a link and a list:", "x: y\r"] {
            assert_eq!(graphemes(t), t.graphemes(true).count(), "{t:?}");
            let direct = twitter_text::parse(t, twitter_text_config::config_v3(), true).weighted_length;
            assert_eq!(Network::X.count(t), usize::try_from(direct).unwrap(), "{t:?}");
        }
    }

    /// Telegram counts the text after entity parsing, in UTF-16 code units: tags are free, an
    /// entity is one character, an emoji outside the BMP is two.
    #[test]
    fn telegram_counts_parsed_text_in_utf16() {
        assert_eq!(Network::Telegram.count("<b>bold</b> <a href=\"https://example.com/a/long/path\">x</a>"), 6);
        assert_eq!(Network::Telegram.count("&lt;&amp;&gt;&quot;&#39;&#x3D;"), 6);
        assert_eq!(Network::Telegram.count("😀"), 2);
        assert_eq!(Network::Telegram.count("é"), 1);
        assert_eq!(Network::Telegram.limit(), 4096);
        assert!(Network::Telegram.check(&format!("<b>{}</b>", "a".repeat(4096))).is_ok());
        assert!(Network::Telegram.check(&"😀".repeat(2049)).is_err());
    }
}