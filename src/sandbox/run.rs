//! `herald publish --sandbox`: the real pipeline (store, queue, workers, adapters) against a
//! local contract fake of every network and a loopback SMTP server, so an author can rehearse an
//! issue end to end with no credentials.
//!
//! The sandbox rewrites a copy of the config: every channel's `api_base` (or `url`,
//! `smtp_url`) points at its own fake, every secret becomes a file holding the fake's
//! credential, and the store moves to a fresh SQLite file in the run folder. Nothing in the
//! author's config or store is touched.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::bluesky::{self, BlueskyFake};
use super::linkedin::{self, LinkedinFake};
use super::mastodon::{self, MastodonFake};
use super::substack::{self, SubstackFake};
use super::threads::{self, ThreadsFake};
use super::webhook::WebhookFake;
use super::x::{self, XFake};
use crate::config::{ChannelConfig, LoadedConfig, Secret, XAuth};

/// A fake standing in for one channel.
enum Fake {
    X(XFake),
    Bluesky(BlueskyFake),
    Mastodon(MastodonFake),
    Threads(ThreadsFake),
    Linkedin(LinkedinFake),
    Substack(SubstackFake),
    Webhook(WebhookFake),
    /// The exec channel runs its real program, writing under this folder.
    Local(PathBuf),
    /// An exec channel without `run_in_sandbox = true`: not run at all.
    Skipped,
    /// An email channel: its SMTP server or ESP fake.
    Email(super::email_fakes::EmailFake),
}

/// How the fakes run. The default is `publish --sandbox`'s: any free port, no journal, no
/// faults; `herald sandbox serve` sets all three.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Listen here: the first fake on this port, the next on the port after, and so on
    /// (port 0: any free port for each).
    pub listen: Option<std::net::SocketAddr>,
    /// Keep a journal per fake in `<dir>/journal/<channel>.jsonl`, on disk before each answer.
    pub journal: bool,
    /// Faults at a rate on every HTTP fake.
    pub faults: Option<super::fault::FaultSpec>,
}

impl Fake {
    /// The fake's fault plan (HTTP fakes only).
    fn faults(&self) -> Option<&std::sync::Arc<super::fault::FaultPlan>> {
        use super::email_fakes::EmailFake;
        match self {
            Fake::X(f) => Some(&f.faults),
            Fake::Bluesky(f) => Some(&f.faults),
            Fake::Mastodon(f) => Some(&f.faults),
            Fake::Threads(f) => Some(&f.faults),
            Fake::Linkedin(f) => Some(&f.faults),
            Fake::Substack(f) => Some(&f.faults),
            Fake::Webhook(f) => Some(&f.faults),
            Fake::Email(EmailFake::Postmark(f, _)) => Some(&f.faults),
            Fake::Email(EmailFake::Smtp(..)) | Fake::Local(_) | Fake::Skipped => None,
        }
    }
    /// Where the fake listens (`http://…` or `smtp://…`), or the plugin's folder.
    fn address(&self) -> String {
        use super::email_fakes::EmailFake;
        match self {
            Fake::X(f) => f.base_url.clone(),
            Fake::Bluesky(f) => f.base_url.clone(),
            Fake::Mastodon(f) => f.base_url.clone(),
            Fake::Threads(f) => f.base_url.clone(),
            Fake::Linkedin(f) => f.base_url.clone(),
            Fake::Substack(f) => f.base_url.clone(),
            Fake::Webhook(f) => f.url(),
            Fake::Email(EmailFake::Postmark(f, _)) => f.base_url.clone(),
            Fake::Email(EmailFake::Smtp(s, _)) => s.url(),
            Fake::Local(p) => p.display().to_string(),
            Fake::Skipped => "skipped (set `run_in_sandbox = true` to run the plugin)".to_string(),
        }
    }
}

/// One fake of a running sandbox, as `sandbox serve --json` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FakeInfo {
    /// The channel it stands in for.
    pub channel: String,
    /// The channel's type.
    pub r#type: String,
    /// Where it listens (the plugin's output folder for an exec channel).
    pub address: String,
    /// Its journal, if it keeps one.
    pub journal: Option<PathBuf>,
}

/// A running sandbox: its folder and one fake per channel.
pub struct Sandbox {
    /// The run folder: store, secrets, and the accepted payloads.
    pub dir: PathBuf,
    fakes: Vec<(String, Fake)>,
}

/// The signing secret the sandbox gives webhook channels.
const WEBHOOK_SECRET: &str = "sandbox-webhook-secret";

impl Sandbox {
    /// Start a fake for every enabled channel and return the rewritten config.
    /// `store` overrides the run folder's SQLite store (e.g. a PostgreSQL URL).
    pub async fn start(cfg: &LoadedConfig, dir: &Path, store: Option<&str>) -> anyhow::Result<(Self, LoadedConfig)> {
        Self::start_with(cfg, dir, store, &ServeOptions::default()).await
    }

    /// [`Sandbox::start`], with the fakes run as `opts` says.
    pub async fn start_with(cfg: &LoadedConfig, dir: &Path, store: Option<&str>, opts: &ServeOptions) -> anyhow::Result<(Self, LoadedConfig)> {
        std::fs::create_dir_all(dir.join("secrets")).with_context(|| format!("cannot create the sandbox folder {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)?;
        let mut out = cfg.clone();
        out.config.store.url = match store {
            Some(s) => s.to_string(),
            None => format!("sqlite://{}", dir.join("herald.db").display()),
        };
        let secret = |channel: &str, key: &str, value: &str| -> anyhow::Result<Option<Secret>> {
            let p = dir.join("secrets").join(format!("{channel}.{key}"));
            std::fs::write(&p, value)?;
            Ok(Some(Secret::File(p)))
        };
        // The run's own credential store key: rotated tokens are sealed in the run's store.
        let key = {
            use rand::RngCore as _;
            let mut k = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut k);
            hex::encode(k)
        };
        out.config.credentials.key = secret("credentials", "key", &key)?;
        out.config.credentials.key_file = None;
        let mut fakes = Vec::new();
        for (name, c) in out.config.channels.iter_mut() {
            if !c.common().enabled {
                continue;
            }
            let addr = match opts.listen {
                Some(a) if a.port() != 0 => {
                    let port = u16::try_from(usize::from(a.port()) + fakes.len()).context("--listen: the port range runs past 65535; pick a lower first port")?;
                    std::net::SocketAddr::new(a.ip(), port)
                }
                Some(a) => a,
                None => std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let fake = super::fault::bind_in(addr, async {
                anyhow::Ok(match c {
                    ChannelConfig::X(x) => {
                        let f = XFake::start().await?;
                        x.api_base = f.base_url.clone();
                        x.user_id = Some(x::USER_ID.into());
                        (x.access_token_file, x.refresh_token_file) = (None, None);
                        match x.auth {
                            XAuth::Oauth2 => {
                                x.access_token = secret(name, "access_token", x::ACCESS_TOKEN)?;
                                x.refresh_token = secret(name, "refresh_token", x::REFRESH_TOKEN)?;
                                x.client_id = Some(x::CLIENT_ID.into());
                                (x.client_secret, x.client_secret_file) = (None, None);
                            }
                            XAuth::Oauth1 => {
                                x.consumer_key = secret(name, "consumer_key", x::CONSUMER_KEY)?;
                                x.consumer_secret = secret(name, "consumer_secret", x::CONSUMER_SECRET)?;
                                x.access_token = secret(name, "access_token", x::OAUTH1_TOKEN)?;
                                x.access_token_secret = secret(name, "access_token_secret", x::OAUTH1_TOKEN_SECRET)?;
                            }
                        }
                        Fake::X(f)
                    }
                    ChannelConfig::Bluesky(b) => {
                        let f = BlueskyFake::start().await?;
                        b.api_base = f.base_url.clone();
                        b.identifier = bluesky::HANDLE.into();
                        b.app_password = secret(name, "app_password", bluesky::APP_PASSWORD)?;
                        b.app_password_file = None;
                        Fake::Bluesky(f)
                    }
                    ChannelConfig::Mastodon(m) => {
                        let f = MastodonFake::start().await?;
                        m.api_base = f.base_url.clone();
                        m.access_token = secret(name, "access_token", mastodon::ACCESS_TOKEN)?;
                        m.access_token_file = None;
                        Fake::Mastodon(f)
                    }
                    ChannelConfig::Threads(t) => {
                        let f = ThreadsFake::start().await?;
                        t.api_base = f.base_url.clone();
                        t.user_id = threads::USER_ID.into();
                        t.access_token = secret(name, "access_token", threads::ACCESS_TOKEN)?;
                        t.access_token_file = None;
                        Fake::Threads(f)
                    }
                    ChannelConfig::Linkedin(l) => {
                        let f = LinkedinFake::start().await?;
                        // The sandbox token stands in for the configured author's member.
                        f.set_member(&l.author);
                        l.api_base = f.base_url.clone();
                        l.access_token = secret(name, "access_token", linkedin::ACCESS_TOKEN)?;
                        l.access_token_file = None;
                        Fake::Linkedin(f)
                    }
                    ChannelConfig::Substack(s) => {
                        let f = SubstackFake::start().await?;
                        s.api_base = f.base_url.clone();
                        s.cookie = secret(name, "cookie", substack::COOKIE)?;
                        s.cookie_file = None;
                        s.user_id = Some(substack::USER_ID);
                        Fake::Substack(f)
                    }
                    ChannelConfig::Webhook(w) => {
                        let f = WebhookFake::start().await?;
                        w.url = f.url();
                        if w.secret.is_some() || w.secret_file.is_some() {
                            w.secret = secret(name, "secret", WEBHOOK_SECRET)?;
                            w.secret_file = None;
                            f.set_secret(WEBHOOK_SECRET);
                        }
                        Fake::Webhook(f)
                    }
                    ChannelConfig::Exec(e) if !e.run_in_sandbox => {
                        // A plugin is real code with real effects: it runs only on the author's say.
                        e.common.enabled = false;
                        Fake::Skipped
                    }
                    ChannelConfig::Exec(e) => {
                        // The plugin runs for real; point its output (and anything else that
                        // honours these variables) into the run folder, never the author's.
                        let out = dir.join(name.as_str());
                        let wrap = |cmd: &mut Vec<String>| {
                            let mut w = vec!["env".to_string(), "HERALD_SANDBOX=1".into(), format!("HERALD_PLUGIN_DIR={}", out.display())];
                            w.append(cmd);
                            *cmd = w;
                        };
                        wrap(&mut e.command);
                        if let Some(c) = e.check_command.as_mut() {
                            wrap(c);
                        }
                        Fake::Local(out)
                    }
                    ChannelConfig::Email(_) | ChannelConfig::EmailApi(_) => {
                        Fake::Email(super::email_fakes::EmailFake::start(name, c, &dir).await?)
                    }
                })
            })
            .await
            .with_context(|| format!("channel {name}: cannot start its fake on {addr}"))?;
            if opts.journal && !matches!(fake, Fake::Local(_) | Fake::Skipped) {
                std::fs::create_dir_all(dir.join("journal"))?;
                let journal = super::journal::Journal::open(&dir.join("journal").join(format!("{name}.jsonl")))?;
                match (&fake, fake.faults()) {
                    (_, Some(plan)) => plan.set_journal(journal),
                    (Fake::Email(super::email_fakes::EmailFake::Smtp(s, _)), None) => s.set_journal(journal),
                    // The plugin writes its own output; nothing stands in for a network there.
                    _ => {}
                }
            }
            if let (Some(spec), Some(plan)) = (&opts.faults, fake.faults()) {
                plan.set_rates(&spec.rates, spec.seed.wrapping_add(fakes.len() as u64));
            }
            fakes.push((name.clone(), fake));
        }
        Ok((Self { dir, fakes }, out))
    }

    /// The exec channels left out of the run: under `--sandbox` a plugin runs only with
    /// `run_in_sandbox = true`.
    pub fn skipped(&self) -> Vec<&str> {
        self.fakes.iter().filter(|(_, f)| matches!(f, Fake::Skipped)).map(|(n, _)| n.as_str()).collect()
    }

    /// Every fake: channel, type, address and journal.
    pub fn fakes(&self, cfg: &LoadedConfig) -> Vec<FakeInfo> {
        self.fakes
            .iter()
            .map(|(name, f)| {
                let journal = self.dir.join("journal").join(format!("{name}.jsonl"));
                FakeInfo {
                    channel: name.clone(),
                    r#type: cfg.config.channels.get(name).map(|c| c.type_name().to_string()).unwrap_or_default(),
                    address: f.address(),
                    journal: journal.is_file().then_some(journal),
                }
            })
            .collect()
    }

    /// Seed what the fakes need in the store (the email channels' sample subscribers).
    pub async fn seed(&self, store: &crate::store::Store) -> anyhow::Result<()> {
        for (name, f) in &self.fakes {
            if let Fake::Email(e) = f {
                e.seed(name, store).await?;
            }
        }
        Ok(())
    }

    /// Write every fake's accepted payloads to `<dir>/<channel>.json` (and emails as `.eml`),
    /// returning `(channel, what was accepted, where)` for the summary.
    pub fn write_payloads(&self) -> anyhow::Result<Vec<(String, String, PathBuf)>> {
        let mut out_rows = Vec::new();
        for (name, f) in &self.fakes {
            let path = self.dir.join(format!("{name}.json"));
            let (json, what) = match f {
                Fake::X(f) => {
                    let p = f.posts();
                    (serde_json::to_value(&p)?, format!("{} post(s)", p.len()))
                }
                Fake::Bluesky(f) => {
                    let p = f.posts();
                    (serde_json::to_value(&p)?, format!("{} post(s)", p.len()))
                }
                Fake::Mastodon(f) => {
                    let p = f.statuses();
                    (serde_json::to_value(&p)?, format!("{} status(es)", p.len()))
                }
                Fake::Threads(f) => {
                    let p = f.posts();
                    (serde_json::to_value(&p)?, format!("{} post(s)", p.len()))
                }
                Fake::Linkedin(f) => {
                    let p = f.posts();
                    (serde_json::to_value(&p)?, format!("{} post(s)", p.len()))
                }
                Fake::Substack(f) => {
                    let (d, p) = (f.drafts(), f.published());
                    (serde_json::json!({"drafts": d, "published": p}), format!("{} draft(s), {} published", d.len(), p.len()))
                }
                Fake::Webhook(f) => {
                    let a = f.accepted();
                    let bodies: Vec<_> = a.iter().map(|r| serde_json::json!({"id": r.id, "idempotency_key": r.key, "body": r.body})).collect();
                    (serde_json::Value::Array(bodies), format!("{} request(s)", a.len()))
                }
                Fake::Email(e) => {
                    let (n, p) = e.write_messages(&self.dir, name)?;
                    out_rows.push((name.clone(), format!("{n} message(s)"), p));
                    continue;
                }
                Fake::Skipped => {
                    out_rows.push((name.clone(), "skipped (plugin)".into(), PathBuf::from("set `run_in_sandbox = true` to run it here")));
                    continue;
                }
                Fake::Local(out) => {
                    let n = std::fs::read_dir(out).map(|d| d.filter_map(Result::ok).filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count()).unwrap_or(0);
                    out_rows.push((name.clone(), format!("{n} file(s) from the plugin"), out.clone()));
                    continue;
                }
            };
            std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
            out_rows.push((name.clone(), what, path));
        }
        Ok(out_rows)
    }
}

/// The `[channels.*]` tables of a config that point every enabled channel at the sandbox's
/// fakes: the author's own tables (from `original`'s file), with the endpoint (`api_base`,
/// `url` or `smtp_url`), the account ids and every secret replaced by the sandbox's (a
/// `<key>_file` in the run folder). A secret the config can only take as `${NAME}` (X's OAuth
/// 1.0a keys) becomes a `${HERALD_SANDBOX_…}` reference, returned with its file so the caller
/// can export it.
pub fn config_fragment(original: &LoadedConfig, sandboxed: &LoadedConfig) -> anyhow::Result<(String, Vec<(String, PathBuf)>)> {
    use toml::Value;
    let raw: toml::Table = match &original.path {
        Some(p) => std::fs::read_to_string(p)?.parse().with_context(|| format!("cannot parse {}", p.display()))?,
        None => toml::Table::new(),
    };
    let raw_channels = raw.get("channels").and_then(Value::as_table).cloned().unwrap_or_default();
    let mut env = Vec::new();
    let mut channels = toml::Table::new();
    for (name, c) in &sandboxed.config.channels {
        if !c.common().enabled {
            continue;
        }
        let mut t = raw_channels.get(name).and_then(Value::as_table).cloned().unwrap_or_default();
        t.insert("type".into(), c.type_name().into());
        let s = |v: &str| Value::String(v.to_string());
        let file = |t: &mut toml::Table, key: &str, secret: &Option<Secret>| {
            t.remove(key);
            t.remove(&format!("{key}_file"));
            if let Some(Secret::File(p)) = secret {
                t.insert(format!("{key}_file"), p.display().to_string().into());
            }
        };
        match c {
            ChannelConfig::X(x) => {
                t.insert("api_base".into(), s(&x.api_base));
                if let Some(u) = &x.user_id {
                    t.insert("user_id".into(), s(u));
                }
                if let Some(id) = &x.client_id {
                    t.insert("client_id".into(), s(id));
                }
                file(&mut t, "access_token", &x.access_token);
                file(&mut t, "refresh_token", &x.refresh_token);
                // The X fake's app is a public client: no secret.
                file(&mut t, "client_secret", &None);
                for (key, secret) in [("consumer_key", &x.consumer_key), ("consumer_secret", &x.consumer_secret), ("access_token_secret", &x.access_token_secret)] {
                    t.remove(key);
                    if let Some(Secret::File(p)) = secret {
                        let var = format!("HERALD_SANDBOX_{}_{}", name.to_ascii_uppercase().replace(|ch: char| !ch.is_ascii_alphanumeric(), "_"), key.to_ascii_uppercase());
                        t.insert(key.into(), format!("${{{var}}}").into());
                        env.push((var, p.clone()));
                    }
                }
            }
            ChannelConfig::Bluesky(b) => {
                t.insert("api_base".into(), s(&b.api_base));
                t.insert("identifier".into(), s(&b.identifier));
                file(&mut t, "app_password", &b.app_password);
            }
            ChannelConfig::Mastodon(m) => {
                t.insert("api_base".into(), s(&m.api_base));
                file(&mut t, "access_token", &m.access_token);
            }
            ChannelConfig::Threads(th) => {
                t.insert("api_base".into(), s(&th.api_base));
                t.insert("user_id".into(), s(&th.user_id));
                file(&mut t, "access_token", &th.access_token);
            }
            ChannelConfig::Linkedin(l) => {
                t.insert("api_base".into(), s(&l.api_base));
                file(&mut t, "access_token", &l.access_token);
            }
            ChannelConfig::Substack(st) => {
                t.insert("api_base".into(), s(&st.api_base));
                if let Some(u) = st.user_id {
                    t.insert("user_id".into(), Value::Integer(i64::try_from(u).unwrap_or(i64::MAX)));
                }
                file(&mut t, "cookie", &st.cookie);
            }
            ChannelConfig::Webhook(w) => {
                t.insert("url".into(), s(&w.url));
                file(&mut t, "secret", &w.secret);
            }
            ChannelConfig::Exec(e) => {
                t.insert("command".into(), Value::Array(e.command.iter().map(|a| s(a)).collect()));
            }
            ChannelConfig::Email(e) => {
                t.insert("smtp_url".into(), s(&e.smtp_url));
                file(&mut t, "unsubscribe_secret", &e.unsubscribe_secret);
            }
            ChannelConfig::EmailApi(e) => {
                t.insert("api_base".into(), s(&e.api_base));
                file(&mut t, "server_token", &e.server_token);
                file(&mut t, "unsubscribe_secret", &e.unsubscribe_secret);
            }
        }
        channels.insert(name.clone(), Value::Table(t));
    }
    let mut root = toml::Table::new();
    // The run's credential store key: X's rotated refresh tokens are sealed with it.
    if let Some(Secret::File(p)) = &sandboxed.config.credentials.key {
        let mut t = toml::Table::new();
        t.insert("key_file".into(), p.display().to_string().into());
        root.insert("credentials".into(), Value::Table(t));
    }
    root.insert("channels".into(), Value::Table(channels));
    Ok((toml::to_string(&root)?, env))
}
