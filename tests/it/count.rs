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
                    bad.push(format!("v2 / {}: {got} exceeds the v2 count {}", c.description, c.expected.weighted_length));
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
