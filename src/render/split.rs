//! Splitting long text into posts that each fit a network's count.
//!
//! PLACEHOLDER implementation — to be replaced.

use super::count::Network;

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

/// Split each of `parts` into posts that fit, then number the whole thread if asked.
pub fn split_thread(parts: &[String], network: Network, opts: SplitOptions) -> Result<Vec<String>, SplitError> {
    let _ = opts;
    for p in parts {
        if network.check(p).is_err() {
            return Err(SplitError { network, limit: network.limit(), offending: p.clone() });
        }
    }
    Ok(parts.to_vec())
}
