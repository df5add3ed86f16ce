//! The `message` pipeline's bound and its failure path, against a store whose commits the
//! test holds back: a connection gets no more than 16 messages into the store before one is
//! answered, and a message the store drops unanswered gets an error ack and frees its slot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_protocol::events::DirectMessage;
use chat_protocol::socket_io::{Packet, PacketKind};
use chat_server::ServerConfig;
use chat_server::chat::store::{
    AppendDone, Appended, Attach, Identity, MemoryStore, NewMessage, Publish, Restriction,
    RestrictionKind, RoomLog, SearchPage, SearchQuery, Store, StoreError, StoreFuture,
};
use common::Client;
use serde_json::{Value, json};

/// The memory store, except that an append's outcome is held until the test lets it go.
struct HeldStore {
    inner: MemoryStore,
    held: Mutex<Vec<(AppendDone, Result<Appended, StoreError>)>>,
}

impl HeldStore {
    fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// Answers every held append, or drops them unanswered (as a store shutting down would).
    fn release(&self, answer: bool) {
        let held: Vec<_> = self.held.lock().unwrap().drain(..).collect();
        for (done, outcome) in held {
            if answer {
                done.call(outcome);
            }
        }
    }
}

impl RoomLog for HeldStore {
    fn append_then(&self, message: NewMessage, publish: Publish, done: AppendDone) {
        let slot = Arc::new(Mutex::new(None));
        let into = slot.clone();
        self.inner.append_then(
            message,
            publish,
            AppendDone::new(move |outcome| *into.lock().unwrap() = Some(outcome)),
        );
        let outcome = slot
            .lock()
            .unwrap()
            .take()
            .expect("the memory store answers at once");
        self.held.lock().unwrap().push((done, outcome));
    }
    fn attach(
        &self,
        namespace: &str,
        room: &str,
        after: Option<u64>,
        limit: usize,
        attach: Attach,
    ) -> StoreFuture<'_, ()> {
        self.inner.attach(namespace, room, after, limit, attach)
    }
    fn history(
        &self,
        namespace: &str,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<chat_protocol::events::ChatMessage>> {
        self.inner.history(namespace, room, before, limit)
    }
}

impl Store for HeldStore {
    fn topic(&self, namespace: &str, room: &str) -> StoreFuture<'_, Option<String>> {
        self.inner.topic(namespace, room)
    }
    fn set_topic(&self, namespace: &str, room: &str, topic: Option<String>) -> StoreFuture<'_, ()> {
        self.inner.set_topic(namespace, room, topic)
    }
    fn identity(&self, nick_key: &str) -> StoreFuture<'_, Option<Identity>> {
        self.inner.identity(nick_key)
    }
    fn create_identity(&self, nick_key: &str, identity: Identity) -> StoreFuture<'_, bool> {
        self.inner.create_identity(nick_key, identity)
    }
    fn queued_dm_count(&self, to_key: &str) -> StoreFuture<'_, usize> {
        self.inner.queued_dm_count(to_key)
    }
    fn registered_nicks(&self) -> StoreFuture<'_, Vec<String>> {
        self.inner.registered_nicks()
    }
    fn queue_dm(&self, to_key: &str, message: DirectMessage) -> StoreFuture<'_, ()> {
        self.inner.queue_dm(to_key, message)
    }
    fn queued_dms(&self, to_key: &str) -> StoreFuture<'_, Vec<DirectMessage>> {
        self.inner.queued_dms(to_key)
    }
    fn remove_dm(&self, to_key: &str, id: &str) -> StoreFuture<'_, ()> {
        self.inner.remove_dm(to_key, id)
    }
    fn operators(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<String>> {
        self.inner.operators(namespace, room)
    }
    fn set_operator(
        &self,
        namespace: &str,
        room: &str,
        nick_key: &str,
        operator: bool,
    ) -> StoreFuture<'_, ()> {
        self.inner.set_operator(namespace, room, nick_key, operator)
    }
    fn restrictions(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<Restriction>> {
        self.inner.restrictions(namespace, room)
    }
    fn add_restriction(
        &self,
        namespace: &str,
        room: &str,
        restriction: Restriction,
    ) -> StoreFuture<'_, ()> {
        self.inner.add_restriction(namespace, room, restriction)
    }
    fn remove_restriction(
        &self,
        namespace: &str,
        room: &str,
        kind: RestrictionKind,
        target: &str,
    ) -> StoreFuture<'_, bool> {
        self.inner.remove_restriction(namespace, room, kind, target)
    }
    fn delete_message(
        &self,
        namespace: &str,
        room: &str,
        seq: u64,
    ) -> StoreFuture<'_, Option<chat_protocol::events::ChatMessage>> {
        self.inner.delete_message(namespace, room, seq)
    }
    fn delete_identity(&self, nick_key: &str) -> StoreFuture<'_, bool> {
        self.inner.delete_identity(nick_key)
    }
    fn set_password(&self, nick_key: &str, password_hash: String) -> StoreFuture<'_, bool> {
        self.inner.set_password(nick_key, password_hash)
    }

    fn search(&self, query: SearchQuery) -> StoreFuture<'_, SearchPage> {
        self.inner.search(query)
    }
}

/// Waits (bounded) until the store holds `n` appends.
async fn until_held(store: &HeldStore, n: usize) {
    for _ in 0..500 {
        if store.held() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the store holds {} appends, not {n}", store.held());
}

/// The next `n` acks, as (id, reply), skipping anything else.
async fn acks(c: &mut Client, n: usize) -> Vec<(u64, Value)> {
    let mut got = Vec::new();
    while got.len() < n {
        let p = c.recv_packet().await;
        if p.kind == PacketKind::Ack {
            got.push((p.id.unwrap(), p.data.unwrap()[0].clone()));
        }
    }
    got
}

#[tokio::test]
async fn a_connection_has_at_most_16_messages_in_the_store_and_a_dropped_one_is_refused() {
    let store = Arc::new(HeldStore {
        inner: MemoryStore::new(1000),
        held: Mutex::new(Vec::new()),
    });
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let engine = chat_server::chat::build_with_store(&config, store.clone());
    let server = chat_server::serve_engine(engine, config.listen)
        .await
        .unwrap();
    let mut c = Client::connect(server.local_addr()).await;
    c.join_namespace("/", Some(json!({"nick": "ada"}))).await;
    let joined = c.request("/", "join", json!({"room": "r"})).await;
    assert_eq!(joined["ok"], true, "{joined}");

    for i in 0..20u64 {
        c.send_packet(&Packet::event(
            "/",
            "message",
            vec![json!({"room": "r", "text": format!("m{i}")})],
            Some(100 + i),
        ))
        .await;
    }
    // 16 reach the store; the 17th waits for a slot however long the commits take.
    until_held(&store, 16).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.held(), 16);

    // The store drops those 16 unanswered: each gets an error ack, and the slots are free.
    store.release(false);
    let refused = acks(&mut c, 16).await;
    assert_eq!(
        refused.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (100..116).collect::<Vec<_>>()
    );
    for (_, reply) in &refused {
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!(reply["error"]["code"], "internal", "{reply}");
    }

    // The other 4 come through, and are answered once released.
    until_held(&store, 4).await;
    store.release(true);
    let acked = acks(&mut c, 4).await;
    assert_eq!(
        acked.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (116..120).collect::<Vec<_>>()
    );
    let texts: Vec<&str> = acked
        .iter()
        .map(|(_, r)| r["message"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m16", "m17", "m18", "m19"]);

    // With nothing in flight, other requests are answered at once.
    let pong = c.request("/", "ping", json!({})).await;
    assert_eq!(pong["ok"], true, "{pong}");
    server.shutdown().await;
}
