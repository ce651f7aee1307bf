//! The binary: render, check, config discovery, exit codes.

use crate::util::{all_channels_toml, fixture, herald, out, temp_config};

#[test]
fn render_json_has_the_documented_shape() {
    let (dir, cfg) = temp_config(&all_channels_toml("thread"));
    let issue = fixture("issues/2026-week-48.md");
    let o = herald(dir.path(), &["render", issue.to_str().unwrap(), "--json", "--config", cfg.to_str().unwrap()]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    let v: serde_json::Value = serde_json::from_str(&so).expect("render --json prints JSON");
    let arr = v.as_array().expect("an array");
    assert_eq!(arr.len(), 10);
    for item in arr {
        let r = &item["rendering"];
        match item["type"].as_str().unwrap() {
            "email" | "email_api" => assert!(r["subject"].is_string() && r["html"].is_string() && r["text"].is_string()),
            "substack" => assert!(r["title"].is_string() && r["subtitle"].is_string() && r["html"].is_string()),
            "x" | "bluesky" | "mastodon" | "threads" | "linkedin" => {
                let posts = r["posts"].as_array().expect("posts");
                assert!(posts.iter().all(|p| p["text"].is_string()));
                if item["type"] == "bluesky" {
                    assert!(posts.iter().any(|p| p["facets"].is_array()), "bluesky posts carry facets");
                }
            }
            "webhook" | "exec" => assert!(r["body"].is_object()),
            other => panic!("unexpected type {other}"),
        }
        assert!(item["channel"].is_string());
    }
}

#[test]
fn render_needs_no_credentials_and_finds_config_by_env_and_cwd() {
    let (dir, cfg) = temp_config(&all_channels_toml("short"));
    let issue = fixture("issues/2026-week-48.md");
    // ./herald.toml in the working directory.
    let o = herald(dir.path(), &["render", issue.to_str().unwrap(), "--channel", "x"]);
    assert!(o.status.success(), "{}", out(&o).1);
    assert!(out(&o).0.contains("━━ x (x) ━━"));
    // $HERALD_CONFIG.
    let o = std::process::Command::new(crate::pipeline::herald_bin())
        .args(["render", issue.to_str().unwrap(), "--channel", "bluesky"])
        .current_dir(std::env::temp_dir())
        .env("HERALD_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o).1);
    assert!(out(&o).0.contains("bluesky"));
}

#[test]
fn missing_config_and_unknown_channel_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let issue = fixture("issues/2026-week-48.md");
    let o = herald(dir.path(), &["render", issue.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("no config file"), "{}", out(&o).1);

    let (dir, _) = temp_config(&all_channels_toml("short"));
    let o = herald(dir.path(), &["render", issue.to_str().unwrap(), "--channel", "myspace"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("myspace: no such channel"), "{}", out(&o).1);
}

#[test]
fn check_preflights_an_issue_and_exits_2_on_bad_input() {
    let (dir, _) = temp_config(&all_channels_toml("thread"));
    let good = fixture("issues/2026-week-48.md");
    let o = herald(dir.path(), &["check", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o).1);
    assert!(out(&o).0.starts_with("ok:"));

    let bad = dir.path().join("bad.md");
    std::fs::write(&bad, "+++\nslug = \"x\"\ndate = 2026-01-01\nurl = \"https://a.example\"\nsummary = \"s\"\n+++\nbody\n").unwrap();
    let o = herald(dir.path(), &["check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let se = out(&o).1;
    assert!(se.contains("bad.md") && se.contains("title"), "{se}");

    // A broken template in an override folder is caught with its file and line.
    let tpl = dir.path().join("tpl");
    std::fs::create_dir(&tpl).unwrap();
    std::fs::write(tpl.join("short.txt.hbs"), "{{issue.title}\n").unwrap();
    let cfg = all_channels_toml("short").replace("[channels.x]\ntype = \"x\"\n", "[channels.x]\ntype = \"x\"\ntemplate = \"tpl\"\n");
    std::fs::write(dir.path().join("herald.toml"), cfg).unwrap();
    let o = herald(dir.path(), &["check"]);
    assert_eq!(o.status.code(), Some(2));
    let se = out(&o).1;
    assert!(se.contains("short.txt.hbs") && se.contains("line 1"), "{se}");
}

#[test]
fn check_warns_before_the_linkedin_token_expires_and_fails_after() {
    let soon = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let past = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    for (at, code, word) in [(soon, 0, "warning: channel linkedin"), (past, 2, "expired")] {
        let cfg = all_channels_toml("short").replace("author = \"urn:li:person:abc123\"\n", &format!("author = \"urn:li:person:abc123\"\ntoken_expires_at = \"{at}\"\n"));
        let (dir, _) = temp_config(&cfg);
        let o = herald(dir.path(), &["check"]);
        let se = out(&o).1;
        assert_eq!(o.status.code(), Some(code), "{se}");
        assert!(se.contains(word), "{se}");
    }
}

#[test]
fn check_holds_a_written_smtp_url_to_the_tls_policy() {
    let with = |url: &str| all_channels_toml("short").replace("smtp_url = \"smtp://127.0.0.1:2525\"", &format!("smtp_url = \"{url}\""));
    // Plain SMTP, or STARTTLS an attacker can strip, beyond loopback: refused, naming the file
    // and the field, never the password.
    for url in ["smtp://user:hunter2@mail.example.com:25", "smtp://mail.example.com:587?tls=opportunistic"] {
        let (dir, _) = temp_config(&with(url));
        let o = herald(dir.path(), &["check"]);
        let se = out(&o).1;
        assert_eq!(o.status.code(), Some(2), "{url}: {se}");
        assert!(se.contains("herald.toml:") && se.contains("channels.newsletter.smtp_url") && se.contains("beyond loopback") && se.contains("tls=required"), "{se}");
        assert!(!se.contains("hunter2"), "{se}");
    }
    // Required TLS passes; a `${ENV}` URL is checked once it resolves (`--credentials`).
    for url in ["smtp://mail.example.com:587?tls=required", "smtps://mail.example.com", "${SMTP_URL}"] {
        let (dir, _) = temp_config(&with(url));
        let o = herald(dir.path(), &["check"]);
        assert!(o.status.success(), "{url}: {}", out(&o).1);
    }
}

#[test]
fn check_exits_2_on_every_bad_config_and_issue_in_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let bad_configs = crate::util::fixture("config/bad");
    let mut n = 0;
    for e in std::fs::read_dir(&bad_configs).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let o = herald(dir.path(), &["check", "--config", p.to_str().unwrap()]);
        let se = out(&o).1;
        assert_eq!(o.status.code(), Some(2), "{}: {se}", p.display());
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(se.contains(name) && se.contains("error:"), "{}: the error names the file: {se}", p.display());
        n += 1;
    }
    assert!(n >= 5, "the bad-config corpus has {n} files");
    let (cfgdir, _) = temp_config(&all_channels_toml("short"));
    let mut m = 0;
    for e in std::fs::read_dir(crate::util::fixture("issues/bad")).unwrap() {
        let p = e.unwrap().path();
        let o = herald(cfgdir.path(), &["check", p.to_str().unwrap()]);
        let se = out(&o).1;
        assert_eq!(o.status.code(), Some(2), "{}: {se}", p.display());
        assert!(se.contains(p.file_name().unwrap().to_str().unwrap()), "{}: names the file: {se}", p.display());
        m += 1;
    }
    assert!(m >= 5, "the bad-issue corpus has {m} files");
}

/// Issue 16 item 6: an issue far too big for Postmark (a 413 per batch, halfway through a list)
/// fails the preflight: exit 2, nothing stored or sent. The issue cap (2 MiB) stops it first;
/// the 10 MB message check behind it is unit-tested in `render::engine`.
#[test]
fn an_issue_too_big_for_postmark_fails_the_preflight() {
    let (dir, cfg) = temp_config(&format!(
        "[store]\nurl = \"sqlite://herald.db\"\n\n[channels.postmark]\ntype = \"email_api\"\napi_base = \"http://127.0.0.1:9\"\n\
         server_token = \"${{POSTMARK_SERVER_TOKEN}}\"\nfrom = \"news@example.com\"\nunsubscribe_base_url = \"https://news.example.com/unsubscribe\"\n"
    ));
    let issue = dir.path().join("big.md");
    let para = "A long paragraph of the issue, repeated until the message is far over the limit. ".repeat(20);
    let mut text = std::fs::read_to_string(fixture("issues/minimal.md")).unwrap();
    for _ in 0..7_000 {
        text.push_str("\n\n");
        text.push_str(&para);
    }
    std::fs::write(&issue, text).unwrap();
    for cmd in ["check", "publish"] {
        let args: Vec<&str> = if cmd == "check" {
            vec!["--config", cfg.to_str().unwrap(), "check", issue.to_str().unwrap()]
        } else {
            vec!["--config", cfg.to_str().unwrap(), "publish", issue.to_str().unwrap()]
        };
        let o = herald(dir.path(), &args);
        let (_, se) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {se}");
        assert!(se.contains("big.md") && se.contains("larger than 2 MiB"), "{cmd}: {se}");
    }
    assert!(!dir.path().join("herald.db").exists(), "nothing stored");
}

/// Issue 16 item 6: a draft over the Substack channel's `max_body_bytes` fails the preflight
/// (exit 2, nothing stored); the same issue under the default limit passes `check`.
#[test]
fn a_draft_over_substacks_max_body_bytes_fails_the_preflight() {
    let channel = "[channels.substack]\ntype = \"substack\"\napi_base = \"http://127.0.0.1:9\"\ncookie = \"${SUBSTACK_COOKIE}\"\nuser_id = 1\n";
    let (dir, cfg) = temp_config(&format!("[store]\nurl = \"sqlite://herald.db\"\n\n{channel}max_body_bytes = 4000\n"));
    std::fs::create_dir(dir.path().join("issues")).unwrap();
    let issue = dir.path().join("long.md");
    let mut text = std::fs::read_to_string(fixture("issues/minimal.md")).unwrap();
    for i in 0..40 {
        text.push_str(&format!("\n\nParagraph {i} says \"something\" worth a quote, twice over."));
    }
    std::fs::write(&issue, text).unwrap();
    for cmd in ["check", "publish"] {
        let o = herald(dir.path(), &["--config", cfg.to_str().unwrap(), cmd, issue.to_str().unwrap()]);
        let (_, se) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {se}");
        assert!(se.contains("substack") && se.contains("max_body_bytes") && se.contains("4000 bytes"), "{cmd}: {se}");
    }
    assert!(!dir.path().join("herald.db").exists(), "nothing stored");
    let (dir, cfg) = temp_config(&format!("[store]\nurl = \"sqlite://herald.db\"\n\n{channel}"));
    std::fs::create_dir(dir.path().join("issues")).unwrap();
    let o = herald(dir.path(), &["--config", cfg.to_str().unwrap(), "check", issue.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o).1);
}

/// Issue 16 item 6: a webhook header value with a line break is refused by `check`.
#[test]
fn a_webhook_header_with_a_line_break_is_refused() {
    let (dir, cfg) = temp_config(
        "[channels.hook]\ntype = \"webhook\"\nurl = \"https://hooks.example.com/h\"\nheaders = { \"X-Source\" = \"herald\\r\\nX-Evil: 1\" }\n",
    );
    let o = herald(dir.path(), &["--config", cfg.to_str().unwrap(), "check"]);
    let (_, se) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{se}");
    assert!(se.contains("channels.hook.headers.X-Source") && se.contains("line break"), "{se}");
    assert!(se.contains(":4"), "names the line: {se}");
}

/// Issue 14 item 5: `check --credentials` asks Threads for the permissions a thread channel
/// needs, and names the missing one.
#[tokio::test(flavor = "multi_thread")]
async fn check_credentials_names_a_missing_threads_permission() {
    use herald::sandbox::threads::{self, ThreadsFake};
    let fake = ThreadsFake::start().await.unwrap();
    let (dir, cfg) = temp_config(&format!(
        "[channels.th]\ntype = \"threads\"\napi_base = \"{}\"\naccess_token = \"${{HERALD_IT_TH_TOKEN}}\"\nformat = \"thread\"\n",
        fake.base_url
    ));
    std::fs::create_dir(dir.path().join("issues")).unwrap();
    let run = |dir: std::path::PathBuf, cfg: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::pipeline::herald_bin())
                .args(["check", "--credentials", "--config", cfg.to_str().unwrap()])
                .current_dir(&dir)
                .env_remove("HERALD_CONFIG")
                .env("HERALD_IT_TH_TOKEN", threads::ACCESS_TOKEN)
                .output()
                .unwrap()
        })
    };
    let o = run(dir.path().to_path_buf(), cfg.clone()).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fake.set_permissions(&["threads_basic", "threads_content_publish", "threads_manage_replies"]);
    let o = run(dir.path().to_path_buf(), cfg).await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("channel th:") && err.contains("`threads_read_replies`"), "{err}");
    assert!(!err.contains(threads::ACCESS_TOKEN), "{err}");
}
