//! What a channel type gives `publish --sandbox`: its hook
//! ([`crate::channel::registry::ChannelType::sandbox`]) starts the type's contract fake and points
//! the channel's config at it; [`crate::channel::registry::ChannelType::sandbox_fragment`] writes
//! the same into `sandbox serve`'s config fragment. The run itself (`run.rs`) knows no type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fault::FaultPlan;
use crate::config::Secret;

/// A running contract fake of an HTTP network.
pub trait HttpFake: Send + Sync + 'static {
    /// Its fault plan.
    fn faults(&self) -> &Arc<FaultPlan>;
    /// Where it listens.
    fn address(&self) -> String;
    /// What it accepted, as JSON, with a summary for the run's table (`"2 post(s)"`).
    fn accepted_json(&self) -> anyhow::Result<(serde_json::Value, String)>;
}

/// `impl HttpFake` for a fake with `faults` and `base_url` fields (its address, unless given
/// as `address: |f| …`): what a type's `kind.rs` writes is only what the fake accepted.
///
/// ```ignore
/// impl_http_fake!(crate::sandbox::x::XFake, |f| listed(f.posts(), "post(s)"));
/// impl_http_fake!(crate::sandbox::webhook::WebhookFake, address: |f| f.url(), |f| …);
/// ```
macro_rules! impl_http_fake {
    ($fake:ty, |$f:ident| $accepted:expr) => {
        $crate::sandbox::wiring::impl_http_fake!($fake, address: |f| f.base_url.clone(), |$f| $accepted);
    };
    ($fake:ty, address: |$a:ident| $address:expr, |$f:ident| $accepted:expr) => {
        impl $crate::sandbox::wiring::HttpFake for $fake {
            fn faults(&self) -> &::std::sync::Arc<$crate::sandbox::fault::FaultPlan> {
                &self.faults
            }
            fn address(&self) -> String {
                let $a = self;
                $address
            }
            fn accepted_json(&self) -> ::anyhow::Result<(::serde_json::Value, String)> {
                let $f = self;
                $accepted
            }
        }
    };
}
pub(crate) use impl_http_fake;

/// A fake standing in for one channel.
pub enum Fake {
    /// An HTTP network's contract fake.
    Http(Box<dyn HttpFake>),
    /// The exec channel runs its real program, writing under this folder.
    Local(PathBuf),
    /// An exec channel without `run_in_sandbox = true`: not run at all.
    Skipped,
    /// An email channel: its SMTP server or ESP fake.
    Email(super::email_fakes::EmailFake),
}

/// What a type's sandbox hook gets: the channel's name and the run folder.
pub struct SandboxCtx<'a> {
    /// The channel.
    pub name: &'a str,
    /// The run folder.
    pub dir: &'a Path,
}

impl SandboxCtx<'_> {
    /// A secret for the channel, as a file in the run folder (`secrets/<channel>.<key>`).
    pub fn secret(&self, key: &str, value: &str) -> anyhow::Result<Option<Secret>> {
        let p = self.dir.join("secrets").join(format!("{}.{key}", self.name));
        std::fs::write(&p, value)?;
        Ok(Some(Secret::File(p)))
    }
    /// A `key`/`key_file` pair pointed at the sandbox's secret: `secret` becomes the file
    /// written by [`SandboxCtx::secret`], and `file` (the author's own file) is dropped.
    pub fn secret_pair(&self, secret: &mut Option<Secret>, file: &mut Option<PathBuf>, key: &str, value: &str) -> anyhow::Result<()> {
        *secret = self.secret(key, value)?;
        *file = None;
        Ok(())
    }
}

/// One channel's table in `sandbox serve`'s config fragment: the author's own table, where a
/// type's hook sets the endpoint, the account ids and its secrets.
pub struct FragmentTable<'a> {
    /// The table.
    pub t: &'a mut toml::Table,
    pub(crate) name: &'a str,
    pub(crate) env: &'a mut Vec<(String, PathBuf)>,
}

impl FragmentTable<'_> {
    /// Set a string key.
    pub fn set(&mut self, key: &str, value: &str) {
        self.t.insert(key.into(), toml::Value::String(value.to_string()));
    }
    /// Set a key to any value.
    pub fn set_value(&mut self, key: &str, value: toml::Value) {
        self.t.insert(key.into(), value);
    }
    /// Replace `key`/`key_file` by the sandbox's secret file (or drop both when it has none).
    pub fn secret_file(&mut self, key: &str, secret: &Option<Secret>) {
        self.t.remove(key);
        self.t.remove(&format!("{key}_file"));
        if let Some(Secret::File(p)) = secret {
            self.t.insert(format!("{key}_file"), p.display().to_string().into());
        }
    }
    /// A secret the config can only take as `${NAME}`: it becomes a `${HERALD_SANDBOX_…}`
    /// reference, returned with its file so the caller can export it.
    pub fn secret_env(&mut self, key: &str, secret: &Option<Secret>) {
        self.t.remove(key);
        if let Some(Secret::File(p)) = secret {
            let var = format!("HERALD_SANDBOX_{}_{}", self.name.to_ascii_uppercase().replace(|ch: char| !ch.is_ascii_alphanumeric(), "_"), key.to_ascii_uppercase());
            self.t.insert(key.into(), format!("${{{var}}}").into());
            self.env.push((var, p.clone()));
        }
    }
}

/// `posts()` of a fake as the run's JSON and summary.
pub fn listed<T: serde::Serialize>(items: Vec<T>, what: &str) -> anyhow::Result<(serde_json::Value, String)> {
    Ok((serde_json::to_value(&items)?, format!("{} {what}", items.len())))
}
