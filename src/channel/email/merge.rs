//! `[[merge]]` tags: parsed once per mailing, filled per recipient.
//!
//! A tag is `[[name]]` where the name is letters, digits, `_`, `-` or `.`, optionally padded
//! with spaces; anything else between `[[` and `]]` is left as written. Names are matched
//! case-insensitively with spaces turned into `_` (the same normalisation the CSV import applies
//! to column names). A name with no value is filled with the empty string.

use std::collections::BTreeMap;

/// A template split into literal text and tags, so filling it is one pass with no searching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeTemplate {
    parts: Vec<Part>,
    /// Sum of the literal lengths: the starting capacity of a filled copy.
    literal_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Tag(String),
}

/// Normalise a variable or column name: trimmed, lowercase, inner spaces as `_`.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase().split_whitespace().collect::<Vec<_>>().join("_")
}

fn is_tag_name(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
}

impl MergeTemplate {
    /// Split `src` into text and tags.
    pub fn parse(src: &str) -> Self {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        while let Some(open) = rest.find("[[") {
            let after = &rest[open + 2..];
            match after.find("]]") {
                Some(close) if is_tag_name(&after[..close]) => {
                    text.push_str(&rest[..open]);
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Tag(normalize_name(&after[..close])));
                    rest = &after[close + 2..];
                }
                _ => {
                    // Not a tag: keep the brackets and look further on.
                    text.push_str(&rest[..open + 2]);
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let literal_len = parts.iter().map(|p| if let Part::Text(t) = p { t.len() } else { 0 }).sum();
        Self { parts, literal_len }
    }

    /// The tag names used, in order of first use.
    pub fn tags(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.parts {
            if let Part::Tag(t) = p
                && !seen.contains(&t.as_str())
            {
                seen.push(t);
            }
        }
        seen
    }

    /// Fill the tags from `vars` (keys already normalised). With `escape_html`, values are
    /// HTML-escaped (for the HTML part); the template's own text is never touched.
    pub fn fill(&self, vars: &dyn Fn(&str) -> Option<String>, escape_html: bool) -> String {
        let mut out = String::with_capacity(self.literal_len + 64);
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Tag(name) => {
                    if let Some(v) = vars(name) {
                        if escape_html {
                            push_escaped(&mut out, &v);
                        } else {
                            out.push_str(&v);
                        }
                    }
                }
            }
        }
        out
    }

    /// Fill from a map.
    pub fn fill_map(&self, vars: &BTreeMap<String, String>, escape_html: bool) -> String {
        self.fill(&|k| vars.get(k).cloned(), escape_html)
    }
}

/// A [`MergeTemplate`] whose literal runs are quoted-printable encoded once per mailing; only the
/// values are encoded per recipient (see [`super::qp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QpTemplate {
    parts: Vec<QpPart>,
    encoded_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum QpPart {
    Encoded(Vec<u8>),
    Tag(String),
}

impl MergeTemplate {
    /// Encode the literal runs.
    pub fn to_qp(&self) -> QpTemplate {
        let parts: Vec<QpPart> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => QpPart::Encoded(super::qp::encode(t)),
                Part::Tag(n) => QpPart::Tag(n.clone()),
            })
            .collect();
        let encoded_len = parts.iter().map(|p| if let QpPart::Encoded(e) = p { e.len() } else { 0 }).sum();
        QpTemplate { parts, encoded_len }
    }
}

impl QpTemplate {
    /// Append the filled, encoded body to `out`. With `escape_html`, values are HTML-escaped
    /// before encoding.
    pub fn fill_into(&self, out: &mut Vec<u8>, vars: &dyn Fn(&str) -> Option<String>, escape_html: bool) {
        out.reserve(self.encoded_len + 128);
        let mut escaped = String::new();
        for p in &self.parts {
            match p {
                QpPart::Encoded(e) => out.extend_from_slice(e),
                QpPart::Tag(name) => {
                    if let Some(v) = vars(name) {
                        let v = if escape_html {
                            escaped.clear();
                            push_escaped(&mut escaped, &v);
                            escaped.as_str()
                        } else {
                            v.as_str()
                        };
                        let mut w = super::qp::QpWriter::new(out);
                        w.write(v.as_bytes());
                        w.finish();
                    }
                }
            }
        }
    }
}

pub use crate::render::html::{escape as escape_html, push_escaped};

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("name", "Ana <b>&"), ("email", "ana@example.org"), ("first_name", "Ana"), ("unsubscribe_url", "https://x.test/u/t?a=1&b=2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_known_tags_and_empties_unknown_ones() {
        let t = MergeTemplate::parse("Hi [[name]], ([[ First Name ]]) [[missing]]!");
        assert_eq!(t.fill_map(&vars(), false), "Hi Ana <b>&, (Ana) !");
        assert_eq!(t.tags(), ["name", "first_name", "missing"]);
    }

    #[test]
    fn html_values_are_escaped_but_the_template_is_not() {
        let t = MergeTemplate::parse(r#"<p>Hi [[NAME]]</p><a href="[[unsubscribe_url]]">x</a>"#);
        assert_eq!(
            t.fill_map(&vars(), true),
            r#"<p>Hi Ana &lt;b&gt;&amp;</p><a href="https://x.test/u/t?a=1&amp;b=2">x</a>"#
        );
    }

    #[test]
    fn brackets_that_are_not_tags_stay() {
        let src = "a [[not a tag!]] b [[ ]] c [[x]] [[ unclosed";
        let t = MergeTemplate::parse(src);
        let mut v = BTreeMap::new();
        v.insert("x".to_string(), "X".to_string());
        assert_eq!(t.fill_map(&v, false), "a [[not a tag!]] b [[ ]] c X [[ unclosed");
    }

    #[test]
    fn a_template_without_tags_is_one_literal() {
        let t = MergeTemplate::parse("plain text");
        assert!(t.tags().is_empty());
        assert_eq!(t.fill_map(&BTreeMap::new(), true), "plain text");
    }

    #[test]
    fn encoded_fill_decodes_to_the_plain_fill() {
        let t = MergeTemplate::parse("<p>Hi [[name]],</p>\n.dot [[missing]] = [[unsubscribe_url]]\n");
        for escape in [false, true] {
            let mut out = Vec::new();
            t.to_qp().fill_into(&mut out, &|k| vars().get(k).cloned(), escape);
            let decoded = quoted_printable::decode(&out, quoted_printable::ParseMode::Robust).unwrap();
            assert_eq!(String::from_utf8(decoded).unwrap(), t.fill_map(&vars(), escape).replace('\n', "\r\n"));
        }
    }

    #[test]
    fn names_normalise() {
        assert_eq!(normalize_name("  First   Name "), "first_name");
        assert_eq!(normalize_name("Company"), "company");
    }
}
