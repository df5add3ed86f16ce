//! The store never bricks: a second server on a database in use is refused at start (naming
//! the file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_server::chat::sqlite::{IndexLimits, Retention, SqliteStore};
use chat_server::chat::store::{Appended, NewMessage, Store};
use chat_server::config::StoreConfig;
use chat_server::{RunningServer, ServerConfig};

/// Indexes after every batch, so a closed store's log is all indexed.
const EAGER: IndexLimits = IndexLimits {
    rows: 1,
    age: Duration::from_millis(10),
};

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

// ---------------------------------------------------------------- one server per file

#[tokio::test]
async fn a_second_store_on_a_file_in_use_is_refused_naming_the_file() {
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
    assert!(
        refused.contains(&lock_path(&path).display().to_string()),
        "{refused}"
    );
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
