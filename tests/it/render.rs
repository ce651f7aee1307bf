//! Every channel renders every sample issue; structural assertions on each rendering.

use herald::config;
use herald::issue::{self, Issue};
use herald::render::count::Network;
use herald::render::engine::{RenderedChannel, render_channels};
use herald::render::{FacetFeature, Rendering};

use crate::util::{all_channels_toml, sample_issues, temp_config};

fn render_all(issue: &Issue, format: &str) -> Vec<RenderedChannel> {
    let (_d, p) = temp_config(&all_channels_toml(format));
    let cfg = config::load(&p).expect("test config loads");
    match render_channels(issue, &cfg, &[]) {
        Ok(r) => r,
        Err(e) => panic!("{}: {:#?}", issue.path.display(), e),
    }
}

fn network_of(kind: &str) -> Option<Network> {
    Some(match kind {
        "x" => Network::X,
        "bluesky" => Network::Bluesky,
        "mastodon" => Network::Mastodon,
        "threads" => Network::Threads,
        "linkedin" => Network::Linkedin,
        _ => return None,
    })
}

fn check_rendering(issue: &Issue, r: &RenderedChannel, format: &str) {
    let ctx = format!("{} / {} ({format})", issue.path.display(), r.channel);
    let skipped = issue.meta.channels.get(&r.channel).is_some_and(|o| o.skip);
    assert!(!skipped, "{ctx}: a skipped channel was rendered");
    match (&r.rendering, r.kind.as_str()) {
        (Rendering::Email(e), "email" | "email_api") => {
            assert!(!e.subject.is_empty() && !e.subject.contains('\n'), "{ctx}: subject {:?}", e.subject);
            assert!(!e.html.contains("<style"), "{ctx}: CSS was not inlined");
            assert!(e.html.contains("style=\""), "{ctx}: no inline styles");
            assert!(e.html.contains("[[unsubscribe_url]]") && e.text.contains("[[unsubscribe_url]]"), "{ctx}: unsubscribe merge tag missing");
            assert!(!e.text.contains("&amp;") && !e.text.contains("<p>"), "{ctx}: HTML leaked into the text part");
            for s in &issue.sections {
                assert!(e.text.contains(&s.title), "{ctx}: section {:?} missing from text", s.title);
            }
            assert_eq!(e.html.matches("<h2").count(), issue.sections.len(), "{ctx}: one <h2> per section");
            assert!(!e.html.contains("{{") && !e.text.contains("{{"), "{ctx}: unrendered handlebars");
            let own = format!("utm_source={}", r.channel);
            assert!(e.html.contains(&own), "{ctx}: own-site links are not UTM-tagged");
        }
        (Rendering::Article(a), "substack") => {
            assert_eq!(a.title, issue.meta.channels.get("substack").and_then(|o| o.subject.clone()).unwrap_or(issue.meta.title.clone()));
            assert_eq!(a.html.matches("<h2").count(), issue.sections.len(), "{ctx}: one <h2> per section");
            assert!(a.doc.is_some(), "{ctx}: no ProseMirror doc");
        }
        (Rendering::Posts(p), kind) => {
            let net = network_of(kind).unwrap_or_else(|| panic!("{ctx}: posts for {kind}"));
            assert!(!p.posts.is_empty(), "{ctx}: no posts");
            for (i, post) in p.posts.iter().enumerate() {
                assert!(net.check(&post.text).is_ok(), "{ctx}: post {i} does not fit: {:?}", post.text);
                assert_eq!(post.count, net.count(&post.text), "{ctx}: stored count differs");
                assert!(post.count <= post.limit, "{ctx}: post {i} over its limit");
                if net == Network::Bluesky {
                    for f in &post.facets {
                        let (s, e) = (f.index.byte_start, f.index.byte_end);
                        assert!(s < e && e <= post.text.len(), "{ctx}: facet out of range");
                        assert!(post.text.is_char_boundary(s) && post.text.is_char_boundary(e), "{ctx}: facet splits a char");
                        if let Some(FacetFeature::Tag { tag }) = f.features.first() {
                            assert_eq!(&post.text[s..e], format!("#{tag}"), "{ctx}: tag facet covers the wrong bytes");
                        }
                    }
                }
            }
            let thread = format == "thread" && kind != "linkedin" && issue.meta.channels.get(&r.channel).and_then(|o| o.text.clone()).is_none();
            if thread && issue.meta.channels.get(&r.channel).and_then(|o| o.posts.clone()).is_none() {
                assert!(p.posts.len() > issue.sections.len(), "{ctx}: a thread has an intro and one post per section");
            } else {
                assert_eq!(p.posts.len(), 1, "{ctx}: a short is one post");
            }
            if kind == "linkedin" {
                // Read as LinkedIn reads little text: nothing cut, no escape inside a link.
                let read = herald::sandbox::linkedin::read_little_text(&p.posts[0].text);
                assert!(!read.truncated, "{ctx}: little text cut at {:?}", read.text);
                assert!(read.links.iter().all(|l| !l.contains('\\')), "{ctx}: an escape inside a link: {:?}", read.links);
            }
        }
        (Rendering::Body(b), "webhook") => {
            assert_eq!(b.body["issue"]["slug"], issue.meta.slug.as_str(), "{ctx}");
            assert_eq!(b.body["issue"]["sections"].as_array().map(Vec::len), Some(issue.sections.len()), "{ctx}");
        }
        (Rendering::Body(b), "exec") => {
            assert_eq!(b.body["issue"]["title"], issue.meta.title.as_str(), "{ctx}");
        }
        (other, kind) => panic!("{ctx}: unexpected rendering for {kind}: {other:?}"),
    }
}

#[test]
fn every_channel_renders_every_sample_issue() {
    let issues = sample_issues();
    assert!(!issues.is_empty(), "no sample issues in tests/fixtures/issues");
    for path in issues {
        let issue = issue::parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
        for format in ["short", "thread"] {
            let rendered = render_all(&issue, format);
            let expected = 10 - issue.meta.channels.values().filter(|o| o.skip).count();
            assert_eq!(rendered.len(), expected, "{}: every configured channel renders", path.display());
            for r in &rendered {
                check_rendering(&issue, r, format);
            }
        }
    }
}

#[test]
fn sample_issue_snapshot_of_shorts() {
    let issue = issue::parse_file(&crate::util::fixture("issues/2026-week-48.md")).expect("sample parses");
    let rendered = render_all(&issue, "short");
    let get = |name: &str| rendered.iter().find(|r| r.channel == name).map(|r| r.rendering.clone()).expect(name);
    // The front matter's hand-written Mastodon text is used verbatim.
    let Rendering::Posts(m) = get("mastodon") else { panic!("mastodon renders posts") };
    assert_eq!(m.posts[0].text, issue.meta.channels["mastodon"].text.clone().unwrap());
    // The X short carries the title, the UTM-tagged link and two hashtags.
    let Rendering::Posts(x) = get("x") else { panic!("x renders posts") };
    assert!(x.posts[0].text.starts_with("Signal & Noise, Week 48: The Number Registry Reckoning: "));
    assert!(x.posts[0].text.contains("https://news.example.com/2026/week-48?utm_source=x&utm_medium=social&utm_campaign=2026-week-48"));
    assert!(x.posts[0].text.ends_with("#CommsTech #APIs"));
    // Email subject and the Bluesky link card.
    let Rendering::Email(e) = get("newsletter") else { panic!("email") };
    assert_eq!(e.subject, "#48: Signal & Noise, Week 48: The Number Registry Reckoning");
    let Rendering::Posts(b) = get("bluesky") else { panic!("bluesky") };
    let card = b.card.expect("bluesky has a link card");
    assert!(card.image.expect("image").ends_with("tests/fixtures/issues/week-48-cover.png"));
}

#[test]
fn a_post_that_cannot_fit_names_the_channel_and_the_text() {
    let text = std::fs::read_to_string(crate::util::fixture("issues/2026-week-48.md")).unwrap();
    let long = "word ".repeat(80);
    let text = text.replacen("[channels.mastodon]\ntext = \"", &format!("[channels.x]\ntext = \"{long}\"\n\n[channels.mastodon]\ntext = \""), 1);
    let issue = issue::parse_str(std::path::Path::new("long.md"), &text).expect("parses");
    let (_d, p) = temp_config(&all_channels_toml("short"));
    let cfg = config::load(&p).unwrap();
    let errs = render_channels(&issue, &cfg, &[]).expect_err("an override over 280 must fail");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].channel, "x");
    assert!(errs[0].message.contains("does not fit") && errs[0].message.contains("word word"), "{}", errs[0].message);
}
