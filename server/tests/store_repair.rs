//! The store never bricks: a second server on a database in use is refused at start (naming
//! the file), and indexes that disagree with the log (a hand edit, or the duplicate seqs two
//! servers on one file left before the lock existed) are rebuilt at open, every stored
//! message kept, instead of the store refusing to start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_server::chat::sqlite::{IndexLimits, Retention, SqliteStore};
use chat_server::chat::store::{Appended, NewMessage, RoomLog, Store};
use chat_server::config::StoreConfig;
use chat_server::{RunningServer, ServerConfig};
use common::Client;
use serde_json::{Value, json};

/// Indexes after every batch, so a closed store's log is all indexed.
const EAGER: IndexLimits = IndexLimits {
    rows: 1,
    age: Duration::from_millis(10),
};

/// The test that spawns chat-server processes runs alone: a child forked while a store of
/// this process holds its lock file shares that lock until it execs, so a store closed and
/// opened again meanwhile would find its file "in use" (seen on a loaded machine).
static SPAWNING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn open(path: &Path) -> SqliteStore {
    match SqliteStore::open_with(path, Retention::default(), EAGER) {
        Ok(store) => store,
        Err(e) => panic!("{} does not open: {e}", path.display()),
    }
}

fn lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
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

async fn history(store: &SqliteStore, room: &str) -> Vec<String> {
    store
        .history("/", room, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| format!("{}:{}", m.seq, m.text))
        .collect()
}

/// What a socket that has seen up to `after` gets when it attaches (a reconnect's catch-up).
async fn catch_up(store: &SqliteStore, room: &str, after: u64) -> Vec<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    store
        .attach(
            "/",
            room,
            Some(after),
            1000,
            Box::new(move |c| drop(tx.send(c))),
        )
        .await
        .unwrap();
    rx.recv()
        .unwrap()
        .messages
        .into_iter()
        .map(|m| format!("{}:{}", m.seq, m.text))
        .collect()
}

fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// Appends to the log as a second writer does: at the end, unindexed, with the seq its own
/// (stale) count of the room gave, as the same sender `ann`.
fn second_writer(conn: &rusqlite::Connection, room: &str, seq: u64, text: &str, cid: Option<&str>) {
    conn.execute(
        "INSERT INTO log (ns, room, seq, id, sender, text, ts, action, cid) VALUES ('/', ?1, ?2, ?3, 'ann', ?4, ?5, 0, ?6)",
        rusqlite::params![room, seq as i64, format!("second-{text}"), text, 1_700_000_000_000i64, cid],
    )
    .unwrap();
}

// ---------------------------------------------------------------- one server per file

#[tokio::test]
async fn a_second_store_on_a_file_in_use_is_refused_naming_the_file() {
    let _alone = SPAWNING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let first = open(&path);
    append(&first, "r", "one", None).await;
    let refused = match SqliteStore::open(&path, Retention::default()) {
        Ok(_) => panic!(
            "a second store opened {} while it is in use",
            path.display()
        ),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains(&path.display().to_string()) && refused.contains("in use"),
        "{refused}"
    );
    let lock = lock_path(&path.canonicalize().unwrap());
    assert!(refused.contains(&lock.display().to_string()), "{refused}");
    // Another path to the same file (a symlink) meets the same lock.
    #[cfg(unix)]
    {
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        match SqliteStore::open(&link, Retention::default()) {
            Ok(_) => panic!("a second store opened {} through a symlink", path.display()),
            Err(e) => assert!(e.to_string().contains("in use"), "{e}"),
        }
    }
    // The first is unharmed, and once it is gone the file opens again.
    assert_eq!(append(&first, "r", "two", None).await.message.seq, 2);
    drop(first);
    let again = open(&path);
    assert_eq!(history(&again, "r").await, ["1:one", "2:two"]);
}

fn config(db: &Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreConfig::Sqlite(db.to_owned()),
        ..ServerConfig::default()
    }
}

async fn start(db: &Path) -> RunningServer {
    match chat_server::start(config(db)).await {
        Ok(server) => server,
        Err(e) => panic!("the server does not start on {}: {e}", db.display()),
    }
}

#[tokio::test]
async fn a_second_server_on_the_same_data_is_refused_until_the_first_stops() {
    let _alone = SPAWNING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let first = start(&db).await;
    match chat_server::start(config(&db)).await {
        Ok(_) => panic!("a second server started on {}", db.display()),
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.contains(&db.display().to_string()) && e.contains("in use"),
                "{e}"
            );
        }
    }
    first.shutdown().await;
    start(&db).await.shutdown().await;
}

#[test]
fn a_second_chat_server_process_exits_naming_the_file() {
    let _alone = SPAWNING.blocking_write();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--listen", "127.0.0.1:0", "--store", "sqlite", "--data"])
            .arg(&db)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chat-server")
    };
    let mut first = spawn();
    let stderr = first.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the first server listens");

    let mut second = spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(status) = status else {
        second.kill().unwrap();
        second.wait().unwrap();
        first.kill().unwrap();
        first.wait().unwrap();
        panic!("a second chat-server kept running on {}", db.display());
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!status.success(), "{status}: {err}");
    assert!(
        err.contains(&db.display().to_string()) && err.contains("in use"),
        "{err}"
    );
}

// ---------------------------------------------------------------- repair at open

#[tokio::test]
async fn indexes_damaged_at_their_tail_are_rebuilt_at_open() {
    let _alone = SPAWNING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = open(&path);
        for i in 1..=5 {
            let cid = format!("a{i}");
            append(&store, "a", &format!("a{i}"), Some(&cid)).await;
        }
        for i in 1..=3 {
            append(&store, "b", &format!("b{i}"), None).await;
        }
    }
    {
        let conn = raw(&path);
        let indexed: i64 = conn
            .query_row("SELECT count(*) FROM room_index", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexed, 8, "the closed store's log is indexed");
        // The room's newest entries gone, and the other room's count behind its messages.
        conn.execute(
            "DELETE FROM room_index WHERE room_id = (SELECT id FROM rooms WHERE ns = '/' AND room = 'a') AND seq >= 4",
            [],
        )
        .unwrap();
        conn.execute("UPDATE rooms SET last_seq = 1 WHERE room = 'b'", [])
            .unwrap();
    }
    let store = open(&path);
    assert_eq!(store.stats().rebuilds, 1);
    assert_eq!(
        history(&store, "a").await,
        ["1:a1", "2:a2", "3:a3", "4:a4", "5:a5"]
    );
    assert_eq!(history(&store, "b").await, ["1:b1", "2:b2", "3:b3"]);
    assert_eq!(catch_up(&store, "a", 3).await, ["4:a4", "5:a5"]);
    assert_eq!(catch_up(&store, "b", 0).await, ["1:b1", "2:b2", "3:b3"]);
    let resent = append(&store, "a", "a5 again", Some("a5")).await;
    assert!(resent.duplicate, "the client ids are intact");
    assert_eq!(resent.message.seq, 5);
    assert_eq!(append(&store, "a", "a6", None).await.message.seq, 6);
    assert_eq!(append(&store, "b", "b4", None).await.message.seq, 4);
    drop(store);
    // Repaired for good: the next open finds nothing to repair and loses nothing.
    let store = open(&path);
    assert_eq!(store.stats().rebuilds, 0);
    assert_eq!(history(&store, "a").await.len(), 6);
    assert_eq!(history(&store, "b").await.len(), 4);
}

#[tokio::test]
async fn a_second_writers_duplicate_seqs_are_renumbered_in_log_order_keeping_every_message() {
    let _alone = SPAWNING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = open(&path);
        for i in 1..=3 {
            let cid = format!("c{i}");
            append(&store, "r", &format!("m{i}"), Some(&cid)).await;
        }
    }
    {
        // A second server that counted the room up to 1: its 2 and 3 are taken, its 4 is
        // not; one of its messages re-uses a client id the first server stored (a re-send
        // that reached the other server). And a room only it wrote to.
        let conn = raw(&path);
        second_writer(&conn, "r", 2, "other-2", Some("x2"));
        second_writer(&conn, "r", 3, "other-3", Some("c3"));
        second_writer(&conn, "r", 4, "other-4", None);
        second_writer(&conn, "q", 1, "q1", None);
    }
    let store = open(&path);
    assert_eq!(store.stats().rebuilds, 1);
    let all = [
        "1:m1",
        "2:m2",
        "3:m3",
        "4:other-2",
        "5:other-3",
        "6:other-4",
    ];
    assert_eq!(history(&store, "r").await, all);
    assert_eq!(catch_up(&store, "r", 0).await, all);
    assert_eq!(catch_up(&store, "r", 3).await, all[3..]);
    assert_eq!(history(&store, "q").await, ["1:q1"]);
    // A client id names the first message stored with it.
    let resent = append(&store, "r", "m3 again", Some("c3")).await;
    assert!(resent.duplicate);
    assert_eq!(
        (resent.message.seq, resent.message.text.as_str()),
        (3, "m3")
    );
    let resent = append(&store, "r", "other-2 again", Some("x2")).await;
    assert_eq!(
        (resent.message.seq, resent.message.text.as_str()),
        (4, "other-2")
    );
    assert_eq!(append(&store, "r", "m7", None).await.message.seq, 7);
    assert_eq!(append(&store, "q", "q2", None).await.message.seq, 2);
    drop(store);
    let store = open(&path);
    assert_eq!(store.stats().rebuilds, 0);
    assert_eq!(history(&store, "r").await.len(), 7);
}

#[tokio::test]
async fn a_clean_a_crashed_and_an_emptied_store_open_without_a_rebuild() {
    let _alone = SPAWNING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = open(&path);
        assert_eq!(store.stats().rebuilds, 0, "a new file");
        append(&store, "r", "m1", Some("c1")).await;
        append(&store, "r", "m2", None).await;
        store
            .set_topic("/", "quiet", Some("no messages".into()))
            .await
            .unwrap();
    }
    {
        // Closed after indexing everything.
        let store = open(&path);
        assert_eq!(store.stats().rebuilds, 0);
        assert_eq!(history(&store, "r").await, ["1:m1", "2:m2"]);
    }
    {
        // A crash: committed messages never indexed (this store indexes only at open).
        let never = IndexLimits {
            rows: usize::MAX,
            age: Duration::from_secs(3600),
        };
        let store = SqliteStore::open_with(&path, Retention::default(), never).unwrap();
        assert_eq!(store.stats().rebuilds, 0);
        append(&store, "r", "m3", Some("c3")).await;
        append(&store, "s", "s1", None).await;
    }
    {
        let store = open(&path);
        assert_eq!(
            store.stats().rebuilds,
            0,
            "the crash's tail is only indexed"
        );
        assert_eq!(history(&store, "r").await, ["1:m1", "2:m2", "3:m3"]);
        // Retention removing every message of a room keeps its count.
        raw(&path)
            .execute_batch(
                "DELETE FROM log WHERE room = 's'; DELETE FROM room_index WHERE room_id = (SELECT id FROM rooms WHERE room = 's');",
            )
            .unwrap();
    }
    let store = open(&path);
    assert_eq!(store.stats().rebuilds, 0);
    assert_eq!(append(&store, "s", "s2", None).await.message.seq, 2);
    assert_eq!(
        store.topic("/", "quiet").await.unwrap().as_deref(),
        Some("no messages")
    );
}

// ---------------------------------------------------------------- a file of the landed version

/// Connects `/` as `nick`, joins `room`, and returns the client and the join's history.
async fn member(addr: SocketAddr, nick: &str, room: &str) -> (Client, Vec<Value>) {
    let mut c = Client::connect(addr).await;
    c.join_namespace("/", Some(json!({"nick": nick}))).await;
    let r = c.request("/", "join", json!({"room": room})).await;
    assert_eq!(r["ok"], true, "{r}");
    (c, r["history"].as_array().unwrap().clone())
}

async fn say(c: &mut Client, room: &str, text: &str) -> u64 {
    let r = c
        .request("/", "message", json!({"room": room, "text": text}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    r["message"]["seq"].as_u64().unwrap()
}

fn seq_texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| format!("{}:{}", m["seq"], m["text"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_file_of_the_landed_version_opens_with_what_a_second_server_left() {
    let _alone = SPAWNING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    // A file of this schema with no lock file beside it (the fixture test below starts from
    // a file the landed version itself wrote).
    let server = start(&db).await;
    let (mut a, _) = member(server.local_addr(), "ada", "r").await;
    for i in 1..=3 {
        assert_eq!(say(&mut a, "r", &format!("m{i}")).await, i);
    }
    a.close().await;
    server.shutdown().await;
    let _ = std::fs::remove_file(lock_path(&db));
    let server = start(&db).await;
    let (a, seen) = member(server.local_addr(), "ada", "r").await;
    assert_eq!(seq_texts(&seen), ["1:m1", "2:m2", "3:m3"]);
    a.close().await;
    server.shutdown().await;
    let _ = std::fs::remove_file(lock_path(&db));

    // What a second landed server on the same file left: acknowledged messages with seqs
    // the first had taken, that its indexing then refused (after a restart, the landed
    // version refused to start).
    {
        let conn = raw(&db);
        second_writer(&conn, "r", 3, "other-3", None);
        second_writer(&conn, "r", 4, "other-4", None);
    }
    let server = start(&db).await;
    let addr = server.local_addr();
    let (mut a, seen) = member(addr, "ada", "r").await;
    let all = ["1:m1", "2:m2", "3:m3", "4:other-3", "5:other-4"];
    assert_eq!(seq_texts(&seen), all);
    let page = a
        .request("/", "history", json!({"room": "r", "before": 5}))
        .await;
    assert_eq!(
        seq_texts(page["messages"].as_array().unwrap()),
        all[..4],
        "history pages by the new seqs"
    );
    assert_eq!(say(&mut a, "r", "m6").await, 6);
    // A reconnect's catch-up has every message once, in order.
    let mut c = Client::connect(addr).await;
    c.join_namespace("/", Some(json!({"nick": "cat", "since": {"r": 2}})))
        .await;
    let (_, skipped) = c.call("/", "ping", vec![json!({})]).await;
    let caught: Vec<Value> = skipped
        .into_iter()
        .filter(|p| p.event_name() == Some("message"))
        .map(|p| p.data.unwrap()[1].clone())
        .collect();
    assert_eq!(
        seq_texts(&caught),
        ["3:m3", "4:other-3", "5:other-4", "6:m6"]
    );
}

/// The landed version's own file (`tests/fixtures/landed-v0.db`, written by 5ade3b8 with its
/// log not yet indexed; see `store.rs`) with what a second server on it left: opened,
/// upgraded to the schema version and repaired in one go, every message kept and the
/// second writer's renumbered after the first's.
#[tokio::test]
async fn the_landed_versions_file_with_a_second_writers_rows_is_upgraded_and_repaired() {
    let _alone = SPAWNING.read().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/landed-v0.db"),
        &db,
    )
    .unwrap();
    {
        let conn = raw(&db);
        second_writer(&conn, "general", 29, "dup-29", None);
        second_writer(&conn, "general", 31, "after", None);
    }
    let store = open(&db);
    assert_eq!(store.stats().rebuilds, 1, "the indexes were rebuilt");
    let texts = history(&store, "general").await;
    assert_eq!(texts.len(), 32, "{texts:?}");
    for (i, t) in texts.iter().enumerate().take(30) {
        assert_eq!(t, &format!("{}:general message {}", i + 1, i + 1));
    }
    assert_eq!(texts[30..], ["31:dup-29", "32:after"]);
    assert_eq!(history(&store, "random").await.len(), 5);
    assert_eq!(
        append(&store, "general", "next", None).await.message.seq,
        33
    );
}
