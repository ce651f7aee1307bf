//! `herald render`: print exactly what each channel would receive. Needs no credentials.

use std::io::Write;

use super::{ExitStatus, Globals, InputError};
use crate::cli::RenderArgs;
use crate::issue;
use crate::render::Rendering;
use crate::render::engine::{RenderedChannel, render_channels};

/// Run `herald render`.
pub async fn run(g: &Globals, args: RenderArgs) -> anyhow::Result<ExitStatus> {
    let cfg = g.load_config()?;
    let issue = issue::parse_file(&args.issue).map_err(|e| InputError(e.to_string()))?;
    let rendered = match render_channels(&issue, &cfg, &args.channels) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} channel(s) failed to render; nothing was sent.", errors.len());
            return Ok(ExitStatus::Error);
        }
    };
    // Buffered: stdout is line-buffered, a write(2) per line of every post and email.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rendered)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{} ({}), version {}", issue.meta.title, issue.meta.slug, issue.version)?;
        for r in &rendered {
            print_human(&mut out, r)?;
        }
    }
    out.flush()?;
    // The process ends right after printing: freeing every channel's rendering and the issue
    // allocation by allocation (for 1,000 sections, some 30 M instructions) would gain nothing.
    std::mem::forget(rendered);
    std::mem::forget(issue);
    Ok(ExitStatus::Success)
}

fn print_human(out: &mut impl Write, r: &RenderedChannel) -> std::io::Result<()> {
    writeln!(out, "\n━━ {} ({}) ━━", r.channel, r.kind)?;
    match &r.rendering {
        Rendering::Email(e) => {
            writeln!(out, "Subject: {}", e.subject)?;
            writeln!(out, "── text/plain ({} bytes) ──\n{}", e.text.len(), e.text)?;
            writeln!(out, "── text/html ({} bytes, CSS inlined) ──\n{}", e.html.len(), e.html)?;
        }
        Rendering::Article(a) => {
            writeln!(out, "Title: {}\nSubtitle: {}", a.title, a.subtitle)?;
            writeln!(out, "── html ({} bytes) ──\n{}", a.html.len(), a.html)?;
        }
        Rendering::Posts(p) => {
            let n = p.posts.len();
            for (i, post) in p.posts.iter().enumerate() {
                let tag = if n > 1 { format!("post {}/{n}", i + 1) } else { "post".into() };
                writeln!(out, "── {tag} [{}/{}] ──\n{}", post.count, post.limit, post.text)?;
                if !post.facets.is_empty() {
                    writeln!(out, "   facets: {}", serde_json::to_string(&post.facets).unwrap_or_default())?;
                }
            }
            if let Some(c) = &p.card {
                writeln!(out, "── link card ──\n{} — {}\n{}", c.title, c.description, c.uri)?;
                if let Some(i) = &c.image {
                    writeln!(out, "image: {i}")?;
                }
            }
        }
        Rendering::Body(b) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&b.body).unwrap_or_default())?;
        }
    }
    Ok(())
}
