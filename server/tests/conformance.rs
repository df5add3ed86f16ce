//! The WebSocket cases of the official Socket.IO v5 protocol test-suite (socketio/socket.io-protocol,
//! `test-suite/test-suite.js`), written from the protocol facts and run against the
//! `conformance` example, whose source is included here so the test drives exactly that app.
//! (The suite's HTTP long-polling and upgrade cases are specified in `engine_polling.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../examples/conformance.rs"]
#[allow(dead_code)]
mod conformance_app;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_server::{RunningServer, serve_engine};
use common::{Client, Seen};
use serde_json::Value;

async fn start() -> RunningServer {
    serve_engine(conformance_app::engine(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Open + `40` + the `auth` event, like the suite's `initSocketIOConnection`.
async fn init(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    c.auto_pong = false;
    c.send("40").await;
    assert!(c.recv_text().await.starts_with("40{"));
    assert_eq!(c.recv_text().await, r#"42["auth",{}]"#);
    c
}

/// The next frame that is not a ping.
async fn next_non_ping(c: &mut Client) -> Seen {
    loop {
        match c.next().await {
            Seen::Text(t) if t == "2" => continue,
            other => return other,
        }
    }
}

async fn text(c: &mut Client) -> String {
    match next_non_ping(c).await {
        Seen::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

async fn closed(c: &mut Client) {
    loop {
        if let Seen::Close(_) = c.next().await {
            return;
        }
    }
}

#[tokio::test]
async fn engine_io_handshake() {
    let s = start().await;
    let c = Client::connect(s.local_addr()).await;
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
    assert!(c.open["sid"].is_string());
    assert_eq!(c.open["upgrades"], Value::Array(vec![]));
    assert_eq!(
        (
            c.open["pingInterval"].as_u64(),
            c.open["pingTimeout"].as_u64()
        ),
        (Some(300), Some(200))
    );
    assert_eq!(c.open["maxPayload"], 1_000_000);
}

#[tokio::test]
async fn invalid_eio_or_transport_is_refused() {
    let s = start().await;
    for q in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
    ] {
        let url = format!("ws://{}/socket.io/?{q}", s.local_addr());
        assert!(
            tokio_tungstenite::connect_async(url).await.is_err(),
            "{q} must be refused"
        );
    }
}

#[tokio::test]
async fn heartbeat_ping_pong_three_times() {
    let s = start().await;
    let mut c = Client::connect(s.local_addr()).await;
    c.auto_pong = false;
    c.send("40").await;
    let mut pings = 0;
    while pings < 3 {
        if c.recv_text().await == "2" {
            pings += 1;
            c.send("3").await;
        }
    }
}

#[tokio::test]
async fn session_closes_upon_ping_timeout_or_no_handshake() {
    let s = start().await;
    let mut c = Client::connect(s.local_addr()).await;
    c.auto_pong = false;
    let started = Instant::now();
    closed(&mut c).await;
    // Within the suite's 5 s budget: connectTimeout 1000 ms or ping 300 + 200 ms.
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn client_close_packet_closes_the_session() {
    let s = start().await;
    let mut c = Client::connect(s.local_addr()).await;
    c.send("1").await;
    closed(&mut c).await;
}

#[tokio::test]
async fn connect_main_and_custom_namespaces_with_and_without_payload() {
    let s = start().await;
    for (send, prefix, auth) in [
        ("40", "40", r#"42["auth",{}]"#),
        (
            r#"40{"token":"123"}"#,
            "40",
            r#"42["auth",{"token":"123"}]"#,
        ),
        ("40/custom,", "40/custom,", r#"42/custom,["auth",{}]"#),
        (
            r#"40/custom,{"token":"abc"}"#,
            "40/custom,",
            r#"42/custom,["auth",{"token":"abc"}]"#,
        ),
    ] {
        let mut c = Client::connect(s.local_addr()).await;
        c.send(send).await;
        let answer = c.recv_text().await;
        let handshake: Value = serde_json::from_str(answer.strip_prefix(prefix).unwrap()).unwrap();
        assert_eq!(
            handshake.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["sid"]
        );
        assert!(handshake["sid"].is_string());
        assert_eq!(c.recv_text().await, auth);
    }
}

#[tokio::test]
async fn unknown_namespace_and_invalid_handshake() {
    let s = start().await;
    let mut c = Client::connect(s.local_addr()).await;
    c.send("40/random").await;
    assert_eq!(
        c.recv_text().await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
    let mut c = Client::connect(s.local_addr()).await;
    c.send("4abc").await;
    closed(&mut c).await;
}

#[tokio::test]
async fn disconnect_from_main_namespace_keeps_the_heartbeat() {
    let s = start().await;
    let mut c = init(s.local_addr()).await;
    c.send("41").await;
    assert_eq!(c.recv_text().await, "2");
}

#[tokio::test]
async fn connect_then_disconnect_from_a_custom_namespace() {
    let s = start().await;
    let mut c = init(s.local_addr()).await;
    c.send("40/custom").await;
    assert!(text(&mut c).await.starts_with("40/custom,"));
    assert_eq!(text(&mut c).await, r#"42/custom,["auth",{}]"#);
    c.send("41/custom").await;
    c.send(r#"42["message","message to main namespace"]"#).await;
    assert_eq!(
        text(&mut c).await,
        r#"42["message-back","message to main namespace"]"#
    );
}

#[tokio::test]
async fn plain_text_event_and_ack() {
    let s = start().await;
    let mut c = init(s.local_addr()).await;
    c.send(r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        text(&mut c).await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
    c.send(r#"42456["message-with-ack",1,"2",{"3":[false]}]"#)
        .await;
    assert_eq!(text(&mut c).await, r#"43456[1,"2",{"3":[false]}]"#);
}

#[tokio::test]
async fn binary_event_and_binary_ack() {
    let s = start().await;
    let mut c = init(s.local_addr()).await;
    c.send(r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    c.send_binary(&[1, 2, 3]).await;
    c.send_binary(&[4, 5, 6]).await;
    assert_eq!(
        text(&mut c).await,
        r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert!(matches!(next_non_ping(&mut c).await, Seen::Binary(b) if b == [1, 2, 3]));
    assert!(matches!(next_non_ping(&mut c).await, Seen::Binary(b) if b == [4, 5, 6]));

    c.send(r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#).await;
    c.send_binary(&[1, 2, 3]).await;
    c.send_binary(&[4, 5, 6]).await;
    assert_eq!(
        text(&mut c).await,
        r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert!(matches!(next_non_ping(&mut c).await, Seen::Binary(b) if b == [1, 2, 3]));
    assert!(matches!(next_non_ping(&mut c).await, Seen::Binary(b) if b == [4, 5, 6]));
}

#[tokio::test]
async fn invalid_formats_close_the_connection() {
    let s = start().await;
    for frame in [
        "4abc",
        "42{}",
        r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#,
    ] {
        let mut c = init(s.local_addr()).await;
        c.send(frame).await;
        closed(&mut c).await;
    }
}
