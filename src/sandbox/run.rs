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

use super::wiring::{Fake, FragmentTable, SandboxCtx};
use crate::config::{LoadedConfig, Secret};

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

/// What the run asks of any fake.
trait FakeExt {
    fn faults(&self) -> Option<&std::sync::Arc<super::fault::FaultPlan>>;
    fn address(&self) -> String;
}

impl FakeExt for Fake {
    /// The fake's fault plan (HTTP fakes only).
    fn faults(&self) -> Option<&std::sync::Arc<super::fault::FaultPlan>> {
        use super::email_fakes::EmailFake;
        match self {
            Fake::Http(f) => Some(f.faults()),
            Fake::Email(EmailFake::Postmark(f, _)) => Some(&f.faults),
            Fake::Email(EmailFake::Smtp(..)) | Fake::Local(_) | Fake::Skipped => None,
        }
    }
    /// Where the fake listens (`http://…` or `smtp://…`), or the plugin's folder.
    fn address(&self) -> String {
        use super::email_fakes::EmailFake;
        match self {
            Fake::Http(f) => f.address(),
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
        let secret = |channel: &str, key: &str, value: &str| SandboxCtx { name: channel, dir: &dir }.secret(key, value);
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
                // The type's own hook (`src/channel/<type>/kind.rs`) starts its fake and points
                // the channel at it.
                c.sandbox(&SandboxCtx { name, dir: &dir }).await
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
                Fake::Http(f) => f.accepted_json()?,
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
        c.sandbox_fragment(&mut FragmentTable { t: &mut t, name, env: &mut env });
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
