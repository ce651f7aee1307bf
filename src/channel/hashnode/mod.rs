//! The `hashnode` adapter: the whole issue cross-posted to a Hashnode publication as one
//! Markdown post whose `originalArticleURL` (Hashnode's canonical URL) is the issue's own URL.
//!
//! Contract (Hashnode's GraphQL API, as its own API skill `Hashnode/gql-skill` documents it:
//! `schema.graphql`, `mutations.md`, `errors-and-limits.md`, `auth-and-roles.md`): one endpoint,
//! `POST` a JSON body `{"query", "variables"}` with `Authorization: <Personal Access Token>`.
//! `publishPost(input: PublishPostInput!)` with `publicationId`, `title`, `contentMarkdown`,
//! `slug`, `subtitle`, `originalArticleURL`, `tags: [{slug, name}]`, `seriesId` (the fields the
//! 2024 schema of `Hashnode/starter-kit` and the 2026 one share) → `{"data": {"publishPost":
//! {"post": {id, slug, url, canonicalUrl}}}}`. Errors come as GraphQL `errors[]` with
//! `extensions.code`: `UNAUTHENTICATED`, `FORBIDDEN` (no role, or the publication is not on
//! the Pro plan, which every mutation needs since 2026-05), `BAD_USER_INPUT`, `NOT_FOUND`,
//! `INTERNAL_SERVER_ERROR`. Limits: 15 tags, a 100 KB request body; reads may be served from a
//! cache for ~25 s; 500 mutations a minute are a published target, "not currently enforced".
//!
//! Hashnode has no idempotency key. The post's slug is fixed per issue (the issue's `slug`;
//! `<slug>-r<n>` for a `republish`, which is a new post), so after an unknown outcome `find_existing` asks `publication(id) { post(slug) }` and takes the
//! post whose canonical URL is the issue's, before any retry.

pub mod kind;
pub use kind::{Hashnode, HashnodeConfig, MAX_REQUEST_BYTES, MAX_TAGS, is_object_id, tag_problem};

mod channel;

use std::sync::Arc;
use std::time::Duration;

pub use channel::{HashnodeAdapter, revision_of};
use serde_json::{Map, Value, json};

use crate::channel::{Adapter, BuildCtx};
use crate::config::{ChannelConfig, pick_secret};

/// The publish mutation Herald sends (asking for the id, as Hashnode's docs advise, so a
/// cached answer is never stale for it).
pub const PUBLISH_POST: &str = "mutation PublishPost($input: PublishPostInput!) { publishPost(input: $input) { post { id slug url canonicalUrl } } }";
/// The reconciliation lookup: the publication's post at this slug.
pub const POST_BY_SLUG: &str =
    "query PostBySlug($publicationId: ObjectId!, $slug: String!) { publication(id: $publicationId) { id post(slug: $slug) { id slug url canonicalUrl } } }";
/// The healthcheck: who the token is.
pub const ME: &str = "query Me { me { id username } }";

/// Build the adapter for channel `name`.
pub fn build(name: &str, cfg: &ChannelConfig, ctx: &BuildCtx) -> anyhow::Result<Arc<dyn Adapter>> {
    let ChannelConfig::Hashnode(c) = cfg else {
        anyhow::bail!("channel {name}: not a hashnode channel");
    };
    let token = ctx.secret(name, "access_token", pick_secret(&c.access_token, &c.access_token_file))?;
    let url = reqwest::Url::parse(&c.api_url).map_err(|e| anyhow::anyhow!("channel {name}: `api_url` is not a URL ({e}); e.g. `https://gql-beta.hashnode.com`"))?;
    anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "channel {name}: `api_url` must be http(s); got `{}`", url.scheme());
    anyhow::ensure!(
        is_object_id(&c.publication_id),
        "channel {name}: `publication_id` = {:?} is not a Hashnode publication id (24 hex digits, e.g. \"65a1b2c3d4e5f60718293a4b\"; the blog dashboard's URL shows it)",
        c.publication_id
    );
    if let Some(s) = &c.series_id {
        anyhow::ensure!(is_object_id(s), "channel {name}: `series_id` = {s:?} is not a Hashnode id (24 hex digits)");
    }
    let timeout = c.common.timeout_secs.map(Duration::from_secs).unwrap_or(ctx.timeout);
    Ok(Arc::new(HashnodeAdapter::new(name, c, token, timeout)))
}

/// A slug as Hashnode writes them: lowercase letters and digits joined by single `-`.
pub fn slugify(s: &str) -> String {
    let lowered: String = s.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '-' }).collect();
    lowered.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

/// A tag's slug (`PublishPostTagInput.slug`, required): the tag slugified.
pub fn tag_slug(tag: &str) -> String {
    slugify(tag)
}

/// The `PublishPostInput` Hashnode receives, from the rendered body (the template's title,
/// subtitle, slug, canonical URL, tags and Markdown parts) and the channel's own keys
/// (`publication_id`, `tags` over the issue's, `series_id`).
pub fn post_input(body: &Value, c: &HashnodeConfig) -> Result<Value, String> {
    let b = body.as_object().ok_or("the rendered body is not a JSON object")?;
    let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let markdown = match b.get("content_markdown") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for p in parts {
                out.push_str(p.as_str().ok_or("`content_markdown` parts must be strings")?);
            }
            out
        }
        _ => return Err("the rendered body has no `content_markdown` (a string, or a list of strings)".into()),
    };
    let tags: Vec<String> = match &c.tags {
        Some(t) => t.clone(),
        None => b.get("tags").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default(),
    };
    let mut i = Map::new();
    i.insert("publicationId".into(), Value::String(c.publication_id.clone()));
    i.insert("title".into(), text("title").map(Value::String).unwrap_or(Value::Null));
    if let Some(s) = text("subtitle") {
        i.insert("subtitle".into(), Value::String(s));
    }
    i.insert("contentMarkdown".into(), Value::String(markdown));
    i.insert("slug".into(), Value::String(text("slug").map(|s| slugify(&s)).unwrap_or_default()));
    i.insert("originalArticleURL".into(), text("canonical_url").map(Value::String).unwrap_or(Value::Null));
    i.insert("tags".into(), Value::Array(tags.iter().map(|t| json!({"slug": tag_slug(t), "name": t.trim()})).collect()));
    if let Some(s) = c.series_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        i.insert("seriesId".into(), Value::String(s.to_string()));
    }
    Ok(Value::Object(i))
}

/// The whole request body for `publishPost`.
pub fn publish_request(input: &Value) -> Value {
    json!({"query": PUBLISH_POST, "variables": {"input": input}})
}

/// What Hashnode surely refuses, checked before anything is sent: no title, no content, more
/// than 15 tags (or a tag without a slug), a request body over its 100 KB limit, a title over
/// `max_title_chars` when set; and what Herald needs to never post twice: a slug and the
/// canonical URL.
pub fn preflight(input: &Value, c: &HashnodeConfig) -> Result<(), String> {
    let title = input["title"].as_str().unwrap_or_default();
    if title.is_empty() {
        return Err("the post has no title (`title: String!` is required); give the issue a `title`".into());
    }
    if let Some(max) = c.max_title_chars {
        let n = title.chars().count();
        if n as u64 > max {
            return Err(format!("the title has {n} characters; this channel's `max_title_chars` is {max} (shorten it, or set `subject` in the issue's [channels.<name>])"));
        }
    }
    if input["contentMarkdown"].as_str().unwrap_or_default().trim().is_empty() {
        return Err("the post has no content (`contentMarkdown: String!` is required)".into());
    }
    if input["slug"].as_str().unwrap_or_default().is_empty() {
        return Err("the post has no slug (the issue's `slug`, letters and digits): Herald finds the post again by it after a lost answer".into());
    }
    if input["originalArticleURL"].as_str().unwrap_or_default().is_empty() {
        return Err("the post has no originalArticleURL (the issue's `url`): without it the cross-post takes the search credit, and Herald cannot recognise it after a lost answer".into());
    }
    let names: Vec<String> = input["tags"].as_array().map(|a| a.iter().filter_map(|t| t["name"].as_str()).map(str::to_string).collect()).unwrap_or_default();
    if let Some(p) = tag_problem(&names) {
        return Err(format!("{p}; set `tags = [..]` (at most {MAX_TAGS}) in the channel's table, or change the issue's tags"));
    }
    let size = serde_json::to_vec(&publish_request(input)).map(|v| v.len()).unwrap_or(usize::MAX);
    if size as u64 > c.max_request_bytes {
        return Err(format!(
            "the request is {size} bytes; Hashnode takes at most {} (its 100 KB body limit): shorten the issue, or move long sections to the site",
            c.max_request_bytes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> HashnodeConfig {
        toml::from_str(&format!("access_token = \"${{K}}\"\npublication_id = \"65a1b2c3d4e5f60718293a4b\"\n{extra}")).unwrap()
    }

    #[test]
    fn the_input_joins_the_parts_and_adds_the_channels_keys() {
        let body = json!({"title": " T ", "subtitle": "S", "slug": "2026 Week 48", "canonical_url": "https://n.example/1",
            "tags": ["Rust", "Web Dev"], "content_markdown": ["a", "\n\n## ", "S", "\n\nb"]});
        let i = post_input(&body, &cfg("series_id = \"65a1b2c3d4e5f60718293a4c\"")).unwrap();
        assert_eq!(
            i,
            json!({"publicationId": "65a1b2c3d4e5f60718293a4b", "title": "T", "subtitle": "S", "contentMarkdown": "a\n\n## S\n\nb",
                "slug": "2026-week-48", "originalArticleURL": "https://n.example/1",
                "tags": [{"slug": "rust", "name": "Rust"}, {"slug": "web-dev", "name": "Web Dev"}], "seriesId": "65a1b2c3d4e5f60718293a4c"})
        );
        let i = post_input(&body, &cfg("tags = [\"one\"]")).unwrap();
        assert_eq!(i["tags"], json!([{"slug": "one", "name": "one"}]));
        assert!(i.get("seriesId").is_none());
    }

    #[test]
    fn preflight_refuses_what_hashnode_refuses() {
        let c = cfg("");
        let ok = post_input(&json!({"title": "T", "slug": "s", "canonical_url": "https://n.example/1", "tags": ["a"], "content_markdown": "m"}), &c).unwrap();
        assert_eq!(preflight(&ok, &c), Ok(()));
        let mut t = ok.clone();
        t["tags"] = Value::Array((0..16).map(|n| json!({"slug": format!("t{n}"), "name": format!("t{n}")})).collect());
        assert!(preflight(&t, &c).unwrap_err().contains("16 tags"));
        let mut t = ok.clone();
        t["tags"] = json!([{"slug": "", "name": "##"}]);
        assert!(preflight(&t, &c).unwrap_err().contains("no slug"));
        let mut t = ok.clone();
        t["contentMarkdown"] = json!("x".repeat(MAX_REQUEST_BYTES));
        assert!(preflight(&t, &c).unwrap_err().contains("100 KB"));
        let mut t = ok.clone();
        t["title"] = json!("x".repeat(300));
        assert_eq!(preflight(&t, &c), Ok(()), "no documented title limit: no check by default");
        assert!(preflight(&t, &cfg("max_title_chars = 250")).unwrap_err().contains("250"));
        for key in ["title", "originalArticleURL"] {
            let mut t = ok.clone();
            t[key] = Value::Null;
            assert!(preflight(&t, &c).is_err(), "{key}");
        }
        let mut t = ok;
        t["slug"] = json!("");
        assert!(preflight(&t, &c).unwrap_err().contains("slug"));
    }

    #[test]
    fn slugs_and_ids() {
        assert_eq!(slugify("Signal & Noise, Week 48!"), "signal-noise-week-48");
        assert!(is_object_id("65a1b2c3d4e5f60718293a4b"));
        assert!(!is_object_id("herald") && !is_object_id("65a1b2c3d4e5f60718293a4g"));
    }
}
