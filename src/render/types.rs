//! What a channel receives: the stored, previewable output of `render`.
//!
//! Serialised untagged so `herald render --json` gives each type's documented shape:
//! email `{subject,html,text}`, article `{title,subtitle,html,...}`, posts `{posts:[...]}`,
//! webhook and exec `{body}`.

use serde::{Deserialize, Serialize};

/// One channel's rendering, exactly as it will be sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rendering {
    /// Email: subject, HTML with CSS inlined, plain text. May hold `[[merge]]` tags filled per recipient.
    Email(EmailRendering),
    /// Substack: an article.
    Article(ArticleRendering),
    /// LinkedIn, X, Bluesky, Mastodon, Threads: one post (a short) or several (a thread).
    Posts(PostsRendering),
    /// Webhook and exec: a JSON body.
    Body(BodyRendering),
}

/// The email rendering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailRendering {
    /// Subject line.
    pub subject: String,
    /// HTML part, CSS inlined.
    pub html: String,
    /// Plain-text part.
    pub text: String,
}

/// The article rendering (Substack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArticleRendering {
    /// Post title.
    pub title: String,
    /// Post subtitle.
    pub subtitle: String,
    /// Body as HTML.
    pub html: String,
    /// Body as a ProseMirror document (what Substack's editor stores), when the channel needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<serde_json::Value>,
    /// Deterministic slug, so a duplicate is recognisable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// The issue's `url`: the canonical URL a long-form copy (Ghost) points search engines to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_url: Option<String>,
}

/// A short or a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostsRendering {
    /// The posts, in order. A short has one.
    pub posts: Vec<Post>,
    /// A link card for the first post, where the network supports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<LinkCard>,
}

/// One post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// The text, exactly as sent.
    pub text: String,
    /// Bluesky rich-text facets (UTF-8 byte offsets). Empty elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facets: Vec<Facet>,
    /// X entities (URLs, hashtags, mentions, cashtags) where X will link them, as UTF-8 byte
    /// ranges found by twitter-text. Empty elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<XEntity>,
    /// Length as the network counts it.
    pub count: usize,
    /// The network's limit.
    pub limit: usize,
}

/// An `app.bsky.richtext.facet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facet {
    /// Byte range in the UTF-8 text.
    pub index: ByteSlice,
    /// What the range is.
    pub features: Vec<FacetFeature>,
}

/// `app.bsky.richtext.facet#byteSlice`: start inclusive, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ByteSlice {
    /// Inclusive start, in UTF-8 bytes.
    pub byte_start: usize,
    /// Exclusive end, in UTF-8 bytes.
    pub byte_end: usize,
}

/// A facet feature, tagged with its lexicon `$type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "$type")]
pub enum FacetFeature {
    /// A link.
    #[serde(rename = "app.bsky.richtext.facet#link")]
    Link {
        /// Full URI, with scheme.
        uri: String,
    },
    /// A hashtag, without the `#`.
    #[serde(rename = "app.bsky.richtext.facet#tag")]
    Tag {
        /// The tag.
        tag: String,
    },
    /// A mention. `did` holds the handle until the adapter resolves it at send time.
    #[serde(rename = "app.bsky.richtext.facet#mention")]
    Mention {
        /// DID (or the handle, before resolution).
        did: String,
    },
}

/// An X entity: what twitter-text (and so X) turns into a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XEntity {
    /// Byte range in the UTF-8 text.
    pub index: ByteSlice,
    /// `url`, `hashtag`, `mention` or `cashtag`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A link card (Bluesky `app.bsky.embed.external`, LinkedIn article).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkCard {
    /// The link.
    pub uri: String,
    /// Card title.
    pub title: String,
    /// Card description.
    pub description: String,
    /// Image to upload as the thumbnail: a path relative to the issue file, or a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// A JSON body (webhook, exec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyRendering {
    /// The body.
    pub body: serde_json::Value,
}

impl Rendering {
    /// The posts, if this is a post rendering.
    pub fn posts(&self) -> Option<&PostsRendering> {
        match self {
            Rendering::Posts(p) => Some(p),
            _ => None,
        }
    }
    /// A stable content hash (sha256 hex) over the canonical JSON, stored with every attempt.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }
}
