//! How an engine connection ends, frame by frame: WebSocket pings answered and a client's close
//! answered once before the socket closes, what was queued before a close written whole before
//! the close frame (on a server close and after a client's burst), and the shutdown's 1001 with
//! no Socket.IO DISCONNECT.
//!
//! A real server on `127.0.0.1:0` in this process running the engine's test app
//! (`common::engine_app`), driven by the raw client of `tests/common`.

mod common;

use std::time::Duration;

use common::Seen;
use common::engine_app::{client, start_default};
use common::frames::{client_frame, exchange};

#[tokio::test]
async fn pings_are_answered_and_a_client_close_is_answered_once_before_the_socket_closes() {
    let s = start_default().await;
    let mut out = client_frame(0x9, b"are you there");
    out.extend(client_frame(0x8, &[0x03, 0xe8, b'o', b'k']));
    let frames = exchange(s.addr(), &out).await;
    assert_eq!(frames.len(), 3, "open, pong, close: {frames:?}");
    assert_eq!(frames[0].0, 0x1);
    assert!(frames[0].1.starts_with(b"0{"), "the open packet first");
    assert_eq!(frames[1], (0xa, b"are you there".to_vec()));
    assert_eq!(frames[2].0, 0x8, "one close frame");
    assert_eq!(&frames[2].1[..2], &[0x03, 0xe8], "the close code echoed");
}

#[tokio::test]
async fn what_was_queued_before_a_server_close_arrives_whole_and_then_the_close_frame() {
    let s = start_default().await;
    let mut out = client_frame(0x1, b"40");
    for i in 0..50 {
        out.extend(client_frame(
            0x1,
            format!("42[\"echo\",{{\"n\":{i}}}]").as_bytes(),
        ));
    }
    // Then an Engine.IO packet that makes no sense from a client: a protocol close (1002).
    out.extend(client_frame(0x1, b"5"));
    let frames = exchange(s.addr(), &out).await;
    let (close, rest) = frames.split_last().unwrap();
    assert_eq!(close.0, 0x8, "the close frame last: {close:?}");
    assert_eq!(&close.1[..2], &1002u16.to_be_bytes());
    assert!(
        rest.iter().all(|(op, _)| *op == 0x1),
        "only text frames before it"
    );
    let echoes = rest
        .iter()
        .filter(|(_, text)| text.starts_with(b"42[\"echo-back\""))
        .count();
    assert_eq!(
        echoes, 50,
        "what was queued before the close is written before it"
    );
}

#[tokio::test]
async fn a_client_close_after_a_burst_gets_the_burst_then_one_close_frame_last() {
    let s = start_default().await;
    // Repeated: the close reply can reach the writer before the connection is marked closed.
    for round in 0..20 {
        let mut out = client_frame(0x1, b"40");
        for i in 0..50 {
            out.extend(client_frame(
                0x1,
                format!("42[\"echo\",{{\"n\":{i}}}]").as_bytes(),
            ));
        }
        out.extend(client_frame(0x8, &[0x03, 0xe8]));
        let frames = exchange(s.addr(), &out).await;
        let closes = frames.iter().filter(|(op, _)| *op == 0x8).count();
        assert_eq!(closes, 1, "round {round}: one close frame: {frames:?}");
        let (close, rest) = frames.split_last().unwrap();
        assert_eq!(close.0, 0x8, "round {round}: the close frame last");
        assert_eq!(&close.1[..2], &[0x03, 0xe8]);
        let echoes = rest
            .iter()
            .filter(|(_, text)| text.starts_with(b"42[\"echo-back\""))
            .count();
        assert_eq!(echoes, 50, "round {round}: the burst before the close");
    }
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_no_disconnect_packet() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    let server = s.server;
    let stop = tokio::spawn(server.shutdown());
    loop {
        match c.next().await {
            Seen::Close(f) => {
                assert_eq!(u16::from(f.expect("close frame").code), 1001);
                break;
            }
            Seen::Text(t) => assert!(
                !t.starts_with("41"),
                "no Socket.IO DISCONNECT on shutdown: {t}"
            ),
            Seen::Binary(_) => {}
        }
    }
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .expect("shutdown finishes")
        .unwrap();
}

/// A client that vanishes without a close (its TCP connection reset) ends its sockets with
/// the reason "connection reset", not "WebSocket protocol error": what the disconnect
/// handlers (and the chat's log line) see.
#[tokio::test]
async fn a_client_that_vanishes_is_a_connection_reset_not_a_protocol_error() {
    use chat_server::engine::{Engine, EngineConfig, Handlers};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let engine = Engine::new(EngineConfig::default());
    engine.namespace(
        "/",
        Handlers::new().on_disconnect(move |_socket, reason| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(reason.to_owned());
            }
        }),
    );
    let server = chat_server::serve_engine(engine, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let url = common::url(server.local_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let open = ws.next().await;
    assert!(
        matches!(&open, Some(Ok(Message::Text(t))) if t.starts_with('0')),
        "{open:?}"
    );
    ws.send(Message::text("40")).await.expect("send CONNECT");
    let reply = ws.next().await;
    assert!(
        matches!(&reply, Some(Ok(Message::Text(t))) if t.starts_with("40")),
        "{reply:?}"
    );
    // Gone at once: a reset, no close frame.
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        #[allow(deprecated)]
        let _ = tcp.set_linger(Some(Duration::ZERO));
    }
    drop(ws);
    let reason = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the socket ends")
        .expect("a reason");
    assert_eq!(reason, "connection reset");
    server.shutdown().await;
}
