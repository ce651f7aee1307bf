//! The bounce mailbox, polled by the daemon over IMAP (async-imap on tokio).
//!
//! Each poll logs in, selects the folder, and reads every message not yet marked by Herald
//! (`UNKEYWORD $HeraldDone UNKEYWORD $HeraldKept`) with `BODY.PEEK[]`, so reading marks nothing.
//! Each message goes through [`Intake::mail`]:
//! - applied (a DSN, an ARF complaint or a `mailto:` unsubscribe tied to its message): moved to
//!   `imap_done_mailbox`, or flagged `\Seen $HeraldDone` when none is set;
//! - malformed, not tied to a message of ours, or not a report at all: logged and kept in place,
//!   flagged `$HeraldKept` so a person can look and the next poll skips it;
//! - a store error: left unmarked, so the next poll tries again.
//!
//! A report is keyed by its content, so one handled twice (a crash between the store's commit
//! and the flag) changes nothing the second time. TLS (`imaps://`) is required beyond loopback;
//! the password is never logged.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::TryStreamExt as _;

use super::Source;
use super::intake::{Handled, Intake};
use crate::config::SecretString;

/// Keyword of a handled message (flag mode).
pub const DONE: &str = "$HeraldDone";
/// Keyword of a message kept for a person.
pub const KEPT: &str = "$HeraldKept";
/// Messages fetched per command.
const FETCH_BATCH: usize = 200;

/// Where the mailbox is and how to log in.
#[derive(Clone)]
pub struct ImapSettings {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `imaps://` (implicit TLS).
    pub tls: bool,
    /// Login.
    pub user: String,
    /// Password.
    pub password: SecretString,
    /// Folder to read.
    pub mailbox: String,
    /// Folder handled messages go to; `None`: flagged in place.
    pub done_mailbox: Option<String>,
    /// Timeout for connecting and each command.
    pub timeout: Duration,
}

impl std::fmt::Debug for ImapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSettings").field("host", &self.host).field("port", &self.port).field("tls", &self.tls).field("user", &self.user).field("mailbox", &self.mailbox).finish_non_exhaustive()
    }
}

impl ImapSettings {
    /// From `imap_url` (`imaps://host[:port]`, or `imap://` on loopback only).
    pub fn parse(url: &str, user: &str, password: SecretString, mailbox: &str, done_mailbox: Option<&str>) -> anyhow::Result<Self> {
        let u = url::Url::parse(url).map_err(|e| anyhow::anyhow!("[bounces] `imap_url` is not a URL ({e})"))?;
        let tls = match u.scheme() {
            "imaps" => true,
            "imap" if crate::config::is_loopback_host(u.host()) => false,
            "imap" => anyhow::bail!("[bounces] `imap_url`: plain IMAP beyond loopback would send the password in clear; use `imaps://`"),
            s => anyhow::bail!("[bounces] `imap_url`: unknown scheme `{s}`; use `imaps://host[:port]`"),
        };
        let host = u.host_str().ok_or_else(|| anyhow::anyhow!("[bounces] `imap_url` has no host"))?.trim_start_matches('[').trim_end_matches(']').to_string();
        Ok(Self {
            port: u.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            tls,
            user: user.to_string(),
            password,
            mailbox: mailbox.to_string(),
            done_mailbox: done_mailbox.map(str::to_string),
            timeout: Duration::from_secs(60),
        })
    }
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Messages read.
    pub read: usize,
    /// Applied and marked done.
    pub applied: usize,
    /// Kept for a person (malformed, unmatched, not a report).
    pub kept: usize,
}

/// Poll the mailbox once.
pub async fn poll(settings: &ImapSettings, intake: &Intake) -> anyhow::Result<PollSummary> {
    let tcp = tokio::time::timeout(settings.timeout, tokio::net::TcpStream::connect((settings.host.as_str(), settings.port)))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to the bounce mailbox {}:{} timed out", settings.host, settings.port))?
        .with_context(|| format!("cannot connect to the bounce mailbox {}:{}", settings.host, settings.port))?;
    if settings.tls {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(settings.host.clone()).map_err(|e| anyhow::anyhow!("[bounces] `imap_url` host: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.context("TLS with the bounce mailbox")?;
        session_poll(async_imap::Client::new(tls), settings, intake).await
    } else {
        session_poll(async_imap::Client::new(tcp), settings, intake).await
    }
}

async fn session_poll<T>(mut client: async_imap::Client<T>, s: &ImapSettings, intake: &Intake) -> anyhow::Result<PollSummary>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let t = s.timeout;
    tokio::time::timeout(t, client.read_response()).await.context("the bounce mailbox's greeting timed out")?.context("reading the bounce mailbox's greeting")?;
    let mut session = tokio::time::timeout(t, client.login(&s.user, s.password.expose()))
        .await
        .context("logging in to the bounce mailbox timed out")?
        .map_err(|(e, _)| anyhow::anyhow!("logging in to the bounce mailbox as {}: {e}", s.user))?;
    tokio::time::timeout(t, session.select(&s.mailbox)).await.context("selecting the bounce folder timed out")?.with_context(|| format!("selecting `{}`", s.mailbox))?;
    let mut uids: Vec<u32> = tokio::time::timeout(t, session.uid_search(format!("UNKEYWORD {DONE} UNKEYWORD {KEPT}")))
        .await
        .context("searching the bounce folder timed out")?
        .context("searching the bounce folder")?
        .into_iter()
        .collect();
    uids.sort_unstable();
    if let Some(d) = &s.done_mailbox {
        // Created once; "already exists" is fine.
        let _ = tokio::time::timeout(t, session.create(d)).await;
    }
    let mut sum = PollSummary::default();
    for chunk in uids.chunks(FETCH_BATCH) {
        let set = chunk.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let fetched: Vec<(u32, Vec<u8>)> = {
            let stream = tokio::time::timeout(t, session.uid_fetch(&set, "BODY.PEEK[]")).await.context("fetching reports timed out")?.context("fetching reports")?;
            let all: Vec<_> = tokio::time::timeout(t * 4, stream.try_collect::<Vec<_>>()).await.context("fetching reports timed out")?.context("fetching reports")?;
            all.iter().filter_map(|f| Some((f.uid?, f.body()?.to_vec()))).collect()
        };
        let (mut done, mut kept) = (Vec::new(), Vec::new());
        let mut failed = None;
        for (uid, raw) in &fetched {
            sum.read += 1;
            match intake.mail(raw, Source::Imap).await {
                Ok(Handled::Applied(_)) => done.push(*uid),
                Ok(Handled::Malformed(m)) => {
                    tracing::warn!(uid, mailbox = %s.mailbox, problem = %m, "A malformed bounce report; kept in the mailbox for a person.");
                    kept.push(*uid);
                }
                Ok(Handled::Unmatched(m)) => {
                    tracing::warn!(uid, mailbox = %s.mailbox, problem = %m, "A bounce report not tied to a Herald message; kept, not applied.");
                    kept.push(*uid);
                }
                Ok(Handled::NotAReport) => {
                    tracing::info!(uid, mailbox = %s.mailbox, "Not a bounce report; kept.");
                    kept.push(*uid);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        sum.applied += done.len();
        sum.kept += kept.len();
        mark(&mut session, &done, &kept, s).await?;
        if let Some(e) = failed {
            let _ = session.logout().await;
            return Err(e.context("recording a bounce report (the rest are read again next poll)"));
        }
    }
    let _ = tokio::time::timeout(t, session.logout()).await;
    Ok(sum)
}

async fn mark<T>(session: &mut async_imap::Session<T>, done: &[u32], kept: &[u32], s: &ImapSettings) -> anyhow::Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    if !kept.is_empty() {
        let st = session.uid_store(join(kept), format!("+FLAGS.SILENT ({KEPT})")).await.context("flagging kept reports")?;
        st.try_collect::<Vec<_>>().await.context("flagging kept reports")?;
    }
    if done.is_empty() {
        return Ok(());
    }
    // Flag first: a move that fails half-way leaves them flagged, never read twice.
    let st = session.uid_store(join(done), format!("+FLAGS.SILENT (\\Seen {DONE})")).await.context("flagging handled reports")?;
    st.try_collect::<Vec<_>>().await.context("flagging handled reports")?;
    if let Some(d) = &s.done_mailbox {
        session.uid_mv(join(done), d).await.with_context(|| format!("moving handled reports to `{d}`"))?;
    }
    Ok(())
}

/// The daemon's loop: poll, sleep `every`, until `stop` resolves. Errors are logged and the
/// next poll tries again.
pub async fn run(settings: ImapSettings, intake: Arc<Intake>, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match poll(&settings, &intake).await {
            Ok(sum) if sum.read > 0 => tracing::info!(read = sum.read, applied = sum.applied, kept = sum.kept, "Polled the bounce mailbox."),
            Ok(_) => tracing::debug!("Polled the bounce mailbox: nothing new."),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "Polling the bounce mailbox failed; trying again next poll."),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
