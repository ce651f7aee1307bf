//! The render pipeline: issue + channel config + templates → [`Rendering`], checked against
//! the network's own count. Pure: it reads template files, never the network or the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde::Deserialize;
use serde_json::{Value, json};

use super::count::{Network, Rules};
use super::helpers::{self, Utm};
use super::split::{SplitOptions, split_thread};
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

/// Read a channel file: the override folder first, then the embedded default.
fn read_file(kind: &str, override_dir: Option<&Path>, file: &str) -> Result<(String, String), String> {
    if let Some(dir) = override_dir {
        let p = dir.join(file);
        if p.exists() {
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
        let kind = match cfg {
            // email_api shares the email templates unless overridden.
            ChannelConfig::EmailApi(_) => "email_api",
            other => other.type_name(),
        };
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
        for file in manifest.outputs.values() {
            let (path, text) = read_file(kind, override_dir.as_deref(), file).map_err(err)?;
            let hb = if file.ends_with(".html.hbs") { &mut html } else { &mut plain };
            hb.register_template_string(file, text).map_err(|e| err(format!("{path}: {}", template_error(&e))))?;
        }
        Ok(Self { name: name.to_string(), cfg: cfg.clone(), manifest, html, plain })
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
        let file = self.manifest.outputs.get(output).ok_or_else(|| RenderError {
            channel: self.name.clone(),
            message: format!("the manifest declares no `{output}` output"),
        })?;
        let hb = if file.ends_with(".html.hbs") { &self.html } else { &self.plain };
        hb.render(file, ctx).map_err(|e| RenderError { channel: self.name.clone(), message: format!("{file}: {}", render_error(&e)) })
    }

    /// Render this channel for `issue`.
    pub fn render(&mut self, issue: &Issue) -> Result<Rendering, RenderError> {
        let name = self.name.clone();
        let err = |m: String| RenderError { channel: name.clone(), message: m };
        let type_name = self.cfg.type_name();
        let utm = Utm {
            source: self.name.clone(),
            medium: medium(type_name),
            campaign: issue.meta.slug.clone(),
            host: url::Url::parse(&issue.meta.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default(),
            enabled: self.cfg.common().utm,
        };
        self.registries(&utm);
        let ctx = context(issue, &self.name, type_name, self.manifest.network, &utm);
        let over = issue.meta.channels.get(&self.name).cloned().unwrap_or_default();
        match self.manifest.kind.as_str() {
            "email" => {
                let subject = match &over.subject {
                    Some(s) => s.clone(),
                    None => self.render_output("subject", &ctx)?,
                };
                let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
                if subject.is_empty() {
                    return Err(err("the subject is empty".into()));
                }
                let html = self.render_output("html", &ctx)?;
                let html = css_inline::inline(&html).map_err(|e| err(format!("CSS inlining failed: {e}")))?;
                let text = tidy_text(&self.render_output("text", &ctx)?);
                Ok(Rendering::Email(EmailRendering { subject, html, text }))
            }
            "article" => {
                let title = over.subject.clone().map(Ok).unwrap_or_else(|| self.render_output("title", &ctx))?.trim().to_string();
                let subtitle = over.subtitle.clone().map(Ok).unwrap_or_else(|| self.render_output("subtitle", &ctx))?.trim().to_string();
                let body_md = self.render_output("body", &ctx)?;
                Ok(Rendering::Article(ArticleRendering {
                    title,
                    subtitle,
                    html: markdown::to_html(&body_md),
                    doc: Some(super::prosemirror::markdown_to_doc(&body_md)),
                    slug: Some(issue.meta.slug.clone()),
                }))
            }
            "posts" => {
                let network = self.manifest.network.ok_or_else(|| err("a posts manifest needs `network`".into()))?;
                self.render_posts(issue, network, &ctx, &over, &utm)
            }
            "body" => {
                let text = self.render_output("body", &ctx)?;
                let body: Value = serde_json::from_str(&text).map_err(|e| err(format!("the body template did not produce valid JSON ({e}); use {{{{json value}}}} for strings")))?;
                Ok(Rendering::Body(BodyRendering { body }))
            }
            other => Err(err(format!("unknown manifest kind `{other}` (expected email, article, posts or body)"))),
        }
    }

    fn render_posts(&self, issue: &Issue, network: Network, ctx: &Value, over: &crate::issue::ChannelOverride, utm: &Utm) -> Result<Rendering, RenderError> {
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
        let texts: Vec<String> = match format {
            PostFormat::Short => {
                let t = match &over.text {
                    Some(t) => finish(t),
                    None => self.fit_short(rules, ctx, &issue.meta.summary, finish)?,
                };
                if let Err(e) = rules.check(&t) {
                    return Err(err(format!(
                        "the post does not fit: {} — text: {:?}. Shorten the template or set [channels.{}] text = \"…\" in the issue's front matter",
                        e.message, t, self.name
                    )));
                }
                vec![t]
            }
            PostFormat::Thread => {
                let parts: Vec<String> = match &over.posts {
                    Some(p) => p.iter().map(|s| tidy_text(s)).collect(),
                    None => {
                        let mut parts = vec![tidy_text(&self.render_output("thread_intro", ctx)?)];
                        let total = issue.sections.len();
                        for (i, s) in ctx["issue"]["sections"].as_array().into_iter().flatten().enumerate() {
                            let mut c = ctx.clone();
                            c["section"] = s.clone();
                            c["index"] = json!(i + 1);
                            c["total"] = json!(total);
                            parts.push(tidy_text(&self.render_output("thread_section", &c)?));
                        }
                        parts
                    }
                };
                let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
                split_thread(&parts, rules, SplitOptions { counter: opts.counter }).map_err(|e| {
                    err(format!("a post cannot be split to fit {} ({} max): the unbreakable text {:?} is longer than the limit", network_name(network), e.limit, e.offending))
                })?
            }
        };
        let posts = texts
            .into_iter()
            .map(|text| Post {
                facets: if network == Network::Bluesky { facets::detect(&text) } else { Vec::new() },
                count: rules.count(&text),
                limit: rules.limit(),
                text,
            })
            .collect();
        let card = matches!(network, Network::Bluesky | Network::Linkedin).then(|| LinkCard {
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
    fn fit_short(&self, network: Rules, ctx: &Value, summary: &str, finish: impl Fn(&str) -> String) -> Result<String, RenderError> {
        use unicode_segmentation::UnicodeSegmentation;
        let total = summary.graphemes(true).count();
        let mut keep = total;
        let mut ctx = ctx.clone();
        loop {
            ctx["issue"]["hook"] = json!(helpers::truncate_graphemes(summary, keep));
            let t = finish(&self.render_output("short", &ctx)?);
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

fn block_json(b: &Block, utm: &Utm) -> Value {
    let md = utm.tag_markdown(&b.markdown);
    json!({
        "markdown": md,
        "html": markdown::to_html(&md),
        "text": markdown::to_text(&md),
        "first_paragraph": b.first_paragraph,
        "links": b.links.iter().map(|l| json!({"url": utm.tag(&l.url), "text": l.text})).collect::<Vec<_>>(),
    })
}

/// The template context: `issue`, `channel`, and per thread section `section`, `index`, `total`.
pub fn context(issue: &Issue, channel: &str, type_name: &str, network: Option<Network>, utm: &Utm) -> Value {
    let m = &issue.meta;
    let link = utm.tag(&m.url);
    let sections: Vec<Value> = issue
        .sections
        .iter()
        .map(|s| {
            let mut v = block_json(&s.body, utm);
            v["title"] = json!(s.title);
            v["anchor"] = json!(s.anchor);
            v["url"] = json!(format!("{link}#{}", s.anchor));
            v
        })
        .collect();
    json!({
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
            "intro": block_json(&issue.intro, utm),
            "sections": sections,
            "links": issue.links.iter().map(|l| json!({"url": utm.tag(&l.url), "text": l.text})).collect::<Vec<_>>(),
        },
        "channel": { "name": channel, "type": type_name, "network": network },
    })
}

/// Compile every enabled channel's templates (for `herald check` without an issue).
pub fn compile_all(cfg: &LoadedConfig) -> Vec<RenderError> {
    cfg.config
        .channels
        .iter()
        .filter(|(_, c)| c.common().enabled)
        .filter_map(|(name, c)| ChannelTemplates::load(name, c, &cfg.base_dir).err())
        .collect()
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
        match ChannelTemplates::load(name, c, &cfg.base_dir).and_then(|mut t| t.render(issue)) {
            Ok(rendering) => out.push(RenderedChannel { channel: name.clone(), kind: c.type_name().to_string(), rendering }),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}
