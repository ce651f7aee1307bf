//! A small pool of lettre SMTP connections over sockets Herald opens itself, with `TCP_NODELAY`.
//!
//! Why: lettre writes a message body and then the final `\r\n.\r\n` as two writes on a socket
//! without `TCP_NODELAY`. Nagle's algorithm holds the 5-byte terminator until the body is
//! acknowledged, and the server delays that ACK (about 40 ms on Linux), so every message costs
//! ~40 ms per connection however fast the server is. lettre's own pool offers no way to set the
//! option, so for `smtp://` URLs (plain, or STARTTLS with `?tls=required`) Herald connects the
//! socket, hands it to [`AsyncSmtpConnection::connect_with_transport`], and pools the
//! connections here. `smtps://` (implicit TLS) keeps lettre's pooled transport.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::engine::Gate;
use crate::channel::DeliveryError;

/// An idle connection older than this is closed rather than reused (servers drop idle
/// sessions; RFC 5321 suggests 5 minutes, many use less).
const MAX_IDLE: Duration = Duration::from_secs(20);

/// Why a send through the pool failed.
#[derive(Debug)]
pub enum DirectError {
    /// The server answered (or lettre failed) during the SMTP dialogue.
    Smtp(lettre::transport::smtp::Error),
    /// No connection: refused, unreachable, or no answer within the timeout.
    Connect(String),
    /// The gate did not open (the previous outcome could not be recorded): nothing was sent.
    Stopped(DeliveryError),
}

/// The pool.
pub struct DirectPool {
    host: String,
    port: u16,
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl DirectPool {
    /// A pool for `host:port`; `starttls` upgrades every session; `credentials` authenticate.
    pub fn new(host: &str, port: u16, starttls: Option<TlsParameters>, credentials: Option<Credentials>, timeout: Duration, max_idle: usize) -> Self {
        Self {
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            starttls,
            credentials,
            hello: ClientId::default(),
            timeout,
            max_idle: max_idle.max(1),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((c, since)) = g.pop() {
            if since.elapsed() < MAX_IDLE && !c.has_broken() {
                return Some(c);
            }
        }
        None
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, DirectError> {
        let addr = (self.host.as_str(), self.port);
        let stream = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| DirectError::Connect(format!("connecting to {}:{} timed out", self.host, self.port)))?
            .map_err(|e| DirectError::Connect(format!("cannot connect to {}:{}: {e}", self.host, self.port)))?;
        stream.set_nodelay(true).map_err(|e| DirectError::Connect(format!("TCP_NODELAY: {e}")))?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await.map_err(DirectError::Smtp)?;
        if let Some(tls) = &self.starttls {
            conn.starttls(tls.clone(), &self.hello).await.map_err(DirectError::Smtp)?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await.map_err(DirectError::Smtp)?;
        }
        Ok(conn)
    }

    fn put_back(&self, conn: AsyncSmtpConnection) {
        if !conn.has_broken() {
            let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if g.len() < self.max_idle {
                g.push((conn, Instant::now()));
            }
        }
    }

    /// Send one message on a pooled (or new) connection: `MAIL`, `RCPT`, `DATA`, then — once
    /// `gate` opens — the body. The body is the point after which the message may have been
    /// delivered; until then nothing reaches anyone, so the envelope overlaps the commit of the
    /// worker's previous outcome. A refused command resets the session (`RSET`) and keeps the
    /// connection; a connection that failed or timed out mid-dialogue is closed.
    pub async fn send(&self, envelope: &Envelope, message: &[u8], gate: Gate) -> Result<Response, DirectError> {
        let mut conn = match self.take_idle() {
            Some(c) => c,
            None => tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| DirectError::Connect(format!("no SMTP greeting from {}:{} in time", self.host, self.port)))??,
        };
        let no_answer = || DirectError::Connect(format!("the SMTP server at {}:{} did not answer in time", self.host, self.port));
        // The envelope. Mid-dialogue on a timeout: the connection's state is unknown, it drops.
        let envelope_sent = tokio::time::timeout(self.timeout, async {
            let mut params = Vec::new();
            if envelope.from().into_iter().chain(envelope.to()).any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii()) {
                if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                    return Ok(Err(DirectError::Connect("the server does not support SMTPUTF8, needed for a non-ASCII address".into())));
                }
                params.push(MailParameter::SmtpUtfEight);
            }
            if !message.is_ascii() {
                if !conn.server_info().supports_feature(Extension::EightBitMime) {
                    return Ok(Err(DirectError::Connect("the server does not support 8BITMIME, needed for this message".into())));
                }
                params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
            }
            conn.command(Mail::new(envelope.from().cloned(), params)).await?;
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), Vec::new())).await?;
            }
            conn.command(Data).await?;
            Ok::<_, lettre::transport::smtp::Error>(Ok(()))
        })
        .await;
        match envelope_sent {
            Err(_) => return Err(no_answer()),
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                self.reset(conn).await;
                return Err(e);
            }
            Ok(Err(e)) => {
                // A refusal (4xx/5xx) leaves the session usable after RSET; anything else
                // (a network error) does not.
                if e.status().is_some() {
                    self.reset(conn).await;
                }
                return Err(DirectError::Smtp(e));
            }
        }
        // After `354`: only the body remains. If the previous outcome cannot be recorded, drop
        // the connection mid-DATA; the server discards the transaction.
        if let Err(e) = gate.wait().await {
            return Err(DirectError::Stopped(e));
        }
        let r = match tokio::time::timeout(self.timeout, conn.message(message)).await {
            Ok(r) => r.map_err(DirectError::Smtp),
            Err(_) => return Err(no_answer()),
        };
        // After the final reply the transaction is over, accepted or refused: the session is
        // ready for the next one unless the network failed.
        if r.is_ok() || matches!(&r, Err(DirectError::Smtp(e)) if e.status().is_some()) {
            self.put_back(conn);
        }
        r
    }

    /// `RSET` after a refused command, and keep the connection if the server agrees.
    async fn reset(&self, mut conn: AsyncSmtpConnection) {
        if let Ok(Ok(_)) = tokio::time::timeout(self.timeout, conn.command(Rset)).await {
            self.put_back(conn);
        }
    }

    /// Open a session and say NOOP (healthcheck).
    pub async fn check(&self) -> Result<(), DirectError> {
        let mut c = self.connect().await?;
        let ok = c.test_connected().await;
        let _ = c.quit().await;
        if ok { Ok(()) } else { Err(DirectError::Connect("the SMTP server did not answer NOOP".into())) }
    }
}
