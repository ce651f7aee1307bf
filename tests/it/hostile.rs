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
