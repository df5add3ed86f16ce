//! The durable store's newest messages, in memory: those committed to the `log` table and
//! not yet in its per-room indexes.
//!
//! Why: an index clustered by room makes every message of a commit dirty its room's newest
//! pages, and when every message of a batch is in another room, each costs a few page writes
//! in the WAL however large the batch. The `log` is an append-only table in arrival order, so
//! a commit writes only its few newest pages; the writer indexes the log (`room_index`,
//! `cids`) in large chunks off the acknowledgement path (see `sqlite.rs`), where many messages
//! of a room share its index pages.
//!
//! Until a message is indexed, reads find it here (by room, and by client id for re-sends).
//! Only committed messages are here: the writer adds a batch after its commit and removes a
//! chunk after the indexing commit. They are the newest of their room, so a reader that looks
//! here first finds everything older in the indexes.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use chat_protocol::events::ChatMessage;

/// (namespace, room).
pub(crate) type RoomKey = (String, String);
/// (namespace, room, sender, client id).
pub(crate) type CidKey = (String, String, String, String);

/// One committed, unindexed message.
pub(crate) struct Entry {
    /// Its rowid in the `log` table.
    pub n: i64,
    pub ns: String,
    pub cid: Option<String>,
    pub message: ChatMessage,
}

#[derive(Default)]
pub(crate) struct Unindexed {
    /// Each room's unindexed messages, in `seq` (and `n`) order.
    rooms: HashMap<RoomKey, VecDeque<Entry>>,
    /// Client id -> journal rowid of the message that carried it.
    cids: HashMap<CidKey, i64>,
    /// Every unindexed rowid in order, with when it was committed.
    order: VecDeque<(i64, Instant)>,
}

impl Unindexed {
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// When the oldest unindexed message was committed.
    pub fn oldest(&self) -> Option<Instant> {
        self.order.front().map(|(_, at)| *at)
    }

    /// The rowid of the `count`th oldest unindexed message (or the newest, if fewer): an
    /// indexing chunk ends there.
    pub fn chunk_end(&self, count: usize) -> Option<i64> {
        let i = count.min(self.order.len()).checked_sub(1)?;
        Some(self.order[i].0)
    }

    /// Adds the messages of a committed batch, in batch order.
    pub fn add(&mut self, entries: impl IntoIterator<Item = Entry>, at: Instant) {
        for entry in entries {
            let room = (entry.ns.clone(), entry.message.room.clone());
            if let Some(cid) = &entry.cid {
                self.cids.insert(
                    (
                        room.0.clone(),
                        room.1.clone(),
                        entry.message.from.clone(),
                        cid.clone(),
                    ),
                    entry.n,
                );
            }
            self.order.push_back((entry.n, at));
            self.rooms.entry(room).or_default().push_back(entry);
        }
    }

    /// Forgets the messages with rowid `<= upto` (their indexing committed).
    pub fn remove_upto(&mut self, upto: i64) {
        while self.order.front().is_some_and(|(n, _)| *n <= upto) {
            self.order.pop_front();
        }
        let cids = &mut self.cids;
        self.rooms.retain(|(ns, room), entries| {
            while entries.front().is_some_and(|e| e.n <= upto) {
                let Some(e) = entries.pop_front() else { break };
                if let Some(cid) = e.cid {
                    cids.remove(&(ns.clone(), room.clone(), e.message.from, cid));
                }
            }
            !entries.is_empty()
        });
    }

    /// The newest unindexed `seq` of a room.
    pub fn last_seq(&self, ns: &str, room: &str) -> Option<u64> {
        self.room(ns, room)?.back().map(|e| e.message.seq)
    }

    /// The unindexed message a sender sent with this client id in this room.
    pub fn by_cid(&self, key: &CidKey) -> Option<ChatMessage> {
        let n = *self.cids.get(key)?;
        let entries = self.room(&key.0, &key.1)?;
        let i = entries.binary_search_by_key(&n, |e| e.n).ok()?;
        Some(entries[i].message.clone())
    }

    /// Unindexed messages with `after < seq <= upto`, the newest `limit`, oldest first.
    pub fn range(
        &self,
        ns: &str,
        room: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Vec<ChatMessage> {
        let Some(entries) = self.room(ns, room) else {
            return Vec::new();
        };
        let mut out: Vec<ChatMessage> = entries
            .iter()
            .rev()
            .filter(|e| e.message.seq <= upto)
            .take_while(|e| e.message.seq > after)
            .take(limit)
            .map(|e| e.message.clone())
            .collect();
        out.reverse();
        out
    }

    fn room(&self, ns: &str, room: &str) -> Option<&VecDeque<Entry>> {
        // A borrowed lookup would need a key type of its own; rooms are few per call.
        self.rooms.get(&(ns.to_owned(), room.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64, room: &str, seq: u64, cid: Option<&str>) -> Entry {
        Entry {
            n,
            ns: "/".into(),
            cid: cid.map(str::to_owned),
            message: ChatMessage {
                id: format!("id{n}"),
                room: room.into(),
                seq,
                from: "ann".into(),
                text: format!("m{seq}"),
                ts: 0,
                action: false,
            },
        }
    }

    fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn rooms_ranges_and_client_ids() {
        let mut u = Unindexed::default();
        let now = Instant::now();
        u.add(
            [
                entry(1, "a", 5, Some("c1")),
                entry(2, "b", 1, None),
                entry(3, "a", 6, Some("c2")),
                entry(4, "a", 7, None),
            ],
            now,
        );
        assert_eq!(u.len(), 4);
        assert_eq!(u.last_seq("/", "a"), Some(7));
        assert_eq!(u.last_seq("/", "c"), None);
        assert_eq!(seqs(&u.range("/", "a", 0, u64::MAX, 10)), [5, 6, 7]);
        assert_eq!(seqs(&u.range("/", "a", 5, 6, 10)), [6]);
        assert_eq!(seqs(&u.range("/", "a", 0, u64::MAX, 2)), [6, 7]);
        let key = |cid: &str| ("/".into(), "a".into(), "ann".into(), cid.to_owned());
        assert_eq!(u.by_cid(&key("c2")).map(|m| m.seq), Some(6));
        assert_eq!(u.chunk_end(2), Some(2));
        assert_eq!(u.chunk_end(99), Some(4));

        u.remove_upto(2);
        assert_eq!(u.len(), 2);
        assert!(u.by_cid(&key("c1")).is_none());
        assert_eq!(u.by_cid(&key("c2")).map(|m| m.seq), Some(6));
        assert_eq!(u.last_seq("/", "b"), None);
        u.remove_upto(4);
        assert_eq!((u.len(), u.oldest(), u.chunk_end(1)), (0, None, None));
        assert!(u.by_cid(&key("c2")).is_none());
    }
}
