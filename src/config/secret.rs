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

/// Largest secret file read: a token, a cookie or a key is far smaller.
pub const SECRET_FILE_MAX: u64 = 64 * 1024;

/// How long reading a secret file may take (a file on a hung network mount).
pub const SECRET_FILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Read a secret file: it must be a regular file (not a folder, FIFO, socket or device such as
/// `/dev/zero`), at most [`SECRET_FILE_MAX`] bytes of UTF-8, read within
/// [`SECRET_FILE_TIMEOUT`]. The error says what is wrong with the file, never its content.
pub fn read_secret_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    // Look before opening: opening a FIFO for reading blocks until a writer comes.
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(Error::new(ErrorKind::InvalidInput, "it is a folder; point the *_file key at the file holding the secret"));
    }
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "it is not a regular file (a FIFO, socket or device); write the secret to a plain file",
        ));
    }
    if meta.len() > SECRET_FILE_MAX {
        return Err(Error::new(ErrorKind::InvalidData, format!("it is {} bytes, over the {SECRET_FILE_MAX}-byte limit for a secret file", meta.len())));
    }
    let owned = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    // The read runs on its own thread so a hung mount costs a thread, not the caller.
    std::thread::Builder::new().name("secret-file".into()).spawn(move || {
        let read = (|| {
            let f = std::fs::File::open(&owned)?;
            // The path may have been swapped since the look: check the opened file itself.
            if !f.metadata()?.is_file() {
                return Err(Error::new(ErrorKind::InvalidInput, "it is not a regular file"));
            }
            let mut buf = Vec::new();
            f.take(SECRET_FILE_MAX + 1).read_to_end(&mut buf)?;
            if buf.len() as u64 > SECRET_FILE_MAX {
                return Err(Error::new(ErrorKind::InvalidData, format!("it is over the {SECRET_FILE_MAX}-byte limit for a secret file")));
            }
            String::from_utf8(buf).map_err(|_| Error::new(ErrorKind::InvalidData, "it is not UTF-8 text"))
        })();
        let _ = tx.send(read);
    })?;
    match rx.recv_timeout(SECRET_FILE_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(Error::new(ErrorKind::TimedOut, format!("reading it took longer than {}s", SECRET_FILE_TIMEOUT.as_secs()))),
    }
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
            Secret::File(path) => read_secret_file(path)
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

/// For the registry's drift test only (it lists a config struct's fields by serializing it):
/// the reference as written, never a value.
#[cfg(test)]
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Secret::Env(n) => s.serialize_str(&format!("${{{n}}}")),
            Secret::File(p) => s.serialize_str(&p.display().to_string()),
        }
    }
}
