//! Reading an issue file: split the front matter, validate it, split the body into sections.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::markdown::{block, slugify};
use super::{FrontMatter, Issue, Section};

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

/// Read and parse an issue file.
pub fn parse_file(path: &Path) -> Result<Issue, IssueError> {
    let text = std::fs::read_to_string(path).map_err(|e| IssueError {
        file: path.to_path_buf(),
        line: 1,
        message: format!("cannot read the issue: {e}"),
    })?;
    parse_str(path, &text)
}

/// Parse an issue from its text. `path` is used for messages and relative assets.
pub fn parse_str(path: &Path, text: &str) -> Result<Issue, IssueError> {
    let err = |line: usize, message: String| IssueError { file: path.to_path_buf(), line, message };
    let text_nobom = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text_nobom.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "+++" {
        return Err(err(1, "the issue must start with TOML front matter between `+++` lines".into()));
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
        return Err(err(1, "the front matter has no closing `+++` line".into()));
    }
    let meta: FrontMatter = toml::from_str(&fm).map_err(|e| {
        let line = e.span().map(|s| fm[..s.start].lines().count().max(1)).unwrap_or(1) + 1;
        let mut msg = e.message().trim().to_string();
        if msg.starts_with("missing field") {
            msg = format!("front matter: {msg} (every issue needs title, slug, date, url and summary)");
        } else {
            msg = format!("front matter: {msg}");
        }
        err(line, msg)
    })?;
    if meta.title.trim().is_empty() {
        return Err(err(2, "front matter: `title` is empty".into()));
    }
    if meta.slug.is_empty() || !meta.slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(err(2, format!("front matter: `slug` {:?} must be non-empty and use only a-z, 0-9, '-' and '_'", meta.slug)));
    }
    if url::Url::parse(&meta.url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
        return Err(err(2, format!("front matter: `url` {:?} must be an absolute http(s) URL", meta.url)));
    }
    let body = &text_nobom[consumed..];
    let (intro_md, sections) = split_sections(body, body_start_line);
    let mut anchors: Vec<String> = Vec::new();
    let sections = sections
        .into_iter()
        .map(|(title, line, md)| {
            let base = slugify(&title);
            let mut anchor = base.clone();
            let mut n = 2;
            while anchors.contains(&anchor) {
                anchor = format!("{base}-{n}");
                n += 1;
            }
            anchors.push(anchor.clone());
            Section { title, anchor, body: block(&md), line }
        })
        .collect::<Vec<_>>();
    let intro = block(&intro_md);
    let mut links = intro.links.clone();
    for s in &sections {
        for l in &s.body.links {
            if !links.iter().any(|x| x.url == l.url) {
                links.push(l.clone());
            }
        }
    }
    let version = hex::encode(Sha256::digest(text.as_bytes()))[..16].to_string();
    Ok(Issue { path: path.to_path_buf(), meta, version, intro, sections, links, markdown: body.trim().to_string() })
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
