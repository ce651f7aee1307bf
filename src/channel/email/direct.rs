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
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

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

    /// Send one message on a pooled (or new) connection. A connection that failed is closed;
    /// a healthy one goes back to the pool.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Response, DirectError> {
        let mut conn = match self.take_idle() {
            Some(c) => c,
            None => tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| DirectError::Connect(format!("no SMTP greeting from {}:{} in time", self.host, self.port)))??,
        };
        let r = match tokio::time::timeout(self.timeout, conn.send(envelope, message)).await {
            Ok(r) => r.map_err(DirectError::Smtp),
            Err(_) => {
                // Mid-dialogue: the connection's state is unknown, never reuse it.
                return Err(DirectError::Connect(format!("the SMTP server at {}:{} did not answer in time", self.host, self.port)));
            }
        };
        if !conn.has_broken() {
            let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if g.len() < self.max_idle {
                g.push((conn, Instant::now()));
            }
        }
        r
    }

    /// Open a session and say NOOP (healthcheck).
    pub async fn check(&self) -> Result<(), DirectError> {
        let mut c = self.connect().await?;
        let ok = c.test_connected().await;
        let _ = c.quit().await;
        if ok { Ok(()) } else { Err(DirectError::Connect("the SMTP server did not answer NOOP".into())) }
    }
}
