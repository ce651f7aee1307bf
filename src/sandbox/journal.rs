//! A fake's journal: one JSON object per line, appended for every request the fake handled and
//! `fsync`ed before the fake answers a request that may have changed something, so a crash of
//! Herald (or of the fake's own process, after the answer) can never hide what was accepted.
//!
//! `herald sandbox serve` gives each fake a journal; the chaos suite reads them, not Herald's
//! own claims. Several writers share one `fsync` (group commit): a writer whose line a later
//! `fsync` already covered does not sync again.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Strings longer than this are kept as `sha256:<hex>:<chars>` so the journal stays small (a
/// 10,000-recipient batch would otherwise hold every body) while still telling copies apart.
pub const MAX_KEPT_CHARS: usize = 1024;

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Written>,
    /// The handle `fsync` runs on, and how many lines the last sync covered.
    synced: Mutex<(File, u64)>,
}

#[derive(Debug)]
struct Written {
    file: File,
    lines: u64,
}

impl Journal {
    /// Open (create or append to) `path`.
    pub fn open(path: &Path) -> std::io::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let sync = file.try_clone()?;
        Ok(Arc::new(Self { path: path.to_path_buf(), inner: Mutex::new(Written { file, lines: 0 }), synced: Mutex::new((sync, 0)) }))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry (as one line); with `sync`, return only once it is on disk.
    pub fn append_blocking(&self, entry: &Value, sync: bool) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let seq = {
            let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            w.file.write_all(&line)?;
            w.lines += 1;
            w.lines
        };
        if sync {
            let mut s = self.synced.lock().unwrap_or_else(|e| e.into_inner());
            if s.1 < seq {
                // Everything written before this point is covered by the one sync.
                let upto = self.inner.lock().unwrap_or_else(|e| e.into_inner()).lines;
                s.0.sync_data()?;
                s.1 = upto;
            }
        }
        Ok(())
    }

    /// [`Journal::append_blocking`] off the runtime's threads.
    pub async fn append(self: &Arc<Self>, entry: Value, sync: bool) -> std::io::Result<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.append_blocking(&entry, sync)).await.map_err(std::io::Error::other)?
    }
}

/// A body as kept in a journal: JSON (long strings shortened), else the text (shortened).
pub fn body_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => compact(v),
        Err(_) => compact(Value::String(String::from_utf8_lossy(bytes).into_owned())),
    }
}

/// Replace every string longer than [`MAX_KEPT_CHARS`] with its digest.
pub fn compact(v: Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > MAX_KEPT_CHARS => Value::String(digest(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, compact(v))).collect()),
        other => other,
    }
}

/// `sha256:<first 16 hex>:<chars>`.
pub fn digest(s: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let h = hex::encode(Sha256::digest(s.as_bytes()));
    format!("sha256:{}:{}", &h[..16], s.chars().count())
}

/// Now, as the journal writes it (RFC 3339, microseconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_on_disk_and_long_strings_become_digests() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("x.jsonl")).unwrap();
        let long = "a".repeat(MAX_KEPT_CHARS + 1);
        j.append_blocking(&serde_json::json!({"n": 1, "body": body_value(format!("{{\"t\":\"{long}\"}}").as_bytes())}), true).unwrap();
        j.append_blocking(&serde_json::json!({"n": 2, "body": body_value(b"short")}), false).unwrap();
        let text = std::fs::read_to_string(j.path()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["body"]["t"], Value::String(digest(&long)));
        assert!(lines[0]["body"]["t"].as_str().unwrap().ends_with(&format!(":{}", MAX_KEPT_CHARS + 1)));
        assert_eq!(lines[1]["body"], "short");
    }
}
