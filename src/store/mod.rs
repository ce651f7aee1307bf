//! The delivery store: Herald's own tables (issues, deliveries, renderings, attempts), the truth
//! the pipeline acts on. It knows rows, not networks.
//!
//! One code path serves both backends through sqlx's `Any` driver; every query is written in
//! the SQL both SQLite and PostgreSQL accept (`$n` placeholders, `ON CONFLICT`, `RETURNING`,
//! BIGINT unix-millisecond timestamps, JSON kept as TEXT). The migrations differ only in the
//! id column type, so each backend has its own folder.
//!
//! - `sqlite://path/herald.db`: Herald's tables in that file; the apalis queue in the sibling
//!   `path/herald.queue.db` (apalis-sqlite's migrations clash with ours in one file, STACK §6.8).
//! - `postgres://…`: Herald's tables in schema `herald`, apalis in its own `apalis` schema.

pub mod attempts;
pub mod bounces;
pub mod credentials;
pub mod email;
pub mod fires;
pub mod lease;
pub mod models;
pub mod postmark;
pub mod status;
mod queries;
pub mod walsync;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::{AnyPool, any::AnyPoolOptions};
use sqlx::{Connection as _, Executor as _};

pub use models::*;
pub use queries::{Finish, IssueStored, NewDelivery, delivery_key};

/// How long a connection waits on a locked SQLite file before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection unused this long is closed (down to one). An idle daemon waits days
/// between mailings; each open SQLite connection holds a thread, its page cache and its
/// allocator arena (about 0.3 MB each), so a burst of work should not leave eight behind.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Connections per SQLite pool (the store's, and the queue's). SQLite serialises writers, so
/// more connections add little; each one is a thread of its own, and glibc gives every new
/// thread its own allocator arena, which keeps its memory after the thread ends.
pub const SQLITE_POOL_SIZE: u32 = 4;

/// SQLite connections are reopened after this long. The pool hands out idle connections in
/// turn, so the queue's polling alone keeps every connection "recently used" and the idle
/// timeout never fires; a lifetime lets the pool shrink to what the load needs. Opening a
/// SQLite connection costs well under a millisecond.
pub const SQLITE_MAX_LIFETIME: Duration = Duration::from_secs(30);

/// Which database engine a store URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A parsed `[store] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://path`: Herald's file; the queue lives in [`StoreUrl::queue_path`].
    Sqlite {
        /// Herald's database file.
        path: PathBuf,
    },
    /// `postgres://…` (or `postgresql://…`).
    Postgres {
        /// The connection URL as given.
        url: String,
    },
}

impl StoreUrl {
    /// Parse a store URL; a relative SQLite path resolves against `base_dir` (the config's folder).
    pub fn parse(url: &str, base_dir: &Path) -> anyhow::Result<Self> {
        if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let rest = rest.split('?').next().unwrap_or_default();
            anyhow::ensure!(!rest.is_empty() && rest != ":memory:", "store url `{url}`: give a file path, e.g. `sqlite://data/herald.db` (an in-memory store would forget every delivery)");
            let p = PathBuf::from(rest);
            let path = if p.is_absolute() { p } else { base_dir.join(p) };
            return Ok(StoreUrl::Sqlite { path });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres { url: url.to_string() });
        }
        anyhow::bail!("store url must start with `sqlite://` or `postgres://`; got `{}`", redact_url(url))
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self {
            StoreUrl::Sqlite { .. } => Backend::Sqlite,
            StoreUrl::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The apalis queue's SQLite file: `<stem>.queue.db` beside Herald's file.
    pub fn queue_path(&self) -> Option<PathBuf> {
        match self {
            StoreUrl::Sqlite { path } => {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "herald".into());
                Some(path.with_file_name(format!("{stem}.queue.db")))
            }
            StoreUrl::Postgres { .. } => None,
        }
    }

    /// A form safe to print: the password, if any, replaced.
    pub fn display(&self) -> String {
        match self {
            StoreUrl::Sqlite { path } => format!("sqlite://{}", path.display()),
            StoreUrl::Postgres { url } => redact_url(url),
        }
    }
}

/// Hide a URL's password (`postgres://user:secret@host` → `postgres://user:***@host`).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The store: a pool on Herald's tables.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: StoreUrl,
    /// The connection a mailing records its outcomes on, held between groups (see
    /// [`Store::record_sends`]); shared by clones, given back by [`Store::release_writer`].
    writer: std::sync::Arc<tokio::sync::Mutex<Option<email::WriterConn>>>,
    /// SQLite: flushes the WAL for the ledger writer's `synchronous=NORMAL` commits (see
    /// [`walsync`]); `None` on PostgreSQL, or when the ledger commits with FULL.
    wal: Option<std::sync::Arc<walsync::WalFlusher>>,
}

/// The SQLite PRAGMAs set on every connection of Herald's pool.
///
/// `synchronous=FULL`: Herald's tables are the truth about what was sent. A `sent` row lost to a
/// power cut after the network accepted a post would make the next run post again; FULL fsyncs
/// the WAL on every commit, so a commit that returned is on disk. The cost (a few ms per commit)
/// is small beside one network call per delivery.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// The schema Herald's tables live in on PostgreSQL.
pub const PG_SCHEMA: &str = "herald";

impl Store {
    /// Open (creating the file or schema) and migrate.
    pub async fn open(url: &StoreUrl) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (pool, backend) = match url {
            StoreUrl::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the data folder {}", dir.display()))?;
                }
                // sqlx percent-decodes the path: encode what a URL would misread.
                const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'?').add(b'#').add(b'%');
                let encoded = percent_encoding::utf8_percent_encode(&path.to_string_lossy(), SET).to_string();
                let any_url = format!("sqlite://{encoded}?mode=rwc");
                let pool = AnyPoolOptions::new()
                    .max_connections(SQLITE_POOL_SIZE)
                    .min_connections(1)
                    .idle_timeout(POOL_IDLE_TIMEOUT)
                    .max_lifetime(SQLITE_MAX_LIFETIME)
                    .acquire_timeout(Duration::from_secs(30))
                    // A local file does not go stale as a network connection does; the test
                    // is one more hand-off to the connection's thread for every statement.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect(&any_url)
                    .await
                    .with_context(|| format!("cannot open the store {}", url.display()))?;
                (pool, Backend::Sqlite)
            }
            StoreUrl::Postgres { url: pg } => {
                // Create the schema once on a plain connection (two daemons racing on
                // CREATE SCHEMA IF NOT EXISTS can collide; the loser just retries the check).
                let mut conn = sqlx::AnyConnection::connect(pg).await.with_context(|| format!("cannot connect to {}", redact_url(pg)))?;
                for _ in 0..3 {
                    if conn.execute("CREATE SCHEMA IF NOT EXISTS herald").await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = conn.close().await;
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .min_connections(1)
                    .idle_timeout(POOL_IDLE_TIMEOUT)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("SET search_path TO herald, public").await?;
                            Ok(())
                        })
                    })
                    .connect(pg)
                    .await
                    .with_context(|| format!("cannot connect to {}", redact_url(pg)))?;
                (pool, Backend::Postgres)
            }
        };
        let store = Store { pool, backend, url: url.clone(), writer: Default::default(), wal: None }.with_ledger_flush(walsync::DEFAULT_LEDGER_FLUSH);
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("src/store/migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("src/store/migrations/postgres"),
        };
        // SQLite has no migration lock: two processes opening a fresh file at once (a daemon and
        // a `publish`) race, and the loser sees a UNIQUE or "already exists" error. Once the
        // winner is done, a rerun finds every migration applied, so retry a few times.
        let mut tries = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 10 => {
                    tries += 1;
                    tracing::debug!(error = %e, "Store migration raced another process; retrying.");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => return Err(e).context("store migrations failed"),
            }
        }
    }

    /// The pool (for the few callers that need a raw query, e.g. tests).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// How the recipient ledger reaches the disk on SQLite (`[store] ledger_flush_ms`): its
    /// commits are flushed at most `every` after they are made, or one by one (FULL, like
    /// every other write) when `every` is zero. No effect on PostgreSQL.
    pub fn with_ledger_flush(mut self, every: Duration) -> Self {
        if let StoreUrl::Sqlite { path } = &self.url {
            self.wal = (!every.is_zero()).then(|| walsync::WalFlusher::new(&std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()), every));
        }
        self
    }

    /// Close the pool (after giving back the held writer connection, which it would wait for).
    pub async fn close(&self) {
        self.release_writer().await;
        self.pool.close().await;
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Unix milliseconds as RFC 3339 (UTC, seconds precision).
pub fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
