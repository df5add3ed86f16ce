//! A chat connection's requests gone wrong and its end: unknown events and malformed
//! arguments are answered with an error and keep the connection; the server's shutdown closes
//! every connection with 1001 and no Socket.IO DISCONNECT, and stops listening.
//!
//! A real server on `127.0.0.1:0` in this process, driven by the raw Socket.IO client of
//! `tests/common`; every receive has a timeout. To prove that an event did NOT arrive, a test
//! makes a `ping` round trip on that client and looks at the packets skipped on the way
//! (`common::chat::pending`).

mod common;

use chat_protocol::events::{ErrorCode, HistoryRequest, JoinRequest, MessageReply, MessageRequest};
use chat_protocol::socket_io::{Packet, PacketKind};
use common::chat::{code, failure, join, ok, start, user};
use common::{RECV_TIMEOUT, Seen};
use serde_json::{Value, json};

#[tokio::test]
async fn bad_requests_are_answered_and_keep_the_connection() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let reply = alice.request("/", "frobnicate", json!({})).await;
    let err = failure(&reply);
    assert_eq!(err.code, ErrorCode::UnknownEvent);
    assert!(err.message.contains("frobnicate"), "{}", err.message);
    for (event, arg) in [
        ("join", json!({ "rooom": "r" })),
        ("join", json!("r")),
        ("join", Value::Null),
        ("message", json!({ "room": "r" })),
        ("message", json!({ "room": "r", "text": 5 })),
        ("dm", json!({ "text": "x" })),
        ("nick", json!([])),
        ("who", json!({})),
        ("topic", json!({ "room": "r", "topic": 1 })),
        ("history", json!({ "room": "r", "before": -1 })),
        ("typing", json!({})),
        ("leave", json!({ "room": 7 })),
    ] {
        let reply = alice.request("/", event, arg.clone()).await;
        assert_eq!(code(&reply), ErrorCode::BadRequest, "{event} {arg}");
    }
    // No argument at all.
    let (args, _) = alice.call("/", "join", vec![]).await;
    assert_eq!(code(&args[0]), ErrorCode::BadRequest);
    // An unknown event without an ack is ignored.
    alice
        .send_packet(&Packet::event("/", "frobnicate", vec![json!(1)], None))
        .await;
    // Still connected and working.
    let ping: Value = ok(&alice.request("/", "ping", json!({})).await);
    assert!(ping["ts"].as_i64().is_some_and(|ts| ts > 0), "{ping}");
    assert_eq!(join(&mut alice, "/", "r").await.members, vec!["alice"]);
}

/// The error ack of a request sent as raw text (`arg`: its first argument's JSON), with ack
/// id `id`.
async fn raw_request(c: &mut common::Client, id: u64, event: &str, arg: &str) -> Value {
    c.send(&format!("42{id}[\"{event}\",{arg}]")).await;
    for _ in 0..1_000 {
        let p = c.recv_packet().await;
        if p.kind == PacketKind::Ack && p.id == Some(id) {
            return p.data.and_then(|d| d.get(0).cloned()).expect("a reply");
        }
    }
    panic!("no ack {id}");
}

/// Requests are read straight from the packet's text, never through a `Value`; what a client
/// sees stays what `serde_json::from_value` made of the argument: the same message in the
/// error ack (no position in it), and a key given twice counts once, the last.
#[tokio::test]
async fn a_malformed_request_gets_the_message_from_value_gives() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    join(&mut alice, "/", "r").await;
    fn expected<T: serde::de::DeserializeOwned>(arg: &str) -> String {
        let value: Value = serde_json::from_str(arg).unwrap();
        let e = serde_json::from_value::<T>(value).err().expect("refused");
        format!("invalid request: {e}")
    }
    let cases: [(&str, &str, String); 6] = [
        (
            "message",
            r#"{"room":"r"}"#,
            expected::<MessageRequest>(r#"{"room":"r"}"#),
        ),
        (
            "message",
            r#"{"room":"r","text":5}"#,
            expected::<MessageRequest>(r#"{"room":"r","text":5}"#),
        ),
        // More items than the request has fields.
        (
            "message",
            r#"["r","hi",false,"c1","x"]"#,
            expected::<MessageRequest>(r#"["r","hi",false,"c1","x"]"#),
        ),
        ("join", r#""r""#, expected::<JoinRequest>(r#""r""#)),
        (
            "history",
            r#"{"room":"r","before":-1}"#,
            expected::<HistoryRequest>(r#"{"room":"r","before":-1}"#),
        ),
        (
            "history",
            r#"{"room":"r","limit":1.5}"#,
            expected::<HistoryRequest>(r#"{"room":"r","limit":1.5}"#),
        ),
    ];
    for (i, (event, arg, message)) in cases.into_iter().enumerate() {
        let reply = raw_request(&mut alice, 100 + i as u64, event, arg).await;
        let err = failure(&reply);
        assert_eq!(
            (err.code, err.message),
            (ErrorCode::BadRequest, message),
            "{event} {arg}"
        );
    }
    assert_eq!(
        failure(&raw_request(&mut alice, 200, "message", r#"{"room":"r"}"#).await).message,
        "invalid request: missing field `text`"
    );
    // The last of a repeated key wins, as in a `Value`: the message goes to room `r`.
    let reply = raw_request(
        &mut alice,
        201,
        "message",
        r#"{"room":"nowhere","text":"hi","room":"r"}"#,
    )
    .await;
    let sent: MessageReply<'static> = ok(&reply);
    assert_eq!(
        (sent.message.room.as_str(), sent.message.text.as_str()),
        ("r", "hi")
    );
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_no_disconnect_packet() {
    let (server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    alice.join_namespace("/other", None).await;
    join(&mut alice, "/", "r").await;
    let stop = tokio::spawn(server.shutdown());
    let mut texts = Vec::new();
    let frame = loop {
        match alice.next().await {
            Seen::Text(t) => texts.push(t),
            Seen::Binary(_) => {}
            Seen::Close(frame) => break frame,
        }
    };
    assert!(
        texts.iter().all(|t| !t.starts_with("41")),
        "no Socket.IO DISCONNECT before the close: {texts:?}"
    );
    let frame = frame.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
    tokio::time::timeout(RECV_TIMEOUT, stop)
        .await
        .expect("shutdown finishes")
        .expect("shutdown task");
    // Nothing listens any more.
    let refused = tokio::time::timeout(
        RECV_TIMEOUT,
        tokio_tungstenite::connect_async(common::url(addr)),
    )
    .await
    .expect("connect attempt ends");
    assert!(refused.is_err(), "the server stopped accepting");
}

/// The welcome counts the users of the namespace it is for, not of the whole server.
#[tokio::test]
async fn the_welcome_counts_the_users_of_its_namespace() {
    let (server, addr) = start().await;
    let _a = user(addr, "ann").await;
    let _b = user(addr, "ben").await;
    let mut c = common::Client::connect(addr).await;
    c.join_namespace("/side", Some(json!({"nick": "cat"})))
        .await;
    let notice = c.wait_event("notice").await;
    assert_eq!(
        notice["text"], "Welcome to /side, cat. 1 user online.",
        "{notice}"
    );
    server.shutdown().await;
}

/// After its CONNECT each socket gets the server's limits (as configured), before the
/// welcome notice, so a client can split a long line instead of having it refused.
#[tokio::test]
async fn the_limits_are_announced_after_connect() {
    use chat_protocol::events::Limits;
    use common::Client;
    let mut config = common::chat::config();
    config.limits.max_text_len = 120;
    config.limits.max_nick_len = 20;
    config.limits.max_rooms_per_socket = 7;
    config.engine.rate_per_sec = 30;
    config.engine.rate_burst = 60;
    let (_server, addr) = common::chat::serve(config).await;
    for nsp in ["/", "/other"] {
        let mut c = Client::connect(addr).await;
        c.join_namespace(nsp, Some(json!({ "nick": "ann" }))).await;
        let (got_nsp, name, args) = c.recv_event().await;
        assert_eq!((got_nsp.as_str(), name.as_str()), (nsp, "limits"));
        let limits: Limits = serde_json::from_value(args[0].clone()).expect("limits");
        assert_eq!(
            limits,
            Limits {
                max_text_len: 120,
                max_nick_len: 20,
                max_room_len: 64,
                max_rooms: 7,
                events_per_sec: 30,
                events_burst: 60,
                max_search_len: 200,
            }
        );
        let (_, name, _) = c.recv_event().await;
        assert_eq!(name, "notice", "then the welcome");
        c.close().await;
    }
}
