//! `herald preview` in a real browser: Debian's `chromium`, headless, driven through
//! `--dump-dom` and `--screenshot`. A small script appended to a copy of the page reads the DOM
//! and writes what it found (percent-encoded JSON) into the body, where `--dump-dom` prints it.
//! Screenshots land in target/preview-*.png for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{all_channels_toml, herald, out, root, sample_issues, temp_config};

/// The chromium binary; the test fails (it does not skip) when it is missing: `.ci/run`
/// installs it.
pub(crate) fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(o) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output()
            && o.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        }
    }
    panic!("chromium is not installed: run .ci/run, or apt-get install -y chromium");
}

/// Run headless chromium on `file` with `extra` flags; returns (stdout, stderr).
pub(crate) fn browse(file: &Path, width: u32, height: u32, extra: &[String]) -> (String, String) {
    browse_url(&format!("file://{}", file.display()), width, height, extra)
}

/// Run headless chromium on `url` (a `file://` page or a live `http://` one) with `extra`
/// flags; returns (stdout, stderr).
pub(crate) fn browse_url(url: &str, width: u32, height: u32, extra: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().expect("profile dir");
    // A page that blocks (an alert() that escaped its escaping) must fail the test, not hang it.
    let o = Command::new("timeout")
        .arg("180")
        .arg(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions", "--hide-scrollbars"])
        .arg("--enable-logging=stderr")
        .arg("--v=0")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("--virtual-time-budget=3000")
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(o.status.success(), "chromium failed on {url}: {}", String::from_utf8_lossy(&o.stderr));
    out(&o)
}

/// The percent-encoded JSON the probe wrote between `PROBE[` and `]PROBE`.
pub(crate) fn probe_result(dom: &str) -> Value {
    let start = dom.find("PROBE[%7B").expect("the probe ran and wrote its result into the DOM") + 6;
    let end = dom[start..].find("]PROBE").expect("probe end") + start;
    let enc = &dom.as_bytes()[start..end];
    let mut bytes = Vec::with_capacity(enc.len());
    let mut i = 0;
    while i < enc.len() {
        if enc[i] == b'%' && i + 2 < enc.len() {
            let hex = std::str::from_utf8(&enc[i + 1..i + 3]).expect("hex");
            bytes.push(u8::from_str_radix(hex, 16).expect("percent escape"));
            i += 3;
        } else {
            bytes.push(enc[i]);
            i += 1;
        }
    }
    serde_json::from_slice(&bytes).expect("probe JSON")
}

/// Insert `script` before `</body>` (and an error trap at the top of `<head>`).
pub(crate) fn with_probe(html: &str, script: &str) -> String {
    let trap = "<script>window.__errors=[];window.addEventListener('error',function(e){window.__errors.push(String(e.message))});</script>";
    let html = html.replacen("<head>", &format!("<head>{trap}"), 1);
    let i = html.rfind("</body>").expect("page has </body>");
    format!("{}<script>{script}</script>{}", &html[..i], &html[i..])
}

const PAGE_PROBE: &str = r#"
(function(){
  var r={errors:window.__errors,channels:[],spans:{},iframes:[],external:[]};
  document.querySelectorAll('section[data-channel]').forEach(function(s){
    var name=s.getAttribute('data-channel');r.channels.push(name);
    var posts=[];
    s.querySelectorAll('article.post').forEach(function(a){
      var sp=[];a.querySelectorAll('.text .hl').forEach(function(h){sp.push([+h.getAttribute('data-start'),+h.getAttribute('data-end'),h.textContent])});
      posts.push(sp);
    });
    r.spans[name]=posts;
  });
  document.querySelectorAll('iframe').forEach(function(f){r.iframes.push([f.className,f.getAttribute('sandbox'),f.clientWidth])});
  document.querySelectorAll('[src],link[href]').forEach(function(e){var u=e.getAttribute('src')||e.getAttribute('href');if(!/^data:/.test(u))r.external.push(e.outerHTML.slice(0,120))});
  var p=document.createElement('pre');p.textContent='PROBE['+encodeURIComponent(JSON.stringify(r))+']PROBE';document.body.appendChild(p);
})();
"#;

/// Runs once every iframe has loaded; needs the iframes same-origin (the sandbox attribute
/// dropped in the probe's copy), so it can measure their documents.
const SCROLL_PROBE: &str = r#"
window.addEventListener('load',function(){
  var r={errors:window.__errors,frames:[]};
  document.querySelectorAll('iframe.w375,iframe.w600').forEach(function(f){
    var d=f.contentDocument.documentElement;
    r.frames.push({cls:f.className,scrollWidth:d.scrollWidth,clientWidth:d.clientWidth,innerWidth:f.contentWindow.innerWidth});
  });
  var p=document.createElement('pre');p.textContent='PROBE['+encodeURIComponent(JSON.stringify(r))+']PROBE';document.body.appendChild(p);
});
"#;

/// The text each Bluesky facet or X entity covers, per post, from `render --json`.
fn expected_spans(rendering: &Value, key: &str) -> Vec<Vec<(u64, u64, String)>> {
    rendering["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(|p| {
            let text = p["text"].as_str().expect("text");
            p[key]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .map(|f| {
                            let (s, e) = (f["index"]["byteStart"].as_u64().expect("start"), f["index"]["byteEnd"].as_u64().expect("end"));
                            (s, e, text[s as usize..e as usize].to_string())
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

fn dom_spans(v: &Value) -> Vec<Vec<(u64, u64, String)>> {
    v.as_array()
        .expect("posts")
        .iter()
        .map(|p| {
            p.as_array()
                .expect("spans")
                .iter()
                .map(|s| (s[0].as_u64().expect("start"), s[1].as_u64().expect("end"), s[2].as_str().expect("text").to_string()))
                .collect()
        })
        .collect()
}

pub(crate) fn no_console_errors(stderr: &str, probe: &Value, what: &str) {
    assert_eq!(probe["errors"], serde_json::json!([]), "{what}: script errors on the page");
    for line in stderr.lines() {
        let l = line.to_lowercase();
        assert!(!(line.contains("Uncaught") || (l.contains("console") && l.contains("error"))), "{what}: console error: {line}");
    }
}

#[test]
fn preview_in_chromium_shows_every_channel_with_exact_spans_and_a_phone_width_email() {
    let target = root().join("target");
    let (dir, cfg) = temp_config(&all_channels_toml("thread"));
    let cfg = cfg.display().to_string();
    let mut checked_x = 0;
    let mut checked_bsky = 0;
    for issue in sample_issues() {
        let stem = issue.file_stem().expect("stem").to_string_lossy().into_owned();
        let issue_s = issue.display().to_string();
        let o = herald(dir.path(), &["--config", &cfg, "render", &issue_s, "--json"]);
        let (so, se) = out(&o);
        assert!(o.status.success(), "render {stem}: {se}");
        let rendered: Value = serde_json::from_str(&so).expect("render --json");
        let page = target.join(format!("preview-{stem}.html"));
        let o = herald(dir.path(), &["--config", &cfg, "preview", &issue_s, "--out", &page.display().to_string()]);
        assert!(o.status.success(), "preview {stem}: {}", out(&o).1);
        let html = std::fs::read_to_string(&page).expect("page written");
        assert!(!html.contains("<script"), "{stem}: the written page needs no script");

        // The page as a person sees it.
        let shot = target.join(format!("preview-{stem}.png"));
        let (_, shot_err) = browse(&page, 1280, 2400, &[format!("--screenshot={}", shot.display())]);
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000), "{stem}: screenshot written: {shot_err}");
        for line in shot_err.lines() {
            assert!(!line.contains("Uncaught"), "{stem}: console error: {line}");
        }

        // The DOM, read by a probe in a copy of the page.
        let probed = target.join(format!("preview-{stem}.probe.html"));
        std::fs::write(&probed, with_probe(&html, PAGE_PROBE)).expect("write probe page");
        let (dom, err) = browse(&probed, 1280, 2400, &["--dump-dom".to_string()]);
        let r = probe_result(&dom);
        no_console_errors(&err, &r, &stem);
        assert_eq!(r["external"], serde_json::json!([]), "{stem}: the page references no external resource");
        let mut channels: Vec<&str> = r["channels"].as_array().expect("channels").iter().map(|c| c.as_str().expect("name")).collect();
        let mut expected: Vec<&str> = rendered.as_array().expect("array").iter().map(|c| c["channel"].as_str().expect("channel")).collect();
        channels.sort_unstable();
        expected.sort_unstable();
        assert_eq!(channels, expected, "{stem}: every rendered channel appears, once");
        assert!(expected.len() >= 9, "{stem}: the config's channels render ({expected:?})");

        for rc in rendered.as_array().expect("array") {
            let name = rc["channel"].as_str().expect("channel");
            let key = match rc["type"].as_str() {
                Some("bluesky") => "facets",
                Some("x") => "entities",
                _ => continue,
            };
            let want = expected_spans(&rc["rendering"], key);
            let got = dom_spans(&r["spans"][name]);
            assert_eq!(got, want, "{stem}/{name}: the highlighted spans are exactly render --json's {key}");
            let n: usize = want.iter().map(Vec::len).sum();
            if key == "facets" {
                checked_bsky += n;
            } else {
                checked_x += n;
            }
        }
        // Both email iframes are sandboxed and sized as labelled.
        let frames = r["iframes"].as_array().expect("iframes");
        for (class, width) in [("w600", 600), ("w375", 375)] {
            let f = frames.iter().filter(|f| f[0] == class).collect::<Vec<_>>();
            assert_eq!(f.len(), 2, "{stem}: one {class} iframe per email channel");
            for f in f {
                assert_eq!(f[1], "", "{stem}: the email iframe is sandboxed with no permissions");
                assert_eq!(f[2], width, "{stem}: {class} iframe's inner width");
            }
        }

        // The email iframes, measured from inside: no horizontal scroll at 375 px (nor at 600).
        let sized = target.join(format!("preview-{stem}.frames.html"));
        std::fs::write(&sized, with_probe(&html.replace(" sandbox=\"\"", " data-sandboxed"), SCROLL_PROBE)).expect("write frames page");
        let (dom, err) = browse(&sized, 1280, 2400, &["--dump-dom".to_string()]);
        let s = probe_result(&dom);
        no_console_errors(&err, &s, &format!("{stem} email frames"));
        let frames = s["frames"].as_array().expect("frames");
        assert_eq!(frames.len(), 4, "{stem}: two email channels, two widths: {s}");
        for f in frames {
            let want = if f["cls"] == "w375" { 375 } else { 600 };
            assert_eq!(f["innerWidth"], want, "{stem}: the iframe's viewport: {f}");
            assert!(f["scrollWidth"].as_u64() <= f["clientWidth"].as_u64(), "{stem}: the email scrolls sideways at {want} px: {f}");
        }
    }
    assert!(checked_bsky > 0 && checked_x > 0, "the samples exercise Bluesky facets ({checked_bsky}) and X entities ({checked_x})");
}

/// `--serve` serves on loopback and the page's version moves when the issue file changes, so the
/// page (which polls `/version`) reloads; the reloaded page shows the edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_serve_reloads_when_the_issue_changes() {
    use std::io::{BufRead, BufReader};
    let (dir, cfg) = temp_config(&all_channels_toml("short"));
    let issue = dir.path().join("issue.md");
    let original = std::fs::read_to_string(crate::util::fixture("issues/minimal.md")).expect("fixture");
    std::fs::write(&issue, &original).expect("write issue");
    let child = Command::new(crate::pipeline::herald_bin())
        .args(["--config", &cfg.display().to_string(), "preview", &issue.display().to_string(), "--serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("HERALD_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn herald preview --serve");
    /// Stops the server even when an assertion fails.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let stderr = child.0.stderr.take().expect("stderr");
    let line = tokio::task::spawn_blocking(move || {
        let mut l = String::new();
        BufReader::new(stderr).read_line(&mut l).expect("read stderr");
        l
    })
    .await
    .expect("join");
    let base = line.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
    let client = herald::channel::http::client();
    let get = |path: &str| {
        let url = format!("{base}{}", path.trim_start_matches('/'));
        let client = client.clone();
        async move { client.get(url).send().await.expect("GET").text().await.expect("body") }
    };
    let v1 = get("/version").await;
    let page = get("/").await;
    assert!(page.contains("fetch('/version')") && page.contains(&format!("var v={v1};")), "the served page polls its version");
    let title = original.lines().find_map(|l| l.strip_prefix("title = ")).expect("title line").trim_matches('"').to_string();
    std::fs::write(&issue, original.replacen(&title, "Edited &lt;title&gt; <b>now</b>", 1)).expect("edit issue");
    let mut v2 = v1.clone();
    for _ in 0..100 {
        v2 = get("/version").await;
        if v2 != v1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = get("/").await;
    drop(child);
    assert_ne!(v2, v1, "the version moves when the issue file changes");
    assert!(page.contains("Edited &amp;lt;title&amp;gt; &lt;b&gt;now&lt;/b&gt;"), "the reloaded page shows the edit, escaped");
}

#[test]
fn preview_refuses_bad_input_with_exit_2() {
    let (dir, cfg) = temp_config(&all_channels_toml("short"));
    let cfg = cfg.display().to_string();
    let issue = crate::util::fixture("issues/minimal.md").display().to_string();
    let o = herald(dir.path(), &["--config", &cfg, "preview", &issue, "--serve", "--listen", "0.0.0.0:8044"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o).1);
    assert!(out(&o).1.contains("loopback only"), "{}", out(&o).1);
    let page = dir.path().join("p.html");
    let o = herald(dir.path(), &["--config", &cfg, "preview", &issue, "--channel", "nope", "--out", &page.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("nope") && !page.exists(), "{}", out(&o).1);
}

/// With a store, merge tags come from the first subscriber that is not suppressed; without one,
/// from sample values, and no store is created.
#[test]
fn preview_fills_merge_tags_from_the_first_subscriber() {
    let (dir, cfg) = temp_config(&all_channels_toml("short"));
    let cfg = cfg.display().to_string();
    let issue = crate::util::fixture("issues/2026-week-48.md").display().to_string();
    let page = dir.path().join("p.html");
    let page_s = page.display().to_string();
    let o = herald(dir.path(), &["--config", &cfg, "preview", &issue, "--out", &page_s]);
    assert!(o.status.success(), "{}", out(&o).1);
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("reader@example.com") && html.contains("Merge tags filled from sample values."), "sample values");
    assert!(!dir.path().join("herald.db").exists(), "the preview creates no store");

    std::fs::write(dir.path().join("subs.csv"), "email,name,City\nfirst.reader@example.org,Ada Lovelace,London\nsecond@example.org,Bob,Paris\n").expect("csv");
    let o = herald(dir.path(), &["--config", &cfg, "subscribers", "import", "subs.csv"]);
    assert!(o.status.success(), "import: {}", out(&o).1);
    let o = herald(dir.path(), &["--config", &cfg, "preview", &issue, "--out", &page_s]);
    assert!(o.status.success(), "{}", out(&o).1);
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("Merge tags filled from the first subscriber, first.reader@example.org."), "subscriber named");
    assert!(html.contains("first.reader@example.org") && !html.contains("reader@example.com"), "the subscriber's address fills [[email]]");
}
