//! Room history behind the [`Store`] trait. [`MemoryStore`] keeps the newest messages of each
//! room in memory; the durable SQLite store implements the same trait.
//!
//! `append` assigns the room's next `seq` and calls `publish` with the stored message inside
//! the same ordering section, so messages are published to a room in `seq` order even when
//! several clients send at once.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use chat_protocol::events::ChatMessage;

use crate::engine::lock;

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failed: {0}")]
    Backend(String),
}

/// A message to store; the store fills in `id`, `seq` and `ts`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub namespace: String,
    pub room: String,
    pub from: String,
    pub text: String,
    pub action: bool,
}

/// Called once with the stored message, in `seq` order per room.
pub type Publish = Box<dyn FnOnce(&ChatMessage) + Send>;

pub trait Store: Send + Sync + 'static {
    fn append(&self, message: NewMessage, publish: Publish) -> StoreFuture<'_, ChatMessage>;
    /// Up to `limit` messages with `seq < before` (all when `None`), oldest first.
    fn history(
        &self,
        namespace: &str,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<ChatMessage>>;
    fn topic(&self, namespace: &str, room: &str) -> StoreFuture<'_, Option<String>>;
    fn set_topic(&self, namespace: &str, room: &str, topic: Option<String>) -> StoreFuture<'_, ()>;
}

#[derive(Default)]
struct RoomLog {
    last_seq: u64,
    messages: VecDeque<ChatMessage>,
    topic: Option<String>,
}

/// Keeps the newest `capacity` messages of each room.
pub struct MemoryStore {
    capacity: usize,
    rooms: Mutex<HashMap<(String, String), RoomLog>>,
}

impl MemoryStore {
    pub fn new(capacity: usize) -> MemoryStore {
        MemoryStore {
            capacity: capacity.max(1),
            rooms: Mutex::new(HashMap::new()),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A unique message id: 16 random hex digits.
pub(crate) fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Store for MemoryStore {
    fn append(&self, m: NewMessage, publish: Publish) -> StoreFuture<'_, ChatMessage> {
        let mut rooms = lock(&self.rooms);
        let log = rooms.entry((m.namespace, m.room.clone())).or_default();
        log.last_seq += 1;
        let stored = ChatMessage {
            id: new_id(),
            room: m.room,
            seq: log.last_seq,
            from: m.from,
            text: m.text,
            ts: now_ms(),
            action: m.action,
        };
        if log.messages.len() == self.capacity {
            log.messages.pop_front();
        }
        log.messages.push_back(stored.clone());
        // Publishing only queues bytes (no await), so it may run under the lock: that is what
        // keeps a room's messages in seq order for every receiver.
        publish(&stored);
        drop(rooms);
        Box::pin(async move { Ok(stored) })
    }

    fn history(
        &self,
        namespace: &str,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<ChatMessage>> {
        let rooms = lock(&self.rooms);
        let mut out: Vec<ChatMessage> = rooms
            .get(&(namespace.to_owned(), room.to_owned()))
            .map(|log| {
                log.messages
                    .iter()
                    .rev()
                    .filter(|m| before.is_none_or(|b| m.seq < b))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.reverse();
        Box::pin(async move { Ok(out) })
    }

    fn topic(&self, namespace: &str, room: &str) -> StoreFuture<'_, Option<String>> {
        let topic = lock(&self.rooms)
            .get(&(namespace.to_owned(), room.to_owned()))
            .and_then(|log| log.topic.clone());
        Box::pin(async move { Ok(topic) })
    }

    fn set_topic(&self, namespace: &str, room: &str, topic: Option<String>) -> StoreFuture<'_, ()> {
        lock(&self.rooms)
            .entry((namespace.to_owned(), room.to_owned()))
            .or_default()
            .topic = topic;
        Box::pin(async move { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> NewMessage {
        NewMessage {
            namespace: "/".into(),
            room: "r".into(),
            from: "a".into(),
            text: text.into(),
            action: false,
        }
    }

    #[tokio::test]
    async fn seq_increases_and_history_pages_backwards() {
        let store = MemoryStore::new(3);
        for i in 1..=5 {
            let m = store
                .append(msg(&i.to_string()), Box::new(|_| {}))
                .await
                .expect("append");
            assert_eq!(m.seq, i);
        }
        let all = store.history("/", "r", None, 10).await.expect("history");
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        let page = store.history("/", "r", Some(5), 1).await.expect("history");
        assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4]);
        assert!(
            store
                .history("/", "other", None, 10)
                .await
                .expect("history")
                .is_empty()
        );
    }
}
