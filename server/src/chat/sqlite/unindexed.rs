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

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::Instant;

use chat_protocol::events::ChatMessage;
use hashbrown::Equivalent;

use super::super::phrase::Phrase;

/// (namespace, room).
pub(crate) type RoomKey = (String, String);
/// The store's in-memory maps: hashbrown, so a key is looked up by a borrowed form
/// ([`RoomRef`]) without allocating it, and foldhash, seeded per process.
pub(crate) type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type Set<K> = hashbrown::HashSet<K, foldhash::fast::RandomState>;

/// A [`RoomKey`] borrowed: it hashes as the key does (a tuple hashes its fields in order).
#[derive(Hash)]
pub(crate) struct RoomRef<'a>(pub &'a str, pub &'a str);

impl Equivalent<RoomKey> for RoomRef<'_> {
    fn equivalent(&self, key: &RoomKey) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl RoomRef<'_> {
    pub fn to_key(&self) -> RoomKey {
        (self.0.to_owned(), self.1.to_owned())
    }
}

/// A client id in its scope: (namespace, room, sender, client id).
#[derive(Hash)]
pub(crate) struct CidRef<'a>(pub &'a str, pub &'a str, pub &'a str, pub &'a str);

/// Client ids to a number that names their entry (a rowid, an index in a batch), kept as
/// (hash, number) only: the id's strings are in that entry, so an insert allocates nothing.
/// A lookup hashes the id and lets the caller check the entries the hash leads to.
#[derive(Default)]
pub(crate) struct CidIndex<T> {
    table: hashbrown::HashTable<(u64, T)>,
    hasher: foldhash::fast::RandomState,
}

impl<T: Copy + PartialEq> CidIndex<T> {
    /// Adds an id the index does not hold yet (the store keeps one message per id).
    pub fn insert(&mut self, cid: &CidRef<'_>, value: T) {
        let hash = self.hasher.hash_one(cid);
        self.table
            .insert_unique(hash, (hash, value), |&(hash, _)| hash);
    }

    /// The number whose entry `is` this id.
    pub fn find(&self, cid: &CidRef<'_>, is: impl Fn(T) -> bool) -> Option<T> {
        let hash = self.hasher.hash_one(cid);
        self.table
            .find(hash, |&(h, value)| h == hash && is(value))
            .map(|&(_, value)| value)
    }

    pub fn remove(&mut self, cid: &CidRef<'_>, value: T) {
        let hash = self.hasher.hash_one(cid);
        if let Ok(found) = self
            .table
            .find_entry(hash, |&(h, v)| h == hash && v == value)
        {
            found.remove();
        }
    }

    pub fn clear(&mut self) {
        self.table.clear();
    }
}

/// One committed, unindexed message.
pub(crate) struct Entry {
    /// Its rowid in the `log` table.
    pub n: i64,
    pub ns: String,
    pub cid: Option<String>,
    pub message: ChatMessage,
}

impl Entry {
    /// Its client id in its scope, if it has one.
    pub fn cid_ref(&self) -> Option<CidRef<'_>> {
        let cid = self.cid.as_deref()?;
        Some(CidRef(
            &self.ns,
            &self.message.room,
            &self.message.from,
            cid,
        ))
    }

    /// Whether this entry carries this client id.
    pub fn is(&self, cid: &CidRef<'_>) -> bool {
        self.cid.as_deref() == Some(cid.3)
            && self.message.from == cid.2
            && self.message.room == cid.1
            && self.ns == cid.0
    }
}

/// One room's messages in an indexing chunk ([`Unindexed::chunk`]).
pub(crate) struct ChunkRoom {
    pub ns: String,
    pub room: String,
    pub rows: Vec<ChunkRow>,
}

/// One message's index entries: its seq, its rowid, and its (sender, client id) if it has one.
pub(crate) struct ChunkRow {
    pub n: i64,
    pub seq: u64,
    pub cid: Option<(String, String)>,
}

#[derive(Default)]
pub(crate) struct Unindexed {
    /// Each room's unindexed messages, in `seq` (and `n`) order.
    rooms: Map<RoomKey, VecDeque<Entry>>,
    /// Client id -> journal rowid of the message that carried it.
    cids: CidIndex<i64>,
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

    /// The index entries of the messages with rowid `<= upto`, by room (each room's in seq
    /// order): what an indexing pass writes, copied so that readers are not held back while
    /// it runs.
    pub fn chunk(&self, upto: i64) -> Vec<ChunkRoom> {
        let mut out = Vec::new();
        for ((ns, room), entries) in &self.rooms {
            let rows: Vec<ChunkRow> = entries
                .iter()
                .take_while(|e| e.n <= upto)
                .map(|e| ChunkRow {
                    n: e.n,
                    seq: e.message.seq,
                    cid: e
                        .cid
                        .as_ref()
                        .map(|cid| (e.message.from.clone(), cid.clone())),
                })
                .collect();
            if !rows.is_empty() {
                out.push(ChunkRoom {
                    ns: ns.clone(),
                    room: room.clone(),
                    rows,
                });
            }
        }
        out
    }

    /// Adds the messages of a committed batch, in batch order.
    pub fn add(&mut self, entries: impl IntoIterator<Item = Entry>, at: Instant) {
        for entry in entries {
            if let Some(cid) = entry.cid_ref() {
                self.cids.insert(&cid, entry.n);
            }
            self.order.push_back((entry.n, at));
            let room = RoomRef(&entry.ns, &entry.message.room);
            match self.rooms.get_mut(&room) {
                Some(entries) => entries.push_back(entry),
                None => {
                    let key = room.to_key();
                    self.rooms.insert(key, VecDeque::from([entry]));
                }
            }
        }
    }

    /// Forgets the messages with rowid `<= upto` (their indexing committed).
    pub fn remove_upto(&mut self, upto: i64) {
        while self.order.front().is_some_and(|(n, _)| *n <= upto) {
            self.order.pop_front();
        }
        let cids = &mut self.cids;
        self.rooms.retain(|_, entries| {
            while entries.front().is_some_and(|e| e.n <= upto) {
                let Some(e) = entries.pop_front() else { break };
                if let Some(cid) = e.cid_ref() {
                    cids.remove(&cid, e.n);
                }
            }
            !entries.is_empty()
        });
    }

    /// The unindexed message of a room with this seq: its rowid and the message.
    pub fn find(&self, ns: &str, room: &str, seq: u64) -> Option<(i64, ChatMessage)> {
        let entries = self.room(ns, room)?;
        let e = entries.iter().find(|e| e.message.seq == seq)?;
        Some((e.n, e.message.clone()))
    }

    /// Forgets one unindexed message (deleted from the log).
    pub fn forget(&mut self, ns: &str, room: &str, seq: u64) {
        let Some(entries) = self.rooms.get_mut(&RoomRef(ns, room)) else {
            return;
        };
        let Some(at) = entries.iter().position(|e| e.message.seq == seq) else {
            return;
        };
        let Some(e) = entries.remove(at) else { return };
        if entries.is_empty() {
            self.rooms.remove(&RoomRef(ns, room));
        }
        if let Some(cid) = e.cid_ref() {
            self.cids.remove(&cid, e.n);
        }
        self.order.retain(|(n, _)| *n != e.n);
    }

    /// The newest unindexed `seq` of a room.
    pub fn last_seq(&self, ns: &str, room: &str) -> Option<u64> {
        self.room(ns, room)?.back().map(|e| e.message.seq)
    }

    /// The unindexed message a sender sent with this client id in this room.
    pub fn by_cid(&self, cid: &CidRef<'_>) -> Option<ChatMessage> {
        let entries = self.room(cid.0, cid.1)?;
        let at = |n: i64| entries.binary_search_by_key(&n, |e| e.n).ok();
        let n = self
            .cids
            .find(cid, |n| at(n).is_some_and(|i| entries[i].is(cid)))?;
        Some(entries[at(n)?].message.clone())
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

    /// The newest `limit` unindexed messages of these rooms with rowid `< before` whose text
    /// holds the phrase, newest first with their rowids; and the oldest unindexed rowid (all
    /// rooms): every older message is indexed.
    pub fn search(
        &self,
        ns: &str,
        rooms: &[String],
        phrase: &Phrase,
        before: i64,
        limit: usize,
    ) -> (Vec<(i64, ChatMessage)>, Option<i64>) {
        let mut hits: Vec<(i64, ChatMessage)> = Vec::new();
        for room in rooms {
            let Some(entries) = self.room(ns, room) else {
                continue;
            };
            hits.extend(
                entries
                    .iter()
                    .rev()
                    .filter(|e| e.n < before && phrase.matches(&e.message.text))
                    .take(limit)
                    .map(|e| (e.n, e.message.clone())),
            );
        }
        hits.sort_unstable_by_key(|(n, _)| std::cmp::Reverse(*n));
        hits.truncate(limit);
        (hits, self.order.front().map(|(n, _)| *n))
    }

    fn room(&self, ns: &str, room: &str) -> Option<&VecDeque<Entry>> {
        self.rooms.get(&RoomRef(ns, room))
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
    fn the_cid_index_finds_what_its_check_accepts_and_forgets_what_is_removed() {
        let mut index = CidIndex::default();
        let a = CidRef("/", "r", "ann", "c1");
        let b = CidRef("/", "r", "bob", "c1");
        index.insert(&a, 1);
        index.insert(&b, 2);
        assert_eq!(index.find(&a, |n| n == 1), Some(1));
        assert_eq!(index.find(&b, |n| n == 2), Some(2));
        // The caller's check of the entry decides (a hash match alone is not enough).
        assert_eq!(index.find(&a, |_| false), None);
        index.remove(&a, 1);
        assert_eq!(index.find(&a, |n| n == 1), None);
        assert_eq!(index.find(&b, |n| n == 2), Some(2));
        index.clear();
        assert_eq!(index.find(&b, |n| n == 2), None);
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
        let key = |cid| CidRef("/", "a", "ann", cid);
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
