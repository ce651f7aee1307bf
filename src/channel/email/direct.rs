//! A small pool of lettre SMTP connections over sockets Herald opens itself, with `TCP_NODELAY`.
//!
//! Why: lettre writes a message body and then the final `\r\n.\r\n` as two writes on a socket
//! without `TCP_NODELAY`. Nagle's algorithm holds the 5-byte terminator until the body is
//! acknowledged, and the server delays that ACK (about 40 ms on Linux), so every message costs
//! ~40 ms per connection however fast the server is. lettre's own pool offers no way to set the
//! option, so for `smtp://` URLs (plain, or STARTTLS with `?tls=required`) Herald connects the
//! socket, hands it to [`AsyncSmtpConnection::connect_with_transport`], and pools the
//! connections here. `smtps://` (implicit TLS) keeps lettre's pooled transport.
//!
//! **Fewer round trips.** lettre sends `MAIL`, each `RCPT` and `DATA` one at a time, waiting
//! for each reply, and pushes the body through a byte-at-a-time dot-stuffing codec, then the
//! terminator as a second write. When the server advertises `PIPELINING` (RFC 2920), Herald
//! sends the envelope as one group and reads the replies in order; and it sends the body,
//! dot-stuffed here, together with its terminator as one write. Both go through lettre's own
//! `command` and `read_response`, so the session stays lettre's: one round trip for the
//! envelope and one for the body, where lettre's `send` takes four.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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
    idle: Mutex<Vec<(Conn, Instant)>>,
    /// Whether the server's last greeting offered 8BITMIME: 0 not yet known, 1 no, 2 yes.
    eight_bit_mime: std::sync::atomic::AtomicU8,
    /// The SIZE (RFC 1870) the server's last greeting advertised; 0 when none.
    size_limit: std::sync::atomic::AtomicU64,
}

/// One session, and whether its server pipelines.
struct Conn {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
    /// The plain TCP socket under `smtp`, for writing a body ahead of its gate (see
    /// [`DirectPool::finish`]). `None` once the session is encrypted: bytes must then go
    /// through lettre's TLS stream.
    wire: Option<Arc<TcpStream>>,
}

/// A TCP socket lettre's connection reads and writes through, while Herald keeps a handle to
/// write to it directly between lettre's commands. Both sides only use `&TcpStream` (tokio's
/// readiness API), and never at the same time: a session is one task's.
#[derive(Debug)]
struct Wire(Arc<TcpStream>);

impl AsyncRead for Wire {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // lettre shuts a connection down by dropping it; the socket closes with the last handle.
        Poll::Ready(Ok(()))
    }
}

impl AsyncTokioStream for Wire {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

/// Write all of `bytes` to `tcp`, as lettre would, but without reading a reply.
async fn write_all(tcp: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        tcp.writable().await?;
        match tcp.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bytes already in SMTP form (CRLF-terminated commands, or a dot-stuffed body with its
/// terminator), handed to lettre's `command`, which writes a `Display` in one write and then
/// reads one reply.
struct Raw<'a>(&'a str);

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `message` dot-stuffed (RFC 5321 §4.5.2: a line that starts with `.` gets another), as
/// lettre's codec would send it; borrowed when no line needs it (the usual case).
fn dot_stuffed(message: &[u8]) -> Cow<'_, [u8]> {
    let leading = message.first() == Some(&b'.');
    if !leading && memchr::memmem::find(message, b"\r\n.").is_none() {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + 16);
    if leading {
        out.push(b'.');
    }
    let mut rest = message;
    while let Some(i) = memchr::memmem::find(rest, b"\r\n.") {
        out.extend_from_slice(&rest[..i + 3]);
        out.push(b'.');
        rest = &rest[i + 3..];
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

/// The end-of-data sequence: CRLF, `.`, CRLF.
const END_OF_DATA: &str = "\r\n.\r\n";

/// `message` dot-stuffed and followed by the end-of-data line, exactly as lettre's codec and
/// `message` would send it. `None` if the message is not UTF-8 (lettre's own path sends those).
fn data_block(message: &[u8]) -> Option<String> {
    std::str::from_utf8(message).ok()?;
    let stuffed = dot_stuffed(message);
    let mut out = String::with_capacity(stuffed.len() + END_OF_DATA.len());
    out.push_str(std::str::from_utf8(&stuffed).ok()?);
    out.push_str(END_OF_DATA);
    Some(out)
}

/// Whether an EHLO reply lists `PIPELINING`.
/// The `SIZE n` an EHLO reply advertises (0, or none, means no stated limit).
fn advertised_size(ehlo: &Response) -> Option<u64> {
    ehlo.message().skip(1).find_map(|line| {
        let mut w = line.split_whitespace();
        w.next().filter(|k| k.eq_ignore_ascii_case("SIZE"))?;
        w.next()?.parse::<u64>().ok().filter(|n| *n > 0)
    })
}

fn advertises_pipelining(ehlo: &Response) -> bool {
    ehlo.message().skip(1).any(|line| line.split_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING")))
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
            eight_bit_mime: std::sync::atomic::AtomicU8::new(0),
            size_limit: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether messages may carry `8bit` parts: the server offered 8BITMIME when last asked.
    /// Not known yet, it connects once (and pools the connection for the send that follows).
    /// If that fails it answers no, without trying again here: the send's own connection
    /// attempt reports the failure, and the first greeting that comes sets the answer.
    pub async fn eight_bit_mime(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.eight_bit_mime.load(Relaxed) == 0 {
            match tokio::time::timeout(self.timeout, self.connect()).await {
                Ok(Ok(c)) => self.put_back(c),
                _ => {
                    let _ = self.eight_bit_mime.compare_exchange(0, 1, Relaxed, Relaxed);
                }
            }
        }
        self.eight_bit_mime.load(Relaxed) == 2
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((c, since)) = g.pop() {
            if since.elapsed() < MAX_IDLE && !c.smtp.has_broken() {
                return Some(c);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Conn, DirectError> {
        let addr = (self.host.as_str(), self.port);
        let stream = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| DirectError::Connect(format!("connecting to {}:{} timed out", self.host, self.port)))?
            .map_err(|e| DirectError::Connect(format!("cannot connect to {}:{}: {e}", self.host, self.port)))?;
        stream.set_nodelay(true).map_err(|e| DirectError::Connect(format!("TCP_NODELAY: {e}")))?;
        let mut wire = Some(Arc::new(stream));
        let tcp = Wire(wire.clone().expect("just set"));
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await.map_err(DirectError::Smtp)?;
        if let Some(tls) = &self.starttls {
            conn.starttls(tls.clone(), &self.hello).await.map_err(DirectError::Smtp)?;
            wire = None;
        }
        // lettre keeps only the extensions it uses from its EHLO; ask again (before AUTH,
        // which some servers forget on EHLO) to learn whether the server pipelines.
        let ehlo = conn.command(Ehlo::new(self.hello.clone())).await.map_err(DirectError::Smtp)?;
        let pipelining = advertises_pipelining(&ehlo);
        self.size_limit.store(advertised_size(&ehlo).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        let eight_bit = conn.server_info().supports_feature(Extension::EightBitMime);
        self.eight_bit_mime.store(if eight_bit { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await.map_err(DirectError::Smtp)?;
        }
        Ok(Conn { smtp: conn, pipelining, wire })
    }

    fn put_back(&self, conn: Conn) {
        if !conn.smtp.has_broken() {
            let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if g.len() < self.max_idle {
                g.push((conn, Instant::now()));
            }
        }
    }

    /// Start a transaction: a pooled (or new) connection and `MAIL`, `RCPT`, `DATA`, answered
    /// `354`. Nothing reaches anyone until [`DirectPool::finish`] sends the body, so the envelope
    /// may overlap the commit of the worker's previous outcome. A refused command resets the
    /// session (`RSET`) and keeps the connection; one that failed or timed out mid-dialogue is
    /// closed.
    pub async fn open(&self, envelope: &Envelope, message: &[u8]) -> Result<Open, DirectError> {
        let mut conn = match self.take_idle() {
            Some(c) => c,
            None => tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| DirectError::Connect(format!("no SMTP greeting from {}:{} in time", self.host, self.port)))??,
        };
        let group = match envelope_group(&conn, envelope, message) {
            Ok(g) => g,
            Err(e) => {
                self.put_back(conn);
                return Err(e);
            }
        };
        let answered = async {
            if conn.pipelining {
                read_envelope_replies(&mut conn, envelope.to().len() + 2, Some(&group)).await
            } else {
                send_envelope_stepwise(&mut conn, envelope, &group).await
            }
        };
        match tokio::time::timeout(self.timeout, answered).await {
            // Mid-dialogue on a timeout: the connection's state is unknown, it drops.
            Err(_) => Err(self.no_answer()),
            Ok(Ok(())) => Ok(Open { conn }),
            Ok(Err(Refused::Reset(e))) => {
                self.reset(conn).await;
                Err(e)
            }
            Ok(Err(Refused::Drop(e))) => Err(e),
        }
    }

    /// Send an open transaction's body, and read the server's verdict. Its end-of-data line,
    /// after which the message may reach the recipient, goes only once `gate` opens.
    ///
    /// **Ahead of the gate.** On a plain TCP session, the dot-stuffed body goes out at once,
    /// while the worker's previous outcome is still being committed; only the end-of-data
    /// sequence (CRLF `.` CRLF) waits for the gate. Until then the server holds an unfinished
    /// transaction, which it discards if the connection closes (RFC 5321 §4.1.1.4), so the
    /// crash bound does not change, and the body's transfer and the server's reading of it
    /// overlap the commit. On an encrypted session the whole body waits for the gate (its bytes
    /// must go through lettre's TLS stream).
    ///
    /// With `next` (another message's envelope and bytes) and a server that pipelines, that
    /// message's `MAIL`/`RCPT`/`DATA` go in the same write, after the body's end-of-data line
    /// (RFC 2920 lets message content start a group), and their replies are read after the
    /// body's: the second value is then that transaction, open or refused, and its own call
    /// skips a round trip. Nothing of `next` reaches anyone before its own body is sent.
    pub async fn finish(&self, open: Open, message: &[u8], gate: Gate, next: Option<(&Envelope, &[u8])>) -> (Result<Response, DirectError>, Option<Result<Open, DirectError>>) {
        let mut conn = open.conn;
        // What goes once the gate opens: the end-of-data sequence, the body having gone ahead
        // (plain TCP, gate still shut), or the whole data block.
        let mut tail = match conn.wire.clone().filter(|_| !gate.is_settled()) {
            Some(wire) => {
                // The body as it is, dot-stuffed, without the CRLF that ends its last line: the
                // server cannot see the end-of-data sequence before the tail completes it.
                let body = dot_stuffed(message);
                match tokio::time::timeout(self.timeout, write_all(&wire, &body)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return (Err(DirectError::Connect(format!("writing to {}:{} failed: {e}", self.host, self.port))), None),
                    Err(_) => return (Err(self.no_answer()), None),
                }
                String::from(END_OF_DATA)
            }
            None => match data_block(message) {
                Some(block) => block,
                None => {
                    // Not UTF-8, and not sent ahead: lettre's own path, without a next
                    // transaction, once the gate opens.
                    if let Err(e) = gate.wait().await {
                        return (Err(DirectError::Stopped(e)), None);
                    }
                    let r = match tokio::time::timeout(self.timeout, conn.smtp.message(message)).await {
                        Ok(r) => r.map_err(DirectError::Smtp),
                        Err(_) => return (Err(self.no_answer()), None),
                    };
                    if r.is_ok() || matches!(&r, Err(DirectError::Smtp(e)) if e.status().is_some()) {
                        self.put_back(conn);
                    }
                    return (r, None);
                }
            },
        };
        // If the previous outcome cannot be recorded, drop the connection mid-DATA, before
        // the end-of-data sequence; the server discards the transaction.
        if let Err(e) = gate.wait().await {
            return (Err(DirectError::Stopped(e)), None);
        }
        let next = next.filter(|_| conn.pipelining).and_then(|(env, msg)| envelope_group(&conn, env, msg).ok().map(|g| (env.to().len() + 2, g)));
        if let Some((_, group)) = &next {
            tail.push_str(group);
        }
        let sent = async {
            let r = conn.smtp.command(Raw(&tail)).await;
            // After the final reply the transaction is over, accepted or refused: the session
            // is ready for the next one unless the network failed.
            let usable = r.is_ok() || r.as_ref().err().is_some_and(|e| e.status().is_some());
            let next = match &next {
                Some((replies, _)) if usable => Some(read_envelope_replies(&mut conn, *replies, None).await),
                _ => None,
            };
            (r, usable, next)
        };
        let (r, usable, next) = match tokio::time::timeout(self.timeout, sent).await {
            Ok(x) => x,
            Err(_) => return (Err(self.no_answer()), None),
        };
        let r = r.map_err(DirectError::Smtp);
        let next = match next {
            None => {
                if usable {
                    self.put_back(conn);
                }
                None
            }
            Some(Ok(())) => Some(Ok(Open { conn })),
            Some(Err(Refused::Reset(e))) => {
                self.reset(conn).await;
                Some(Err(e))
            }
            Some(Err(Refused::Drop(e))) => Some(Err(e)),
        };
        (r, next)
    }

    fn no_answer(&self) -> DirectError {
        DirectError::Connect(format!("the SMTP server at {}:{} did not answer in time", self.host, self.port))
    }

    /// `RSET` after a refused command, and keep the connection if the server agrees.
    async fn reset(&self, mut conn: Conn) {
        if let Ok(Ok(_)) = tokio::time::timeout(self.timeout, conn.smtp.command(Rset)).await {
            self.put_back(conn);
        }
    }

    /// The message size limit the server advertises (EHLO `SIZE`), asking it when no session
    /// has yet; `None` when it states none or can't be reached now.
    pub async fn size_limit(&self) -> Option<u64> {
        if self.eight_bit_mime.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            let conn = self.connect().await.ok()?;
            self.put_back(conn);
        }
        Some(self.size_limit.load(std::sync::atomic::Ordering::Relaxed)).filter(|n| *n > 0)
    }

    /// Open a session and say NOOP (healthcheck).
    pub async fn check(&self) -> Result<(), DirectError> {
        let mut c = self.connect().await?.smtp;
        let ok = c.test_connected().await;
        let _ = c.quit().await;
        if ok { Ok(()) } else { Err(DirectError::Connect("the SMTP server did not answer NOOP".into())) }
    }
}

/// How an envelope failed: refused in a way `RSET` recovers from, or with the session lost.
enum Refused {
    Reset(DirectError),
    Drop(DirectError),
}

/// A transaction the server has opened (`354`): it waits for the body.
pub struct Open {
    conn: Conn,
}

impl Open {
    /// Whether the session pipelines, so [`DirectPool::finish`] can start a next transaction.
    pub fn pipelining(&self) -> bool {
        self.conn.pipelining
    }
}

/// `MAIL`, each `RCPT` and `DATA`, as the text of one group. Refused before anything is sent
/// when the message needs an extension the server lacks.
fn envelope_group(conn: &Conn, envelope: &Envelope, message: &[u8]) -> Result<String, DirectError> {
    let mut params = Vec::new();
    if envelope.from().into_iter().chain(envelope.to()).any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii()) {
        if !conn.smtp.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(DirectError::Connect("the server does not support SMTPUTF8, needed for a non-ASCII address".into()));
        }
        params.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !conn.smtp.server_info().supports_feature(Extension::EightBitMime) {
            return Err(DirectError::Connect("the server does not support 8BITMIME, needed for this message".into()));
        }
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mut group = Mail::new(envelope.from().cloned(), params).to_string();
    for to in envelope.to() {
        group.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
    }
    group.push_str(&Data.to_string());
    Ok(group)
}

/// A refusal (4xx/5xx) leaves the session usable after `RSET`; anything else (a network
/// error) does not.
fn refused(e: lettre::transport::smtp::Error) -> Refused {
    if e.status().is_some() { Refused::Reset(DirectError::Smtp(e)) } else { Refused::Drop(DirectError::Smtp(e)) }
}

/// Without PIPELINING: the group's commands one at a time, each waiting for its reply.
async fn send_envelope_stepwise(conn: &mut Conn, envelope: &Envelope, group: &str) -> Result<(), Refused> {
    let commands: Vec<&str> = group.split_inclusive("\r\n").collect();
    debug_assert_eq!(commands.len(), envelope.to().len() + 2);
    for c in commands {
        conn.smtp.command(Raw(c)).await.map_err(refused)?;
    }
    Ok(())
}

/// RFC 2920: the replies to a `MAIL`/`RCPT`…/`DATA` group (`replies` of them), read in order so
/// the session stays in step; the first refusal is the answer. With `group`, it is written
/// first; without, it already went out (after a body). `Ok` means `DATA` was answered `354`.
async fn read_envelope_replies(conn: &mut Conn, replies: usize, group: Option<&str>) -> Result<(), Refused> {
    let mut first_refusal = None;
    let mut data_accepted = false;
    for i in 0..replies {
        let reply = match (i, group) {
            (0, Some(g)) => conn.smtp.command(Raw(g)).await,
            _ => conn.smtp.read_response().await,
        };
        match reply {
            Ok(_) => data_accepted = i + 1 == replies,
            Err(e) if e.status().is_some() => {
                first_refusal.get_or_insert(e);
            }
            Err(e) => return Err(Refused::Drop(DirectError::Smtp(e))),
        }
    }
    match first_refusal {
        None => Ok(()),
        // Some recipient refused but DATA accepted: the session waits for a body that must not
        // come. Closing the connection makes the server drop the transaction.
        Some(e) if data_accepted => Err(Refused::Drop(DirectError::Smtp(e))),
        Some(e) => Err(Refused::Reset(DirectError::Smtp(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::smtp::SmtpServer;
    use proptest::prelude::*;

    /// lettre's `ClientCodec` transparency, byte by byte: the oracle `data_block` must match.
    fn lettre_codec(frame: &[u8]) -> Vec<u8> {
        #[derive(Clone, Copy)]
        enum S {
            Middle,
            Starting,
            Start,
        }
        let mut s = S::Start;
        let mut out = Vec::new();
        for &b in frame {
            out.push(b);
            s = match (b, s) {
                (b'\r', _) => S::Starting,
                (b'\n', S::Starting) => S::Start,
                (b'.', S::Start) => {
                    out.push(b'.');
                    S::Middle
                }
                (_, S::Starting | S::Start) => S::Middle,
                (_, S::Middle) => S::Middle,
            };
        }
        out.extend_from_slice(b"\r\n.\r\n");
        out
    }

    #[test]
    fn dot_stuffing_doubles_a_leading_dot_on_every_line() {
        assert_eq!(data_block(b".a\r\n.\r\nb\n.c\r\n..").unwrap(), "..a\r\n..\r\nb\n.c\r\n...\r\n.\r\n");
        assert_eq!(data_block(b"plain").unwrap(), "plain\r\n.\r\n");
        assert!(data_block(&[b'a', 0xff]).is_none(), "not UTF-8: lettre's own path sends it");
    }

    async fn until(what: impl Fn() -> bool) {
        for _ in 0..500 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the server never saw what the test waits for");
    }

    const BODY: &[u8] = b"Subject: hello\r\n\r\nfirst line\r\n.a line with a leading dot\r\nlast line";
    /// The whole lines of `BODY` as sent (dot-stuffed): all but its last, which has no CRLF
    /// until the end-of-data sequence gives it one.
    const SENT_LINES: usize = b"Subject: hello\r\n\r\nfirst line\r\n..a line with a leading dot\r\n".len();

    fn envelope() -> Envelope {
        Envelope::new(Some("news@example.com".parse().unwrap()), vec!["reader@example.org".parse().unwrap()]).unwrap()
    }

    /// `finish` on a transaction with the sandbox SMTP server, behind a gate that is still
    /// shut, once the server has read the body's lines: the server, the gate's opener, and the
    /// call (its reply code, or whether it stopped at the gate; and whether it started a next
    /// transaction).
    async fn finish_behind_a_shut_gate() -> (SmtpServer, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<(Result<u16, bool>, bool)>) {
        let server = SmtpServer::start().await.unwrap();
        let pool = DirectPool::new("127.0.0.1", server.addr().port(), None, None, Duration::from_secs(5), 2);
        let open = pool.open(&envelope(), BODY).await.unwrap();
        let (gate, opener) = Gate::pending();
        let call = tokio::spawn(async move {
            let (sent, next) = pool.finish(open, BODY, gate, None).await;
            (sent.map(|r| u16::from(r.code())).map_err(|e| matches!(e, DirectError::Stopped(_))), next.is_some())
        });
        until(|| server.unfinished_data_octets() == SENT_LINES).await;
        (server, opener, call)
    }

    /// The body goes out while the gate is shut; the end-of-data sequence, after which the
    /// message is delivered, only once it opens.
    #[tokio::test]
    async fn the_body_goes_ahead_of_the_gate_and_the_end_of_data_line_waits_for_it() {
        let (server, opener, call) = finish_behind_a_shut_gate().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(server.message_count(), 0, "no end-of-data sequence before the gate opens");
        assert_eq!(server.unfinished_data_octets(), SENT_LINES);
        opener.send(()).unwrap();
        assert_eq!(call.await.unwrap(), (Ok(250), false));
        assert_eq!(server.message_count(), 1);
        assert_eq!(server.messages()[0].data, b"Subject: hello\r\n\r\nfirst line\r\n.a line with a leading dot\r\nlast line\r\n");
        assert_eq!(server.unfinished_data_octets(), 0);
    }

    /// A gate that fails (the previous outcome could not be recorded) after the body went out:
    /// the connection closes mid-DATA, so the server drops the transaction and nothing is
    /// delivered.
    #[tokio::test]
    async fn a_failed_gate_leaves_the_transaction_unfinished() {
        let (server, opener, call) = finish_behind_a_shut_gate().await;
        drop(opener);
        assert_eq!(call.await.unwrap(), (Err(true), false), "the call fails as stopped, with no next transaction");
        until(|| server.abandoned_transactions() == 1).await;
        assert_eq!(server.message_count(), 0, "the message was not finished");
    }

    proptest! {
        #[test]
        fn data_block_sends_what_lettre_would(s in "[.\r\na\u{e9}]{0,64}") {
            prop_assert_eq!(data_block(s.as_bytes()).unwrap().into_bytes(), lettre_codec(s.as_bytes()));
        }

        #[test]
        fn dot_stuffed_bytes_are_what_lettre_would_send(b in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), Just(0xffu8)], 0..64)) {
            let mut sent = dot_stuffed(&b).into_owned();
            sent.extend_from_slice(END_OF_DATA.as_bytes());
            prop_assert_eq!(sent, lettre_codec(&b));
        }
    }
}
