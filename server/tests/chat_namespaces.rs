//! The chat's namespaces: a declared namespace's key, unknown names refused unless dynamic
//! namespaces are on, rooms and messages kept apart per namespace, and leaving a namespace
//! (its rooms quit; the last one frees the nick).
//!
//! A real server on `127.0.0.1:0` in this process, driven by the raw Socket.IO client of
//! `tests/common`; every receive has a timeout. To prove that an event did NOT arrive, a test
//! makes a `ping` round trip on that client and looks at the packets skipped on the way
//! (`common::chat::pending`).

mod common;

use chat_protocol::events::{self, ErrorCode, HistoryReply, Presence, PresenceAction, WhoReply};
use chat_protocol::socket_io::Packet;
use chat_server::{NamespaceConfig, ServerConfig};
use common::Client;
use common::chat::{
    config, count, decode, join, ok, pending, refused, say, serve, start, user, user_in,
};
use serde_json::json;

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
        let p = c.connect_namespace("/ops", Some(auth.clone())).await;
        let (message, code) = refused(&p);
        assert_eq!(code, Some(ErrorCode::Forbidden), "auth {auth}: {message}");
    }
    c.join_namespace("/ops", Some(json!({ "nick": "alice", "key": "k" })))
        .await;
    // `/` is open and inherits the nick.
    c.join_namespace("/", None).await;
    let joined = join(&mut c, "/ops", "war-room").await;
    assert_eq!(joined.members, vec!["alice"]);

    // A key is checked on a later namespace of a connection too.
    let mut bob = user(addr, "bob").await;
    let p = bob.connect_namespace("/ops", None).await;
    assert_eq!(refused(&p).1, Some(ErrorCode::Forbidden));
    bob.join_namespace("/ops", Some(json!({ "key": "k" })))
        .await;
}

#[tokio::test]
async fn unknown_namespaces_are_refused_when_not_dynamic() {
    let (_server, addr) = serve(ops_config(false)).await;
    let mut c = Client::connect(addr).await;
    let p = c
        .connect_namespace("/elsewhere", Some(json!({ "nick": "alice" })))
        .await;
    assert_eq!(refused(&p).0, "Invalid namespace");
    c.join_namespace("/", Some(json!({ "nick": "alice" })))
        .await;
    let p = c.connect_namespace("/elsewhere", None).await;
    assert_eq!(refused(&p).0, "Invalid namespace");
}

#[tokio::test]
async fn any_valid_namespace_is_open_when_dynamic() {
    let (_server, addr) = serve(ops_config(true)).await;
    let mut c = Client::connect(addr).await;
    c.join_namespace("/team-42/a.b_c", Some(json!({ "nick": "alice" })))
        .await;
    c.join_namespace("/x", None).await;
    // Declared namespaces keep their key.
    let p = c.connect_namespace("/ops", None).await;
    assert_eq!(refused(&p).1, Some(ErrorCode::Forbidden));
    let joined = join(&mut c, "/team-42/a.b_c", "r").await;
    assert_eq!(joined.members, vec!["alice"]);
}

#[tokio::test]
async fn rooms_of_different_namespaces_are_separate() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await; // in `/` and `/other`
    alice.join_namespace("/other", None).await;
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

#[tokio::test]
async fn leaving_a_namespace_quits_its_rooms_and_the_last_one_frees_the_nick() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    alice.join_namespace("/other", None).await;
    let mut bob = user(addr, "bob").await;
    bob.join_namespace("/other", None).await;
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
    let p = c
        .connect_namespace("/", Some(json!({ "nick": "alice" })))
        .await;
    assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
    let who: WhoReply = ok(&alice.request("/", "who", json!({ "room": "r" })).await);
    assert_eq!(who.members, vec!["alice", "bob"]);

    // Leaving the last namespace releases the nick. (bob's quit presence is sent by the same
    // disconnect handler, on this single-threaded runtime before the test runs again.)
    alice.send_packet(&Packet::disconnect("/")).await;
    let quit: Presence = decode(&bob.wait_event(events::server::PRESENCE).await);
    assert_eq!(quit.action, PresenceAction::Quit);
    c.join_namespace("/", Some(json!({ "nick": "alice" })))
        .await;
    join(&mut c, "/", "r").await;
    // The old connection cannot take it back now.
    let p = alice.connect_namespace("/", None).await;
    assert_eq!(refused(&p).1, Some(ErrorCode::NickTaken));
    // But a connection whose nick is still free takes it back on its next namespace.
    bob.send_packet(&Packet::disconnect("/")).await;
    bob.send_packet(&Packet::disconnect("/other")).await;
    bob.join_namespace("/", None).await;
    assert_eq!(join(&mut bob, "/", "r").await.members, vec!["alice", "bob"]);
}
