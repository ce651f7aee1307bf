//! Each network's own length count and limits.
//!
//! PLACEHOLDER implementation (naive char counts) — to be replaced by the real counters:
//! X = twitter-text v3 weighted length, Bluesky = graphemes + UTF-8 bytes, Mastodon = graphemes
//! with URLs as 23, Threads = 500 with ≤5 links, LinkedIn = 3000 after little-text escaping.

use std::ops::Range;

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

impl Network {
    /// The network's main limit, in its own unit.
    pub fn limit(self) -> usize {
        match self {
            Network::X => 280,
            Network::Bluesky => 300,
            Network::Mastodon | Network::Threads => 500,
            Network::Linkedin => 3000,
        }
    }
    /// The text's length as the network counts it.
    pub fn count(self, text: &str) -> usize {
        text.chars().count()
    }
    /// All of the network's checks (length, bytes, link count).
    pub fn check(self, text: &str) -> Result<(), LimitError> {
        let n = self.count(text);
        if n > self.limit() {
            return Err(LimitError { network: self, message: format!("{n} of {} characters", self.limit()) });
        }
        Ok(())
    }
}

/// Byte ranges of URLs in `text`, as the networks detect them.
pub fn find_urls(text: &str) -> Vec<Range<usize>> {
    let re = regex::Regex::new(r"https?://[^\s]+").expect("static regex");
    re.find_iter(text).map(|m| m.range()).collect()
}

/// Escape LinkedIn little-text reserved characters.
pub fn linkedin_escape(text: &str) -> String {
    text.to_string()
}
