//! The render pipeline: issue + channel config + templates → [`Rendering`], checked against
//! the network's own count. Pure: it reads template files, never the network or the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::{Context, Handlebars};
use serde::Deserialize;
use serde_json::{Value, json};

use super::count::{Network, Rules};
use super::helpers::{self, Utm};
use super::split::{SplitOptions, split_thread_counted};
use super::templates;
use super::{ArticleRendering, BodyRendering, EmailRendering, LinkCard, Post, PostsRendering, Rendering, facets};
use crate::config::{ChannelConfig, LoadedConfig, PostFormat};
use crate::issue::{Block, Issue, markdown};

/// One channel's rendering.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RenderedChannel {
    /// Channel name.
    pub channel: String,
    /// Channel type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it receives.
    pub rendering: Rendering,
}

/// A channel that failed to render or check, with the reason and the offending text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("channel {channel}: {message}")]
pub struct RenderError {
    /// Channel name.
    pub channel: String,
    /// What is wrong.
    pub message: String,
}

/// What `channels/<type>/manifest.toml` declares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// email, article, posts or body.
    pub kind: String,
    /// For posts: whose count applies.
    #[serde(default)]
    pub network: Option<Network>,
    /// One line for `check`.
    #[serde(default)]
    pub description: String,
    /// Output name → template file.
    pub outputs: BTreeMap<String, String>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
}

/// `[limits]` in a manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The network's limit, for the record; the count itself lives in `render::count`.
    #[serde(default)]
    pub max: Option<usize>,
}

/// One channel's compiled templates.
pub struct ChannelTemplates {
    name: String,
    cfg: ChannelConfig,
    manifest: Manifest,
    /// `.html.hbs` templates: HTML-escaped.
    html: Handlebars<'static>,
    /// Everything else: no escaping (text, Markdown, JSON through `{{json}}`).
    plain: Handlebars<'static>,
}

/// Read a channel file: the override folder first, then the embedded default. A manifest's
/// file names stay inside the folder: no `..`, no absolute path, no link out of it.
fn read_file(kind: &str, override_dir: Option<&Path>, file: &str) -> Result<(String, String), String> {
    let inside = Path::new(file).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside || file.is_empty() {
        return Err(format!("template file {file:?} leaves the template folder (hint: name a file inside the folder, e.g. \"body.html.hbs\")"));
    }
    if let Some(dir) = override_dir {
        let p = dir.join(file);
        if p.exists() {
            // A symbolic link may still point outside.
            if let (Ok(real), Ok(root)) = (p.canonicalize(), dir.canonicalize())
                && !real.starts_with(&root)
            {
                return Err(format!("template file {} leaves the template folder (it links to {})", p.display(), real.display()));
            }
            return std::fs::read_to_string(&p).map(|s| (p.display().to_string(), s)).map_err(|e| format!("cannot read {}: {e}", p.display()));
        }
    }
    templates::default_file(kind, file)
        .map(|s| (format!("channels/{kind}/{file}"), s.to_string()))
        .ok_or_else(|| format!("no template {file} for channel type {kind}"))
}

fn medium(kind: &str) -> &'static str {
    match kind {
        "email" | "email_api" => "email",
        "substack" => "syndication",
        "webhook" | "exec" => "webhook",
        _ => "social",
    }
}

impl ChannelTemplates {
    /// Load and compile a channel's manifest and templates. `utm` is filled per issue later,
    /// so compile-time checks (`herald check` without an issue) use a neutral one.
    pub fn load(name: &str, cfg: &ChannelConfig, base_dir: &Path) -> Result<Self, RenderError> {
        let err = |m: String| RenderError { channel: name.to_string(), message: m };
        let kind = cfg.template_kind();
        let override_dir: Option<PathBuf> = cfg.common().template.as_ref().map(|p| if p.is_absolute() { p.clone() } else { base_dir.join(p) });
        if let Some(d) = &override_dir
            && !d.is_dir() {
                return Err(err(format!("template folder {} does not exist", d.display())));
            }
        let (mpath, mtext) = read_file(kind, override_dir.as_deref(), "manifest.toml").map_err(err)?;
        let manifest: Manifest = toml::from_str(&mtext).map_err(|e| err(format!("{mpath}: {}", e.message())))?;
        let mut html = Handlebars::new();
        let mut plain = Handlebars::new();
        for hb in [&mut html, &mut plain] {
            hb.set_strict_mode(true);
            hb.set_prevent_indent(true);
        }
        plain.register_escape_fn(handlebars::no_escape);
        let mut paths = BTreeMap::new();
        for file in manifest.outputs.values() {
            let (path, text) = read_file(kind, override_dir.as_deref(), file).map_err(|m| err(format!("{mpath}: {m}")))?;
            if let Some((line, what)) = too_deep(&text) {
                return Err(err(format!("{path}: line {line}: {what} (hint: flatten the template, or move a part into its own output and include it)")));
            }
            let hb = if file.ends_with(".html.hbs") { &mut html } else { &mut plain };
            hb.register_template_string(file, text).map_err(|e| err(format!("{path}: {}", template_error(&e))))?;
            paths.insert(file.clone(), path);
        }
        for hb in [&html, &plain] {
            include_cycle(hb).map_err(|(file, m)| err(format!("{}: {m}", paths.get(&file).map_or(file.as_str(), String::as_str))))?;
        }
        Ok(Self { name: name.to_string(), cfg: cfg.clone(), manifest, html, plain })
    }

    /// Render every declared output with a sample issue, as `check` does without an issue of
    /// its own: a variable or helper argument that names nothing, a partial that is missing, or
    /// a body that is not JSON shows before anything is published. Lengths are not checked.
    pub fn dry_run(&mut self) -> Result<(), RenderError> {
        let issue = crate::issue::parse_str(Path::new("sample-issue.md"), SAMPLE_ISSUE)
            .map_err(|e| RenderError { channel: self.name.clone(), message: format!("the built-in sample issue: {e}") })?;
        let utm = self.utm(&issue);
        self.registries(&utm);
        let mut ctx = context(&issue, &self.name, self.cfg.type_name(), self.manifest.network, &utm);
        // What a thread section template sees.
        ctx["section"] = ctx["issue"]["sections"][0].clone();
        ctx["index"] = json!(1);
        ctx["total"] = json!(issue.sections.len());
        let outputs: Vec<String> = self.manifest.outputs.keys().cloned().collect();
        for output in outputs {
            let text = self.render_output(&output, &ctx)?;
            if self.manifest.kind == "body" && output == "body" {
                parse_body(&text).map_err(|m| RenderError { channel: self.name.clone(), message: format!("{}: {m}", self.manifest.outputs[&output]) })?;
            }
        }
        Ok(())
    }

    fn utm(&self, issue: &Issue) -> Utm {
        Utm {
            source: self.name.clone(),
            medium: medium(self.cfg.type_name()),
            campaign: issue.meta.slug.clone(),
            host: url::Url::parse(&issue.meta.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default(),
            enabled: self.cfg.common().utm,
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn registries(&mut self, utm: &Utm) {
        for hb in [&mut self.html, &mut self.plain] {
            helpers::register(hb, utm.clone(), self.manifest.network);
        }
    }

    fn render_output(&self, output: &str, ctx: &Value) -> Result<String, RenderError> {
        self.render_with(output, &Context::from(ctx.clone()))
    }

    /// Render one output with a context built once: `Handlebars::render` converts (copies) its
    /// data on every call, which made a thread of n sections O(n²).
    fn render_with(&self, output: &str, ctx: &Context) -> Result<String, RenderError> {
        let file = self.manifest.outputs.get(output).ok_or_else(|| RenderError {
            channel: self.name.clone(),
            message: format!("the manifest declares no `{output}` output"),
        })?;
        let hb = if file.ends_with(".html.hbs") { &self.html } else { &self.plain };
        hb.render_with_context(file, ctx).map_err(|e| RenderError { channel: self.name.clone(), message: format!("{file}: {}", render_error(&e)) })
    }

    /// Render this channel for `issue`.
    pub fn render(&mut self, issue: &Issue) -> Result<Rendering, RenderError> {
        self.render_shared(issue, &Shared::new(issue))
    }

    /// Render this channel for `issue`, whose blocks `shared` has converted for every channel.
    pub fn render_shared(&mut self, issue: &Issue, shared: &Shared) -> Result<Rendering, RenderError> {
        self.render_reusing(issue, shared, &mut None)
    }

    /// [`Self::render_shared`] with `reuse`, the context another channel rendered the same issue
    /// with (or `None`: built here and left in it), changed in place for this channel: only what
    /// differs between channels is rebuilt (see [`retarget`]), not every section's strings.
    pub fn render_reusing(&mut self, issue: &Issue, shared: &Shared, reuse: &mut Option<Context>) -> Result<Rendering, RenderError> {
        let type_name = self.cfg.type_name();
        let utm = self.utm(issue);
        // One context for every output: `Context::from` takes the value, never a copy per output.
        let c = match reuse {
            Some(c) => {
                retarget(c.data_mut(), issue, shared, &self.name, type_name, self.manifest.network, &utm);
                c
            }
            None => reuse.insert(Context::from(context_shared(issue, shared, &self.name, type_name, self.manifest.network, &utm))),
        };
        self.render_context(issue, c, utm)
    }

    fn render_context(&mut self, issue: &Issue, c: &mut Context, utm: Utm) -> Result<Rendering, RenderError> {
        let name = self.name.clone();
        let err = |m: String| RenderError { channel: name.clone(), message: m };
        self.registries(&utm);
        let over = issue.meta.channels.get(&self.name).cloned().unwrap_or_default();
        match self.manifest.kind.as_str() {
            "email" => {
                let subject = match &over.subject {
                    Some(s) => s.clone(),
                    None => self.render_with("subject", c)?,
                };
                let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
                if subject.is_empty() {
                    return Err(err("the subject is empty".into()));
                }
                let html = self.render_with("html", c)?;
                let html = css_inline::inline(&html).map_err(|e| err(format!("CSS inlining failed: {e}")))?;
                let text = tidy_text(&self.render_with("text", c)?);
                Ok(Rendering::Email(EmailRendering { subject, html, text }))
            }
            "article" => {
                let title = over.subject.clone().map(Ok).unwrap_or_else(|| self.render_with("title", c))?.trim().to_string();
                let subtitle = over.subtitle.clone().map(Ok).unwrap_or_else(|| self.render_with("subtitle", c))?.trim().to_string();
                let body_md = self.render_with("body", c)?;
                let (html, doc) = super::prosemirror::markdown_to_html_and_doc(&body_md);
                Ok(Rendering::Article(ArticleRendering {
                    title,
                    subtitle,
                    html,
                    doc: Some(doc),
                    slug: Some(issue.meta.slug.clone()),
                    canonical_url: Some(issue.meta.url.clone()),
                }))
            }
            "posts" => {
                let network = self.manifest.network.ok_or_else(|| err("a posts manifest needs `network`".into()))?;
                self.render_posts(issue, network, c, &over, &utm)
            }
            "body" => {
                let text = self.render_with("body", c)?;
                let body = parse_body(&text).map_err(err)?;
                Ok(Rendering::Body(BodyRendering { body }))
            }
            other => Err(err(format!("unknown manifest kind `{other}` (expected email, article, posts or body)"))),
        }
    }

    fn render_posts(&self, issue: &Issue, network: Network, c: &mut Context, over: &crate::issue::ChannelOverride, utm: &Utm) -> Result<Rendering, RenderError> {
        let err = |m: String| RenderError { channel: self.name.clone(), message: m };
        let rules = self.cfg.rules(network);
        let opts = self.cfg.post_options().cloned().unwrap_or_default();
        // A hand-written `text` is one post whatever the format; hand-written `posts` are a thread.
        let format = if network == Network::Linkedin || over.text.is_some() {
            PostFormat::Short
        } else if over.posts.is_some() {
            PostFormat::Thread
        } else {
            opts.format
        };
        let finish = |t: &str| {
            let t = tidy_text(t);
            if network == Network::Linkedin { super::count::linkedin_escape(&t) } else { t }
        };
        // Each post with its count, when the splitter has measured it already.
        let texts: Vec<(String, Option<usize>)> = match format {
            PostFormat::Short => {
                let t = match &over.text {
                    Some(t) => finish(t),
                    None => self.fit_short(rules, c, &issue.meta.summary, finish)?,
                };
                if let Err(e) = rules.check(&t) {
                    return Err(err(format!(
                        "the post does not fit: {} — text: {:?}. Shorten the template or set [channels.{}] text = \"…\" in the issue's front matter",
                        e.message, t, self.name
                    )));
                }
                vec![(t, None)]
            }
            PostFormat::Thread => {
                let parts: Vec<String> = match &over.posts {
                    Some(p) => p.iter().map(|s| tidy_text(s)).collect(),
                    None => {
                        let mut parts = vec![tidy_text(&self.render_with("thread_intro", c)?)];
                        let total = issue.sections.len();
                        // The channel's one context, changed in place per section: linear in sections.
                        for i in 0..c.data()["issue"]["sections"].as_array().map_or(0, Vec::len) {
                            let data = c.data_mut();
                            data["section"] = data["issue"]["sections"][i].clone();
                            data["index"] = json!(i + 1);
                            data["total"] = json!(total);
                            parts.push(tidy_text(&self.render_with("thread_section", c)?));
                        }
                        parts
                    }
                };
                let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
                split_thread_counted(&parts, rules, SplitOptions { counter: opts.counter })
                    .map_err(|e| {
                        err(format!("a post cannot be split to fit {} ({} max): the unbreakable text {:?} is longer than the limit", network_name(network), e.limit, e.offending))
                    })?
                    .into_iter()
                    .map(|(t, n)| (t, Some(n)))
                    .collect()
            }
        };
        let posts = texts
            .into_iter()
            .map(|(text, count)| Post {
                facets: if network == Network::Bluesky { facets::detect(&text) } else { Vec::new() },
                entities: if network == Network::X { super::count::x_entities(&text) } else { Vec::new() },
                count: count.unwrap_or_else(|| rules.count(&text)),
                limit: rules.limit(),
                text,
            })
            .collect();
        let card = matches!(network, Network::Bluesky | Network::Linkedin | Network::Telegram).then(|| LinkCard {
            uri: utm.tag(&issue.meta.url),
            title: issue.meta.title.clone(),
            description: issue.meta.summary.clone(),
            image: issue.meta.image.as_ref().map(|i| resolve_asset(&issue.path, i)),
        });
        Ok(Rendering::Posts(PostsRendering { posts, card }))
    }
}

impl ChannelTemplates {
    /// Render the short with `issue.hook` = the summary, shortening the hook by grapheme until
    /// the post fits. The author's own words elsewhere are never cut: if the rest of the post is
    /// already too long, the caller reports it.
    fn fit_short(&self, network: Rules, ctx: &mut Context, summary: &str, finish: impl Fn(&str) -> String) -> Result<String, RenderError> {
        use unicode_segmentation::UnicodeSegmentation;
        let total = summary.graphemes(true).count();
        let mut keep = total;
        loop {
            ctx.data_mut()["issue"]["hook"] = json!(helpers::truncate_graphemes(summary, keep));
            let t = finish(&self.render_with("short", ctx)?);
            let over = network.count(&t).saturating_sub(network.limit());
            if network.check(&t).is_ok() || keep == 0 {
                return Ok(t);
            }
            // Weighted counts (X: 2 per CJK char or emoji) can exceed graphemes: step by the overflow.
            keep = keep.saturating_sub(over.max(1)).min(keep.saturating_sub(1));
            if keep < 12 {
                keep = 0;
            }
        }
    }
}

fn network_name(n: Network) -> &'static str {
    match n {
        Network::X => "X",
        Network::Bluesky => "Bluesky",
        Network::Mastodon => "Mastodon",
        Network::Threads => "Threads",
        Network::Linkedin => "LinkedIn",
        Network::Telegram => "Telegram",
    }
}

/// An image path relative to the issue file becomes absolute; URLs stay as they are.
fn resolve_asset(issue_path: &Path, image: &str) -> String {
    if image.contains("://") {
        return image.to_string();
    }
    let p = Path::new(image);
    if p.is_absolute() {
        return image.to_string();
    }
    issue_path.parent().unwrap_or(Path::new(".")).join(p).display().to_string()
}

/// Trim each line's end, collapse 3+ newlines to 2, trim the whole.
fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.trim().lines() {
        let l = line.trim_end();
        if l.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(l);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// A body template's output, which must be JSON.
fn parse_body(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("the body template did not produce valid JSON ({e}); use {{{{json value}}}} for strings"))
}

/// The issue `check` renders every template with when it is given none.
const SAMPLE_ISSUE: &str = "+++\ntitle = \"Sample issue\"\nslug = \"sample-issue\"\nnumber = 1\ndate = 2026-01-05\n\
url = \"https://news.example.com/sample-issue\"\nsummary = \"A sample issue, rendered by herald check.\"\n\
tags = [\"sample\"]\nimage = \"https://news.example.com/cover.png\"\n+++\n\
Intro with [a link](https://news.example.com/a).\n\n## First section\n\nSome *text* and a [link](https://example.org/b).\n\n\
## Second section\n\n- one\n- two\n";

/// The deepest nesting of blocks (`{{#if}}…{{/if}}`) in a template: the template parser and
/// renderer recurse once per level.
pub const MAX_TEMPLATE_BLOCKS: usize = 32;
/// The deepest nesting of subexpressions (`(a (b (c)))`) in one tag.
pub const MAX_TEMPLATE_PARENS: usize = 16;

/// Whether a template's blocks or subexpressions nest deeper than the parser can take: the
/// 1-based line and what is too deep. A linear scan of the tags, before the parser runs.
fn too_deep(text: &str) -> Option<(usize, String)> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(at) = memchr::memmem::find(&bytes[i..], b"{{").map(|a| a + i) {
        let line = || 1 + memchr::memchr_iter(b'\n', &bytes[..at]).count();
        let end = memchr::memmem::find(&bytes[at..], b"}}").map_or(bytes.len(), |e| at + e);
        let tag = &bytes[at + 2..end];
        let tag = tag.strip_prefix(b"{").unwrap_or(tag);
        let tag = tag.strip_prefix(b"~").unwrap_or(tag);
        match tag.first() {
            Some(b'#') => depth += 1,
            Some(b'^') if tag.len() > 1 && !tag[1..].iter().all(u8::is_ascii_whitespace) && tag[1] != b'~' => depth += 1,
            Some(b'/') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_TEMPLATE_BLOCKS {
            return Some((line(), format!("blocks nested more than {MAX_TEMPLATE_BLOCKS} deep")));
        }
        let mut parens = 0usize;
        for b in tag {
            match b {
                b'(' => parens += 1,
                b')' => parens = parens.saturating_sub(1),
                _ => {}
            }
            if parens > MAX_TEMPLATE_PARENS {
                return Some((line(), format!("subexpressions nested more than {MAX_TEMPLATE_PARENS} deep")));
            }
        }
        i = (end + 2).min(bytes.len());
        if i >= bytes.len() {
            break;
        }
    }
    None
}

/// A partial (`{{> name}}`) or inline partial that reaches itself again, directly or through
/// others, would recurse until the stack overflows: find such a loop before anything renders.
/// Error: (the template it starts in, the message with the loop).
fn include_cycle(hb: &Handlebars<'_>) -> Result<(), (String, String)> {
    use handlebars::template::{Template, TemplateElement};
    // Every node (a registered template or an inline partial) → the partials it includes.
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, t) in hb.get_templates() {
        // An explicit stack: (the node a template belongs to, the template).
        let mut stack: Vec<(String, &Template)> = vec![(name.clone(), t)];
        while let Some((node, t)) = stack.pop() {
            for el in &t.elements {
                match el {
                    TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                        let Some(target) = d.name.as_name() else {
                            return Err((name.clone(), "a partial whose name is computed (`{{> (…)}}`) cannot be checked for loops; name it".into()));
                        };
                        edges.entry(node.clone()).or_default().push(target.to_string());
                        if let Some(inner) = &d.template {
                            stack.push((node.clone(), inner));
                        }
                    }
                    TemplateElement::DecoratorBlock(d) | TemplateElement::DecoratorExpression(d) => {
                        let inline = d.name.as_name() == Some("inline");
                        let def = d.params.first().and_then(|p| match p {
                            handlebars::template::Parameter::Literal(Value::String(s)) => Some(s.clone()),
                            _ => None,
                        });
                        if let (true, Some(def), Some(inner)) = (inline, def, &d.template) {
                            edges.entry(def.clone()).or_default();
                            stack.push((def, inner));
                        } else if let Some(inner) = &d.template {
                            stack.push((node.clone(), inner));
                        }
                    }
                    TemplateElement::HelperBlock(h) => {
                        for inner in [&h.template, &h.inverse].into_iter().flatten() {
                            stack.push((node.clone(), inner));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // Depth-first search with colours, iteratively: grey nodes are on the current path.
    let mut done: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for start in edges.keys() {
        if done.contains(start.as_str()) {
            continue;
        }
        let mut path: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        while let Some((node, i)) = path.last_mut() {
            let next = edges.get(*node).and_then(|v| v.get(*i)).map(String::as_str);
            *i += 1;
            match next {
                None => {
                    done.insert(node);
                    path.pop();
                }
                Some(n) if path.iter().any(|(p, _)| *p == n) => {
                    let from = path.iter().position(|(p, _)| *p == n).unwrap_or(0);
                    let cycle: Vec<&str> = path[from..].iter().map(|(p, _)| *p).chain([n]).collect();
                    let owner = if hb.get_template(start).is_some() { start.clone() } else { cycle[0].to_string() };
                    return Err((owner, format!("templates include each other in a loop: {} (hint: a partial may not include itself, directly or through others)", cycle.join(" → "))));
                }
                Some(n) if done.contains(n) || !edges.contains_key(n) => {}
                Some(n) => path.push((n, 0)),
            }
        }
    }
    Ok(())
}

fn template_error(e: &handlebars::TemplateError) -> String {
    match e.pos() {
        Some((l, c)) => format!("line {l}, column {c}: {}", e.reason()),
        None => e.reason().to_string(),
    }
}

fn render_error(e: &handlebars::RenderError) -> String {
    let mut s = e.reason().to_string();
    if let Some(l) = e.line_no {
        s = format!("line {l}: {s}");
    }
    if s.contains("strict mode") || s.contains("missing") {
        s.push_str(" (templates run in strict mode: every variable must exist; see `herald render --json` for the context fields)");
    }
    s
}

/// What every channel's context shares, computed once per issue: each block's HTML and text
/// from its own (untagged) Markdown, and which blocks and links UTM tagging changes at all.
/// Tagging only ever touches links to the issue's own site, and which links those are does not
/// depend on the channel (only the tag's `utm_source` does), so a block without one renders the
/// same for every channel: it is converted once, not once per channel.
pub struct Shared {
    intro: SharedBlock,
    sections: Vec<SharedBlock>,
    /// Per issue link: whether tagging changes it.
    links: Vec<bool>,
}

struct SharedBlock {
    html: String,
    text: String,
    /// Whether tagging changes this block's Markdown.
    tagged: bool,
    /// Per link: whether tagging changes it.
    links: Vec<bool>,
}

impl Shared {
    /// Convert every block of `issue` once.
    pub fn new(issue: &Issue) -> Self {
        // Any enabled tagger for the issue's site finds the same links to tag.
        let probe = Utm {
            source: String::new(),
            medium: "",
            campaign: String::new(),
            host: url::Url::parse(&issue.meta.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default(),
            enabled: true,
        };
        let tags = |url: &str| probe.tag(url) != url;
        let block = |b: &Block| {
            let (html, text) = if b.trimmed_alike { (b.html.clone(), b.text.clone()) } else { markdown::to_html_and_text(&b.markdown) };
            SharedBlock { html, text, tagged: probe.tag_markdown(&b.markdown) != b.markdown, links: b.links.iter().map(|l| tags(&l.url)).collect() }
        };
        Shared { intro: block(&issue.intro), sections: issue.sections.iter().map(|s| block(&s.body)).collect(), links: issue.links.iter().map(|l| tags(&l.url)).collect() }
    }
}

/// `url` tagged for this channel, when tagging changes it (`tags`, from [`Shared`]).
fn tag_known(utm: &Utm, url: &str, tags: bool) -> String {
    if tags { utm.tag(url) } else { url.to_string() }
}

// The context is built from owned values, moved in: `json!` serialises each value it is given
// into a new one, which copied every section's strings twice and dropped the copies again (for
// 1,000 sections, a third of the render's instructions).

/// A JSON object of `(key, value)` pairs.
fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn links_json(links: &[crate::issue::Link], tags: &[bool], utm: &Utm) -> Value {
    Value::Array(
        links
            .iter()
            .zip(tags)
            .map(|(l, &t)| object([("url", Value::String(tag_known(utm, &l.url, t))), ("text", Value::String(l.text.clone()))]))
            .collect(),
    )
}

fn block_json(b: &Block, shared: &SharedBlock, utm: &Utm) -> Value {
    let (md, html, text) = if utm.enabled && shared.tagged {
        let md = utm.tag_markdown(&b.markdown);
        let (html, text) = markdown::to_html_and_text(&md);
        (md, html, text)
    } else {
        (b.markdown.clone(), shared.html.clone(), shared.text.clone())
    };
    object([
        ("markdown", Value::String(md)),
        ("html", Value::String(html)),
        ("text", Value::String(text)),
        ("first_paragraph", Value::String(b.first_paragraph.clone())),
        ("links", links_json(&b.links, &shared.links, utm)),
    ])
}

fn section_json(s: &crate::issue::Section, sh: &SharedBlock, utm: &Utm, link: &str) -> Value {
    let mut v = block_json(&s.body, sh, utm);
    v["title"] = Value::String(s.title.clone());
    v["anchor"] = Value::String(s.anchor.clone());
    v["url"] = Value::String(format!("{link}#{}", s.anchor));
    v
}

/// Whether a block's context differs between channels: UTM tagging changes its Markdown or
/// one of its links (with the channel in `utm_source`).
fn per_channel(b: &SharedBlock) -> bool {
    b.tagged || b.links.contains(&true)
}

/// Make `ctx`, [`context_shared`] for another channel of the same issue (and `shared`), equal
/// to [`context_shared`] for this one: the channel, the tagged link and site, the blocks and
/// links UTM tagging changes, each section's `url`; and undo what rendering the other channel
/// set (a thread's `section`, `index` and `total`, a short's shortened `hook`). Every other
/// value is the same for every channel and is kept.
fn retarget(ctx: &mut Value, issue: &Issue, shared: &Shared, channel: &str, type_name: &str, network: Option<Network>, utm: &Utm) {
    if let Value::Object(root) = ctx {
        root.retain(|k, _| k == "issue" || k == "channel");
    }
    ctx["channel"] = json!({ "name": channel, "type": type_name, "network": network });
    let m = &issue.meta;
    let link = utm.tag(&m.url);
    let i = &mut ctx["issue"];
    i["hook"] = Value::String(m.summary.clone());
    i["site"] = Value::String(utm.host.clone());
    if per_channel(&shared.intro) {
        i["intro"] = block_json(&issue.intro, &shared.intro, utm);
    }
    let moved = i["link"].as_str() != Some(link.as_str());
    if let Value::Array(sections) = &mut i["sections"] {
        for ((s, sh), v) in issue.sections.iter().zip(&shared.sections).zip(sections) {
            if per_channel(sh) {
                *v = section_json(s, sh, utm, &link);
            } else if moved {
                v["url"] = Value::String(format!("{link}#{}", s.anchor));
            }
        }
    }
    if shared.links.contains(&true) {
        i["links"] = links_json(&issue.links, &shared.links, utm);
    }
    i["link"] = Value::String(link);
}

/// The template context: `issue`, `channel`, and per thread section `section`, `index`, `total`.
pub fn context(issue: &Issue, channel: &str, type_name: &str, network: Option<Network>, utm: &Utm) -> Value {
    context_shared(issue, &Shared::new(issue), channel, type_name, network, utm)
}

/// [`context`], with the issue's blocks converted once for every channel.
pub fn context_shared(issue: &Issue, shared: &Shared, channel: &str, type_name: &str, network: Option<Network>, utm: &Utm) -> Value {
    let m = &issue.meta;
    let link = utm.tag(&m.url);
    let sections: Vec<Value> = issue
        .sections
        .iter()
        .zip(&shared.sections)
        .map(|(s, sh)| section_json(s, sh, utm, &link))
        .collect();
    let mut ctx = json!({
        "issue": {
            "slug": m.slug,
            "version": issue.version,
            "title": m.title,
            "number": m.number,
            "date": m.date.to_string(),
            "url": m.url,
            "link": link,
            "site": utm.host,
            "summary": m.summary,
            "hook": m.summary,
            "tags": m.tags,
            "hashtags": m.tags.iter().map(|t| helpers::hashtag(t)).filter(|t| t.len() > 1).collect::<Vec<_>>().join(" "),
            "image": m.image,
            "intro": null,
            "sections": null,
            "links": null,
        },
        "channel": { "name": channel, "type": type_name, "network": network },
    });
    let i = &mut ctx["issue"];
    i["intro"] = block_json(&issue.intro, &shared.intro, utm);
    i["sections"] = Value::Array(sections);
    i["links"] = links_json(&issue.links, &shared.links, utm);
    ctx
}

/// Compile every enabled channel's templates (for `herald check` without an issue).
pub fn compile_all(cfg: &LoadedConfig) -> Vec<RenderError> {
    cfg.config
        .channels
        .iter()
        .filter(|(_, c)| c.common().enabled)
        .filter_map(|(name, c)| ChannelTemplates::load(name, c, &cfg.base_dir).and_then(|mut t| t.dry_run()).err())
        .collect()
}

/// Postmark's limit on one message, attachments included ("Messages can be up to 10 MB").
pub const POSTMARK_MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// Refuse a rendering the network will surely refuse for its size, before anything is sent.
fn size_limit(name: &str, c: &crate::config::ChannelConfig, r: Rendering) -> Result<Rendering, RenderError> {
    c.size_limit(&r).map_err(|message| RenderError { channel: name.to_string(), message })?;
    Ok(r)
}

/// Render every enabled channel (or only `only`), skipping channels the issue opts out of
/// (`skip = true`). Returns all renderings, or every failure.
pub fn render_channels(issue: &Issue, cfg: &LoadedConfig, only: &[String]) -> Result<Vec<RenderedChannel>, Vec<RenderError>> {
    let mut errors = Vec::new();
    for name in only {
        if !cfg.config.channels.contains_key(name) {
            let known = cfg.config.channels.keys().cloned().collect::<Vec<_>>().join(", ");
            errors.push(RenderError { channel: name.clone(), message: format!("no such channel in the config (configured: {known})") });
        }
    }
    for name in issue.meta.channels.keys() {
        if !cfg.config.channels.contains_key(name) {
            errors.push(RenderError {
                channel: name.clone(),
                message: format!("{}: the front matter has [channels.{name}] but the config has no such channel", issue.path.display()),
            });
        }
    }
    let mut out = Vec::new();
    let shared = Shared::new(issue);
    // One context, changed in place from channel to channel.
    let mut reuse = None;
    for (name, c) in &cfg.config.channels {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        if only.is_empty() && !c.common().enabled {
            continue;
        }
        if issue.meta.channels.get(name).is_some_and(|o| o.skip) {
            continue;
        }
        match ChannelTemplates::load(name, c, &cfg.base_dir).and_then(|mut t| t.render_reusing(issue, &shared, &mut reuse)).and_then(|r| size_limit(name, c, r)) {
            Ok(rendering) => out.push(RenderedChannel { channel: name.clone(), kind: c.type_name().to_string(), rendering }),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A webhook channel whose template folder holds `files` (name, text).
    fn webhook(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<ChannelTemplates, RenderError>) {
        let dir = tempfile::tempdir().unwrap();
        for (f, t) in files {
            std::fs::write(dir.path().join(f), t).unwrap();
        }
        let cfg: ChannelConfig = toml::from_str(&format!("type = \"webhook\"\nurl = \"https://h.example\"\ntemplate = \"{}\"", dir.path().display())).unwrap();
        let t = ChannelTemplates::load("hook", &cfg, dir.path());
        (dir, t)
    }

    fn load_err(files: &[(&str, &str)]) -> String {
        match webhook(files).1 {
            Ok(_) => panic!("loaded"),
            Err(e) => e.message,
        }
    }

    fn dry_err(files: &[(&str, &str)]) -> String {
        match webhook(files).1.and_then(|mut t| t.dry_run()) {
            Ok(()) => panic!("rendered"),
            Err(e) => e.message,
        }
    }

    const BODY: (&str, &str) = ("manifest.toml", "kind = \"body\"\n[outputs]\nbody = \"body.json.hbs\"\nextra = \"extra.hbs\"\n");

    /// `render_channels` changes one context from channel to channel: each channel must still
    /// see exactly the context it would alone. A thread (which sets `section`, `index`, `total`)
    /// and a short whose hook is cut come before a probe that prints its whole context; own-site
    /// links are tagged per channel, and one channel has tagging off. Fails if `retarget` keeps
    /// the thread's keys, the cut hook, or the previous channel's tags or links.
    #[test]
    fn a_reused_context_is_the_context_each_channel_has_alone() {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::create_dir(&probe).unwrap();
        std::fs::write(probe.join("manifest.toml"), "kind = \"body\"\n[outputs]\nbody = \"body.json.hbs\"\n").unwrap();
        std::fs::write(probe.join("body.json.hbs"), "{\"ctx\": {{json this}}}").unwrap();
        let long = "word ".repeat(120);
        let tok = dir.path().join("token");
        std::fs::write(&tok, "t").unwrap();
        let toml = format!(
            "[channels.a_thread]\ntype = \"mastodon\"\naccess_token_file = \"{tok}\"\nformat = \"thread\"\n\
             [channels.b_short]\ntype = \"x\"\naccess_token_file = \"{tok}\"\nformat = \"short\"\nutm = false\n\
             [channels.c_probe]\ntype = \"webhook\"\nurl = \"https://h.example\"\ntemplate = \"{}\"\n\
             [channels.d_probe]\ntype = \"webhook\"\nurl = \"https://h.example\"\ntemplate = \"{}\"\nutm = false\n",
            probe.display(),
            probe.display(),
            tok = tok.display()
        );
        let cfg_path = dir.path().join("herald.toml");
        std::fs::write(&cfg_path, toml).unwrap();
        let cfg = crate::config::load(&cfg_path).unwrap();
        let text = format!(
            "+++\ntitle = \"T\"\nslug = \"t\"\ndate = 2026-01-05\nurl = \"https://news.example.com/t\"\nsummary = \"{long}\"\n+++\n\
             Intro [own](https://news.example.com/a).\n\n## One\n\nOwn [x](https://news.example.com/b) and [other](https://o.example/c).\n\n\
             ## Two\n\nOnly [other](https://o.example/d).\n"
        );
        let issue = crate::issue::parse::parse_str(Path::new("t.md"), &text).unwrap();
        let all = render_channels(&issue, &cfg, &[]).unwrap();
        assert_eq!(all.len(), 4);
        for r in &all {
            let alone = ChannelTemplates::load(&r.channel, &cfg.config.channels[&r.channel], &cfg.base_dir).unwrap().render(&issue).unwrap();
            assert_eq!(serde_json::to_value(&r.rendering).unwrap(), serde_json::to_value(&alone).unwrap(), "{}", r.channel);
        }
        let Rendering::Body(b) = &all[2].rendering else { panic!("a body") };
        assert_eq!(b.body["ctx"]["channel"]["name"], "c_probe");
        assert!(b.body["ctx"]["issue"]["sections"][0]["html"].as_str().unwrap().contains("utm_source=c_probe"), "{}", b.body);
    }

    /// Issue 16 item 6: a message over Postmark's 10 MB is refused before anything is sent (an
    /// issue is capped at 2 MiB, but a template can still grow a message past the limit).
    #[test]
    fn postmark_messages_over_10_mb_are_refused() {
        let cfg: ChannelConfig = toml::from_str(
            "type = \"email_api\"\nserver_token = \"${T}\"\nfrom = \"a@example.com\"\nunsubscribe_base_url = \"https://x.example/u\"",
        )
        .unwrap();
        let email = |n: usize| Rendering::Email(crate::render::types::EmailRendering { subject: "s".into(), html: "x".repeat(n), text: String::new() });
        assert!(size_limit("pm", &cfg, email(POSTMARK_MAX_MESSAGE - 10)).is_ok());
        let e = size_limit("pm", &cfg, email(POSTMARK_MAX_MESSAGE + 1)).unwrap_err();
        assert!(e.message.contains("over Postmark's 10 MB limit"), "{}", e.message);
    }

    #[test]
    fn include_loops_are_found_before_rendering() {
        // Each of these overflowed the stack when rendered.
        let m = load_err(&[BODY, ("body.json.hbs", "{{> body.json.hbs}}"), ("extra.hbs", "x")]);
        assert!(m.contains("include each other in a loop: body.json.hbs → body.json.hbs"), "{m}");
        let m = load_err(&[BODY, ("body.json.hbs", "{{#each issue.sections}}{{> extra.hbs}}{{/each}}"), ("extra.hbs", "{{#if x}}{{> body.json.hbs}}{{/if}}")]);
        assert!(m.contains("in a loop") && m.contains("body.json.hbs") && m.contains("extra.hbs"), "{m}");
        let m = load_err(&[BODY, ("body.json.hbs", "{{#*inline \"l\"}}{{> l}}{{/inline}}{{> l}}"), ("extra.hbs", "x")]);
        assert!(m.contains("in a loop: l → l"), "{m}");
        let m = load_err(&[BODY, ("body.json.hbs", &format!("{}x{}", "{{#if a}}".repeat(3_000), "{{/if}}".repeat(3_000))), ("extra.hbs", "x")]);
        assert!(m.contains("blocks nested more than 32 deep"), "{m}");
        // A partial used twice, without a loop, is fine.
        let (_d, t) = webhook(&[BODY, ("body.json.hbs", "[{{> extra.hbs}}, {{> extra.hbs}}]"), ("extra.hbs", "{{json issue.slug}}")]);
        t.unwrap().dry_run().unwrap();
    }

    #[test]
    fn manifest_outputs_stay_in_their_folder() {
        for bad in ["../../../../etc/passwd", "/etc/passwd", "a/../../x"] {
            let m = load_err(&[("manifest.toml", &format!("kind = \"body\"\n[outputs]\nbody = \"{bad}\"\n"))]);
            assert!(m.contains("leaves the template folder"), "{bad}: {m}");
        }
    }

    #[test]
    fn check_renders_each_template_with_a_sample() {
        let m = dry_err(&[BODY, ("body.json.hbs", "{\"t\": {{issue.title}}}"), ("extra.hbs", "x")]);
        assert!(m.contains("did not produce valid JSON"), "{m}");
        // Strict mode covers helper arguments: this rendered "" before.
        let m = dry_err(&[BODY, ("body.json.hbs", "{\"t\": \"{{md_text issue.nosuch}}\"}"), ("extra.hbs", "x")]);
        assert!(m.contains("`md_text`: the argument `issue.nosuch` is not in the context"), "{m}");
        let m = dry_err(&[BODY, ("body.json.hbs", "{}"), ("extra.hbs", "{{json issue.nosuch}}")]);
        assert!(m.contains("extra.hbs") && m.contains("`json`: the argument `issue.nosuch`"), "{m}");
        // Present but null is not missing.
        let (_d, t) = webhook(&[BODY, ("body.json.hbs", "{\"n\": {{json issue.number}}, \"t\": \"{{md_text issue.intro.markdown}}\"}"), ("extra.hbs", "x")]);
        t.unwrap().dry_run().unwrap();
    }

    #[test]
    fn substack_renders_and_reads_back_at_the_nesting_cap() {
        use crate::issue::parse::MAX_NESTING;
        let md = |depth: usize| {
            format!(
                "+++\ntitle = \"T\"\nslug = \"s\"\ndate = 2026-01-05\nurl = \"https://e.example/s\"\nsummary = \"H.\"\n+++\nIntro.\n\n## Deep\n\n{}x\n",
                "- ".repeat(depth)
            )
        };
        let issue = crate::issue::parse_str(Path::new("a.md"), &md(MAX_NESTING)).unwrap();
        let cfg: ChannelConfig = toml::from_str("type = \"substack\"\napi_base = \"https://s.example\"\ncookie = \"${C}\"").unwrap();
        let mut t = ChannelTemplates::load("substack", &cfg, Path::new(".")).unwrap();
        let r = t.render(&issue).unwrap();
        // The store keeps the rendering as JSON and the Substack adapter reads it back.
        let stored = serde_json::to_string(&r).unwrap();
        let back: super::super::Rendering = serde_json::from_str(&stored).expect("reads back at the cap");
        assert_eq!(back, r);
        // Well past the cap the same read fails: the cap is what keeps the stages working.
        let deep = super::super::prosemirror::markdown_to_doc(&format!("{}x\n", "- ".repeat(40)));
        assert!(serde_json::from_str::<Value>(&serde_json::to_string(&deep).unwrap()).is_err(), "serde_json's limit no longer bites at 40");
    }
}
