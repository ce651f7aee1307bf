//! The issue model: TOML front matter between `+++` lines, then Markdown split into sections.
//!
//! Pure: parsing never touches the network, the store or the templates.

pub mod markdown;
pub mod parse;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use parse::{IssueError, parse_file, parse_meta_file, parse_str};

/// One finished issue.
#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    /// Where it was read from.
    pub path: PathBuf,
    /// Front matter.
    #[serde(flatten)]
    pub meta: FrontMatter,
    /// Hash of the file's content (sha256, hex, first 16 chars): the issue's version.
    pub version: String,
    /// The Markdown before the first `##` heading.
    pub intro: Block,
    /// The sections, split at `##` headings.
    pub sections: Vec<Section>,
    /// Every link in the body, in order, deduplicated.
    pub links: Vec<Link>,
    /// The whole body as Markdown.
    pub markdown: String,
}

/// Front matter keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    /// Title.
    pub title: String,
    /// URL-safe identifier, unique per issue; the delivery key starts with it.
    pub slug: String,
    /// Issue number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Publication date (YYYY-MM-DD; a TOML date or a string).
    #[serde(with = "toml_date")]
    pub date: chrono::NaiveDate,
    /// Canonical URL of the web version.
    pub url: String,
    /// One- or two-sentence summary: the hook for shorts.
    pub summary: String,
    /// Tags, without `#`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When to publish automatically (RFC 3339; a TOML offset datetime or a string).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "toml_instant")]
    pub publish_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// A draft is never picked by a schedule.
    #[serde(default)]
    pub draft: bool,
    /// Lead image (path relative to the issue file, or URL), used for link cards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Per-channel overrides, by channel name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, ChannelOverride>,
}

/// `[channels.<name>]` in the front matter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelOverride {
    /// Skip this channel for this issue.
    #[serde(default)]
    pub skip: bool,
    /// Hand-written text for a short (replaces the template's output; still counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Hand-written posts for a thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posts: Option<Vec<String>>,
    /// Subject or title override (email, Substack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Subtitle override (Substack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
}

/// A stretch of Markdown with its derived forms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Block {
    /// Markdown source.
    pub markdown: String,
    /// HTML.
    pub html: String,
    /// Plain text.
    pub text: String,
    /// The first paragraph, as plain text.
    pub first_paragraph: String,
    /// Links in order.
    pub links: Vec<Link>,
    /// Whether `markdown` (trimmed) renders to `html` and `text` too (they are of the untrimmed
    /// source), so the render need not parse it again; false when unsure.
    #[serde(skip)]
    pub trimmed_alike: bool,
}

/// One `##` section.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Heading text.
    pub title: String,
    /// Anchor (slug of the title, unique in the issue).
    pub anchor: String,
    /// The section body.
    #[serde(flatten)]
    pub body: Block,
    /// 1-based line of the heading in the file.
    pub line: usize,
}

/// A link in the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Target URL.
    pub url: String,
    /// Link text.
    pub text: String,
}

/// TOML writes `date = 2026-11-27` as a datetime value, not a string: accept both.
fn datetime_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Toml(toml::value::Datetime),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::Toml(t) => t.to_string(),
        Either::Text(s) => s,
    })
}

mod toml_date {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &chrono::NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<chrono::NaiveDate, D::Error> {
        let t = super::datetime_text(d)?;
        chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
            .map_err(|e| serde::de::Error::custom(format!("`date` must be YYYY-MM-DD, got {t:?} ({e})")))
    }
}

mod toml_instant {
    use serde::{Deserializer, Serializer};

    type Instant = chrono::DateTime<chrono::FixedOffset>;

    pub(super) fn serialize<S: Serializer>(d: &Option<Instant>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&d.to_rfc3339()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Instant>, D::Error> {
        let t = super::datetime_text(d)?;
        chrono::DateTime::parse_from_rfc3339(&t).map(Some).map_err(|e| {
            serde::de::Error::custom(format!("`publish_at` must be an RFC 3339 instant with an offset, e.g. 2026-11-27T08:00:00Z; got {t:?} ({e})"))
        })
    }
}
