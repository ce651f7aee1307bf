//! Length counting against twitter-text's own conformance suite, and properties of the splitter.

use herald::render::count::Network;
use serde::Deserialize;

const VALIDATE_YML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/conformance/twitter-text-validate.yml");

#[derive(Deserialize)]
struct Suite {
    tests: Tests,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tests {
    #[serde(rename = "tweets")]
    tweets: Vec<ValidityCase>,
    weighted_tweets_counter_test: Vec<WeightedCase>,
    weighted_tweets_with_discounted_emoji_counter_test: Vec<WeightedCase>,
    unicode_directional_marker_counter_test: Vec<WeightedCase>,
}

#[derive(Deserialize)]
struct ValidityCase {
    description: String,
    text: String,
    expected: bool,
}

#[derive(Deserialize)]
struct WeightedCase {
    description: String,
    text: String,
    expected: Weighted,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Weighted {
    weighted_length: usize,
    valid: bool,
}

/// The same file seen from a helper's worktree (`/work/wt/<name>`), one level deeper than main.
const VALIDATE_YML_FROM_WORKTREE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/twitter-text-validate.yml");

fn suite() -> Suite {
    let path = [VALIDATE_YML, VALIDATE_YML_FROM_WORKTREE]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or(VALIDATE_YML);
    let yaml = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_yaml::from_str(&yaml).expect("twitter-text-validate.yml parses")
}

/// Runs `cases` through Herald's X counter; returns one line per mismatch.
fn mismatches(group: &str, cases: &[WeightedCase]) -> Vec<String> {
    cases
        .iter()
        .filter_map(|c| {
            let got = (Network::X.count(&c.text), Network::X.check(&c.text).is_ok());
            let want = (c.expected.weighted_length, c.expected.valid);
            (got != want).then(|| format!("{group} / {}: got {got:?}, want {want:?}", c.description))
        })
        .collect()
}

/// Every case of the v3 suite (`WeightedTweetsWithDiscountedEmojiCounterTest`: emoji parsing on,
/// which is X's current counting) and of the directional-marker suite matches exactly.
#[test]
fn x_matches_the_v3_conformance_suite() {
    let s = suite();
    assert!(s.tests.weighted_tweets_with_discounted_emoji_counter_test.len() >= 10);
    let mut bad = mismatches("v3", &s.tests.weighted_tweets_with_discounted_emoji_counter_test);
    bad.extend(mismatches("directional", &s.tests.unicode_directional_marker_counter_test));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// `WeightedTweetsCounterTest` is the v2 suite (emoji weighed per code point). Every case whose text
/// has no emoji sequence counts the same under v3 and must match exactly; the emoji cases must
/// count no more under v3 than under v2, since v3 only discounts emoji.
#[test]
fn x_matches_the_weighted_counter_suite() {
    let s = suite();
    let cases = &s.tests.weighted_tweets_counter_test;
    assert!(cases.len() >= 10);
    let v3: std::collections::HashMap<&str, &Weighted> = s
        .tests
        .weighted_tweets_with_discounted_emoji_counter_test
        .iter()
        .map(|c| (c.text.as_str(), &c.expected))
        .collect();
    let mut bad = Vec::new();
    let mut exact = 0;
    for c in cases {
        let got = Network::X.count(&c.text);
        let valid = Network::X.check(&c.text).is_ok();
        match v3.get(c.text.as_str()) {
            // The same text in the v3 suite with different expectations: an emoji case.
            Some(w) if w.weighted_length != c.expected.weighted_length => {
                if got > c.expected.weighted_length {
                    bad.push(format!(
                        "v2 / {}: {got} exceeds the v2 count {}",
                        c.description, c.expected.weighted_length
                    ));
                }
            }
            _ => {
                exact += 1;
                if (got, valid) != (c.expected.weighted_length, c.expected.valid) {
                    bad.push(format!(
                        "v2 / {}: got {:?}, want {:?}",
                        c.description,
                        (got, valid),
                        (c.expected.weighted_length, c.expected.valid)
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(exact * 2 > cases.len(), "most v2 cases are emoji-free and checked exactly ({exact} of {})", cases.len());
}

/// The `tweets` validity cases are for the old 140 limit: every tweet valid there is valid at
/// 280 too, and the empty tweet is invalid. (The "141 characters" cases are valid today.)
#[test]
fn x_accepts_every_valid_tweet_of_the_140_suite() {
    let s = suite();
    let mut checked = 0;
    for c in &s.tests.tweets {
        if c.expected {
            assert!(Network::X.check(&c.text).is_ok(), "{}", c.description);
            checked += 1;
        } else if c.text.is_empty() {
            assert!(Network::X.check(&c.text).is_err(), "{}", c.description);
            checked += 1;
        } else {
            assert!(Network::X.count(&c.text) > 140, "{}", c.description);
        }
    }
    assert!(checked >= 5);
}

mod split_properties {
    //! Properties of `split_thread` on text mixing ASCII, CJK, emoji (ZWJ sequences, flags,
    //! keycaps, skin tones), combining marks, long URLs, bare domains, mentions and tags.

    use herald::render::count::{Network, find_urls};
    use herald::render::facets;
    use herald::render::split::{SplitOptions, split_thread};
    use proptest::prelude::*;
    use unicode_segmentation::UnicodeSegmentation;

    const EMOJI: &[&str] = &[
        "\u{1F389}",                                                    // 🎉
        "\u{1F44B}\u{1F3FD}",                                           // waving hand, skin tone
        "\u{1F469}\u{1F3FD}\u{200D}\u{1F4BB}",                          // woman technologist, ZWJ
        "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}", // family, ZWJ
        "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}",                           // rainbow flag
        "\u{1F1EF}\u{1F1F5}",                                           // flag JP
        "1\u{FE0F}\u{20E3}",                                            // keycap
        "\u{2764}\u{FE0F}",                                             // heart
    ];

    /// One piece of a word.
    fn atom() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-zA-Z]{1,10}",
            1 => "[a-z]{1,8}[.,;:!?]",
            2 => "[\u{4E00}-\u{4FFF}\u{3041}-\u{3096}]{1,6}[。、]?",
            1 => "[àéîõüçñß]{1,4}",
            1 => Just("cafe\u{301}".to_string()),
            1 => Just("\u{301}".to_string()), // a combining mark, glued to what precedes it
            2 => prop::sample::select(EMOJI).prop_map(str::to_string),
            1 => "https://example\\.com/[a-z0-9/_-]{0,100}".prop_map(|s| s),
            1 => "https://[a-z]{2,8}\\.org/[a-z]{1,8}\\?utm_source=[a-z]{1,6}",
            1 => "[a-z]{2,8}\\.(com|org|net)/[a-z]{1,10}",
            1 => "@[a-z]{2,8}\\.bsky\\.social",
            1 => "@[a-z]{2,6}@[a-z]{2,6}\\.social",
            1 => "#[a-z]{2,10}",
        ]
    }

    /// A word: one or two atoms, no whitespace.
    fn word() -> impl Strategy<Value = String> {
        prop::collection::vec(atom(), 1..=2).prop_map(|a| a.concat())
    }

    fn separator() -> impl Strategy<Value = String> {
        prop::sample::select(&[" ", " ", " ", " ", "  ", "\n", "\n\n", " \t ", "\u{3000}"][..]).prop_map(str::to_string)
    }

    /// A part: up to 180 words with separators, sometimes with surrounding whitespace.
    fn part() -> impl Strategy<Value = String> {
        (prop::collection::vec((word(), separator()), 0..180), any::<bool>()).prop_map(|(words, padded)| {
            let mut s = if padded { " \n".to_string() } else { String::new() };
            for (w, sep) in words {
                s.push_str(&w);
                s.push_str(&sep);
            }
            if !padded {
                s.truncate(s.trim_end().len());
            }
            s
        })
    }

    fn network() -> impl Strategy<Value = Network> {
        prop::sample::select(&Network::ALL[..])
    }

    fn collapse(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Removes and checks the ` i/n` counter of every post.
    fn strip_counters(posts: &[String]) -> Vec<String> {
        let n = posts.len();
        if n == 1 {
            return posts.to_vec();
        }
        posts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let suffix = format!(" {}/{n}", i + 1);
                p.strip_suffix(&suffix).unwrap_or_else(|| panic!("post {p:?} lacks {suffix:?}")).to_string()
            })
            .collect()
    }

    /// Finds each post in the parts, in order, and checks what lies between them and where they
    /// start and end.
    fn check_cuts(parts: &[String], posts: &[String]) {
        let mut part_i = 0;
        let mut off = 0;
        for post in posts {
            let start = loop {
                let part = &parts[part_i];
                match part[off..].find(post.as_str()) {
                    Some(at) if part[off..off + at].chars().all(char::is_whitespace) => break off + at,
                    _ => {
                        assert!(part[off..].chars().all(char::is_whitespace), "text dropped: {:?}", &part[off..]);
                        part_i += 1;
                        off = 0;
                        assert!(part_i < parts.len(), "post {post:?} is not in the input in order");
                    }
                }
            };
            let part = &parts[part_i];
            let end = start + post.len();
            assert!(off == 0 || start > off || post.is_empty(), "two posts with no whitespace between them");
            let bounds: Vec<usize> = part.grapheme_indices(true).map(|(i, _)| i).chain([part.len()]).collect();
            assert!(bounds.contains(&start) && bounds.contains(&end), "post {post:?} breaks a grapheme");
            let links = facets::detect(part).into_iter().map(|f| f.index.byte_start..f.index.byte_end);
            for url in find_urls(part).into_iter().chain(links) {
                for cut in [start, end] {
                    assert!(!(url.start < cut && cut < url.end), "cut at {cut} inside URL {:?}", &part[url.clone()]);
                }
            }
            off = end;
        }
        for rest in std::iter::once(&parts[part_i][off..]).chain(parts[part_i + 1..].iter().map(String::as_str)) {
            assert!(rest.chars().all(char::is_whitespace), "text dropped: {rest:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Every post fits its network, no word, URL or grapheme is broken, and joining the posts
        /// gives back the text.
        #[test]
        fn posts_fit_and_join_back(parts in prop::collection::vec(part(), 1..=3), network in network(), counter in any::<bool>()) {
            let posts = split_thread(&parts, network, SplitOptions { counter })
                .unwrap_or_else(|e| panic!("{e}"));
            for p in &posts {
                prop_assert!(network.check(p).is_ok(), "{:?}: {p:?}", network.check(p));
                prop_assert!(!p.trim().is_empty());
            }
            let bare = if counter { strip_counters(&posts) } else { posts.clone() };
            prop_assert_eq!(collapse(&bare.join(" ")), collapse(&parts.join(" ")));
            check_cuts(&parts, &bare);
            // A thread of one is never numbered; a split thread is.
            if counter && posts.len() > 1 {
                let last_suffix = format!(" {0}/{0}", posts.len());
                prop_assert!(posts.last().is_some_and(|p| p.ends_with(&last_suffix)));
            }
        }

        /// A word longer than the limit is an error naming that word.
        #[test]
        fn an_unbreakable_word_is_an_error(before in part(), network in network(), counter in any::<bool>()) {
            let long = "\u{1F469}\u{1F3FD}\u{200D}\u{1F4BB}x".repeat(network.limit());
            let text = format!("{before} {long} tail");
            let err = split_thread(&[text], network, SplitOptions { counter }).unwrap_err();
            prop_assert_eq!(err.offending, long);
            prop_assert_eq!(err.limit, network.limit());
            prop_assert_eq!(err.network, network);
        }
    }
}
