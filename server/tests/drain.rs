//! The graceful drain of the real `chat-server` binary on SIGTERM, as its clients and a load
//! balancer see it: `/readyz` turns 503 at once, users are still served (and new ones
//! accepted) for `drain_delay_ms`, then every WebSocket is closed with 1001, a long-polling
//! session's held GET gets the Engine.IO close packet, and the process exits 0. A second
//! SIGTERM during the drain exits at once (code 1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Client;
use common::polling::PollingClient;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The binary on free ports with an admin listener; its chat and admin addresses. Its log
/// lines keep being read (by a thread) so it never blocks on a full pipe.
fn spawn(drain_delay_ms: u64) -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--listen", "127.0.0.1:0", "--store", "memory"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--drain-delay-ms", &drain_delay_ms.to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat-server");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut chat, mut admin) = (None, None);
    while chat.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server says where it listens");
        if let Some(a) = line.split("admin listener on ").nth(1) {
            admin = Some(a.trim().parse().unwrap());
        } else if let Some(a) = line.split("listening on ").nth(1) {
            chat = Some(a.trim().parse().unwrap());
        }
    }
    (child, chat.unwrap(), admin.unwrap())
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn readyz(admin: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits for the process to end (at most `limit`); its exit code.
async fn exit_code(mut child: Child, limit: Duration) -> Option<i32> {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        panic!("the server did not exit within {limit:?}");
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn sigterm_drains_then_closes_every_connection_with_1001() {
    let (child, addr, admin) = spawn(1500);
    assert_eq!(readyz(admin).await, 200);
    let mut ws = common::chat::user(addr, "wendy").await;
    let mut polling = PollingClient::connect(addr).await;
    polling.send(r#"40{"nick":"paul"}"#).await;
    let welcome = polling.wait_event("notice").await;
    assert!(welcome["text"].as_str().unwrap().contains("paul"));

    signal(&child, "-TERM");
    let signalled = Instant::now();
    // Not ready at once (well within the delay).
    let mut status = 0;
    for _ in 0..50 {
        status = readyz(admin).await;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, 503, "/readyz during the drain");
    assert!(signalled.elapsed() < Duration::from_millis(1000));
    // Still served: a request answered, a new user admitted.
    let pong = ws.request("/", "ping", json!({})).await;
    assert_eq!(pong["ok"], true, "{pong}");
    let mut late = Client::connect(addr).await;
    late.join_namespace("/", Some(json!({"nick": "late"})))
        .await;

    // The polling session's held GET ends with the close packet.
    let held = tokio::spawn(async move {
        for _ in 0..20 {
            if polling.recv_text().await == "1" {
                return true;
            }
        }
        false
    });
    let close = ws.expect_close().await.expect("a close frame with a code");
    assert_eq!(u16::from(close.code), 1001, "{close:?}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(1400),
        "closed only after the drain delay ({:?})",
        signalled.elapsed()
    );
    let late_close = late.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(late_close.code), 1001);
    assert!(
        held.await.unwrap(),
        "the polling client got the close packet"
    );
    assert_eq!(exit_code(child, Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let (child, addr, admin) = spawn(30_000);
    let mut ws = common::chat::user(addr, "wendy").await;
    signal(&child, "-TERM");
    for _ in 0..50 {
        if readyz(admin).await == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(readyz(admin).await, 503);
    let second = Instant::now();
    signal(&child, "-TERM");
    assert_eq!(exit_code(child, Duration::from_secs(5)).await, Some(1));
    assert!(second.elapsed() < Duration::from_secs(3));
    // The connection is gone with the process: no close frame (no 1001), just the end.
    assert!(matches!(ws.next().await, common::Seen::Close(None)));
}
