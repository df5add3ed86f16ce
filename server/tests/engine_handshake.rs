//! The engine from TCP to a namespace: the open packet's shape, plain HTTP requests answered
//! 400 with JSON, a slowloris handshake dropped at the handshake timeout, CONNECT refused for
//! an unknown namespace or by a middleware chain (CONNECT_ERROR with message and data),
//! dynamic namespaces matched by pattern (a static one wins), and namespaces multiplexed on one
//! connection.
//!
//! A real server on `127.0.0.1:0` in this process running the engine's test app
//! (`common::engine_app`), driven by the raw client of `tests/common`.
//!
//! Tests of a server timer run on tokio's paused clock (`start_paused`): the server runs on
//! the test's one-thread runtime and talks over loopback, so the clock moves only when every
//! task waits with nothing in flight, and then straight to the next timer.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chat_protocol::socket_io::{Packet, PacketKind};
use chat_server::engine::EngineConfig;
use common::Client;
use common::engine_app::{client, start, start_default};
use serde_json::json;

#[tokio::test]
async fn open_packet_has_the_reference_shape() {
    let s = start_default().await;
    let c = Client::connect(s.addr()).await;
    let keys: Vec<&String> = c.open.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "sid",
            "upgrades",
            "pingInterval",
            "pingTimeout",
            "maxPayload"
        ]
    );
    assert_eq!(c.open["upgrades"], json!([]));
    assert_eq!(c.open["pingInterval"], 25000);
    assert_eq!(c.open["pingTimeout"], 20000);
    assert_eq!(c.open["maxPayload"], 1_000_000);
    assert_eq!(c.open["sid"].as_str().unwrap().len(), 20);
}

/// The whole response to a plain HTTP GET of `path`.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        common::RECV_TIMEOUT,
    )
    .await
}

/// The whole response to `request`, which must come (and the connection close) within `within`.
async fn http_raw(addr: SocketAddr, request: &[u8], within: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    tcp.write_all(request).await.expect("send the request");
    let mut out = String::new();
    tokio::time::timeout(within, tcp.read_to_string(&mut out))
        .await
        .expect("the server answers and closes in time")
        .expect("read the response");
    out
}

/// Heads that a proxy in front could read otherwise than the server (RFC 9112): a line ended
/// by a bare LF or a bare CR, an HTTP/1.1 request without `Host`. All get 400 at once (a bare
/// LF or CR used to wait for a `\r\n\r\n` until the handshake timeout); HTTP/1.0 needs no
/// `Host`.
#[tokio::test]
async fn heads_a_proxy_could_read_otherwise_get_400_at_once() {
    let s = start(EngineConfig {
        handshake_timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .await;
    let at_once = Duration::from_secs(3);
    let path = "/socket.io/?EIO=4&transport=polling";
    for request in [
        format!("GET {path} HTTP/1.1\nHost: x\n\n"),
        format!("GET {path} HTTP/1.1\r\nHost: x\n\r\n"),
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nX: y\n"),
        format!("GET {path} HTTP/1.1\rHost: x\r\r"),
        format!("GET {path} HTTP/1.1\r\n\r\n"),
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
    ] {
        let r = http_raw(s.addr(), request.as_bytes(), at_once).await;
        assert!(r.starts_with("HTTP/1.1 400"), "{request:?}: {r}");
        assert!(r.ends_with(r#"{"code":3,"message":"Bad request"}"#), "{r}");
    }
    let r = http_raw(
        s.addr(),
        format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes(),
        at_once,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains(r#""sid":""#), "an open packet: {r}");
    // The server still serves WebSocket clients.
    client(s.addr()).await;
}

#[tokio::test]
async fn plain_http_requests_get_400_json() {
    let s = start_default().await;
    let r = http_get(s.addr(), "/socket.io/?EIO=4&transport=flash").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(
        r.ends_with(r#"{"code":0,"message":"Transport unknown"}"#),
        "{r}"
    );
    let r = http_get(s.addr(), "/socket.io/?EIO=3&transport=websocket").await;
    assert!(
        r.ends_with(r#"{"code":5,"message":"Unsupported protocol version"}"#),
        "{r}"
    );
    let r = http_get(s.addr(), "/socket.io/?EIO=4&transport=websocket").await;
    assert!(r.ends_with(r#"{"code":3,"message":"Bad request"}"#), "{r}");
    // The server still serves WebSocket clients.
    client(s.addr()).await;
}

#[tokio::test(start_paused = true)]
async fn slowloris_handshake_is_dropped_after_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(EngineConfig {
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    tcp.write_all(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(common::RECV_TIMEOUT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed without a response");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn unknown_namespace_is_refused_and_the_connection_stays() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    let p = c.connect_namespace("/nope", None).await;
    assert_eq!(p.encode(), r#"4/nope,{"message":"Invalid namespace"}"#);
    c.call("/", "echo-ack", vec![json!(1)]).await;
}

#[tokio::test]
async fn middleware_chain_refuses_with_message_and_data_in_order() {
    let s = start_default().await;
    let mut c = Client::connect(s.addr()).await;
    let p = c
        .connect_namespace("/secure", Some(json!({"token": "letmein"})))
        .await;
    assert_eq!(p.encode(), r#"4/secure,{"message":"who are you?"}"#);
    let p = c
        .connect_namespace("/secure", Some(json!({"user": "u", "token": "nope"})))
        .await;
    assert_eq!(
        p.encode(),
        r#"4/secure,{"message":"not authorized","data":{"reason":"bad token"}}"#
    );
    let sid = c
        .join_namespace("/secure", Some(json!({"user": "u", "token": "letmein"})))
        .await;
    assert_eq!(sid.len(), 20);
    let hello = c.wait_event("hello").await;
    assert_eq!(hello["auth"], json!({"user": "u", "token": "letmein"}));
}

#[tokio::test]
async fn dynamic_namespaces_match_a_pattern_and_static_wins() {
    let s = start_default().await;
    let mut c = Client::connect(s.addr()).await;
    c.join_namespace("/team-42", None).await;
    assert_eq!(c.wait_event("hello").await["tag"], "dynamic");
    c.join_namespace("/team-1", None).await;
    assert_eq!(c.wait_event("hello").await["tag"], "static");
    let p = c.connect_namespace("/team-x", None).await;
    assert_eq!(p.kind, PacketKind::ConnectError);
}

#[tokio::test]
async fn namespaces_are_multiplexed_and_separate() {
    let s = start_default().await;
    let mut a = Client::connect(s.addr()).await;
    let root_sid = a.join_namespace("/", None).await;
    let admin_sid = a.join_namespace("/admin", None).await;
    assert_ne!(root_sid, admin_sid, "each namespace socket has its own id");
    let mut b = Client::connect(s.addr()).await;
    b.join_namespace("/", None).await;
    b.join_namespace("/admin", None).await;
    for c in [&mut a, &mut b] {
        c.call("/", "join", vec![json!({"room": "r"})]).await;
        c.call("/admin", "join", vec![json!({"room": "r"})]).await;
    }
    a.call(
        "/admin",
        "broadcast-room",
        vec![json!({"room": "r", "event": "only-admin", "data": 1})],
    )
    .await;
    let seen = b.drain("/", "echo-ack").await;
    let admin_only: Vec<_> = seen.iter().filter(|(_, n, _)| n == "only-admin").collect();
    assert_eq!(admin_only.len(), 1);
    assert_eq!(
        admin_only[0].0, "/admin",
        "delivered on the /admin namespace only"
    );

    // Leaving the last namespace keeps the Engine.IO connection (and its heartbeat).
    a.send_packet(&Packet::disconnect("/")).await;
    a.send_packet(&Packet::disconnect("/admin")).await;
    a.join_namespace("/", None).await;
    a.call("/", "echo-ack", vec![json!("still here")]).await;
}
