//! Markdown → Slack `mrkdwn`, from Slack's "Formatting text for app surfaces"
//! (docs.slack.dev/messaging/formatting-message-text): `&`, `<` and `>` are control characters
//! and are escaped as `&amp;`, `&lt;`, `&gt;` — those three only ("you shouldn't HTML
//! entity-encode the entire text"); links are `<url|text>`, bold `*x*`, italic `_x_`, strike
//! `~x~`, code `` `x` `` and ```` ```block``` ````, quotes `> `, and a newline is a line break.
//!
//! A Markdown soft break (a single newline) stays a newline: Slack shows it as a line break, and
//! the templates put the title, the summary and the link on lines of their own that way.
//!
//! Escaping every `<` of the issue's own text is what keeps a hostile issue from pinging: Slack
//! parses `<!channel>`, `<!here>`, `<@U…>` and `<!subteam^…>` only when the `<` is literal.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Escape Slack's three control characters, and only those.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A link target inside `<…|…>`: escaped, and a `|` (which would end the URL) percent-encoded.
fn escape_url(u: &str) -> String {
    escape(u.trim()).replace('|', "%7C")
}

/// Where a list item is.
struct List {
    /// The next number of an ordered list.
    next: Option<u64>,
}

struct Writer {
    out: String,
    lists: Vec<List>,
    quote: usize,
    /// Links (and images) open: (destination, where their text starts in `out`).
    links: Vec<(String, usize)>,
    /// Right after an item's marker: the item's first paragraph starts on its line.
    item_fresh: bool,
    line_start: bool,
    in_code: bool,
}

impl Writer {
    fn prefix(&mut self) {
        if self.line_start {
            if self.quote > 0 {
                self.out.push_str("> ");
            }
            self.line_start = false;
        }
    }

    fn text(&mut self, s: &str) {
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.newline();
            }
            if !line.is_empty() {
                self.prefix();
                self.out.push_str(&escape(line));
            }
        }
    }

    fn raw(&mut self, s: &str) {
        self.prefix();
        self.out.push_str(s);
    }

    fn newline(&mut self) {
        let t = self.out.trim_end_matches(' ').len();
        self.out.truncate(t);
        self.out.push('\n');
        self.line_start = true;
    }

    /// Start a block: a blank line after the one before (a single line break inside a tight
    /// list), nothing at the very start.
    fn block(&mut self) {
        if self.item_fresh {
            self.item_fresh = false;
            return;
        }
        if self.out.trim().is_empty() {
            self.out.clear();
            self.line_start = true;
            return;
        }
        if !self.line_start {
            self.newline();
        }
        if self.lists.is_empty() {
            if self.quote > 0 {
                self.out.push_str(">\n");
            } else {
                self.out.push('\n');
            }
        }
    }
}

/// Convert the issue's Markdown (CommonMark with strikethrough) to Slack `mrkdwn`.
pub fn from_markdown(md: &str) -> String {
    let mut w = Writer { out: String::new(), lists: Vec::new(), quote: 0, links: Vec::new(), item_fresh: false, line_start: true, in_code: false };
    for ev in Parser::new_ext(md, Options::ENABLE_STRIKETHROUGH) {
        match ev {
            Event::Start(Tag::Paragraph) => w.block(),
            Event::Start(Tag::Heading { .. }) => {
                w.block();
                w.raw("*");
            }
            Event::End(TagEnd::Heading(_)) => w.out.push('*'),
            Event::Start(Tag::BlockQuote(_)) => {
                w.block();
                w.quote += 1;
                w.item_fresh = true;
            }
            Event::End(TagEnd::BlockQuote(_)) => w.quote = w.quote.saturating_sub(1),
            Event::Start(Tag::CodeBlock(_)) => {
                w.block();
                w.raw("```");
                w.newline();
                w.in_code = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                if !w.line_start {
                    w.newline();
                }
                w.raw("```");
                w.in_code = false;
            }
            Event::Start(Tag::List(first)) => {
                if w.lists.is_empty() {
                    w.block();
                }
                w.item_fresh = false;
                w.lists.push(List { next: first });
            }
            Event::End(TagEnd::List(_)) => {
                w.lists.pop();
            }
            Event::Start(Tag::Item) => {
                if !w.line_start {
                    w.newline();
                }
                let depth = w.lists.len().saturating_sub(1);
                let marker = match w.lists.last_mut().and_then(|l| l.next.as_mut()) {
                    Some(n) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    None => "• ".to_string(),
                };
                w.raw(&format!("{}{marker}", "    ".repeat(depth)));
                w.item_fresh = true;
            }
            Event::End(TagEnd::Item) => w.item_fresh = false,
            Event::Start(Tag::Emphasis) => w.raw("_"),
            Event::End(TagEnd::Emphasis) => w.out.push('_'),
            Event::Start(Tag::Strong) => w.raw("*"),
            Event::End(TagEnd::Strong) => w.out.push('*'),
            Event::Start(Tag::Strikethrough) => w.raw("~"),
            Event::End(TagEnd::Strikethrough) => w.out.push('~'),
            Event::Start(Tag::Link { dest_url, .. }) | Event::Start(Tag::Image { dest_url, .. }) => {
                w.prefix();
                w.links.push((dest_url.to_string(), w.out.len()));
            }
            Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
                if let Some((url, start)) = w.links.pop() {
                    let label = w.out.split_off(start);
                    let label = label.trim().replace('\n', " ");
                    if url.trim().is_empty() {
                        w.out.push_str(&label);
                    } else if label.is_empty() || label == escape(url.trim()) {
                        w.out.push_str(&format!("<{}>", escape_url(&url)));
                    } else {
                        w.out.push_str(&format!("<{}|{label}>", escape_url(&url)));
                    }
                }
            }
            Event::Code(t) => {
                w.raw("`");
                w.out.push_str(&escape(&t));
                w.out.push('`');
            }
            Event::Text(t) => w.text(&t),
            // Raw HTML in an issue is shown as the text it is, never parsed by Slack.
            Event::Html(t) | Event::InlineHtml(t) => w.text(&t),
            Event::SoftBreak => {
                if w.links.is_empty() {
                    w.newline();
                } else {
                    w.out.push(' ');
                }
            }
            Event::HardBreak => w.newline(),
            Event::Rule => {
                w.block();
                w.raw("———");
            }
            Event::TaskListMarker(done) => w.raw(if done { "☑ " } else { "☐ " }),
            Event::FootnoteReference(t) => w.text(&format!("[{t}]")),
            _ => {}
        }
    }
    w.out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_the_three_control_characters() {
        assert_eq!(escape("a & b < c > d \"e\" 'f' *g*"), "a &amp; b &lt; c &gt; d \"e\" 'f' *g*");
        assert_eq!(escape("&amp;"), "&amp;amp;", "an entity in the text is text, shown as written");
    }

    #[test]
    fn markdown_becomes_mrkdwn() {
        assert_eq!(from_markdown("**Bold** and _it_ and ~~gone~~ and `x<y`"), "*Bold* and _it_ and ~gone~ and `x&lt;y`");
        assert_eq!(from_markdown("See [the issue](https://e.example/a?b=1&c=2) now."), "See <https://e.example/a?b=1&amp;c=2|the issue> now.");
        assert_eq!(from_markdown("<https://e.example/x>"), "<https://e.example/x>");
        assert_eq!(from_markdown("# Title\n\nOne.\n\nTwo."), "*Title*\n\nOne.\n\nTwo.");
        assert_eq!(from_markdown("- a\n- b\n\n1. x\n2. y"), "• a\n• b\n\n1. x\n2. y");
        assert_eq!(from_markdown("> quoted\n> more"), "> quoted\n> more");
        assert_eq!(from_markdown("```\nlet a = b < c;\n```"), "```\nlet a = b &lt; c;\n```");
    }

    #[test]
    fn hostile_text_cannot_ping_link_or_break_out() {
        let md = "Hi <!channel> & <@U024BE7LH> <!subteam^SAZ94GDB8> <https://evil.example|click me> <script>x</script>";
        let got = from_markdown(md);
        assert!(!got.contains('<') && !got.contains('>'), "{got}");
        assert!(got.contains("&lt;!channel&gt;") && got.contains("&amp;") && got.contains("&lt;@U024BE7LH&gt;"), "{got}");
        // A link whose text holds `|` and `>`, and whose URL holds `|`: one link, nothing after.
        let got = from_markdown("[a|b>c](https://e.example/x|y)");
        assert_eq!(got, "<https://e.example/x%7Cy|a|b&gt;c>");
    }
}
