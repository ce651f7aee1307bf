//! Issue 15 §3, bounded memory: parsing and rendering an issue for every channel allocates at
//! most linearly more as the issue grows. Measured with a counting global allocator, in a test
//! binary of its own so that no other test's allocations are counted.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use peak_alloc::PeakAlloc;
use proptest::prelude::*;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// The counter is process-wide: one measurement at a time.
static ONE: Mutex<()> = Mutex::new(());

/// Peak bytes live during `f` above what was live when it started (what it allocates and frees
/// along the way counts at its height).
fn peak_during(f: impl FnOnce()) -> usize {
    let before = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    f();
    ALLOC.peak_usage().saturating_sub(before)
}

fn config() -> herald::config::LoadedConfig {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile/base.toml");
    herald::config::load(&p).expect("base.toml loads")
}

/// An issue of `sections` sections, each with `body`.
fn issue(body: &str, sections: usize) -> String {
    let mut s = String::from(
        "+++\ntitle = \"T\"\nslug = \"s\"\ndate = 2026-01-05\nurl = \"https://news.example.com/s\"\nsummary = \"Hook.\"\ntags = [\"a\", \"b\"]\n+++\nIntro with [a link](https://news.example.com/a).\n\n",
    );
    for i in 0..sections {
        s.push_str(&format!("## Section {i}\n\n{body}\n\n"));
    }
    s
}

/// Peak bytes to parse `text` and render it for every channel of `cfg` (renderings included).
fn render_peak(cfg: &herald::config::LoadedConfig, text: &str) -> usize {
    peak_during(|| {
        if let Ok(issue) = herald::issue::parse_str(Path::new("m.md"), text) {
            let _ = herald::render::engine::render_channels(&issue, cfg, &[]);
        }
    })
}

/// Section bodies built from what drives Markdown's structure and the counters' costs.
fn body() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("- ".to_string()),
        Just("> ".to_string()),
        Just("1. ".to_string()),
        Just("*".to_string()),
        Just("_".to_string()),
        Just("[a](https://e.example/x)".to_string()),
        Just("[own](https://news.example.com/p)".to_string()),
        Just("| a | b |\n|---|---|\n".to_string()),
        Just("\n".to_string()),
        Just("\n\n".to_string()),
        Just("<b>".to_string()),
        Just("@a@b.example ".to_string()),
        Just("#tag ".to_string()),
        Just("example.com/x ".to_string()),
        "[a-zA-Z0-9 .,!?日é🎉\u{200D}]{1,12}",
        "[a-z]{50,300}",
    ];
    proptest::collection::vec(piece, 1..60).prop_map(|v| v.concat())
}

/// Bytes any render may take whatever its size: compiled templates, the CSS inliner's and
/// the counters' tables.
const FIXED: usize = 8 << 20;

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Four times the sections take at most about four times the memory (a pass that is
    /// quadratic in memory takes sixteen), and never more than a fixed amount per byte of issue.
    #[test]
    fn render_memory_grows_linearly_with_the_issue(body in body(), n in 2usize..20) {
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let cfg = config();
        // Lazily built tables (regexes, counters) stay allocated: build them first.
        render_peak(&cfg, &issue("Warm *up* [a](https://e.example/x) #t @a@b.example.", 2));
        let small = issue(&body, n);
        let large = issue(&body, 4 * n);
        let (s, l) = (render_peak(&cfg, &small), render_peak(&cfg, &large));
        prop_assert!(l <= 5 * s + (1 << 20), "{n} sections took {s} bytes, {} took {l} bytes", 4 * n);
        prop_assert!(l <= PER_BYTE * large.len() + FIXED, "{} bytes of issue took {l} bytes ({} per byte)", large.len(), l / large.len());
    }
}

/// Most bytes allocated per byte of issue, for every channel together.
const PER_BYTE: usize = 2_000;
