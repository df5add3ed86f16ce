//! The SQLite store on its own: messages read back whether or not the log is indexed yet, a
//! re-sent client id stored once on either side of the indexing and of a restart, the
//! indexing a crash left undone done at open, a database of the previous layout upgraded, and
//! a file written by the landed version (a committed fixture) upgraded in place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use chat_server::chat::sqlite::{IndexLimits, Retention, SqliteStore};
use chat_server::chat::store::{Appended, NewMessage, RoomLog, Store};

/// Never indexes while running (only at open).
const NEVER: IndexLimits = IndexLimits {
    rows: usize::MAX,
    age: Duration::from_secs(3600),
};

fn open(path: &Path, limits: IndexLimits) -> SqliteStore {
    SqliteStore::open_with(path, Retention::default(), limits).unwrap()
}

async fn append(store: &SqliteStore, room: &str, text: &str, cid: Option<&str>) -> Appended {
    store
        .append(
            NewMessage {
                namespace: "/".into(),
                room: room.into(),
                from: "ann".into(),
                text: text.into(),
                action: false,
                cid: cid.map(str::to_owned),
            },
            Box::new(|_| {}),
        )
        .await
        .unwrap()
}

async fn texts(store: &SqliteStore, room: &str, before: Option<u64>, limit: usize) -> Vec<String> {
    store
        .history("/", room, before, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|m| format!("{}:{}", m.seq, m.text))
        .collect()
}

#[tokio::test]
async fn unindexed_messages_are_read_and_deduplicated_then_indexed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let first = {
        let store = open(&path, NEVER);
        let first = append(&store, "a", "one", Some("c1")).await;
        append(&store, "b", "other room", Some("c1")).await;
        append(&store, "a", "two", Some("c2")).await;
        assert_eq!(texts(&store, "a", None, 10).await, ["1:one", "2:two"]);
        assert_eq!(texts(&store, "b", None, 10).await, ["1:other room"]);
        // A re-send before indexing: the first message, not a new one.
        let again = append(&store, "a", "one (re-sent)", Some("c1")).await;
        assert!(again.duplicate);
        assert_eq!(again.message, first.message);
        assert_eq!(store.stats().indexed, 0, "nothing indexed while running");
        first
    };
    // Dropped without indexing, as after a crash: the next open indexes the log.
    let store = open(&path, NEVER);
    assert_eq!(texts(&store, "a", None, 10).await, ["1:one", "2:two"]);
    let again = append(&store, "a", "one (re-sent)", Some("c1")).await;
    assert!(again.duplicate, "the client id survives the restart");
    assert_eq!(again.message, first.message);
    assert_eq!(
        append(&store, "a", "three", Some("c3")).await.message.seq,
        3
    );
    assert_eq!(append(&store, "b", "more", None).await.message.seq, 2);
}

#[tokio::test]
async fn history_pages_across_indexed_and_unindexed_messages() {
    let dir = tempfile::tempdir().unwrap();
    // Indexes after every third message, the rest waits.
    let store = open(
        &dir.path().join("chat.db"),
        IndexLimits {
            rows: 3,
            age: Duration::from_secs(3600),
        },
    );
    for i in 1..=8 {
        append(&store, "r", &format!("m{i}"), Some(&format!("c{i}"))).await;
    }
    let indexed = store.stats().indexed;
    assert!(
        (3..8).contains(&indexed),
        "some indexed, some not: {indexed}"
    );
    let all: Vec<String> = (1..=8).map(|i| format!("{i}:m{i}")).collect();
    assert_eq!(texts(&store, "r", None, 100).await, all);
    assert_eq!(texts(&store, "r", None, 3).await, all[5..]);
    assert_eq!(texts(&store, "r", Some(8), 4).await, all[3..7]);
    assert_eq!(texts(&store, "r", Some(3), 10).await, all[..2]);
    // Re-sends on both sides of the indexing.
    for i in [1, 8] {
        let again = append(&store, "r", "again", Some(&format!("c{i}"))).await;
        assert!(again.duplicate);
        assert_eq!(again.message.seq, i);
    }
    assert_eq!(append(&store, "r", "m9", None).await.message.seq, 9);
}

#[tokio::test]
async fn a_database_of_the_previous_layout_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        // The layout before the log: messages clustered by room, with their indexes.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE rooms (ns TEXT NOT NULL, room TEXT NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0, topic TEXT, PRIMARY KEY (ns, room)) WITHOUT ROWID;
             CREATE TABLE messages (ns TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, sender TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL, action INTEGER NOT NULL DEFAULT 0, cid TEXT, PRIMARY KEY (ns, room, seq)) WITHOUT ROWID;
             CREATE UNIQUE INDEX messages_cid ON messages (ns, room, sender, cid) WHERE cid IS NOT NULL;
             CREATE INDEX messages_ts ON messages (ts);
             INSERT INTO rooms VALUES ('/', 'r', 9, 'the topic');
             INSERT INTO messages VALUES ('/', 'r', 4, 'id4', 'ann', 'four', 1000, 0, 'c4');
             INSERT INTO messages VALUES ('/', 'r', 5, 'id5', 'bob', 'five', 1001, 1, NULL);",
        )
        .unwrap();
    }
    let store = open(&path, IndexLimits::default());
    let history = store.history("/", "r", None, 10).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|m| (
                m.seq,
                m.id.as_str(),
                m.from.as_str(),
                m.text.as_str(),
                m.action
            ))
            .collect::<Vec<_>>(),
        [
            (4, "id4", "ann", "four", false),
            (5, "id5", "bob", "five", true)
        ]
    );
    assert_eq!(
        store.topic("/", "r").await.unwrap().as_deref(),
        Some("the topic")
    );
    let again = append(&store, "r", "four again", Some("c4")).await;
    assert!(again.duplicate);
    assert_eq!(again.message.id, "id4");
    // The room's last seq was 9 (later messages removed by retention): never reused.
    assert_eq!(append(&store, "r", "ten", None).await.message.seq, 10);
}

#[tokio::test]
async fn the_same_client_id_twice_at_once_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("chat.db"), NEVER);
    for round in 0..20 {
        let cid = format!("c{round}");
        let (a, b) = tokio::join!(
            append(&store, "r", "first", Some(&cid)),
            append(&store, "r", "second", Some(&cid))
        );
        assert_ne!(a.duplicate, b.duplicate, "one stored, one re-send");
        assert_eq!(a.message, b.message);
    }
    assert_eq!(store.history("/", "r", None, 100).await.unwrap().len(), 20);
}

#[tokio::test]
async fn seq_is_not_reused_after_retention_removed_a_room_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = SqliteStore::open(
            &path,
            Retention {
                max_messages: None,
                max_age: Some(Duration::from_millis(1)),
            },
        )
        .unwrap();
        for i in 1..=3 {
            append(&store, "r", &format!("m{i}"), None).await;
        }
        // Removed on one of the writer's passes (each second): poll, bounded.
        let mut left = usize::MAX;
        for _ in 0..50 {
            left = store.history("/", "r", None, 10).await.unwrap().len();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0, "retention removed the room's messages");
    }
    let store = open(&path, NEVER);
    assert_eq!(append(&store, "r", "m4", None).await.message.seq, 4);
}

#[tokio::test]
async fn appends_are_refused_while_indexing_fails_and_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let rows = 2;
    let store = open(
        &path,
        IndexLimits {
            rows,
            age: Duration::from_secs(3600),
        },
    );
    // A row in the way of the room's first message makes every indexing fail.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(
        "INSERT INTO rooms (ns, room) VALUES ('/', 'r');
         INSERT INTO room_index (room_id, seq, n) SELECT id, 1, 0 FROM rooms WHERE ns = '/' AND room = 'r';",
    )
    .unwrap();
    // 16 chunks may wait; then appends get an error, and nothing stored is lost.
    let mut stored = 0;
    let refused = loop {
        let result = store
            .append(
                NewMessage {
                    namespace: "/".into(),
                    room: "r".into(),
                    from: "ann".into(),
                    text: format!("m{}", stored + 1),
                    action: false,
                    cid: None,
                },
                Box::new(|_| {}),
            )
            .await;
        match result {
            Ok(_) => stored += 1,
            Err(e) => break e.to_string(),
        }
        assert!(stored <= 16 * rows, "appends are never refused");
    };
    assert_eq!(stored, 16 * rows);
    assert!(refused.contains("indexing"), "{refused}");
    assert_eq!(
        store.history("/", "r", None, 100).await.unwrap().len(),
        stored
    );
    // Out of the way: the next attempt (a second later) indexes them, appends resume.
    conn.execute("DELETE FROM room_index WHERE n = 0", [])
        .unwrap();
    let mut indexed = 0;
    for _ in 0..50 {
        indexed = store.stats().indexed;
        if indexed as usize == stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(indexed as usize, stored);
    let next = append(&store, "r", "after", None).await;
    assert_eq!(next.message.seq, stored as u64 + 1);
    let history = texts(&store, "r", None, 100).await;
    assert_eq!(history.len(), stored + 1);
    assert_eq!(history[0], "1:m1");
}

// ------------------------------------------------------ a file written by the landed version

/// `fixtures/landed-v0.db` was written by the release before the schema carried a version
/// (commit 5ade3b8, through its `SqliteStore`, closed cleanly with its log not yet indexed):
/// 30 messages in `/` `#general` (the even ones by alice, the odd ones by bob, each with the
/// client id `<sender>-general-N`; message 3 an action), 5 in `#random`, 12 in `/team-1` `#ops`; the topic
/// "the landed topic" on `#general`; the identity `Alice` (key `alice`, password `hunter2`);
/// one direct message waiting for `carol`.
fn landed_copy(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("chat.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/landed-v0.db"),
        &path,
    )
    .unwrap();
    path
}

fn user_version(path: &Path) -> u32 {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_file_written_by_the_landed_version_is_upgraded_in_place_and_keeps_everything() {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    use chat_server::chat::sqlite::SCHEMA_VERSION;

    let dir = tempfile::tempdir().unwrap();
    let path = landed_copy(dir.path());
    assert_eq!(user_version(&path), 0, "the fixture predates versions");
    for reopen in 0..2 {
        let store = open(&path, IndexLimits::default());
        assert_eq!(user_version(&path), SCHEMA_VERSION, "open {reopen}");
        let general = store.history("/", "general", None, 100).await.unwrap();
        assert_eq!(general.len(), 30);
        for (i, m) in general.iter().enumerate() {
            let n = i as u64 + 1;
            assert_eq!(m.seq, n);
            assert_eq!(m.text, format!("general message {n}"));
            assert_eq!(m.from, if n.is_multiple_of(2) { "alice" } else { "bob" });
            assert_eq!(m.action, n == 3);
        }
        assert_eq!(
            store.history("/", "random", None, 100).await.unwrap().len(),
            5
        );
        let ops = store.history("/team-1", "ops", Some(5), 100).await.unwrap();
        assert_eq!(ops.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(
            store.topic("/", "general").await.unwrap().as_deref(),
            Some("the landed topic")
        );
        let alice = store.identity("alice").await.unwrap().unwrap();
        assert_eq!(alice.nick, "Alice");
        let hash = PasswordHash::new(&alice.password_hash).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"hunter2", &hash)
                .is_ok()
        );
        assert!(
            argon2::Argon2::default()
                .verify_password(b"hunter3", &hash)
                .is_err()
        );
        assert_eq!(store.registered_nicks().await.unwrap(), ["Alice"]);
        let waiting = store.queued_dms("carol").await.unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(
            (waiting[0].from.as_str(), waiting[0].text.as_str()),
            ("Alice", "waiting for you")
        );
        // A client id the landed version stored is still known (a re-send is not stored twice).
        let stored = store
            .append(
                NewMessage {
                    namespace: "/".into(),
                    room: "general".into(),
                    from: "alice".into(),
                    text: "general message 4".into(),
                    action: false,
                    cid: Some("alice-general-4".into()),
                },
                Box::new(|_| {}),
            )
            .await
            .unwrap();
        assert!(stored.duplicate);
        assert_eq!(stored.message.seq, 4);
    }
    // New messages continue the landed numbering.
    let store = open(&path, IndexLimits::default());
    assert_eq!(append(&store, "general", "new", None).await.message.seq, 31);
}

#[tokio::test]
async fn a_file_of_a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = landed_copy(dir.path());
    drop(open(&path, IndexLimits::default()));
    let newer = chat_server::chat::sqlite::SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let error = match SqliteStore::open_with(&path, Retention::default(), IndexLimits::default()) {
        Ok(_) => panic!("a newer schema opened"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains(&format!("schema version {newer}")),
        "{error}"
    );
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was changed"
    );
    assert_eq!(user_version(&path), newer);
}

/// A file of schema version 3 (indexes keyed by the rooms' texts), its log partly indexed
/// (a crash left a tail), is upgraded to room ids at open without a rebuild: every message
/// read back by room and seq, in each namespace, a re-sent client id (indexed before the
/// upgrade, or in the tail) answered with its first message, seqs continuing, topics kept.
#[tokio::test]
async fn a_version_3_file_is_upgraded_to_room_ids_keeping_every_message_and_client_id() {
    use chat_server::chat::sqlite::SCHEMA_VERSION;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let say =
        |ns: &'static str, room: &'static str, text: String, cid: Option<String>| NewMessage {
            namespace: ns.into(),
            room: room.into(),
            from: "ann".into(),
            text,
            action: false,
            cid,
        };
    let eager = IndexLimits {
        rows: 1,
        age: Duration::from_millis(10),
    };
    {
        let store = open(&path, eager);
        for i in 1..=6 {
            let (text, cid) = (format!("a{i}"), Some(format!("c{i}")));
            store
                .append(say("/", "a", text, cid), Box::new(|_| {}))
                .await
                .unwrap();
        }
        for i in 1..=3 {
            let text = format!("t{i}");
            // The same room name and client ids in another namespace: another room.
            store
                .append(
                    say("/team", "a", text, Some(format!("c{i}"))),
                    Box::new(|_| {}),
                )
                .await
                .unwrap();
        }
        store
            .set_topic("/", "quiet", Some("no messages".into()))
            .await
            .unwrap();
        store
            .set_topic("/", "a", Some("the topic".into()))
            .await
            .unwrap();
    }
    {
        // A crash: committed, never indexed.
        let store = open(&path, NEVER);
        for i in 7..=8 {
            let (text, cid) = (format!("a{i}"), Some(format!("c{i}")));
            store
                .append(say("/", "a", text, cid), Box::new(|_| {}))
                .await
                .unwrap();
        }
        append(&store, "b", "b1", Some("c1")).await;
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    common::schema_v3::downgrade_to_version_3(&conn);
    let unindexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM log WHERE n > (SELECT value FROM meta WHERE key = 'indexed_upto')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unindexed, 3, "the file has an unindexed tail");
    drop(conn);

    for reopen in 0..2 {
        let store = open(&path, NEVER);
        assert_eq!(
            store.stats().rebuilds,
            0,
            "open {reopen}: an upgrade, not a repair"
        );
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert!(common::schema_v3::has_room_ids(&conn));
        assert_eq!(
            conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))
                .unwrap(),
            SCHEMA_VERSION
        );
        drop(conn);
        let all: Vec<String> = (1..=8).map(|i| format!("{i}:a{i}")).collect();
        assert_eq!(texts(&store, "a", None, 100).await, all);
        assert_eq!(texts(&store, "a", Some(7), 3).await, all[3..6]);
        assert_eq!(texts(&store, "b", None, 100).await, ["1:b1"]);
        let team: Vec<String> = store
            .history("/team", "a", None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| format!("{}:{}", m.seq, m.text))
            .collect();
        assert_eq!(team, ["1:t1", "2:t2", "3:t3"]);
        assert_eq!(
            store.topic("/", "a").await.unwrap().as_deref(),
            Some("the topic")
        );
        assert_eq!(
            store.topic("/", "quiet").await.unwrap().as_deref(),
            Some("no messages")
        );
        // Re-sends: indexed before the upgrade, in the tail, and in the other namespace.
        for (room, cid, seq, text) in [
            ("a", "c2", 2, "a2"),
            ("a", "c8", 8, "a8"),
            ("b", "c1", 1, "b1"),
        ] {
            let again = append(&store, room, "again", Some(cid)).await;
            assert!(again.duplicate, "{room} {cid}");
            assert_eq!(
                (again.message.seq, again.message.text.as_str()),
                (seq, text)
            );
        }
        let again = store
            .append(
                say("/team", "a", "again".into(), Some("c3".into())),
                Box::new(|_| {}),
            )
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!((again.message.seq, again.message.text.as_str()), (3, "t3"));
    }
    let store = open(&path, NEVER);
    assert_eq!(append(&store, "a", "a9", Some("c9")).await.message.seq, 9);
    assert_eq!(append(&store, "quiet", "q1", None).await.message.seq, 1);
    let new = store
        .append(
            say("/team", "a", "t4".into(), Some("c4".into())),
            Box::new(|_| {}),
        )
        .await
        .unwrap();
    assert_eq!((new.duplicate, new.message.seq), (false, 4));
}

/// Attaching to rooms that have no messages (a `join` or a `since` names any room it likes)
/// leaves nothing in the writer's memory: it keeps the last seq of rooms with messages only.
#[tokio::test]
async fn attaching_to_empty_rooms_leaves_nothing_in_the_writers_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("chat.db"), IndexLimits::default());
    append(&store, "real", "a message", None).await;
    for i in 0..2_000 {
        store
            .attach("/", &format!("empty-{i}"), None, 10, Box::new(|_| {}))
            .await
            .unwrap();
    }
    // One more commit, so the stats are as of after the attaches.
    append(&store, "real", "another", None).await;
    assert_eq!(store.stats().cached_rooms, 1);
    assert_eq!(
        texts(&store, "real", None, 10).await,
        ["1:a message", "2:another"]
    );
}

/// A deletion of a room's newest message, indexed or not, keeps the room's `last_seq`
/// without a rebuild at the next open: the index check reads the tombstone.
#[tokio::test]
async fn deleting_the_newest_message_needs_no_rebuild_and_reuses_no_seq() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    // Never indexed by itself: the deletion indexes first (the message is then indexed).
    let store = open(&path, NEVER);
    for text in ["one", "two", "three"] {
        append(&store, "r", text, None).await;
    }
    assert!(store.delete_message("/", "r", 3).await.unwrap().is_some());
    append(&store, "r", "four", None).await;
    assert!(store.delete_message("/", "r", 4).await.unwrap().is_some());
    drop(store);
    let store = open(&path, NEVER);
    assert_eq!(store.stats().rebuilds, 0);
    assert_eq!(texts(&store, "r", None, 10).await, ["1:one", "2:two"]);
    assert_eq!(append(&store, "r", "five", None).await.message.seq, 5);
}

/// The indexes as rows, each room by its name (not its id): `room_index`, `cids`, the rooms'
/// last seqs and topics, and the full-text index's rowids.
fn index_rows(path: &Path) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let rows = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let columns = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..columns)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join(" "))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    vec![
        rows(
            "SELECT r.ns, r.room, i.seq, i.n FROM room_index i JOIN rooms r ON r.id = i.room_id ORDER BY 1, 2, 3",
        ),
        rows(
            "SELECT r.ns, r.room, c.sender, c.cid, c.n FROM cids c JOIN rooms r ON r.id = c.room_id ORDER BY 1, 2, 3, 4",
        ),
        rows("SELECT ns, room, last_seq, topic FROM rooms ORDER BY 1, 2"),
        rows("SELECT id FROM log_fts_docsize ORDER BY id"),
        rows("SELECT value FROM meta WHERE key = 'indexed_upto'"),
    ]
}

#[tokio::test]
async fn the_writers_indexing_passes_write_what_a_rebuild_from_the_log_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let limits = IndexLimits {
        rows: 3,
        age: Duration::from_millis(50),
    };
    let appended = {
        let store = open(&path, limits);
        // A room with a topic (so an id) before its first message.
        store.set_topic("/", "c", Some("t".into())).await.unwrap();
        let message = |i: usize| {
            let (ns, room) = [("/", "a"), ("/", "b"), ("/x", "a"), ("/", "c")][i % 4];
            NewMessage {
                namespace: ns.into(),
                room: room.into(),
                from: ["ann", "bob"][i % 2].into(),
                text: format!("word{i} common"),
                action: false,
                cid: (!i.is_multiple_of(3)).then(|| format!("c{}", i / 2)),
            }
        };
        let mut stored = Vec::new();
        for i in 0..20 {
            let done = store.append(message(i), Box::new(|_| {})).await.unwrap();
            assert!(!done.duplicate);
            stored.push((i, done.message));
            if i == 9 {
                // A deletion between passes.
                assert!(store.delete_message("/", "b", 1).await.unwrap().is_some());
                stored.retain(|(_, m)| !(m.room == "b" && m.seq == 1));
            }
        }
        let appended = stored.len() as u64;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.stats().indexed < appended + 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every client id is found through `cids` now, in its own room: re-sends are the
        // messages stored first.
        for (i, first) in &stored {
            let again = message(*i);
            if again.cid.is_some() {
                let again = store.append(again, Box::new(|_| {})).await.unwrap();
                assert!(again.duplicate, "{i}");
                assert_eq!(&again.message, first);
            }
        }
        appended
    };
    let by_passes = index_rows(&path);
    assert_eq!(by_passes[0].len() as u64, appended, "{by_passes:?}");
    assert!(!by_passes[1].is_empty() && by_passes[3].len() as u64 == appended);
    // The next open rebuilds every index from the log alone.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM meta WHERE key = 'indexed_upto'", [])
        .unwrap();
    let store = open(&path, NEVER);
    assert_eq!(store.stats().rebuilds, 1);
    drop(store);
    assert_eq!(index_rows(&path), by_passes);
}
