//! The engine's broadcast operators: `to` rooms as a union (each socket once), `except`,
//! socket broadcasts leaving out their sender, every broadcast handed to the adapter as one
//! encoded frame with its rooms, exceptions and volatility, and room lifecycle events.
//!
//! A real server on `127.0.0.1:0` in this process running the engine's test app
//! (`common::engine_app`), driven by the raw client of `tests/common`.

mod common;

use chat_server::engine::{BroadcastOptions, RoomEvent, RoomEventKind};
use common::Client;
use common::engine_app::{TestServer, client, received, start_default};
use serde_json::json;

/// Four clients on `/`: a in r1, b in r2, c in r1 and r2, d in none.
async fn four(s: &TestServer) -> [Client; 4] {
    let mut out = Vec::new();
    for rooms in [vec!["r1"], vec!["r2"], vec!["r1", "r2"], vec![]] {
        let (mut c, _) = client(s.addr()).await;
        for r in rooms {
            c.call("/", "join", vec![json!({"room": r})]).await;
        }
        out.push(c);
    }
    let Ok(clients) = out.try_into() else {
        panic!("four clients")
    };
    clients
}

async fn receivers(clients: &mut [Client; 4], event: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let n = received(c, "/")
            .await
            .iter()
            .filter(|(name, _)| name == event)
            .count();
        if n > 0 {
            out.push((i, n));
        }
    }
    out
}

#[tokio::test]
async fn to_rooms_is_a_union_and_each_socket_receives_once() {
    let s = start_default().await;
    let mut cs = four(&s).await;
    cs[3]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": ["r1", "r2"], "event": "u", "data": 1})],
        )
        .await;
    assert_eq!(receivers(&mut cs, "u").await, [(0, 1), (1, 1), (2, 1)]);
    // Sender included when in the rooms (namespace-level operator): it gets it before its ack.
    let (_, before_ack) = cs[0]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": ["r1"], "event": "v", "data": 1})],
        )
        .await;
    assert_eq!(
        before_ack
            .iter()
            .filter(|p| p.event_name() == Some("v"))
            .count(),
        1
    );
    assert_eq!(receivers(&mut cs, "v").await, [(2, 1)]);
    // Everyone, the sender included.
    let (_, before_ack) = cs[0]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": [], "event": "w", "data": 1})],
        )
        .await;
    assert_eq!(
        before_ack
            .iter()
            .filter(|p| p.event_name() == Some("w"))
            .count(),
        1
    );
    assert_eq!(receivers(&mut cs, "w").await, [(1, 1), (2, 1), (3, 1)]);
}

#[tokio::test]
async fn except_leaves_out_every_socket_in_those_rooms() {
    let s = start_default().await;
    let mut cs = four(&s).await;
    cs[3]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": ["r1", "r2"], "except": ["r2"], "event": "e", "data": 1})],
        )
        .await;
    assert_eq!(receivers(&mut cs, "e").await, [(0, 1)]);
    cs[0]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": [], "except": ["r1"], "event": "f", "data": 1})],
        )
        .await;
    assert_eq!(receivers(&mut cs, "f").await, [(1, 1), (3, 1)]);
}

#[tokio::test]
async fn socket_broadcasts_exclude_the_sender() {
    let s = start_default().await;
    let mut cs = four(&s).await;
    cs[0]
        .call(
            "/",
            "broadcast-room",
            vec![json!({"room": "r1", "event": "s", "data": 1})],
        )
        .await;
    assert_eq!(receivers(&mut cs, "s").await, [(2, 1)]);
    cs[2]
        .call("/", "broadcast", vec![json!({"event": "t", "data": 1})])
        .await;
    assert_eq!(receivers(&mut cs, "t").await, [(0, 1), (1, 1), (3, 1)]);
}

#[tokio::test]
async fn every_broadcast_goes_through_the_adapter_as_bytes_rooms_and_except() {
    let s = start_default().await;
    let (mut a, a_sid) = client(s.addr()).await;
    a.call(
        "/",
        "to-rooms",
        vec![json!({"rooms": ["r1", "r2"], "except": ["r3"], "event": "rec1", "data": 1})],
    )
    .await;
    a.call(
        "/",
        "to-rooms",
        vec![json!({"rooms": [], "volatile": true, "event": "rec2", "data": 1})],
    )
    .await;
    a.call(
        "/",
        "broadcast-room",
        vec![json!({"room": "r1", "event": "rec3", "data": 1})],
    )
    .await;
    a.call("/", "broadcast", vec![json!({"event": "rec4", "data": 1})])
        .await;
    let one = |needle| {
        let v = s.recorded(needle);
        assert_eq!(v.len(), 1, "{needle} recorded once");
        v[0].clone()
    };
    assert_eq!(
        one("rec1"),
        BroadcastOptions {
            rooms: vec!["r1".into(), "r2".into()],
            except: vec!["r3".into()],
            volatile: false,
            local: false
        }
    );
    assert_eq!(
        one("rec2"),
        BroadcastOptions {
            rooms: vec![],
            except: vec![],
            volatile: true,
            local: false
        }
    );
    assert_eq!(
        one("rec3"),
        BroadcastOptions {
            rooms: vec!["r1".into()],
            except: vec![a_sid.clone()],
            volatile: false,
            local: false
        }
    );
    assert_eq!(
        one("rec4"),
        BroadcastOptions {
            rooms: vec![],
            except: vec![a_sid],
            volatile: false,
            local: false
        }
    );
    // The encoded text is the wire frame, encoded once.
    let text = s
        .broadcasts
        .lock()
        .unwrap()
        .iter()
        .find(|(_, t)| t.contains("rec4"))
        .unwrap()
        .1
        .clone();
    assert_eq!(text, r#"42["rec4",1]"#);
}

#[tokio::test]
async fn room_lifecycle_events_are_observable() {
    let s = start_default().await;
    let (mut a, a_sid) = client(s.addr()).await;
    let (mut b, b_sid) = client(s.addr()).await;
    a.call("/", "join", vec![json!({"room": "lobby"})]).await;
    b.call("/", "join", vec![json!({"room": "lobby"})]).await;
    a.call("/", "leave", vec![json!({"room": "lobby"})]).await;
    b.close().await;
    a.call("/", "echo-ack", vec![]).await;
    // Wait (bounded) for b's disconnect to be processed.
    let in_lobby = |events: &[(String, RoomEvent)]| -> Vec<(RoomEventKind, String)> {
        events
            .iter()
            .filter(|(nsp, e)| nsp == "/" && e.room == "lobby")
            .map(|(_, e)| (e.kind, e.sid.to_string()))
            .collect()
    };
    let lobby = in_lobby(
        &s.room_events
            .wait_until(|events| in_lobby(events).len() >= 6)
            .await,
    );
    assert_eq!(
        lobby,
        [
            (RoomEventKind::Created, a_sid.clone()),
            (RoomEventKind::Joined, a_sid.clone()),
            (RoomEventKind::Joined, b_sid.clone()),
            (RoomEventKind::Left, a_sid),
            (RoomEventKind::Left, b_sid.clone()),
            (RoomEventKind::Deleted, b_sid),
        ]
    );
}
