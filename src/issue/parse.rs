//! Reading an issue file: split the front matter, validate it, split the body into sections.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use toml_edit::{Document, Item, TableLike, Value};

use super::markdown::{block, slugify};
use super::{ChannelOverride, FrontMatter, Issue, Section};
use crate::config::validate::{escape_key, suggest};

/// A problem with an issue file, located by file and line.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{}:{line}: {message}", file.display())]
pub struct IssueError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong, and how to fix it.
    pub message: String,
}

/// The largest issue file read, in bytes (2 MiB: several times the longest newsletter).
pub const MAX_ISSUE_BYTES: usize = 2 * 1024 * 1024;
/// The longest title (the issue's, or a section heading), in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// The longest summary, in characters: it is the hook of every short post.
pub const MAX_SUMMARY_CHARS: usize = 2_000;
/// The longest run of text without a space, in characters (a long URL fits).
pub const MAX_TOKEN_CHARS: usize = 8_192;
/// The deepest nesting of lists, quotes, emphasis and links in the Markdown. Every later stage
/// works below it: Substack's stored document is read back through serde_json, whose recursion
/// limit (128) a nested list reaches at about 4 levels of JSON per level of list.
pub const MAX_NESTING: usize = 24;
/// The oldest and newest years accepted in `date` and `publish_at`.
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=2100;

/// Read and parse an issue file.
pub fn parse_file(path: &Path) -> Result<Issue, IssueError> {
    parse_str(path, &read_issue(path)?)
}

/// Read an issue's text: a regular file of at most [`MAX_ISSUE_BYTES`], never a FIFO or a
/// device, and UTF-8.
pub fn read_source(path: &Path) -> Result<String, IssueError> {
    read_issue(path)
}

fn read_issue(path: &Path) -> Result<String, IssueError> {
    use std::io::Read;
    let err = |message: String| IssueError { file: path.to_path_buf(), line: 1, message };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read the issue: {e}")))?;
    if !meta.is_file() {
        return Err(err("the issue is not a regular file (a folder, FIFO or device is never read)".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| err(format!("cannot read the issue: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_ISSUE_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| err(format!("cannot read the issue: {e}")))?;
    if bytes.len() > MAX_ISSUE_BYTES {
        return Err(err(format!("the issue is larger than {} MiB (hint: split it, or move long material to the web version)", MAX_ISSUE_BYTES >> 20)));
    }
    String::from_utf8(bytes).map_err(|e| err(format!("the issue is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}

/// Read an issue's front matter and version only: what the daemon's folder scan needs, without
/// rendering the Markdown of every issue it watches.
pub fn parse_meta_file(path: &Path) -> Result<(FrontMatter, String), IssueError> {
    let text = read_issue(path)?;
    let (meta, _, _) = split_front(path, &text)?;
    Ok((meta, version_of(&text)))
}

/// The version of an issue's text: the first 16 hex digits of its SHA-256.
fn version_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_string()
}

/// Parse an issue from its text. `path` is used for messages and relative assets.
///
/// Every front-matter problem is reported at once: the error's `line` is the first one's, and the
/// message carries the others on further `file:line: message` lines.
pub fn parse_str(path: &Path, text: &str) -> Result<Issue, IssueError> {
    let err = |line: usize, message: String| IssueError { file: path.to_path_buf(), line, message };
    if text.len() > MAX_ISSUE_BYTES {
        return Err(err(1, format!("the issue is larger than {} MiB (hint: split it, or move long material to the web version)", MAX_ISSUE_BYTES >> 20)));
    }
    check_runs(text).map_err(|(line, m)| err(line, m))?;
    let (meta, body, body_start_line) = split_front(path, text)?;
    check_nesting(body, body_start_line).map_err(|(line, m)| err(line, m))?;
    let (intro_md, sections) = split_sections(body, body_start_line);
    if let Some((title, line, _)) = sections.iter().find(|(t, _, _)| t.chars().count() > MAX_TITLE_CHARS) {
        return Err(err(*line, format!("the section heading is {} characters long; at most {MAX_TITLE_CHARS}", title.chars().count())));
    }
    // Each heading's anchor is unique: `base`, then `base-2`, `base-3`… Linear: a set of the
    // anchors taken, and per base the next suffix to try.
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::with_capacity(sections.len());
    let mut next: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let sections = sections
        .into_iter()
        .map(|(title, line, md)| {
            let base = slugify(&title);
            let mut anchor = base.clone();
            if taken.contains(&anchor) {
                let n = next.entry(base.clone()).or_insert(2);
                loop {
                    anchor = format!("{base}-{n}");
                    *n += 1;
                    if !taken.contains(&anchor) {
                        break;
                    }
                }
            }
            taken.insert(anchor.clone());
            Section { title, anchor, body: block(&md), line }
        })
        .collect::<Vec<_>>();
    let intro = block(&intro_md);
    let mut links = intro.links.clone();
    let mut seen: std::collections::HashSet<String> = links.iter().map(|l| l.url.clone()).collect();
    for s in &sections {
        for l in &s.body.links {
            if seen.insert(l.url.clone()) {
                links.push(l.clone());
            }
        }
    }
    let version = version_of(text);
    Ok(Issue { path: path.to_path_buf(), meta, version, intro, sections, links, markdown: body.trim().to_string() })
}

/// 1-based line of a byte offset, `first` being the line of offset 0.
fn line_at(text: &str, first: usize, offset: usize) -> usize {
    first + memchr::memchr_iter(b'\n', &text.as_bytes()[..offset.min(text.len())]).count()
}

/// No run of text without a space longer than [`MAX_TOKEN_CHARS`], anywhere in the file: it
/// bounds every word the counters and splitters see. Linear. Error: (1-based line, message).
fn check_runs(text: &str) -> Result<(), (usize, String)> {
    let mut run = 0usize;
    let mut at = 0usize;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            run = 0;
            continue;
        }
        if run == 0 {
            at = i;
        }
        run += 1;
        if run > MAX_TOKEN_CHARS {
            return Err((line_at(text, 1, at), format!("a run of more than {MAX_TOKEN_CHARS} characters without a space (hint: break it up, or link long material)")));
        }
    }
    Ok(())
}

/// The body's nesting depth (lists, quotes, emphasis, links) at most [`MAX_NESTING`], before
/// any later stage sees it. Iterative. Error: (1-based file line, message).
fn check_nesting(body: &str, first_line: usize) -> Result<(), (usize, String)> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut depth = 0usize;
    for (event, range) in Parser::new_ext(body, super::markdown::options()).into_offset_iter() {
        match event {
            // A list item sits inside its list: the list is the level.
            Event::Start(Tag::Item | Tag::Paragraph | Tag::Heading { .. } | Tag::TableHead | Tag::TableRow | Tag::TableCell) => {}
            Event::Start(_) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err((
                        line_at(body, first_line, range.start),
                        format!("Markdown nested more than {MAX_NESTING} levels deep (lists, quotes, emphasis, links) (hint: flatten it; Substack and the other renderers cannot read deeper documents)"),
                    ));
                }
            }
            Event::End(t) if !matches!(t, TagEnd::Item | TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::TableHead | TagEnd::TableRow | TagEnd::TableCell) => {
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The front matter (checked), the Markdown body and the body's first line number.
fn split_front<'t>(path: &Path, text: &'t str) -> Result<(FrontMatter, &'t str, usize), IssueError> {
    let err = |line: usize, message: String| IssueError { file: path.to_path_buf(), line, message };
    let text_nobom = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text_nobom.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    match first.trim_end() {
        "+++" => {}
        "---" => {
            return Err(err(1, "the front matter must be TOML between `+++` lines; `---` (YAML) is not read (hint: replace both `---` lines with `+++` and write the keys as TOML, e.g. `title = \"…\"`)".into()));
        }
        _ => return Err(err(1, "the issue must start with TOML front matter between `+++` lines (hint: begin the file with `+++`, the keys title, slug, date, url and summary, then `+++`)".into())),
    }
    let mut fm = String::new();
    let mut body_start_line = 0;
    let mut consumed = first.len();
    let mut closed = false;
    for (i, l) in lines.enumerate() {
        consumed += l.len();
        if l.trim_end() == "+++" {
            closed = true;
            body_start_line = i + 3; // 1-based line after the closing +++
            break;
        }
        fm.push_str(l);
    }
    if !closed {
        return Err(err(1, "the front matter opened on line 1 has no closing `+++` line (hint: add a line `+++` after the last front-matter key, before the Markdown)".into()));
    }
    let meta = front_matter(&fm).map_err(|mut problems| {
        problems.sort_by_key(|p| p.0);
        let (line, first) = problems.remove(0);
        let mut message = first;
        for (l, m) in problems {
            message.push_str(&format!("\n{}:{l}: {m}", path.display()));
        }
        err(line, message)
    })?;
    Ok((meta, &text_nobom[consumed..], body_start_line))
}

/// Split at `## ` headings outside fenced code. Returns the intro and (title, line, markdown).
fn split_sections(body: &str, first_line: usize) -> (String, Vec<(String, usize, String)>) {
    let mut intro = String::new();
    let mut sections: Vec<(String, usize, String)> = Vec::new();
    let mut in_fence = false;
    for (i, line) in body.split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with("## ") {
            let title = line[3..].trim().trim_end_matches('#').trim().to_string();
            sections.push((title, first_line + i, String::new()));
            continue;
        }
        match sections.last_mut() {
            Some((_, _, md)) => md.push_str(line),
            None => intro.push_str(line),
        }
    }
    (intro, sections)
}

/// The front-matter keys, in the order they are usually written.
const KEYS: &[&str] = &["title", "slug", "number", "date", "url", "summary", "tags", "publish_at", "draft", "image", "channels"];
/// The keys of a per-channel override.
const OVERRIDE_KEYS: &[&str] = &["skip", "text", "posts", "subject", "subtitle"];
/// The keys every issue needs.
const REQUIRED: &[&str] = &["title", "slug", "date", "url", "summary"];

/// The front matter starts on this line of the file (after the opening `+++`).
const FM_FIRST_LINE: usize = 2;

/// Read the front matter. On failure, every problem as (1-based file line, message).
fn front_matter(fm: &str) -> Result<FrontMatter, Vec<(usize, String)>> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| fm.as_bytes()[..s.start.min(fm.len())].iter().filter(|&&b| b == b'\n').count() + FM_FIRST_LINE)
    };
    let doc = Document::parse(fm).map_err(|e| {
        let line = line_of(e.span()).unwrap_or(FM_FIRST_LINE);
        vec![(line, format!("front matter is not valid TOML: {}", e.message().trim()))]
    })?;
    let root = doc.as_table();
    let mut problems: Vec<(usize, String)> = Vec::new();
    let key_line = |t: &dyn TableLike, k: &str| {
        line_of(t.key(k).and_then(|k| k.span())).or_else(|| line_of(t.get(k).and_then(Item::span))).unwrap_or(1)
    };
    let mut p = |line: usize, m: String| problems.push((line, format!("front matter: {m}")));

    for (key, _) in root.iter() {
        if !KEYS.contains(&key) {
            let hint = match suggest(key, KEYS) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys: {}", KEYS.join(", ")),
            };
            p(key_line(root, key), format!("unknown key `{}` (hint: {hint})", escape_key(key)));
        }
    }
    for key in REQUIRED {
        if !root.contains_key(key) {
            p(1, format!("missing `{key}` (every issue needs title, slug, date, url and summary)"));
        }
    }

    // A string value, or a problem naming the key.
    let string = |key: &str, p: &mut dyn FnMut(usize, String)| -> Option<String> {
        let item = root.get(key)?;
        match item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                p(key_line(root, key), format!("`{key}` must be a string, found {}", type_name(item)));
                None
            }
        }
    };

    let title = string("title", &mut p);
    if title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        p(key_line(root, "title"), "`title` is empty".into());
    }
    if let Some(n) = title.as_deref().map(|t| t.chars().count()).filter(|n| *n > MAX_TITLE_CHARS) {
        p(key_line(root, "title"), format!("`title` is {n} characters long; at most {MAX_TITLE_CHARS}"));
    }
    let slug = string("slug", &mut p);
    if let Some(s) = &slug
        && (s.is_empty() || !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        p(key_line(root, "slug"), format!("`slug` {s:?} must be non-empty and use only a-z, 0-9, '-' and '_' (hint: e.g. `slug = \"2026-week-47\"`)"));
    }
    let url = string("url", &mut p);
    if let Some(u) = &url {
        let ok = url::Url::parse(u).is_ok_and(|x| matches!(x.scheme(), "http" | "https") && x.host_str().is_some());
        if !ok {
            p(key_line(root, "url"), format!("`url` {u:?} must be an absolute http(s) URL (hint: the web version, e.g. `https://news.example.com/2026/47`)"));
        }
    }
    let summary = string("summary", &mut p);
    if summary.as_deref().is_some_and(|t| t.trim().is_empty()) {
        p(key_line(root, "summary"), "`summary` is empty (it is the hook of every short post)".into());
    }
    if let Some(n) = summary.as_deref().map(|t| t.chars().count()).filter(|n| *n > MAX_SUMMARY_CHARS) {
        p(key_line(root, "summary"), format!("`summary` is {n} characters long; at most {MAX_SUMMARY_CHARS} (it is the hook of every short post)"));
    }
    let image = string("image", &mut p);
    if image.as_deref().is_some_and(|t| t.trim().is_empty()) {
        p(key_line(root, "image"), "`image` is empty (leave the key out, or give a path or URL)".into());
    }

    let mut number = None;
    if let Some(item) = root.get("number") {
        match item.as_integer() {
            Some(n) if n >= 1 && n <= i64::from(u32::MAX) => number = Some(n as u32),
            _ => p(key_line(root, "number"), format!("`number` must be a whole number ≥ 1, found {}", show(item))),
        }
    }

    let mut date = None;
    if let Some(item) = root.get("date") {
        let raw = match item.as_value() {
            Some(Value::Datetime(d)) => Some(d.value().to_string()),
            Some(Value::String(s)) => Some(s.value().clone()),
            _ => None,
        };
        match raw.as_deref().map(|r| chrono::NaiveDate::parse_from_str(r, "%Y-%m-%d")) {
            Some(Ok(d)) if !YEARS.contains(&chrono::Datelike::year(&d)) => {
                p(key_line(root, "date"), format!("`date` {d} is outside {}–{} (hint: a typo in the year?)", YEARS.start(), YEARS.end()))
            }
            Some(Ok(d)) => date = Some(d),
            Some(Err(e)) => p(key_line(root, "date"), format!("`date` {:?} is not a date: {e} (hint: YYYY-MM-DD, e.g. `date = 2026-11-23`)", raw.unwrap_or_default())),
            None => p(key_line(root, "date"), format!("`date` must be a date, found {} (hint: YYYY-MM-DD, e.g. `date = 2026-11-23`)", show(item))),
        }
    }

    let mut publish_at = None;
    if let Some(item) = root.get("publish_at") {
        let raw = match item.as_value() {
            Some(Value::Datetime(d)) => Some(d.value().to_string()),
            Some(Value::String(s)) => Some(s.value().clone()),
            _ => None,
        };
        match raw.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
            Some(Ok(t)) if !YEARS.contains(&chrono::Datelike::year(&t.naive_utc())) => p(
                key_line(root, "publish_at"),
                format!("`publish_at` {} is outside {}–{} (hint: a typo in the year?)", t.to_rfc3339(), YEARS.start(), YEARS.end()),
            ),
            Some(Ok(t)) => publish_at = Some(t),
            Some(Err(e)) => p(
                key_line(root, "publish_at"),
                format!("`publish_at` {:?} is not an RFC 3339 time: {e} (hint: date, time and offset, e.g. `publish_at = 2026-11-23T09:00:00+01:00`)", raw.unwrap_or_default()),
            ),
            None => p(key_line(root, "publish_at"), format!("`publish_at` must be an RFC 3339 time, found {} (hint: e.g. `publish_at = 2026-11-23T09:00:00Z`)", show(item))),
        }
    }

    let mut draft = false;
    if let Some(item) = root.get("draft") {
        match item.as_bool() {
            Some(b) => draft = b,
            None => p(key_line(root, "draft"), format!("`draft` must be true or false, found {}", show(item))),
        }
    }

    let mut tags = Vec::new();
    if let Some(item) = root.get("tags") {
        match item.as_array() {
            Some(a) => {
                for v in a.iter() {
                    match v.as_str() {
                        Some(t) if t.starts_with('#') => p(key_line(root, "tags"), format!("tag {t:?} is written with `#` (hint: write tags without it: {:?})", t.trim_start_matches('#'))),
                        Some(t) if t.is_empty() || t.chars().any(char::is_whitespace) => {
                            p(key_line(root, "tags"), format!("tag {t:?} must be one word, without spaces (it becomes a hashtag)"))
                        }
                        Some(t) => tags.push(t.to_string()),
                        None => p(key_line(root, "tags"), format!("every tag must be a string, found {}", value_type(v))),
                    }
                }
            }
            None => p(key_line(root, "tags"), format!("`tags` must be a list of strings, found {} (hint: `tags = [\"rust\", \"email\"]`)", show(item))),
        }
    }

    let mut channels = std::collections::BTreeMap::new();
    if let Some(item) = root.get("channels") {
        match item.as_table_like() {
            Some(t) => {
                for (name, ov) in t.iter() {
                    let line = key_line(t, name);
                    match ov.as_table_like() {
                        Some(o) => {
                            if let Some(c) = channel_override(name, o, &|k| key_line(o, k), &mut p) {
                                channels.insert(name.to_string(), c);
                            }
                        }
                        None => p(line, format!("`channels.{name}` must be a table (hint: `[channels.{name}]` then e.g. `skip = true`)")),
                    }
                }
            }
            None => p(key_line(root, "channels"), "`channels` must be a table of per-channel overrides (hint: `[channels.linkedin]` then e.g. `text = \"…\"`)".into()),
        }
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    match (title, slug, date, url, summary) {
        (Some(title), Some(slug), Some(date), Some(url), Some(summary)) => {
            Ok(FrontMatter { title, slug, number, date, url, summary, tags, publish_at, draft, image, channels })
        }
        // Every missing or mistyped key was reported above.
        _ => Err(vec![(1, "front matter: incomplete".into())]),
    }
}

/// One `[channels.<name>]` override.
fn channel_override(name: &str, o: &dyn TableLike, line: &dyn Fn(&str) -> usize, p: &mut dyn FnMut(usize, String)) -> Option<ChannelOverride> {
    let mut c = ChannelOverride::default();
    let mut ok = true;
    for (key, item) in o.iter() {
        let l = line(key);
        let dotted = format!("channels.{name}.{key}");
        match key {
            "skip" => match item.as_bool() {
                Some(b) => c.skip = b,
                None => {
                    ok = false;
                    p(l, format!("`{dotted}` must be true or false, found {}", show(item)));
                }
            },
            "text" | "subject" | "subtitle" => match item.as_str() {
                Some(s) if s.trim().is_empty() => {
                    ok = false;
                    p(l, format!("`{dotted}` is empty (leave the key out to use the template)"));
                }
                Some(s) => {
                    let v = Some(s.to_string());
                    match key {
                        "text" => c.text = v,
                        "subject" => c.subject = v,
                        _ => c.subtitle = v,
                    }
                }
                None => {
                    ok = false;
                    p(l, format!("`{dotted}` must be a string, found {}", show(item)));
                }
            },
            "posts" => match item.as_array().map(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()) {
                Some(Some(posts)) if !posts.is_empty() && posts.iter().all(|s| !s.trim().is_empty()) => c.posts = Some(posts),
                _ => {
                    ok = false;
                    p(l, format!("`{dotted}` must be a non-empty list of non-empty strings, one per post"));
                }
            },
            other => {
                ok = false;
                let hint = match suggest(other, OVERRIDE_KEYS) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known keys: {}", OVERRIDE_KEYS.join(", ")),
                };
                p(l, format!("unknown key `{}` (hint: {hint})", escape_key(&dotted)));
            }
        }
    }
    ok.then_some(c)
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::Value(v) => value_type(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::None => "nothing",
    }
}

fn value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "a list",
        Value::InlineTable(_) => "a table",
    }
}

/// A short description of a value, for messages: its type and, for scalars, its text.
fn show(item: &Item) -> String {
    match item.as_value() {
        Some(v @ Value::Integer(i)) => format!("{} `{}`", value_type(v), i.value()),
        Some(v @ Value::Float(f)) => format!("{} `{}`", value_type(v), f.value()),
        Some(v @ Value::Boolean(b)) => format!("{} `{}`", value_type(v), b.value()),
        Some(v @ Value::Datetime(d)) => format!("{} `{}`", value_type(v), d.value()),
        Some(Value::String(s)) => format!("the string {:?}", s.value()),
        _ => type_name(item).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "+++\ntitle = \"T\"\nslug = \"s-1\"\ndate = \"2026-01-05\"\nurl = \"https://e.example/s\"\nsummary = \"Hook.\"\n+++\nIntro.\n\n## One\n\nBody [a](https://a.example).\n";

    #[test]
    fn crlf_and_bom_read_like_lf() {
        let lf = parse_str(Path::new("a.md"), GOOD).unwrap();
        let crlf = parse_str(Path::new("a.md"), &format!("\u{feff}{}", GOOD.replace('\n', "\r\n"))).unwrap();
        assert_eq!(lf.meta, crlf.meta);
        assert_eq!(crlf.sections[0].title, "One");
        assert_eq!(crlf.sections[0].line, 10);
    }

    #[test]
    fn string_dates_and_rfc3339_strings_are_accepted() {
        let t = GOOD.replace("summary", "publish_at = \"2026-01-05T09:00:00-05:00\"\nsummary");
        let i = parse_str(Path::new("a.md"), &t).unwrap();
        assert_eq!(i.meta.date, chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap());
        assert_eq!(i.meta.publish_at.unwrap().offset().local_minus_utc(), -5 * 3600);
    }

    fn with_body(body: &str) -> String {
        GOOD.replace("Intro.\n\n## One\n\nBody [a](https://a.example).\n", body)
    }

    #[test]
    fn nesting_is_capped_with_the_line() {
        // A 5,000-deep list overflowed a worker's stack after `check` let it through.
        let e = parse_str(Path::new("a.md"), &with_body(&format!("Intro.\n\n{}x\n", "- ".repeat(5_000)))).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains(&format!("nested more than {MAX_NESTING} levels")), "{e}");
        let e = parse_str(Path::new("a.md"), &with_body(&format!("Intro.\n\n{} x\n", ">".repeat(5_000)))).unwrap_err();
        assert!(e.message.contains("nested more than"), "{e}");
        // At the cap it parses.
        parse_str(Path::new("a.md"), &with_body(&format!("## Deep\n\n{}x\n", "- ".repeat(MAX_NESTING)))).unwrap();
        let e = parse_str(Path::new("a.md"), &with_body(&format!("## Deep\n\n{}x\n", "- ".repeat(MAX_NESTING + 1)))).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
    }

    #[test]
    fn sizes_are_capped() {
        let e = parse_str(Path::new("a.md"), &with_body(&format!("{}\n", "a".repeat(40_000)))).unwrap_err();
        assert_eq!(e.line, 8, "{e}");
        assert!(e.message.contains("without a space"), "{e}");
        let e = parse_str(Path::new("a.md"), &GOOD.replace("title = \"T\"", &format!("title = \"{}\"", "T ".repeat(400)))).unwrap_err();
        assert!(e.message.contains("`title` is 800 characters long"), "{e}");
        let e = parse_str(Path::new("a.md"), &with_body(&format!("## {}\n", "h ".repeat(400)))).unwrap_err();
        assert!(e.message.contains("section heading is 799 characters"), "{e}");
        let e = parse_str(Path::new("a.md"), &with_body(&"word ".repeat(MAX_ISSUE_BYTES / 5 + 1))).unwrap_err();
        assert!(e.message.contains("larger than 2 MiB"), "{e}");
    }

    #[test]
    fn dates_outside_1970_to_2100_are_refused() {
        for (key, bad) in [("date", "date = 1969-12-31"), ("date", "date = 2101-01-01"), ("publish_at", "publish_at = 1900-01-01T00:00:00Z"), ("publish_at", "publish_at = 2200-01-01T09:00:00+01:00")] {
            let t = GOOD.replace("date = \"2026-01-05\"", if key == "date" { bad } else { "date = 2026-01-05" }).replace("summary", &if key == "publish_at" { format!("{bad}\nsummary") } else { "summary".into() });
            let e = parse_str(Path::new("a.md"), &t).unwrap_err();
            assert!(e.message.contains(&format!("`{key}`")) && e.message.contains("outside 1970–2100"), "{bad}: {e}");
        }
        let t = GOOD.replace("date = \"2026-01-05\"", "date = 1970-01-01").replace("summary", "publish_at = 2100-12-31T23:59:59Z\nsummary");
        parse_str(Path::new("a.md"), &t).unwrap();
    }

    #[test]
    fn anchors_are_unique_and_found_in_linear_time() {
        let t = with_body("## A\n\n## A-2\n\n## A\n\n## A\n");
        let i = parse_str(Path::new("a.md"), &t).unwrap();
        let anchors: Vec<&str> = i.sections.iter().map(|s| s.anchor.as_str()).collect();
        assert_eq!(anchors, ["a", "a-2", "a-3", "a-4"]);
        // 20,000 equal headings: quadratic (or worse) took minutes.
        let start = std::time::Instant::now();
        let i = parse_str(Path::new("a.md"), &with_body(&"## Same\n\nx\n\n".repeat(20_000))).unwrap();
        assert_eq!(i.sections.last().map(|s| s.anchor.as_str()), Some("same-20000"));
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
    }

    #[test]
    fn a_file_that_is_not_regular_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = parse_file(dir.path()).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
        // A FIFO blocked the reader forever (and with it the daemon's scheduler).
        let fifo = dir.path().join("hang.md");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
        if made {
            let e = read_source(&fifo).unwrap_err();
            assert!(e.message.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn override_keys_are_checked() {
        let t = GOOD.replace("+++\nIntro", "[channels.x]\nposts = []\n+++\nIntro");
        let e = parse_str(Path::new("a.md"), &t).unwrap_err();
        assert_eq!(e.line, 8);
        assert!(e.message.contains("`channels.x.posts` must be a non-empty list"), "{e}");
    }
}
