//! `herald preview`: one self-contained HTML page showing every channel as its reader will see
//! it. Pure: it reads `render`'s output (and the config for names and handles), never a network,
//! the store or the jobs. No external resource is referenced: CSS is inline, the email HTML sits
//! in sandboxed `srcdoc` iframes, and all text is escaped.

use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;

use crate::config::{ChannelConfig, LoadedConfig};
use crate::issue::Issue;
use crate::render::count::{self, THREADS_MAX_LINKS};
use crate::render::engine::RenderedChannel;
use crate::render::{ArticleRendering, EmailRendering, PostsRendering, Rendering};

/// What the page needs besides the renderings.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    /// Warn when a thread has more posts than this.
    pub max_thread: usize,
    /// Values for `[[merge]]` tags (normalised names → value). Unknown tags are left as written.
    pub merge: Vec<(String, String)>,
    /// Where the merge values come from, shown beside the email.
    pub merge_from: String,
    /// When serving: poll `/version` and reload when it changes. The value is the current version.
    pub reload_version: Option<u64>,
}

impl Default for PreviewOptions {
    fn default() -> Self {
        PreviewOptions { max_thread: 10, merge: sample_merge_values(), merge_from: "sample values".into(), reload_version: None }
    }
}

/// Sample merge values, used when no subscriber is at hand.
pub fn sample_merge_values() -> Vec<(String, String)> {
    [
        ("email", "reader@example.com"),
        ("name", "Sample Reader"),
        ("first_name", "Sample"),
        ("unsubscribe_url", "https://example.invalid/unsubscribe/sample-token"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One warning shown inline on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Channel name.
    pub channel: String,
    /// 1-based post number, when the warning is about one post.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post: Option<usize>,
    /// What to look at.
    pub message: String,
}

/// One highlighted span: a byte range in a post's text that the network will link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Inclusive start, UTF-8 bytes.
    pub start: usize,
    /// Exclusive end, UTF-8 bytes.
    pub end: usize,
    /// link, tag, mention, cashtag.
    pub kind: String,
}

/// Where the network will link things in `text`: Bluesky's facets and X's entities exactly as
/// `render` reports them; elsewhere the URLs the network's own rule detects.
pub fn spans(kind: &str, post: &crate::render::Post) -> Vec<Span> {
    use crate::render::FacetFeature;
    let mut out: Vec<Span> = match kind {
        "bluesky" => post
            .facets
            .iter()
            .map(|f| Span {
                start: f.index.byte_start,
                end: f.index.byte_end,
                kind: match f.features.first() {
                    Some(FacetFeature::Tag { .. }) => "tag",
                    Some(FacetFeature::Mention { .. }) => "mention",
                    _ => "link",
                }
                .into(),
            })
            .collect(),
        "x" => post
            .entities
            .iter()
            .map(|e| Span {
                start: e.index.byte_start,
                end: e.index.byte_end,
                kind: match e.kind.as_str() {
                    "url" => "link",
                    "hashtag" => "tag",
                    other => other,
                }
                .into(),
            })
            .collect(),
        "linkedin" => count::find_urls(&post.text)
            .into_iter()
            .map(|r| Span { start: r.start, end: r.end, kind: "link".into() })
            .chain(count::linkedin_hashtags(&post.text).into_iter().map(|r| Span { start: r.start, end: r.end, kind: "tag".into() }))
            .collect(),
        "mastodon" => count::find_urls_with_scheme(&post.text).into_iter().map(|r| Span { start: r.start, end: r.end, kind: "link".into() }).collect(),
        _ => count::find_urls(&post.text).into_iter().map(|r| Span { start: r.start, end: r.end, kind: "link".into() }).collect(),
    };
    out.sort_by_key(|s| (s.start, s.end));
    // Keep only well-formed, non-overlapping ranges on character boundaries.
    let mut pos = 0;
    out.retain(|s| {
        let ok = s.start >= pos && s.start < s.end && post.text.get(s.start..s.end).is_some();
        if ok {
            pos = s.end;
        }
        ok
    });
    out
}

pub use crate::render::html::escape;

/// Fill `[[tag]]` merge tags (names trimmed, lowercased, inner spaces as `_`) from `values`;
/// `escape_values` HTML-escapes what is inserted. Unknown tags stay as written.
pub fn fill_merge(src: &str, values: &[(String, String)], escape_values: bool) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(open) = rest.find("[[") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("]]") else {
            rest = &rest[open..];
            break;
        };
        let name = after[..close].trim().to_lowercase().split_whitespace().collect::<Vec<_>>().join("_");
        match values.iter().find(|(k, _)| *k == name) {
            Some((_, v)) if escape_values => out.push_str(&escape(v)),
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The preheader an inbox shows: the first ~100 characters of the text part, leaving out lines
/// the subject already shows.
pub fn preheader(subject: &str, text: &str) -> String {
    let joined = text.lines().map(str::trim).filter(|l| !l.is_empty() && !subject.contains(l)).collect::<Vec<_>>().join(" ");
    let mut p: String = joined.chars().take(100).collect();
    if joined.chars().count() > 100 {
        p.push('…');
    }
    p
}

/// Display name and handle for a channel, from the config when it names them.
fn identity(cfg: &LoadedConfig, name: &str) -> (String, Option<String>) {
    // The display name: the sender's name of the first email channel, else the channel's name.
    let sender = cfg.config.channels.values().find_map(|c| match c {
        ChannelConfig::Email(e) => Some(e.from.clone()),
        ChannelConfig::EmailApi(e) => Some(e.from.clone()),
        _ => None,
    });
    let display = sender
        .as_deref()
        .map(|f| f.split('<').next().unwrap_or(f).trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name.to_string());
    let handle = match cfg.config.channels.get(name) {
        Some(ChannelConfig::Bluesky(b)) if !b.identifier.contains('@') => Some(format!("@{}", b.identifier)),
        Some(ChannelConfig::Linkedin(l)) => Some(l.author.clone()),
        Some(ChannelConfig::X(x)) => x.user_id.as_ref().map(|u| format!("user {u}")),
        _ => None,
    };
    (display, handle)
}

/// Whether a post's text (without a trailing `i/n` counter) ends on a colon.
fn ends_on_colon(text: &str) -> bool {
    let t = text.trim_end();
    let t = match t.rsplit_once(char::is_whitespace) {
        Some((head, tail)) if is_counter(tail) => head.trim_end(),
        _ => t,
    };
    t.ends_with(':')
}

fn is_counter(s: &str) -> bool {
    s.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()))
}

/// Every warning for the renderings, in page order.
pub fn warnings(rendered: &[RenderedChannel], opts: &PreviewOptions) -> Vec<Warning> {
    let mut out = Vec::new();
    for rc in rendered {
        let Rendering::Posts(p) = &rc.rendering else { continue };
        let n = p.posts.len();
        let w = |post: Option<usize>, message: String| Warning { channel: rc.channel.clone(), post, message };
        if n > opts.max_thread {
            out.push(w(None, format!("the thread has {n} posts, more than {} (--max-thread); readers rarely follow that far", opts.max_thread)));
        }
        for (i, post) in p.posts.iter().enumerate() {
            if post.limit > 0 && post.count * 10 >= post.limit * 9 {
                out.push(w(Some(i + 1), format!("{} / {}: close to the limit", post.count, post.limit)));
            }
            if rc.kind == "threads" {
                let links = count::find_urls(&post.text).into_iter().map(|r: Range<usize>| &post.text[r]).collect::<std::collections::BTreeSet<_>>().len();
                if links >= THREADS_MAX_LINKS {
                    out.push(w(Some(i + 1), format!("{links} unique links: at Threads' limit of {THREADS_MAX_LINKS} per post")));
                }
            }
            if ends_on_colon(&post.text) {
                let what = if i + 1 < n { "the next post may not continue what it introduces" } else { "what it introduces is not in the thread" };
                out.push(w(Some(i + 1), format!("ends on a colon: {what}")));
            }
        }
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#eef0f3;color:#1f2328}
header.top{background:#1f2328;color:#fff;padding:14px 20px}
header.top h1{margin:0;font-size:20px}
header.top p{margin:4px 0 0;color:#c9d1d9;font-size:13px}
nav.toc{padding:8px 20px;background:#fff;border-bottom:1px solid #d0d7de;font-size:13px}
nav.toc a{margin-right:12px;color:#0b5cad}
main{padding:16px 20px;display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:20px;align-items:start}
section.email,section.email_api,section.substack{grid-column:1/-1}
section.channel{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 16px;overflow:hidden}
section.channel>h2{margin:0 0 10px;font-size:17px}
section.channel>h2 small{color:#57606a;font-weight:normal}
.note{font-size:12px;color:#57606a;margin:6px 0}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px;margin:6px 0;font-size:13px}
.inbox{display:flex;gap:10px;align-items:baseline;border:1px solid #d0d7de;border-radius:6px;padding:8px 10px;margin-bottom:10px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.inbox .from{font-weight:600}.inbox .preheader{color:#57606a;overflow:hidden;text-overflow:ellipsis}
.frames{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.frames figure{margin:0}.frames figcaption{font-size:12px;color:#57606a;margin-bottom:4px}
iframe{box-sizing:content-box;border:1px solid #d0d7de;border-radius:4px;background:#fff;height:560px}
iframe.w600{width:600px}iframe.w375{width:375px}iframe.article{width:100%;max-width:720px;height:600px}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:10px;font-size:13px;max-height:300px;overflow:auto}
.thread{display:flex;flex-direction:column;gap:10px;max-width:600px}
article.post{border:1px solid #d0d7de;border-radius:10px;padding:10px 12px}
article.post header{display:flex;gap:8px;align-items:center;margin-bottom:6px}
.avatar{width:36px;height:36px;border-radius:50%;background:#8c959f;flex:none}
.name{font-weight:600}.handle{color:#57606a;font-size:13px}
.text{white-space:pre-wrap;word-break:break-word}
.hl{color:#0b5cad;background:#ddf4ff;border-radius:3px}
article.post footer{display:flex;justify-content:space-between;font-size:12px;color:#57606a;margin-top:6px}
.count.near{color:#9a6700;font-weight:600}.count.over{color:#cf222e;font-weight:700}
.card{border:1px solid #d0d7de;border-radius:8px;overflow:hidden;margin-top:8px;max-width:600px}
.card .thumb{background:#d0d7de;color:#57606a;font-size:12px;padding:24px;text-align:center}
.card img.thumb{display:block;width:100%;max-height:300px;object-fit:cover;padding:0}
.card .body{padding:8px 10px}.card .title{font-weight:600}.card .desc{color:#57606a;font-size:13px}.card .uri{color:#57606a;font-size:12px;word-break:break-all}
.x article.post{border-radius:0;border-width:0 0 1px 0}
.bluesky .hl{color:#1083fe;background:none}
.substack h1{font-family:Georgia,serif;margin:0}.substack .subtitle{font-family:Georgia,serif;color:#57606a;font-size:18px;margin:4px 0 10px}
"#;

/// Build the page. `rendered` is `render`'s output for `issue`.
pub fn page(issue: &Issue, cfg: &LoadedConfig, rendered: &[RenderedChannel], opts: &PreviewOptions) -> String {
    // Email first, then the article, the posts and the machine payloads.
    let mut ordered: Vec<&RenderedChannel> = rendered.iter().collect();
    ordered.sort_by_key(|rc| match rc.rendering {
        Rendering::Email(_) => 0,
        Rendering::Article(_) => 1,
        Rendering::Posts(_) => 2,
        Rendering::Body(_) => 3,
    });
    let warns = warnings(rendered, opts);
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Preview: {}</title><style>{STYLE}</style></head><body>\n<header class=\"top\"><h1>{}</h1><p>{} · version {} · {} channel(s)</p></header>\n<nav class=\"toc\">",
        escape(&issue.meta.title),
        escape(&issue.meta.title),
        escape(&issue.meta.slug),
        escape(&issue.version),
        rendered.len()
    );
    for rc in &ordered {
        let _ = write!(h, "<a href=\"#ch-{0}\">{0}</a>", escape(&rc.channel));
    }
    h.push_str("</nav>\n<main>\n");
    for rc in ordered {
        let _ = writeln!(
            h,
            "<section class=\"channel {kind}\" id=\"ch-{name}\" data-channel=\"{name}\" data-type=\"{kind}\"><h2>{name} <small>({kind})</small></h2>",
            name = escape(&rc.channel),
            kind = escape(&rc.kind)
        );
        for w in warns.iter().filter(|w| w.channel == rc.channel && w.post.is_none()) {
            let _ = write!(h, "<p class=\"warn\" data-warning>⚠ {}</p>", escape(&w.message));
        }
        match &rc.rendering {
            Rendering::Email(e) => email(&mut h, cfg, rc, e, opts),
            Rendering::Article(a) => article(&mut h, a),
            Rendering::Posts(p) => posts(&mut h, cfg, rc, p, &warns),
            Rendering::Body(b) => {
                let pretty = serde_json::to_string_pretty(&b.body).unwrap_or_default();
                let _ = write!(h, "<pre class=\"json\">{}</pre>", escape(&pretty));
            }
        }
        h.push_str("</section>\n");
    }
    h.push_str("</main>\n");
    if let Some(v) = opts.reload_version {
        // Poll the server's version; reload when the issue or a template changed.
        let _ = writeln!(
            h,
            "<script>(function(){{var v={v};setInterval(function(){{fetch('/version').then(function(r){{return r.text()}}).then(function(t){{if(t.trim()!==String(v))location.reload()}}).catch(function(){{}})}},1000)}})()</script>"
        );
    }
    h.push_str("</body></html>\n");
    h
}

fn email(h: &mut String, cfg: &LoadedConfig, rc: &RenderedChannel, e: &EmailRendering, opts: &PreviewOptions) {
    let subject = fill_merge(&e.subject, &opts.merge, false);
    let text = fill_merge(&e.text, &opts.merge, false);
    let html = fill_merge(&e.html, &opts.merge, true);
    let from = match cfg.config.channels.get(&rc.channel) {
        Some(ChannelConfig::Email(c)) => c.from.clone(),
        Some(ChannelConfig::EmailApi(c)) => c.from.clone(),
        _ => String::new(),
    };
    let _ = write!(
        h,
        "<div class=\"inbox\"><span class=\"from\">{}</span><span class=\"subject\">{}</span><span class=\"preheader\">— {}</span></div>\n\
         <div class=\"frames\"><figure><figcaption>Desktop, 600 px</figcaption><iframe class=\"w600\" sandbox=\"\" title=\"{name} at 600 px\" srcdoc=\"{doc}\"></iframe></figure>\
         <figure><figcaption>Phone, 375 px</figcaption><iframe class=\"w375\" sandbox=\"\" title=\"{name} at 375 px\" srcdoc=\"{doc}\"></iframe></figure></div>\n\
         <p class=\"note\">Merge tags filled from {}.</p><h3>Text part</h3><pre class=\"text-part\">{}</pre>\n",
        escape(&from),
        escape(&subject),
        escape(&preheader(&subject, &text)),
        escape(&opts.merge_from),
        escape(&text),
        name = escape(&rc.channel),
        doc = escape(&html),
    );
}

fn article(h: &mut String, a: &ArticleRendering) {
    let _ = writeln!(
        h,
        "<h1>{}</h1><p class=\"subtitle\">{}</p><iframe class=\"article\" sandbox=\"\" title=\"article body\" srcdoc=\"{}\"></iframe>",
        escape(&a.title),
        escape(&a.subtitle),
        escape(&format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{{font:17px/1.6 Georgia,serif;max-width:680px;margin:12px auto;padding:0 12px}}img{{max-width:100%}}</style></head><body>{}</body></html>", a.html))
    );
}

fn posts(h: &mut String, cfg: &LoadedConfig, rc: &RenderedChannel, p: &PostsRendering, warns: &[Warning]) {
    let (display, handle) = identity(cfg, &rc.channel);
    let n = p.posts.len();
    h.push_str("<div class=\"thread\">\n");
    for (i, post) in p.posts.iter().enumerate() {
        let near = post.limit > 0 && post.count * 10 >= post.limit * 9;
        let cls = if post.count > post.limit { "count over" } else if near { "count near" } else { "count" };
        let _ = write!(
            h,
            "<article class=\"post\" data-post=\"{}\"><header><span class=\"avatar\"></span><span><span class=\"name\">{}</span> <span class=\"handle\">{}</span></span></header><div class=\"text\">",
            i + 1,
            escape(&display),
            escape(handle.as_deref().unwrap_or(""))
        );
        let mut pos = 0;
        for s in spans(&rc.kind, post) {
            h.push_str(&escape(&post.text[pos..s.start]));
            let _ = write!(h, "<span class=\"hl hl-{}\" data-start=\"{}\" data-end=\"{}\">{}</span>", escape(&s.kind), s.start, s.end, escape(&post.text[s.start..s.end]));
            pos = s.end;
        }
        h.push_str(&escape(&post.text[pos..]));
        let _ = write!(h, "</div><footer><span class=\"order\">{}/{n}</span><span class=\"{cls}\">{} / {}</span></footer>", i + 1, post.count, post.limit);
        for w in warns.iter().filter(|w| w.channel == rc.channel && w.post == Some(i + 1)) {
            let _ = write!(h, "<p class=\"warn\" data-warning>⚠ {}</p>", escape(&w.message));
        }
        if i == 0
            && let Some(c) = &p.card
        {
            let thumb = match &c.image {
                Some(img) => match data_uri(img) {
                    Some(uri) => format!("<img class=\"thumb\" alt=\"thumbnail: {0}\" title=\"{0}\" src=\"{uri}\">", escape(img)),
                    None => format!("<div class=\"thumb\">thumbnail: {}</div>", escape(img)),
                },
                None => String::new(),
            };
            let _ = write!(
                h,
                "<div class=\"card\">{thumb}<div class=\"body\"><div class=\"title\">{}</div><div class=\"desc\">{}</div><div class=\"uri\">{}</div></div></div>",
                escape(&c.title),
                escape(&c.description),
                escape(&c.uri)
            );
        }
        h.push_str("</article>\n");
    }
    h.push_str("</div>\n");
}

/// A local image (PNG, JPEG, GIF, WebP, up to 5 MB) as a `data:` URI, so the page stays
/// self-contained. URLs and anything else are shown by name only: the page fetches nothing.
fn data_uri(image: &str) -> Option<String> {
    use base64::Engine as _;
    if image.contains("://") {
        return None;
    }
    let path = std::path::Path::new(image);
    let mime = match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => return None,
    };
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 5 * 1024 * 1024 {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    Some(format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn merge_tags_fill_known_names_and_keep_others() {
        let v = vec![("email".to_string(), "a<b@example.com".to_string())];
        assert_eq!(fill_merge("to [[ Email ]] [[x]] [[ open", &v, true), "to a&lt;b@example.com [[x]] [[ open");
        assert_eq!(fill_merge("[[email]]", &v, false), "a<b@example.com");
    }

    #[test]
    fn linkedin_hashtags_are_highlighted_beside_links() {
        let post = crate::render::Post {
            text: "Read https://e.example.com/#frag now #CommsTech #42".into(),
            facets: vec![],
            entities: vec![],
            count: 0,
            limit: 3000,
        };
        let found = spans("linkedin", &post);
        let got: Vec<(&str, &str)> = found.iter().map(|s| (s.kind.as_str(), &post.text[s.start..s.end])).collect();
        assert_eq!(got, vec![("link", "https://e.example.com/#frag"), ("tag", "#CommsTech")]);
    }

    #[test]
    fn colon_endings_ignore_the_counter() {
        assert!(ends_on_colon("Covered this week: 2/5"));
        assert!(ends_on_colon("Covered this week:"));
        assert!(!ends_on_colon("Done. 3/5"));
    }
}
