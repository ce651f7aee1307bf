//! The daemon's listener under hostile clients (issue 16 item 2): half-sent requests, trickling
//! headers, many at once, and a shutdown that must not wait for any of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald::http::{self, HttpState, ServeLimits, StatusSource, page};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Empty;

#[async_trait]
impl StatusSource for Empty {
    async fn snapshot(&self) -> anyhow::Result<page::Snapshot> {
        Ok(page::Snapshot::default())
    }
    async fn healthy(&self) -> bool {
        true
    }
}

/// Start the daemon's router on loopback with `limits`; returns its address, the shutdown
/// trigger and the server task.
async fn start(limits: ServeLimits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = http::router(HttpState { token: None, status: Arc::new(Empty) }, axum::Router::new());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve_with(listener, app, async move {
        let _ = rx.await;
    }, limits));
    (addr, tx, server)
}

async fn healthz(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// True once the server has closed `s` (EOF or reset).
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_neither_lingers_nor_holds_up_shutdown() {
    let limits = ServeLimits { header_read_timeout: Duration::from_secs(2), drain: Duration::from_secs(1), ..ServeLimits::default() };
    let (addr, stop, server) = start(limits).await;
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    // Half a request, then silence.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(4), server).await.expect("the server stops within its drain, whatever the client does").unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(tokio::time::timeout(Duration::from_secs(2), closed_by_server(&mut slow)).await.unwrap(), "the stuck connection is dropped");
    // And without a shutdown, the header-read timeout closes it.
    let (addr, _stop, _server) = start(limits).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let t = Instant::now();
    assert!(tokio::time::timeout(Duration::from_secs(5), closed_by_server(&mut slow)).await.unwrap());
    assert!(t.elapsed() < Duration::from_secs(4), "closed at the header-read timeout: {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_trickling_connections_are_bounded_and_others_are_still_served() {
    let limits = ServeLimits { header_read_timeout: Duration::from_secs(1), max_connections: 50, drain: Duration::from_secs(1), ..ServeLimits::default() };
    let (addr, stop, server) = start(limits).await;
    let t = Instant::now();
    let mut tricklers = Vec::new();
    for i in 0..200 {
        tricklers.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(addr).await else { return Duration::ZERO };
            let start = Instant::now();
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
            // One header byte every 100 ms: never a whole header.
            for _ in 0..300 {
                if s.write_all(format!("X-{i}: a\r\n").as_bytes()).await.is_err() {
                    break;
                }
                let mut b = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    _ => {}
                }
            }
            start.elapsed()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A good client is served in bounded time though the cap is taken: each slot frees within
    // the header-read timeout.
    let h = tokio::time::timeout(Duration::from_secs(8), healthz(addr)).await.expect("a good client is served within a bound");
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    // Every trickler was cut off: 200 / 50 slots × 1 s, with margin; none lasted the 30 s it wanted.
    for t in tricklers {
        let held = tokio::time::timeout(Duration::from_secs(15), t).await.expect("every trickling connection is closed").unwrap();
        // Connected includes the wait in the backlog for a slot: at most 200 / 50 rounds of 1 s.
        assert!(held < Duration::from_secs(8), "a connection was held {held:?}, though it wanted 30 s");
    }
    assert!(t.elapsed() < Duration::from_secs(15));
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(4), server).await.unwrap().unwrap().unwrap();
}
