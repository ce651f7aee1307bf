//! Config validation and issue-file errors, at library level: the shipped configs load, every bad
//! fixture reports exactly the expected errors (file, line, dotted key, message, hint), secrets are
//! never echoed, and the issue fixtures parse or fail with the expected file:line messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use herald::config::{self, CHANNEL_TYPES, ChannelConfig, ConfigError, Secret};
use herald::issue;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `*.<ext>` file in a folder, sorted.
fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn load_errors(path: &Path) -> Vec<ConfigError> {
    match config::load(path) {
        Ok(_) => panic!("{} should not validate", path.display()),
        Err(e) => e.0,
    }
}

fn parse_text(text: &str) -> Result<config::Config, Vec<ConfigError>> {
    config::parse(Path::new("inline.toml"), text).map_err(|e| e.0)
}

#[test]
fn every_shipped_config_loads_and_validates() {
    let mut all = files("config", "toml");
    all.extend(files("config/examples", "toml"));
    assert!(all.len() >= 2, "expected config/herald.toml and config/examples/*.toml, found {all:?}");
    for p in all {
        if let Err(e) = config::load(&p) {
            panic!("{} does not validate:\n{e}", p.display());
        }
    }
}

#[test]
fn default_config_configures_every_channel_type_enabled() {
    let loaded = config::load(&root().join("config/herald.toml")).unwrap();
    let c = &loaded.config;
    let mut types: Vec<&str> = c.channels.values().map(ChannelConfig::type_name).collect();
    types.sort();
    let mut want = CHANNEL_TYPES.to_vec();
    want.sort();
    assert_eq!(types, want, "one channel of each type");
    for (name, ch) in &c.channels {
        assert!(ch.common().enabled, "channel {name} must stay enabled for the sandbox");
    }
    let names: Vec<&str> = c.channels.keys().map(String::as_str).collect();
    for n in ["newsletter", "postmark", "substack", "linkedin", "x", "bluesky", "mastodon", "threads", "webhook", "plugin"] {
        assert!(names.contains(&n), "channel {n} missing from {names:?}");
    }
    assert_eq!(c.store.url, "sqlite://data/herald.db");
    // issues_dir works relative to the config file.
    let issues = loaded.resolve_path(&c.issues_dir);
    assert!(issues.join("2026-week-47.md").is_file(), "{} has no fixtures", issues.display());
    // Secrets are env references, never values.
    match &c.channels["newsletter"] {
        ChannelConfig::Email(e) => {
            assert_eq!(e.smtp_url, "smtp://127.0.0.1:2525");
            assert_eq!(e.unsubscribe_secret, Some(Secret::Env("HERALD_UNSUBSCRIBE_SECRET".into())));
        }
        other => panic!("newsletter is {}", other.type_name()),
    }
    match &c.channels["mastodon"] {
        ChannelConfig::Mastodon(m) => {
            assert_eq!(m.access_token, Some(Secret::Env("MASTODON_ACCESS_TOKEN".into())));
            assert_eq!(m.api_base, "https://mastodon.social");
        }
        other => panic!("mastodon is {}", other.type_name()),
    }
    // The exec plugin's script ships next to the config.
    match &c.channels["plugin"] {
        ChannelConfig::Exec(x) => {
            let script = x.command.iter().find(|a| a.ends_with(".sh")).expect("a script argument");
            assert!(loaded.resolve_path(Path::new(script)).is_file(), "{script} is not shipped");
        }
        other => panic!("plugin is {}", other.type_name()),
    }
}

#[test]
fn api_base_defaults_to_the_real_host() {
    let c = parse_text(
        "[channels.m]\ntype = \"mastodon\"\naccess_token = \"${T}\"\n\
         [channels.b]\ntype = \"bluesky\"\nidentifier = \"me.bsky.social\"\napp_password_file = \"/run/secrets/b\"\n\
         [channels.x]\ntype = \"x\"\naccess_token = \"${X}\"\n",
    )
    .unwrap();
    match (&c.channels["m"], &c.channels["b"], &c.channels["x"]) {
        (ChannelConfig::Mastodon(m), ChannelConfig::Bluesky(b), ChannelConfig::X(x)) => {
            assert_eq!(m.api_base, "https://mastodon.social");
            assert_eq!(b.api_base, "https://bsky.social");
            assert_eq!(b.app_password_file, Some(PathBuf::from("/run/secrets/b")));
            assert_eq!(config::pick_secret(&b.app_password, &b.app_password_file), Some(Secret::File("/run/secrets/b".into())));
            assert_eq!(x.api_base, "https://api.x.com");
        }
        _ => panic!("wrong types"),
    }
}

#[test]
fn postgres_example_is_a_scheduled_daemon() {
    let c = config::load(&root().join("config/examples/postgres-daemon.toml")).unwrap().config;
    assert!(c.store.url.starts_with("postgres://"));
    assert!(!c.schedule.is_empty());
    for s in &c.schedule {
        for ch in &s.channels {
            assert!(c.channels.contains_key(ch), "schedule {} names {ch}", s.name);
        }
    }
}

/// (line, dotted key, message fragment, hint fragment) for each expected error, in file order.
type Expect = (usize, &'static str, &'static str, &'static str);

const BAD_CONFIGS: &[(&str, &[Expect])] = &[
    (
        "unknown-key.toml",
        &[
            (3, "stroe", "unknown key", "did you mean `store`?"),
            (8, "channels.toots.api_bse", "unknown key", "did you mean `api_base`?"),
            (10, "channels.toots.identifier", "unknown key", "belongs to bluesky channels"),
            (15, "channels.hook.secret_env", "unknown key", "`secret = \"${ENV_VAR}\"`"),
        ],
    ),
    (
        "bad-type.toml",
        &[
            (3, "channels.tweets.type", "unknown channel type `twitter`", "did you mean `x`?"),
            (7, "channels.blog.type", "unknown channel type `tumblr`", "valid types: email, email_api, substack, "),
            (9, "channels.nothing.type", "is required", "one of: email"),
        ],
    ),
    (
        "inline-secret.toml",
        &[
            (4, "channels.toots.access_token", "inline secret refused", "`access_token = \"${TOOTS_ACCESS_TOKEN}\"`"),
            (8, "channels.newsletter.smtp_url", "inline secret refused", "${SMTP_URL}"),
            (11, "channels.newsletter.unsubscribe_secret", "inline secret refused", "unsubscribe_secret_file"),
            (14, "store.url", "inline secret refused", "PGPASSWORD"),
        ],
    ),
    (
        "bad-url.toml",
        &[
            (4, "channels.toots.api_base", "is not a URL", "https://"),
            (9, "channels.hook.url", "must be an http(s) URL, found scheme `ftp`", "https://"),
            (13, "channels.newsletter.smtp_url", "must be an smtp:// or smtps:// URL, found scheme `https`", "smtp://127.0.0.1:2525"),
            (13, "channels.newsletter.smtp_url", "plain SMTP to a host beyond loopback", "allow_insecure"),
            (14, "channels.newsletter.from", "`not an address` is not an email address", "Ana Lima <ana@example.com>"),
            (18, "store.url", "unsupported store scheme `mysql`", "postgres://"),
        ],
    ),
    (
        "bad-cron.toml",
        &[
            (5, "schedule[0].cron", "`0 9 * * Mon` is not a valid cron expression", "seconds field first: `0 0 9 * * Mon`"),
            (9, "schedule[1].name", "duplicate schedule name `weekly` (first on line 4)", "its own name"),
            (11, "schedule[1].timezone", "unknown time zone `Europe/Madird`", "IANA"),
            (12, "schedule[1].channels", "unknown channel `mastodon`", "configured channels: linkedin"),
            (12, "schedule[1].channels", "unknown channel `linkedn`", "did you mean `linkedin`?"),
        ],
    ),
    (
        "several.toml",
        &[
            (5, "retry.schedule_secs", "the retry schedule is empty", "seconds"),
            (6, "retry.jitter", "must be at least 0 and below 1, found 1.5", "fraction"),
            (9, "http.listen", "not an address and port", "127.0.0.1:8025"),
            (11, "channels.sky.identifier", "is required", "identifier = "),
            (14, "channels.sky.app_password_file", "both `app_password` and `app_password_file` are set", "keep one"),
            (15, "channels.sky.format", "unknown value `tweetstorm`", "one of: short, thread"),
            (19, "channels.plugin.command", "must be a list of strings, found a string", "[\"python3\""),
            (24, "channels.li.author", "not a LinkedIn author URN", "urn:li:person:"),
            (25, "channels.li.token_expires_at", "not an RFC 3339 time", "2026-12-31T23:59:00Z"),
            (27, "channels.pm.unsubscribe_base_url", "is required", "unsubscribe_base_url = "),
        ],
    ),
    ("syntax.toml", &[(4, "", "not valid TOML", "toml.io")]),
    ("channels-array.toml", &[(2, "channels", "must be a table of named channels", "[channels.<name>]")]),
];

#[test]
fn bad_configs_report_every_expected_error() {
    let listed: Vec<PathBuf> = BAD_CONFIGS.iter().map(|(f, _)| root().join("tests/fixtures/config/bad").join(f)).collect();
    for p in files("tests/fixtures/config/bad", "toml") {
        assert!(listed.contains(&p), "{} has no expectations in BAD_CONFIGS", p.display());
    }
    for (file, want) in BAD_CONFIGS {
        let path = root().join("tests/fixtures/config/bad").join(file);
        let got = load_errors(&path);
        let shown: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), want.len(), "{file}: got\n{}", shown.join("\n"));
        for (e, (line, key, msg, hint)) in got.iter().zip(want.iter()) {
            assert_eq!(e.file, path, "{file}");
            assert_eq!(e.line, Some(*line), "{file}: {e}");
            assert_eq!(e.key, *key, "{file}: {e}");
            assert!(e.message.contains(msg), "{file}: {e}\n  expected message fragment: {msg}");
            let h = e.hint.as_deref().unwrap_or_else(|| panic!("{file}: no hint in {e}"));
            assert!(h.contains(hint), "{file}: {e}\n  expected hint fragment: {hint}");
            // Display: file:line: key: message (hint: ...)
            let prefix = if key.is_empty() { format!("{}:{line}: ", path.display()) } else { format!("{}:{line}: {key}: ", path.display()) };
            assert!(e.to_string().starts_with(&prefix), "{e}");
            assert!(e.to_string().ends_with(&format!("(hint: {h})")), "{e}");
        }
    }
}

#[test]
fn secrets_are_never_echoed() {
    let path = root().join("tests/fixtures/config/bad/inline-secret.toml");
    let err = config::load(&path).unwrap_err();
    let shown = format!("{err}\n{err:?}");
    assert!(!shown.contains("SHOULD-NOT-APPEAR"), "a secret leaked:\n{shown}");
    assert!(shown.contains("inline secret refused"));
    // Nor in a TOML syntax error, whose usual rendering quotes the offending line.
    let e = parse_text("[channels.m]\ntype = \"mastodon\"\naccess_token = \"${T}\" sk-live-SHOULD-NOT-APPEAR\n").unwrap_err();
    let shown = format!("{}", e[0]);
    assert!(!shown.contains("SHOULD-NOT-APPEAR"), "{shown}");
    assert_eq!(e[0].line, Some(3));
}

#[test]
fn value_checks_accept_good_forms_and_refuse_bad_ones() {
    // Good: seven-field cron, IANA zone, dotted and inline tables, integer jitter, TLS SMTP beyond loopback.
    let ok = parse_text(
        "[retry]\njitter = 0\n\
         [[schedule]]\nname = \"a\"\ncron = \"0 30 9 * * Mon-Fri 2026\"\ntimezone = \"America/New_York\"\nchannels = [\"mail\"]\n\
         [channels]\nmail = { type = \"email\", smtp_url = \"smtp://mail.example.com:587?tls=required\", from = \"Ana <ana@example.com>\", unsubscribe_base_url = \"https://e.example/u\" }\n\
         hook.type = \"webhook\"\nhook.url = \"http://127.0.0.1:9/h\"\nhook.headers = { X-A = \"1\" }\n",
    );
    let c = ok.unwrap_or_else(|e| panic!("{}", e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")));
    assert_eq!(c.schedule[0].timezone, "America/New_York");
    assert_eq!(c.channels.len(), 2);

    // X with OAuth 1.0a needs all four credentials; a refresh token needs a client id.
    let e = parse_text("[channels.x]\ntype = \"x\"\nauth = \"oauth1\"\naccess_token = \"${A}\"\n").unwrap_err();
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["channels.x.consumer_key", "channels.x.consumer_secret", "channels.x.access_token_secret"]);
    let e = parse_text("[channels.x]\ntype = \"x\"\naccess_token = \"${A}\"\nrefresh_token = \"${R}\"\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "channels.x.client_id");

    // A channel without its credential: the hint names the variable to use. (A channel that
    // `herald connect` can give a credential, such as Mastodon, may leave it out of the config:
    // `publish` and `check --credentials` then look for a stored one.)
    let e = parse_text("[channels.x]\ntype = \"x\"\nauth = \"oauth1\"\n").unwrap_err();
    assert_eq!(e[0].key, "channels.x.consumer_key");
    assert!(e[0].hint.as_deref().unwrap().contains("${X_CONSUMER_KEY}"));
    assert!(parse_text("[channels.m]\ntype = \"mastodon\"\n").is_ok());

    // Misplaced top-level key after a table header.
    let e = parse_text("[store]\nurl = \"sqlite://h.db\"\nissues_dir = \"issues\"\n").unwrap_err();
    assert_eq!((e[0].line, e[0].key.as_str()), (Some(3), "store.issues_dir"));
    assert!(e[0].hint.as_deref().unwrap().contains("top-level key"));

    // Type errors name what was found.
    let e = parse_text("[channels.m]\ntype = \"mastodon\"\naccess_token = \"${T}\"\nenabled = \"yes\"\ntimeout_secs = 0\nretry_schedule_secs = [5, -1]\n")
        .unwrap_err();
    let got: Vec<(Option<usize>, &str)> = e.iter().map(|e| (e.line, e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (Some(4), "must be true or false, found a string"),
            (Some(5), "must be from 1 to 3600, found 0"),
            (Some(6), "every delay must be a whole number of seconds ≥ 0"),
        ]
    );
}

#[test]
fn a_missing_file_is_one_clear_error() {
    let e = load_errors(&root().join("tests/fixtures/config/does-not-exist.toml"));
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("cannot read the config file"), "{}", e[0]);
    assert!(e[0].hint.as_deref().unwrap().contains("HERALD_CONFIG"));
}

#[test]
fn discover_prefers_the_flag() {
    let p = Path::new("/somewhere/else.toml");
    assert_eq!(config::discover(Some(p)), Some(p.to_path_buf()));
}

#[test]
fn the_exec_plugin_prints_a_stable_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("config/examples/plugin.sh");
    let run = |input: &str| {
        let mut child = Command::new("sh")
            .arg(&script)
            .env("HERALD_PLUGIN_DIR", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let input = r#"{"key":"2026-week-47/plugin/r1","rendering":{"text":"hello"}}"#;
    let a = run(input);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let receipt: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let id = receipt["id"].as_str().unwrap();
    assert!(receipt.get("url").is_none(), "no public URL, so none (only http(s) URLs are kept): {receipt}");
    let kept = dir.path().join(format!("{}.json", id.strip_prefix("plugin-").unwrap()));
    assert_eq!(std::fs::read_to_string(kept).unwrap(), input);
    // Running it again on the same delivery yields the same receipt.
    let b = run(input);
    assert_eq!(a.stdout, b.stdout);
    // No input is a failure with a message.
    let c = run("");
    assert_eq!(c.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&c.stderr).contains("expected a JSON delivery"));
}

// ----- issues -----

#[test]
fn every_good_issue_fixture_parses() {
    for p in files("tests/fixtures/issues", "md") {
        if let Err(e) = issue::parse_file(&p) {
            panic!("{e}");
        }
    }
}

#[test]
fn the_ordinary_issue_has_its_shape() {
    let i = issue::parse_file(&root().join("tests/fixtures/issues/2026-week-47.md")).unwrap();
    assert_eq!(i.meta.slug, "2026-week-47");
    assert_eq!(i.meta.number, Some(47));
    assert_eq!(i.meta.date.to_string(), "2026-11-16");
    assert_eq!(i.meta.publish_at.unwrap().to_rfc3339(), "2026-11-16T08:00:00+01:00");
    assert_eq!(i.meta.tags, ["newsletters", "messaging", "opensource"]);
    assert!(i.meta.channels["linkedin"].text.as_deref().unwrap().contains("Week 47"));
    assert_eq!(i.meta.channels["substack"].subtitle.as_deref(), Some("Email quietly wins another round"));
    let titles: Vec<&str> = i.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Podcast 112: Does anyone still read threads?",
            "The sender rules, one year on",
            "Registries tighten the screws on short codes",
            "Event news: the Open Messaging Day call for talks",
            "People, moves and small joys",
        ]
    );
    let text = std::fs::read_to_string(&i.path).unwrap();
    for s in &i.sections {
        assert_eq!(text.lines().nth(s.line - 1).unwrap(), format!("## {}", s.title), "line of {}", s.title);
    }
    assert!(i.intro.links.iter().any(|l| l.url == "https://news.example.com/subscribe"));
    assert!(i.sections[0].body.markdown.contains("> \"A thread is an essay"));
}

#[test]
fn the_unicode_issue_keeps_its_edges() {
    let i = issue::parse_file(&root().join("tests/fixtures/issues/unicode-edge.md")).unwrap();
    assert!(i.meta.title.contains("👩‍💻") && i.meta.title.contains("漢字"));
    assert!(i.meta.summary.contains("👨‍👩‍👧‍👦"));
    let long = i.sections.iter().map(|s| s.body.markdown.chars().count()).max().unwrap();
    assert!(long > 4000, "the long section has {long} characters");
    assert!(i.links.len() >= 25, "{} links", i.links.len());
    // Deduplicated: the intro's first link appears once although the body repeats it.
    assert_eq!(i.links.iter().filter(|l| l.url == "https://example.com/1").count(), 1);
    assert!(i.links.iter().any(|l| l.url.len() > 400), "a very long URL");
}

#[test]
fn the_minimal_issue_has_only_what_is_required() {
    let i = issue::parse_file(&root().join("tests/fixtures/issues/minimal.md")).unwrap();
    assert!(i.sections.is_empty());
    assert_eq!(i.meta.number, None);
    assert!(i.meta.tags.is_empty() && i.meta.channels.is_empty() && i.meta.image.is_none() && !i.meta.draft);
    assert_eq!(i.links.len(), 1);
}

/// (file, line of the error, fragments that every one of its lines together must contain).
const BAD_ISSUES: &[(&str, usize, &[&str])] = &[
    ("missing-title.md", 1, &["missing `title`", "title, slug, date, url and summary"]),
    ("bad-date.md", 4, &["`date` \"2026-02-30\" is not a date", "YYYY-MM-DD"]),
    ("unknown-key.md", 7, &["unknown key `tag`", "did you mean `tags`?", "unknown-key.md:8: front matter: unknown key `author`"]),
    ("no-close.md", 1, &["no closing `+++` line"]),
    ("bad-url.md", 5, &["`url` \"/2026/bad-url\" must be an absolute http(s) URL"]),
    ("bad-slug.md", 3, &["`slug` \"Week 47!\"", "a-z, 0-9"]),
    ("bad-publish-at.md", 7, &["`publish_at` \"2026-11-16 09:00\" is not an RFC 3339 time"]),
    ("bad-publish-at-local.md", 7, &["`publish_at` \"2026-11-16T09:00:00\" is not an RFC 3339 time", "+01:00"]),
    ("yaml-front-matter.md", 1, &["`---` (YAML) is not read", "+++"]),
    ("no-front-matter.md", 1, &["must start with TOML front matter"]),
    (
        "several.md",
        2,
        &[
            "`title` is empty",
            "several.md:4: front matter: `date` \"2026-13-01\" is not a date",
            "several.md:5: front matter: `url` \"ftp://news.example.com/several\"",
            "several.md:7: front matter: tag \"#hashtag\" is written with `#`",
            "several.md:10: front matter: `channels.x.skip` must be true or false",
            "several.md:11: front matter: unknown key `channels.x.txt` (hint: did you mean `text`?)",
        ],
    ),
];

#[test]
fn bad_issues_name_file_and_line() {
    let listed: Vec<PathBuf> = BAD_ISSUES.iter().map(|(f, ..)| root().join("tests/fixtures/issues/bad").join(f)).collect();
    for p in files("tests/fixtures/issues/bad", "md") {
        assert!(listed.contains(&p), "{} has no expectations in BAD_ISSUES", p.display());
    }
    for (file, line, frags) in BAD_ISSUES {
        let path = root().join("tests/fixtures/issues/bad").join(file);
        let e = match issue::parse_file(&path) {
            Ok(_) => panic!("{file} should not parse"),
            Err(e) => e,
        };
        assert_eq!(e.file, path, "{file}");
        assert_eq!(e.line, *line, "{file}: {e}");
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("{}:{line}: ", path.display())), "{shown}");
        for f in *frags {
            assert!(shown.contains(f), "{file}: expected {f:?} in\n{shown}");
        }
        // Every further problem is on its own `file:line:` line.
        for l in shown.lines() {
            assert!(l.starts_with(&format!("{}:", path.display())), "{l}");
        }
    }
}

#[test]
fn issue_parse_str_reports_lines_relative_to_the_file() {
    let text = "+++\ntitle = \"t\"\nslug = \"s\"\ndate = 2026-01-05\nurl = \"https://e.example/s\"\nsummary = \"x\"\nnumber = -3\ndraft = \"no\"\n+++\nBody\n";
    let e = issue::parse_str(Path::new("x.md"), text).unwrap_err();
    assert_eq!(e.line, 7);
    assert!(e.message.contains("`number` must be a whole number ≥ 1, found an integer `-3`"), "{e}");
    assert!(e.message.contains("x.md:8: front matter: `draft` must be true or false"), "{e}");
    // A syntax error in the front matter points at its line in the file.
    let e = issue::parse_str(Path::new("y.md"), "+++\ntitle = \"t\"\nslug = = 1\n+++\n").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("not valid TOML"), "{e}");
}

// ----- the machine checks for `herald check` -----

#[test]
fn the_default_config_names_files_that_exist() {
    let loaded = config::load(&root().join("config/herald.toml")).unwrap();
    let e = config::check_files(&loaded);
    assert!(e.is_empty(), "{}", e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
}

#[test]
fn credentials_resolve_from_the_env_or_name_what_is_missing() {
    let loaded = config::load(&root().join("config/herald.toml")).unwrap();
    let missing = config::check_credentials(&loaded, &|_| None);
    let keys: Vec<&str> = missing.iter().map(|e| e.key.as_str()).collect();
    for k in ["channels.mastodon.access_token", "channels.newsletter.unsubscribe_secret", "channels.x.refresh_token", "channels.webhook.secret"] {
        assert!(keys.contains(&k), "{k} not reported in {keys:?}");
    }
    let m = missing.iter().find(|e| e.key == "channels.mastodon.access_token").unwrap();
    assert!(m.message.contains("MASTODON_ACCESS_TOKEN"), "{m}");
    assert!(m.line.is_some_and(|l| l > 1), "{m}");
    let fake = |k: &str| Some(format!("fake-{k}"));
    let none = config::check_credentials(&loaded, &fake);
    assert!(none.is_empty(), "{}", none.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
}

#[test]
fn missing_folders_files_and_programs_are_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("issues")).unwrap();
    std::fs::write(dir.path().join("present.key"), "k3y\n").unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(
        &path,
        "[channels.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_file = \"missing.key\"\ntemplate = \"no-such-templates\"\n\
         [channels.mail]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_file = \"present.key\"\n\
         [channels.plug]\ntype = \"exec\"\ncommand = [\"./nope.sh\"]\n\
         [channels.off]\ntype = \"exec\"\nenabled = false\ncommand = [\"./also-nope.sh\"]\n",
    )
    .unwrap();
    let loaded = config::load(&path).unwrap();
    let e = config::check_files(&loaded);
    let got: Vec<(Option<usize>, &str)> = e.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(got, [(Some(4), "channels.hook.secret_file"), (Some(5), "channels.hook.template"), (Some(12), "channels.plug.command")]);
    // The present file resolves relative to the config file; the missing one is named, not read.
    let c = config::check_credentials(&loaded, &|_| None);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].key, "channels.hook.secret_file");
    assert!(c[0].message.contains("missing.key"));
}

/// Issue 16 items 4 and 8: a `*_file` secret must be a regular file, read with a cap and a
/// timeout. A folder, a FIFO, a device, an unreadable or an oversized file fail fast, named.
#[test]
fn secret_files_must_be_small_regular_readable_files() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("issues")).unwrap();
    std::fs::create_dir(dir.path().join("a-folder")).unwrap();
    let fifo = dir.path().join("a-fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::write(dir.path().join("huge.key"), vec![b'k'; 200 * 1024]).unwrap();
    let locked = dir.path().join("locked.key");
    std::fs::write(&locked, "s3cret\n").unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let root_reads_anyway = std::fs::read(&locked).is_ok();
    let mut text = String::new();
    for (name, file) in [("dir", "a-folder"), ("fifo", "a-fifo"), ("zero", "/dev/zero"), ("huge", "huge.key"), ("locked", "locked.key")] {
        text.push_str(&format!("[channels.{name}]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_file = \"{file}\"\n"));
    }
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = config::load(&path).unwrap();
    let t = Instant::now();
    let e = config::check_files(&loaded);
    let c = config::check_credentials(&loaded, &|_| None);
    assert!(t.elapsed() < Duration::from_secs(3), "a FIFO or /dev/zero must fail fast: {:?}", t.elapsed());
    let msg = |errs: &[ConfigError], ch: &str| {
        errs.iter().find(|e| e.key == format!("channels.{ch}.secret_file")).map(|e| e.message.clone()).unwrap_or_default()
    };
    for errs in [&e, &c] {
        assert!(msg(errs, "dir").contains("is a folder"), "{errs:?}");
        assert!(msg(errs, "fifo").contains("not a regular file"), "{errs:?}");
        assert!(msg(errs, "zero").contains("not a regular file"), "{errs:?}");
        assert!(msg(errs, "huge").contains("limit"), "{errs:?}");
        if !root_reads_anyway {
            assert!(msg(errs, "locked").contains("locked.key"), "{errs:?}");
        }
    }
    // The secret resolver itself refuses the same files (publish and the daemon go through it).
    let t = Instant::now();
    let err = Secret::File(fifo.clone()).resolve().unwrap_err().to_string();
    assert!(err.contains("a-fifo") && err.contains("not a regular file"), "{err}");
    let err = Secret::File("/dev/zero".into()).resolve().unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

/// Issue 16 item 8: `check` names a store path that can't be created.
#[test]
fn a_store_path_that_cannot_be_created_is_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("issues")).unwrap();
    std::fs::write(dir.path().join("a-file"), "x").unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, "[store]\nurl = \"sqlite://a-file/sub/herald.db\"\n").unwrap();
    let loaded = config::load(&path).unwrap();
    let e = config::check_files(&loaded);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].key.as_str(), e[0].line), ("store.url", Some(2)));
    assert!(e[0].message.contains("is not a folder"), "{}", e[0]);
    // A folder that doesn't exist yet but can be created is fine.
    std::fs::write(&path, "[store]\nurl = \"sqlite://data/new/herald.db\"\n").unwrap();
    assert!(config::check_files(&config::load(&path).unwrap()).is_empty());
    assert!(!dir.path().join("data").exists(), "check creates nothing");
}
