//! The store's contract, one suite for every backend. Each clause of the `RoomLog` and `Store`
//! docs (`server/src/chat/store.rs`) is a generic async function here, and the `contract!`
//! macro runs every clause against a backend, one test per clause (`memory::attach_...`,
//! `sqlite::attach_...`): the memory store, the SQLite store as it runs by default, and the
//! SQLite store indexing after every few messages (so its reads cross the indexed and the
//! unindexed messages).
//!
//! A new backend passes the contract by adding one line here, as the Redis store does:
//!
//! ```text
//! contract!(redis, redis_factory(), durable: reopen_redis, requires: common::redis::installed);
//! ```
//!
//! where `redis_factory()` returns a closure that makes a fresh, empty store (`Fn() -> S`,
//! `S: Store`) each time it is called, and `durable: reopen` (for a store that keeps its data
//! across a restart) is a function that closes a store and opens the same data again
//! (`fn(S) -> S`), and `requires: ready` (optional) a `fn() -> bool` that says whether the
//! backend can run here (the test returns early, having printed why, when not). Each test gets its own factory, and every clause runs within a 60 s
//! timeout on a two-thread runtime, so the concurrency clauses really run at once.
//!
//! The clauses: `seq_starts_at_one_and_rises_by_one_per_room`,
//! `publish_then_done_for_each_append`, `appends_issued_back_to_back_keep_their_order`,
//! `concurrent_appenders_take_every_seq_once_in_publish_order`,
//! `a_resent_cid_returns_the_first_message_and_publishes_nothing`,
//! `a_cid_resent_while_the_first_is_in_flight_is_stored_once`,
//! `attach_hands_over_what_was_missed`, `an_attach_racing_appends_misses_and_repeats_nothing`,
//! `history_pages_backwards_oldest_first`, `topics`, `identities`, `queued_direct_messages`,
//! `operators`, `bans_and_mutes`, `deleting_a_message`, `identity_changes`,
//! `search_finds_a_phrase_newest_first_in_pages`, `search_reads_user_text_as_words_only`;
//! for durable
//! stores `a_reopened_store_keeps_everything` and
//! `a_reopened_store_keeps_moderation_and_deletions`.
//!
//! Not here: the error clause (a backend's failures are its own to provoke: the SQLite
//! store's refusal while indexing fails is in `store.rs`, an append answered `Closed` in
//! `pipeline.rs`), and what each backend does beyond the contract (the memory store's
//! capacity, SQLite's retention, indexing and repair: `store.rs`, `store_repair.rs`,
//! `durable.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_protocol::events::{ChatMessage, DirectMessage};
mod common;

use chat_server::chat::redis::RedisStore;
use chat_server::chat::sqlite::{IndexLimits, Retention, SqliteStore};
use chat_server::chat::store::{
    AppendDone, Appended, Catchup, Identity, MemoryStore, NewMessage, Phrase, Restriction,
    RestrictionKind, SearchPage, SearchQuery, Store, StoreError,
};
use chat_server::config::RedisUrl;
use common::redis::RedisServer;
use tokio::sync::oneshot;

/// Runs every clause against a backend: `contract!(name, factory)` or
/// `contract!(name, factory, durable: reopen)`; see the file's doc.
macro_rules! contract {
    ($backend:ident, $fresh:expr $(, durable: $reopen:expr)? $(, requires: $ready:expr)?) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            /// Whether the backend can run here (a Redis store needs `redis-server`).
            fn ready() -> bool {
                true $(&& $ready())?
            }
            contract!(@clauses $fresh;
                seq_starts_at_one_and_rises_by_one_per_room,
                publish_then_done_for_each_append,
                appends_issued_back_to_back_keep_their_order,
                concurrent_appenders_take_every_seq_once_in_publish_order,
                a_resent_cid_returns_the_first_message_and_publishes_nothing,
                a_cid_resent_while_the_first_is_in_flight_is_stored_once,
                attach_hands_over_what_was_missed,
                an_attach_racing_appends_misses_and_repeats_nothing,
                history_pages_backwards_oldest_first,
                topics,
                identities,
                queued_direct_messages,
                operators,
                bans_and_mutes,
                deleting_a_message,
                identity_changes,
                search_finds_a_phrase_newest_first_in_pages,
                search_reads_user_text_as_words_only
            );
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_reopened_store_keeps_everything() {
                    if !ready() {
                        return;
                    }
                    super::within(super::a_reopened_store_keeps_everything($fresh, $reopen)).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_reopened_store_keeps_moderation_and_deletions() {
                    super::within(super::a_reopened_store_keeps_moderation_and_deletions($fresh, $reopen)).await
                }
            )?
        }
    };
    (@clauses $fresh:expr; $($clause:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $clause() {
                if !ready() {
                    return;
                }
                super::within(super::$clause($fresh)).await
            }
        )*
    };
}

contract!(memory, || MemoryStore::new(1000));
contract!(
    sqlite,
    sqlite_factory(IndexLimits::default()),
    durable: reopen_sqlite
);
// Indexes after every 8 messages. (Not fewer: the store refuses appends once 16 chunks of
// `rows` wait unindexed, counting the batch being written, and a clause issues 57 at once.)
contract!(
    sqlite_indexing,
    sqlite_factory(IndexLimits {
        rows: 8,
        age: Duration::from_secs(3600),
    }),
    durable: reopen_sqlite
);

// The Redis store (cluster mode), each store on a `redis-server` of its own that the
// factory starts (skipped, saying so, where redis-server is not installed).
contract!(
    redis,
    redis_factory(),
    durable: reopen_redis,
    requires: common::redis::installed
);

// ---- the backends ----

/// Fresh Redis stores, each connected to a new `redis-server` that the factory keeps running
/// (until the test ends).
fn redis_factory() -> impl Fn() -> RedisStore {
    let servers: Mutex<Vec<RedisServer>> = Mutex::default();
    move || {
        let server = RedisServer::start();
        let url = RedisUrl::parse(&server.url()).unwrap();
        servers.lock().unwrap().push(server);
        connect_redis(&url)
    }
}

fn connect_redis(url: &RedisUrl) -> RedisStore {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(RedisStore::connect(url, 0))
    })
    .unwrap()
}

fn reopen_redis(store: RedisStore) -> RedisStore {
    let url = store.url().clone();
    drop(store);
    connect_redis(&url)
}

/// Fresh SQLite stores, each a new file in a temporary directory the factory keeps.
fn sqlite_factory(limits: IndexLimits) -> impl Fn() -> SqliteStore {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    move || {
        let path = dir
            .path()
            .join(format!("chat-{}.db", n.fetch_add(1, Ordering::Relaxed)));
        SqliteStore::open_with(&path, Retention::default(), limits).unwrap()
    }
}

fn reopen_sqlite(store: SqliteStore) -> SqliteStore {
    let path = store.path().to_owned();
    drop(store);
    SqliteStore::open(&path, Retention::default()).unwrap()
}

// ---- helpers ----

/// Fails a clause that hangs (a callback never called, a lost reply) instead of hanging.
async fn within(clause: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(60), clause)
        .await
        .expect("the clause finished within 60 s");
}

fn message(namespace: &str, room: &str, from: &str, text: &str, cid: Option<&str>) -> NewMessage {
    NewMessage {
        namespace: namespace.into(),
        room: room.into(),
        from: from.into(),
        text: text.into(),
        action: false,
        cid: cid.map(str::to_owned),
    }
}

/// In room "r" of namespace "/".
fn in_r(from: &str, text: &str, cid: Option<&str>) -> NewMessage {
    message("/", "r", from, text, cid)
}

/// A callback of an append, as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Publish {
        room: String,
        seq: u64,
    },
    Done {
        room: String,
        seq: u64,
        duplicate: bool,
    },
}

fn publish(room: &str, seq: u64) -> Call {
    Call::Publish {
        room: room.into(),
        seq,
    }
}

fn done(room: &str, seq: u64) -> Call {
    Call::Done {
        room: room.into(),
        seq,
        duplicate: false,
    }
}

/// Every append's callbacks, in the order they ran (the store's ordering section).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    fn of_room(&self, room: &str) -> Vec<Call> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|c| match c {
                Call::Publish { room: r, .. } | Call::Done { room: r, .. } => r == room,
            })
            .cloned()
            .collect()
    }

    /// publish, done for each seq in turn: publish 1, done 1, publish 2, done 2, ...
    fn alternating(room: &str, seqs: impl IntoIterator<Item = u64>) -> Vec<Call> {
        seqs.into_iter()
            .flat_map(|s| [publish(room, s), done(room, s)])
            .collect()
    }
}

/// Compares recorded callbacks with the expected ones, showing where they first differ.
#[track_caller]
fn assert_calls(got: &[Call], expected: &[Call]) {
    let n = got.len().max(expected.len());
    if let Some(i) = (0..n).find(|&i| got.get(i) != expected.get(i)) {
        let around =
            |v: &[Call]| v[i.saturating_sub(2).min(v.len())..(i + 3).min(v.len())].to_vec();
        panic!(
            "the callbacks differ at {i} of {n}: got {:?}, expected {:?}",
            around(got),
            around(expected)
        );
    }
}

type Outcome = oneshot::Receiver<Result<Appended, StoreError>>;

/// Issues an append whose callbacks are recorded in `calls` (`publish` also checks it gets
/// the message `done` will report, and that it runs before `done`); the outcome is awaited
/// apart, with [`outcome`], so that appends can be issued back to back.
fn issue<S: Store + ?Sized>(store: &S, m: NewMessage, calls: &Calls) -> Outcome {
    let (tx, rx) = oneshot::channel();
    let published: Arc<Mutex<Option<ChatMessage>>> = Arc::default();
    let (on_publish, on_done) = (calls.clone(), calls.clone());
    let (into, from) = (published.clone(), published);
    store.append_then(
        m,
        Box::new(move |stored| {
            on_publish
                .0
                .lock()
                .unwrap()
                .push(publish(&stored.room, stored.seq));
            *into.lock().unwrap() = Some(stored.clone());
        }),
        AppendDone::new(move |result| {
            if let Ok(appended) = &result {
                let m = &appended.message;
                on_done.0.lock().unwrap().push(Call::Done {
                    room: m.room.clone(),
                    seq: m.seq,
                    duplicate: appended.duplicate,
                });
                let seen = from.lock().unwrap().take();
                if appended.duplicate {
                    assert_eq!(seen, None, "a re-send is not published");
                } else {
                    assert_eq!(
                        seen.as_ref(),
                        Some(m),
                        "published before done, the same message"
                    );
                }
            }
            let _ = tx.send(result);
        }),
    );
    rx
}

async fn outcome(rx: Outcome) -> Appended {
    rx.await
        .expect("done is called")
        .expect("the append succeeds")
}

async fn append<S: Store + ?Sized>(store: &S, m: NewMessage, calls: &Calls) -> Appended {
    outcome(issue(store, m, calls)).await
}

/// Appends `n` messages to "/" "r", texts `m1`, `m2`, ...
async fn fill<S: Store + ?Sized>(store: &S, n: u64) -> Vec<ChatMessage> {
    let calls = Calls::default();
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(
            append(store, in_r("ann", &format!("m{i}"), None), &calls)
                .await
                .message,
        );
    }
    out
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Attaches and returns the catch-up its callback got (and checks it got exactly one).
async fn attach<S: Store + ?Sized>(
    store: &S,
    namespace: &str,
    room: &str,
    after: Option<u64>,
    limit: usize,
) -> Catchup {
    let got: Arc<Mutex<Vec<Catchup>>> = Arc::default();
    let into = got.clone();
    store
        .attach(
            namespace,
            room,
            after,
            limit,
            Box::new(move |c| into.lock().unwrap().push(c)),
        )
        .await
        .unwrap();
    let mut got = std::mem::take(&mut *got.lock().unwrap());
    assert_eq!(
        got.len(),
        1,
        "the attach callback runs once, before attach resolves"
    );
    got.remove(0)
}

async fn history<S: Store + ?Sized>(
    store: &S,
    namespace: &str,
    room: &str,
    before: Option<u64>,
    limit: usize,
) -> Vec<ChatMessage> {
    store.history(namespace, room, before, limit).await.unwrap()
}

fn dm(id: &str, to: &str, text: &str) -> DirectMessage {
    DirectMessage {
        id: id.into(),
        from: "ann".into(),
        to: to.into(),
        text: text.into(),
        ts: 1_700_000_000_000,
        action: false,
    }
}

fn identity(nick: &str, hash: &str) -> Identity {
    Identity {
        nick: nick.into(),
        password_hash: hash.into(),
    }
}

// ---- the clauses ----

/// Seq: 1 for a room's first message, then one more each; rooms (and namespaces) apart; the
/// store fills in a unique id and the time, and keeps the rest as given.
async fn seq_starts_at_one_and_rises_by_one_per_room<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let calls = Calls::default();
    let rooms = [("/", "a"), ("/", "b"), ("/x", "a")];
    let mut ids = BTreeSet::new();
    for round in 1..=3u64 {
        for (ns, room) in rooms {
            let mut m = message(ns, room, "ann", &format!("{ns}{room}{round}"), None);
            m.action = round == 2;
            let appended = append(&store, m, &calls).await;
            let got = &appended.message;
            assert!(!appended.duplicate);
            assert_eq!(got.seq, round, "{ns} {room}");
            assert_eq!(
                (
                    got.room.as_str(),
                    got.from.as_str(),
                    got.text.as_str(),
                    got.action
                ),
                (
                    room,
                    "ann",
                    format!("{ns}{room}{round}").as_str(),
                    round == 2
                )
            );
            assert!(got.ts > 0, "a time is filled in");
            assert!(
                !got.id.is_empty() && ids.insert(got.id.clone()),
                "a unique id"
            );
        }
    }
    for (ns, room) in rooms {
        assert_eq!(seqs(&history(&store, ns, room, None, 10).await), [1, 2, 3]);
    }
}

/// Publish, then done: one of each per new message, publish first, with the same message.
async fn publish_then_done_for_each_append<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let calls = Calls::default();
    for i in 1..=3u64 {
        let appended = append(&store, in_r("ann", &format!("m{i}"), None), &calls).await;
        assert_eq!(appended.message.seq, i);
    }
    assert_calls(&calls.of_room("r"), &Calls::alternating("r", 1..=3));
}

/// Appends issued one after another without waiting are stored, published and answered in
/// that order.
async fn appends_issued_back_to_back_keep_their_order<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let calls = Calls::default();
    let n = 50u64;
    let mut pending = Vec::new();
    for i in 1..=n {
        pending.push(issue(&store, in_r("ann", &format!("m{i}"), None), &calls));
        // Another room in between changes nothing for this one.
        if i % 7 == 0 {
            pending.push(issue(
                &store,
                message("/", "other", "ann", "o", None),
                &calls,
            ));
        }
    }
    let mut seen = Vec::new();
    for rx in pending {
        let m = outcome(rx).await.message;
        if m.room == "r" {
            seen.push((m.seq, m.text));
        }
    }
    let expected: Vec<(u64, String)> = (1..=n).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(seen, expected);
    assert_calls(&calls.of_room("r"), &Calls::alternating("r", 1..=n));
    let stored: Vec<(u64, String)> = history(&store, "/", "r", None, 1000)
        .await
        .into_iter()
        .map(|m| (m.seq, m.text))
        .collect();
    assert_eq!(stored, expected);
}

/// Several tasks appending to one room at once: every seq from 1 to N exactly once, the
/// publish calls in seq order, each done right after its publish (nothing in between: both
/// run in the room's ordering section), and each task's messages in the order it sent them.
async fn concurrent_appenders_take_every_seq_once_in_publish_order<S: Store>(
    fresh: impl Fn() -> S,
) {
    let store = Arc::new(fresh());
    let calls = Calls::default();
    let (tasks, each) = (8u64, 50u64);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (store, calls) = (store.clone(), calls.clone());
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..each {
                let m = append(
                    &*store,
                    in_r(&format!("u{t}"), &format!("{t}:{i}"), None),
                    &calls,
                )
                .await;
                got.push(m.message.seq);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        let got = h.await.unwrap();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "a task's own appends in order: {got:?}"
        );
        all.extend(got);
    }
    all.sort_unstable();
    let n = tasks * each;
    assert_eq!(all, (1..=n).collect::<Vec<_>>(), "every seq exactly once");
    assert_calls(&calls.of_room("r"), &Calls::alternating("r", 1..=n));
    let stored = history(&*store, "/", "r", None, 1000).await;
    assert_eq!(seqs(&stored), (1..=n).collect::<Vec<_>>());
    for t in 0..tasks {
        let texts: Vec<String> = stored
            .iter()
            .filter(|m| m.from == format!("u{t}"))
            .map(|m| m.text.clone())
            .collect();
        assert_eq!(
            texts,
            (0..each).map(|i| format!("{t}:{i}")).collect::<Vec<_>>()
        );
    }
}

/// A cid re-sent by the same sender in the same room returns the first message, publishes
/// nothing and takes no seq; another sender, room or namespace makes a new message.
async fn a_resent_cid_returns_the_first_message_and_publishes_nothing<S: Store>(
    fresh: impl Fn() -> S,
) {
    let store = fresh();
    let calls = Calls::default();
    let first = append(&store, in_r("ann", "x", Some("c1")), &calls).await;
    let again = append(&store, in_r("ann", "x (re-sent)", Some("c1")), &calls).await;
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.message, again.message);
    assert_calls(
        &calls.of_room("r"),
        &[
            publish("r", 1),
            done("r", 1),
            Call::Done {
                room: "r".into(),
                seq: 1,
                duplicate: true,
            },
        ],
    );
    let other_sender = append(&store, in_r("bob", "y", Some("c1")), &calls).await;
    assert_eq!(
        (other_sender.duplicate, other_sender.message.seq),
        (false, 2)
    );
    let other_room = append(&store, message("/", "s", "ann", "z", Some("c1")), &calls).await;
    assert_eq!((other_room.duplicate, other_room.message.seq), (false, 1));
    let other_ns = append(&store, message("/x", "r", "ann", "z", Some("c1")), &calls).await;
    assert_eq!((other_ns.duplicate, other_ns.message.seq), (false, 1));
    let next = append(&store, in_r("ann", "w", None), &calls).await;
    assert_eq!(next.message.seq, 3, "the re-send took no seq");
    let stored = history(&store, "/", "r", None, 10).await;
    assert_eq!(stored[0], first.message);
    assert_eq!(seqs(&stored), [1, 2, 3]);
}

/// A cid re-sent while the first append is still in flight (issued back to back, or racing
/// from two tasks) is stored once.
async fn a_cid_resent_while_the_first_is_in_flight_is_stored_once<S: Store>(fresh: impl Fn() -> S) {
    let store = Arc::new(fresh());
    let calls = Calls::default();
    let a = issue(&*store, in_r("ann", "first", Some("c0")), &calls);
    let b = issue(&*store, in_r("ann", "second", Some("c0")), &calls);
    let (a, b) = (outcome(a).await, outcome(b).await);
    assert!(
        !a.duplicate && b.duplicate,
        "the first issued is the one stored"
    );
    assert_eq!(a.message, b.message);
    assert_eq!(a.message.text, "first");
    let rounds = 20;
    for round in 1..=rounds {
        let cid = format!("c{round}");
        let race = |text: &'static str| {
            let (store, calls, cid) = (store.clone(), calls.clone(), cid.clone());
            tokio::spawn(
                async move { append(&*store, in_r("ann", text, Some(&cid)), &calls).await },
            )
        };
        let (x, y) = (race("one"), race("two"));
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert_ne!(x.duplicate, y.duplicate, "one stored, one re-send");
        assert_eq!(x.message, y.message);
    }
    let stored = history(&*store, "/", "r", None, 1000).await;
    assert_eq!(seqs(&stored), (1..=rounds + 1).collect::<Vec<_>>());
    let published = calls
        .of_room("r")
        .iter()
        .filter(|c| matches!(c, Call::Publish { .. }))
        .count();
    assert_eq!(published as u64, rounds + 1, "each message published once");
}

/// Attach hands its callback, once, the newest `limit` messages after `after`, oldest first,
/// counting the rest as skipped, and the room's last seq.
async fn attach_hands_over_what_was_missed<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let all = fill(&store, 10).await;
    let c = attach(&store, "/", "r", Some(7), 50).await;
    assert_eq!(
        (c.messages.as_slice(), c.skipped, c.last_seq),
        (&all[7..], 0, 10)
    );
    let c = attach(&store, "/", "r", Some(0), 4).await;
    assert_eq!(
        (seqs(&c.messages), c.skipped, c.last_seq),
        (vec![7, 8, 9, 10], 6, 10)
    );
    let c = attach(&store, "/", "r", Some(10), 4).await;
    assert_eq!((c.messages.len(), c.skipped, c.last_seq), (0, 0, 10));
    let c = attach(&store, "/", "r", None, 4).await;
    assert_eq!(
        (seqs(&c.messages), c.skipped, c.last_seq),
        (vec![7, 8, 9, 10], 0, 10)
    );
    let c = attach(&store, "/", "r", None, 100).await;
    assert_eq!((c.messages, c.skipped), (all, 0));
    assert_eq!(
        attach(&store, "/", "empty", Some(0), 4).await,
        Catchup::default()
    );
    assert_eq!(attach(&store, "/x", "r", None, 4).await, Catchup::default());
    // Attaching created no message.
    assert!(history(&store, "/", "empty", None, 10).await.is_empty());
    assert_eq!(fill(&store, 1).await[0].seq, 11);
}

/// A subscriber that an attach callback registers, fed by the publish calls after it: its
/// catch-up plus what is published after has every seq after `after` exactly once, in order,
/// however the attach falls among concurrent appends. Attaches are made one after another
/// for as long as the appends last, so they fall everywhere among them.
async fn an_attach_racing_appends_misses_and_repeats_nothing<S: Store>(fresh: impl Fn() -> S) {
    /// (after, what it received: the catch-up's seqs, then every published seq).
    type Subscribers = Arc<Mutex<Vec<(u64, Vec<u64>)>>>;
    let store = Arc::new(fresh());
    let before = 10;
    fill(&*store, before).await;
    let subscribers: Subscribers = Arc::default();
    let (appenders, each) = (2u64, 200u64);
    let appending = Arc::new(AtomicUsize::new(appenders as usize));
    let mut handles = Vec::new();
    for t in 0..appenders {
        let (store, subscribers, appending) =
            (store.clone(), subscribers.clone(), appending.clone());
        handles.push(tokio::spawn(async move {
            for i in 0..each {
                let subscribers = subscribers.clone();
                store
                    .append(
                        in_r(&format!("u{t}"), &format!("{i}"), None),
                        Box::new(move |m| {
                            for (_, got) in subscribers.lock().unwrap().iter_mut() {
                                got.push(m.seq);
                            }
                        }),
                    )
                    .await
                    .unwrap();
                // A store that answers at once (memory) would otherwise finish every
                // append before an attach task runs.
                tokio::task::yield_now().await;
            }
            appending.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for t in 0..2u64 {
        let (store, subscribers, appending) =
            (store.clone(), subscribers.clone(), appending.clone());
        handles.push(tokio::spawn(async move {
            // At least four each; bounded, in case the appends never end.
            for k in t.. {
                if k >= 2000 || (k >= 4 && appending.load(Ordering::SeqCst) == 0) {
                    break;
                }
                // Some from the start (`None`), some from a seq they had.
                let after = [None, Some(0), Some(5), Some(before)][(k % 4) as usize];
                let subscribers = subscribers.clone();
                store
                    .attach(
                        "/",
                        "r",
                        after,
                        10_000,
                        Box::new(move |c| {
                            assert_eq!(c.skipped, 0, "within the limit");
                            assert_eq!(c.messages.last().map_or(c.last_seq, |m| m.seq), c.last_seq);
                            subscribers
                                .lock()
                                .unwrap()
                                .push((after.unwrap_or(0), seqs(&c.messages)));
                        }),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let last = before + appenders * each;
    let subscribers = subscribers.lock().unwrap();
    assert!(!subscribers.is_empty());
    for (after, got) in subscribers.iter() {
        assert_eq!(
            got,
            &(after + 1..=last).collect::<Vec<_>>(),
            "after {after}: catch-up then live, every seq once"
        );
    }
}

/// History: the newest `limit` messages below `before`, oldest first.
async fn history_pages_backwards_oldest_first<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let all = fill(&store, 10).await;
    assert_eq!(history(&store, "/", "r", None, 100).await, all);
    assert_eq!(seqs(&history(&store, "/", "r", None, 3).await), [8, 9, 10]);
    assert_eq!(
        seqs(&history(&store, "/", "r", Some(8), 4).await),
        [4, 5, 6, 7]
    );
    assert_eq!(seqs(&history(&store, "/", "r", Some(3), 10).await), [1, 2]);
    assert!(history(&store, "/", "r", Some(1), 10).await.is_empty());
    assert_eq!(
        seqs(&history(&store, "/", "r", Some(100), 2).await),
        [9, 10]
    );
    assert!(history(&store, "/", "other", None, 10).await.is_empty());
    assert!(history(&store, "/x", "r", None, 10).await.is_empty());
}

async fn search<S: Store + ?Sized>(
    store: &S,
    namespace: &str,
    rooms: &[&str],
    text: &str,
    before: Option<String>,
    limit: usize,
) -> Result<SearchPage, StoreError> {
    store
        .search(SearchQuery {
            namespace: namespace.into(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            phrase: Phrase::new(text).expect("a text with words"),
            before,
            limit,
        })
        .await
}

/// Every page of a search, following `next` (at most 100 pages).
async fn search_all<S: Store + ?Sized>(
    store: &S,
    rooms: &[&str],
    text: &str,
    limit: usize,
) -> Vec<ChatMessage> {
    let (mut out, mut before) = (Vec::new(), None);
    for _ in 0..100 {
        let page = search(store, "/", rooms, text, before, limit)
            .await
            .unwrap();
        assert!(page.messages.len() <= limit, "a page holds at most limit");
        out.extend(page.messages);
        match page.next {
            Some(next) => before = Some(next),
            None => return out,
        }
    }
    panic!("a search that pages on and on");
}

/// Search: the phrase's words in a row, in the rooms asked for only, newest first, in pages
/// whose cursors neither repeat nor skip a hit.
async fn search_finds_a_phrase_newest_first_in_pages<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let calls = Calls::default();
    let mut in_r_and_s = Vec::new();
    let mut in_r = Vec::new();
    for i in 0..30 {
        let room = ["r", "s", "t"][i % 3];
        let text = if i % 2 == 0 {
            format!("the Brown fox number {i}")
        } else {
            format!("a fox, brown, number {i}")
        };
        let m = append(&store, message("/", room, "ann", &text, None), &calls)
            .await
            .message;
        if i % 2 == 0 && room != "t" {
            in_r_and_s.push(m.clone());
            if room == "r" {
                in_r.push(m);
            }
        }
    }
    append(&store, message("/x", "r", "ann", "brown fox", None), &calls).await;
    in_r_and_s.reverse();
    in_r.reverse();
    assert_eq!(
        search_all(&store, &["r", "s"], "bRoWn FOX", 4).await,
        in_r_and_s
    );
    assert_eq!(
        search_all(&store, &["r", "s"], "brown fox", 50).await,
        in_r_and_s
    );
    assert_eq!(search_all(&store, &["r"], "brown fox", 3).await, in_r);
    let page = search(&store, "/", &["r", "s"], "brown fox", None, 10)
        .await
        .unwrap();
    assert_eq!(page.messages, in_r_and_s[..10]);
    assert!(page.next.is_some(), "a full page says there may be more");
    // Whole words only, in order.
    assert!(
        search_all(&store, &["r", "s", "t"], "brow", 50)
            .await
            .is_empty()
    );
    assert_eq!(
        search_all(&store, &["r", "s", "t"], "number 7", 50)
            .await
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["a fox, brown, number 7"]
    );
    assert!(search_all(&store, &["nowhere"], "fox", 50).await.is_empty());
    assert!(search_all(&store, &[], "fox", 50).await.is_empty());
    assert!(matches!(
        search(&store, "/", &["r"], "fox", Some("not a cursor".into()), 5).await,
        Err(StoreError::BadCursor(_))
    ));
}

/// Search: what looks like query syntax in the text is words and punctuation, nothing else.
async fn search_reads_user_text_as_words_only<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let calls = Calls::default();
    for text in [
        r#"she said "hi" OR * to me"#,
        "hi there",
        "cats AND dogs",
        "NEAR(a b) text : colon",
    ] {
        append(&store, in_r("ann", text, None), &calls).await;
    }
    let texts = |found: Vec<ChatMessage>| found.into_iter().map(|m| m.text).collect::<Vec<_>>();
    assert_eq!(
        texts(search_all(&store, &["r"], r#""hi" OR *"#, 10).await),
        [r#"she said "hi" OR * to me"#]
    );
    assert!(
        search_all(&store, &["r"], "cats OR hi", 10)
            .await
            .is_empty()
    );
    assert_eq!(
        texts(search_all(&store, &["r"], "cats and", 10).await),
        ["cats AND dogs"]
    );
    assert_eq!(
        texts(search_all(&store, &["r"], "NEAR(a b) text:", 10).await),
        ["NEAR(a b) text : colon"]
    );
    assert!(search_all(&store, &["r"], "text:colon*", 10).await.len() == 1);
    assert!(search_all(&store, &["r"], "^hi", 10).await.len() == 2);
}

/// Topics: per (namespace, room), `None` until set, cleared by `None`, taking no seq.
async fn topics<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let topic = |ns: &'static str, room: &'static str| store.topic(ns, room);
    assert_eq!(topic("/", "r").await.unwrap(), None);
    store.set_topic("/", "r", Some("one".into())).await.unwrap();
    assert_eq!(topic("/", "r").await.unwrap().as_deref(), Some("one"));
    assert_eq!(topic("/", "s").await.unwrap(), None);
    assert_eq!(topic("/x", "r").await.unwrap(), None);
    store.set_topic("/", "r", Some("two".into())).await.unwrap();
    assert_eq!(topic("/", "r").await.unwrap().as_deref(), Some("two"));
    assert!(history(&store, "/", "r", None, 10).await.is_empty());
    assert_eq!(fill(&store, 1).await[0].seq, 1, "a topic takes no seq");
    assert_eq!(topic("/", "r").await.unwrap().as_deref(), Some("two"));
    store.set_topic("/", "r", None).await.unwrap();
    assert_eq!(topic("/", "r").await.unwrap(), None);
}

/// Identities: claimed once per key (the key as the caller gives it), the first claim kept.
async fn identities<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    assert_eq!(store.identity("ann").await.unwrap(), None);
    assert!(
        store
            .create_identity("ann", identity("Ann", "h1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_identity("ann", identity("ANN", "h2"))
            .await
            .unwrap(),
        "taken"
    );
    assert_eq!(
        store.identity("ann").await.unwrap(),
        Some(identity("Ann", "h1"))
    );
    assert_eq!(
        store.identity("Ann").await.unwrap(),
        None,
        "keys compare exactly"
    );
    assert!(
        store
            .create_identity("bob", identity("bob", "h3"))
            .await
            .unwrap()
    );
    let mut nicks = store.registered_nicks().await.unwrap();
    nicks.sort();
    assert_eq!(nicks, ["Ann", "bob"]);
}

/// Queued direct messages: per recipient, in the order queued, counted, removed by id.
async fn queued_direct_messages<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let (d1, d2, d3, e1) = (
        dm("d1", "Bob", "one"),
        dm("d2", "Bob", "two"),
        dm("d3", "Bob", "three"),
        dm("e1", "carol", "hi"),
    );
    for (to, m) in [("bob", &d1), ("bob", &d2), ("carol", &e1), ("bob", &d3)] {
        store.queue_dm(to, m.clone()).await.unwrap();
    }
    assert_eq!(
        store.queued_dms("bob").await.unwrap(),
        [d1.clone(), d2, d3.clone()]
    );
    assert_eq!(store.queued_dm_count("bob").await.unwrap(), 3);
    store.remove_dm("bob", "d2").await.unwrap();
    assert_eq!(
        store.queued_dms("bob").await.unwrap(),
        [d1.clone(), d3.clone()]
    );
    assert_eq!(store.queued_dm_count("bob").await.unwrap(), 2);
    store.remove_dm("carol", "d1").await.unwrap();
    store.remove_dm("bob", "nope").await.unwrap();
    assert_eq!(store.queued_dms("bob").await.unwrap(), [d1, d3]);
    assert_eq!(store.queued_dms("carol").await.unwrap(), [e1]);
    assert!(store.queued_dms("nobody").await.unwrap().is_empty());
    assert_eq!(store.queued_dm_count("nobody").await.unwrap(), 0);
}

/// Durable stores: after a reopen, messages, seqs, cids, topics, identities and queued direct
/// messages are as they were.
async fn a_reopened_store_keeps_everything<S: Store>(fresh: impl Fn() -> S, reopen: fn(S) -> S) {
    let store = fresh();
    let calls = Calls::default();
    let first = append(&store, in_r("ann", "one", Some("c1")), &calls).await;
    fill(&store, 2).await;
    store
        .set_topic("/", "r", Some("kept".into()))
        .await
        .unwrap();
    assert!(
        store
            .create_identity("ann", identity("Ann", "h1"))
            .await
            .unwrap()
    );
    store
        .queue_dm("bob", dm("d1", "bob", "wait"))
        .await
        .unwrap();
    let stored = history(&store, "/", "r", None, 10).await;

    let store = reopen(store);
    assert_eq!(history(&store, "/", "r", None, 10).await, stored);
    assert_eq!(
        search_all(&store, &["r"], "m2", 10).await,
        [stored[2].clone()],
        "what was found is found after a restart"
    );
    let again = append(&store, in_r("ann", "one", Some("c1")), &calls).await;
    assert!(again.duplicate, "the cid survives");
    assert_eq!(again.message, first.message);
    assert_eq!(
        append(&store, in_r("ann", "four", None), &calls)
            .await
            .message
            .seq,
        4
    );
    assert_eq!(search_all(&store, &["r"], "four", 10).await.len(), 1);
    let c = attach(&store, "/", "r", Some(1), 10).await;
    assert_eq!((seqs(&c.messages), c.last_seq), (vec![2, 3, 4], 4));
    assert_eq!(
        store.topic("/", "r").await.unwrap().as_deref(),
        Some("kept")
    );
    assert!(
        !store
            .create_identity("ann", identity("Ann", "h2"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.identity("ann").await.unwrap(),
        Some(identity("Ann", "h1"))
    );
    assert_eq!(store.registered_nicks().await.unwrap(), ["Ann"]);
    assert_eq!(
        store.queued_dms("bob").await.unwrap(),
        [dm("d1", "bob", "wait")]
    );
}

/// Operators: per room, added and removed idempotently, keys compared exactly.
async fn operators<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let ops = |ns: &'static str, room: &'static str| {
        let f = store.operators(ns, room);
        async move {
            let mut v = f.await.unwrap();
            v.sort();
            v
        }
    };
    assert!(ops("/", "r").await.is_empty());
    store.set_operator("/", "r", "ann", true).await.unwrap();
    store.set_operator("/", "r", "ann", true).await.unwrap();
    store.set_operator("/", "r", "bob", true).await.unwrap();
    store.set_operator("/x", "r", "carol", true).await.unwrap();
    assert_eq!(ops("/", "r").await, ["ann", "bob"]);
    assert_eq!(ops("/x", "r").await, ["carol"]);
    assert!(ops("/", "s").await.is_empty());
    store.set_operator("/", "r", "bob", false).await.unwrap();
    store.set_operator("/", "r", "nobody", false).await.unwrap();
    assert_eq!(ops("/", "r").await, ["ann"]);
    assert!(history(&store, "/", "r", None, 10).await.is_empty());
    assert_eq!(fill(&store, 1).await[0].seq, 1, "moderation takes no seq");
}

fn restriction(kind: RestrictionKind, target: &str, until: Option<i64>) -> Restriction {
    Restriction {
        kind,
        target: target.into(),
        by: "ann".into(),
        reason: Some("why".into()),
        until,
    }
}

/// Bans and mutes: per room, one per (kind, target), replaced by a new one, lifted once.
async fn bans_and_mutes<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let list = |room: &'static str| {
        let f = store.restrictions("/", room);
        async move {
            let mut v = f.await.unwrap();
            v.sort_by(|a, b| (a.kind.as_str(), &a.target).cmp(&(b.kind.as_str(), &b.target)));
            v
        }
    };
    assert!(list("r").await.is_empty());
    let ban = restriction(RestrictionKind::Ban, "bob", Some(5));
    let mute = restriction(RestrictionKind::Mute, "bob", None);
    store.add_restriction("/", "r", ban.clone()).await.unwrap();
    store.add_restriction("/", "r", mute.clone()).await.unwrap();
    assert_eq!(list("r").await, [ban.clone(), mute.clone()]);
    assert!(list("s").await.is_empty());
    let longer = restriction(RestrictionKind::Ban, "bob", None);
    store
        .add_restriction("/", "r", longer.clone())
        .await
        .unwrap();
    assert_eq!(list("r").await, [longer, mute.clone()], "replaced");
    assert!(
        store
            .remove_restriction("/", "r", RestrictionKind::Ban, "bob")
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_restriction("/", "r", RestrictionKind::Ban, "bob")
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_restriction("/", "r", RestrictionKind::Mute, "Bob")
            .await
            .unwrap(),
        "targets compare exactly"
    );
    assert_eq!(list("r").await, [mute]);
}

/// Deleting a message: gone from history and attach, found once, its seq not reused.
async fn deleting_a_message<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    let stored = fill(&store, 20).await;
    let gone = store.delete_message("/", "r", 7).await.unwrap();
    assert_eq!(gone.as_ref(), Some(&stored[6]));
    assert_eq!(store.delete_message("/", "r", 7).await.unwrap(), None);
    assert_eq!(store.delete_message("/", "r", 99).await.unwrap(), None);
    assert_eq!(store.delete_message("/", "r", 0).await.unwrap(), None);
    assert_eq!(store.delete_message("/", "other", 1).await.unwrap(), None);
    // The newest, too (it may not be indexed yet).
    assert!(store.delete_message("/", "r", 20).await.unwrap().is_some());
    let all = history(&store, "/", "r", None, 100).await;
    let expected: Vec<u64> = (1..20).filter(|s| *s != 7).collect();
    assert_eq!(seqs(&all), expected);
    let c = attach(&store, "/", "r", Some(5), 100).await;
    assert_eq!(
        seqs(&c.messages),
        [6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    );
    assert_eq!(c.last_seq, 20);
    let calls = Calls::default();
    let next = append(&store, in_r("ann", "after", None), &calls).await;
    assert_eq!(next.message.seq, 21, "no seq is reused");
}

/// Identity changes: unregistering takes the identity, its queued messages and its operator
/// status; a password is replaced only for an identity that exists.
async fn identity_changes<S: Store>(fresh: impl Fn() -> S) {
    let store = fresh();
    assert!(
        store
            .create_identity("ann", identity("Ann", "h1"))
            .await
            .unwrap()
    );
    assert!(store.set_password("ann", "h2".into()).await.unwrap());
    assert_eq!(
        store.identity("ann").await.unwrap(),
        Some(identity("Ann", "h2"))
    );
    assert!(!store.set_password("bob", "h".into()).await.unwrap());
    assert_eq!(store.identity("bob").await.unwrap(), None);
    store.queue_dm("ann", dm("d1", "Ann", "hi")).await.unwrap();
    store.set_operator("/", "r", "ann", true).await.unwrap();
    store.set_operator("/", "r", "bob", true).await.unwrap();
    assert!(store.delete_identity("ann").await.unwrap());
    assert!(!store.delete_identity("ann").await.unwrap());
    assert_eq!(store.identity("ann").await.unwrap(), None);
    assert!(store.queued_dms("ann").await.unwrap().is_empty());
    assert_eq!(store.operators("/", "r").await.unwrap(), ["bob"]);
    assert!(store.registered_nicks().await.unwrap().is_empty());
    assert!(
        store
            .create_identity("ann", identity("ann", "h3"))
            .await
            .unwrap(),
        "the nick can be registered again"
    );
}

/// Durable stores: operators, bans and mutes survive a reopen, and so does a deletion (of
/// the room's newest message too: the next message still takes the next seq).
async fn a_reopened_store_keeps_moderation_and_deletions<S: Store>(
    fresh: impl Fn() -> S,
    reopen: fn(S) -> S,
) {
    let store = fresh();
    fill(&store, 5).await;
    store.set_operator("/", "r", "ann", true).await.unwrap();
    let ban = restriction(RestrictionKind::Ban, "bob", Some(1234));
    store.add_restriction("/", "r", ban.clone()).await.unwrap();
    assert!(store.delete_message("/", "r", 2).await.unwrap().is_some());
    assert!(store.delete_message("/", "r", 5).await.unwrap().is_some());

    let store = reopen(store);
    assert_eq!(seqs(&history(&store, "/", "r", None, 10).await), [1, 3, 4]);
    assert_eq!(store.operators("/", "r").await.unwrap(), ["ann"]);
    assert_eq!(store.restrictions("/", "r").await.unwrap(), [ban]);
    let calls = Calls::default();
    let next = append(&store, in_r("ann", "six", None), &calls).await;
    assert_eq!(next.message.seq, 6, "the deleted newest seq is not reused");
    let store = reopen(store);
    assert_eq!(
        seqs(&history(&store, "/", "r", None, 10).await),
        [1, 3, 4, 6]
    );
}
