//! The hostile-input corpus (`tests/fixtures/hostile/cases.toml`): every case runs the built
//! binary (`check`, `render` or `subscribers import`) under a time bound, and must end with its
//! expected exit code and message, and never with a panic, an abort or a hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::util::fixture;

/// The most any one case may take. Generous for a debug build on two shared cores; a hang is
/// unbounded, and the slowest case (2,000 sections, every channel) takes a few seconds.
const CASE_BOUND: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    cmd: String,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    config: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    exit: i32,
    stderr: String,
    #[serde(default)]
    stdout: Option<String>,
}

/// `@@REPEAT <n> <text>@@` → text × n (`\n` in text is a newline).
fn expand(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("@@REPEAT ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "@@REPEAT ".len()..];
        let (n, body) = after.split_once(' ').expect("@@REPEAT <n> <text>@@");
        let end = body.find("@@").expect("@@REPEAT … closes with @@");
        let n: usize = n.parse().expect("a count");
        out.push_str(&body[..end].replace("\\n", "\n").repeat(n));
        rest = &body[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Copy the corpus into `to`, expanding the repeat markers.
fn copy_expanded(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_expanded(&src, &dst);
            continue;
        }
        let bytes = std::fs::read(&src).unwrap();
        match std::str::from_utf8(&bytes) {
            Ok(t) if t.contains("@@REPEAT ") && e.file_name() != "cases.toml" => std::fs::write(&dst, expand(t)).unwrap(),
            _ => std::fs::write(&dst, bytes).unwrap(),
        }
    }
}

/// Run one case; None when it ends as expected, else what went wrong.
fn run(case: &Case, dir: &Path) -> Option<String> {
    let config = case.config.clone().unwrap_or_else(|| "base.toml".into());
    let mut args: Vec<String> = match case.cmd.as_str() {
        "render" => vec!["render".into()],
        "check" => vec!["check".into()],
        "import" => vec!["subscribers".into(), "import".into()],
        other => return Some(format!("unknown cmd {other}")),
    };
    args.extend(case.input.clone());
    args.extend(["--config".into(), config]);
    args.extend(case.args.iter().cloned());
    let out_path: PathBuf = dir.join(format!(".{}.out", case.name));
    let err_path: PathBuf = dir.join(format!(".{}.err", case.name));
    let mut child = Command::new(crate::pipeline::herald_bin())
        .args(&args)
        .current_dir(dir)
        .env_remove("HERALD_CONFIG")
        .env_remove("HOSTILE_UNSET_TOKEN")
        .envs(&case.env)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run herald");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > CASE_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            return Some(format!("still running after {CASE_BOUND:?} (a hang)"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned();
    let short = |s: &str| s.chars().take(600).collect::<String>();
    if stderr.contains("panicked") || stderr.contains("overflow") {
        return Some(format!("panicked or overflowed ({took:?}): {}", short(&stderr)));
    }
    match status.code() {
        None => Some(format!("killed by a signal (an abort?) after {took:?}: {}", short(&stderr))),
        Some(c) if c != case.exit => Some(format!("exit {c}, expected {} ({took:?}); stderr: {}", case.exit, short(&stderr))),
        Some(_) if !stderr.contains(&case.stderr) => Some(format!("stderr lacks {:?}: {}", case.stderr, short(&stderr))),
        Some(_) if case.stdout.as_ref().is_some_and(|s| !stdout.contains(s)) => Some(format!("stdout lacks {:?}: {}", case.stdout, short(&stdout))),
        Some(_) => None,
    }
}

#[test]
fn the_hostile_corpus_ends_as_expected_every_time() {
    let src = fixture("hostile");
    let corpus: Corpus = toml::from_str(&std::fs::read_to_string(src.join("cases.toml")).unwrap()).expect("cases.toml parses");
    assert!(corpus.case.len() >= 100, "the corpus keeps 100+ cases, has {}", corpus.case.len());
    let tmp = tempfile::tempdir().unwrap();
    copy_expanded(&src, tmp.path());
    let mut failures = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for case in &corpus.case {
        assert!(names.insert(case.name.clone()), "duplicate case name {}", case.name);
        if let Some(f) = run(case, tmp.path()) {
            failures.push(format!("{}: {f}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), corpus.case.len(), failures.join("\n"));
}

#[test]
fn repeat_markers_expand() {
    assert_eq!(expand("a@@REPEAT 3 - @@x@@REPEAT 2 \\n@@"), "a- - - x\n\n");
    assert_eq!(expand("plain"), "plain");
}

/// Property tests (proptest, stable toolchain): whatever the input, no panic and a bounded time.
mod properties {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use herald::render::count::Network;
    use herald::render::split::{SplitOptions, split_thread};

    /// A bound no linear pass comes near in a debug build; a quadratic one on these sizes does.
    const BOUND: Duration = Duration::from_secs(10);

    fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        assert!(start.elapsed() < BOUND, "{what} took {:?}", start.elapsed());
        out
    }

    /// Markdown built from the characters and line starts that drive its structure.
    fn markdown() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("- ".to_string()),
            Just("> ".to_string()),
            Just("1. ".to_string()),
            Just("## ".to_string()),
            Just("```\n".to_string()),
            Just("*".to_string()),
            Just("_".to_string()),
            Just("[a](https://e.example/x)".to_string()),
            Just("![i](x.png)".to_string()),
            Just("| a | b |\n|---|---|\n".to_string()),
            Just("\n".to_string()),
            Just("\n\n".to_string()),
            Just("    ".to_string()),
            Just("<b>".to_string()),
            Just("@a@b.example ".to_string()),
            Just("#tag ".to_string()),
            Just("example.com/x ".to_string()),
            "[a-zA-Z0-9 .,!?日é🎉\u{200D}]{1,12}",
            "[a-z]{50,300}",
        ];
        proptest::collection::vec(piece, 0..120).prop_map(|v| v.concat())
    }

    fn front_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\"x\"".to_string()),
            Just("\"\"".to_string()),
            Just("1".to_string()),
            Just("-1".to_string()),
            Just(i64::MAX.to_string()),
            Just("1e17".to_string()),
            Just("1969-12-31".to_string()),
            Just("2101-01-01T00:00:00Z".to_string()),
            Just("[\"a\", 1]".to_string()),
            Just("{ skip = \"no\" }".to_string()),
            Just("true".to_string()),
            "\"[a-z #/:.]{0,40}\"",
        ]
    }

    fn issue_text() -> impl Strategy<Value = String> {
        let keys = proptest::collection::vec(
            (prop_oneof![Just("title"), Just("slug"), Just("date"), Just("url"), Just("summary"), Just("tags"), Just("number"), Just("publish_at"), Just("draft"), Just("image"), Just("titel")], front_value()),
            0..4,
        );
        (keys, markdown(), any::<bool>()).prop_map(|(extra, body, valid)| {
            let mut fm = String::from("+++\n");
            if valid {
                fm.push_str("title = \"T\"\nslug = \"s\"\ndate = 2026-01-05\nurl = \"https://news.example.com/s\"\nsummary = \"Hook.\"\n");
            }
            for (k, v) in extra {
                if !(valid && ["title", "slug", "date", "url", "summary"].contains(&k)) {
                    fm.push_str(&format!("{k} = {v}\n"));
                }
            }
            format!("{fm}+++\n{body}")
        })
    }

    fn loaded_base() -> herald::config::LoadedConfig {
        herald::config::load(&crate::util::fixture("hostile/base.toml")).expect("base.toml loads")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// The parser, then (for what it accepts) every channel's rendering, the ProseMirror
        /// converter and the splitter: no panic, bounded time; and the Substack document of an
        /// accepted issue reads back through serde_json (the nesting cap is below its limit).
        #[test]
        fn issues_parse_and_render_without_panic(text in issue_text()) {
            let cfg = loaded_base();
            let parsed = timed("parse", || herald::issue::parse_str(Path::new("p.md"), &text));
            if let Ok(issue) = parsed {
                let out = timed("render", || herald::render::engine::render_channels(&issue, &cfg, &[]));
                if let Ok(rendered) = out {
                    for r in rendered {
                        let stored = serde_json::to_string(&r.rendering).unwrap();
                        let back: Result<herald::render::Rendering, _> = serde_json::from_str(&stored);
                        prop_assert!(back.is_ok(), "{} does not read back: {:?}", r.channel, back.err());
                    }
                }
            }
        }

        /// The converter alone, on any Markdown (beyond the parser's caps too): no panic.
        #[test]
        fn prosemirror_never_panics(md in markdown()) {
            let doc = timed("prosemirror", || herald::render::prosemirror::markdown_to_doc(&md));
            let _ = serde_json::to_string(&doc);
        }

        /// Config loading: random keys with extreme values, in every section.
        #[test]
        fn config_validation_never_panics(lines in proptest::collection::vec(prop_oneof![
            Just("[retry]".to_string()),
            Just("[store]".to_string()),
            Just("[http]".to_string()),
            Just("[[schedule]]".to_string()),
            Just("[channels.a]".to_string()),
            Just("[channels.b]\ntype = \"email\"".to_string()),
            Just("type = \"webhook\"".to_string()),
            Just("url = \"https://h.example\"".to_string()),
            Just("headers = { Authorization = \"Bearer ${T}\", X = \"\\u0000\" }".to_string()),
            Just("cron = \"0 0 9 * * Mon\"".to_string()),
            Just("name = \"w\"".to_string()),
            (prop_oneof![Just("timeout_secs"), Just("catch_up_secs"), Just("concurrency"), Just("retry_schedule_secs"), Just("schedule_secs"),
                Just("rate_limit_floor_secs"), Just("rate_limit_ceiling_secs"), Just("jitter"), Just("ledger_flush_ms"), Just("max_characters"),
                Just("batch_size"), Just("max_per_second"), Just("listen"), Just("token"), Just("zzzzzzzzzzzzzzzzzzzzzzzzzzzzz")], front_value())
                .prop_map(|(k, v)| format!("{k} = {v}")),
            "[a-z_=\\[\\]\"{}.,0-9 #-]{0,60}",
        ], 0..24)) {
            let text = lines.join("\n");
            let _ = timed("validate", || herald::config::validate::validate(Path::new("p.toml"), &text));
        }

        /// Templates: loops, nesting, strict mode and broken syntax are errors, never a crash.
        #[test]
        fn templates_never_panic(body in proptest::collection::vec(prop_oneof![
            Just("{{".to_string()), Just("}}".to_string()), Just("{{#if issue.title}}".to_string()), Just("{{/if}}".to_string()),
            Just("{{#each issue.sections}}".to_string()), Just("{{/each}}".to_string()), Just("{{else}}".to_string()),
            Just("{{> body.json.hbs}}".to_string()), Just("{{> extra.hbs}}".to_string()), Just("{{#*inline \"p\"}}{{> p}}{{/inline}}".to_string()),
            Just("{{json issue.slug}}".to_string()), Just("{{md_text issue.nosuch}}".to_string()), Just("{{json (md_text (md_text issue.title))}}".to_string()),
            Just("(".to_string()), Just(")".to_string()), Just("\"".to_string()), Just("{".to_string()), Just("}".to_string()),
            "[a-z ,:]{1,8}",
        ], 0..40), extra in "[a-z{}>#/ .]{0,40}") {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("manifest.toml"), "kind = \"body\"\n[outputs]\nbody = \"body.json.hbs\"\nextra = \"extra.hbs\"\n").unwrap();
            std::fs::write(dir.path().join("body.json.hbs"), body.concat()).unwrap();
            std::fs::write(dir.path().join("extra.hbs"), extra).unwrap();
            let cfg: herald::config::ChannelConfig =
                toml::from_str(&format!("type = \"webhook\"\nurl = \"https://h.example\"\ntemplate = \"{}\"", dir.path().display())).unwrap();
            let _ = timed("templates", || herald::render::engine::ChannelTemplates::load("hook", &cfg, dir.path()).and_then(|mut t| t.dry_run()));
        }

        /// CSV import: any bytes.
        #[test]
        fn csv_import_never_panics(bytes in proptest::collection::vec(prop_oneof![
            Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b'@'), Just(b'.'), Just(0xff), Just(0x1b), Just(0),
            (b'a'..=b'z'),
        ], 0..400), header in prop_oneof![Just("email,name\n"), Just("name,email,city\n"), Just(""), Just("EMAIL\n"), Just("\"email\n")]) {
            let mut input = header.as_bytes().to_vec();
            input.extend(bytes);
            timed("csv", || {
                if let Ok(mut csv) = herald::channel::email::import::CsvImport::new(std::io::Cursor::new(input)) {
                    while csv.next_batch(50).is_some() {}
                }
            });
        }

        /// SMTP replies as lettre reads them, and Herald's bounce classification of them.
        #[test]
        fn smtp_replies_never_panic(code in 0u16..1000, sep in prop_oneof![Just(" "), Just("-"), Just("")], text in "[ -~\u{e9}\r\n]{0,80}") {
            let line = format!("{code}{sep}{text}\r\n");
            let _ = timed("reply", || line.parse::<lettre::transport::smtp::response::Response>());
            let _ = herald::channel::email::is_address_bounce(code, &text);
        }
    }

    proptest! {
        // Counting is the costly part (twitter-text's extractor); fewer cases keep this quick.
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// The splitter, on parts with long unbroken tokens: no panic, and when it splits,
        /// every post fits.
        #[test]
        fn splitting_never_panics(parts in proptest::collection::vec(markdown(), 1..4), counter in any::<bool>()) {
            for network in [Network::X, Network::Mastodon, Network::Bluesky, Network::Threads] {
                if let Ok(posts) = timed("split", || split_thread(&parts, network, SplitOptions { counter })) {
                    for p in posts {
                        prop_assert!(network.check(&p).is_ok() || network == Network::X, "{network:?}: {p:?}");
                    }
                }
            }
        }
    }

    /// `/healthz`, `/status`, `/metrics` and the unsubscribe routes, through `oneshot`.
    struct Fixed;
    #[async_trait::async_trait]
    impl herald::http::StatusSource for Fixed {
        async fn snapshot(&self) -> anyhow::Result<herald::http::page::Snapshot> {
            anyhow::bail!("no store here")
        }
        async fn healthy(&self) -> bool {
            true
        }
    }

    fn app() -> axum::Router {
        use herald::channel::email::{MemoryLedger, TokenKey, unsubscribe_routes};
        use herald::channel::email::unsubscribe::UnsubscribeState;
        let key = TokenKey::new(&herald::config::SecretString::new("k".repeat(32)));
        let public = unsubscribe_routes(UnsubscribeState::new(vec![key], Arc::new(MemoryLedger::default())));
        herald::http::router(herald::http::HttpState { token: Some(herald::config::SecretString::new("t".repeat(32))), status: Arc::new(Fixed) }, public)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn http_routes_never_panic(
            method in prop_oneof![Just("GET"), Just("POST"), Just("HEAD"), Just("PUT"), Just("OPTIONS")],
            path in prop_oneof![
                Just("/healthz".to_string()), Just("/metrics".to_string()), Just("/status".to_string()),
                "/unsubscribe/[A-Za-z0-9_.%-]{0,200}", "/[a-z/%.]{0,40}", Just("/unsubscribe/..%2f..%2fstatus".to_string()),
            ],
            auth in prop_oneof![Just(None), Just(Some("Bearer x".to_string())), Just(Some(format!("Bearer {}", "t".repeat(32)))), "[ -~]{0,40}".prop_map(Some)],
            body in "[ -~]{0,200}",
        ) {
            use tower::ServiceExt;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let mut req = axum::http::Request::builder().method(method).uri(path.as_str()).header("content-type", "application/x-www-form-urlencoded");
            if let Some(a) = &auth {
                req = req.header("authorization", a.as_str());
            }
            let Ok(req) = req.body(axum::body::Body::from(body)) else { return Ok(()) };
            let status = timed("route", || rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), app().oneshot(req)).await }))
                .expect("answers within 5 s")
                .expect("infallible")
                .status();
            prop_assert!(status.as_u16() < 600);
            prop_assert!(!status.is_server_error() || path.starts_with("/status"), "{method} {path}: {status}");
        }
    }
}
