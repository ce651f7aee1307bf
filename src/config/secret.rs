//! Secrets: `${ENV_VAR}` references or `*_file` paths, resolved late, never printed.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// Where a secret comes from. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// `"${NAME}"` in the config: read from the environment.
    Env(String),
    /// `<key>_file = "/path"` in the config: read from a file, trailing newline trimmed.
    File(PathBuf),
}

/// A resolved secret value. `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wrap a value.
    pub fn new(v: impl Into<String>) -> Self {
        Self(v.into())
    }
    /// The value, for building a request header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(n) => write!(f, "Secret(env {n})"),
            Secret::File(p) => write!(f, "Secret(file {})", p.display()),
        }
    }
}

/// Why a secret could not be read. Names the source, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is unset or empty.
    #[error("environment variable {0} is not set (export it, or use a *_file path)")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {error}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// Something that answers environment lookups; the sandbox supplies its own.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Secret {
    /// Parse the config form: `${NAME}`. Anything else is rejected: secrets are never inline.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(name) = t.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Ok(Secret::Env(name.to_string()));
        }
        Err("secrets must be written as \"${ENV_VAR}\" or given as a <key>_file path; inline values are refused so they never land in a repository".into())
    }

    /// A header whose value comes from a secret (`[channels.*] headers`): `Name = "${ENV}"`,
    /// `Name = "Bearer ${ENV}"` (an auth scheme, one word, then the reference), or
    /// `Name_file = "/path"`. Returns the header name, the literal prefix and the secret; None
    /// when the value is written as is.
    pub fn header_reference(key: &str, value: &str) -> Option<(String, String, Secret)> {
        if key.len() > 5 && key.is_char_boundary(key.len() - 5) && key[key.len() - 5..].eq_ignore_ascii_case("_file") {
            let path = value.trim();
            return (!path.is_empty()).then(|| (key[..key.len() - 5].to_string(), String::new(), Secret::File(PathBuf::from(path))));
        }
        if let Ok(s) = Secret::parse(value) {
            return Some((key.to_string(), String::new(), s));
        }
        let (scheme, rest) = value.trim().split_once(' ')?;
        let scheme_ok = !scheme.is_empty() && scheme.len() <= 32 && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        match Secret::parse(rest) {
            Ok(s) if scheme_ok => Some((key.to_string(), format!("{scheme} "), s)),
            _ => None,
        }
    }

    /// Resolve from the process environment or the file.
    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        self.resolve_with(&|k| std::env::var(k).ok())
    }

    /// Resolve with a custom environment (the sandbox uses fake credentials).
    pub fn resolve_with(&self, env: EnvLookup<'_>) -> Result<SecretString, SecretError> {
        match self {
            Secret::Env(name) => match env(name) {
                Some(v) if !v.is_empty() => Ok(SecretString(v)),
                _ => Err(SecretError::MissingEnv(name.clone())),
            },
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|v| SecretString(v.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|error| SecretError::File { path: path.clone(), error }),
        }
    }

    /// A label safe to print: `$NAME` or `file:/path`.
    pub fn label(&self) -> String {
        match self {
            Secret::Env(n) => format!("${n}"),
            Secret::File(p) => format!("file:{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Secret::parse(&s).map_err(serde::de::Error::custom)
    }
}
