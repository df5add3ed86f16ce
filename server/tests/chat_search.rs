//! The `search` request end to end: a phrase in the rooms the asker is in (one, or all of
//! the namespace), query syntax in the text read as plain words, a capped page with a cursor
//! for the next, refusals (empty or too long text, a room the asker is not in, a bad
//! cursor, over the per-connection budget, `busy` beyond the searches running at once),
//! and, on SQLite, hits gone with retention and kept across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chat_protocol::events::{ErrorCode, SearchReply};
use chat_server::chat::sqlite::Retention;
use chat_server::config::StoreConfig;
use common::Client;
use common::chat::{code, config, join, ok, say, serve, start, user};
use serde_json::{Value, json};

async fn search(c: &mut Client, arg: Value) -> Value {
    c.request("/", "search", arg).await
}

fn texts(reply: &SearchReply) -> Vec<String> {
    reply
        .messages
        .iter()
        .map(|m| format!("{}:{}", m.room, m.text))
        .collect()
}

#[tokio::test]
async fn a_phrase_is_found_newest_first_in_the_rooms_the_user_is_in() {
    let (_server, addr) = start().await;
    let mut ann = user(addr, "ann").await;
    let mut bob = user(addr, "bob").await;
    join(&mut ann, "/", "one").await;
    join(&mut ann, "/", "two").await;
    join(&mut bob, "/", "secret").await;
    say(&mut ann, "/", "one", "the Deploy went fine").await;
    say(&mut ann, "/", "two", "deploy went badly").await;
    say(&mut ann, "/", "two", "went deploy").await;
    say(&mut bob, "/", "secret", "deploy went secretly").await;

    let all: SearchReply = ok(&search(&mut ann, json!({"text": "deploy WENT"})).await);
    assert_eq!(
        texts(&all),
        ["two:deploy went badly", "one:the Deploy went fine"]
    );
    assert_eq!(all.next, None);
    let one: SearchReply =
        ok(&search(&mut ann, json!({"room": "one", "text": "deploy went"})).await);
    assert_eq!(texts(&one), ["one:the Deploy went fine"]);
    // Full messages: everything a `message` event carries.
    assert_eq!(one.messages[0].from, "ann");
    assert_eq!(one.messages[0].seq, 1);
    // A room the user is not in is refused by name and left out of "all rooms".
    let refused = search(&mut ann, json!({"room": "secret", "text": "deploy"})).await;
    assert_eq!(code(&refused), ErrorCode::NotInRoom);
    let bobs: SearchReply = ok(&search(&mut bob, json!({"text": "deploy went"})).await);
    assert_eq!(texts(&bobs), ["secret:deploy went secretly"]);
    // After leaving a room, its messages are no longer searched.
    ann.request("/", "leave", json!({"room": "two"})).await;
    let after: SearchReply = ok(&search(&mut ann, json!({"text": "deploy"})).await);
    assert_eq!(texts(&after), ["one:the Deploy went fine"]);
}

#[tokio::test]
async fn query_syntax_in_the_text_is_read_as_words() {
    let (_server, addr) = start().await;
    let mut ann = user(addr, "ann").await;
    join(&mut ann, "/", "r").await;
    say(&mut ann, "/", "r", r#"he typed "x" OR y* NEAR(z)"#).await;
    say(&mut ann, "/", "r", "x and y").await;
    for (text, hits) in [
        (r#""x" OR y*"#, 1),
        ("x OR y", 1),
        (r#"x" OR "y"#, 1),
        ("NEAR(z)", 1),
        ("x AND y", 1),
        ("y NEAR", 1),
        ("x y", 0),
        ("*", 0),
    ] {
        let reply: SearchReply = ok(&search(&mut ann, json!({"text": text})).await);
        assert_eq!(reply.messages.len(), hits, "{text}: {:?}", texts(&reply));
    }
}

#[tokio::test]
async fn bad_searches_get_documented_refusals() {
    let (_server, addr) = start().await;
    let mut ann = user(addr, "ann").await;
    join(&mut ann, "/", "r").await;
    for text in ["", "   ", &"x".repeat(201)] {
        let reply = search(&mut ann, json!({"text": text})).await;
        assert_eq!(code(&reply), ErrorCode::InvalidText, "{text:?}");
    }
    let ok200: SearchReply = ok(&search(&mut ann, json!({"text": "x".repeat(200)})).await);
    assert!(ok200.messages.is_empty());
    // A `before` the server could not have given: not a number, or not written as it
    // writes its cursors (orders start at 1).
    for before in ["nope", "0", "+5", "05", "-1", ""] {
        let reply = search(&mut ann, json!({"text": "a", "before": before})).await;
        assert_eq!(code(&reply), ErrorCode::BadRequest, "{before:?}");
    }
    let reply = search(&mut ann, json!({"room": "bad name!", "text": "a"})).await;
    assert_eq!(code(&reply), ErrorCode::InvalidName);
    let reply = search(&mut ann, json!({"words": "a"})).await;
    assert_eq!(code(&reply), ErrorCode::BadRequest);
}

#[tokio::test]
async fn a_connection_gets_a_burst_of_searches_then_rate_limited() {
    let (_server, addr) = start().await;
    let mut ann = user(addr, "ann").await;
    join(&mut ann, "/", "r").await;
    // The budget: 10 at once, then one a second.
    for i in 0..10 {
        let reply = search(&mut ann, json!({"text": "anything"})).await;
        assert_eq!(reply["ok"], json!(true), "search {i}: {reply}");
    }
    let reply = search(&mut ann, json!({"text": "anything"})).await;
    assert_eq!(code(&reply), ErrorCode::RateLimited);
    // Another connection has its own budget.
    let mut bob = user(addr, "bob").await;
    join(&mut bob, "/", "r").await;
    let reply = search(&mut bob, json!({"text": "anything"})).await;
    assert_eq!(reply["ok"], json!(true));
}

#[tokio::test]
async fn pages_are_capped_and_follow_their_cursor() {
    let (_server, addr) = start().await;
    let mut ann = user(addr, "ann").await;
    join(&mut ann, "/", "r").await;
    for i in 1..=60 {
        say(&mut ann, "/", "r", &format!("ping {i}")).await;
    }
    let first: SearchReply = ok(&search(&mut ann, json!({"text": "ping", "limit": 1000})).await);
    assert_eq!(first.messages.len(), 50, "at most 50 a page");
    assert_eq!(first.messages[0].text, "ping 60");
    let default: SearchReply = ok(&search(&mut ann, json!({"text": "ping"})).await);
    assert_eq!(default.messages.len(), 20, "20 by default");
    let next = default.next.clone().expect("more");
    let second: SearchReply = ok(&search(
        &mut ann,
        json!({"text": "ping", "before": next, "limit": 30}),
    )
    .await);
    assert_eq!(second.messages.first().unwrap().text, "ping 40");
    assert_eq!(second.messages.last().unwrap().text, "ping 11");
    let next = second.next.clone().expect("more");
    let third: SearchReply = ok(&search(
        &mut ann,
        json!({"text": "ping", "before": next, "limit": 30}),
    )
    .await);
    assert_eq!(third.messages.len(), 10);
    assert_eq!(third.messages.last().unwrap().text, "ping 1");
    assert_eq!(third.next, None, "the last page says so");
}

#[tokio::test]
async fn on_sqlite_retention_removes_hits_and_a_restart_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = || {
        let mut c = config();
        c.store = StoreConfig::Sqlite(dir.path().join("chat.db"));
        c.retention = Retention {
            max_messages: Some(3),
            max_age: None,
        };
        c
    };
    let (server, addr) = serve(sqlite()).await;
    let mut ann = user(addr, "ann").await;
    join(&mut ann, "/", "r").await;
    for i in 1..=5 {
        say(&mut ann, "/", "r", &format!("kestrel {i}")).await;
    }
    // Retention runs on the writer about once a second: poll, bounded.
    let mut found = Vec::new();
    for _ in 0..4 {
        let reply: SearchReply = ok(&search(&mut ann, json!({"text": "kestrel"})).await);
        found = texts(&reply);
        if found.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(found, ["r:kestrel 5", "r:kestrel 4", "r:kestrel 3"]);
    ann.close().await;
    server.shutdown().await;

    let (_server, addr) = serve(sqlite()).await;
    let mut ann = user(addr, "ann").await;
    join(&mut ann, "/", "r").await;
    let reply: SearchReply = ok(&search(&mut ann, json!({"text": "kestrel 4"})).await);
    assert_eq!(texts(&reply), ["r:kestrel 4"]);
}

/// The memory store, except that searches wait until the test opens the gate.
struct GatedSearch {
    inner: chat_server::chat::store::MemoryStore,
    waiting: std::sync::atomic::AtomicUsize,
    gate: tokio::sync::Semaphore,
}

mod gated {
    use super::GatedSearch;
    use chat_protocol::events::{ChatMessage, DirectMessage};
    use chat_server::chat::store::{
        AppendDone, Attach, Identity, NewMessage, Publish, Restriction, RestrictionKind, RoomLog,
        SearchPage, SearchQuery, Store, StoreFuture,
    };
    use std::sync::atomic::Ordering;

    impl RoomLog for GatedSearch {
        fn append_then(&self, message: NewMessage, publish: Publish, done: AppendDone) {
            self.inner.append_then(message, publish, done)
        }
        fn attach(
            &self,
            ns: &str,
            room: &str,
            after: Option<u64>,
            limit: usize,
            attach: Attach,
        ) -> StoreFuture<'_, ()> {
            self.inner.attach(ns, room, after, limit, attach)
        }
        fn history(
            &self,
            ns: &str,
            room: &str,
            before: Option<u64>,
            limit: usize,
        ) -> StoreFuture<'_, Vec<ChatMessage>> {
            self.inner.history(ns, room, before, limit)
        }
    }

    impl Store for GatedSearch {
        fn topic(&self, ns: &str, room: &str) -> StoreFuture<'_, Option<String>> {
            self.inner.topic(ns, room)
        }
        fn set_topic(&self, ns: &str, room: &str, topic: Option<String>) -> StoreFuture<'_, ()> {
            self.inner.set_topic(ns, room, topic)
        }
        fn identity(&self, key: &str) -> StoreFuture<'_, Option<Identity>> {
            self.inner.identity(key)
        }
        fn create_identity(&self, key: &str, identity: Identity) -> StoreFuture<'_, bool> {
            self.inner.create_identity(key, identity)
        }
        fn registered_nicks(&self) -> StoreFuture<'_, Vec<String>> {
            self.inner.registered_nicks()
        }
        fn queue_dm(&self, key: &str, message: DirectMessage) -> StoreFuture<'_, ()> {
            self.inner.queue_dm(key, message)
        }
        fn queued_dms(&self, key: &str) -> StoreFuture<'_, Vec<DirectMessage>> {
            self.inner.queued_dms(key)
        }
        fn queued_dm_count(&self, key: &str) -> StoreFuture<'_, usize> {
            self.inner.queued_dm_count(key)
        }
        fn remove_dm(&self, key: &str, id: &str) -> StoreFuture<'_, ()> {
            self.inner.remove_dm(key, id)
        }
        fn operators(&self, ns: &str, room: &str) -> StoreFuture<'_, Vec<String>> {
            self.inner.operators(ns, room)
        }
        fn set_operator(&self, ns: &str, room: &str, key: &str, op: bool) -> StoreFuture<'_, ()> {
            self.inner.set_operator(ns, room, key, op)
        }
        fn restrictions(&self, ns: &str, room: &str) -> StoreFuture<'_, Vec<Restriction>> {
            self.inner.restrictions(ns, room)
        }
        fn add_restriction(&self, ns: &str, room: &str, r: Restriction) -> StoreFuture<'_, ()> {
            self.inner.add_restriction(ns, room, r)
        }
        fn remove_restriction(
            &self,
            ns: &str,
            room: &str,
            kind: RestrictionKind,
            target: &str,
        ) -> StoreFuture<'_, bool> {
            self.inner.remove_restriction(ns, room, kind, target)
        }
        fn delete_message(
            &self,
            ns: &str,
            room: &str,
            seq: u64,
        ) -> StoreFuture<'_, Option<ChatMessage>> {
            self.inner.delete_message(ns, room, seq)
        }
        fn delete_identity(&self, key: &str) -> StoreFuture<'_, bool> {
            self.inner.delete_identity(key)
        }
        fn set_password(&self, key: &str, hash: String) -> StoreFuture<'_, bool> {
            self.inner.set_password(key, hash)
        }
        fn search(&self, query: SearchQuery) -> StoreFuture<'_, SearchPage> {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let _open = self.gate.acquire().await;
                self.inner.search(query).await
            })
        }
    }
}

/// At most 4 searches run on the server at once; one more is refused with `busy` at once
/// (not queued), and the running ones are answered when the store is done.
#[tokio::test]
async fn searches_beyond_the_four_running_get_busy() {
    use chat_protocol::socket_io::{Packet, PacketKind};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let store = Arc::new(GatedSearch {
        inner: chat_server::chat::store::MemoryStore::new(100),
        waiting: Default::default(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let engine = chat_server::chat::build_with_store(&config(), store.clone());
    let server = chat_server::serve_engine(engine, config().listen)
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut c = user(addr, &format!("u{i}")).await;
        join(&mut c, "/", "r").await;
        clients.push(c);
    }
    for c in clients.iter_mut().take(4) {
        c.send_packet(&Packet::event(
            "/",
            "search",
            vec![json!({"text": "held"})],
            Some(900),
        ))
        .await;
    }
    for _ in 0..500 {
        if store.waiting.load(Ordering::SeqCst) == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.waiting.load(Ordering::SeqCst), 4, "four searches run");
    let reply = search(&mut clients[4], json!({"text": "one more"})).await;
    assert_eq!(code(&reply), ErrorCode::Busy);
    assert_eq!(
        store.waiting.load(Ordering::SeqCst),
        4,
        "refused before the store"
    );
    store.gate.add_permits(4);
    for c in clients.iter_mut().take(4) {
        let ack = loop {
            let p = c.recv_packet().await;
            if p.kind == PacketKind::Ack && p.id == Some(900) {
                break p.data.unwrap()[0].clone();
            }
        };
        assert_eq!(ack["ok"], json!(true), "{ack}");
    }
    // The permits are back: the next search runs.
    let reply = search(&mut clients[4], json!({"text": "after"})).await;
    assert_eq!(reply["ok"], json!(true), "{reply}");
    server.shutdown().await;
}

/// A message an admin deleted leaves search on SQLite, whether the writer had indexed it
/// (the full-text index) or not yet (the unindexed messages searched in memory), and stays
/// gone after a restart.
#[tokio::test]
async fn on_sqlite_a_deleted_message_leaves_search() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = || {
        let mut c = config();
        c.store = StoreConfig::Sqlite(dir.path().join("chat.db"));
        c.admins = vec!["root".into()];
        c
    };
    let root_auth = json!({"nick": "root", "password": "pw-root-long"});
    let (server, addr) = serve(sqlite()).await;
    let mut root = Client::connect(addr).await;
    root.connect_namespace("/", Some(root_auth.clone())).await;
    join(&mut root, "/", "r").await;
    say(&mut root, "/", "r", "osprey one").await;
    say(&mut root, "/", "r", "osprey two").await;
    // Indexed by now (the writer indexes right after its commits; this waits well past it).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gone = say(&mut root, "/", "r", "osprey three").await;
    let reply = root
        .request("/", "delete", json!({"room": "r", "seq": 1}))
        .await;
    assert_eq!(reply["ok"], json!(true), "{reply}");
    let reply = root
        .request("/", "delete", json!({"room": "r", "seq": gone.seq}))
        .await;
    assert_eq!(reply["ok"], json!(true), "{reply}");
    let found: SearchReply = ok(&search(&mut root, json!({"text": "osprey"})).await);
    assert_eq!(texts(&found), ["r:osprey two"]);
    root.close().await;
    server.shutdown().await;

    let (_server, addr) = serve(sqlite()).await;
    let mut root = Client::connect(addr).await;
    root.connect_namespace("/", Some(root_auth)).await;
    join(&mut root, "/", "r").await;
    let found: SearchReply = ok(&search(&mut root, json!({"text": "osprey"})).await);
    assert_eq!(texts(&found), ["r:osprey two"]);
}
