//! The checks only the machine can answer, for `herald check`: the folders and secret files the
//! config names exist, the exec programs are found, and (on request) every credential resolves.
//! Messages name the key and the source of a secret, never its value.

use std::path::{Path, PathBuf};

use super::secret::{EnvLookup, Secret};
use super::validate::{Refers, references};
use super::{ConfigError, LoadedConfig};

fn loaded_refs(loaded: &LoadedConfig) -> (PathBuf, Vec<super::validate::Reference>) {
    let file = loaded.path.clone().unwrap_or_else(|| PathBuf::from("herald.toml"));
    let text = loaded.path.as_deref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    (file, references(&text))
}

/// Folders, secret files and exec programs the config names, checked on disk. Disabled channels are
/// skipped. Returns every problem.
pub fn check_files(loaded: &LoadedConfig) -> Vec<ConfigError> {
    let (file, refs) = loaded_refs(loaded);
    let mut errors = Vec::new();
    for r in refs {
        if r.channel.as_ref().is_some_and(|(_, enabled)| !enabled) {
            continue;
        }
        let mut err = |message: String, hint: &str| {
            errors.push(ConfigError { file: file.clone(), line: r.line, key: r.key.clone(), message, hint: Some(hint.to_string()) })
        };
        match &r.what {
            Refers::Dir(d) => {
                let p = loaded.resolve_path(d);
                if !p.is_dir() {
                    err(format!("folder {} does not exist", p.display()), "paths are relative to the config file's folder");
                }
            }
            Refers::SecretFile(f) => {
                let p = loaded.resolve_path(f);
                if let Err(e) = super::secret::read_secret_file(&p) {
                    err(format!("cannot read secret file {}: {e}", p.display()), "paths are relative to the config file's folder");
                }
            }
            Refers::Program(prog) => {
                if !program_exists(prog, &loaded.base_dir) {
                    err(format!("program `{prog}` not found"), "give a path relative to the config file's folder, or a program on PATH");
                }
            }
            Refers::Env(_) => {}
        }
    }
    errors.sort_by_key(|e| e.line.unwrap_or(0));
    errors
}

/// Resolve every credential of the enabled channels (and the HTTP token) through `env` and the
/// secret files. The errors name the variable or file, never a value.
pub fn check_credentials(loaded: &LoadedConfig, env: EnvLookup<'_>) -> Vec<ConfigError> {
    let (file, refs) = loaded_refs(loaded);
    let mut errors = Vec::new();
    for r in refs {
        if r.channel.as_ref().is_some_and(|(_, enabled)| !enabled) {
            continue;
        }
        let secret = match &r.what {
            Refers::Env(n) => Secret::Env(n.clone()),
            Refers::SecretFile(f) => Secret::File(loaded.resolve_path(f)),
            _ => continue,
        };
        match secret.resolve_with(env) {
            Err(e) => errors.push(ConfigError {
                file: file.clone(),
                line: r.line,
                key: r.key.clone(),
                message: e.to_string(),
                hint: Some("export the variable (or fix the file) before starting herald".into()),
            }),
            Ok(token) if r.key.starts_with("http.token") => {
                // The daemon refuses a short token on a public listener: say so now.
                if let Ok(addr) = loaded.config.http.listen.parse::<std::net::SocketAddr>()
                    && let Err(message) = crate::http::check_listen(&addr, Some(&token))
                {
                    errors.push(ConfigError { file: file.clone(), line: r.line, key: r.key.clone(), message, hint: None });
                }
            }
            Ok(_) => {}
        }
    }
    errors.sort_by_key(|e| e.line.unwrap_or(0));
    errors
}

fn program_exists(prog: &str, base: &Path) -> bool {
    if prog.contains('/') {
        let p = Path::new(prog);
        return if p.is_absolute() { p.is_file() } else { base.join(p).is_file() };
    }
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> (tempfile::TempDir, LoadedConfig) {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("herald.toml");
        std::fs::write(&p, text).expect("write");
        let cfg = crate::config::load(&p).expect("loads");
        (dir, cfg)
    }

    #[test]
    fn a_public_listener_needs_a_long_token() {
        let text = "[http]\nlisten = \"0.0.0.0:8025\"\ntoken = \"${T}\"\n";
        let (_d, cfg) = loaded(text);
        let short = check_credentials(&cfg, &|_| Some("x".into()));
        assert_eq!(short.len(), 1, "{short:?}");
        assert_eq!((short[0].key.as_str(), short[0].line), ("http.token", Some(3)));
        assert!(short[0].message.contains("1 characters long") && short[0].message.contains("at least 32"), "{}", short[0]);
        assert!(!short[0].to_string().contains("\"x\""));
        assert!(check_credentials(&cfg, &|_| Some("x".repeat(32))).is_empty());
        // On loopback the token is the operator's own business.
        let (_d, cfg) = loaded("[http]\nlisten = \"127.0.0.1:8025\"\ntoken = \"${T}\"\n");
        assert!(check_credentials(&cfg, &|_| Some("x".into())).is_empty());
    }
}
