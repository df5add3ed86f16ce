//! The engine's timers and limits: the heartbeat (first ping one interval after the open
//! packet, a missed pong closes, waiting costs no CPU), the connect timeout, a client ping as a
//! protocol violation, the rate limit's plain default replies, malformed packets and oversized
//! messages closing their connection only, a slow consumer closed while others keep every
//! message, and a client that pings without reading.
//!
//! A real server on `127.0.0.1:0` in this process running the engine's test app
//! (`common::engine_app`), driven by the raw client of `tests/common`.
//!
//! Tests of a server timer run on tokio's paused clock (`start_paused`): the server runs on
//! the test's one-thread runtime and talks over loopback, so the clock moves only when every
//! task waits with nothing in flight, and then straight to the next timer.
//! `waiting_for_a_pong_costs_no_cpu` keeps the real clock: it measures CPU time over a real
//! second.

mod common;

use std::time::Duration;

use chat_server::engine::EngineConfig;
use common::engine_app::{client, start, start_default};
use common::frames::{client_frame, raw_upgrade};
use common::{Client, Seen};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn server_pings_after_one_interval_and_closes_on_missed_pong() {
    let s = start(EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut c = Client::connect(s.addr()).await;
    let opened = tokio::time::Instant::now();
    c.join_namespace("/", None).await;
    c.auto_pong = false;
    c.wait_event("hello").await;
    // The first ping comes one interval after the open packet, not at once.
    assert_eq!(c.recv_text().await, "2");
    assert!(
        opened.elapsed() >= Duration::from_millis(280),
        "first ping too early: {:?}",
        opened.elapsed()
    );
    c.send("3").await;
    assert_eq!(c.recv_text().await, "2");
    // No pong this time: the server gives up after pingTimeout.
    let close = c.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1011);
    assert_eq!(close.reason.as_str(), "ping timeout");
}

/// CPU time this thread has used, in nanoseconds (Linux's schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat")
}

#[tokio::test]
async fn waiting_for_a_pong_costs_no_cpu() {
    use tokio::io::AsyncWriteExt;
    // One thread runs the server and this test, so its CPU time is the server's.
    let s = start(EngineConfig {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_secs(10),
        ..EngineConfig::default()
    })
    .await;
    let (mut tcp, _) = raw_upgrade(s.addr()).await;
    tcp.write_all(&client_frame(0x1, b"40")).await.unwrap();
    // The ping goes out at 200 ms and is never answered.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = thread_cpu_ns();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = thread_cpu_ns() - before;
    assert!(
        used < 200_000_000,
        "the server used {} ms of CPU in 1 s while a pong was due",
        used / 1_000_000
    );
    drop(tcp);
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_closes_a_connection_that_never_connects() {
    let s = start(EngineConfig {
        connect_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut c = Client::connect(s.addr()).await;
    let close = c.expect_close().await.expect("close frame");
    assert_eq!(close.reason.as_str(), "connect timeout");
    // A connected client is not affected.
    let (mut ok, _) = client(s.addr()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok.call("/", "echo-ack", vec![json!(1)]).await;
}

#[tokio::test]
async fn client_ping_is_a_protocol_violation() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    c.send("2").await;
    assert_eq!(u16::from(c.expect_close().await.unwrap().code), 1002);
}

/// The engine knows no chat vocabulary: over the rate limit, an event with an ack id gets the
/// plain default reply and one without gets nothing (the chat supplies its own shapes, see
/// `hostile.rs`). On the paused clock no token comes back during the test.
#[tokio::test(start_paused = true)]
async fn rate_limit_refusals_default_to_plain_replies() {
    let s = start(EngineConfig {
        rate_burst: 2,
        rate_per_sec: 1,
        ..Default::default()
    })
    .await;
    let mut c = Client::connect(s.addr()).await;
    c.join_namespace("/", None).await;
    c.wait_event("hello").await;
    // The CONNECT took one token, this join the other.
    let (first, _) = c.call("/", "join", vec![json!({"room": "a"})]).await;
    assert_eq!(first, vec![json!("done")]);
    let (refused, skipped) = c.call("/", "join", vec![json!({"room": "b"})]).await;
    assert_eq!(refused, vec![json!({"error": "rate limit exceeded"})]);
    assert!(skipped.is_empty(), "no notice event: {skipped:?}");
}

#[tokio::test]
async fn malformed_packets_close_that_connection_only() {
    let s = start(EngineConfig {
        max_payload: 10_000,
        ..Default::default()
    })
    .await;
    let (mut bystander, _) = client(s.addr()).await;
    bystander
        .call("/", "join", vec![json!({"room": "r"})])
        .await;
    let big = format!("42[\"echo-ack\",\"{}\"]", "x".repeat(20_000));
    let cases: Vec<(&str, String, u16)> = vec![
        ("empty frame", String::new(), 1002),
        ("unknown engine.io type", "9".into(), 1002),
        ("client open", "0{}".into(), 1002),
        ("unknown socket.io type", "49".into(), 1002),
        ("invalid json", "42[\"a\"".into(), 1002),
        ("event not an array", "42{}".into(), 1002),
        ("empty event array", "42[]".into(), 1002),
        ("event name not a string", "42[1]".into(), 1002),
        ("reserved event name", "42[\"connect\"]".into(), 1002),
        ("ack without id", "43[]".into(), 1002),
        ("connect with array", "40[]".into(), 1002),
        ("disconnect with data", "41{}".into(), 1002),
        ("binary without count", "45[\"a\"]".into(), 1002),
        (
            "connect_error from client",
            "44{\"message\":\"x\"}".into(),
            1002,
        ),
        (
            "event for unjoined namespace",
            "42/admin,[\"echo-ack\"]".into(),
            1002,
        ),
        ("second connect", "40".into(), 1002),
        ("bad ack id", format!("42{}[\"a\"]", "9".repeat(25)), 1002),
        ("oversized message", big, 1009),
    ];
    for (name, frame, code) in cases {
        let (mut c, _) = client(s.addr()).await;
        c.send(&frame).await;
        let close = c
            .expect_close()
            .await
            .unwrap_or_else(|| panic!("{name}: no close frame"));
        assert_eq!(u16::from(close.code), code, "{name}");
        bystander.call("/", "echo-ack", vec![json!(name)]).await;
    }
    // Binary frames: unexpected, and text where an attachment was due.
    let (mut c, _) = client(s.addr()).await;
    c.send_binary(&[1]).await;
    assert_eq!(u16::from(c.expect_close().await.unwrap().code), 1002);
    let (mut c, _) = client(s.addr()).await;
    c.send(r#"451-["echo",{"_placeholder":true,"num":0}]"#)
        .await;
    c.send("42[\"echo\"]").await;
    assert_eq!(u16::from(c.expect_close().await.unwrap().code), 1002);
    // Invalid UTF-8 in a text frame fails at the WebSocket layer.
    bystander.call("/", "echo-ack", vec![json!("done")]).await;
}

/// A client in room `victims` that will not read.
async fn a_member_of_victims(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    c.join_namespace("/", None).await;
    c.call("/", "join", vec![json!({"room": "victims"})]).await;
    c
}

/// Reads what `slow` was sent until its close, which must be the slow consumer's.
async fn expect_slow_consumer_close(slow: &mut Client) {
    let mut frames = 0;
    let close = loop {
        match slow.next().await {
            Seen::Close(f) => break f,
            _ => frames += 1,
        }
    };
    let close = close.unwrap_or_else(|| panic!("close frame after {frames} frames"));
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "slow consumer: outgoing queue full");
}

#[tokio::test]
async fn a_slow_consumer_is_closed_by_the_bytes_it_holds_too() {
    // Room for 1,024 packets but only 256 KiB: big packets fill the bytes first.
    let s = start(EngineConfig {
        outbox_bytes: 256 * 1024,
        ..Default::default()
    })
    .await;
    let mut slow = a_member_of_victims(s.addr()).await;
    let (mut sender, _) = client(s.addr()).await;
    // 100 x 4 x 64 KiB (25 MiB) to a client that does not read: beyond the socket buffers
    // and 256 KiB, far below 1,024 packets.
    let mut sent = 0;
    for _ in 0..100 {
        let (reached, _) = sender
            .call("/", "flood", vec![json!({"count": 4, "size": 65536})])
            .await;
        sent += 4;
        if reached == [json!(0)] {
            break;
        }
    }
    assert!(sent < 400, "the slow consumer was never dropped");
    expect_slow_consumer_close(&mut slow).await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_and_others_keep_their_messages() {
    let s = start(EngineConfig {
        outbox_capacity: 8,
        ..Default::default()
    })
    .await;
    let mut slow = a_member_of_victims(s.addr()).await;
    let (mut fast, _) = client(s.addr()).await;
    let (mut sender, _) = client(s.addr()).await;
    fast.call("/", "join", vec![json!({"room": "victims"})])
        .await;
    // `slow` stops reading; 400 x 64 KiB cannot all sit in socket buffers and an 8-slot queue.
    // `fast` reads concurrently so it keeps up.
    let reader = tokio::spawn(async move {
        let mut blobs = 0;
        while blobs < 4 * 300 {
            let p = fast.recv_packet().await;
            if p.event_name() == Some("blob") {
                blobs += 1;
            }
        }
        blobs
    });
    // Four at a time, so a client that reads never has more than half its queue waiting;
    // until the slow one has been dropped (the last blob reached only `fast`).
    let mut sent = 0;
    for _ in 0..300 {
        let (reached, _) = sender
            .call("/", "flood", vec![json!({"count": 4, "size": 65536})])
            .await;
        sent += 4;
        if reached == [json!(1)] {
            break;
        }
    }
    assert!(sent < 4 * 300, "the slow consumer was never dropped");
    // Keep `fast` busy until it has everything, with the rest of the 300 rounds.
    for _ in sent / 4..300 {
        sender
            .call("/", "flood", vec![json!({"count": 4, "size": 16})])
            .await;
    }
    expect_slow_consumer_close(&mut slow).await;
    // Counted for the metrics under its own reason.
    let stats = s.server.engine().stats();
    let mut slow_consumers = 0;
    for _ in 0..100 {
        slow_consumers = stats
            .disconnects()
            .find(|(label, _)| *label == "slow_consumer")
            .map_or(0, |(_, n)| n);
        if slow_consumers > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(slow_consumers, 1);
    assert_eq!(
        reader.await.unwrap(),
        4 * 300,
        "the reading client got every message"
    );
}

#[tokio::test]
async fn a_client_that_pings_and_never_reads_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start_default().await;
    let (tcp, _) = raw_upgrade(s.addr()).await;
    let (mut read, mut write) = tcp.into_split();
    // 125-byte pings, a thousand per write, never reading the pongs: once the socket's buffers
    // are full the pongs pile up in the server, which must close the connection instead of
    // holding them all (the loop is bounded: 100 MB at most).
    let mut chunk = Vec::new();
    for _ in 0..1000 {
        chunk.extend(client_frame(0x9, &[b'p'; 125]));
    }
    let pinger = tokio::spawn(async move {
        for _ in 0..800 {
            if write.write_all(&chunk).await.is_err() {
                return true;
            }
        }
        false
    });
    let closed = tokio::time::timeout(Duration::from_secs(30), pinger)
        .await
        .expect("the server closes within the timeout")
        .unwrap();
    assert!(closed, "the server kept taking pings it could not answer");
    // Whatever arrived ends (a reset, or the close after the pongs it could send).
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut sink)).await;
}
