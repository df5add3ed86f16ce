//! Durable history, catch-up, identities, tokens and offline direct messages: the chat over
//! its SQLite store (and the memory store where the behaviour is shared), restarted on the
//! same file where it matters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chat_protocol::socket_io::{Packet, PacketKind};
use chat_server::chat::sqlite::Retention;
use chat_server::chat::token::{Claims, sign};
use chat_server::config::StoreConfig;
use chat_server::{NamespaceConfig, RunningServer, ServerConfig};
use common::Client;
use serde_json::{Value, json};

fn config(store: StoreConfig) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store,
        ..ServerConfig::default()
    }
}

fn sqlite(dir: &Path) -> StoreConfig {
    StoreConfig::Sqlite(dir.join("chat.db"))
}

async fn start(config: ServerConfig) -> RunningServer {
    chat_server::start(config).await.expect("server starts")
}

/// Connects `/` with this auth; panics on refusal.
async fn user(addr: SocketAddr, auth: Value) -> Client {
    let mut c = Client::connect(addr).await;
    let p = c.connect_namespace("/", Some(auth.clone())).await;
    assert_eq!(p.kind, PacketKind::Connect, "{auth} refused: {p:?}");
    c.wait_event("notice").await;
    c
}

/// The CONNECT_ERROR data code for this auth on `nsp`.
async fn refused(addr: SocketAddr, nsp: &str, auth: Value) -> (String, String) {
    let mut c = Client::connect(addr).await;
    let p = c.connect_namespace(nsp, Some(auth)).await;
    assert_eq!(
        p.kind,
        PacketKind::ConnectError,
        "expected a refusal, got {p:?}"
    );
    let data = p.data.unwrap();
    (
        data["data"]["code"].as_str().unwrap_or("").to_owned(),
        data["message"].as_str().unwrap().to_owned(),
    )
}

async fn say(c: &mut Client, room: &str, text: &str) -> Value {
    let r = c
        .request("/", "message", json!({"room": room, "text": text}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    r["message"].clone()
}

async fn join(c: &mut Client, room: &str) -> Value {
    let r = c.request("/", "join", json!({"room": room})).await;
    assert_eq!(r["ok"], true, "{r}");
    r
}

/// `message` events for `room` seen before a ping round trip, as seqs.
async fn seqs_seen(c: &mut Client, room: &str) -> Vec<u64> {
    events_seen(c, "message")
        .await
        .into_iter()
        .filter(|m| m["room"] == room)
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

async fn events_seen(c: &mut Client, name: &str) -> Vec<Value> {
    let (_, skipped) = c.call("/", "ping", vec![json!({})]).await;
    skipped
        .into_iter()
        .filter(|p| p.event_name() == Some(name))
        .map(|p| p.data.unwrap()[1].clone())
        .collect()
}

// ---------------------------------------------------------------- durability

#[tokio::test]
async fn messages_survive_a_restart_and_seq_continues() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(sqlite(dir.path()))).await;
    let mut a = user(server.local_addr(), json!({"nick": "ada"})).await;
    join(&mut a, "r").await;
    for i in 1..=3 {
        assert_eq!(say(&mut a, "r", &format!("m{i}")).await["seq"], i);
    }
    server.shutdown().await;

    let server = start(config(sqlite(dir.path()))).await;
    let mut a = user(server.local_addr(), json!({"nick": "ada"})).await;
    let history = join(&mut a, "r").await["history"].clone();
    let texts: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m1", "m2", "m3"]);
    assert_eq!(say(&mut a, "r", "m4").await["seq"], 4);
    let page = a
        .request(
            "/",
            "history",
            json!({"room": "r", "before": 4, "limit": 2}),
        )
        .await;
    assert_eq!(
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3]
    );
}

/// `ada` and `bob`, both in room `r`.
async fn ada_and_bob_in_r(addr: SocketAddr) -> (Client, Client) {
    let mut a = user(addr, json!({"nick": "ada"})).await;
    let mut b = user(addr, json!({"nick": "bob"})).await;
    join(&mut a, "r").await;
    join(&mut b, "r").await;
    (a, b)
}

#[tokio::test]
async fn a_resent_client_message_id_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    for store in [StoreConfig::Memory, sqlite(dir.path())] {
        let server = start(config(store)).await;
        let (mut a, mut b) = ada_and_bob_in_r(server.local_addr()).await;
        let first = a
            .request(
                "/",
                "message",
                json!({"room": "r", "text": "once", "cid": "c-1"}),
            )
            .await;
        let again = a
            .request(
                "/",
                "message",
                json!({"room": "r", "text": "once", "cid": "c-1"}),
            )
            .await;
        assert_eq!(first, again, "the ack of a re-send is the first message");
        assert_eq!(seqs_seen(&mut b, "r").await, [1], "published once");
        let bad = a
            .request("/", "message", json!({"room": "r", "text": "x", "cid": ""}))
            .await;
        assert_eq!(bad["error"]["code"], "bad_request");
    }
}

/// Sends `message` events without waiting for their acks, ack ids from 1000.
async fn send_without_waiting(c: &mut Client, requests: &[Value]) {
    for (i, r) in requests.iter().enumerate() {
        c.send_packet(&Packet::event(
            "/",
            "message",
            vec![r.clone()],
            Some(1000 + i as u64),
        ))
        .await;
    }
}

#[tokio::test]
async fn pipelined_messages_are_stored_and_acknowledged_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for store in [StoreConfig::Memory, sqlite(dir.path())] {
        let server = start(config(store)).await;
        let (mut a, mut b) = ada_and_bob_in_r(server.local_addr()).await;
        // More than a connection's messages in flight (16), a re-send of the one before it
        // (same cid) and a refused one among them, then a `history` at once.
        let mut requests: Vec<Value> = (0..40)
            .map(|i| json!({"room": "r", "text": format!("p{i}"), "cid": format!("c{i}")}))
            .collect();
        requests[21] = json!({"room": "r", "text": "p20", "cid": "c20"});
        requests[30] = json!({"room": "elsewhere", "text": "refused"});
        send_without_waiting(&mut a, &requests).await;
        let (history, skipped) = a
            .call("/", "history", vec![json!({"room": "r", "limit": 100})])
            .await;
        let acks: Vec<(u64, Value)> = skipped
            .into_iter()
            .filter(|p| p.kind == PacketKind::Ack)
            .map(|p| (p.id.unwrap() - 1000, p.data.unwrap()[0].clone()))
            .collect();
        // Every message is answered before the `history` that followed it.
        assert_eq!(acks.len(), 40, "{acks:?}");
        let refused: Vec<&(u64, Value)> = acks.iter().filter(|(_, r)| r["ok"] != true).collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, 30);
        assert_eq!(refused[0].1["error"]["code"], "not_in_room");
        // The accepted ones are answered in the order sent, the re-send with the first.
        let ok: Vec<&(u64, Value)> = acks.iter().filter(|(_, r)| r["ok"] == true).collect();
        let order: Vec<u64> = ok.iter().map(|(i, _)| *i).collect();
        let mut expected: Vec<u64> = (0..40).filter(|i| *i != 30).collect();
        assert_eq!(order, expected);
        assert_eq!(ok[20].1["message"], ok[21].1["message"]);
        expected.retain(|i| *i != 21);
        let seqs: Vec<u64> = ok
            .iter()
            .filter(|(i, _)| *i != 21)
            .map(|(_, r)| r["message"]["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=38).collect::<Vec<_>>());
        let texts: Vec<String> = history[0]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        let sent: Vec<String> = expected.iter().map(|i| format!("p{i}")).collect();
        assert_eq!(texts, sent, "history has them all, in order, once");
        assert_eq!(seqs_seen(&mut b, "r").await, (1..=38).collect::<Vec<_>>());
        server.shutdown().await;
    }
}

#[tokio::test]
async fn messages_in_flight_at_a_disconnect_come_before_the_quit() {
    let dir = tempfile::tempdir().unwrap();
    for store in [StoreConfig::Memory, sqlite(dir.path())] {
        let server = start(config(store)).await;
        let (mut a, mut b) = ada_and_bob_in_r(server.local_addr()).await;
        let requests: Vec<Value> = (0..10)
            .map(|i| json!({"room": "r", "text": format!("m{i}")}))
            .collect();
        send_without_waiting(&mut a, &requests).await;
        // An Engine.IO close right behind them; the socket is read to its end (closing it
        // with the acks unread would reset the connection and lose the requests).
        a.send("1").await;
        a.expect_close().await;
        let mut seen = Vec::new();
        loop {
            let (_, name, args) = b.recv_event().await;
            match name.as_str() {
                "message" => seen.push(args[0]["text"].as_str().unwrap().to_owned()),
                "presence" if args[0]["action"] == "quit" => break,
                _ => {}
            }
        }
        let sent: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(seen, sent, "every message, then the quit");
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waits_out_another_process_holding_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(sqlite(dir.path()))).await;
    let (mut a, _b) = ada_and_bob_in_r(server.local_addr()).await;
    // Another process (here, another connection) writes to the file and holds its lock for
    // a moment; a message arrives meanwhile whose batch starts with a read (its client id is
    // looked up before it is inserted).
    join(&mut a, "fresh").await;
    let other = rusqlite::Connection::open(dir.path().join("chat.db")).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO meta (key, value) VALUES ('probe', 1);")
        .unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });
    let reply = a
        .request(
            "/",
            "message",
            json!({"room": "fresh", "text": "waited", "cid": "w-1"}),
        )
        .await;
    holder.join().unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["message"]["seq"], 1);
}

// ---------------------------------------------------------------- catch-up

/// Sends `n` messages from a fresh sender in `room`.
async fn send_n(addr: SocketAddr, nick: &str, room: &str, n: usize) {
    let mut s = user(addr, json!({"nick": nick})).await;
    join(&mut s, room).await;
    for i in 0..n {
        say(&mut s, room, &format!("{nick}-{i}")).await;
    }
    s.close().await;
}

#[tokio::test]
async fn catch_up_edges_empty_caught_up_and_missed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(sqlite(dir.path()))).await;
    let addr = server.local_addr();
    // Empty room: rejoined, nothing sent.
    let mut c = user(addr, json!({"nick": "cat", "since": {"empty": 0}})).await;
    assert!(seqs_seen(&mut c, "empty").await.is_empty());
    let who = c.request("/", "who", json!({"room": "empty"})).await;
    assert_eq!(who["members"], json!(["cat"]), "since rejoins the room");
    c.close().await;

    send_n(addr, "snd", "r", 5).await;
    // Exactly caught up.
    let mut c = user(addr, json!({"nick": "cat", "since": {"r": 5}})).await;
    assert!(seqs_seen(&mut c, "r").await.is_empty());
    c.close().await;
    // Missed 3..5, then live traffic follows.
    let mut c = user(addr, json!({"nick": "cat", "since": {"r": 2}})).await;
    assert_eq!(seqs_seen(&mut c, "r").await, [3, 4, 5]);
    send_n(addr, "snd", "r", 1).await;
    assert_eq!(seqs_seen(&mut c, "r").await, [6]);
}

#[tokio::test]
async fn far_behind_gets_the_newest_n_and_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServerConfig {
        catchup_limit: 10,
        ..config(sqlite(dir.path()))
    })
    .await;
    send_n(server.local_addr(), "snd", "r", 30).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.join_namespace("/", Some(json!({"nick": "cat", "since": {"r": 0}})))
        .await;
    let (_, skipped) = c.call("/", "ping", vec![json!({})]).await;
    let notices: Vec<String> = skipped
        .iter()
        .filter(|p| p.event_name() == Some("notice"))
        .map(|p| {
            p.data.as_ref().unwrap()[1]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        notices
            .iter()
            .any(|t| t == "20 older messages in r not shown"),
        "{notices:?}"
    );
    let seqs: Vec<u64> = skipped
        .iter()
        .filter(|p| p.event_name() == Some("message"))
        .map(|p| p.data.as_ref().unwrap()[1]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_racing_live_messages_has_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    for store in [StoreConfig::Memory, sqlite(dir.path())] {
        let server = start(config(store)).await;
        let addr = server.local_addr();
        send_n(addr, "warm", "r", 20).await;
        let sender = tokio::spawn(async move { send_n(addr, "snd", "r", 300).await });
        let mut seen = Vec::new();
        let mut since = 20;
        // Reconnect several times while the sender is busy.
        for round in 0..6 {
            let mut c = user(
                addr,
                json!({"nick": format!("cat{round}"), "since": {"r": since}}),
            )
            .await;
            let got = seqs_seen(&mut c, "r").await;
            if let Some(last) = got.last() {
                since = *last;
            }
            seen.extend(got);
            c.close().await;
        }
        sender.await.unwrap();
        let mut c = user(addr, json!({"nick": "final", "since": {"r": since}})).await;
        seen.extend(seqs_seen(&mut c, "r").await);
        assert_eq!(
            seen,
            (21..=320).collect::<Vec<_>>(),
            "every message once, in order"
        );
    }
}

// ---------------------------------------------------------------- identities and tokens

#[tokio::test]
async fn a_registered_nick_needs_its_password_and_may_connect_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(sqlite(dir.path()))).await;
    let addr = server.local_addr();
    let _first = user(addr, json!({"nick": "Ada", "password": "correct horse"})).await;
    assert_eq!(
        refused(addr, "/", json!({"nick": "ada"})).await.0,
        "nick_claimed"
    );
    let (code, message) = refused(addr, "/", json!({"nick": "ada", "password": "wrong"})).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("wrong_password", "wrong password for 'ada'")
    );
    // The same identity on a second device.
    let mut second = user(addr, json!({"nick": "ada", "password": "correct horse"})).await;
    second.request("/", "ping", json!({})).await;
    // A guest nick stays unique.
    let _g = user(addr, json!({"nick": "guest"})).await;
    assert_eq!(
        refused(addr, "/", json!({"nick": "guest"})).await.0,
        "nick_taken"
    );
    assert_eq!(
        refused(addr, "/", json!({"nick": "guest", "password": "pw"}))
            .await
            .0,
        "nick_taken"
    );
    // Nobody can switch to a registered nick.
    let mut g = user(addr, json!({"nick": "eve"})).await;
    let r = g.request("/", "nick", json!({"nick": "ADA"})).await;
    assert_eq!(r["error"]["code"], "nick_claimed");
    server.shutdown().await;

    // Registration is durable.
    let server = start(config(sqlite(dir.path()))).await;
    assert_eq!(
        refused(
            server.local_addr(),
            "/",
            json!({"nick": "ada", "password": "nope"})
        )
        .await
        .0,
        "wrong_password"
    );
    user(
        server.local_addr(),
        json!({"nick": "ada", "password": "correct horse"}),
    )
    .await;
}

#[tokio::test]
async fn token_namespaces_refuse_missing_expired_forged_and_foreign_tokens() {
    let secret = "s3cret";
    let server = start(ServerConfig {
        namespaces: vec![NamespaceConfig {
            name: "/vip".into(),
            key: None,
            token: true,
        }],
        token_secret: Some(secret.into()),
        ..config(StoreConfig::Memory)
    })
    .await;
    let addr = server.local_addr();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let good = sign(
        &Claims {
            sub: "ada".into(),
            exp: now + 600,
        },
        secret.as_bytes(),
    );
    let expired = sign(
        &Claims {
            sub: "ada".into(),
            exp: now - 1,
        },
        secret.as_bytes(),
    );
    let forged = sign(
        &Claims {
            sub: "ada".into(),
            exp: now + 600,
        },
        b"guess",
    );
    let foreign = sign(
        &Claims {
            sub: "bob".into(),
            exp: now + 600,
        },
        secret.as_bytes(),
    );
    assert_eq!(
        refused(addr, "/vip", json!({"nick": "ada"})).await.0,
        "token_required"
    );
    assert_eq!(
        refused(addr, "/vip", json!({"nick": "ada", "token": expired}))
            .await
            .0,
        "token_expired"
    );
    assert_eq!(
        refused(addr, "/vip", json!({"nick": "ada", "token": forged}))
            .await
            .0,
        "token_invalid"
    );
    assert_eq!(
        refused(addr, "/vip", json!({"nick": "ada", "token": "not.a.jwt"}))
            .await
            .0,
        "token_invalid"
    );
    let (code, message) = refused(addr, "/vip", json!({"nick": "ada", "token": foreign})).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("token_invalid", "the token is for 'bob', not 'ada'")
    );
    let mut c = Client::connect(addr).await;
    c.join_namespace("/vip", Some(json!({"nick": "ada", "token": good})))
        .await;
    // `/` stays open to guests.
    user(addr, json!({"nick": "guest"})).await;
}

// ---------------------------------------------------------------- offline direct messages

/// The `dm` events that reach `c` before a ping, answering none of their acks.
async fn dms_unacked(c: &mut Client) -> Vec<Packet> {
    let (_, skipped) = c.call("/", "ping", vec![json!({})]).await;
    skipped
        .into_iter()
        .filter(|p| p.event_name() == Some("dm"))
        .collect()
}

#[tokio::test]
async fn a_dm_to_an_offline_registered_nick_waits_across_a_restart_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(sqlite(dir.path()))).await;
    let addr = server.local_addr();
    user(addr, json!({"nick": "bob", "password": "pw"}))
        .await
        .close()
        .await;
    let mut ada = user(addr, json!({"nick": "ada"})).await;
    let r = ada
        .request("/", "dm", json!({"to": "BOB", "text": "first"}))
        .await;
    assert_eq!(
        (r["delivered"].as_bool(), r["queued"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(r["message"]["to"], "bob");
    ada.request("/", "dm", json!({"to": "bob", "text": "second"}))
        .await;
    // A guest that is offline gets no mailbox.
    let r = ada
        .request("/", "dm", json!({"to": "nobody", "text": "x"}))
        .await;
    assert_eq!(r["error"]["code"], "user_offline");
    // Nobody else can pick them up.
    assert_eq!(
        refused(addr, "/", json!({"nick": "bob"})).await.0,
        "nick_claimed"
    );
    server.shutdown().await;

    let server = start(config(sqlite(dir.path()))).await;
    let addr = server.local_addr();
    // Delivered in order; not acked this time, so they stay.
    let mut bob = user(addr, json!({"nick": "bob", "password": "pw"})).await;
    let texts = |ps: &[Packet]| {
        ps.iter()
            .map(|p| {
                p.data.as_ref().unwrap()[1]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    let first = dms_unacked(&mut bob).await;
    assert_eq!(texts(&first), ["first", "second"]);
    assert!(first.iter().all(|p| p.id.is_some()), "each asks for an ack");
    // Once per connection: leaving the namespace and CONNECTing it again on the same
    // connection (no new password check) does not read them again.
    bob.send_packet(&Packet::disconnect("/")).await;
    let p = bob
        .connect_namespace("/", Some(json!({"nick": "bob", "password": "pw"})))
        .await;
    assert_eq!(p.kind, PacketKind::Connect, "{p:?}");
    bob.wait_event("notice").await;
    assert_eq!(texts(&dms_unacked(&mut bob).await), Vec::<String>::new());
    bob.close().await;
    // Again, and this time acknowledged.
    let mut bob = user(addr, json!({"nick": "bob", "password": "pw"})).await;
    let again = dms_unacked(&mut bob).await;
    assert_eq!(texts(&again), ["first", "second"]);
    for p in &again {
        bob.send_packet(&Packet::ack("/", p.id.unwrap(), vec![]))
            .await;
    }
    bob.request("/", "ping", json!({})).await;
    bob.close().await;
    // The removal commits right after the ack: check by reconnecting (bounded).
    let mut left = again.len();
    for _ in 0..40 {
        let mut bob = user(addr, json!({"nick": "bob", "password": "pw"})).await;
        left = dms_unacked(&mut bob).await.len();
        bob.close().await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "acknowledged messages are gone");
}

// ---------------------------------------------------------------- retention

#[tokio::test]
async fn retention_keeps_the_newest_messages_per_room() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_messages: Some(5),
        max_age: None,
    };
    let server = start(ServerConfig {
        retention,
        ..config(sqlite(dir.path()))
    })
    .await;
    send_n(server.local_addr(), "snd", "r", 12).await;
    let mut c = user(server.local_addr(), json!({"nick": "cat"})).await;
    join(&mut c, "r").await;
    // Enforced by the writer within about a second, off the hot path: poll, bounded.
    let mut kept = Vec::new();
    for _ in 0..40 {
        let h = c
            .request("/", "history", json!({"room": "r", "limit": 100}))
            .await;
        kept = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        if kept.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kept, [8, 9, 10, 11, 12]);
    // Seq keeps counting after removal.
    assert_eq!(say(&mut c, "r", "next").await["seq"], 13);
}

#[tokio::test]
async fn retention_by_age_removes_old_messages() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_messages: None,
        max_age: Some(Duration::from_secs(1)),
    };
    let server = start(ServerConfig {
        retention,
        ..config(sqlite(dir.path()))
    })
    .await;
    send_n(server.local_addr(), "snd", "r", 3).await;
    let mut c = user(server.local_addr(), json!({"nick": "cat"})).await;
    join(&mut c, "r").await;
    // Older than a second, removed on one of the writer's passes (each second): poll, bounded.
    let mut left = usize::MAX;
    for _ in 0..50 {
        let h = c.request("/", "history", json!({"room": "r"})).await;
        left = h["messages"].as_array().unwrap().len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0);
    assert_eq!(say(&mut c, "r", "fresh").await["seq"], 4);
}
