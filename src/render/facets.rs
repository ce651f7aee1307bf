//! Bluesky rich-text facets with exact UTF-8 byte offsets.
//!
//! PLACEHOLDER implementation — to be replaced.

use super::types::Facet;

/// Detect link, tag and mention facets in `text`.
pub fn detect(text: &str) -> Vec<Facet> {
    let _ = text;
    Vec::new()
}
