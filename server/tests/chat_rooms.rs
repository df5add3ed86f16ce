//! The chat's rooms: `join` (its reply: members, topic, history), room names, `leave`,
//! rooms announced when created and deleted, `who` and `rooms`, the topic, `history` paging
//! and its bounds, a room's capacity, `typing`, and a disconnect announced to shared rooms.
//!
//! A real server on `127.0.0.1:0` in this process, driven by the raw Socket.IO client of
//! `tests/common`; every receive has a timeout. To prove that an event did NOT arrive, a test
//! makes a `ping` round trip on that client and looks at the packets skipped on the way
//! (`common::chat::pending`).

mod common;

use chat_protocol::events::{
    self, ErrorCode, HistoryReply, JoinReply, Presence, PresenceAction, RoomAction, RoomChange,
    RoomInfo, RoomsReply, TopicChange, TopicReply, Typing, WhoReply,
};
use chat_protocol::socket_io::Packet;
use chat_server::ServerConfig;
use common::chat::{
    call, code, config, count, decode, join, notices, ok, pending, say, serve, start, user,
};
use serde_json::{Value, json};

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
            previous: None,
            reason: None,
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
async fn a_storm_of_new_rooms_is_announced_at_most_twenty_a_second() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    // Bob creates 60 rooms as fast as the server answers (well within a second).
    let started = std::time::Instant::now();
    for i in 0..60 {
        join(&mut bob, "/", &format!("r{i}")).await;
    }
    let quick = started.elapsed() < std::time::Duration::from_millis(900);
    let seen = count(&pending(&mut alice).await, events::server::ROOM);
    if quick {
        assert_eq!(seen, 20, "one second's worth, the rest dropped");
    } else {
        // A slow machine spread the joins over more than one second.
        assert!((20..60).contains(&seen), "{seen}");
    }
}

#[tokio::test]
async fn join_rejects_invalid_room_names() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    for room in ["", "#rust", "a b", "-x", "a,b", &"r".repeat(65)] {
        let reply = alice.request("/", "join", json!({ "room": room })).await;
        assert_eq!(code(&reply), ErrorCode::InvalidName, "room {room:?}");
    }
    // A room that would pass for `apple` by mixing scripts (a Cyrillic а).
    let reply = alice.request("/", "join", json!({ "room": "аpple" })).await;
    assert_eq!(code(&reply), ErrorCode::InvalidName);
    assert!(
        reply.to_string().contains("mixes scripts"),
        "the refusal says why: {reply}"
    );
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
    bob.join_namespace("/other", None).await;
    let rooms: RoomsReply = ok(&bob.request("/other", "rooms", json!({})).await);
    assert!(rooms.rooms.is_empty(), "{:?}", rooms.rooms);
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
            reason: None,
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

/// Rooms made before the script rule keep their names: one whose name mixes scripts and has
/// stored messages is joined, and rejoined through a CONNECT's `since`; a new room whose
/// name mixes scripts is refused both ways.
#[tokio::test]
async fn a_room_made_before_the_script_rule_keeps_its_name() {
    use chat_server::chat::sqlite::{Retention, SqliteStore};
    use chat_server::chat::store::{NewMessage, RoomLog};
    use chat_server::config::StoreConfig;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = SqliteStore::open(&path, Retention::default()).unwrap();
        store
            .append(
                NewMessage {
                    namespace: "/".into(),
                    room: "Москва.ru".into(),
                    from: "ann".into(),
                    text: "привет".into(),
                    action: false,
                    cid: None,
                },
                Box::new(|_| {}),
            )
            .await
            .unwrap();
    }
    let mut c = config();
    c.store = StoreConfig::Sqlite(path);
    let (_server, addr) = serve(c).await;
    let mut bob = user(addr, "bob").await;
    let reply = join(&mut bob, "/", "Москва.ru").await;
    assert_eq!(reply.history.len(), 1, "its stored message");
    let refused = bob
        .request("/", "join", json!({ "room": "Москва.su" }))
        .await;
    assert_eq!(
        code(&refused),
        ErrorCode::InvalidName,
        "a new one: {refused}"
    );
    drop(bob);
    let mut again = common::Client::connect(addr).await;
    again
        .join_namespace(
            "/",
            Some(json!({"nick": "bob", "since": {"Москва.ru": 0, "Париж.fr": 0}})),
        )
        .await;
    let events = pending(&mut again).await;
    let notices = notices(&events);
    assert!(
        notices
            .iter()
            .any(|t| t.contains("not rejoined: Париж.fr") && !t.contains("Москва.ru")),
        "{notices:?}"
    );
    assert!(
        events
            .iter()
            .any(|(n, v)| n == "message" && v["text"] == "привет"),
        "the kept room's catch-up: {events:?}"
    );
}
