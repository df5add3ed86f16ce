//! Everything the chat keeps, behind the [`Store`] trait: each room's [`RoomLog`] (its
//! sequenced messages, the part with an ordering contract), room topics, identities (claimed
//! nicks), and direct messages waiting for an offline recipient. [`MemoryStore`] keeps it in
//! memory (tests, `--store memory`); [`super::sqlite::SqliteStore`] is the durable default;
//! [`super::redis::RedisStore`] is shared by every node of a cluster (`--store redis`).
//! A new backend implements both traits and runs `server/tests/store_contract.rs`, the
//! contract's one test suite.
//!
//! Ordering: a store has one ordering section per room (a lock here, the writer thread in
//! SQLite). [`RoomLog::append_then`] assigns the next `seq` and, once the message is stored,
//! calls `publish` with it inside that section, then its [`AppendDone`] ([`RoomLog::append`]
//! waits for it); [`RoomLog::attach`] reads what a socket missed and calls its callback
//! (which joins the socket to the room) inside the same section. So every member receives a
//! room's messages in `seq` order, and a joiner's catch-up meets live traffic with no gap and
//! no duplicate.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use std::sync::atomic::{AtomicU64, Ordering};

use chat_protocol::events::{ChatMessage, DirectMessage};

pub use super::presence::RemoteUser;

pub use super::phrase::Phrase;
use crate::engine::lock;

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failed: {0}")]
    Backend(String),
    #[error("the store is shut down")]
    Closed,
    /// The store cannot be reached now (the cluster's Redis is down or restarting); the
    /// operation did not happen and may be retried (an append with its `cid`, so a retry
    /// of one that did happen is answered with the first).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another store (another `chat-server`) holds the database's lock file.
    #[error("database {db} is in use by another chat-server ({holder}lock file {lock})")]
    InUse {
        db: String,
        lock: String,
        /// `pid N; ` when the lock file names its holder, else empty.
        holder: String,
    },
    /// The database was written by a newer chat-server, whose schema this one does not know:
    /// it is left untouched.
    #[error(
        "database {db} has schema version {found}, newer than this chat-server's {known}: run the newer chat-server, or restore a backup"
    )]
    NewerSchema { db: String, found: u32, known: u32 },
    /// A search's `before` that is not a cursor this store made.
    #[error("not a search cursor: {0:?}")]
    BadCursor(String),
}

/// A `search`: the messages of some rooms of a namespace whose text holds a phrase.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub namespace: String,
    /// The rooms searched (the asker's rooms of that namespace).
    pub rooms: Vec<String>,
    pub phrase: Phrase,
    /// The `next` of the previous page: only hits stored before it.
    pub before: Option<String>,
    /// Most hits returned (at least 1).
    pub limit: usize,
}

/// One page of search hits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPage {
    /// Newest first: in the reverse of the order the messages were stored.
    pub messages: Vec<ChatMessage>,
    /// Some when there may be older hits: the `before` of the next page.
    pub next: Option<String>,
}

/// The store-wide order of stored messages (a rowid, a counter) as a search cursor.
pub(crate) fn cursor(n: u64) -> String {
    n.to_string()
}

/// Reads back a [`cursor`]: only what [`cursor`] writes (orders start at 1), so `0`, `+5` or
/// `007` are [`StoreError::BadCursor`] as documented.
pub(crate) fn parse_cursor(before: Option<&str>) -> Result<Option<u64>, StoreError> {
    before
        .map(|b| parse_order(b).ok_or_else(|| StoreError::BadCursor(b.to_owned())))
        .transpose()
}

/// A store-wide order as [`cursor`] writes it: a positive decimal number, no sign, no
/// leading zero.
pub(crate) fn parse_order(text: &str) -> Option<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|&n| n > 0 && !text.starts_with(['+', '0']))
}

/// A message to store; the store fills in `id`, `seq` and `ts`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub namespace: String,
    pub room: String,
    pub from: String,
    pub text: String,
    pub action: bool,
    /// The client's message id: a second append with the same (namespace, room, from, cid)
    /// returns the first message and publishes nothing.
    pub cid: Option<String>,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub message: ChatMessage,
    /// True when this was a re-send of a message already stored.
    pub duplicate: bool,
}

/// What a socket missed in a room, handed to an [`Attach`] callback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catchup {
    /// Oldest first, at most the requested limit, ending at the room's last message.
    pub messages: Vec<ChatMessage>,
    /// Messages missed but left out because of the limit (or already removed by retention).
    pub skipped: u64,
    /// The room's last `seq` (0 for an empty room).
    pub last_seq: u64,
}

/// Called once with the stored message, in `seq` order per room. It delivers to this
/// process's sockets: a store shared by several processes (Redis) brings each message to the
/// others' sockets itself, in the same order.
pub type Publish = Box<dyn FnOnce(&ChatMessage) + Send>;

/// Called once with the outcome of an append, after its commit (in the SQLite store, on the
/// writer thread, in the order the appends were made). Dropped uncalled (a store shutting
/// down with the append still queued), it is called with [`StoreError::Closed`]: whoever waits
/// on it always hears back.
pub struct AppendDone(Option<AppendCallback>);

type AppendCallback = Box<dyn FnOnce(Result<Appended, StoreError>) + Send>;

impl AppendDone {
    pub fn new(f: impl FnOnce(Result<Appended, StoreError>) + Send + 'static) -> AppendDone {
        AppendDone(Some(Box::new(f)))
    }

    pub fn call(mut self, outcome: Result<Appended, StoreError>) {
        if let Some(f) = self.0.take() {
            f(outcome);
        }
    }
}

impl Drop for AppendDone {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(StoreError::Closed));
        }
    }
}
/// Called once inside the room's ordering section; joins the socket and sends the catch-up.
pub type Attach = Box<dyn FnOnce(Catchup) + Send>;

/// A claimed nick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub nick: String,
    /// Argon2 PHC string; never the password.
    pub password_hash: String,
}

/// What a [`Restriction`] does: a ban keeps its target out of the room, a mute keeps it
/// from sending messages there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestrictionKind {
    Ban,
    Mute,
}

impl RestrictionKind {
    /// How the kind is written in a store.
    pub fn as_str(self) -> &'static str {
        match self {
            RestrictionKind::Ban => "ban",
            RestrictionKind::Mute => "mute",
        }
    }

    pub fn parse(s: &str) -> Option<RestrictionKind> {
        match s {
            "ban" => Some(RestrictionKind::Ban),
            "mute" => Some(RestrictionKind::Mute),
            _ => None,
        }
    }
}

/// A ban or a mute in one room. The store keeps at most one per (kind, target) and compares
/// targets exactly: the chat passes a nick key (lowercase nick) or, for a ban by address,
/// `ip:` and the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub kind: RestrictionKind,
    pub target: String,
    /// Who set it (a nick, or `server`).
    pub by: String,
    pub reason: Option<String>,
    /// When it ends, milliseconds since the Unix epoch; `None`: until lifted.
    pub until: Option<i64>,
}

impl Restriction {
    /// In force at `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        self.until.is_none_or(|until| now_ms < until)
    }
}

/// A sequenced room log: the messages of each room, numbered and handed to the application
/// in one order. The contract, which `server/tests/store_contract.rs` checks for every
/// backend (a new one, such as a Redis store, adds itself there):
///
/// - **Rooms.** A room is a (namespace, room) pair; rooms share nothing, not even `seq`s.
/// - **Ordering section.** Each room has one ordering section (a lock, a single writer): a
///   region in which at most one of the room's appends or attaches runs at a time, in one
///   order. Every callback below runs inside it, so it must only queue work (no await, no
///   blocking, no call back into the store for the same room).
/// - **Seq.** A new message gets the room's next `seq`: 1 for the room's first, then each one
///   greater by exactly one: no gap, no reuse (not after the message is removed by retention,
///   nor after a restart, for a durable store). The store also fills in a unique `id` and the
///   `ts` (milliseconds since the epoch); `room`, `from`, `text` and `action` are kept as
///   given.
/// - **Publish, then done.** For a new message, `publish` is called once with the stored
///   message, then `done` once with `Ok(Appended { message, duplicate: false })`, both inside
///   the room's ordering section: per room, the calls come as publish 1, done 1, publish 2,
///   done 2, ..., with nothing of another append or attach in between, however many callers
///   append at once. A durable store calls them only once the message is durable.
/// - **Appends are placed when issued.** An append's place in its room is taken by the call
///   to `append_then`, not when its outcome arrives: appends a caller issues one after another
///   (without waiting for each) are stored, and their callbacks called, in that order (a
///   connection's messages are pipelined this way).
/// - **Re-sends.** A `cid` sent again by the same sender (`from`) in the same room returns the
///   first message: `done` gets `Ok(Appended { message: first, duplicate: true })`, `publish`
///   is dropped uncalled, and no `seq` is taken. This holds for as long as the first message
///   is kept (retention may forget it), and also while the first append is still in flight
///   (issued, not yet done). Another sender, room or namespace with the same `cid` is a new
///   message.
/// - **Attach.** `attach` calls its callback once, inside the room's ordering section, with a
///   [`Catchup`]: the messages with `seq > after` (all when `after` is `None`), at most
///   `limit` of them, the newest, oldest first; `skipped` counts the missed ones left out
///   (beyond `limit`, or already removed; 0 when `after` is `None`); `last_seq` is the room's
///   last `seq` at that point (0 for a room with no message). So a subscriber registered by
///   the callback gets, from the catch-up and then the `publish` calls that follow, every
///   message after `after` exactly once and in order. An attach stores nothing and takes no
///   `seq`.
/// - **History.** `history` returns the newest `limit` messages with `seq < before` (any when
///   `None`), oldest first; a room with none gives an empty list. It needs no ordering
///   section: it sees at least every message whose `done` was called before it was called.
/// - **Errors.** A [`StoreError`] means the operation did not happen (an append's `done` gets
///   it instead of an outcome, its `publish` is dropped uncalled); [`StoreError::Closed`]
///   means the store is shutting down. An `AppendDone` dropped uncalled reports `Closed`, so
///   every append hears back exactly once.
pub trait RoomLog: Send + Sync + 'static {
    /// Stores a message (or finds the one its `cid` names), then calls `publish` (new
    /// messages only) and `done`, in the room's ordering section. The append's place in its
    /// room is taken when this is called.
    fn append_then(&self, message: NewMessage, publish: Publish, done: AppendDone);
    /// [`RoomLog::append_then`], waited for.
    fn append(&self, message: NewMessage, publish: Publish) -> StoreFuture<'_, Appended> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.append_then(
            message,
            publish,
            AppendDone::new(move |outcome| drop(tx.send(outcome))),
        );
        Box::pin(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }
    /// Reads the newest `limit` messages after `after` (of all when `None`) and calls
    /// `attach` with them in the room's ordering section; resolves once it was called.
    fn attach(
        &self,
        namespace: &str,
        room: &str,
        after: Option<u64>,
        limit: usize,
        attach: Attach,
    ) -> StoreFuture<'_, ()>;
    /// Up to `limit` messages with `seq < before` (any when `None`), the newest, oldest first.
    fn history(
        &self,
        namespace: &str,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<ChatMessage>>;
}

/// Everything the chat keeps: the [`RoomLog`] and the state beside it, which has no ordering
/// contract (each call is done when its future resolves; a later call sees it). The rest of
/// the contract, also checked by `server/tests/store_contract.rs`:
///
/// - **Topics.** One per (namespace, room), `None` until set; `set_topic(None)` clears it.
///   Setting one takes no `seq`.
/// - **Identities.** Keyed by a nick key the caller supplies (the chat passes the lowercase
///   nick; the store compares keys exactly). `create_identity` is true when it claimed the
///   key, false (changing nothing) when the key was taken. `registered_nicks` lists every
///   identity's nick as registered, in no particular order.
/// - **Queued direct messages.** Per recipient key: `queued_dms` returns them in the order
///   queued, `queued_dm_count` counts them, `remove_dm` removes the one with that id (from
///   that recipient's queue only; an unknown id is no error).
/// - **Moderation** (per (namespace, room); keys compared exactly, as identities'):
///   `operators` lists the room's operator nick keys (any order); `set_operator` adds or
///   removes one (idempotent). `restrictions` lists the room's bans and mutes, expired ones
///   included (the caller decides what is in force; a store may drop expired ones at any
///   time); `add_restriction` replaces the one of the same kind and target;
///   `remove_restriction` is true when there was one to remove.
/// - **Deleting a message.** `delete_message` removes one message of a room's log for good
///   (history, attach and a restart no longer return it) and returns it, or `None` when the
///   room has no message with that `seq`. The room's `seq`s are not reused: the next append
///   still takes the seq after the newest ever stored. It needs no ordering section: an
///   attach or history made after it resolved does not see the message.
/// - **Identity changes.** `delete_identity` removes the identity, its queued direct
///   messages and its operator status in every room, and is true when there was one;
///   `set_password` replaces an identity's hash and is true when there was one.
/// - **Search.** `search` returns the messages of the query's rooms (in its namespace) whose
///   text holds the phrase ([`Phrase::matches`]: its words in a row, without regard to case
///   or diacritics), newest first in the order they were stored, at most `limit`. `next` is
///   `Some` when the page is full (there may be more): passed back as `before`, it gives the
///   hits stored before the page's last, so paging repeats and skips none. A `before` the
///   store did not make is [`StoreError::BadCursor`]. Like `history`, it sees at least every
///   message whose `done` was called before it was called, and none removed by retention.
///   What it may cost is the backend's to bound and document (an index, or a bounded scan).
pub trait Store: RoomLog {
    fn topic(&self, namespace: &str, room: &str) -> StoreFuture<'_, Option<String>>;
    fn set_topic(&self, namespace: &str, room: &str, topic: Option<String>) -> StoreFuture<'_, ()>;
    /// The identity of a nick key (lowercase nick), if claimed.
    fn identity(&self, nick_key: &str) -> StoreFuture<'_, Option<Identity>>;
    /// Claims a nick; false when it was already claimed.
    fn create_identity(&self, nick_key: &str, identity: Identity) -> StoreFuture<'_, bool>;
    /// Every registered nick, as registered (read once at start, for the look-alike check).
    fn registered_nicks(&self) -> StoreFuture<'_, Vec<String>>;
    /// Keeps a direct message for an offline recipient.
    fn queue_dm(&self, to_key: &str, message: DirectMessage) -> StoreFuture<'_, ()>;
    /// The recipient's waiting messages, oldest first.
    fn queued_dms(&self, to_key: &str) -> StoreFuture<'_, Vec<DirectMessage>>;
    /// How many messages wait for the recipient.
    fn queued_dm_count(&self, to_key: &str) -> StoreFuture<'_, usize>;
    /// Removes one waiting message once its recipient acknowledged it.
    fn remove_dm(&self, to_key: &str, id: &str) -> StoreFuture<'_, ()>;
    /// A store shared by several processes (cluster mode): claims a connected nick, and its
    /// look-alike skeletons, for this process; false when another process holds it (or a
    /// look-alike of it), unless `login` (a registered identity proved with its password,
    /// which may be connected on several). A store of one process has nothing to share: the
    /// chat's own map decides, and this is always true.
    fn claim_online_nick(&self, _nick: &str, _login: bool) -> StoreFuture<'_, bool> {
        Box::pin(std::future::ready(Ok(true)))
    }
    /// Gives up a nick no session of this process holds any more.
    fn release_online_nick(&self, _nick: &str) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// A store shared by several processes: notes that `nick` is now in (`inside`) or out
    /// of a room on this process, so that if this process dies another can tell the room's
    /// members it is gone. Only queues (called from ordering sections); a store of one
    /// process ignores it.
    fn note_member(&self, _namespace: &str, _room: &str, _nick: &str, _inside: bool) {}
    /// A store shared by several processes: the nicks in a room on the other (live)
    /// processes, as noted by their `note_member`; none for a store of one process.
    fn remote_members(&self, _namespace: &str, _room: &str) -> StoreFuture<'_, Vec<String>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// A store shared by several processes: the nicks in a room on the other (live)
    /// processes who are away there (every session of the nick on that process away), as
    /// their last heartbeat said; none for a store of one process.
    fn remote_away(&self, _namespace: &str, _room: &str) -> StoreFuture<'_, Vec<String>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// A store shared by several processes: the user with this nick key on each other live
    /// process where it is connected, with those of `rooms` (of `namespace`) it is in there;
    /// none for a store of one process.
    fn remote_user(
        &self,
        _nick_key: &str,
        _namespace: &str,
        _rooms: &[String],
    ) -> StoreFuture<'_, Vec<RemoteUser>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// A store shared by several processes: every user on the other live processes, each
    /// with all its rooms there (the admin API's list); none for a store of one process.
    fn remote_users(&self) -> StoreFuture<'_, Vec<RemoteUser>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// A store shared by several processes: (room, members) of a namespace's chat rooms on
    /// the other live processes, summed over them; none for a store of one process.
    fn remote_room_counts(&self, _namespace: &str) -> StoreFuture<'_, Vec<(String, usize)>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// A store shared by several processes: the users connected to `namespace` on the other
    /// live processes, as their last heartbeat said (at most one heartbeat old, read without
    /// waiting); 0 for a store of one process.
    fn remote_namespace_users(&self, _namespace: &str) -> usize {
        0
    }
    /// A store shared by several processes: this process's id among them (the admin API's
    /// `node`); `None` for a store of one process.
    fn node_id(&self) -> Option<&str> {
        None
    }
    /// The nick keys of the room's operators.
    fn operators(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<String>>;
    /// Makes a nick key an operator of the room (`true`) or not (`false`).
    fn set_operator(
        &self,
        namespace: &str,
        room: &str,
        nick_key: &str,
        operator: bool,
    ) -> StoreFuture<'_, ()>;
    /// The room's bans and mutes, expired ones included.
    fn restrictions(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<Restriction>>;
    /// Adds a ban or mute, replacing the one of the same kind and target.
    fn add_restriction(
        &self,
        namespace: &str,
        room: &str,
        restriction: Restriction,
    ) -> StoreFuture<'_, ()>;
    /// Lifts a ban or mute; false when there was none.
    fn remove_restriction(
        &self,
        namespace: &str,
        room: &str,
        kind: RestrictionKind,
        target: &str,
    ) -> StoreFuture<'_, bool>;
    /// Removes one message from the room's log; returns it, or `None` when there is none
    /// with that seq.
    fn delete_message(
        &self,
        namespace: &str,
        room: &str,
        seq: u64,
    ) -> StoreFuture<'_, Option<ChatMessage>>;
    /// Forgets an identity, its queued direct messages and its operator status everywhere;
    /// false when there was none.
    fn delete_identity(&self, nick_key: &str) -> StoreFuture<'_, bool>;
    /// Replaces an identity's password hash; false when there is no such identity.
    fn set_password(&self, nick_key: &str, password_hash: String) -> StoreFuture<'_, bool>;
    /// Whether the store can take writes now (`/readyz`): cheap, called on every probe.
    fn available(&self) -> bool {
        true
    }
    /// The newest messages of the query's rooms that hold its phrase (see the contract).
    fn search(&self, query: SearchQuery) -> StoreFuture<'_, SearchPage>;
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

/// Turns what a store found after `after` into a [`Catchup`]: `found` are the newest missed
/// messages (at most `limit`), oldest first.
pub(crate) fn catchup(found: Vec<ChatMessage>, after: Option<u64>, last_seq: u64) -> Catchup {
    let missed = after
        .map(|a| last_seq.saturating_sub(a))
        .unwrap_or(found.len() as u64);
    Catchup {
        skipped: missed.saturating_sub(found.len() as u64),
        messages: found,
        last_seq,
    }
}

#[derive(Default)]
struct MemoryRoom {
    last_seq: u64,
    messages: VecDeque<ChatMessage>,
    /// Each kept message's place in the store-wide order (the search cursor), beside it.
    order: VecDeque<u64>,
    /// (from, cid) -> seq of the messages still kept.
    cids: HashMap<(String, String), u64>,
    cid_of: HashMap<u64, (String, String)>,
    topic: Option<String>,
}

#[derive(Default)]
struct Memory {
    identities: HashMap<String, Identity>,
    dms: HashMap<String, Vec<DirectMessage>>,
    /// (namespace, room) -> operator nick keys.
    operators: HashMap<(String, String), std::collections::BTreeSet<String>>,
    /// (namespace, room) -> bans and mutes.
    restrictions: HashMap<(String, String), Vec<Restriction>>,
}

fn room_key(namespace: &str, room: &str) -> (String, String) {
    (namespace.to_owned(), room.to_owned())
}

/// namespace -> room -> log. Each room has its own lock, which is its ordering section, so
/// rooms append and publish in parallel (one lock for all rooms serialized every broadcast).
type Rooms = HashMap<String, HashMap<String, Arc<Mutex<MemoryRoom>>>>;

/// Keeps the newest `capacity` messages of each room, in memory.
///
/// Search is a scan (no index): the newest messages of each room searched, newest first,
/// each split into words; at most `capacity` messages per room, so a search costs at most
/// rooms-per-socket times `capacity` messages (100 x 1000 by default), each room's lock held
/// only while its messages are scanned.
pub struct MemoryStore {
    capacity: usize,
    rooms: Mutex<Rooms>,
    state: Mutex<Memory>,
    /// The store-wide order of appends (search cursors), last given.
    appended: AtomicU64,
}

impl MemoryStore {
    pub fn new(capacity: usize) -> MemoryStore {
        MemoryStore {
            capacity: capacity.max(1),
            rooms: Mutex::new(Rooms::default()),
            state: Mutex::new(Memory::default()),
            appended: AtomicU64::new(0),
        }
    }

    /// The room's log, created if needed.
    fn room(&self, namespace: &str, room: &str) -> Arc<Mutex<MemoryRoom>> {
        let mut rooms = lock(&self.rooms);
        if let Some(log) = rooms.get(namespace).and_then(|r| r.get(room)) {
            return log.clone();
        }
        rooms
            .entry(namespace.to_owned())
            .or_default()
            .entry(room.to_owned())
            .or_default()
            .clone()
    }

    /// The room's log if it has one.
    fn existing(&self, namespace: &str, room: &str) -> Option<Arc<Mutex<MemoryRoom>>> {
        lock(&self.rooms)
            .get(namespace)
            .and_then(|r| r.get(room))
            .cloned()
    }
}

fn ready<T: Send + 'static>(v: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(v)))
}

impl MemoryRoom {
    /// Stores a message (or finds the one its `cid` names) and publishes it; called with the
    /// room's lock held (its ordering section).
    fn append(
        &mut self,
        capacity: usize,
        order: &AtomicU64,
        m: NewMessage,
        publish: Publish,
    ) -> Appended {
        if let Some(cid) = &m.cid {
            let key = (m.from.clone(), cid.clone());
            if let Some(seq) = self.cids.get(&key)
                && let Some(first) = self.messages.iter().find(|x| x.seq == *seq)
            {
                return Appended {
                    message: first.clone(),
                    duplicate: true,
                };
            }
        }
        self.last_seq += 1;
        let stored = ChatMessage {
            id: new_id(),
            room: m.room,
            seq: self.last_seq,
            from: m.from.clone(),
            text: m.text,
            ts: now_ms(),
            action: m.action,
        };
        if self.messages.len() == capacity
            && let Some(old) = self.messages.pop_front()
        {
            self.order.pop_front();
            if let Some(key) = self.cid_of.remove(&old.seq) {
                self.cids.remove(&key);
            }
        }
        if let Some(cid) = m.cid {
            self.cids.insert((m.from.clone(), cid.clone()), stored.seq);
            self.cid_of.insert(stored.seq, (m.from, cid));
        }
        self.messages.push_back(stored.clone());
        self.order
            .push_back(order.fetch_add(1, Ordering::Relaxed) + 1);
        publish(&stored);
        Appended {
            message: stored,
            duplicate: false,
        }
    }
}

impl RoomLog for MemoryStore {
    fn append_then(&self, m: NewMessage, publish: Publish, done: AppendDone) {
        let log = self.room(&m.namespace, &m.room);
        let mut log = lock(&log);
        // Publishing and answering only queue bytes (no await), so both run in the ordering
        // section: a room's acks, like its broadcasts, go out in `seq` order.
        let appended = log.append(self.capacity, &self.appended, m, publish);
        done.call(Ok(appended));
    }

    fn attach(
        &self,
        namespace: &str,
        room: &str,
        after: Option<u64>,
        limit: usize,
        attach: Attach,
    ) -> StoreFuture<'_, ()> {
        // The room's lock is held through `attach`, so no message is published in between.
        // A room with no log yet is not created (joining names must not grow the store): the
        // map's lock is held instead, so no first message can be appended in between.
        let rooms = lock(&self.rooms);
        let Some(log) = rooms.get(namespace).and_then(|r| r.get(room)).cloned() else {
            attach(catchup(Vec::new(), after, 0));
            return ready(());
        };
        drop(rooms);
        let log = lock(&log);
        let mut found: Vec<ChatMessage> = log
            .messages
            .iter()
            .rev()
            .take_while(|m| after.is_none_or(|a| m.seq > a))
            .take(limit)
            .cloned()
            .collect();
        found.reverse();
        let last_seq = log.last_seq;
        attach(catchup(found, after, last_seq));
        ready(())
    }

    fn history(
        &self,
        namespace: &str,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<ChatMessage>> {
        let mut out: Vec<ChatMessage> = self
            .existing(namespace, room)
            .map(|log| {
                lock(&log)
                    .messages
                    .iter()
                    .rev()
                    .filter(|m| before.is_none_or(|b| m.seq < b))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.reverse();
        ready(out)
    }
}

impl Store for MemoryStore {
    fn topic(&self, namespace: &str, room: &str) -> StoreFuture<'_, Option<String>> {
        ready(
            self.existing(namespace, room)
                .and_then(|log| lock(&log).topic.clone()),
        )
    }

    fn set_topic(&self, namespace: &str, room: &str, topic: Option<String>) -> StoreFuture<'_, ()> {
        lock(&self.room(namespace, room)).topic = topic;
        ready(())
    }

    fn identity(&self, nick_key: &str) -> StoreFuture<'_, Option<Identity>> {
        ready(lock(&self.state).identities.get(nick_key).cloned())
    }

    fn create_identity(&self, nick_key: &str, identity: Identity) -> StoreFuture<'_, bool> {
        let mut state = lock(&self.state);
        if state.identities.contains_key(nick_key) {
            return ready(false);
        }
        state.identities.insert(nick_key.to_owned(), identity);
        ready(true)
    }

    fn registered_nicks(&self) -> StoreFuture<'_, Vec<String>> {
        let state = lock(&self.state);
        ready(state.identities.values().map(|i| i.nick.clone()).collect())
    }

    fn queue_dm(&self, to_key: &str, message: DirectMessage) -> StoreFuture<'_, ()> {
        lock(&self.state)
            .dms
            .entry(to_key.to_owned())
            .or_default()
            .push(message);
        ready(())
    }

    fn queued_dm_count(&self, to_key: &str) -> StoreFuture<'_, usize> {
        ready(lock(&self.state).dms.get(to_key).map_or(0, Vec::len))
    }

    fn queued_dms(&self, to_key: &str) -> StoreFuture<'_, Vec<DirectMessage>> {
        ready(
            lock(&self.state)
                .dms
                .get(to_key)
                .cloned()
                .unwrap_or_default(),
        )
    }

    fn remove_dm(&self, to_key: &str, id: &str) -> StoreFuture<'_, ()> {
        if let Some(v) = lock(&self.state).dms.get_mut(to_key) {
            v.retain(|m| m.id != id);
        }
        ready(())
    }

    fn operators(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<String>> {
        let state = lock(&self.state);
        let ops = state.operators.get(&room_key(namespace, room));
        ready(ops.map(|o| o.iter().cloned().collect()).unwrap_or_default())
    }

    fn set_operator(
        &self,
        namespace: &str,
        room: &str,
        nick_key: &str,
        operator: bool,
    ) -> StoreFuture<'_, ()> {
        let mut state = lock(&self.state);
        let key = room_key(namespace, room);
        if operator {
            let ops = state.operators.entry(key).or_default();
            ops.insert(nick_key.to_owned());
        } else if let Some(ops) = state.operators.get_mut(&key) {
            ops.remove(nick_key);
            if ops.is_empty() {
                state.operators.remove(&key);
            }
        }
        ready(())
    }

    fn restrictions(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<Restriction>> {
        let state = lock(&self.state);
        let found = state.restrictions.get(&room_key(namespace, room)).cloned();
        ready(found.unwrap_or_default())
    }

    fn add_restriction(
        &self,
        namespace: &str,
        room: &str,
        restriction: Restriction,
    ) -> StoreFuture<'_, ()> {
        let mut state = lock(&self.state);
        let list = state
            .restrictions
            .entry(room_key(namespace, room))
            .or_default();
        list.retain(|r| (r.kind, &r.target) != (restriction.kind, &restriction.target));
        list.push(restriction);
        ready(())
    }

    fn remove_restriction(
        &self,
        namespace: &str,
        room: &str,
        kind: RestrictionKind,
        target: &str,
    ) -> StoreFuture<'_, bool> {
        let mut state = lock(&self.state);
        let Some(list) = state.restrictions.get_mut(&room_key(namespace, room)) else {
            return ready(false);
        };
        let before = list.len();
        list.retain(|r| (r.kind, r.target.as_str()) != (kind, target));
        ready(list.len() < before)
    }

    fn delete_message(
        &self,
        namespace: &str,
        room: &str,
        seq: u64,
    ) -> StoreFuture<'_, Option<ChatMessage>> {
        let Some(log) = self.existing(namespace, room) else {
            return ready(None);
        };
        let mut log = lock(&log);
        let Some(at) = log.messages.iter().position(|m| m.seq == seq) else {
            return ready(None);
        };
        let removed = log.messages.remove(at);
        log.order.remove(at);
        if let Some(key) = log.cid_of.remove(&seq) {
            log.cids.remove(&key);
        }
        ready(removed)
    }

    fn delete_identity(&self, nick_key: &str) -> StoreFuture<'_, bool> {
        let mut state = lock(&self.state);
        let existed = state.identities.remove(nick_key).is_some();
        state.dms.remove(nick_key);
        state.operators.retain(|_, ops| {
            ops.remove(nick_key);
            !ops.is_empty()
        });
        ready(existed)
    }

    fn set_password(&self, nick_key: &str, password_hash: String) -> StoreFuture<'_, bool> {
        let mut state = lock(&self.state);
        let Some(identity) = state.identities.get_mut(nick_key) else {
            return ready(false);
        };
        identity.password_hash = password_hash;
        ready(true)
    }

    fn search(&self, query: SearchQuery) -> StoreFuture<'_, SearchPage> {
        let before = match parse_cursor(query.before.as_deref()) {
            Ok(before) => before.unwrap_or(u64::MAX),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let limit = query.limit.max(1);
        let mut hits: Vec<(u64, ChatMessage)> = Vec::new();
        for room in &query.rooms {
            let Some(log) = self.existing(&query.namespace, room) else {
                continue;
            };
            let log = lock(&log);
            hits.extend(
                log.order
                    .iter()
                    .zip(&log.messages)
                    .rev()
                    .filter(|(n, m)| **n < before && query.phrase.matches(&m.text))
                    .take(limit)
                    .map(|(n, m)| (*n, m.clone())),
            );
        }
        hits.sort_unstable_by_key(|(n, _)| std::cmp::Reverse(*n));
        hits.truncate(limit);
        let next = (hits.len() == limit)
            .then(|| hits.last().map(|(n, _)| cursor(*n)))
            .flatten();
        ready(SearchPage {
            messages: hits.into_iter().map(|(_, m)| m).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str, cid: Option<&str>) -> NewMessage {
        NewMessage {
            namespace: "/".into(),
            room: "r".into(),
            from: "a".into(),
            text: text.into(),
            action: false,
            cid: cid.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn seq_increases_and_history_pages_backwards() {
        let store = MemoryStore::new(3);
        for i in 1..=5 {
            let m = store
                .append(msg(&i.to_string(), None), Box::new(|_| {}))
                .await
                .expect("append");
            assert_eq!(m.message.seq, i);
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

    #[tokio::test]
    async fn attach_reports_what_was_missed_and_what_was_skipped() {
        let store = MemoryStore::new(100);
        for i in 0..10 {
            store
                .append(msg(&i.to_string(), None), Box::new(|_| {}))
                .await
                .expect("append");
        }
        let got = std::sync::Arc::new(Mutex::new(Catchup::default()));
        let sink = |g: &std::sync::Arc<Mutex<Catchup>>| -> Attach {
            let g = g.clone();
            Box::new(move |c| *lock(&g) = c)
        };
        let seqs = |c: &Catchup| c.messages.iter().map(|m| m.seq).collect::<Vec<_>>();
        store
            .attach("/", "r", Some(7), 50, sink(&got))
            .await
            .expect("attach");
        let c = lock(&got).clone();
        assert_eq!((seqs(&c), c.skipped, c.last_seq), (vec![8, 9, 10], 0, 10));
        store
            .attach("/", "r", Some(0), 4, sink(&got))
            .await
            .expect("attach");
        let c = lock(&got).clone();
        assert_eq!((seqs(&c), c.skipped), (vec![7, 8, 9, 10], 6));
        store
            .attach("/", "r", Some(10), 4, sink(&got))
            .await
            .expect("attach");
        assert!(lock(&got).messages.is_empty());
        store
            .attach("/", "empty", Some(0), 4, sink(&got))
            .await
            .expect("attach");
        let c = lock(&got).clone();
        assert_eq!(c, Catchup::default());
        // Attaching to a room nobody wrote to does not make the store keep a log for it.
        assert!(store.existing("/", "empty").is_none());
        assert!(store.existing("/", "r").is_some());
    }
}
