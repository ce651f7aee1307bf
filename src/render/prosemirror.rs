//! Markdown → the ProseMirror document Substack's editor stores. (Placeholder until the
//! Substack adapter's conversion lands: a single paragraph holding the text.)

/// Convert Markdown to a ProseMirror `doc`.
pub fn markdown_to_doc(md: &str) -> serde_json::Value {
    serde_json::json!({"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": md}]}]})
}
