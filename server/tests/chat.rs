//! Integration tests of the chat application: a real server on `127.0.0.1:0` in this process,
//! driven by the raw Socket.IO client of `tests/common`.
//!
//! Every receive has a timeout (in `common`). To prove that an event did NOT arrive, a test
//! makes a `ping` round trip on that client and looks at the packets skipped on the way:
//! everything queued for the client before the ack arrives first.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chat_protocol::events::{
    self, ChatMessage, ConnectErrorData, DmReply, ErrorBody, ErrorCode, HistoryReply, JoinReply,
    MessageReply, NickReply, Presence, PresenceAction, RoomAction, RoomChange, RoomInfo,
    RoomsReply, TopicChange, TopicReply, Typing, WhoReply,
};
use chat_protocol::socket_io::{Packet, PacketKind};
use chat_server::{NamespaceConfig, RunningServer, ServerConfig};
use common::{Client, RECV_TIMEOUT, Seen};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

// ---- helpers ----

/// The default configuration on an ephemeral port.
fn config() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServerConfig::default()
    }
}

async fn serve(config: ServerConfig) -> (RunningServer, SocketAddr) {
    let server = chat_server::start(config).await.expect("server starts");
    let addr = server.local_addr();
    (server, addr)
}

async fn start() -> (RunningServer, SocketAddr) {
    serve(config()).await
}

/// A new connection, connected to `nsp` as `nick`, past its welcome notice.
async fn user_in(addr: SocketAddr, nsp: &str, nick: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.join_ns(nsp, Some(json!({ "nick": nick }))).await;
    let notice = c.wait_event(events::server::NOTICE).await;
    assert!(
        notice["text"].as_str().expect("notice text").contains(nick),
        "welcome notice should greet {nick}: {notice}"
    );
    c
}

/// A new connection to `/` as `nick`.
async fn user(addr: SocketAddr, nick: &str) -> Client {
    user_in(addr, "/", nick).await
}

/// Asserts an `{ok:true}` ack and decodes it.
fn ok<T: DeserializeOwned>(reply: &Value) -> T {
    match events::parse_reply::<T>(reply) {
        Ok(v) => v,
        Err(e) => panic!("expected an ok reply, got {reply} ({e:?})"),
    }
}

/// Asserts an `{ok:false}` ack; returns its error.
fn failure(reply: &Value) -> ErrorBody {
    assert_eq!(
        reply["ok"],
        json!(false),
        "expected an error reply, got {reply}"
    );
    serde_json::from_value(reply["error"].clone()).expect("error body")
}

fn code(reply: &Value) -> ErrorCode {
    failure(reply).code
}

/// Asserts a CONNECT_ERROR; returns its message and the chat's error code, if any.
fn refused(p: &Packet) -> (String, Option<ErrorCode>) {
    assert_eq!(
        p.kind,
        PacketKind::ConnectError,
        "expected a refusal, got {p:?}"
    );
    let data = p.data.as_ref().expect("CONNECT_ERROR data");
    let message = data["message"]
        .as_str()
        .expect("CONNECT_ERROR message")
        .to_owned();
    let code = data.get("data").map(|d| {
        serde_json::from_value::<ConnectErrorData>(d.clone())
            .expect("CONNECT_ERROR data.code")
            .code
    });
    (message, code)
}

fn decode<T: DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("cannot decode {v}: {e}"))
}

async fn join(c: &mut Client, nsp: &str, room: &str) -> JoinReply {
    ok(&c.request(nsp, "join", json!({ "room": room })).await)
}

async fn say(c: &mut Client, nsp: &str, room: &str, text: &str) -> ChatMessage {
    ok::<MessageReply>(
        &c.request(nsp, "message", json!({ "room": room, "text": text }))
            .await,
    )
    .message
    .into_owned()
}

/// Sends a request and returns its reply with the events (name, first arg) that came first.
async fn call(c: &mut Client, nsp: &str, event: &str, arg: Value) -> (Value, Vec<(String, Value)>) {
    let (mut args, skipped) = c.call(nsp, event, vec![arg]).await;
    assert_eq!(args.len(), 1, "one reply object expected");
    (args.remove(0), named(skipped))
}

fn named(packets: Vec<Packet>) -> Vec<(String, Value)> {
    packets
        .into_iter()
        .filter_map(|p| {
            let name = p.event_name()?.to_owned();
            let arg = p
                .data
                .and_then(|d| d.get(1).cloned())
                .unwrap_or(Value::Null);
            Some((name, arg))
        })
        .collect()
}

/// Every event queued for `c` so far (name, first arg), proved by a `ping` round trip.
async fn pending(c: &mut Client) -> Vec<(String, Value)> {
    c.drain("/", "ping")
        .await
        .into_iter()
        .map(|(_, name, arg)| (name, arg))
        .collect()
}

fn count(events: &[(String, Value)], name: &str) -> usize {
    events.iter().filter(|(n, _)| n == name).count()
}

// ---- CONNECT auth ----

#[tokio::test]
async fn connect_without_a_nick_is_refused() {
    let (_server, addr) = start().await;
    let mut c = Client::connect(addr).await;
    for auth in [None, Some(json!({})), Some(json!({ "key": "x" }))] {
        let p = c.connect_ns("/", auth.clone()).await;
        assert_eq!(
            refused(&p).1,
            Some(ErrorCode::NickRequired),
            "auth {auth:?}"
        );
    }
    // The refusals left the connection usable.
    c.join_ns("/", Some(json!({ "nick": "alice" }))).await;
}

#[tokio::test]
async fn connect_with_an_invalid_nick_is_refused() {
    let (_server, addr) = start().await;
    let mut c = Client::connect(addr).await;
    for nick in ["", "2pac", "a b", "a:b", "#chan", &"n".repeat(33)] {
        let p = c.connect_ns("/", Some(json!({ "nick": nick }))).await;
        assert_eq!(refused(&p).1, Some(ErrorCode::InvalidName), "nick {nick:?}");
    }
    c.join_ns("/", Some(json!({ "nick": "n".repeat(32) })))
        .await;
}

#[tokio::test]
async fn connect_with_a_taken_nick_is_refused_case_insensitively() {
    let (_server, addr) = start().await;
    let _alice = user(addr, "Alice").await;
    let mut c = Client::connect(addr).await;
    for nick in ["Alice", "alice", "ALICE"] {
        let p = c.connect_ns("/", Some(json!({ "nick": nick }))).await;
        let (message, code) = refused(&p);
        assert_eq!(code, Some(ErrorCode::NickTaken));
        assert!(message.contains(nick), "message {message:?} names {nick}");
    }
    // Also from another namespace of another connection: nicks are server-wide.
    let p = c
        .connect_ns("/other", Some(json!({ "nick": "alice" })))
        .await;
    assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
    c.join_ns("/", Some(json!({ "nick": "alice2" }))).await;
}

#[tokio::test]
async fn connect_with_a_malformed_auth_payload_is_refused() {
    let (_server, addr) = start().await;
    let mut c = Client::connect(addr).await;
    for auth in [
        json!({ "nick": 42 }),
        json!({ "nick": ["alice"] }),
        json!({ "nick": "alice", "since": "everything" }),
        json!({ "nick": "alice", "key": true }),
    ] {
        let p = c.connect_ns("/", Some(auth.clone())).await;
        assert_eq!(refused(&p).1, Some(ErrorCode::BadRequest), "auth {auth}");
    }
    c.join_ns("/", Some(json!({ "nick": "alice" }))).await;
}

#[tokio::test]
async fn a_second_namespace_shares_the_connections_nick() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    // No nick: inherited.
    alice.join_ns("/other", None).await;
    // The same nick in another case is the same nick.
    alice
        .join_ns("/third", Some(json!({ "nick": "ALICE" })))
        .await;
    // A different nick on the same connection is refused.
    let p = alice
        .connect_ns("/fourth", Some(json!({ "nick": "bob" })))
        .await;
    let (message, code) = refused(&p);
    assert_eq!(code, Some(ErrorCode::BadRequest), "{message}");
    // ... and did not claim "bob".
    let _bob = user(addr, "bob").await;

    let joined = join(&mut alice, "/other", "r").await;
    assert_eq!(joined.members, vec!["alice"]);
    let m = say(&mut alice, "/other", "r", "hi").await;
    assert_eq!(m.from, "alice");
}

#[tokio::test]
async fn a_nick_is_free_again_after_its_user_disconnects() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    alice.close().await;
    // The quit presence is sent when the server handles the disconnect.
    let quit: Presence = decode(&bob.wait_event(events::server::PRESENCE).await);
    assert_eq!(
        (quit.nick.as_str(), quit.action),
        ("alice", PresenceAction::Quit)
    );
    let mut again = Client::connect(addr).await;
    again.join_ns("/", Some(json!({ "nick": "ALICE" }))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_nick_admit_exactly_one() {
    let (_server, addr) = start().await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(Client::connect(addr).await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                // Different cases: the same nick.
                let nick = if i % 2 == 0 { "Same" } else { "sAME" };
                let p = c.connect_ns("/", Some(json!({ "nick": nick }))).await;
                (p, c)
            })
        })
        .collect();
    let mut admitted = 0;
    let mut keep = Vec::new();
    for task in tasks {
        let (p, c) = tokio::time::timeout(RECV_TIMEOUT, task)
            .await
            .expect("claim answered")
            .expect("claim task");
        if p.kind == PacketKind::Connect {
            admitted += 1;
        } else {
            assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
        }
        keep.push(c);
    }
    assert_eq!(admitted, 1);
}

// ---- namespaces ----

fn ops_config(dynamic: bool) -> ServerConfig {
    ServerConfig {
        // Built as the config file would be, so fields added later keep their defaults.
        namespaces: vec![
            serde_json::from_value::<NamespaceConfig>(json!({ "name": "/ops", "key": "k" }))
                .expect("namespace config"),
        ],
        dynamic_namespaces: dynamic,
        ..config()
    }
}

#[tokio::test]
async fn a_namespace_key_is_checked() {
    let (_server, addr) = serve(ops_config(false)).await;
    let mut c = Client::connect(addr).await;
    for auth in [
        json!({ "nick": "alice" }),
        json!({ "nick": "alice", "key": "K" }),
        json!({ "nick": "alice", "key": "" }),
        json!({ "nick": "alice", "key": "kk" }),
    ] {
        let p = c.connect_ns("/ops", Some(auth.clone())).await;
        let (message, code) = refused(&p);
        assert_eq!(code, Some(ErrorCode::Forbidden), "auth {auth}: {message}");
    }
    c.join_ns("/ops", Some(json!({ "nick": "alice", "key": "k" })))
        .await;
    // `/` is open and inherits the nick.
    c.join_ns("/", None).await;
    let joined = join(&mut c, "/ops", "war-room").await;
    assert_eq!(joined.members, vec!["alice"]);

    // A key is checked on a later namespace of a connection too.
    let mut bob = user(addr, "bob").await;
    let p = bob.connect_ns("/ops", None).await;
    assert_eq!(refused(&p).1, Some(ErrorCode::Forbidden));
    bob.join_ns("/ops", Some(json!({ "key": "k" }))).await;
}

#[tokio::test]
async fn unknown_namespaces_are_refused_when_not_dynamic() {
    let (_server, addr) = serve(ops_config(false)).await;
    let mut c = Client::connect(addr).await;
    let p = c
        .connect_ns("/elsewhere", Some(json!({ "nick": "alice" })))
        .await;
    assert_eq!(refused(&p).0, "Invalid namespace");
    c.join_ns("/", Some(json!({ "nick": "alice" }))).await;
    let p = c.connect_ns("/elsewhere", None).await;
    assert_eq!(refused(&p).0, "Invalid namespace");
}

#[tokio::test]
async fn any_valid_namespace_is_open_when_dynamic() {
    let (_server, addr) = serve(ops_config(true)).await;
    let mut c = Client::connect(addr).await;
    c.join_ns("/team-42/a.b_c", Some(json!({ "nick": "alice" })))
        .await;
    c.join_ns("/x", None).await;
    // Declared namespaces keep their key.
    let p = c.connect_ns("/ops", None).await;
    assert_eq!(refused(&p).1, Some(ErrorCode::Forbidden));
    let joined = join(&mut c, "/team-42/a.b_c", "r").await;
    assert_eq!(joined.members, vec!["alice"]);
}

// ---- join / leave ----

#[tokio::test]
async fn join_replies_with_members_topic_and_history() {
    let (_server, addr) = start().await;
    let mut carol = user(addr, "carol").await;
    let first = join(&mut carol, "/", "lobby").await;
    assert_eq!(first.room, "lobby");
    assert_eq!(first.members, vec!["carol"]);
    assert_eq!(first.topic, None);
    assert!(first.history.is_empty());

    let sent = [
        say(&mut carol, "/", "lobby", "one").await,
        say(&mut carol, "/", "lobby", "two").await,
        say(&mut carol, "/", "lobby", "three").await,
    ];
    let topic: TopicReply = ok(&carol
        .request("/", "topic", json!({ "room": "lobby", "topic": "hello" }))
        .await);
    assert_eq!(topic.topic.as_deref(), Some("hello"));

    let mut bob = user(addr, "Bob").await;
    let joined = join(&mut bob, "/", "lobby").await;
    assert_eq!(joined.members, vec!["Bob", "carol"]);
    assert_eq!(joined.topic.as_deref(), Some("hello"));
    assert_eq!(joined.history, sent.to_vec());

    let presence: Presence = decode(&carol.wait_event(events::server::PRESENCE).await);
    assert_eq!(
        presence,
        Presence {
            room: "lobby".into(),
            nick: "Bob".into(),
            action: PresenceAction::Join,
            previous: None
        }
    );
    // The joiner is not told about itself.
    assert_eq!(count(&pending(&mut bob).await, events::server::PRESENCE), 0);

    // Joining again is harmless and announces nothing.
    let again = join(&mut bob, "/", "lobby").await;
    assert_eq!(again.members, vec!["Bob", "carol"]);
    assert_eq!(
        count(&pending(&mut carol).await, events::server::PRESENCE),
        0
    );
}

#[tokio::test]
async fn join_history_holds_the_most_recent_messages_oldest_first() {
    let (_server, addr) = serve(ServerConfig {
        join_history: 3,
        ..config()
    })
    .await;
    let mut alice = user(addr, "alice").await;
    join(&mut alice, "/", "r").await;
    for i in 1..=5 {
        say(&mut alice, "/", "r", &format!("m{i}")).await;
    }
    let mut bob = user(addr, "bob").await;
    let joined = join(&mut bob, "/", "r").await;
    let got: Vec<(u64, &str)> = joined
        .history
        .iter()
        .map(|m| (m.seq, m.text.as_str()))
        .collect();
    assert_eq!(got, vec![(3, "m3"), (4, "m4"), (5, "m5")]);
}

#[tokio::test]
async fn rooms_are_announced_when_created_and_deleted() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    let mut carol = user(addr, "carol").await;
    let created = RoomChange {
        action: RoomAction::Created,
        room: "r".into(),
    };
    let deleted = RoomChange {
        action: RoomAction::Deleted,
        room: "r".into(),
    };

    // First join: everyone in the namespace hears of it, the joiner included.
    let (reply, seen) = call(&mut alice, "/", "join", json!({ "room": "r" })).await;
    let _: JoinReply = ok(&reply);
    let rooms: Vec<RoomChange> = seen
        .iter()
        .filter(|(n, _)| n == events::server::ROOM)
        .map(|(_, a)| decode(a))
        .collect();
    assert_eq!(rooms, vec![created.clone()]);
    assert_eq!(
        decode::<RoomChange>(&bob.wait_event(events::server::ROOM).await),
        created
    );
    assert_eq!(
        decode::<RoomChange>(&carol.wait_event(events::server::ROOM).await),
        created
    );

    // A second member creates nothing.
    join(&mut bob, "/", "r").await;
    assert_eq!(count(&pending(&mut carol).await, events::server::ROOM), 0);

    // The first leave deletes nothing; the last one does.
    let _: Value = ok(&alice.request("/", "leave", json!({ "room": "r" })).await);
    assert_eq!(count(&pending(&mut carol).await, events::server::ROOM), 0);
    let left: Presence = decode(&bob.wait_event(events::server::PRESENCE).await);
    assert_eq!(
        (left.nick.as_str(), left.action),
        ("alice", PresenceAction::Leave)
    );
    let _: Value = ok(&bob.request("/", "leave", json!({ "room": "r" })).await);
    for c in [&mut alice, &mut carol] {
        assert_eq!(
            decode::<RoomChange>(&c.wait_event(events::server::ROOM).await),
            deleted
        );
    }
    // Leaving a room one is not in.
    assert_eq!(
        code(&bob.request("/", "leave", json!({ "room": "r" })).await),
        ErrorCode::NotInRoom
    );

    // A disconnect of the last member deletes the room too.
    join(&mut bob, "/", "s").await;
    assert_eq!(
        decode::<RoomChange>(&carol.wait_event(events::server::ROOM).await),
        RoomChange {
            action: RoomAction::Created,
            room: "s".into()
        }
    );
    bob.close().await;
    assert_eq!(
        decode::<RoomChange>(&carol.wait_event(events::server::ROOM).await),
        RoomChange {
            action: RoomAction::Deleted,
            room: "s".into()
        }
    );
}

#[tokio::test]
async fn join_rejects_invalid_room_names() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    for room in ["", "#rust", "a b", "-x", "a,b", &"r".repeat(65)] {
        let reply = alice.request("/", "join", json!({ "room": room })).await;
        assert_eq!(code(&reply), ErrorCode::InvalidName, "room {room:?}");
    }
    assert_eq!(join(&mut alice, "/", "日本語").await.members, vec!["alice"]);
    assert_eq!(
        join(&mut alice, "/", &"r".repeat(64)).await.members,
        vec!["alice"]
    );
}

#[tokio::test]
async fn leave_is_acked_and_announced() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    let reply = alice.request("/", "leave", json!({ "room": "r" })).await;
    assert_eq!(reply, json!({ "ok": true, "room": "r" }));
    let left: Presence = decode(&bob.wait_event(events::server::PRESENCE).await);
    assert_eq!(
        (left.room.as_str(), left.nick.as_str(), left.action),
        ("r", "alice", PresenceAction::Leave)
    );
    let who: WhoReply = ok(&bob.request("/", "who", json!({ "room": "r" })).await);
    assert_eq!(who.members, vec!["bob"]);
    // alice hears nothing more of the room.
    say(&mut bob, "/", "r", "still here?").await;
    assert_eq!(
        count(&pending(&mut alice).await, events::server::MESSAGE),
        0
    );
    assert_eq!(
        code(&alice.request("/", "leave", json!({ "room": "r" })).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(&alice.request("/", "leave", json!({ "room": "#r" })).await),
        ErrorCode::InvalidName
    );
}

#[tokio::test]
async fn leaving_a_namespace_quits_its_rooms_and_the_last_one_frees_the_nick() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    alice.join_ns("/other", None).await;
    let mut bob = user(addr, "bob").await;
    bob.join_ns("/other", None).await;
    for nsp in ["/", "/other"] {
        join(&mut alice, nsp, "r").await;
        join(&mut bob, nsp, "r").await;
    }

    alice.send_packet(&Packet::disconnect("/other")).await;
    let (nsp, name, args) = bob.recv_event().await;
    assert_eq!(
        (nsp.as_str(), name.as_str()),
        ("/other", events::server::PRESENCE)
    );
    let quit: Presence = decode(&args[0]);
    assert_eq!(
        (quit.nick.as_str(), quit.action),
        ("alice", PresenceAction::Quit)
    );
    // Still connected to `/`, so the nick is still hers.
    let mut c = Client::connect(addr).await;
    let p = c.connect_ns("/", Some(json!({ "nick": "alice" }))).await;
    assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
    let who: WhoReply = ok(&alice.request("/", "who", json!({ "room": "r" })).await);
    assert_eq!(who.members, vec!["alice", "bob"]);

    // Leaving the last namespace releases the nick. (bob's quit presence is sent by the same
    // disconnect handler, on this single-threaded runtime before the test runs again.)
    alice.send_packet(&Packet::disconnect("/")).await;
    let quit: Presence = decode(&bob.wait_event(events::server::PRESENCE).await);
    assert_eq!(quit.action, PresenceAction::Quit);
    c.join_ns("/", Some(json!({ "nick": "alice" }))).await;
    join(&mut c, "/", "r").await;
    // The old connection cannot take it back now.
    let p = alice.connect_ns("/", None).await;
    assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
    // But a connection whose nick is still free takes it back on its next namespace.
    bob.send_packet(&Packet::disconnect("/")).await;
    bob.send_packet(&Packet::disconnect("/other")).await;
    bob.join_ns("/", None).await;
    assert_eq!(join(&mut bob, "/", "r").await.members, vec!["alice", "bob"]);
}

// ---- messages ----

#[tokio::test]
async fn messages_are_acked_to_the_sender_and_broadcast_to_the_room() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    let mut carol = user(addr, "carol").await; // in the namespace, not in the room
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    let before = now_ms();
    let mut sent = Vec::new();
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let m = say(&mut alice, "/", "r", text).await;
        assert_eq!(m.seq, i as u64 + 1);
        assert_eq!((m.room.as_str(), m.from.as_str()), ("r", "alice"));
        assert_eq!(m.text, text);
        assert!(!m.action);
        assert!(
            m.ts >= before - 1000 && m.ts <= now_ms() + 1000,
            "ts {}",
            m.ts
        );
        sent.push(m);
    }
    let ids: std::collections::HashSet<&str> = sent.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "ids are unique");

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(decode::<ChatMessage>(
            &bob.wait_event(events::server::MESSAGE).await,
        ));
    }
    assert_eq!(got, sent);
    // The sender gets its messages in the acks only; a non-member gets nothing.
    assert_eq!(
        count(&pending(&mut alice).await, events::server::MESSAGE),
        0
    );
    assert_eq!(
        count(&pending(&mut carol).await, events::server::MESSAGE),
        0
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[tokio::test]
async fn a_message_needs_membership_of_its_room() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut bob, "/", "r").await;
    let send = json!({ "room": "r", "text": "hi" });
    assert_eq!(
        code(&alice.request("/", "message", send.clone()).await),
        ErrorCode::NotInRoom
    );
    join(&mut alice, "/", "r").await;
    assert_eq!(say(&mut alice, "/", "r", "hi").await.seq, 1);
    let _: Value = ok(&alice.request("/", "leave", json!({ "room": "r" })).await);
    assert_eq!(
        code(&alice.request("/", "message", send).await),
        ErrorCode::NotInRoom
    );
    // The refused messages were not stored or sent.
    let events = pending(&mut bob).await;
    let texts: Vec<ChatMessage> = events
        .iter()
        .filter(|(n, _)| n == events::server::MESSAGE)
        .map(|(_, a)| decode(a))
        .collect();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].seq, 1);
}

#[tokio::test]
async fn message_text_must_be_non_blank_and_at_most_4000_characters() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    join(&mut alice, "/", "r").await;
    for text in [String::new(), "   ".into(), "\n\t".into(), "x".repeat(4001)] {
        let reply = alice
            .request("/", "message", json!({ "room": "r", "text": text }))
            .await;
        assert_eq!(code(&reply), ErrorCode::InvalidText, "{} chars", text.len());
    }
    // Characters, not bytes.
    let long = "é".repeat(4000);
    let m = say(&mut alice, "/", "r", &long).await;
    assert_eq!((m.seq, m.text), (1, long));
}

#[tokio::test]
async fn the_action_flag_is_kept() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    let reply = alice
        .request(
            "/",
            "message",
            json!({ "room": "r", "text": "waves", "action": true }),
        )
        .await;
    let acked = ok::<MessageReply>(&reply).message.into_owned();
    assert!(acked.action);
    let event = bob.wait_event(events::server::MESSAGE).await;
    assert_eq!(event["action"], json!(true));
    assert_eq!(decode::<ChatMessage>(&event), acked);
    // A plain message says nothing about actions on the wire.
    say(&mut alice, "/", "r", "plain").await;
    let plain = bob.wait_event(events::server::MESSAGE).await;
    assert!(
        plain.get("action").is_none_or(|a| a == &json!(false)),
        "{plain}"
    );
    let history: HistoryReply = ok(&bob.request("/", "history", json!({ "room": "r" })).await);
    let flags: Vec<bool> = history.messages.iter().map(|m| m.action).collect();
    assert_eq!(flags, vec![true, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_are_seen_in_seq_order_without_gaps() {
    const PER_SENDER: usize = 100;
    let (_server, addr) = start().await;
    let mut carol = user(addr, "carol").await;
    join(&mut carol, "/", "r").await;
    let mut senders = Vec::new();
    for nick in ["alice", "bob"] {
        let mut c = user(addr, nick).await;
        join(&mut c, "/", "r").await;
        senders.push((nick, c));
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(nick, mut c)| {
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..PER_SENDER {
                    seqs.push(say(&mut c, "/", "r", &format!("{nick} {i}")).await.seq);
                }
                (seqs, c)
            })
        })
        .collect();

    let mut received = Vec::new();
    while received.len() < 2 * PER_SENDER {
        let (_, name, args) = carol.recv_event().await;
        if name == events::server::MESSAGE {
            received.push(decode::<ChatMessage>(&args[0]));
        }
    }
    let mut acked = Vec::new();
    for task in tasks {
        let (seqs, _client) = tokio::time::timeout(RECV_TIMEOUT, task)
            .await
            .expect("sender finished")
            .expect("sender task");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "own acks increase");
        acked.extend(seqs);
    }
    acked.sort_unstable();
    let all: Vec<u64> = (1..=(2 * PER_SENDER) as u64).collect();
    assert_eq!(acked, all, "every seq acked exactly once");
    let seqs: Vec<u64> = received.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, all, "the receiver sees 1, 2, 3, ... in order");
    for nick in ["alice", "bob"] {
        let texts: Vec<&str> = received
            .iter()
            .filter(|m| m.from == nick)
            .map(|m| m.text.as_str())
            .collect();
        let expected: Vec<String> = (0..PER_SENDER).map(|i| format!("{nick} {i}")).collect();
        assert_eq!(texts, expected, "{nick}'s messages in sending order");
    }
}

#[tokio::test]
async fn rooms_of_different_namespaces_are_separate() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await; // in `/` and `/other`
    alice.join_ns("/other", None).await;
    let mut bob = user(addr, "bob").await; // `/` only
    let mut carol = user_in(addr, "/other", "carol").await; // `/other` only
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    let other = join(&mut alice, "/other", "r").await;
    assert_eq!(
        other.members,
        vec!["alice"],
        "bob's `/` membership is not in /other"
    );
    join(&mut carol, "/other", "r").await;

    assert_eq!(say(&mut bob, "/", "r", "in root").await.seq, 1);
    assert_eq!(say(&mut carol, "/other", "r", "in other").await.seq, 1);
    assert_eq!(say(&mut carol, "/other", "r", "again").await.seq, 2);

    // alice hears each message on its own namespace.
    let mut heard = Vec::new();
    while heard.len() < 3 {
        let (nsp, name, args) = alice.recv_event().await;
        if name == events::server::MESSAGE {
            heard.push((nsp, args[0]["text"].as_str().expect("text").to_owned()));
        }
    }
    heard.sort();
    assert_eq!(
        heard,
        vec![
            ("/".to_owned(), "in root".to_owned()),
            ("/other".to_owned(), "again".to_owned()),
            ("/other".to_owned(), "in other".to_owned()),
        ]
    );
    // bob hears nothing of /other.
    assert_eq!(count(&pending(&mut bob).await, events::server::MESSAGE), 0);
    let mut carol_seen = carol.drain("/other", "ping").await;
    carol_seen.retain(|(_, n, _)| n == events::server::MESSAGE);
    assert!(carol_seen.is_empty(), "{carol_seen:?}");

    let root: HistoryReply = ok(&bob.request("/", "history", json!({ "room": "r" })).await);
    let texts: Vec<&str> = root.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec!["in root"]);
}

/// Keeps `c` (a member of `room`) sending until `stop` is set; the task returns the count.
fn keep_sending(
    mut c: Client,
    room: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            sent += 1;
            say(&mut c, "/", room, &format!("m{sent}")).await;
        }
        sent
    })
}

async fn stop_sending(stop: &AtomicBool, traffic: tokio::task::JoinHandle<u64>) -> u64 {
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(RECV_TIMEOUT, traffic)
        .await
        .expect("sender stops")
        .expect("sender task")
}

/// The `seq`s of the `message` events among `events`.
fn message_seqs(events: &[(String, Value)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(n, _)| n == events::server::MESSAGE)
        .map(|(_, a)| decode::<ChatMessage>(a).seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_during_traffic_misses_no_message() {
    const JOINS: usize = 300;
    let (_server, addr) = start().await;
    let mut sender = user(addr, "sender").await;
    join(&mut sender, "/", "r").await;
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = keep_sending(sender, "r", stop.clone());
    let mut joiner = user(addr, "joiner").await;
    let mut gaps = Vec::new();
    for _ in 0..JOINS {
        let (reply, early) = call(&mut joiner, "/", "join", json!({ "room": "r" })).await;
        let joined: JoinReply = ok(&reply);
        // What the joiner has: the history, the messages that came before the ack, and the
        // first one after it. Without history the room's first message is 1. (Sorted and
        // deduplicated: a message of the previous membership may arrive late, see
        // `no_message_arrives_after_leaving_a_room`.)
        let mut seqs: Vec<u64> = joined.history.iter().map(|m| m.seq).collect();
        if seqs.is_empty() {
            seqs.push(0);
        }
        seqs.extend(message_seqs(&early));
        seqs.push(decode::<ChatMessage>(&joiner.wait_event(events::server::MESSAGE).await).seq);
        seqs.sort_unstable();
        seqs.dedup();
        if !seqs.windows(2).all(|w| w[1] == w[0] + 1) {
            gaps.push(seqs[seqs.len().saturating_sub(4)..].to_vec());
        }
        let _: Value = ok(&joiner.request("/", "leave", json!({ "room": "r" })).await);
        pending(&mut joiner).await;
    }
    let sent = stop_sending(&stop, traffic).await;
    assert!(
        gaps.is_empty(),
        "{} of {JOINS} joins (during {sent} messages) missed a message: {gaps:?}",
        gaps.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_arrives_after_leaving_a_room() {
    let (_server, addr) = start().await;
    let mut sender = user(addr, "sender").await;
    join(&mut sender, "/", "r").await;
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = keep_sending(sender, "r", stop.clone());
    let mut joiner = user(addr, "joiner").await;
    let mut late = Vec::new();
    // The window is small: a few in a thousand cycles hit it (about 6 s in a debug build).
    for _ in 0..2000 {
        join(&mut joiner, "/", "r").await;
        joiner.wait_event(events::server::MESSAGE).await;
        let _: Value = ok(&joiner.request("/", "leave", json!({ "room": "r" })).await);
        late.extend(message_seqs(&pending(&mut joiner).await));
    }
    let sent = stop_sending(&stop, traffic).await;
    assert!(
        late.is_empty(),
        "messages arrived after the leave ack (of {sent}): {late:?}"
    );
}

// ---- direct messages ----

#[tokio::test]
async fn a_dm_reaches_its_recipient_only() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "Bob").await;
    let mut carol = user(addr, "carol").await;
    let reply = alice
        .request("/", "dm", json!({ "to": "bob", "text": "psst" }))
        .await;
    let DmReply {
        message, delivered, ..
    } = ok(&reply);
    assert!(delivered);
    assert_eq!(
        (
            message.from.as_str(),
            message.to.as_str(),
            message.text.as_str()
        ),
        ("alice", "Bob", "psst")
    );
    let got: events::DirectMessage = decode(&bob.wait_event(events::server::DM).await);
    assert_eq!(got, message);
    assert_eq!(count(&pending(&mut carol).await, events::server::DM), 0);
    assert_eq!(count(&pending(&mut alice).await, events::server::DM), 0);
}

#[tokio::test]
async fn a_dm_to_an_offline_nick_fails() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let reply = alice
        .request("/", "dm", json!({ "to": "nobody", "text": "hello?" }))
        .await;
    assert_eq!(code(&reply), ErrorCode::UserOffline);
    let reply = alice
        .request("/", "dm", json!({ "to": "alice", "text": "" }))
        .await;
    assert_eq!(code(&reply), ErrorCode::InvalidText);
    let reply = alice
        .request("/", "dm", json!({ "to": "2pac", "text": "x" }))
        .await;
    assert_eq!(code(&reply), ErrorCode::InvalidName);
}

#[tokio::test]
async fn a_dm_goes_to_the_senders_namespace_else_to_slash() {
    let (_server, addr) = start().await;
    let mut bob = user(addr, "bob").await;
    bob.join_ns("/other", None).await;
    bob.wait_event(events::server::NOTICE).await;
    let mut alice = user_in(addr, "/other", "alice").await;
    alice.join_ns("/x", None).await;
    let send = json!({ "to": "bob", "text": "here" });
    let reply: DmReply = ok(&alice.request("/other", "dm", send).await);
    assert!(reply.delivered);
    let (nsp, name, args) = bob.recv_event().await;
    assert_eq!(
        (nsp.as_str(), name.as_str()),
        ("/other", events::server::DM)
    );
    assert_eq!(args[0]["text"], "here");
    // bob is not in /x: the DM goes to his `/` socket.
    let send = json!({ "to": "bob", "text": "there" });
    let _: DmReply = ok(&alice.request("/x", "dm", send).await);
    let (nsp, name, args) = bob.recv_event().await;
    assert_eq!((nsp.as_str(), name.as_str()), ("/", events::server::DM));
    assert_eq!(args[0]["text"], "there");
}

// ---- nick ----

#[tokio::test]
async fn a_nick_change_is_announced_to_shared_rooms() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    let mut carol = user(addr, "carol").await; // shares no room with alice
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    join(&mut carol, "/", "elsewhere").await;

    let reply: NickReply = ok(&alice
        .request("/", "nick", json!({ "nick": "alicia" }))
        .await);
    assert_eq!(reply.nick, "alicia");
    let presence: Presence = decode(&bob.wait_event(events::server::PRESENCE).await);
    assert_eq!(
        presence,
        Presence {
            room: "r".into(),
            nick: "alicia".into(),
            action: PresenceAction::Nick,
            previous: Some("alice".into()),
        }
    );
    assert_eq!(
        count(&pending(&mut carol).await, events::server::PRESENCE),
        0
    );
    let who: WhoReply = ok(&bob.request("/", "who", json!({ "room": "r" })).await);
    assert_eq!(who.members, vec!["alicia", "bob"]);
    assert_eq!(say(&mut alice, "/", "r", "hi").await.from, "alicia");

    // Taken (case-insensitively) by someone else.
    let reply = bob.request("/", "nick", json!({ "nick": "ALICIA" })).await;
    let err = failure(&reply);
    assert_eq!(err.code, ErrorCode::NickTaken);
    assert!(err.message.contains("ALICIA"), "{}", err.message);
    assert_eq!(
        code(&bob.request("/", "nick", json!({ "nick": "9lives" })).await),
        ErrorCode::InvalidName
    );
    // The old nick is free, the new one is not.
    let mut c = Client::connect(addr).await;
    let p = c.connect_ns("/", Some(json!({ "nick": "Alicia" }))).await;
    assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
    c.join_ns("/", Some(json!({ "nick": "alice" }))).await;
    // A DM finds the user under the new nick.
    let dm: DmReply = ok(&bob
        .request("/", "dm", json!({ "to": "alicia", "text": "x" }))
        .await);
    assert!(dm.delivered);
}

#[tokio::test]
async fn a_nick_change_reaches_rooms_in_every_namespace() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    alice.join_ns("/other", None).await;
    let mut bob = user(addr, "bob").await;
    let mut carol = user_in(addr, "/other", "carol").await;
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    join(&mut alice, "/other", "s").await;
    join(&mut carol, "/other", "s").await;
    // Asked on `/`, seen in `/other` too.
    let _: NickReply = ok(&alice.request("/", "nick", json!({ "nick": "ally" })).await);
    for (c, nsp, room) in [(&mut bob, "/", "r"), (&mut carol, "/other", "s")] {
        let (got_nsp, name, args) = c.recv_event().await;
        assert_eq!(
            (got_nsp.as_str(), name.as_str()),
            (nsp, events::server::PRESENCE)
        );
        let p: Presence = decode(&args[0]);
        assert_eq!(
            (
                p.room.as_str(),
                p.nick.as_str(),
                p.action,
                p.previous.as_deref()
            ),
            (room, "ally", PresenceAction::Nick, Some("alice"))
        );
    }
    let who: WhoReply = ok(&carol.request("/other", "who", json!({ "room": "s" })).await);
    assert_eq!(who.members, vec!["ally", "carol"]);
    // A change of case only is a change too.
    let reply: NickReply = ok(&alice.request("/", "nick", json!({ "nick": "Ally" })).await);
    assert_eq!(reply.nick, "Ally");
    let p: Presence = decode(&bob.wait_event(events::server::PRESENCE).await);
    assert_eq!(
        (p.nick.as_str(), p.previous.as_deref()),
        ("Ally", Some("ally"))
    );
}

// ---- who, rooms, topic, history ----

#[tokio::test]
async fn who_and_rooms_list_members_and_topics() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut alice, "/", "a").await;
    join(&mut alice, "/", "b").await;
    join(&mut bob, "/", "b").await;
    let _: TopicReply = ok(&bob
        .request("/", "topic", json!({ "room": "b", "topic": "bees" }))
        .await);

    let who: WhoReply = ok(&alice.request("/", "who", json!({ "room": "b" })).await);
    assert_eq!(
        (who.room.as_str(), who.members),
        ("b", vec!["alice".to_owned(), "bob".to_owned()])
    );
    let who: WhoReply = ok(&bob.request("/", "who", json!({ "room": "a" })).await);
    assert_eq!(who.members, vec!["alice"]);
    let who: WhoReply = ok(&bob.request("/", "who", json!({ "room": "empty" })).await);
    assert!(who.members.is_empty());
    assert_eq!(
        code(&bob.request("/", "who", json!({ "room": "#a" })).await),
        ErrorCode::InvalidName
    );

    let rooms: RoomsReply = ok(&bob.request("/", "rooms", json!({})).await);
    let mut rooms = rooms.rooms;
    rooms.sort_by(|x, y| x.room.cmp(&y.room));
    assert_eq!(
        rooms,
        vec![
            RoomInfo {
                room: "a".into(),
                members: 1,
                topic: None
            },
            RoomInfo {
                room: "b".into(),
                members: 2,
                topic: Some("bees".into())
            },
        ]
    );
    // Other namespaces have their own rooms.
    bob.join_ns("/other", None).await;
    let rooms: RoomsReply = ok(&bob.request("/other", "rooms", json!({})).await);
    assert!(rooms.rooms.is_empty(), "{:?}", rooms.rooms);
}

#[tokio::test]
async fn a_topic_is_set_read_announced_and_cleared() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    let mut carol = user(addr, "carol").await;
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;

    let get = json!({ "room": "r" });
    let none: TopicReply = ok(&carol.request("/", "topic", get.clone()).await);
    assert_eq!(none.topic, None);

    let set: TopicReply = ok(&alice
        .request(
            "/",
            "topic",
            json!({ "room": "r", "topic": "  Rust things " }),
        )
        .await);
    assert_eq!(set.topic.as_deref(), Some("Rust things"));
    let change: TopicChange = decode(&bob.wait_event(events::server::TOPIC).await);
    assert_eq!(
        change,
        TopicChange {
            room: "r".into(),
            topic: Some("Rust things".into()),
            by: "alice".into()
        }
    );
    assert_eq!(count(&pending(&mut alice).await, events::server::TOPIC), 0);
    assert_eq!(count(&pending(&mut carol).await, events::server::TOPIC), 0);
    // Anyone may read it; only members may set it.
    let read: TopicReply = ok(&carol.request("/", "topic", get.clone()).await);
    assert_eq!(read.topic.as_deref(), Some("Rust things"));
    assert_eq!(
        code(
            &carol
                .request("/", "topic", json!({ "room": "r", "topic": "mine" }))
                .await
        ),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(
            &alice
                .request(
                    "/",
                    "topic",
                    json!({ "room": "r", "topic": "t".repeat(301) })
                )
                .await
        ),
        ErrorCode::InvalidText
    );

    // An empty string clears it.
    let cleared: TopicReply = ok(&bob
        .request("/", "topic", json!({ "room": "r", "topic": "" }))
        .await);
    assert_eq!(cleared.topic, None);
    let change: TopicChange = decode(&alice.wait_event(events::server::TOPIC).await);
    assert_eq!((change.topic, change.by.as_str()), (None, "bob"));
    let read: TopicReply = ok(&carol.request("/", "topic", get).await);
    assert_eq!(read.topic, None);
}

#[tokio::test]
async fn history_pages_backwards_with_before_and_limit() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut alice, "/", "r").await;
    for i in 1..=10 {
        say(&mut alice, "/", "r", &format!("m{i}")).await;
    }
    let seqs = |reply: &Value| -> Vec<u64> {
        let h: HistoryReply = ok(reply);
        assert_eq!(h.room, "r");
        h.messages.iter().map(|m| m.seq).collect()
    };
    let mut ask = async |req: Value| alice.request("/", "history", req).await;
    assert_eq!(
        seqs(&ask(json!({ "room": "r" })).await),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&ask(json!({ "room": "r", "limit": 3 })).await),
        vec![8, 9, 10]
    );
    assert_eq!(
        seqs(&ask(json!({ "room": "r", "before": 8, "limit": 3 })).await),
        vec![5, 6, 7]
    );
    assert_eq!(
        seqs(&ask(json!({ "room": "r", "before": 3, "limit": 5 })).await),
        vec![1, 2]
    );
    assert_eq!(
        seqs(&ask(json!({ "room": "r", "before": 1 })).await),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(&ask(json!({ "room": "r", "before": 100, "limit": 1 })).await),
        vec![10]
    );
    let texts: HistoryReply = ok(&ask(json!({ "room": "r", "before": 3 })).await);
    let texts: Vec<&str> = texts.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec!["m1", "m2"]);
    assert_eq!(
        code(&ask(json!({ "room": "r", "limit": "three" })).await),
        ErrorCode::BadRequest
    );
    // Members only.
    assert_eq!(
        code(&bob.request("/", "history", json!({ "room": "r" })).await),
        ErrorCode::NotInRoom
    );
}

#[tokio::test]
async fn members_are_sorted_without_regard_to_case() {
    let (_server, addr) = start().await;
    let mut clients = Vec::new();
    for nick in ["carol", "Bob", "alice", "Dave"] {
        let mut c = user(addr, nick).await;
        join(&mut c, "/", "r").await;
        clients.push(c);
    }
    let who: WhoReply = ok(&clients[0].request("/", "who", json!({ "room": "r" })).await);
    assert_eq!(who.members, vec!["alice", "Bob", "carol", "Dave"]);
}

#[tokio::test]
async fn history_limit_is_kept_within_1_to_200() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    join(&mut alice, "/", "r").await;
    for i in 1..=205 {
        say(&mut alice, "/", "r", &format!("m{i}")).await;
    }
    let mut seqs = async |req: Value| -> Vec<u64> {
        let h: HistoryReply = ok(&alice.request("/", "history", req).await);
        h.messages.iter().map(|m| m.seq).collect()
    };
    assert_eq!(
        seqs(json!({ "room": "r" })).await,
        (156..=205).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(json!({ "room": "r", "limit": 1000 })).await,
        (6..=205).collect::<Vec<_>>()
    );
    assert_eq!(seqs(json!({ "room": "r", "limit": 0 })).await, vec![205]);
}

#[tokio::test]
async fn a_room_keeps_its_newest_messages_up_to_the_capacity() {
    let (_server, addr) = serve(ServerConfig {
        room_capacity: 5,
        ..config()
    })
    .await;
    let mut alice = user(addr, "alice").await;
    join(&mut alice, "/", "r").await;
    for i in 1..=8 {
        assert_eq!(say(&mut alice, "/", "r", &format!("m{i}")).await.seq, i);
    }
    let h: HistoryReply = ok(&alice.request("/", "history", json!({ "room": "r" })).await);
    let seqs: Vec<u64> = h.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7, 8]);
    let mut bob = user(addr, "bob").await;
    let joined = join(&mut bob, "/", "r").await;
    assert_eq!(joined.history, h.messages);
}

// ---- typing ----

#[tokio::test]
async fn typing_reaches_the_others_in_the_room() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    let mut carol = user(addr, "carol").await;
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    // Volatile, no ack asked.
    alice
        .send_packet(&Packet::event(
            "/",
            events::client::TYPING,
            vec![json!({ "room": "r" })],
            None,
        ))
        .await;
    let typing: Typing = decode(&bob.wait_event(events::server::TYPING).await);
    assert_eq!(
        typing,
        Typing {
            room: "r".into(),
            nick: "alice".into()
        }
    );
    assert_eq!(count(&pending(&mut alice).await, events::server::TYPING), 0);
    assert_eq!(count(&pending(&mut carol).await, events::server::TYPING), 0);
    // With an ack it is acknowledged; outside the room it is refused.
    let _: Value = ok(&bob.request("/", "typing", json!({ "room": "r" })).await);
    assert_eq!(
        code(&carol.request("/", "typing", json!({ "room": "r" })).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        decode::<Typing>(&alice.wait_event(events::server::TYPING).await).nick,
        "bob"
    );
}

// ---- errors ----

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

// ---- disconnect and shutdown ----

#[tokio::test]
async fn a_disconnect_is_announced_to_shared_rooms() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    let mut carol = user(addr, "carol").await;
    join(&mut alice, "/", "r").await;
    join(&mut alice, "/", "s").await;
    join(&mut bob, "/", "r").await;
    join(&mut bob, "/", "s").await;
    join(&mut carol, "/", "t").await;
    alice.close().await;
    let mut quits = Vec::new();
    for _ in 0..2 {
        quits.push(decode::<Presence>(
            &bob.wait_event(events::server::PRESENCE).await,
        ));
    }
    quits.sort_by(|a, b| a.room.cmp(&b.room));
    let expected: Vec<Presence> = ["r", "s"]
        .into_iter()
        .map(|room| Presence {
            room: room.into(),
            nick: "alice".into(),
            action: PresenceAction::Quit,
            previous: None,
        })
        .collect();
    assert_eq!(quits, expected);
    assert_eq!(
        count(&pending(&mut carol).await, events::server::PRESENCE),
        0
    );
    let who: WhoReply = ok(&bob.request("/", "who", json!({ "room": "r" })).await);
    assert_eq!(who.members, vec!["bob"]);
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_no_disconnect_packet() {
    let (server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    alice.join_ns("/other", None).await;
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
