//! `herald publish ISSUE --sandbox`: the real pipeline against every network's fake, the
//! loopback SMTP server and the Postmark fake, driven by the shipped config/herald.toml.

use std::path::Path;

use herald::render::Rendering;
use herald::store::{State, Store, StoreUrl};

use crate::util::{fixture, root, sample_issues};

fn run_sandbox(issue: &Path, dir: &Path) -> (i32, String, String) {
    let o = std::process::Command::new(crate::pipeline::herald_bin())
        .current_dir(root())
        .args(["--config", "config/herald.toml", "publish"])
        .arg(issue)
        .arg("--sandbox")
        .arg("--sandbox-dir")
        .arg(dir)
        .env_remove("HERALD_CONFIG")
        .output()
        .expect("run herald");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// How many posts (or messages) a fake's dump holds.
fn dumped(dir: &Path, channel: &str) -> usize {
    let p = dir.join(format!("{channel}.json"));
    if p.is_file() {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        return match v.get("published") {
            Some(published) => published.as_array().unwrap().len(),
            None => v.as_array().unwrap().len(),
        };
    }
    std::fs::read_dir(dir.join(channel)).map(|d| d.filter_map(Result::ok).filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count()).unwrap_or(0)
}

/// How many channels of config/herald.toml have a type `keep` takes (counted from the sample,
/// so adding a channel type and its sample needs no edit here).
fn sample_channels(keep: impl Fn(&str) -> bool) -> usize {
    let cfg = herald::config::load(&root().join("config/herald.toml")).expect("the sample config loads");
    cfg.config.channels.values().filter(|c| keep(c.type_name())).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_issue_is_sent_on_every_channel_and_the_fakes_saw_exactly_that() {
    for issue in sample_issues() {
        let dir = tempfile::tempdir().unwrap();
        let (code, out, err) = run_sandbox(&issue, dir.path());
        assert_eq!(code, 0, "{}:\n{out}\n{err}", issue.display());
        let store = Store::open(&StoreUrl::parse(&format!("sqlite://{}/herald.db", dir.path().display()), Path::new("/")).unwrap()).await.unwrap();
        let ds = store.list_deliveries(None, &[]).await.unwrap();
        assert_eq!(ds.len(), sample_channels(|_| true), "{}: one delivery per channel of config/herald.toml", issue.display());
        for d in &ds {
            assert_eq!(d.state(), State::Sent, "{}: {} is {}: {:?}", issue.display(), d.channel, d.state, d.last_error);
            assert!(out.contains(&d.channel), "the matrix lists {}", d.channel);
            let attempts = store.attempts(d.id).await.unwrap();
            assert_eq!(attempts.len(), 1, "{}: one attempt", d.channel);
            assert_eq!(attempts[0].outcome, "sent");
            let (json, _) = store.rendering_json(d.id).await.unwrap().expect("stored rendering");
            let rendering: Rendering = serde_json::from_str(&json).unwrap();
            let seen = dumped(dir.path(), &d.channel);
            let expected = match (&rendering, d.channel_type.as_str()) {
                (Rendering::Posts(p), _) => p.posts.len(),
                (Rendering::Email(_), _) => herald::sandbox::email_fakes::SAMPLE_SUBSCRIBERS.len(),
                _ => 1,
            };
            assert_eq!(seen, expected, "{}: {} accepted {seen}, the rendering had {expected}", issue.display(), d.channel);
        }
        // Each email reached each sample subscriber once, with its own unsubscribe link.
        let mails: Vec<_> = std::fs::read_dir(dir.path().join("newsletter")).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
        for (name, addr, _) in herald::sandbox::email_fakes::SAMPLE_SUBSCRIBERS {
            let mine: Vec<_> = mails.iter().filter(|m| m.contains(&format!("To: \"{name}\" <{addr}>"))).collect();
            assert_eq!(mine.len(), 1, "{addr} mailed once");
            assert!(mine[0].contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        }
        store.close().await;
    }
    // The author's own config folder is untouched (the plugin wrote into the run folder).
    assert!(!root().join("config/data").exists());
}

#[test]
fn sandbox_refuses_bad_input_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_sandbox(&fixture("issues/bad/missing-title.md"), dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(!dir.path().join("herald.db").exists(), "nothing stored");
}

#[test]
fn sandbox_serve_refuses_a_bad_fault_plan_naming_the_item_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(crate::pipeline::herald_bin())
        .current_dir(root())
        .args(["--config", "config/herald.toml", "sandbox", "serve", "--fault-plan", "503=5%,teapot=1%", "--dir"])
        .arg(dir.path())
        .env_remove("HERALD_CONFIG")
        .output()
        .expect("run herald");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--fault-plan") && err.contains("`teapot`") && err.contains("hang, reset"), "{err}");
    assert!(!dir.path().join("journal").exists(), "no fake started");
}

/// `sandbox serve` in its own process: the printed fragment makes a config `herald check`
/// accepts, a publish against it lands in the fakes' journals, and the journals are on disk
/// while the fakes still run (they are read here before serve stops).
#[test]
fn sandbox_serve_points_every_channel_at_journaling_fakes() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = std::process::Command::new(crate::pipeline::herald_bin())
        .current_dir(root())
        .args(["--config", "config/herald.toml", "sandbox", "serve", "--json", "--dir"])
        .arg(dir.path().join("fakes"))
        .env_remove("HERALD_CONFIG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run herald sandbox serve");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(serve.stdout.take().unwrap()), &mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let fragment = std::fs::read_to_string(info["config_fragment"].as_str().unwrap()).unwrap();
    // The plugin's script is relative to config/, where the fragment's tables came from.
    let fragment = fragment.replace("\"examples/plugin.sh\"", &format!("{:?}", root().join("config/examples/plugin.sh").display().to_string()));
    let cfg = dir.path().join("herald.toml");
    std::fs::write(&cfg, format!("issues_dir = {:?}\n[store]\nurl = \"sqlite://{}/herald.db\"\n\n{fragment}", fixture("issues").display().to_string(), dir.path().display())).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(crate::pipeline::herald_bin()).arg("--config").arg(&cfg).args(args).env_remove("HERALD_CONFIG").output().expect("run herald")
    };
    let check = run(&["check"]);
    let subs = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(subs.path(), "email,name\nana@example.com,Ana\nben@example.org,Ben\n").unwrap();
    let import = run(&["subscribers", "import", subs.path().to_str().unwrap()]);
    let issue = fixture("issues/2026-week-48.md");
    let publish = run(&["publish", issue.to_str().unwrap(), "--wait", "--timeout", "60"]);
    let journals: Vec<(String, Vec<serde_json::Value>)> = info["fakes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let p = f["journal"].as_str()?;
            let rows = std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            Some((f["channel"].as_str().unwrap().to_string(), rows))
        })
        .collect();
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(check.status.success(), "check: {}", String::from_utf8_lossy(&check.stderr));
    assert!(import.status.success(), "import: {}", String::from_utf8_lossy(&import.stderr));
    assert_eq!(publish.status.code(), Some(0), "publish: {}\n{}", String::from_utf8_lossy(&publish.stdout), String::from_utf8_lossy(&publish.stderr));
    assert_eq!(journals.len(), sample_channels(|t| t != "exec"), "a journal per fake (not the plugin): {:?}", journals.iter().map(|j| &j.0).collect::<Vec<_>>());
    for (channel, rows) in &journals {
        let accepted = rows.iter().filter(|r| r["method"] != "GET" && r.get("status").and_then(|s| s.as_u64()).is_none_or(|s| (200..300).contains(&s))).count();
        assert!(accepted > 0, "{channel}: its fake journaled what it accepted: {rows:?}");
    }
    let smtp = &journals.iter().find(|j| j.0 == "newsletter").unwrap().1;
    let mut rcpts: Vec<&str> = smtp.iter().map(|r| r["rcpt_to"][0].as_str().unwrap()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["ana@example.com", "ben@example.org"], "each subscriber once");
}

/// Issue 16 item 3: under `--sandbox` a plugin runs only with `run_in_sandbox = true`;
/// otherwise it is reported skipped and never started.
#[test]
fn a_plugin_without_the_opt_in_is_skipped_in_the_sandbox() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let marker = cfg_dir.path().join("ran");
    let script = cfg_dir.path().join("plugin.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\necho '{{\"id\": \"p1\"}}'\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = cfg_dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[channels.hook]\ntype = \"webhook\"\nurl = \"https://hooks.example.com/h\"\n\n[channels.plug]\ntype = \"exec\"\ncommand = [\"{}\"]\n",
            script.display()
        ),
    )
    .unwrap();
    let run = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(crate::pipeline::herald_bin())
        .current_dir(root())
        .arg("--config")
        .arg(&config)
        .arg("publish")
        .arg(fixture("issues/minimal.md"))
        .arg("--sandbox")
        .arg("--sandbox-dir")
        .arg(run.path())
        .env_remove("HERALD_CONFIG")
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("Skipped channel plug") && err.contains("run_in_sandbox = true"), "{err}");
    assert!(out.contains("skipped (plugin)"), "{out}");
    assert!(!marker.exists(), "the plugin must not run");
    assert_eq!(dumped(run.path(), "hook"), 1, "the other channels still run");
}
