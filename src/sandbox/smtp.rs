//! A real SMTP server on loopback for tests and the sandbox: it speaks SMTP over TCP, keeps every
//! message it accepts (envelope and raw bytes), counts deliveries per recipient, and answers by a
//! per-recipient reply plan (e.g. `451 4.3.0` for an address the first N times, `550 5.1.1`
//! always for another), with optional latency.
//!
//! Commands: EHLO/HELO, MAIL FROM, RCPT TO, DATA (dot-unstuffed), RSET, NOOP, VRFY, QUIT.
//! PIPELINING is advertised and works because commands are answered strictly in order; with
//! [`SmtpServer::set_pipelining`]`(false)` it is not, and a client that pipelines anyway is cut
//! off, as Postfix does.
//! No TLS and no AUTH: Herald reaches it with `smtp://127.0.0.1:PORT`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The name the server gives itself in its greeting.
pub const HOSTNAME: &str = "herald-sandbox.localhost";
/// Largest message accepted (advertised as SIZE), in bytes.
pub const MAX_MESSAGE: usize = 50 * 1024 * 1024;
/// Longest command line accepted (RFC 5321 §4.5.3.1.4 says 512 octets; be lenient).
const MAX_COMMAND_LINE: usize = 4096;

/// One SMTP reply: a code and its text (which may start with an enhanced status, `5.1.1 …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    /// The three-digit reply code.
    pub code: u16,
    /// The text after the code.
    pub text: String,
}

impl SmtpReply {
    /// A reply with this code and text.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Self { code, text: text.into() }
    }
    /// `451 4.3.0 Temporary failure, try again later`.
    pub fn greylist() -> Self {
        Self::new(451, "4.3.0 Temporary failure, try again later")
    }
    /// `550 5.1.1 No such user`.
    pub fn no_such_user() -> Self {
        Self::new(550, "5.1.1 No such user here")
    }
    fn line(&self) -> String {
        format!("{} {}\r\n", self.code, self.text)
    }
}

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// Sequence number (queue id), from 1.
    pub id: u64,
    /// The reverse path from `MAIL FROM`.
    pub mail_from: String,
    /// The accepted forward paths from `RCPT TO`.
    pub rcpt_to: Vec<String>,
    /// The message as received, dot-unstuffed, CRLF line ends, without the final `.` line.
    /// Empty when [`SmtpServer::keep_bodies`] is off.
    pub data: Vec<u8>,
}

/// A rule of the reply plan.
#[derive(Debug, Clone)]
struct PlanRule {
    /// Lowercase address, or `@domain` for every address of a domain.
    pattern: String,
    reply: SmtpReply,
    /// Uses left; `None` means always.
    left: Option<usize>,
}

impl PlanRule {
    fn matches(&self, addr: &str) -> bool {
        if self.pattern.starts_with('@') { addr.ends_with(&self.pattern) } else { addr == self.pattern }
    }
}

#[derive(Default)]
struct Inner {
    messages: Vec<ReceivedMessage>,
    /// Accepted messages per recipient (lowercase).
    delivered: HashMap<String, usize>,
    /// `RCPT TO` commands seen per recipient (lowercase), accepted or not.
    rcpt_seen: HashMap<String, usize>,
    rcpt_plan: Vec<PlanRule>,
    data_plan: Vec<PlanRule>,
}

struct Shared {
    inner: Mutex<Inner>,
    latency_ms: AtomicU64,
    keep_bodies: std::sync::atomic::AtomicBool,
    pipelining: std::sync::atomic::AtomicBool,
    pipelined: AtomicUsize,
    after_body: AtomicUsize,
    data_unfinished: AtomicUsize,
    data_abandoned: AtomicUsize,
    sync_errors: AtomicUsize,
    connections: AtomicUsize,
    next_id: AtomicU64,
    message_count: AtomicUsize,
    /// Where accepted messages are journaled (`sandbox serve`), on disk before the 250.
    journal: std::sync::OnceLock<Arc<super::journal::Journal>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking test thread must not take every later assertion down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Take the planned reply for `addr` from `plan`, if a rule matches and has uses left.
    fn take(plan: &mut [PlanRule], addr: &str) -> Option<SmtpReply> {
        let idx = plan.iter().position(|r| r.left != Some(0) && r.matches(addr))?;
        let rule = &mut plan[idx];
        if let Some(n) = rule.left.as_mut() {
            *n -= 1;
        }
        Some(rule.reply.clone())
    }
}

/// The running server. Dropping it stops accepting connections.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    /// Journal every accepted message to `journal` (on disk before the server answers 250).
    pub fn set_journal(&self, journal: Arc<super::journal::Journal>) {
        let _ = self.shared.journal.set(journal);
    }

    /// Listen on `127.0.0.1:0` (or where [`super::fault::bind_in`] says).
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(&super::fault::bind_addr().to_string()).await
    }

    /// Listen on the given loopback address (e.g. `127.0.0.1:2525`).
    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            latency_ms: AtomicU64::new(0),
            keep_bodies: std::sync::atomic::AtomicBool::new(true),
            pipelining: std::sync::atomic::AtomicBool::new(true),
            pipelined: AtomicUsize::new(0),
            after_body: AtomicUsize::new(0),
            data_unfinished: AtomicUsize::new(0),
            data_abandoned: AtomicUsize::new(0),
            sync_errors: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            message_count: AtomicUsize::new(0),
            journal: std::sync::OnceLock::new(),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                s.connections.fetch_add(1, Ordering::Relaxed);
                let s = s.clone();
                tokio::spawn(async move {
                    if let Err(error) = session(stream, &s).await {
                        tracing::debug!(%peer, %error, "SMTP sandbox session ended with an error.");
                    }
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The lettre URL that reaches this server: `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Answer `RCPT TO:<addr>` with `reply`, `times` times (`None`: always). `addr` may be
    /// `@domain` to match a whole domain. Rules are consulted in the order they were added.
    pub fn plan_rcpt(&self, addr: &str, reply: SmtpReply, times: Option<usize>) {
        self.shared.lock().rcpt_plan.push(PlanRule { pattern: addr.to_ascii_lowercase(), reply, left: times });
    }

    /// Answer the end of `DATA` with `reply` when the transaction's first recipient is `addr`,
    /// `times` times (`None`: always). The message is not kept when the reply is not 2xx.
    pub fn plan_data(&self, addr: &str, reply: SmtpReply, times: Option<usize>) {
        self.shared.lock().data_plan.push(PlanRule { pattern: addr.to_ascii_lowercase(), reply, left: times });
    }

    /// Wait this long before answering the end of each `DATA`.
    pub fn set_latency(&self, d: Duration) {
        self.shared.latency_ms.store(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Keep message bodies (default) or only envelopes and counts (long benchmarks).
    pub fn keep_bodies(&self, keep: bool) {
        self.shared.keep_bodies.store(keep, Ordering::Relaxed);
    }

    /// Advertise `PIPELINING` in the EHLO reply (default) or not. Commands are answered in
    /// order either way; a client that sees no `PIPELINING` must wait for each reply.
    pub fn set_pipelining(&self, on: bool) {
        self.shared.pipelining.store(on, Ordering::Relaxed);
    }

    /// Commands that arrived while the client had more input already sent (pipelined).
    pub fn pipelined_commands(&self) -> usize {
        self.shared.pipelined.load(Ordering::Relaxed)
    }

    /// Message bodies whose sender had already sent more after the end-of-data line (the next
    /// transaction's commands, pipelined with the body as RFC 2920 allows). Exact with a
    /// [`SmtpServer::set_latency`]; without one, a write split in transit can hide some.
    pub fn commands_after_body(&self) -> usize {
        self.shared.after_body.load(Ordering::Relaxed)
    }

    /// Octets of `DATA` content (whole lines, as sent) read in transactions whose end-of-data
    /// line has not come yet: a body that went ahead of its end.
    pub fn unfinished_data_octets(&self) -> usize {
        self.shared.data_unfinished.load(Ordering::Relaxed)
    }

    /// Transactions whose connection closed inside `DATA`: discarded, never delivered.
    pub fn abandoned_transactions(&self) -> usize {
        self.shared.data_abandoned.load(Ordering::Relaxed)
    }

    /// Sessions closed for pipelining without `PIPELINING` advertised (Postfix's "SMTP
    /// protocol synchronization" error).
    pub fn sync_errors(&self) -> usize {
        self.shared.sync_errors.load(Ordering::Relaxed)
    }

    /// Every accepted message, in the order accepted.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.lock().messages.clone()
    }

    /// How many messages were accepted.
    pub fn message_count(&self) -> usize {
        self.shared.message_count.load(Ordering::Relaxed)
    }

    /// Accepted messages per recipient address (lowercase).
    pub fn delivered(&self) -> HashMap<String, usize> {
        self.shared.lock().delivered.clone()
    }

    /// Accepted messages for one recipient.
    pub fn delivered_to(&self, addr: &str) -> usize {
        self.shared.lock().delivered.get(&addr.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    /// `RCPT TO` commands seen for one recipient, whatever the answer.
    pub fn rcpt_attempts(&self, addr: &str) -> usize {
        self.shared.lock().rcpt_seen.get(&addr.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Wait until at least `n` messages were accepted, or `timeout` passes. True if reached.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while self.message_count() < n {
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// The state of one SMTP session.
#[derive(Default)]
struct Txn {
    greeted: bool,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

/// Serve one connection until QUIT or EOF.
async fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    w.write_all(format!("220 {HOSTNAME} ESMTP Herald sandbox\r\n").as_bytes()).await?;
    let mut txn = Txn::default();
    let mut line = Vec::with_capacity(512);
    // Replies to pipelined commands are buffered and flushed when no more input is waiting.
    let mut out = String::new();
    loop {
        line.clear();
        if !out.is_empty() && r.buffer().is_empty() {
            w.write_all(out.as_bytes()).await?;
            out.clear();
        }
        let n = r.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_COMMAND_LINE {
            out.push_str("500 5.5.2 Line too long\r\n");
            continue;
        }
        if !r.buffer().is_empty() {
            // The client sent more before this command's reply: pipelining. Without
            // PIPELINING advertised that is a protocol error, as Postfix treats it.
            if shared.pipelining.load(Ordering::Relaxed) {
                shared.pipelined.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.sync_errors.fetch_add(1, Ordering::Relaxed);
                out.push_str("554 5.5.0 Error: SMTP protocol synchronization\r\n");
                w.write_all(out.as_bytes()).await?;
                let _ = w.shutdown().await;
                return Ok(());
            }
        }
        let cmd = String::from_utf8_lossy(&line);
        let cmd = cmd.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match cmd.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (cmd.to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" if !arg.is_empty() => {
                txn = Txn { greeted: true, ..Txn::default() };
                let pipelining = if shared.pipelining.load(Ordering::Relaxed) { "250-PIPELINING\r\n" } else { "" };
                out.push_str(&format!(
                    "250-{HOSTNAME} greets {arg}\r\n{pipelining}250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE {MAX_MESSAGE}\r\n"
                ));
            }
            "HELO" if !arg.is_empty() => {
                txn = Txn { greeted: true, ..Txn::default() };
                out.push_str(&format!("250 {HOSTNAME}\r\n"));
            }
            "EHLO" | "HELO" => out.push_str("501 5.5.4 Syntax: EHLO hostname\r\n"),
            "MAIL" => {
                if !txn.greeted {
                    out.push_str("503 5.5.1 Error: send HELO/EHLO first\r\n");
                } else if txn.mail_from.is_some() {
                    out.push_str("503 5.5.1 Error: nested MAIL command\r\n");
                } else {
                    match path_arg(arg, "FROM:") {
                        Some(p) => {
                            txn.mail_from = Some(p);
                            out.push_str("250 2.1.0 Ok\r\n");
                        }
                        None => out.push_str("501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
                    }
                }
            }
            "RCPT" => {
                if txn.mail_from.is_none() {
                    out.push_str("503 5.5.1 Error: need MAIL command\r\n");
                } else {
                    match path_arg(arg, "TO:").filter(|p| !p.is_empty()) {
                        Some(p) => {
                            let key = p.to_ascii_lowercase();
                            let planned = {
                                let mut g = shared.lock();
                                *g.rcpt_seen.entry(key.clone()).or_default() += 1;
                                Shared::take(&mut g.rcpt_plan, &key)
                            };
                            match planned {
                                Some(reply) if reply.code >= 300 => out.push_str(&reply.line()),
                                Some(reply) => {
                                    txn.rcpt_to.push(p);
                                    out.push_str(&reply.line());
                                }
                                None => {
                                    txn.rcpt_to.push(p);
                                    out.push_str("250 2.1.5 Ok\r\n");
                                }
                            }
                        }
                        None => out.push_str("501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
                    }
                }
            }
            "DATA" => {
                if txn.mail_from.is_none() {
                    out.push_str("503 5.5.1 Error: need MAIL command\r\n");
                } else if txn.rcpt_to.is_empty() {
                    out.push_str("554 5.5.1 Error: no valid recipients\r\n");
                } else {
                    out.push_str("354 End data with <CR><LF>.<CR><LF>\r\n");
                    w.write_all(out.as_bytes()).await?;
                    out.clear();
                    let keep = shared.keep_bodies.load(Ordering::Relaxed);
                    let (data, size) = read_data(&mut r, keep, &shared).await?;
                    let latency = shared.latency_ms.load(Ordering::Relaxed);
                    if latency > 0 {
                        tokio::time::sleep(Duration::from_millis(latency)).await;
                    }
                    // With a latency, whatever the client wrote with the body has arrived by
                    // now (without one, a write split in transit may not have).
                    if !r.buffer().is_empty() || (latency > 0 && r.fill_buf().now_or_never().is_some_and(|b| b.is_ok_and(|b| !b.is_empty()))) {
                        shared.after_body.fetch_add(1, Ordering::Relaxed);
                    }
                    let txn_done = std::mem::take(&mut txn.rcpt_to);
                    let from = txn.mail_from.take().unwrap_or_default();
                    if size > MAX_MESSAGE {
                        out.push_str("552 5.3.4 Message too big\r\n");
                        continue;
                    }
                    let first = txn_done[0].to_ascii_lowercase();
                    let planned = Shared::take(&mut shared.lock().data_plan, &first);
                    match planned {
                        Some(reply) if reply.code >= 300 => out.push_str(&reply.line()),
                        _ => {
                            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                            if let Some(j) = shared.journal.get() {
                                let entry = serde_json::json!({
                                    "arrived": super::journal::now(),
                                    "id": id,
                                    "mail_from": &from,
                                    "rcpt_to": &txn_done,
                                    "message_id": header_value(&data, "message-id"),
                                    "bytes": size,
                                });
                                if let Err(error) = j.append(entry, true).await {
                                    // Not kept, so not accepted: the client may try again.
                                    tracing::error!(error = %error, "SMTP sandbox journal write failed.");
                                    out.push_str("451 4.3.0 Sandbox journal write failed\r\n");
                                    continue;
                                }
                            }
                            {
                                let mut g = shared.lock();
                                for rcpt in &txn_done {
                                    *g.delivered.entry(rcpt.to_ascii_lowercase()).or_default() += 1;
                                }
                                g.messages.push(ReceivedMessage { id, mail_from: from, rcpt_to: txn_done, data });
                            }
                            shared.message_count.fetch_add(1, Ordering::Relaxed);
                            out.push_str(&format!("250 2.0.0 Ok: queued as {id:08X}\r\n"));
                        }
                    }
                }
            }
            "RSET" => {
                txn = Txn { greeted: txn.greeted, ..Txn::default() };
                out.push_str("250 2.0.0 Ok\r\n");
            }
            "NOOP" => out.push_str("250 2.0.0 Ok\r\n"),
            "VRFY" => out.push_str("252 2.0.0 Cannot VRFY user, but will accept message\r\n"),
            "QUIT" => {
                out.push_str("221 2.0.0 Bye\r\n");
                w.write_all(out.as_bytes()).await?;
                let _ = w.shutdown().await;
                return Ok(());
            }
            _ => out.push_str("502 5.5.2 Error: command not recognized\r\n"),
        }
    }
}

/// Parse `FROM:<path> [params]` / `TO:<path> [params]`; `<>` gives an empty path.
fn path_arg(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_string())
}

/// Read a DATA body up to the lone `.` line, undoing dot-stuffing. Returns the body (empty when
/// not kept) and its size. Lines read count as unfinished data until the end-of-data line; a
/// connection that closes first abandons the transaction.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, keep: bool, shared: &Shared) -> std::io::Result<(Vec<u8>, usize)> {
    let mut data = Vec::new();
    let mut line = Vec::with_capacity(1024);
    let mut size = 0usize;
    let mut unfinished = 0usize;
    let ended = loop {
        line.clear();
        let n = match r.read_until(b'\n', &mut line).await {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        if n == 0 {
            shared.data_abandoned.fetch_add(1, Ordering::Relaxed);
            break Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed inside DATA"));
        }
        if line == b".\r\n" || line == b".\n" {
            break Ok((data, size));
        }
        unfinished += n;
        shared.data_unfinished.fetch_add(n, Ordering::Relaxed);
        let body = if line.first() == Some(&b'.') { &line[1..] } else { &line[..] };
        size += body.len();
        if keep && size <= MAX_MESSAGE {
            data.extend_from_slice(body);
        }
    };
    shared.data_unfinished.fetch_sub(unfinished, Ordering::Relaxed);
    ended
}

/// The first `name:` header of a message (case-insensitive, unfolded), if any.
fn header_value(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut found: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = found.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push_str(line.trim_start());
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case(name)
        {
            found = Some(v.trim().to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn converse(server: &SmtpServer, script: &str) -> String {
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(script.as_bytes()).await.unwrap();
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
        out
    }

    #[tokio::test]
    async fn pipelined_session_unstuffs_dots_and_follows_the_plan() {
        let server = SmtpServer::start().await.unwrap();
        server.plan_rcpt("grey@example.org", SmtpReply::greylist(), Some(1));
        server.plan_rcpt("gone@example.org", SmtpReply::no_such_user(), None);
        let script = "EHLO client\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<grey@example.org>\r\nRCPT TO:<gone@example.org>\r\nRCPT TO:<ok@example.org>\r\nDATA\r\n\
                      Subject: hi\r\n\r\n..leading dot\r\nplain\r\n.\r\n\
                      MAIL FROM:<a@example.com>\r\nRCPT TO:<grey@example.org>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
        let out = converse(&server, script).await;
        assert!(out.starts_with("220 "), "{out}");
        assert!(out.contains("451 4.3.0"), "{out}");
        assert!(out.contains("550 5.1.1"), "{out}");
        assert!(out.contains("354 "), "{out}");
        assert!(out.trim_end().ends_with("221 2.0.0 Bye"), "{out}");
        let msgs = server.messages();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].rcpt_to, vec!["ok@example.org"]);
        assert_eq!(msgs[0].data, b"Subject: hi\r\n\r\n.leading dot\r\nplain\r\n");
        assert_eq!(msgs[1].rcpt_to, vec!["grey@example.org"], "the 451 applied once only");
        assert_eq!(server.delivered_to("GREY@example.org"), 1);
        assert_eq!(server.delivered_to("gone@example.org"), 0);
        assert_eq!(server.rcpt_attempts("gone@example.org"), 1);
    }

    #[tokio::test]
    async fn commands_out_of_order_are_refused() {
        let server = SmtpServer::start().await.unwrap();
        let out = converse(&server, "MAIL FROM:<a@b.c>\r\nHELO x\r\nRCPT TO:<a@b.c>\r\nDATA\r\nRSET\r\nNOOP\r\nBOGUS\r\nQUIT\r\n").await;
        let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
        assert_eq!(codes, ["220", "503", "250", "503", "503", "250", "250", "502", "221"], "{out}");
        assert_eq!(server.message_count(), 0);
    }
}
