//! Unit tests: the draft body shape.

use std::time::Duration;

use serde_json::{Value, json};

use super::SubstackAdapter;
use crate::config::{SecretString, SubstackConfig};
use crate::render::ArticleRendering;

fn adapter(extra: &str) -> SubstackAdapter {
    let cfg: SubstackConfig = toml::from_str(&format!("api_base = \"https://pub.example.com/\"\n{extra}")).expect("config");
    SubstackAdapter::new("substack", &cfg, SecretString::new("sid"), Duration::from_secs(5))
}

#[test]
fn draft_body_encodes_the_doc_as_a_string() {
    let doc = crate::render::prosemirror::markdown_to_doc("Hello **you**");
    let a = ArticleRendering {
        title: "Issue 42".into(),
        subtitle: "The weekly".into(),
        html: "<p>Hello <strong>you</strong></p>".into(),
        doc: Some(doc.clone()),
        slug: Some("issue-42".into()),
        canonical_url: None,
    };
    let body = adapter("user_id = 12345\naudience = \"only_free\"").draft_body(&a, 12345).unwrap();
    let Value::String(s) = &body["draft_body"] else { panic!("draft_body must be a string: {body}") };
    assert_eq!(serde_json::from_str::<Value>(s).unwrap(), doc);
    assert_eq!(body["draft_bylines"], json!([{"id": 12345, "is_guest": false}]));
    assert_eq!(body["audience"], "only_free");
    assert_eq!(body["draft_title"], "Issue 42");
    assert_eq!(body["draft_subtitle"], "The weekly");
    // Bylines are never empty: `POST /drafts` requires the author.
    let fetched = adapter("").draft_body(&a, 678).unwrap();
    assert_eq!(fetched["draft_bylines"], json!([{"id": 678, "is_guest": false}]));
}
