//! Configuration: discovery, the TOML model, secrets, and a validation that reports every error.

pub mod check;
pub mod keys;
pub mod model;
pub mod secret;
pub mod validate;

use std::path::{Path, PathBuf};

pub use check::{check_credentials, check_files};
pub use model::*;
pub use secret::{Secret, SecretError, SecretString};

/// One configuration problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `channels.x.api_base`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)?;
        } else {
            write!(f, ": {}: {}", self.key, self.message)?;
        }
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// Every problem found, so the author fixes them in one pass.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// A loaded, validated configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file it was read from (None for the built-in default).
    pub path: Option<PathBuf>,
    /// The folder relative paths resolve against.
    pub base_dir: PathBuf,
    /// The model.
    pub config: Config,
}

impl LoadedConfig {
    /// Resolve a config-relative path.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }
}

/// True for `localhost`, `127.0.0.0/8` and `::1`.
pub fn is_loopback_host(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // Non-special schemes (`smtp://`) leave IP literals as domains.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// Herald's TLS policy for an email channel's `smtp_url`, the one rule `check` and the adapter
/// both apply: TLS is required (`smtps://`, or STARTTLS with `?tls=required`; opportunistic
/// STARTTLS can be stripped by anyone on the path), except to a loopback host or with
/// `allow_insecure = true`.
pub fn smtp_url_tls_ok(u: &url::Url, allow_insecure: bool) -> bool {
    let required = u.scheme() == "smtps" || u.query_pairs().any(|(k, v)| k == "tls" && v == "required");
    required || allow_insecure || is_loopback_host(u.host())
}

/// Find the config file: `--config`, then `$HERALD_CONFIG`, then `./herald.toml`.
pub fn discover(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Ok(p) = std::env::var("HERALD_CONFIG")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let local = PathBuf::from("herald.toml");
    local.exists().then_some(local)
}

/// Parse and validate a config file's text. Pure: no I/O beyond what the caller read.
/// Every problem is reported at once (see [`validate::validate`]).
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    validate::validate(path, text)
}

/// Read, parse and validate the file at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
            hint: Some("pass --config PATH, set HERALD_CONFIG, or create ./herald.toml".into()),
        }])
    })?;
    let config = parse(path, &text)?;
    let base_dir = path.parent().map(Path::to_path_buf).filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from("."));
    Ok(LoadedConfig { path: Some(path.to_path_buf()), base_dir, config })
}
