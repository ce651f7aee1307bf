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
    ArticleRendering { title: "T".into(), subtitle: subtitle.into(), html: "<p>B</p>".into(), doc: None, slug: Some("issue-1".into()), canonical_url: None }
}

#[test]
fn post_body_carries_title_content_status_slug_and_excerpt() {
    assert_eq!(
        adapter("").post_body(&article("Hook.")),
        json!({"title": "T", "content": "<p>B</p>", "status": "publish", "slug": "issue-1", "excerpt": "Hook."})
    );
}

#[test]
fn categories_and_tags_go_as_id_lists() {
    let body = adapter("categories = [3]\ntags = [14, 15]").post_body(&article("H"));
    assert_eq!(body["categories"], json!([3]));
    assert_eq!(body["tags"], json!([14, 15]));
}

#[test]
fn draft_status_and_no_empty_excerpt() {
    let body = adapter("status = \"draft\"").post_body(&article(""));
    assert_eq!(body["status"], "draft");
    assert!(body.get("excerpt").is_none(), "{body}");
    assert!(body.get("categories").is_none() && body.get("tags").is_none(), "{body}");
}

#[test]
fn an_unknown_status_is_refused_by_serde() {
    let r: Result<WordpressConfig, _> =
        toml::from_str("site_url = \"https://b.example\"\nusername = \"a\"\napplication_password = \"${WP}\"\nstatus = \"pending\"");
    assert!(r.is_err());
}

#[test]
fn categories_must_be_ids_and_the_password_is_required() {
    let text = "[channels.blog]\ntype = \"wordpress\"\nsite_url = \"https://b.example\"\nusername = \"ana\"\ncategories = [\"news\", 3]\ntags = [0]\n";
    let errs = crate::config::validate::validate(std::path::Path::new("h.toml"), text).expect_err("refused");
    let shown = format!("{errs:?}");
    assert!(shown.contains("channels.blog.categories") && shown.contains("an id on the service"), "{shown}");
    assert!(shown.contains("channels.blog.tags"), "{shown}");
    assert!(shown.contains("channels.blog.application_password"), "{shown}");
    let ok = "[channels.blog]\ntype = \"wordpress\"\nsite_url = \"https://b.example\"\nusername = \"ana\"\napplication_password = \"${WP}\"\ncategories = [3]\ntags = [14, 15]\n";
    crate::config::validate::validate(std::path::Path::new("h.toml"), ok).expect("valid");
}
