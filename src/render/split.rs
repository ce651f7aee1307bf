//! Splitting long text into posts that each fit a network's count.
//!
//! A thread is given as parts (say an intro post and one text per section). A part that fits is
//! one post; a longer one is cut at whitespace only, so no word, URL or grapheme is ever broken,
//! preferring paragraph breaks, then sentence ends and line breaks, then any space. A preferred
//! break is taken only if it keeps at least half of what the best word break would: a sentence
//! break never leaves a stub post behind.
//!
//! Every post is measured with the network's own rules ([`Network`]): length, Bluesky's bytes,
//! Threads' link count. With [`SplitOptions::counter`], each post of a thread of more than one gets
//! ` i/n` appended and measured with it; since `n` changes the lengths, the split is redone until
//! `n` is stable.
//!
//! Telegram posts are HTML (`parse_mode` HTML): a cut is never made inside a tag (an entity has
//! no whitespace to cut at), and a tag open at a cut is closed at the end of its post and opened
//! again at the start of the next, so every post is balanced HTML on its own. Tags count nothing
//! on Telegram, so this changes no count.
//!
//! Cuts drop only the whitespace they happen at: joining the posts (without counters) with one
//! space gives back the parts, up to runs of whitespace.

use std::borrow::Cow;
use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

use super::count::{Network, Rules};

/// Splitter options.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitOptions {
    /// Append an ` i/n` counter to each post when there is more than one, counted in the limit.
    pub counter: bool,
}

/// A text that cannot be split to fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot fit {network:?} limit of {limit}: unbreakable text {offending:?}")]
pub struct SplitError {
    /// The network.
    pub network: Network,
    /// Its limit.
    pub limit: usize,
    /// The token that alone is over the limit.
    pub offending: String,
}

/// How good a place to cut a whitespace run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    /// Between two words.
    Word,
    /// After a sentence end, or at a line break.
    Sentence,
    /// At a blank line.
    Paragraph,
}

/// A run of whitespace graphemes where the text may be cut.
#[derive(Debug, Clone)]
struct Cut {
    /// The whitespace's byte range; a cut drops it.
    gap: Range<usize>,
    kind: Break,
}

/// Most times the counted split is redone while the post count settles.
const MAX_COUNTER_ROUNDS: usize = 32;

/// Split each of `parts` into posts that fit, then number the whole thread if asked.
///
/// Empty (or whitespace-only) parts give no post. Fails only on a single word or URL that alone
/// (with its counter, if any) is over the limit.
pub fn split_thread(parts: &[String], rules: impl Into<Rules>, opts: SplitOptions) -> Result<Vec<String>, SplitError> {
    Ok(split_thread_counted(parts, rules, opts)?.into_iter().map(|(p, _)| p).collect())
}

/// [`split_thread`], with each post's count ([`Rules::count`]) as the splitter measured it: a
/// caller that reports counts need not count every post again.
pub fn split_thread_counted(parts: &[String], rules: impl Into<Rules>, opts: SplitOptions) -> Result<Vec<(String, usize)>, SplitError> {
    let network: Rules = rules.into();
    let plain = split_all(parts, network, None)?;
    if !opts.counter || plain.len() <= 1 {
        return Ok(plain);
    }
    // Posts only get longer with a counter, so the count only grows from here.
    let mut total = plain.len();
    for _ in 0..MAX_COUNTER_ROUNDS {
        let posts = split_all(parts, network, Some(total))?;
        let n = posts.len();
        if n <= total {
            // Fewer posts than budgeted means shorter counters than measured; confirm anyway.
            let numbered: Option<Vec<(String, usize)>> = posts
                .iter()
                .enumerate()
                .map(|(i, (p, _))| {
                    let p = with_counter(p, i + 1, Some(n)).into_owned();
                    match network.measure(&p) {
                        (count, None) => Some((p, count)),
                        (_, Some(_)) => None,
                    }
                })
                .collect();
            if let Some(numbered) = numbered {
                return Ok(numbered);
            }
            total += 1;
        } else {
            total = n;
        }
    }
    // Unreachable in practice: each round adds posts, and there are only so many words.
    Err(SplitError { network: network.network, limit: network.limit(), offending: parts.join(" ") })
}

/// `post i/n`, or `post` alone without a total.
fn with_counter(post: &str, index: usize, total: Option<usize>) -> Cow<'_, str> {
    match total {
        Some(n) => Cow::Owned(format!("{post} {index}/{n}")),
        None => Cow::Borrowed(post),
    }
}

/// Split every part, numbering posts across the whole thread when `total` is given. Each post
/// comes with its count as measured (with its counter when `total` is given).
fn split_all(parts: &[String], network: Rules, total: Option<usize>) -> Result<Vec<(String, usize)>, SplitError> {
    let mut posts = Vec::new();
    for part in parts {
        let from = posts.len();
        split_part(trim_graphemes(part), network, total, &mut posts)?;
        if network.network == Network::Telegram {
            rebalance_tags(&mut posts[from..]);
        }
    }
    Ok(posts)
}

/// Split one part into `posts`. `text` holds no leading or trailing whitespace grapheme.
fn split_part(text: &str, network: Rules, total: Option<usize>, posts: &mut Vec<(String, usize)>) -> Result<(), SplitError> {
    if text.is_empty() {
        return Ok(());
    }
    // Found on the first post that needs a cut: most parts fit whole and need none.
    let mut cuts_found: Option<Vec<Cut>> = None;
    let mut start = 0;
    let mut next_cut = 0; // first cut at or after `start`
    loop {
        let index = posts.len() + 1;
        // The count of `s` as posted (with its counter), if it fits.
        let fits = |s: &str| match network.measure(&with_counter(s, index, total)) {
            (n, None) => Some(n),
            (_, Some(_)) => None,
        };
        // What is left is short and fits whole (the common case, a short section): one count, not
        // one per word. A long rest is never counted whole here (once per post, that was quadratic).
        let rest = &text[start..];
        if rest.len() <= 8 * network.limit()
            && let Some(n) = fits(rest)
        {
            posts.push((rest.to_string(), n));
            return Ok(());
        }
        let cuts: &[Cut] = cuts_found.get_or_insert_with(|| cuts(text, network.network == Network::Telegram));
        // Every cut whose prefix fits, in order; stop at the first that does not (longer prefixes
        // only add words). Measuring prefixes first keeps a long part from being counted whole
        // once per post.
        let mut feasible: Vec<(usize, usize)> = Vec::new(); // (cut index, count of the prefix)
        let mut over = false;
        for (i, cut) in cuts.iter().enumerate().skip(next_cut) {
            let prefix = &text[start..cut.gap.start];
            let Some(n) = fits(prefix) else {
                over = true;
                break;
            };
            // Breaks are chosen on the prefix's own count, without its counter.
            feasible.push((i, if total.is_none() { n } else { network.count(prefix) }));
        }
        if !over && let Some(n) = fits(rest) {
            posts.push((rest.to_string(), n));
            return Ok(());
        }
        let Some(&(_, longest)) = feasible.last() else {
            let end = cuts.get(next_cut).map_or(text.len(), |c| c.gap.start);
            return Err(SplitError { network: network.network, limit: network.limit(), offending: text[start..end].to_string() });
        };
        let chosen = [Break::Paragraph, Break::Sentence]
            .into_iter()
            .find_map(|level| {
                feasible.iter().rev().find(|&&(i, n)| cuts[i].kind >= level && n * 2 >= longest).copied()
            })
            .unwrap_or(feasible[feasible.len() - 1]);
        posts.push((text[start..cuts[chosen.0].gap.start].to_string(), chosen.1));
        start = cuts[chosen.0].gap.end;
        next_cut = chosen.0 + 1;
    }
}

/// Whether a grapheme is whitespace only (a space followed by a combining mark is not).
fn is_space(g: &str) -> bool {
    g.chars().all(char::is_whitespace)
}

/// `text` without leading or trailing whitespace graphemes.
fn trim_graphemes(text: &str) -> &str {
    // A grapheme holding a character that is not whitespace is no whitespace grapheme: a text
    // that starts and ends with one (most parts, already trimmed) is kept whole without a scan.
    if text.chars().next().is_some_and(|c| !c.is_whitespace()) && text.chars().next_back().is_some_and(|c| !c.is_whitespace()) {
        return text;
    }
    let mut start = text.len();
    let mut end = 0;
    for (i, g) in text.grapheme_indices(true) {
        if !is_space(g) {
            start = start.min(i);
            end = i + g.len();
        }
    }
    if start >= end { "" } else { &text[start..end] }
}

/// Every whitespace run in `text` (which is trimmed), with how good a break it is. With `html`,
/// whitespace inside a tag (`<a href="…">`) is no place to cut.
fn cuts(text: &str, html: bool) -> Vec<Cut> {
    let mut out: Vec<Cut> = Vec::new();
    let mut run: Option<Range<usize>> = None;
    let mut in_tag = false;
    for (i, g) in text.grapheme_indices(true) {
        if html {
            if g == "<" {
                in_tag = true;
            } else if g == ">" {
                in_tag = false;
            }
        }
        if is_space(g) && !in_tag {
            run = Some(run.map_or(i..i + g.len(), |r| r.start..i + g.len()));
        } else if let Some(gap) = run.take() {
            out.push(Cut { kind: classify(&text[..gap.start], &text[gap.clone()]), gap });
        }
    }
    out
}

/// Close, at the end of each post, the HTML tags still open there (innermost first), and open
/// them again, as they were written, at the start of the next post. Each post's count stands:
/// Telegram counts the text after its entities are parsed, so tags count nothing.
fn rebalance_tags(posts: &mut [(String, usize)]) {
    let mut carried: Vec<(String, String)> = Vec::new(); // (name, the opening tag as written)
    for (post, _) in posts.iter_mut() {
        let mut open = carried.clone();
        let mut rest = post.as_str();
        while let Some(i) = rest.find('<') {
            let Some(len) = rest[i..].find('>') else { break };
            let tag = &rest[i..=i + len];
            rest = &rest[i + len + 1..];
            let inner = tag.trim_start_matches('<').trim_end_matches('>');
            if let Some(name) = inner.strip_prefix('/') {
                let name = name.trim().to_ascii_lowercase();
                if let Some(at) = open.iter().rposition(|(n, _)| *n == name) {
                    open.truncate(at);
                }
            } else if !inner.ends_with('/') {
                let name: String = inner.chars().take_while(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
                open.push((name, tag.to_string()));
            }
        }
        let prefix: String = carried.iter().map(|(_, t)| t.as_str()).collect();
        let suffix: String = open.iter().rev().map(|(n, _)| format!("</{n}>")).collect();
        *post = format!("{prefix}{post}{suffix}");
        carried = open;
    }
}

/// How good a break the whitespace `gap`, after `before`, is.
fn classify(before: &str, gap: &str) -> Break {
    let newlines = gap.chars().filter(|&c| matches!(c, '\n' | '\u{2028}' | '\u{2029}')).count();
    if newlines >= 2 || gap.contains('\u{2029}') {
        return Break::Paragraph;
    }
    if newlines == 1 {
        return Break::Sentence;
    }
    let closers: &[char] = &['"', '\'', ')', ']', '”', '’', '»', '*', '_'];
    match before.trim_end_matches(closers).chars().next_back() {
        Some('.' | '!' | '?' | '…' | '。' | '！' | '？') => Break::Sentence,
        _ => Break::Word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(parts: &[&str], network: Network, counter: bool) -> Result<Vec<String>, SplitError> {
        let parts: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        split_thread(&parts, network, SplitOptions { counter })
    }

    #[test]
    fn parts_that_fit_stay_whole_and_empty_parts_vanish() {
        let posts = split(&["  Intro post.  ", "", " \n ", "Second."], Network::X, false).unwrap();
        assert_eq!(posts, ["Intro post.", "Second."]);
    }

    #[test]
    fn long_text_is_cut_at_sentence_ends() {
        let s1 = format!("{}.", "word ".repeat(30).trim_end()); // 150 chars
        let s2 = format!("{}!", "more ".repeat(30).trim_end());
        let s3 = "Last one.".to_string();
        let text = format!("{s1} {s2} {s3}");
        let posts = split(&[&text], Network::X, false).unwrap();
        assert_eq!(posts, [s1, format!("{s2} {s3}")]);
    }

    #[test]
    fn a_stub_sentence_is_not_left_alone() {
        // "Hi." then 400 chars without a sentence end: cutting after "Hi." would waste a post.
        let text = format!("Hi. {}", "lorem ipsum ".repeat(34).trim_end());
        let posts = split(&[&text], Network::X, false).unwrap();
        assert!(posts[0].starts_with("Hi. lorem") && Network::X.count(&posts[0]) > 250, "{posts:?}");
    }

    #[test]
    fn paragraphs_win_over_sentences() {
        let p1 = "First paragraph. ".repeat(9).trim_end().to_string(); // 152 chars
        let p2 = "Second paragraph here. ".repeat(8).trim_end().to_string();
        let text = format!("{p1}\n\n{p2}");
        let posts = split(&[&text], Network::X, false).unwrap();
        assert_eq!(posts[0], p1);
    }

    #[test]
    fn urls_count_as_23_and_are_never_cut() {
        let url = format!("https://example.com/{}", "a".repeat(300));
        let text = format!("{} {url} {}", "x ".repeat(120).trim_end(), "y ".repeat(60).trim_end());
        let posts = split(&[&text], Network::X, false).unwrap();
        assert!(posts.iter().any(|p| p.contains(&url)), "{posts:?}");
        assert!(posts.iter().all(|p| Network::X.check(p).is_ok()));
        // On Bluesky the same URL is 320 graphemes: one word over the limit.
        let e = split(&[&text], Network::Bluesky, false).unwrap_err();
        assert_eq!(e.offending, url);
        assert_eq!(e.limit, 300);
    }

    #[test]
    fn counters_are_counted_inside_the_limit() {
        // 2 000 'a' words: 1 000 characters on X without counters.
        let text = "a ".repeat(500);
        let posts = split(&[&text, "Outro."], Network::X, true).unwrap();
        let n = posts.len();
        for (i, p) in posts.iter().enumerate() {
            assert!(p.ends_with(&format!(" {}/{n}", i + 1)), "{p}");
            assert!(Network::X.count(p) <= 280, "{p}");
        }
        assert_eq!(posts[n - 1], format!("Outro. {n}/{n}"));
        // A thread of one gets no counter.
        assert_eq!(split(&["Short."], Network::X, true).unwrap(), ["Short."]);
    }

    #[test]
    fn a_counter_can_force_a_split() {
        // 278 + " 1/2" = 282 on X: the first part must split once counters are on.
        let first = format!("{} end", "b".repeat(274));
        let plain = split(&[&first, "two"], Network::X, false).unwrap();
        assert_eq!(plain.len(), 2);
        let counted = split(&[&first, "two"], Network::X, true).unwrap();
        assert_eq!(counted, [format!("{} 1/3", "b".repeat(274)), "end 2/3".to_string(), "two 3/3".to_string()]);
    }

    #[test]
    fn threads_posts_keep_at_most_five_links() {
        let text: Vec<String> = (1..=12).map(|i| format!("https://example.com/{i}")).collect();
        let posts = split(&[&text.join(" ")], Network::Threads, false).unwrap();
        assert_eq!(posts.len(), 3);
        assert!(posts.iter().all(|p| Network::Threads.check(p).is_ok()));
    }

    #[test]
    fn bluesky_bytes_are_a_limit_too() {
        // 140 family emoji and 139 spaces: 279 graphemes (under 300) but 3 639 bytes (over 3 000).
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
        let text = vec![family; 140].join(" ");
        assert!(Network::Bluesky.count(&text) <= 300);
        let posts = split(&[&text], Network::Bluesky, false).unwrap();
        assert!(posts.len() >= 2);
        assert!(posts.iter().all(|p| p.len() <= 3000 && Network::Bluesky.check(p).is_ok()));
    }

    #[test]
    fn a_space_with_a_combining_mark_is_not_a_cut() {
        assert_eq!(trim_graphemes(" \u{301}a "), " \u{301}a");
        assert!(cuts("a \u{301}b", false).is_empty());
    }

    /// Telegram HTML: no cut inside a tag, and a tag open at a cut is closed and reopened, so
    /// every post is balanced on its own; tags count nothing, so every post still fits.
    #[test]
    fn telegram_cuts_keep_every_post_balanced_html() {
        let sentence = "A sentence with <a href=\"https://example.com/x?a=1&amp;b=2\">a link in it</a> and more words. ";
        let text = format!("<b>Title</b>\n\n<i>{}</i>", sentence.repeat(120));
        let posts = split(&[&text], Network::Telegram, true).unwrap();
        assert!(posts.len() >= 2, "{}", posts.len());
        for p in &posts {
            assert!(Network::Telegram.count(p) <= 4096, "{}", Network::Telegram.count(p));
            let opens = p.matches("<i>").count();
            assert_eq!(opens, p.matches("</i>").count(), "{p}");
            assert_eq!(p.matches("<a ").count(), p.matches("</a>").count(), "{p}");
            assert!(!p.contains("<a\n") && !p.contains("href=\"https://example.com/x?a=1&amp;b=2\"\n"));
        }
        assert!(posts[1].starts_with("<i>"), "{}", &posts[1][..40]);
        // Without the HTML rules a cut may fall inside `<a href=…>`: the test above would see it.
        let plain = super::cuts("<a href=\"x\">y z</a>", false);
        let html = super::cuts("<a href=\"x\">y z</a>", true);
        assert_eq!((plain.len(), html.len()), (2, 1));
    }
}