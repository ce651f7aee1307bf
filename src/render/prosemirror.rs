//! Markdown → ProseMirror JSON, the document shape Substack's editor stores in `draft_body`.
//!
//! Pure and deterministic. Every node and mark name is one python-substack's `nodes.py` uses
//! (the only published record of Substack's schema): `doc`, `paragraph`, `heading`
//! (`attrs.level`), `text` (marks `strong`, `em`, `link` with `attrs.href`, `code`),
//! `blockquote`, `bullet_list`, `ordered_list` (`attrs.order` when it doesn't start at 1),
//! `list_item`, `horizontal_rule` and `codeBlock` (`attrs.language` when the fence names one).
//! A hard line break has no node there (python-substack emits none, and other clients
//! disagree on its name), so it ends the paragraph and the next line starts a new one.
//!
//! Markdown with no ProseMirror counterpart degrades to text rather than vanishing:
//! an image becomes its alt text linked to the image URL, a table row becomes a paragraph
//! of `a | b | c`, a footnote is `[label]` in the text and `[label] …` where it is defined,
//! strikethrough keeps its text without a mark, and an HTML block keeps its visible text
//! (comments are dropped). Empty text nodes are never emitted (ProseMirror rejects them),
//! and adjacent text with the same marks is merged.

use std::sync::LazyLock;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use regex::Regex;
use serde_json::{Map, Value, json};

/// The same Markdown dialect the issue's HTML is rendered with (src/issue/markdown.rs).
fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_SMART_PUNCTUATION
}

/// Convert Markdown to a ProseMirror document (`{"type":"doc","content":[…]}`).
pub fn markdown_to_doc(md: &str) -> Value {
    events_to_doc(Parser::new_ext(md, options()))
}

/// [`markdown_to_doc`] and `markdown::to_html` of the same Markdown, parsed once: an article
/// needs both, and the parse is a third of the cost of either.
pub fn markdown_to_html_and_doc(md: &str) -> (String, Value) {
    let events: Vec<Event<'_>> = Parser::new_ext(md, options()).collect();
    let mut html = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.iter().cloned());
    (html, events_to_doc(events))
}

/// The document of an event stream of [`options`]' dialect.
fn events_to_doc<'a>(events: impl IntoIterator<Item = Event<'a>>) -> Value {
    let mut b = Builder::new();
    for ev in events {
        b.event(ev);
    }
    b.finish()
}

/// The length of `serde_json::to_string(&doc.to_string())`: the document's JSON sent as a JSON
/// string (Substack's `draft_body`), measured without building either string (a 1,000-section
/// issue's document is megabytes). Compact JSON holds no raw control character (serde_json
/// escapes them inside strings), so encoding it again only escapes `"` and `\` and adds the
/// two quotes.
pub fn encoded_twice_len(doc: &Value) -> usize {
    // Counted from the document itself, not by serialising it (for 1,000 sections, 51 M
    // instructions): serde_json's compact output is fixed by the value, byte for byte.
    2 + twice(doc)
}

/// The bytes `v`'s compact JSON takes once escaped again inside a JSON string.
fn twice(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(b) => {
            if *b {
                4
            } else {
                5
            }
        }
        // Digits, `-`, `.`, `e`, `+`: nothing to escape. `Display` is serde_json's own output.
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => string_twice(s),
        // Brackets, and a `,` between items (and a `:` after each key).
        Value::Array(a) => 2 + a.len().saturating_sub(1) + a.iter().map(twice).sum::<usize>(),
        Value::Object(m) => 2 + m.len().saturating_sub(1) + m.iter().map(|(k, v)| string_twice(k) + 1 + twice(v)).sum::<usize>(),
    }
}

/// A JSON string, quotes included, escaped again. serde_json escapes `"` and `\\` (then each
/// is 2 bytes, `\\"` and `\\\\`, so 4 once escaped again), `\\b \\f \\n \\r \\t` (3 once
/// escaped again: the backslash doubles) and any other byte below 0x20 as `\\u00XX` (7); it
/// leaves every other byte, UTF-8 included, as it is. The quotes are `\\"` each.
fn string_twice(s: &str) -> usize {
    4 + s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' => 3,
                0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
                0..=0x1f => 6,
                _ => 0,
            })
            .sum::<usize>()
}

/// One open block node while the event stream is walked.
struct Open {
    kind: &'static str,
    attrs: Option<Value>,
    content: Vec<Value>,
    /// Opened by the builder (inline content in a container), not by the Markdown.
    implicit: bool,
}

impl Open {
    fn new(kind: &'static str, attrs: Option<Value>) -> Self {
        Self { kind, attrs, content: Vec::new(), implicit: false }
    }

    fn into_value(self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.kind.into()));
        if let Some(a) = self.attrs {
            m.insert("attrs".into(), a);
        }
        let mut content = self.content;
        // ProseMirror: list_item and blockquote need at least one block.
        if content.is_empty() && matches!(self.kind, "list_item" | "blockquote") {
            content.push(json!({"type": "paragraph"}));
        }
        if !content.is_empty() {
            m.insert("content".into(), Value::Array(content));
        }
        Value::Object(m)
    }
}

struct Builder {
    stack: Vec<Open>,
    marks: Vec<Value>,
    /// Inside a fenced or indented code block: text is taken verbatim, without marks.
    in_code: bool,
    /// Collecting an HTML block's raw text.
    html: Option<String>,
    /// For each open image: did its alt text produce anything?
    images: Vec<(String, bool)>,
    /// Text to put in front of the next inline text (a footnote definition's label).
    prefix: Option<String>,
    /// Cells seen in the current table row.
    cells: usize,
}

fn heading_level(l: HeadingLevel) -> u8 {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// Blocks that hold inline content directly.
fn holds_inline(kind: &str) -> bool {
    matches!(kind, "paragraph" | "heading" | "codeBlock")
}

impl Builder {
    fn new() -> Self {
        Self {
            stack: vec![Open::new("doc", None)],
            marks: Vec::new(),
            in_code: false,
            html: None,
            images: Vec::new(),
            prefix: None,
            cells: 0,
        }
    }

    fn top(&mut self) -> &mut Open {
        self.stack.last_mut().expect("the doc node is never popped before finish")
    }

    /// Pop the top node and append it to its parent.
    fn close(&mut self) {
        if self.stack.len() <= 1 {
            return;
        }
        let node = self.stack.pop().expect("checked above");
        let v = node.into_value();
        self.top().content.push(v);
    }

    /// Close an implicit paragraph left open on top.
    fn close_implicit(&mut self) {
        while self.stack.len() > 1 && self.top().implicit {
            self.close();
        }
    }

    /// Open a block node (closing any implicit paragraph first).
    fn open(&mut self, kind: &'static str, attrs: Option<Value>) {
        self.close_implicit();
        self.stack.push(Open::new(kind, attrs));
    }

    /// Close up to and including the nearest open node of `kind`.
    fn end(&mut self, kind: &str) {
        if !self.stack.iter().skip(1).any(|o| o.kind == kind) {
            return;
        }
        while self.stack.len() > 1 {
            let done = self.top().kind == kind;
            self.close();
            if done {
                break;
            }
        }
    }

    /// Make sure the top node takes inline content.
    fn inline_target(&mut self) {
        if !holds_inline(self.top().kind) {
            let mut p = Open::new("paragraph", None);
            p.implicit = true;
            self.stack.push(p);
        }
    }

    fn push_text(&mut self, text: &str, extra_mark: Option<Value>) {
        if text.is_empty() {
            return;
        }
        self.inline_target();
        let prefix = self.prefix.take();
        // The marks this text carries: the open ones and `extra_mark`, none inside code.
        let (open, extra): (&[Value], Option<&Value>) = if self.in_code { (&[], None) } else { (&self.marks, extra_mark.as_ref()) };
        let same_marks = |m: &[Value]| m.len() == open.len() + usize::from(extra.is_some()) && m[..open.len()] == *open && extra.is_none_or(|e| m[open.len()] == *e);
        if let Some(img) = self.images.last_mut() {
            img.1 = true;
        }
        let top = self.stack.last_mut().expect("the doc node is never popped before finish");
        // Merge with the previous text node when the marks agree.
        if let Some(Value::Object(last)) = top.content.last_mut() {
            let marks_agree = match last.get("marks") {
                Some(Value::Array(m)) => same_marks(m),
                Some(_) => false,
                None => same_marks(&[]),
            };
            if last.get("type").and_then(Value::as_str) == Some("text") && marks_agree
                && let Some(Value::String(t)) = last.get_mut("text") {
                    if let Some(p) = &prefix {
                        t.push_str(p);
                    }
                    t.push_str(text);
                    return;
                }
        }
        let text = match prefix {
            Some(p) => p + text,
            None => text.to_string(),
        };
        let mut node = Map::new();
        node.insert("type".into(), Value::String("text".into()));
        node.insert("text".into(), Value::String(text));
        if !open.is_empty() || extra.is_some() {
            let mut marks = Vec::with_capacity(open.len() + 1);
            marks.extend_from_slice(open);
            marks.extend(extra.cloned());
            node.insert("marks".into(), Value::Array(marks));
        }
        top.content.push(Value::Object(node));
    }

    /// A hard line break: end the paragraph and go on in a new one (a space in a heading).
    fn line_break(&mut self) {
        if self.in_code {
            self.push_text("\n", None);
            return;
        }
        self.inline_target();
        if self.top().kind != "paragraph" {
            self.push_text(" ", None);
            return;
        }
        let implicit = self.top().implicit;
        self.close();
        let mut p = Open::new("paragraph", None);
        p.implicit = implicit;
        self.stack.push(p);
    }

    fn event(&mut self, ev: Event<'_>) {
        if let Some(buf) = self.html.as_mut() {
            match ev {
                Event::Html(t) | Event::Text(t) => {
                    buf.push_str(&t);
                    return;
                }
                Event::End(TagEnd::HtmlBlock) => {}
                _ => return,
            }
        }
        match ev {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end_tag(tag),
            Event::Text(t) => self.push_text(&t, None),
            Event::Code(t) => self.push_text(&t, Some(json!({"type": "code"}))),
            Event::InlineMath(t) | Event::DisplayMath(t) => self.push_text(&t, Some(json!({"type": "code"}))),
            Event::SoftBreak => self.push_text(" ", None),
            Event::HardBreak => self.line_break(),
            Event::Rule => {
                self.close_implicit();
                self.top().content.push(json!({"type": "horizontal_rule"}));
            }
            Event::FootnoteReference(label) => self.push_text(&format!("[{label}]"), None),
            Event::InlineHtml(h) => {
                let tag = h.trim().to_ascii_lowercase();
                if tag.starts_with("<br") {
                    self.line_break();
                }
                // Other inline tags carry no text of their own; the text between them arrives as Text.
            }
            Event::Html(h) => {
                // Raw HTML outside an HTML block (rare): keep its visible text.
                let t = visible_text(&h);
                if !t.is_empty() {
                    self.push_text(&t, None);
                }
            }
            Event::TaskListMarker(done) => self.push_text(if done { "[x] " } else { "[ ] " }, None),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => self.open("paragraph", None),
            Tag::Heading { level, .. } => self.open("heading", Some(json!({"level": heading_level(level)}))),
            Tag::BlockQuote(_) => self.open("blockquote", None),
            Tag::CodeBlock(kind) => {
                let attrs = match kind {
                    CodeBlockKind::Fenced(lang) => {
                        let lang = lang.split_whitespace().next().unwrap_or("").to_string();
                        (!lang.is_empty()).then(|| json!({"language": lang}))
                    }
                    CodeBlockKind::Indented => None,
                };
                self.open("codeBlock", attrs);
                self.in_code = true;
            }
            Tag::HtmlBlock => {
                self.close_implicit();
                self.html = Some(String::new());
            }
            Tag::List(Some(start)) => self.open("ordered_list", (start != 1).then(|| json!({"order": start}))),
            Tag::List(None) => self.open("bullet_list", None),
            Tag::Item => self.open("list_item", None),
            Tag::FootnoteDefinition(label) => {
                self.close_implicit();
                self.prefix = Some(format!("[{label}] "));
            }
            Tag::Table(_) => self.close_implicit(),
            Tag::TableHead | Tag::TableRow => {
                self.open("paragraph", None);
                self.cells = 0;
            }
            Tag::TableCell => {
                if self.cells > 0 {
                    let saved = std::mem::take(&mut self.marks);
                    self.push_text(" | ", None);
                    self.marks = saved;
                }
                self.cells += 1;
            }
            Tag::Emphasis => self.marks.push(json!({"type": "em"})),
            Tag::Strong => self.marks.push(json!({"type": "strong"})),
            Tag::Link { dest_url, .. } => self.marks.push(json!({"type": "link", "attrs": {"href": dest_url.to_string()}})),
            Tag::Image { dest_url, .. } => {
                self.marks.push(json!({"type": "link", "attrs": {"href": dest_url.to_string()}}));
                self.images.push((dest_url.to_string(), false));
            }
            // No ProseMirror counterpart: keep the text, drop the wrapper.
            Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end_tag(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.end("paragraph"),
            TagEnd::Heading(_) => self.end("heading"),
            TagEnd::BlockQuote(_) => self.end("blockquote"),
            TagEnd::CodeBlock => {
                self.in_code = false;
                // The fence's last line ends in a newline that is not part of the code.
                if let Some(Value::Object(last)) = self.top().content.last_mut()
                    && let Some(Value::String(t)) = last.get_mut("text")
                        && t.ends_with('\n') {
                            t.pop();
                        }
                if let Some(Value::Object(last)) = self.top().content.last()
                    && last.get("text").and_then(Value::as_str) == Some("") {
                        self.top().content.pop();
                    }
                self.end("codeBlock");
            }
            TagEnd::HtmlBlock => {
                let raw = self.html.take().unwrap_or_default();
                let t = visible_text(&raw);
                if !t.is_empty() {
                    self.open("paragraph", None);
                    self.push_text(&t, None);
                    self.end("paragraph");
                }
            }
            TagEnd::List(true) => self.end("ordered_list"),
            TagEnd::List(false) => self.end("bullet_list"),
            TagEnd::Item => self.end("list_item"),
            TagEnd::FootnoteDefinition => {
                self.prefix = None;
                self.close_implicit();
            }
            TagEnd::TableHead | TagEnd::TableRow => self.end("paragraph"),
            TagEnd::Table | TagEnd::TableCell => {}
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Link => {
                self.marks.pop();
            }
            TagEnd::Image => {
                if let Some((src, had_text)) = self.images.pop()
                    && !had_text {
                        self.push_text(&src, None);
                    }
                self.marks.pop();
            }
            TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_) => {}
        }
    }

    fn finish(mut self) -> Value {
        while self.stack.len() > 1 {
            self.close();
        }
        let doc = self.stack.pop().expect("the doc node");
        // Moved in: `json!` would serialise the whole document into a copy (36 M instructions
        // for 1,000 sections) and drop the original.
        let mut m = Map::new();
        m.insert("type".into(), Value::String("doc".into()));
        m.insert("content".into(), Value::Array(doc.content));
        Value::Object(m)
    }
}

/// The visible text of an HTML fragment: comments and tags removed, whitespace collapsed.
fn visible_text(html: &str) -> String {
    static COMMENTS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<!--.*?-->").expect("static regex"));
    static TAGS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").expect("static regex"));
    let no_comments = COMMENTS.replace_all(html, " ");
    let no_tags = TAGS.replace_all(&no_comments, " ");
    no_tags.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(md: &str) -> Vec<Value> {
        let doc = markdown_to_doc(md);
        assert_eq!(doc["type"], "doc");
        doc["content"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn empty_markdown_is_an_empty_doc() {
        assert_eq!(markdown_to_doc(""), json!({"type": "doc", "content": []}));
    }

    #[test]
    fn paragraph_with_marks() {
        let c = content("plain **bold** *it* `x()` [link](https://e.com/a)");
        assert_eq!(
            c,
            vec![json!({"type": "paragraph", "content": [
                {"type": "text", "text": "plain "},
                {"type": "text", "text": "bold", "marks": [{"type": "strong"}]},
                {"type": "text", "text": " "},
                {"type": "text", "text": "it", "marks": [{"type": "em"}]},
                {"type": "text", "text": " "},
                {"type": "text", "text": "x()", "marks": [{"type": "code"}]},
                {"type": "text", "text": " "},
                {"type": "text", "text": "link", "marks": [{"type": "link", "attrs": {"href": "https://e.com/a"}}]},
            ]})]
        );
    }

    #[test]
    fn nested_marks_stack_in_order() {
        let c = content("**bold [and link](https://e.com)**");
        assert_eq!(
            c[0]["content"][1],
            json!({"type": "text", "text": "and link", "marks": [
                {"type": "strong"}, {"type": "link", "attrs": {"href": "https://e.com"}}
            ]})
        );
    }

    #[test]
    fn headings_carry_their_level() {
        let c = content("# One\n\n### Three");
        assert_eq!(c[0], json!({"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "One"}]}));
        assert_eq!(c[1]["attrs"]["level"], 3);
    }

    #[test]
    fn soft_breaks_become_spaces_and_merge() {
        let c = content("line one\nline two");
        assert_eq!(c, vec![json!({"type": "paragraph", "content": [{"type": "text", "text": "line one line two"}]})]);
    }

    /// Issue 14 item 1: no node python-substack doesn't know. A hard break starts a new paragraph.
    #[test]
    fn hard_break() {
        let c = content("a  \nb");
        assert_eq!(
            c,
            vec![
                json!({"type": "paragraph", "content": [{"type": "text", "text": "a"}]}),
                json!({"type": "paragraph", "content": [{"type": "text", "text": "b"}]}),
            ]
        );
        let c = content("# x<br>y");
        assert_eq!(c[0]["content"], json!([{"type": "text", "text": "x y"}]));
    }

    /// Issue 14 item 1: the code block node is `codeBlock` (python-substack `nodes.py`).
    #[test]
    fn code_block_is_code_block_camel_case() {
        let c = content("```rust\nfn main() {}\n```\n");
        assert_eq!(c, vec![json!({"type": "codeBlock", "attrs": {"language": "rust"}, "content": [{"type": "text", "text": "fn main() {}"}]})]);
        assert_eq!(content("1. a\n")[0].get("attrs"), None, "a list from 1 needs no order");
        assert_eq!(content("3. a\n")[0]["attrs"], json!({"order": 3}));
    }

    #[test]
    fn tight_list_items_get_paragraphs() {
        let c = content("- a\n- **b**\n");
        assert_eq!(
            c,
            vec![json!({"type": "bullet_list", "content": [
                {"type": "list_item", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "a"}]}]},
                {"type": "list_item", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "b", "marks": [{"type": "strong"}]}]}]},
            ]})]
        );
    }

    #[test]
    fn ordered_and_nested_lists() {
        let c = content("3. three\n   - inner\n4. four\n");
        assert_eq!(c[0]["type"], "ordered_list");
        assert_eq!(c[0]["attrs"]["order"], 3);
        let first = &c[0]["content"][0];
        assert_eq!(first["type"], "list_item");
        assert_eq!(first["content"][0], json!({"type": "paragraph", "content": [{"type": "text", "text": "three"}]}));
        assert_eq!(first["content"][1]["type"], "bullet_list");
        assert_eq!(first["content"][1]["content"][0]["content"][0]["content"][0]["text"], "inner");
        assert_eq!(c[0]["content"][1]["content"][0]["content"][0]["text"], "four");
    }

    #[test]
    fn blockquote_rule_and_code_block() {
        let c = content("> quoted *words*\n\n---\n\n```rust\nfn main() {}\nlet x = 1;\n```\n");
        assert_eq!(
            c[0],
            json!({"type": "blockquote", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "quoted "},
                {"type": "text", "text": "words", "marks": [{"type": "em"}]},
            ]}]})
        );
        assert_eq!(c[1], json!({"type": "horizontal_rule"}));
        assert_eq!(
            c[2],
            json!({"type": "codeBlock", "attrs": {"language": "rust"}, "content": [{"type": "text", "text": "fn main() {}\nlet x = 1;"}]})
        );
    }

    #[test]
    fn code_block_text_has_no_marks_and_empty_block_has_no_content() {
        let c = content("```\n**not bold**\n```\n\n```\n```\n");
        assert_eq!(c[0], json!({"type": "codeBlock", "content": [{"type": "text", "text": "**not bold**"}]}));
        assert_eq!(c[1], json!({"type": "codeBlock"}));
    }

    #[test]
    fn image_becomes_linked_alt_text() {
        let c = content("![A chart](https://e.com/c.png)");
        assert_eq!(
            c[0]["content"][0],
            json!({"type": "text", "text": "A chart", "marks": [{"type": "link", "attrs": {"href": "https://e.com/c.png"}}]})
        );
        let c = content("![](https://e.com/c.png)");
        assert_eq!(c[0]["content"][0]["text"], "https://e.com/c.png");
    }

    #[test]
    fn html_comments_vanish_and_html_text_stays() {
        let c = content("<!-- note to self -->\n\n<div>Kept <b>text</b></div>\n\nafter");
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0]["content"][0]["text"], "Kept text");
        assert_eq!(c[1]["content"][0]["text"], "after");
    }

    #[test]
    fn tables_become_paragraph_rows() {
        let c = content("| a | b |\n|---|---|\n| 1 | **2** |\n");
        assert_eq!(c[0], json!({"type": "paragraph", "content": [{"type": "text", "text": "a | b"}]}));
        assert_eq!(
            c[1],
            json!({"type": "paragraph", "content": [
                {"type": "text", "text": "1 | "},
                {"type": "text", "text": "2", "marks": [{"type": "strong"}]},
            ]})
        );
    }

    #[test]
    fn smart_punctuation_matches_the_html_rendering() {
        let c = content("\"quoted\" -- dash");
        assert_eq!(c[0]["content"][0]["text"], "\u{201c}quoted\u{201d} \u{2013} dash");
    }

    #[test]
    fn no_empty_text_nodes_anywhere() {
        fn walk(v: &Value) {
            if v["type"] == "text" {
                assert!(!v["text"].as_str().unwrap_or("").is_empty(), "empty text node");
                assert!(v.get("content").is_none());
            }
            if let Some(c) = v.get("content").and_then(Value::as_array) {
                assert!(!c.is_empty(), "empty content array in {v}");
                c.iter().for_each(walk);
            }
        }
        let md = "# T\n\n**\n\n- \n\n> \n\n[](https://e.com)\n\n1. *a*\n\n   b\n\ntext[^1]\n\n[^1]: foot\n";
        let doc = markdown_to_doc(md);
        doc["content"].as_array().unwrap().iter().for_each(walk);
    }

    /// The draft size check measures the document encoded twice without building it.
    #[test]
    fn encoded_twice_len_is_the_length_of_the_string_encoded_twice() {
        let md = "# \"Quoted\" \\ back\\slash\n\nTab\there, `code \"x\"`, [l](https://e.com/?a=\"b\"), 日本 🎉\n\n```\nline\nnext\n```\n";
        // Every ASCII byte, some UTF-8, every kind of value, empty containers, a long document.
        let long = md.repeat(100);
        let every: String = (0u8..0x80).map(char::from).chain("é日🎉".chars()).collect();
        let one = json!({"k": [every, 1, -2.5, 1e300, u64::MAX, true, false, null, {}, [], "", {"\"\\\n": [[]]}]});
        for doc in [markdown_to_doc(md), markdown_to_doc(""), json!({"k": "\u{1}\u{7f}\n\"\\"}), markdown_to_doc(&long), one] {
            assert_eq!(encoded_twice_len(&doc), serde_json::to_string(&doc.to_string()).unwrap().len(), "{doc}");
        }
    }

    #[test]
    fn deterministic() {
        let md = "# A\n\nSome *text* with [a](https://x.y).\n\n- one\n- two\n";
        assert_eq!(markdown_to_doc(md), markdown_to_doc(md));
    }
}
