//! `herald connect CHANNEL [--manual] [--port P] [--redirect-uri URL] [--json]`: connect a
//! channel's account once; the credential goes, sealed, into the credential store, where it
//! wins over the config's secrets and is renewed by Herald.
//!
//! * X: OAuth 2.0 Authorization Code with PKCE (`tweet.read tweet.write users.read
//!   offline.access`), Basic client authentication when `client_secret` is set; the user id from
//!   `GET /2/users/me`.
//! * LinkedIn: 3-legged OAuth (`openid profile w_member_social`); the person URN from
//!   `/v2/userinfo`; the expiry, and the refresh token where LinkedIn grants one.
//! * Threads: OAuth, then the short-lived token exchanged for a long-lived one (60 days).
//! * Mastodon: the app registered on the instance (`POST /api/v1/apps`), OAuth with
//!   `write:statuses read:statuses read:accounts`, checked with `verify_credentials`.
//! * Bluesky: the app password (read from standard input) checked with `createSession`; the DID
//!   and the PDS from the session's `didDoc`.
//! * Substack: the session cookie (standard input) checked with `GET /api/v1/user/profile/self`;
//!   the user id recorded for bylines.
//!
//! The browser's redirect is caught on `http://127.0.0.1:PORT/callback`. `--manual` prints the
//! URL and reads the redirected URL (or the bare code) from standard input instead, for a
//! headless server. Nothing secret is printed.

use std::time::Duration;

use base64::Engine as _;
use rand::RngCore as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

use super::status::open_store;
use super::{ExitStatus, Globals, InputError};
use crate::channel::http;
use crate::cli::ConnectArgs;
use crate::config::{ChannelConfig, LoadedConfig, SecretString, XAuth, pick_secret};
use crate::credentials::{Secrets, Vault, linkedin_oauth_base};
use crate::store::credentials::CredentialWrite;
use crate::store::now_ms;

/// The scopes asked of X.
pub const X_SCOPES: &str = "tweet.read tweet.write users.read offline.access";
/// The scopes asked of LinkedIn.
pub const LINKEDIN_SCOPES: &str = "openid profile w_member_social";
/// The scopes asked of Threads.
pub const THREADS_SCOPES: &str = "threads_basic,threads_content_publish,threads_manage_replies,threads_read_replies";
/// The scopes asked of Mastodon.
pub const MASTODON_SCOPES: &str = "write:statuses read:statuses read:accounts";

/// What a connect flow obtained.
struct Connected {
    write: CredentialWrite,
    secrets: Secrets,
}

/// Run `herald connect`.
pub async fn run(g: &Globals, args: ConnectArgs) -> anyhow::Result<ExitStatus> {
    let cfg = g.load_config()?;
    let name = args.channel.clone();
    let c = cfg.config.channels.get(&name).ok_or_else(|| {
        let names: Vec<&str> = cfg.config.channels.keys().map(String::as_str).collect();
        InputError(format!("no channel named `{name}` in the config (channels: {})", names.join(", ")))
    })?;
    let store = open_store(&cfg).await?;
    let vault = Vault::from_config(store.clone(), &cfg);
    if let Err(e) = vault.key() {
        return Err(InputError(format!("herald connect keeps the credential sealed in the store: {e}")).into());
    }
    let env = |k: &str| std::env::var(k).ok();
    let got = match c {
        ChannelConfig::X(x) if x.auth == XAuth::Oauth2 => x_connect(&args, &cfg, x, &env).await?,
        ChannelConfig::Threads(t) => threads_connect(&args, &cfg, t, &env).await?,
        ChannelConfig::Linkedin(l) => linkedin_connect(&args, &cfg, l, &env).await?,
        ChannelConfig::Mastodon(m) => mastodon_connect(&args, &name, m).await?,
        ChannelConfig::Bluesky(b) => bluesky_connect(&args, b).await?,
        ChannelConfig::Substack(s) => substack_connect(&args, s).await?,
        other => {
            return Err(InputError(format!(
                "channel {name} (type {}) keeps its credential in the config: there is nothing to connect",
                other.type_name()
            ))
            .into());
        }
    };
    vault.put(&name, got.write.clone(), &got.secrets).await?;
    store.close().await;
    let w = &got.write;
    let meta: Value = w.meta.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or(Value::Null);
    if args.json {
        let out = json!({
            "channel": name,
            "type": w.channel_type,
            "account": w.account,
            "scopes": w.scopes,
            "expires_at": w.expires_at.map(crate::store::fmt_ms),
            "meta": meta,
            "secrets": got.secrets.0.keys().collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "Connected channel {name} ({}) as {}{}{}. The credential is stored, sealed; Herald uses it from now on.",
            w.channel_type,
            w.account.as_deref().unwrap_or("?"),
            w.scopes.as_deref().map(|s| format!(", scopes: {s}")).unwrap_or_default(),
            w.expires_at.map(|e| format!(", expires {}", crate::store::fmt_ms(e))).unwrap_or_default(),
        );
    }
    Ok(ExitStatus::Success)
}

// ---- the OAuth dance ------------------------------------------------------------------------

/// `len` random URL-safe characters (PKCE verifier, state).
fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The PKCE `S256` challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Where the browser is sent back to, and (unless manual) the listener that catches it.
struct Callback {
    redirect_uri: String,
    listener: Option<tokio::net::TcpListener>,
}

async fn callback(args: &ConnectArgs) -> anyhow::Result<Callback> {
    if let Some(r) = &args.redirect_uri {
        let u = url::Url::parse(r).map_err(|e| InputError(format!("--redirect-uri {r}: {e}")))?;
        let loopback = matches!(u.host_str(), Some("127.0.0.1") | Some("localhost"));
        if !loopback || args.manual {
            return Ok(Callback { redirect_uri: r.clone(), listener: None });
        }
    }
    if args.manual {
        return Ok(Callback { redirect_uri: format!("http://127.0.0.1:{}/callback", args.port), listener: None });
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await.map_err(|e| {
        InputError(format!("cannot listen on 127.0.0.1:{} for the OAuth callback: {e} (pick another with --port, registered as the app's callback, or use --manual)", args.port))
    })?;
    let port = listener.local_addr()?.port();
    let redirect_uri = match &args.redirect_uri {
        Some(r) => r.clone(),
        None => format!("http://127.0.0.1:{port}/callback"),
    };
    Ok(Callback { redirect_uri, listener: Some(listener) })
}

/// Send the author to `authorize`, and get the code back: from the redirect caught on the
/// loopback listener, or pasted (`--manual`). The `state` must come back unchanged.
async fn obtain_code(args: &ConnectArgs, network: &str, authorize: &url::Url, cb: Callback, state: &str) -> anyhow::Result<String> {
    eprintln!("Open this URL in a browser, sign in to {network} and approve Herald:\n\n  {authorize}\n");
    let Some(listener) = cb.listener else {
        eprintln!("Then paste the address the browser was sent to (it starts with {}), or just the code:", cb.redirect_uri);
        let mut line = String::new();
        tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await?;
        return code_from_pasted(line.trim(), state);
    };
    eprintln!("Waiting for the browser to come back to {} …", cb.redirect_uri);
    let wait = async {
        loop {
            let (mut sock, _) = listener.accept().await?;
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while n < buf.len() {
                let r = sock.read(&mut buf[n..]).await?;
                if r == 0 {
                    break;
                }
                n += r;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let target = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("/").to_string();
            let Ok(u) = url::Url::parse(&format!("http://127.0.0.1{target}")) else { continue };
            if u.path() != "/callback" {
                let _ = sock.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                continue;
            }
            let result = code_from_query(&u, state);
            let page = match &result {
                Ok(_) => "<!doctype html><title>Herald</title><p>Herald is connected. You can close this tab.</p>",
                Err(_) => "<!doctype html><title>Herald</title><p>Herald could not connect: see the terminal.</p>",
            };
            let res = format!("HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}", page.len());
            let _ = sock.write_all(res.as_bytes()).await;
            let _ = sock.shutdown().await;
            return result;
        }
    };
    tokio::time::timeout(Duration::from_secs(args.timeout), wait)
        .await
        .map_err(|_| InputError(format!("no answer from the browser within {} s (approve sooner, raise --timeout, or use --manual)", args.timeout)))?
}

fn code_from_query(u: &url::Url, state: &str) -> anyhow::Result<String> {
    let q: std::collections::HashMap<String, String> = u.query_pairs().into_owned().collect();
    if let Some(e) = q.get("error") {
        return Err(InputError(format!("the authorization was refused: {e} {}", q.get("error_description").map(String::as_str).unwrap_or(""))).into());
    }
    if q.get("state").map(String::as_str) != Some(state) {
        return Err(InputError("the redirect's `state` does not match this request (an old or forged redirect); run the command again".into()).into());
    }
    q.get("code").filter(|c| !c.is_empty()).cloned().ok_or_else(|| InputError("the redirect carries no `code`".into()).into())
}

fn code_from_pasted(text: &str, state: &str) -> anyhow::Result<String> {
    if text.is_empty() {
        return Err(InputError("nothing was pasted".into()).into());
    }
    match url::Url::parse(text) {
        Ok(u) => code_from_query(&u, state),
        Err(_) => Ok(text.trim_end_matches("#_").to_string()),
    }
}

/// Read one secret line from standard input (an app password, a cookie). Never echoed back.
async fn read_secret(prompt: &str) -> anyhow::Result<SecretString> {
    eprintln!("{prompt}");
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await?;
    let v = line.trim();
    if v.is_empty() {
        return Err(InputError("nothing was given on standard input".into()).into());
    }
    Ok(SecretString::new(v))
}

/// A JSON answer, or an error naming the network, the status and the error (never the token).
async fn json_answer(network: &str, what: &str, res: Result<reqwest::Response, reqwest::Error>) -> anyhow::Result<Value> {
    let res = res.map_err(|e| anyhow::anyhow!("{network} {what}: {}", http::error_from_reqwest(&e).message()))?;
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        let excerpt: String = body.chars().take(300).collect();
        return Err(InputError(format!("{network} refused the {what} ({status}): {excerpt}")).into());
    }
    serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{network} {what}: unreadable answer: {e}"))
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    match &v[key] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn required_secret(cfg: &LoadedConfig, env: &dyn Fn(&str) -> Option<String>, channel: &str, key: &str, s: Option<crate::config::Secret>) -> anyhow::Result<SecretString> {
    let s = s.ok_or_else(|| InputError(format!("channel {channel}: `{key}` is required to connect (write `{key} = \"${{ENV_VAR}}\"` or `{key}_file`)")))?;
    let s = match s {
        crate::config::Secret::File(p) => crate::config::Secret::File(cfg.resolve_path(&p)),
        other => other,
    };
    s.resolve_with(env).map_err(|e| InputError(format!("channel {channel}: `{key}`: {e}")).into())
}

fn timeout_of(common: &crate::config::Common) -> Duration {
    common.timeout_secs.map(Duration::from_secs).unwrap_or(http::DEFAULT_TIMEOUT)
}

// ---- X ----------------------------------------------------------------------------------------

/// The authorize page: `x.com` for the real API, the same host otherwise (a fake).
fn x_authorize_base(api_base: &str) -> String {
    let b = api_base.trim_end_matches('/');
    if b == "https://api.x.com" || b == "https://api.twitter.com" { "https://x.com/i/oauth2/authorize".into() } else { format!("{b}/i/oauth2/authorize") }
}

async fn x_connect(args: &ConnectArgs, cfg: &LoadedConfig, x: &crate::config::XConfig, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Connected> {
    let name = &args.channel;
    let client_id = x
        .client_id
        .clone()
        .ok_or_else(|| InputError(format!("channel {name}: `client_id` is required to connect (the OAuth 2.0 client id of your X app)")))?;
    let client_secret = match pick_secret(&x.client_secret, &x.client_secret_file) {
        Some(s) => Some(required_secret(cfg, env, name, "client_secret", Some(s))?),
        None => None,
    };
    let app = crate::channel::x::client::OAuth2App { client_id: Some(client_id.clone()), client_secret };
    let timeout = timeout_of(&x.common);
    let cb = callback(args).await?;
    let verifier = random_token(48);
    let state = random_token(16);
    let mut authorize = url::Url::parse(&x_authorize_base(&x.api_base))?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &cb.redirect_uri)
        .append_pair("scope", X_SCOPES)
        .append_pair("state", &state)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let redirect_uri = cb.redirect_uri.clone();
    let code = obtain_code(args, "X", &authorize, cb, &state).await?;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", redirect_uri.as_str()), ("code_verifier", verifier.as_str())];
    let tokens = json_answer("X", "authorization code", crate::channel::x::client::token_request(&x.api_base, timeout, &app, &form).await).await?;
    let access = str_of(&tokens, "access_token").ok_or_else(|| anyhow::anyhow!("X's token answer has no access_token"))?;
    let refresh = str_of(&tokens, "refresh_token");
    if refresh.is_none() {
        eprintln!("warning: X gave no refresh token (is `offline.access` allowed for the app?); the token lasts two hours.");
    }
    let me = json_answer(
        "X",
        "user lookup",
        http::client().get(format!("{}/2/users/me", x.api_base.trim_end_matches('/'))).bearer_auth(&access).timeout(timeout).send().await,
    )
    .await?;
    let id = str_of(&me["data"], "id").ok_or_else(|| anyhow::anyhow!("X's /2/users/me answer has no id"))?;
    let username = str_of(&me["data"], "username");
    if let Some(cfg_id) = &x.user_id
        && cfg_id != &id
    {
        eprintln!("warning: channel {name}: the config says user_id = \"{cfg_id}\", but the connected account is {id}; the connected one is used.");
    }
    let mut secrets = Secrets::default().with("access_token", &SecretString::new(access));
    if let Some(r) = refresh {
        secrets.set("refresh_token", &SecretString::new(r));
    }
    Ok(Connected {
        write: CredentialWrite {
            channel_type: "x".into(),
            source: "connect".into(),
            account: Some(id),
            scopes: str_of(&tokens, "scope").or_else(|| Some(X_SCOPES.into())),
            meta: Some(json!({ "username": username }).to_string()),
            obtained_at: now_ms(),
            expires_at: tokens["expires_in"].as_i64().map(|s| now_ms() + s * 1000),
            ..Default::default()
        },
        secrets,
    })
}

// ---- Threads ----------------------------------------------------------------------------------

/// Threads' consent page is on threads.net; its Graph host serves the rest.
fn threads_authorize_base(api_base: &str) -> String {
    let b = api_base.trim_end_matches('/');
    if b == "https://graph.threads.net" { "https://threads.net/oauth/authorize".into() } else { format!("{b}/oauth/authorize") }
}

async fn threads_connect(args: &ConnectArgs, cfg: &LoadedConfig, t: &crate::config::ThreadsConfig, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Connected> {
    let name = &args.channel;
    let app_id = t.app_id.clone().ok_or_else(|| InputError(format!("channel {name}: `app_id` is required to connect (the Threads app id from the Meta developer portal)")))?;
    let app_secret = required_secret(cfg, env, name, "app_secret", pick_secret(&t.app_secret, &t.app_secret_file))?;
    let timeout = timeout_of(&t.common);
    let base = t.api_base.trim_end_matches('/').to_string();
    let cb = callback(args).await?;
    let state = random_token(16);
    let mut authorize = url::Url::parse(&threads_authorize_base(&base))?;
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &app_id)
        .append_pair("redirect_uri", &cb.redirect_uri)
        .append_pair("scope", THREADS_SCOPES)
        .append_pair("response_type", "code")
        .append_pair("state", &state);
    let redirect_uri = cb.redirect_uri.clone();
    let code = obtain_code(args, "Threads", &authorize, cb, &state).await?;
    let form = [
        ("client_id", app_id.as_str()),
        ("client_secret", app_secret.expose()),
        ("grant_type", "authorization_code"),
        ("redirect_uri", redirect_uri.as_str()),
        ("code", code.as_str()),
    ];
    let short = json_answer("Threads", "authorization code", http::client().post(format!("{base}/oauth/access_token")).form(&form).timeout(timeout).send().await).await?;
    let short_token = str_of(&short, "access_token").ok_or_else(|| anyhow::anyhow!("Threads' token answer has no access_token"))?;
    let user_id = str_of(&short, "user_id");
    let long = json_answer(
        "Threads",
        "long-lived token exchange",
        http::client()
            .get(format!("{base}/access_token"))
            .query(&[("grant_type", "th_exchange_token"), ("client_secret", app_secret.expose()), ("access_token", short_token.as_str())])
            .timeout(timeout)
            .send()
            .await,
    )
    .await?;
    let access = str_of(&long, "access_token").ok_or_else(|| anyhow::anyhow!("Threads' exchange answer has no access_token"))?;
    Ok(Connected {
        write: CredentialWrite {
            channel_type: "threads".into(),
            source: "connect".into(),
            account: user_id,
            scopes: Some(THREADS_SCOPES.into()),
            meta: None,
            obtained_at: now_ms(),
            expires_at: long["expires_in"].as_i64().map(|s| now_ms() + s * 1000),
            ..Default::default()
        },
        secrets: Secrets::default().with("access_token", &SecretString::new(access)),
    })
}

// ---- LinkedIn ---------------------------------------------------------------------------------


async fn linkedin_connect(args: &ConnectArgs, cfg: &LoadedConfig, l: &crate::config::LinkedinConfig, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Connected> {
    let name = &args.channel;
    let client_id = l.client_id.clone().ok_or_else(|| InputError(format!("channel {name}: `client_id` is required to connect (your LinkedIn app's client id)")))?;
    let client_secret = required_secret(cfg, env, name, "client_secret", pick_secret(&l.client_secret, &l.client_secret_file))?;
    let timeout = timeout_of(&l.common);
    let oauth = linkedin_oauth_base(&l.api_base);
    let cb = callback(args).await?;
    let state = random_token(16);
    let mut authorize = url::Url::parse(&format!("{oauth}/oauth/v2/authorization"))?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &cb.redirect_uri)
        .append_pair("state", &state)
        .append_pair("scope", LINKEDIN_SCOPES);
    let redirect_uri = cb.redirect_uri.clone();
    let code = obtain_code(args, "LinkedIn", &authorize, cb, &state).await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", client_id.as_str()),
        ("client_secret", client_secret.expose()),
    ];
    let tokens = json_answer("LinkedIn", "authorization code", http::client().post(format!("{oauth}/oauth/v2/accessToken")).form(&form).timeout(timeout).send().await).await?;
    let access = str_of(&tokens, "access_token").ok_or_else(|| anyhow::anyhow!("LinkedIn's token answer has no access_token"))?;
    let me = json_answer(
        "LinkedIn",
        "userinfo lookup",
        http::client().get(format!("{}/v2/userinfo", l.api_base.trim_end_matches('/'))).bearer_auth(&access).timeout(timeout).send().await,
    )
    .await?;
    let sub = str_of(&me, "sub").ok_or_else(|| anyhow::anyhow!("LinkedIn's /v2/userinfo answer has no sub"))?;
    let urn = format!("urn:li:person:{sub}");
    if l.author != urn && l.author.starts_with("urn:li:person:") {
        eprintln!("warning: channel {name}: the config says author = \"{}\", but the connected member is {urn}; the connected one is used.", l.author);
    }
    let mut secrets = Secrets::default().with("access_token", &SecretString::new(access));
    if let Some(r) = str_of(&tokens, "refresh_token") {
        secrets.set("refresh_token", &SecretString::new(r));
    }
    let refresh_expires = tokens["refresh_token_expires_in"].as_i64().map(|s| crate::store::fmt_ms(now_ms() + s * 1000));
    Ok(Connected {
        write: CredentialWrite {
            channel_type: "linkedin".into(),
            source: "connect".into(),
            account: Some(urn),
            scopes: str_of(&tokens, "scope").or_else(|| Some(LINKEDIN_SCOPES.into())),
            meta: Some(json!({ "name": str_of(&me, "name"), "refresh_token_expires_at": refresh_expires }).to_string()),
            obtained_at: now_ms(),
            expires_at: tokens["expires_in"].as_i64().map(|s| now_ms() + s * 1000),
            ..Default::default()
        },
        secrets,
    })
}

// ---- Mastodon ---------------------------------------------------------------------------------

async fn mastodon_connect(args: &ConnectArgs, name: &str, m: &crate::config::MastodonConfig) -> anyhow::Result<Connected> {
    let timeout = timeout_of(&m.common);
    let base = m.api_base.trim_end_matches('/').to_string();
    let cb = callback(args).await?;
    let app = json_answer(
        "Mastodon",
        "app registration",
        http::client()
            .post(format!("{base}/api/v1/apps"))
            .form(&[("client_name", format!("Herald ({name})").as_str()), ("redirect_uris", cb.redirect_uri.as_str()), ("scopes", MASTODON_SCOPES), ("website", "https://github.com/herald")])
            .timeout(timeout)
            .send()
            .await,
    )
    .await?;
    let client_id = str_of(&app, "client_id").ok_or_else(|| anyhow::anyhow!("Mastodon's app answer has no client_id"))?;
    let client_secret = str_of(&app, "client_secret").ok_or_else(|| anyhow::anyhow!("Mastodon's app answer has no client_secret"))?;
    let state = random_token(16);
    let verifier = random_token(48);
    let mut authorize = url::Url::parse(&format!("{base}/oauth/authorize"))?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &cb.redirect_uri)
        .append_pair("scope", MASTODON_SCOPES)
        .append_pair("state", &state)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let redirect_uri = cb.redirect_uri.clone();
    let code = obtain_code(args, "Mastodon", &authorize, cb, &state).await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client_id.as_str()),
        ("client_secret", client_secret.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
        ("scope", MASTODON_SCOPES),
    ];
    let tokens = json_answer("Mastodon", "authorization code", http::client().post(format!("{base}/oauth/token")).form(&form).timeout(timeout).send().await).await?;
    let access = str_of(&tokens, "access_token").ok_or_else(|| anyhow::anyhow!("Mastodon's token answer has no access_token"))?;
    let me = json_answer(
        "Mastodon",
        "verify_credentials check",
        http::client().get(format!("{base}/api/v1/accounts/verify_credentials")).bearer_auth(&access).timeout(timeout).send().await,
    )
    .await?;
    let acct = str_of(&me, "acct").or_else(|| str_of(&me, "username"));
    let secrets = Secrets::default()
        .with("access_token", &SecretString::new(access))
        .with("client_id", &SecretString::new(client_id))
        .with("client_secret", &SecretString::new(client_secret));
    Ok(Connected {
        write: CredentialWrite {
            channel_type: "mastodon".into(),
            source: "connect".into(),
            account: acct.map(|a| format!("@{a}")),
            scopes: str_of(&tokens, "scope").or_else(|| Some(MASTODON_SCOPES.into())),
            meta: Some(json!({ "id": str_of(&me, "id"), "instance": base }).to_string()),
            obtained_at: now_ms(),
            expires_at: None,
            ..Default::default()
        },
        secrets,
    })
}

// ---- Bluesky ----------------------------------------------------------------------------------

/// The PDS endpoint in a DID document: the `#atproto_pds` service.
pub fn pds_from_did_doc(doc: &Value) -> Option<String> {
    doc["service"].as_array()?.iter().find_map(|s| {
        let id = s["id"].as_str()?;
        (id == "#atproto_pds" || id.ends_with("#atproto_pds")).then(|| s["serviceEndpoint"].as_str().map(|e| e.trim_end_matches('/').to_string()))?
    })
}

async fn bluesky_connect(args: &ConnectArgs, b: &crate::config::BlueskyConfig) -> anyhow::Result<Connected> {
    let _ = args;
    let timeout = timeout_of(&b.common);
    let base = b.api_base.trim_end_matches('/').to_string();
    let password = read_secret(&format!("Paste an app password for {} (Settings → Privacy and security → App passwords), then Enter:", b.identifier)).await?;
    let session = json_answer(
        "Bluesky",
        "app password (createSession)",
        http::client()
            .post(format!("{base}/xrpc/com.atproto.server.createSession"))
            .json(&json!({ "identifier": b.identifier, "password": password.expose() }))
            .timeout(timeout)
            .send()
            .await,
    )
    .await?;
    let did = str_of(&session, "did").ok_or_else(|| anyhow::anyhow!("Bluesky's session has no did"))?;
    let pds = pds_from_did_doc(&session["didDoc"]).unwrap_or_else(|| base.clone());
    Ok(Connected {
        write: CredentialWrite {
            channel_type: "bluesky".into(),
            source: "connect".into(),
            account: Some(did),
            scopes: None,
            meta: Some(json!({ "handle": str_of(&session, "handle"), "pds": pds }).to_string()),
            obtained_at: now_ms(),
            expires_at: None,
            ..Default::default()
        },
        secrets: Secrets::default().with("app_password", &password),
    })
}

// ---- Substack ---------------------------------------------------------------------------------

async fn substack_connect(args: &ConnectArgs, s: &crate::config::SubstackConfig) -> anyhow::Result<Connected> {
    let _ = args;
    let timeout = timeout_of(&s.common);
    let cookie = read_secret(
        "Paste the `connect.sid` cookie (`substack.sid` on older accounts) of a signed-in browser session, or the whole Cookie header, then Enter:",
    )
    .await?;
    // The same cookie naming, User-Agent and profile address the adapter uses.
    let header = crate::channel::substack::cookie_header(cookie.expose(), s.cookie_name.as_deref());
    let me = json_answer(
        "Substack",
        "cookie (profile lookup; a 403 may also be the User-Agent, see `user_agent`)",
        http::client().get(&s.profile_url).header("cookie", &header).header("user-agent", &s.user_agent).timeout(timeout).send().await,
    )
    .await?;
    let id = str_of(&me, "id").ok_or_else(|| anyhow::anyhow!("Substack's profile answer has no id"))?;
    Ok(Connected {
        write: CredentialWrite {
            channel_type: "substack".into(),
            source: "connect".into(),
            account: Some(id),
            scopes: None,
            meta: Some(json!({ "name": str_of(&me, "name"), "handle": str_of(&me, "handle") }).to_string()),
            obtained_at: now_ms(),
            expires_at: None,
            ..Default::default()
        },
        secrets: Secrets::default().with("cookie", &SecretString::new(header)),
    })
}
