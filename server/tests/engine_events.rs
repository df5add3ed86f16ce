//! Events through the engine: acks in both directions (with the server's ack timeout), binary
//! events and acks with their attachments, events handled and answered in arrival order, a
//! server-side namespace disconnect, and a panicking handler that closes only its connection.
//!
//! A real server on `127.0.0.1:0` in this process running the engine's test app
//! (`common::engine_app`), driven by the raw client of `tests/common`.
//!
//! Tests of a server timer run on tokio's paused clock (`start_paused`): the server runs on
//! the test's one-thread runtime and talks over loopback, so the clock moves only when every
//! task waits with nothing in flight, and then straight to the next timer.

mod common;

use chat_protocol::socket_io::{Packet, PacketKind, placeholder};
use common::Seen;
use common::engine_app::{client, received, start_default};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn acks_in_both_directions_with_timeout() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    let (args, _) = c
        .call(
            "/",
            "echo-ack",
            vec![json!({"3": [true]}), json!("x"), json!(null)],
        )
        .await;
    assert_eq!(args, vec![json!({"3": [true]}), json!("x"), json!(null)]);

    // The question is queued before the ack of the request that caused it.
    let (_, before_ack) = c.call("/", "server-ack", vec![json!({"data": "q1"})]).await;
    let p = before_ack
        .into_iter()
        .find(|p| p.event_name() == Some("question"))
        .expect("question");
    assert_eq!(p.data, Some(json!(["question", "q1"])));
    let id = p.id.expect("the server asks for an ack");
    c.send_packet(&Packet::ack("/", id, vec![json!("a1"), json!(2)]))
        .await;
    assert_eq!(c.wait_event("answer").await, json!({"args": ["a1", 2]}));

    c.call(
        "/",
        "server-ack",
        vec![json!({"data": "q2", "timeout": 200})],
    )
    .await;
    assert_eq!(
        c.wait_event("answer").await,
        json!({"error": "no acknowledgement within the timeout"})
    );
}

#[tokio::test]
async fn binary_events_and_acks_keep_their_attachments() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    let p = Packet::event(
        "/",
        "echo",
        vec![json!("x"), placeholder(0), json!({"b": placeholder(1)})],
        None,
    )
    .with_attachments(2);
    c.send_packet(&p).await;
    c.send_binary(&[1, 2, 3]).await;
    c.send_binary(&[4]).await;
    assert_eq!(
        c.recv_text().await,
        r#"452-["echo-back","x",{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}]"#
    );
    assert!(matches!(c.next().await, Seen::Binary(b) if b == [1, 2, 3]));
    assert!(matches!(c.next().await, Seen::Binary(b) if b == [4]));

    let p = Packet::event("/", "echo-ack", vec![placeholder(0)], Some(9)).with_attachments(1);
    c.send_packet(&p).await;
    c.send_binary(b"zz").await;
    assert_eq!(
        c.recv_text().await,
        r#"461-9[{"_placeholder":true,"num":0}]"#
    );
    assert!(matches!(c.next().await, Seen::Binary(b) if b == b"zz"));
}

#[tokio::test]
async fn events_are_handled_and_answered_in_arrival_order() {
    let s = start_default().await;
    let (mut a, _) = client(s.addr()).await;
    let (mut b, _) = client(s.addr()).await;
    b.call("/", "join", vec![json!({"room": "o"})]).await;
    const N: u64 = 300;
    for i in 0..N {
        a.send_packet(&Packet::event(
            "/",
            "broadcast-room",
            vec![json!({"room": "o", "event": "n", "data": i})],
            Some(i),
        ))
        .await;
    }
    for i in 0..N {
        let p = a.recv_packet().await;
        assert_eq!(
            (p.kind, p.id),
            (PacketKind::Ack, Some(i)),
            "acks leave in arrival order"
        );
    }
    let got: Vec<u64> = received(&mut b, "/")
        .await
        .into_iter()
        .filter(|(n, _)| n == "n")
        .map(|(_, v)| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "broadcasts arrive in order, none lost or repeated"
    );
}

#[tokio::test]
async fn server_side_disconnect_sends_disconnect_and_keeps_the_connection() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    c.join_namespace("/admin", None).await;
    c.wait_event("hello").await;
    c.call("/admin", "kick", vec![]).await;
    assert_eq!(c.recv_text().await, "41/admin,");
    c.call("/", "echo-ack", vec![json!(1)]).await;
    // The client may connect that namespace again.
    c.join_namespace("/admin", None).await;
    c.call("/admin", "echo-ack", vec![json!(2)]).await;
}

#[tokio::test]
async fn a_panicking_handler_closes_only_its_connection() {
    let s = start_default().await;
    let (mut a, _) = client(s.addr()).await;
    let (mut b, _) = client(s.addr()).await;
    a.send_packet(&Packet::event("/", "panic", vec![], None))
        .await;
    let close = a.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1011);
    b.call("/", "echo-ack", vec![json!(1)]).await;
}
