//! SQLite: the recipient ledger's commits, flushed to disk on an interval instead of one by one.
//!
//! Every pool connection commits with `synchronous=FULL`: a commit writes its WAL frames and
//! then fsyncs the WAL, holding SQLite's write lock, so a commit that returned survives a
//! power cut. A mailing commits a group of outcomes every few messages, and each worker waits
//! for its outcome's commit before its next message may reach anyone (the bound on unrecorded
//! sends, `channel/email/engine.rs`). With one fsync per group, that wait, and the CPU each
//! flush costs, were most of a mailing's time (`bench/email`: 0.6× the ceiling of a machine
//! whose disk flushes in ~0.1–0.3 ms).
//!
//! So the ledger's writer connection commits with `synchronous=NORMAL`, and this flusher
//! `fdatasync`s the WAL file at most `every` after a commit, while a mailing writes:
//! - **A process crash** (`kill -9`, OOM, panic) loses nothing: a NORMAL commit's frames are in
//!   the WAL file when it returns (the OS holds them; SQLite documents this for every mode). The
//!   bound on duplicates after such a crash is unchanged: at most `concurrency` messages.
//! - **A power cut or kernel crash** may roll back the outcomes committed in the last `every`
//!   plus one flush (10 ms by default): those recipients are owed again and get the message a
//!   second time. Nobody is skipped, since a lost outcome leaves its row `pending`.
//! - Nothing else changes: deliveries, attempts, subscribers and suppressions are written by
//!   FULL connections, and the first FULL commit after a mailing flushes the WAL as a whole.
//!
//! `[store] ledger_flush_ms = 0` keeps the ledger on FULL (every commit flushed, the strict
//! bound for power cuts too), at the cost of throughput.
//!
//! Why a flush of the WAL file is enough: SQLite's WAL recovery replays the frames up to the
//! last valid commit frame, checking a checksum chain from the WAL header on (the WAL format,
//! sqlite.org/fileformat2.html §4). The header and all frames of a commit were written before
//! the commit returned, so a flush that starts later makes them durable. Checkpoints are
//! SQLite's: with NORMAL it syncs the WAL before a checkpoint and the database after, before
//! the WAL is reused. A WAL file that is gone (the last connection closed and checkpointed it)
//! has nothing unflushed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use tokio::sync::Notify;

/// The default interval: outcomes reach the disk at most this long after their commit.
pub const DEFAULT_LEDGER_FLUSH: Duration = Duration::from_millis(10);

/// The flusher for one SQLite store's WAL file.
#[derive(Debug)]
pub struct WalFlusher {
    /// `<database>-wal`.
    wal: PathBuf,
    every: Duration,
    /// A commit since the last flush began.
    dirty: AtomicBool,
    kick: Notify,
    started: Once,
    /// Why the last flush failed: the ledger takes no more outcomes while this is set.
    failed: Mutex<Option<String>>,
}

impl WalFlusher {
    /// A flusher for the database file at `db` (its WAL is `db` + `-wal`).
    pub fn new(db: &Path, every: Duration) -> Arc<Self> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Arc::new(Self { wal: PathBuf::from(wal), every, dirty: AtomicBool::new(false), kick: Notify::new(), started: Once::new(), failed: Mutex::new(None) })
    }

    /// Why flushing failed, if it did: outcomes must not be recorded (nor more messages sent).
    pub fn check(&self) -> Result<(), String> {
        match &*self.failed.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Note a commit made with `synchronous=NORMAL`: it is flushed within the interval.
    pub fn committed(self: &Arc<Self>) {
        self.started.call_once(|| {
            tokio::spawn(self.clone().run());
        });
        if !self.dirty.swap(true, Ordering::SeqCst) {
            self.kick.notify_one();
        }
    }

    /// Flush now whatever was committed (a mailing pass that ends).
    pub async fn flush_now(&self) {
        if self.dirty.swap(false, Ordering::SeqCst) {
            self.flush_once().await;
        }
    }

    /// Wait for a commit, then flush no sooner than `every` after the previous flush began.
    /// Lives as long as the runtime; idle, it only waits.
    async fn run(self: Arc<Self>) {
        let mut last = tokio::time::Instant::now() - self.every;
        loop {
            if !self.dirty.load(Ordering::SeqCst) {
                self.kick.notified().await;
                continue;
            }
            tokio::time::sleep_until(last + self.every).await;
            last = tokio::time::Instant::now();
            // Cleared before the flush starts: a commit during the flush waits for the next.
            if self.dirty.swap(false, Ordering::SeqCst) {
                self.flush_once().await;
            }
        }
    }

    async fn flush_once(&self) {
        let wal = self.wal.clone();
        let r = match tokio::task::spawn_blocking(move || flush(&wal)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = r {
            tracing::error!(file = %self.wal.display(), error = %e, "Cannot flush the store's WAL file; recording stops.");
            *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("cannot flush {}: {e}", self.wal.display()));
        }
    }
}

/// `fdatasync` the WAL file. Opened anew each time, so a WAL file SQLite deleted and made
/// again is never missed; a missing one has nothing unflushed (see the module's docs).
fn flush(wal: &Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flushes_after_a_commit_and_reports_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.db");
        std::fs::write(dir.path().join("h.db-wal"), b"frames").unwrap();
        let f = WalFlusher::new(&db, Duration::from_millis(5));
        f.committed();
        // The flusher clears `dirty` when it starts a flush.
        for _ in 0..200 {
            if !f.dirty.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(!f.dirty.load(Ordering::SeqCst), "a commit is flushed within the interval");
        assert_eq!(f.check(), Ok(()));

        // A WAL path that cannot be opened (a directory where the file should be, read-only
        // open succeeds but a missing parent does not): the failure is kept and reported.
        let bad = WalFlusher::new(&dir.path().join("missing-dir").join("x").join("h.db"), Duration::from_millis(1));
        std::fs::create_dir_all(dir.path().join("missing-dir")).unwrap();
        std::fs::write(dir.path().join("missing-dir").join("x"), b"a file, not a folder").unwrap();
        bad.committed();
        bad.flush_now().await;
        for _ in 0..200 {
            if bad.check().is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(bad.check().unwrap_err().contains("cannot flush"));
    }
}
