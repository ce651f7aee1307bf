//! The `devto` adapter: the whole issue cross-posted to dev.to (or any Forem community) as one
//! Markdown article whose `canonical_url` is the issue's own URL, so search credit stays home.
//!
//! Contract (Forem API v1, `Api::V1::ArticlesController`): `POST {api_base}/api/articles` with
//! `api-key` and `Accept: application/vnd.forem.api-v1+json`, body `{"article": {title,
//! body_markdown, published, canonical_url, description, tags: [..], series, main_image}}` →
//! `201` with `{id, url, slug, canonical_url, …}`. Errors: `401 {"error":"unauthorized"}`,
//! `422 {"error": "<sentence>", "status": 422}` (e.g. "Tag list exceed the maximum of 4 tags"),
//! `429` with `Retry-After` (Forem's `RateLimitChecker` on article creation).
//!
//! Forem has no idempotency key. After an unknown outcome, `find_existing` reads the author's
//! own articles (`GET /api/articles/me/all`, drafts included, newest first) and matches the
//! canonical URL and title, so a retry never makes a second article.

pub mod kind;
pub use kind::Devto;

mod channel;

use std::sync::Arc;
use std::time::Duration;

pub use channel::DevtoAdapter;
use serde_json::{Map, Value};

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};
pub use kind::{DevtoConfig, MAX_TAGS, MAX_TITLE_CHARS, tag_problem};

/// The `Accept` header Forem's v1 API requires (without it the request is served by v0, which is
/// deprecated).
pub const ACCEPT_V1: &str = "application/vnd.forem.api-v1+json";

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Devto(c) = cfg else {
        anyhow::bail!("channel {name}: not a devto channel");
    };
    let key = ctx.secret(name, "api_key", pick_secret(&c.api_key, &c.api_key_file))?;
    let base = reqwest::Url::parse(&c.api_base).map_err(|e| anyhow::anyhow!("channel {name}: `api_base` is not a URL ({e}); e.g. `https://dev.to`"))?;
    anyhow::ensure!(matches!(base.scheme(), "http" | "https"), "channel {name}: `api_base` must be http(s); got `{}`", base.scheme());
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(DevtoAdapter::new(name, c, key, timeout)))
}

/// The `article` object Forem receives, from the rendered body (the template's title,
/// description, canonical URL, image, tags and Markdown parts) and the channel's own keys
/// (`published`, `tags` over the issue's, `series`). Rendering stays in the template: this only
/// joins the Markdown parts and adds the channel's settings.
pub fn article(body: &Value, c: &DevtoConfig) -> Result<Value, String> {
    let b = body.as_object().ok_or("the rendered body is not a JSON object")?;
    let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let markdown = match b.get("body_markdown") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for p in parts {
                out.push_str(p.as_str().ok_or("`body_markdown` parts must be strings")?);
            }
            out
        }
        _ => return Err("the rendered body has no `body_markdown` (a string, or a list of strings)".into()),
    };
    let tags: Vec<String> = match &c.tags {
        Some(t) => t.clone(),
        None => b
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
    };
    let mut a = Map::new();
    a.insert("title".into(), text("title").map(Value::String).unwrap_or(Value::Null));
    a.insert("body_markdown".into(), Value::String(markdown));
    a.insert("published".into(), Value::Bool(c.published));
    a.insert("canonical_url".into(), text("canonical_url").map(Value::String).unwrap_or(Value::Null));
    if let Some(d) = text("description") {
        a.insert("description".into(), Value::String(d));
    }
    a.insert("tags".into(), Value::from(tags));
    if let Some(s) = c.series.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        a.insert("series".into(), Value::String(s.to_string()));
    }
    // Forem takes an image URL; a path relative to the issue (what link cards use) is no use
    // to it, so only an absolute http(s) URL is sent.
    if let Some(img) = text("main_image").filter(|u| u.starts_with("https://") || u.starts_with("http://")) {
        a.insert("main_image".into(), Value::String(img));
    }
    Ok(Value::Object(a))
}

/// Forem's largest `body_markdown` (`Article`: `bytesize: { maximum: 800.kilobytes }`).
pub const MAX_BODY_BYTES: usize = 800 * 1024;

/// What Forem surely refuses with a 422, checked before anything is sent: no title, a title
/// over 128 characters, a body over 800 KB, no canonical URL (Herald's reconciliation needs it), or tags Forem
/// refuses ([`tag_problem`]).
pub fn preflight(article: &Value) -> Result<(), String> {
    let title = article["title"].as_str().unwrap_or_default();
    if title.is_empty() {
        return Err("the article has no title (Forem answers 422 \"Title can't be blank\"); give the issue a `title`".into());
    }
    let n = title.chars().count();
    if n > MAX_TITLE_CHARS {
        return Err(format!("the title has {n} characters; dev.to takes at most {MAX_TITLE_CHARS} (shorten it, or set `[channels.<name>] subject` in the issue)"));
    }
    if article["canonical_url"].as_str().unwrap_or_default().is_empty() {
        return Err("the article has no canonical_url (the issue's `url`): without it the cross-post takes the search credit, and Herald cannot find it again after a lost answer".into());
    }
    let size = article["body_markdown"].as_str().unwrap_or_default().len();
    if size > MAX_BODY_BYTES {
        return Err(format!("the Markdown body is {size} bytes; dev.to takes at most {MAX_BODY_BYTES} (800 KB)"));
    }
    let tags: Vec<String> = article["tags"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default();
    if let Some(p) = tag_problem(&tags) {
        return Err(format!("{p}; set `tags = [..]` (at most {MAX_TAGS}, letters and digits) in the channel's table, or change the issue's tags"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(extra: &str) -> DevtoConfig {
        toml::from_str(&format!("api_key = \"${{K}}\"\n{extra}")).unwrap()
    }

    #[test]
    fn the_article_joins_the_parts_and_adds_the_channels_keys() {
        let body = json!({"title": " T ", "description": "D", "canonical_url": "https://n.example/1", "main_image": "img/a.png",
            "tags": ["rust", "news"], "body_markdown": ["a", "\n\n## ", "S", "\n\nb"]});
        let a = article(&body, &cfg("series = \"Weekly\"\npublished = false")).unwrap();
        assert_eq!(
            a,
            json!({"title": "T", "description": "D", "canonical_url": "https://n.example/1", "tags": ["rust", "news"],
                "body_markdown": "a\n\n## S\n\nb", "published": false, "series": "Weekly"})
        );
        // The channel's tags replace the issue's; an absolute image URL is kept.
        let body = json!({"title": "T", "canonical_url": "u", "main_image": "https://i.example/a.png", "tags": ["x"], "body_markdown": "m"});
        let a = article(&body, &cfg("tags = [\"one\", \"two\"]")).unwrap();
        assert_eq!(a["tags"], json!(["one", "two"]));
        assert_eq!(a["main_image"], json!("https://i.example/a.png"));
        assert_eq!(a["published"], json!(true));
    }

    #[test]
    fn preflight_refuses_what_forem_refuses() {
        let ok = json!({"title": "T", "canonical_url": "https://n.example/1", "tags": ["a", "b", "c", "d"]});
        assert_eq!(preflight(&ok), Ok(()));
        let mut five = ok.clone();
        five["tags"] = json!(["a", "b", "c", "d", "e"]);
        assert!(preflight(&five).unwrap_err().contains("5 tags"));
        for bad in ["web-dev", "two words", "#rust", "c++", ""] {
            let mut t = ok.clone();
            t["tags"] = json!([bad]);
            assert!(preflight(&t).is_err(), "{bad:?} must be refused");
        }
        let mut t = ok.clone();
        t["tags"] = json!(["日本語", "CommsTech"]);
        assert_eq!(preflight(&t), Ok(()), "Ruby's [[:alnum:]] takes any letter");
        let mut t = ok.clone();
        t["tags"] = json!(["a".repeat(31)]);
        assert!(preflight(&t).unwrap_err().contains("30"));
        let mut t = ok.clone();
        t["title"] = json!("x".repeat(129));
        assert!(preflight(&t).unwrap_err().contains("128"));
        let mut t = ok.clone();
        t["title"] = Value::Null;
        assert!(preflight(&t).unwrap_err().contains("no title"));
        let mut t = ok;
        t["canonical_url"] = Value::Null;
        assert!(preflight(&t).unwrap_err().contains("canonical_url"));
    }
}
