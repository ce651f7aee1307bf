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
    /// An email channel: its SMTP server or ESP fake.
    Email(super::email_fakes::EmailFake),
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
        let mut fakes = Vec::new();
        for (name, c) in out.config.channels.iter_mut() {
            if !c.common().enabled {
                continue;
            }
            let fake = match c {
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
                    s.profile_url = format!("{}/api/v1/user/profile/self", f.base_url);
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
                ChannelConfig::Exec(e) => {
                    // The plugin runs for real; point its output (and anything else that
                    // honours these variables) into the run folder, never the author's.
                    let out = dir.join(name.as_str());
                    let mut cmd = vec!["env".to_string(), "HERALD_SANDBOX=1".into(), format!("HERALD_PLUGIN_DIR={}", out.display())];
                    cmd.append(&mut e.command);
                    e.command = cmd;
                    Fake::Local(out)
                }
                ChannelConfig::Email(_) | ChannelConfig::EmailApi(_) => {
                    Fake::Email(super::email_fakes::EmailFake::start(name, c, &dir).await?)
                }
            };
            fakes.push((name.clone(), fake));
        }
        Ok((Self { dir, fakes }, out))
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
