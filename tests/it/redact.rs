//! Issue 16 item 5: a service that echoes the request in its error body must not get the
//! channel's credentials into the attempt log, the delivery row or the logs.


use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

use crate::pipeline::TestDb;

/// A hostile service: every request is answered 400 with the request echoed back, headers first.
async fn start_echo() -> String {
    async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
        let mut out = format!("bad request; you sent {method} {uri}\n");
        for (k, v) in &headers {
            out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&body));
        (StatusCode::BAD_REQUEST, out)
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(echo)).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_echoed_by_a_service_are_never_stored() {
    let db = TestDb::sqlite().await;
    let echo = start_echo().await;
    let secrets = db.dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let channels = ["substack", "linkedin", "x", "bluesky", "mastodon", "threads", "hook"];
    let marker = |ch: &str| format!("MARKER-{ch}-9f3a7c2e1b");
    for ch in channels {
        std::fs::write(secrets.join(ch), marker(ch)).unwrap();
    }
    let s = |ch: &str| secrets.join(ch).display().to_string();
    let text = format!(
        "[store]\nurl = \"{url}\"\n[retry]\nschedule_secs = [0]\njitter = 0.0\nrate_limit_floor_secs = 1\n\n\
         [channels.substack]\ntype = \"substack\"\napi_base = \"{echo}\"\ncookie_file = \"{}\"\nuser_id = 1\n\n\
         [channels.linkedin]\ntype = \"linkedin\"\napi_base = \"{echo}\"\nauthor = \"urn:li:person:abc123\"\naccess_token_file = \"{}\"\n\n\
         [channels.x]\ntype = \"x\"\napi_base = \"{echo}\"\nuser_id = \"1\"\naccess_token_file = \"{}\"\n\n\
         [channels.bluesky]\ntype = \"bluesky\"\napi_base = \"{echo}\"\nidentifier = \"me.example.com\"\napp_password_file = \"{}\"\n\n\
         [channels.mastodon]\ntype = \"mastodon\"\napi_base = \"{echo}\"\naccess_token_file = \"{}\"\n\n\
         [channels.threads]\ntype = \"threads\"\napi_base = \"{echo}\"\nuser_id = \"1\"\naccess_token_file = \"{}\"\n\n\
         [channels.hook]\ntype = \"webhook\"\nurl = \"{echo}/hook\"\nsecret_file = \"{}\"\n",
        s("substack"),
        s("linkedin"),
        s("x"),
        s("bluesky"),
        s("mastodon"),
        s("threads"),
        s("hook"),
        url = db.url,
    );
    let (p, ds, _) = crate::pipeline::publish_and_settle(&db, &text, "minimal.md").await;
    assert_eq!(ds.len(), channels.len());
    let mut redacted = Vec::new();
    for d in &ds {
        let mut texts: Vec<String> = d.last_error.iter().cloned().collect();
        texts.extend(p.store.attempts(d.id).await.unwrap().into_iter().filter_map(|a| a.error));
        assert!(!texts.is_empty(), "{} failed with an error: {d:?}", d.channel);
        for t in &texts {
            for ch in channels {
                assert!(!t.contains("MARKER-"), "{}: a secret ({ch}'s or another's) was stored: {t}", d.channel);
            }
            assert!(!t.to_ascii_lowercase().contains("bearer m"), "{}: {t}", d.channel);
        }
        if texts.iter().any(|t| t.contains("[redacted]")) {
            redacted.push(d.channel.clone());
        }
    }
    // The echo reached the stored excerpts (so the check above had something to catch).
    for ch in ["substack", "linkedin", "bluesky", "mastodon", "threads"] {
        assert!(redacted.iter().any(|c| c == ch), "{ch}: no redaction seen; redacted: {redacted:?}");
    }
    p.close().await;
}
