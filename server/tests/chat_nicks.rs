//! The chat's nicks: the CONNECT that claims one (required, valid, not malformed, unique
//! without regard to case, one per connection across its namespaces, one winner among
//! concurrent claims), its release when its user goes, and a `nick` change announced to the
//! rooms its user shares, in every namespace.
//!
//! A real server on `127.0.0.1:0` in this process, driven by the raw Socket.IO client of
//! `tests/common`; every receive has a timeout. To prove that an event did NOT arrive, a test
//! makes a `ping` round trip on that client and looks at the packets skipped on the way
//! (`common::chat::pending`).

mod common;

use chat_protocol::events::{
    self, DmReply, ErrorCode, NickReply, Presence, PresenceAction, WhoReply,
};
use chat_protocol::socket_io::PacketKind;
use common::chat::{
    code, count, decode, failure, join, ok, pending, refused, say, start, user, user_in,
};
use common::{Client, RECV_TIMEOUT};
use serde_json::{Value, json};

#[tokio::test]
async fn connect_without_a_nick_is_refused() {
    let (_server, addr) = start().await;
    let mut c = Client::connect(addr).await;
    for auth in [None, Some(json!({})), Some(json!({ "key": "x" }))] {
        let p = c.connect_namespace("/", auth.clone()).await;
        assert_eq!(
            refused(&p).1,
            Some(ErrorCode::NickRequired),
            "auth {auth:?}"
        );
    }
    // The refusals left the connection usable.
    c.join_namespace("/", Some(json!({ "nick": "alice" })))
        .await;
}

#[tokio::test]
async fn connect_with_an_invalid_nick_is_refused() {
    let (_server, addr) = start().await;
    let mut c = Client::connect(addr).await;
    for nick in ["", "2pac", "a b", "a:b", "#chan", &"n".repeat(33)] {
        let p = c
            .connect_namespace("/", Some(json!({ "nick": nick })))
            .await;
        assert_eq!(refused(&p).1, Some(ErrorCode::InvalidName), "nick {nick:?}");
    }
    c.join_namespace("/", Some(json!({ "nick": "n".repeat(32) })))
        .await;
}

#[tokio::test]
async fn connect_with_a_taken_nick_is_refused_case_insensitively() {
    let (_server, addr) = start().await;
    let _alice = user(addr, "Alice").await;
    let mut c = Client::connect(addr).await;
    for nick in ["Alice", "alice", "ALICE"] {
        let p = c
            .connect_namespace("/", Some(json!({ "nick": nick })))
            .await;
        let (message, code) = refused(&p);
        assert_eq!(code, Some(ErrorCode::NickTaken));
        assert!(message.contains(nick), "message {message:?} names {nick}");
    }
    // Also from another namespace of another connection: nicks are server-wide.
    let p = c
        .connect_namespace("/other", Some(json!({ "nick": "alice" })))
        .await;
    assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
    c.join_namespace("/", Some(json!({ "nick": "alice2" })))
        .await;
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
        let p = c.connect_namespace("/", Some(auth.clone())).await;
        assert_eq!(refused(&p).1, Some(ErrorCode::BadRequest), "auth {auth}");
    }
    c.join_namespace("/", Some(json!({ "nick": "alice" })))
        .await;
}

#[tokio::test]
async fn a_second_namespace_shares_the_connections_nick() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    // No nick: inherited.
    alice.join_namespace("/other", None).await;
    // The same nick in another case is the same nick.
    alice
        .join_namespace("/third", Some(json!({ "nick": "ALICE" })))
        .await;
    // A different nick on the same connection is refused.
    let p = alice
        .connect_namespace("/fourth", Some(json!({ "nick": "bob" })))
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
    again
        .join_namespace("/", Some(json!({ "nick": "ALICE" })))
        .await;
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
                let p = c
                    .connect_namespace("/", Some(json!({ "nick": nick })))
                    .await;
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
            reason: None,
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
    let p = c
        .connect_namespace("/", Some(json!({ "nick": "Alicia" })))
        .await;
    assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
    c.join_namespace("/", Some(json!({ "nick": "alice" })))
        .await;
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
    alice.join_namespace("/other", None).await;
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

/// `away` marks the connection away with a reason (its rooms told, `who` and a `join` list
/// it), `whois` says who a nick is (registered or guest, the rooms shared with the asker,
/// idle time, away), and `away` without a reason is back.
#[tokio::test]
async fn away_and_whois() {
    let (server, addr) = start().await;
    let mut ann = user(addr, "ann").await;
    let mut ben = user(addr, "ben").await;
    join(&mut ann, "/", "r").await;
    join(&mut ben, "/", "r").await;
    join(&mut ben, "/", "only-ben").await;
    let reply = ben.request("/", "away", json!({"reason": "lunch"})).await;
    assert_eq!(reply["away"], "lunch", "{reply}");
    let p = loop {
        let p = ann.wait_event("presence").await;
        if p["action"] == "away" {
            break p;
        }
    };
    assert_eq!(
        (p["nick"].as_str(), p["reason"].as_str()),
        (Some("ben"), Some("lunch"))
    );
    let who = ann.request("/", "who", json!({"room": "r"})).await;
    assert_eq!(who["away"], json!(["ben"]), "{who}");
    let mut cat = user(addr, "cat").await;
    let joined = cat.request("/", "join", json!({"room": "r"})).await;
    assert_eq!(joined["away"], json!(["ben"]), "{joined}");
    let whois = ann.request("/", "whois", json!({"nick": "BEN"})).await;
    assert_eq!(whois["ok"], true, "{whois}");
    assert_eq!(whois["nick"], "ben");
    assert_eq!(whois["online"], true);
    assert_eq!(whois["registered"], false);
    assert_eq!(
        whois["rooms"],
        json!(["r"]),
        "only the shared rooms: {whois}"
    );
    assert!(
        whois["idle_secs"].as_u64().is_some_and(|s| s < 5),
        "{whois}"
    );
    assert_eq!(whois["away"], "lunch");
    // Back: the rooms are told, whois has no reason any more.
    let reply = ben.request("/", "away", json!({})).await;
    assert_eq!(reply["away"], Value::Null, "{reply}");
    let back = loop {
        let p = ann.wait_event("presence").await;
        if p["action"] == "back" {
            break p;
        }
    };
    assert_eq!(back["nick"], "ben");
    let whois = ann.request("/", "whois", json!({"nick": "ben"})).await;
    assert!(
        whois.get("away").is_none() || whois["away"].is_null(),
        "{whois}"
    );
    // Nobody of that name; a registered nick that is offline.
    let nobody = ann.request("/", "whois", json!({"nick": "zed"})).await;
    assert_eq!(nobody["error"]["code"], "user_offline", "{nobody}");
    let mut reg = Client::connect(addr).await;
    reg.join_namespace("/", Some(json!({"nick": "dora", "password": "pw-dora"})))
        .await;
    reg.close().await;
    let whois = ann.request("/", "whois", json!({"nick": "dora"})).await;
    assert_eq!(
        (whois["online"].as_bool(), whois["registered"].as_bool()),
        (Some(false), Some(true)),
        "{whois}"
    );
    // A reason with a control character is refused, as a topic would be.
    let bad = ben
        .request("/", "away", json!({"reason": "out\u{1b}[2J"}))
        .await;
    assert_eq!(bad["error"]["code"], "invalid_text", "{bad}");
    server.shutdown().await;
}
