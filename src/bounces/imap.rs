//! The bounce mailbox, polled by the daemon over IMAP (async-imap on tokio).
//!
//! Each poll logs in, selects the folder, and reads every message not yet handled
//! (`UNDELETED UNKEYWORD $HeraldDone UNKEYWORD $HeraldKept`) with `BODY.PEEK[]`, so reading
//! marks nothing. Messages are fetched [`FETCH_BATCH`] at a time; each chunk is parsed and
//! matched ([`Intake::prepare_mail`]), its reports stored in **one** transaction
//! ([`Intake::commit`]), and only then are its messages marked:
//! - fully applied (a DSN, an ARF complaint or a `mailto:` unsubscribe tied to its message):
//!   moved to `imap_done_mailbox` (RFC 6851 `UID MOVE`; where the server does not advertise
//!   `MOVE`, `UID COPY`, `\Deleted` and `UID EXPUNGE`, RFC 4315), or flagged
//!   `\Seen $HeraldDone` in place when no done mailbox is set;
//! - malformed, not a report, or naming a recipient that is not tied to a message of ours
//!   (the recipients that are tied are applied): logged and kept in place, flagged
//!   `$HeraldKept` so a person can look and the next poll skips it;
//! - a store error: nothing of the chunk is marked, so the next poll reads it again.
//!
//! A report is keyed by its content, so one handled twice (a crash between the store's commit
//! and the move or flag) changes nothing the second time.
//!
//! TLS (`imaps://`, implicit TLS, RFC 8314) is required beyond loopback, with rustls: the
//! server's certificate must chain to the web PKI roots, or, when `imap_ca_file` is set, to
//! the CA certificates in that PEM file (a mailbox with its own CA). The password is never
//! logged.

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
    /// CA certificates to trust instead of the web PKI roots (`imap_ca_file`).
    pub ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
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
            ca: None,
        })
    }

    /// Trust the CA certificates of the PEM file `path` (`imap_ca_file`) instead of the web
    /// PKI roots. The file is read now: a missing file, or one with no certificate, is an
    /// error naming it.
    pub fn with_ca_file(mut self, path: &std::path::Path) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject as _;
        anyhow::ensure!(self.tls, "[bounces] `imap_ca_file` is set but `imap_url` is plain `imap://`; use `imaps://` or remove `imap_ca_file`");
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| anyhow::anyhow!("[bounces] `imap_ca_file` {}: cannot read it ({e})", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("[bounces] `imap_ca_file` {}: not a PEM file ({e})", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "[bounces] `imap_ca_file` {}: no `-----BEGIN CERTIFICATE-----` in it; give the PEM certificate of the CA that signed the mailbox's certificate", path.display());
        let mut roots = rustls::RootCertStore::empty();
        let (_, bad) = roots.add_parsable_certificates(certs.iter().cloned());
        anyhow::ensure!(bad == 0, "[bounces] `imap_ca_file` {}: {bad} certificate(s) in it are not valid X.509 CA certificates", path.display());
        self.ca = Some(certs);
        Ok(self)
    }

    /// The TLS client config: the web PKI roots, or the `imap_ca_file` CAs alone.
    fn tls_config(&self) -> rustls::ClientConfig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let roots = match &self.ca {
            Some(certs) => {
                let mut r = rustls::RootCertStore::empty();
                r.add_parsable_certificates(certs.iter().cloned());
                r
            }
            None => rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
    }
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Messages read.
    pub read: usize,
    /// Applied in full and moved or marked done.
    pub applied: usize,
    /// Kept for a person (malformed, unmatched, not a report, partly applied).
    pub kept: usize,
    /// Of the kept: DSNs whose matched recipients were applied while others were unmatched.
    pub partial: usize,
}

/// Poll the mailbox once.
pub async fn poll(settings: &ImapSettings, intake: &Intake) -> anyhow::Result<PollSummary> {
    let tcp = tokio::time::timeout(settings.timeout, tokio::net::TcpStream::connect((settings.host.as_str(), settings.port)))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to the bounce mailbox {}:{} timed out", settings.host, settings.port))?
        .with_context(|| format!("cannot connect to the bounce mailbox {}:{}", settings.host, settings.port))?;
    if settings.tls {
        let name = rustls::pki_types::ServerName::try_from(settings.host.clone()).map_err(|e| anyhow::anyhow!("[bounces] `imap_url` host: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(settings.tls_config()));
        let tls = tokio::time::timeout(settings.timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| anyhow::anyhow!("TLS with the bounce mailbox {}:{} timed out", settings.host, settings.port))?
            .map_err(|e| tls_error(e, settings))?;
        session_poll(async_imap::Client::new(tls), settings, intake).await
    } else {
        session_poll(async_imap::Client::new(tcp), settings, intake).await
    }
}

/// A TLS handshake failure, said plainly: an untrusted certificate names the fix.
fn tls_error(e: std::io::Error, s: &ImapSettings) -> anyhow::Error {
    let untrusted = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    let trust = if s.ca.is_some() { "the CA in `imap_ca_file`" } else { "the web PKI roots" };
    if untrusted {
        anyhow::anyhow!(
            "TLS with the bounce mailbox {}:{}: the server's certificate is refused ({e}); it must be valid for `{}` and signed by {trust}. Nothing was read. If the mailbox uses its own CA, set `imap_ca_file` to that CA's PEM certificate",
            s.host,
            s.port,
            s.host
        )
    } else {
        anyhow::anyhow!("TLS with the bounce mailbox {}:{} failed ({e}); nothing was read", s.host, s.port)
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
    let caps = tokio::time::timeout(t, session.capabilities()).await.context("asking the bounce mailbox's capabilities timed out")?.context("asking the bounce mailbox's capabilities")?;
    let how = Marking { has_move: caps.has_str("MOVE"), has_uidplus: caps.has_str("UIDPLUS") };
    tokio::time::timeout(t, session.select(&s.mailbox)).await.context("selecting the bounce folder timed out")?.with_context(|| format!("selecting `{}`", s.mailbox))?;
    let mut uids: Vec<u32> = tokio::time::timeout(t, session.uid_search(format!("UNDELETED UNKEYWORD {DONE} UNKEYWORD {KEPT}")))
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
        let set = join(chunk);
        let fetched: Vec<(u32, Vec<u8>)> = {
            let stream = tokio::time::timeout(t, session.uid_fetch(&set, "BODY.PEEK[]")).await.context("fetching reports timed out")?.context("fetching reports")?;
            let all: Vec<_> = tokio::time::timeout(t * 4, stream.try_collect::<Vec<_>>()).await.context("fetching reports timed out")?.context("fetching reports")?;
            all.iter().filter_map(|f| Some((f.uid?, f.body()?.to_vec()))).collect()
        };
        // Parse and match the chunk, then store it in one transaction; mark only after.
        let mut matcher = intake.matcher();
        let mut prepared = Vec::with_capacity(fetched.len());
        for (_, raw) in &fetched {
            prepared.push(intake.prepare_mail(&mut matcher, raw).await.context("matching a bounce report (the chunk is read again next poll)")?);
        }
        drop(matcher);
        let handled = match intake.commit(Source::Imap, prepared).await {
            Ok(h) => h,
            Err(e) => {
                let _ = tokio::time::timeout(t, session.logout()).await;
                return Err(e.context("recording bounce reports (none of this chunk is marked; it is read again next poll)"));
            }
        };
        let (mut done, mut kept) = (Vec::new(), Vec::new());
        for ((uid, _), h) in fetched.iter().zip(&handled) {
            sum.read += 1;
            match h {
                h if h.fully_applied() => done.push(*uid),
                Handled::Malformed(m) => {
                    tracing::warn!(uid, mailbox = %s.mailbox, problem = %m, "A malformed bounce report; kept in the mailbox for a person.");
                    kept.push(*uid);
                }
                Handled::Reports { applied, unmatched } => {
                    let addrs: Vec<&str> = unmatched.iter().map(|u| u.email.as_deref().unwrap_or("-")).collect();
                    if applied.is_empty() {
                        tracing::warn!(uid, mailbox = %s.mailbox, unmatched = ?addrs, "A bounce report not tied to a Herald message; kept, not applied.");
                    } else {
                        sum.partial += 1;
                        tracing::warn!(uid, mailbox = %s.mailbox, applied = applied.len(), unmatched = ?addrs, "A bounce report applied for its recipients tied to a Herald message; the others are not applied; kept for a person.");
                    }
                    kept.push(*uid);
                }
                Handled::NotAReport => {
                    tracing::info!(uid, mailbox = %s.mailbox, "Not a bounce report; kept.");
                    kept.push(*uid);
                }
            }
        }
        sum.applied += done.len();
        sum.kept += kept.len();
        how.mark(&mut session, &done, &kept, s).await?;
    }
    let _ = tokio::time::timeout(t, session.logout()).await;
    Ok(sum)
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// How handled messages leave the folder, from the server's capabilities.
struct Marking {
    /// `MOVE` (RFC 6851) is advertised.
    has_move: bool,
    /// `UIDPLUS` (RFC 4315: `UID EXPUNGE`) is advertised.
    has_uidplus: bool,
}

impl Marking {
    async fn mark<T>(&self, session: &mut async_imap::Session<T>, done: &[u32], kept: &[u32], s: &ImapSettings) -> anyhow::Result<()>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
    {
        let t = s.timeout;
        if !kept.is_empty() {
            let st = tokio::time::timeout(t, session.uid_store(join(kept), format!("+FLAGS.SILENT ({KEPT})"))).await.context("flagging kept reports timed out")?.context("flagging kept reports")?;
            st.try_collect::<Vec<_>>().await.context("flagging kept reports")?;
        }
        if done.is_empty() {
            return Ok(());
        }
        let set = join(done);
        let Some(d) = &s.done_mailbox else {
            let st = tokio::time::timeout(t, session.uid_store(&set, format!("+FLAGS.SILENT (\\Seen {DONE})"))).await.context("flagging handled reports timed out")?.context("flagging handled reports")?;
            st.try_collect::<Vec<_>>().await.context("flagging handled reports")?;
            return Ok(());
        };
        if self.has_move {
            // Atomic on the server: the messages are in `d` or still here, never both.
            tokio::time::timeout(t, session.uid_mv(&set, d)).await.context("moving handled reports timed out")?.with_context(|| format!("moving handled reports to `{d}`"))?;
            tracing::debug!(count = done.len(), to = %d, "Moved handled bounce reports (MOVE).");
            return Ok(());
        }
        // RFC 3501 without MOVE: copy, mark the originals deleted, expunge them. A crash after
        // the copy leaves a second copy in `d` next poll (the reports themselves change
        // nothing twice: they are keyed).
        tokio::time::timeout(t, session.uid_copy(&set, d)).await.context("copying handled reports timed out")?.with_context(|| format!("copying handled reports to `{d}`"))?;
        let st = tokio::time::timeout(t, session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)")).await.context("deleting moved reports timed out")?.context("deleting moved reports")?;
        st.try_collect::<Vec<_>>().await.context("deleting moved reports")?;
        if self.has_uidplus {
            let ex = tokio::time::timeout(t, session.uid_expunge(&set)).await.context("expunging moved reports timed out")?.context("expunging moved reports")?;
            ex.try_collect::<Vec<_>>().await.context("expunging moved reports")?;
        } else {
            // Without UIDPLUS, EXPUNGE also removes what another client marked \Deleted:
            // that is what the other client asked for.
            let ex = tokio::time::timeout(t, session.expunge()).await.context("expunging moved reports timed out")?.context("expunging moved reports")?;
            ex.try_collect::<Vec<_>>().await.context("expunging moved reports")?;
        }
        tracing::debug!(count = done.len(), to = %d, uidplus = self.has_uidplus, "Moved handled bounce reports (COPY, \\Deleted, EXPUNGE: the server has no MOVE).");
        Ok(())
    }
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
