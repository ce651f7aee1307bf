use std::time::Duration;

use serde_json::json;

use super::WordpressAdapter;
use super::kind::WordpressConfig;
use crate::config::SecretString;
use crate::render::ArticleRendering;

fn adapter(extra: &str) -> WordpressAdapter {
    let cfg: WordpressConfig = toml::from_str(&format!(
        "site_url = \"https://blog.example.com/\"\nusername = \"ana\"\napplication_password = \"${{WP}}\"\n{extra}"
    ))
    .expect("config parses");
    WordpressAdapter::new("wp", &cfg, SecretString::new("abcd efgh ijkl mnop qrst uvwx"), Duration::from_secs(5))
}

fn article(subtitle: &str) -> ArticleRendering {
    ArticleRendering { title: "T".into(), subtitle: subtitle.into(), html: "<p>B</p>".into(), doc: None, slug: Some("issue-1".into()) }
}

#[test]
fn post_body_carries_title_content_status_slug_and_excerpt() {
    assert_eq!(
        adapter("").post_body(&article("Hook.")),
        json!({"title": "T", "content": "<p>B</p>", "status": "publish", "slug": "issue-1", "excerpt": "Hook."})
    );
}

#[test]
fn draft_status_and_no_empty_excerpt() {
    let body = adapter("status = \"draft\"").post_body(&article(""));
    assert_eq!(body["status"], "draft");
    assert!(body.get("excerpt").is_none(), "{body}");
}

#[test]
fn an_unknown_status_is_refused_by_serde() {
    let r: Result<WordpressConfig, _> =
        toml::from_str("site_url = \"https://b.example\"\nusername = \"a\"\napplication_password = \"${WP}\"\nstatus = \"pending\"");
    assert!(r.is_err());
}
