//! Handlebars helpers and the link tagging every channel shares.
//!
//! Helpers: `markdown` (Markdown → HTML), `md_text` (Markdown → text), `utm` (tag one URL for
//! this channel), `truncate` (by grapheme, with "…"), `count` (this network's own length),
//! `json` (a JSON literal), `hashtags` (`#a #b`, optional max).

use handlebars::{Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError, RenderErrorReason};
use unicode_segmentation::UnicodeSegmentation;

use super::count::Network;
use crate::issue::markdown;

/// How links are tagged for one channel.
#[derive(Debug, Clone)]
pub struct Utm {
    /// `utm_source`: the channel's name.
    pub source: String,
    /// `utm_medium`: email, social, syndication or webhook.
    pub medium: &'static str,
    /// `utm_campaign`: the issue slug.
    pub campaign: String,
    /// Only links to this host (the issue's own site) are tagged.
    pub host: String,
    /// False when the channel sets `utm = false`.
    pub enabled: bool,
}

impl Utm {
    /// Tag `url` if it points at the issue's own site; other links are left alone.
    pub fn tag(&self, url: &str) -> String {
        if !self.enabled {
            return url.to_string();
        }
        let Ok(mut u) = url::Url::parse(url) else { return url.to_string() };
        if u.host_str() != Some(self.host.as_str()) || u.query_pairs().any(|(k, _)| k == "utm_source") {
            return url.to_string();
        }
        u.query_pairs_mut()
            .append_pair("utm_source", &self.source)
            .append_pair("utm_medium", self.medium)
            .append_pair("utm_campaign", &self.campaign);
        u.to_string()
    }

    /// Rewrite the destinations of inline links and autolinks in Markdown source.
    pub fn tag_markdown(&self, md: &str) -> String {
        if !self.enabled {
            return md.to_string();
        }
        use pulldown_cmark::{Event, Parser, Tag};
        let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        for (ev, range) in Parser::new(md).into_offset_iter() {
            if let Event::Start(Tag::Link { dest_url, .. }) = ev {
                let tagged = self.tag(&dest_url);
                if tagged != dest_url.as_ref()
                    && let Some(pos) = md[range.clone()].rfind(dest_url.as_ref()) {
                        let start = range.start + pos;
                        edits.push((start..start + dest_url.len(), tagged));
                    }
            }
        }
        let mut out = md.to_string();
        for (r, s) in edits.into_iter().rev() {
            out.replace_range(r, &s);
        }
        out
    }
}

/// Truncate to at most `max` graphemes, ending with "…" (counted) when cut; cuts at a word
/// boundary when one is near.
pub fn truncate_graphemes(s: &str, max: usize) -> String {
    let g: Vec<&str> = s.graphemes(true).collect();
    if g.len() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut = max - 1;
    if let Some(sp) = g[..cut].iter().rposition(|x| x.chars().all(char::is_whitespace))
        && sp * 2 >= cut {
            cut = sp;
        }
    format!("{}…", g[..cut].concat().trim_end())
}

/// Parameter `i` of a helper. Strict mode covers helper arguments too: a path that names
/// nothing (`{{md_text issue.nosuch}}`) is an error, not an empty string.
fn param<'h>(h: &'h Helper<'_>, i: usize, name: &'static str) -> Result<&'h handlebars::PathAndJson<'h>, RenderError> {
    let v = h.param(i).ok_or(RenderErrorReason::ParamNotFoundForIndex(name, i))?;
    if v.is_value_missing() {
        let path = v.relative_path().cloned().unwrap_or_default();
        return Err(RenderErrorReason::Other(format!("`{name}`: the argument `{path}` is not in the context (strict mode)")).into());
    }
    Ok(v)
}

fn param_str(h: &Helper<'_>, i: usize, name: &'static str) -> Result<String, RenderError> {
    let v = param(h, i, name)?;
    Ok(match v.value() {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Register every helper on `hb` for one channel.
pub fn register(hb: &mut Handlebars<'static>, utm: Utm, network: Option<Network>) {
    hb.register_helper(
        "markdown",
        Box::new(|h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output| -> HelperResult {
            out.write(&markdown::to_html(&param_str(h, 0, "markdown")?))?;
            Ok(())
        }),
    );
    hb.register_helper(
        "md_text",
        Box::new(|h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output| -> HelperResult {
            out.write(&markdown::to_text(&param_str(h, 0, "md_text")?))?;
            Ok(())
        }),
    );
    hb.register_helper(
        "utm",
        Box::new(move |h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output| -> HelperResult {
            out.write(&utm.tag(&param_str(h, 0, "utm")?))?;
            Ok(())
        }),
    );
    hb.register_helper(
        "truncate",
        Box::new(|h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output| -> HelperResult {
            let s = param_str(h, 0, "truncate")?;
            let n = h.param(1).and_then(|v| v.value().as_u64()).ok_or(RenderErrorReason::InvalidParamType("truncate: the second parameter must be a number"))?;
            out.write(&truncate_graphemes(&s, n as usize))?;
            Ok(())
        }),
    );
    hb.register_helper(
        "count",
        Box::new(move |h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output| -> HelperResult {
            let s = param_str(h, 0, "count")?;
            let n = match network {
                Some(net) => net.count(&s),
                None => s.graphemes(true).count(),
            };
            out.write(&n.to_string())?;
            Ok(())
        }),
    );
    hb.register_helper(
        "json",
        Box::new(|h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output| -> HelperResult {
            let v = param(h, 0, "json")?;
            out.write(&serde_json::to_string(v.value()).map_err(|e| RenderErrorReason::Other(e.to_string()))?)?;
            Ok(())
        }),
    );
    hb.register_helper(
        "hashtags",
        Box::new(|h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output| -> HelperResult {
            let tags = param(h, 0, "hashtags")?.value().as_array().cloned().unwrap_or_default();
            let max = h.param(1).and_then(|v| v.value().as_u64()).unwrap_or(u64::MAX) as usize;
            let s = tags
                .iter()
                .filter_map(|t| t.as_str())
                .map(hashtag)
                .filter(|t| t.len() > 1)
                .take(max)
                .collect::<Vec<_>>()
                .join(" ");
            out.write(&s)?;
            Ok(())
        }),
    );
}

/// `#tag` from a tag: letters, digits and `_` only (spaces and dashes dropped).
pub fn hashtag(t: &str) -> String {
    let body: String = t.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect();
    format!("#{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utm() -> Utm {
        Utm { source: "x".into(), medium: "social", campaign: "w48".into(), host: "news.example.com".into(), enabled: true }
    }

    #[test]
    fn tags_only_own_site() {
        let u = utm();
        assert_eq!(u.tag("https://news.example.com/48"), "https://news.example.com/48?utm_source=x&utm_medium=social&utm_campaign=w48");
        assert_eq!(u.tag("https://other.org/a"), "https://other.org/a");
        let md = "See [the issue](https://news.example.com/48#podcasts) and [them](https://other.org/).";
        let t = u.tag_markdown(md);
        assert!(t.contains("https://news.example.com/48?utm_source=x&utm_medium=social&utm_campaign=w48#podcasts"), "{t}");
        assert!(t.contains("(https://other.org/)"));
    }

    #[test]
    fn truncation_is_by_grapheme() {
        assert_eq!(truncate_graphemes("short", 10), "short");
        let s = "👩🏽‍💻👩🏽‍💻👩🏽‍💻👩🏽‍💻";
        let t = truncate_graphemes(s, 3);
        assert_eq!(t.graphemes(true).count(), 3);
        assert!(t.ends_with('…'));
        assert_eq!(truncate_graphemes("one two three four five", 12), "one two…");
    }
}
