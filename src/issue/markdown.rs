//! Markdown to HTML, plain text, first paragraph and links (pulldown-cmark).

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

use super::{Block, Link};

/// The Markdown extensions Herald reads.
pub(crate) fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_SMART_PUNCTUATION
}

/// Markdown to HTML.
pub fn to_html(md: &str) -> String {
    html_of(md.len(), Parser::new_ext(md, options()))
}

/// HTML from parsed events (of `len` bytes of Markdown).
fn html_of<'a>(len: usize, events: impl Iterator<Item = Event<'a>>) -> String {
    let mut out = String::with_capacity(len * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// Markdown to readable plain text: paragraphs separated by blank lines, list items with
/// `- `, links as `text (url)` unless the text is the URL.
pub fn to_text(md: &str) -> String {
    text_of(Parser::new_ext(md, options()))
}

/// [`to_html`] and [`to_text`] of the same Markdown, parsed once.
pub fn to_html_and_text(md: &str) -> (String, String) {
    let events: Vec<Event<'_>> = Parser::new_ext(md, options()).collect();
    (html_of(md.len(), events.iter().cloned()), text_of(events.into_iter()))
}

/// Plain text from parsed events.
fn text_of<'a>(events: impl Iterator<Item = Event<'a>>) -> String {
    let mut out = String::new();
    let mut link_stack: Vec<(String, usize)> = Vec::new();
    let mut list_depth = 0usize;
    // Per open list: the next item number (ordered) or None (bullets).
    let mut numbers: Vec<Option<u64>> = Vec::new();
    for ev in events {
        match ev {
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak => out.push(' '),
            Event::HardBreak => out.push('\n'),
            Event::Start(Tag::Link { dest_url, .. }) => link_stack.push((dest_url.to_string(), out.len())),
            Event::End(TagEnd::Link) => {
                if let Some((url, start)) = link_stack.pop() {
                    let text = out[start..].to_string();
                    if text.trim() != url && !url.starts_with('#') {
                        out.push_str(&format!(" ({url})"));
                    }
                }
            }
            Event::Start(Tag::List(start)) => {
                numbers.push(start);
                if list_depth == 0 {
                    ensure_blank(&mut out);
                }
                list_depth += 1;
            }
            Event::End(TagEnd::List(_)) => {
                numbers.pop();
                list_depth = list_depth.saturating_sub(1);
                if list_depth == 0 {
                    out.push('\n');
                }
            }
            Event::Start(Tag::Item) => {
                if !out.ends_with('\n') && !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&"  ".repeat(list_depth.saturating_sub(1)));
                match numbers.last_mut() {
                    Some(Some(n)) => {
                        out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => out.push_str("- "),
                }
            }
            Event::Start(Tag::Paragraph) | Event::Start(Tag::Heading { .. }) | Event::Start(Tag::BlockQuote(_)) | Event::Start(Tag::CodeBlock(_))
                if list_depth == 0 => {
                    ensure_blank(&mut out);
                }
            Event::End(TagEnd::Paragraph) | Event::End(TagEnd::Heading(_)) | Event::End(TagEnd::CodeBlock)
                if list_depth == 0 => {
                    out.push('\n');
                }
            Event::Rule => {
                ensure_blank(&mut out);
                out.push_str("---\n");
            }
            _ => {}
        }
    }
    out.trim().to_string()
}

fn ensure_blank(out: &mut String) {
    if out.is_empty() {
        return;
    }
    while !out.ends_with("\n\n") {
        out.push('\n');
    }
}

/// Links, in order of appearance, deduplicated by URL. Autolinks count.
pub fn links(md: &str) -> Vec<Link> {
    links_of(Parser::new_ext(md, options()))
}

fn links_of<'a>(events: impl Iterator<Item = Event<'a>>) -> Vec<Link> {
    let mut found: Vec<Link> = Vec::new();
    // URLs already found: a linear scan per link was quadratic in a block's links.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut current: Option<(String, String)> = None;
    for ev in events {
        match ev {
            Event::Start(Tag::Link { dest_url, .. }) => current = Some((dest_url.to_string(), String::new())),
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, text)) = current.as_mut() {
                    text.push_str(&t);
                }
            }
            Event::End(TagEnd::Link) => {
                if let Some((url, text)) = current.take()
                    && !url.starts_with('#') && seen.insert(url.clone()) {
                        found.push(Link { url, text });
                    }
            }
            _ => {}
        }
    }
    found
}

/// The first paragraph as plain text.
pub fn first_paragraph(md: &str) -> String {
    first_paragraph_of(Parser::new_ext(md, options()))
}

fn first_paragraph_of<'a>(events: impl Iterator<Item = Event<'a>>) -> String {
    let mut in_para = false;
    let mut buf = String::new();
    for ev in events {
        match ev {
            Event::Start(Tag::Paragraph) => in_para = true,
            Event::End(TagEnd::Paragraph) if in_para => return buf.trim().to_string(),
            Event::Text(t) | Event::Code(t) if in_para => buf.push_str(&t),
            Event::SoftBreak | Event::HardBreak if in_para => buf.push(' '),
            _ => {}
        }
    }
    buf.trim().to_string()
}

/// All derived forms of one stretch of Markdown, from one parse.
pub fn block(md: &str) -> Block {
    let mut events: Vec<Event<'_>> = Vec::new();
    let mut alike = true;
    let (start, end) = trimmed_bounds(md);
    // The trimmed Markdown parses alike when the whitespace cut is blank lines before (no block
    // starts on one) and whitespace after that no text comes from: a block (a list, its item)
    // may span trailing blank lines, but a text (in an unclosed fence, say) that reaches past
    // the trimmed end would lose its tail.
    for (e, r) in Parser::new_ext(md, options()).into_offset_iter() {
        let container = matches!(e, Event::Start(_) | Event::End(_));
        alike &= r.start >= start && (container || r.end <= end);
        events.push(e);
    }
    alike &= start == 0 || md.as_bytes()[start - 1] == b'\n';
    Block {
        markdown: md[start..end].to_string(),
        html: html_of(md.len(), events.iter().cloned()),
        text: text_of(events.iter().cloned()),
        first_paragraph: first_paragraph_of(events.iter().cloned()),
        links: links_of(events.into_iter()),
        trimmed_alike: alike,
    }
}

/// Where `md.trim()` starts and ends in `md`.
fn trimmed_bounds(md: &str) -> (usize, usize) {
    let start = md.len() - md.trim_start().len();
    (start, start + md.trim().len())
}

/// A URL-safe anchor from a heading: lowercase ASCII letters and digits joined by `-`;
/// other letters (CJK, accents) kept as they are.
pub fn slugify(title: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in title.chars() {
        if c.is_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        } else {
            dash = true;
        }
    }
    if out.is_empty() { "section".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Block::trimmed_alike` lets the render skip parsing the trimmed Markdown again: it must
    /// only be set when that parse gives the block's own HTML and text. Each case here differs
    /// once trimmed (an indented first line, an unclosed fence, trailing spaces in code); it
    /// fails if the check lets any of them through.
    #[test]
    fn trimmed_alike_only_when_the_trimmed_markdown_renders_the_same() {
        let differ = [
            "    indented code\n\nthen text\n",
            "\n    indented after a blank line\n",
            "```\nunclosed fence  \n",
            "```\nunclosed fence\n\n\n",
            "~~~\ncode\n   \n",
            "text\n\n    code at the end   \n",
            "- item\n\n      code in the item  \n",
            "> quote\n>\n>     code  \n",
            "<div>\nhtml block  \n",
        ];
        for md in differ {
            let b = block(md);
            assert_ne!(to_html_and_text(&b.markdown), (b.html.clone(), b.text.clone()), "{md:?} should differ");
            assert!(!b.trimmed_alike, "{md:?}");
        }
        let same = [
            "\nSome *text* with a [link](https://e.example/1) and a list:\n\n- one\n- two\n\n",
            "Para.  \n\n",
            "\n\n# H\n\ntext\n",
            "",
            "- a\n  - b\n\n",
            "| a | b |\n|---|---|\n| 1 | 2 |  \n\n",
            "[x]\n\n[x]: https://a.b  \n",
            "text[^1]\n\n[^1]: note  \n\n",
        ];
        for md in same.iter().chain(&differ) {
            let b = block(md);
            if b.trimmed_alike {
                assert_eq!(to_html_and_text(&b.markdown), (b.html.clone(), b.text.clone()), "{md:?}");
            }
        }
        assert!(same.iter().all(|md| block(md).trimmed_alike));
    }

    #[test]
    fn text_keeps_list_numbers_and_link_targets() {
        let t = to_text("Intro [site](https://a.example/x).\n\n1. one\n2. two\n\n- a\n- b\n");
        assert_eq!(t, "Intro site (https://a.example/x).\n\n1. one\n2. two\n\n- a\n- b");
    }
}
