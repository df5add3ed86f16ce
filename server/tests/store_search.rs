//! Search on the SQLite store beyond the contract (`store_contract.rs`): the full-text index
//! is filled by the indexing pass (not the commit), a crash between a commit and its
//! indexing loses no hit, a full-text index that disagrees with the log is rebuilt at open,
//! retention takes messages out of search, and a file of schema version 1 gets its index at
//! the upgrade.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use chat_protocol::events::ChatMessage;
use chat_server::chat::sqlite::{IndexLimits, Retention, SCHEMA_VERSION, SqliteStore};
use chat_server::chat::store::{NewMessage, Phrase, RoomLog, SearchQuery, Store};

/// Never indexes while running (only at open).
const NEVER: IndexLimits = IndexLimits {
    rows: usize::MAX,
    age: Duration::from_secs(3600),
};

/// Indexes after every batch.
const EAGER: IndexLimits = IndexLimits {
    rows: 1,
    age: Duration::from_millis(10),
};

fn open(path: &Path, limits: IndexLimits) -> SqliteStore {
    SqliteStore::open_with(path, Retention::default(), limits).unwrap()
}

async fn append(store: &SqliteStore, room: &str, text: &str) -> ChatMessage {
    store
        .append(
            NewMessage {
                namespace: "/".into(),
                room: room.into(),
                from: "ann".into(),
                text: text.into(),
                action: false,
                cid: None,
            },
            Box::new(|_| {}),
        )
        .await
        .unwrap()
        .message
}

async fn found(store: &SqliteStore, rooms: &[&str], text: &str) -> Vec<String> {
    store
        .search(SearchQuery {
            namespace: "/".into(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            phrase: Phrase::new(text).unwrap(),
            before: None,
            limit: 50,
        })
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| format!("{}:{}", m.room, m.text))
        .collect()
}

fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

fn count(path: &Path, sql: &str) -> i64 {
    raw(path).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Rows in the full-text index.
fn in_fts(path: &Path) -> i64 {
    count(path, "SELECT count(*) FROM log_fts_docsize")
}

#[tokio::test]
async fn the_index_is_filled_by_the_indexing_pass_and_a_crash_before_it_loses_no_hit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = open(&path, NEVER);
        append(&store, "a", "the red kite").await;
        append(&store, "b", "a red kite too").await;
        // Committed, not indexed: found by the scan of the unindexed messages.
        assert_eq!(
            found(&store, &["a", "b"], "red kite").await,
            ["b:a red kite too", "a:the red kite"]
        );
        assert_eq!(
            in_fts(&path),
            0,
            "the commits did not touch the full-text index"
        );
        assert_eq!(count(&path, "SELECT count(*) FROM log"), 2);
        // Dropped unindexed, as a crash leaves it.
    }
    let store = open(&path, NEVER);
    assert_eq!(in_fts(&path), 2, "the open indexed what the crash left");
    assert_eq!(
        found(&store, &["a", "b"], "red kite").await,
        ["b:a red kite too", "a:the red kite"]
    );
    // A new message (unindexed) and the indexed ones, each once, newest first.
    append(&store, "a", "red kite three").await;
    assert_eq!(
        found(&store, &["a", "b"], "red kite").await,
        ["a:red kite three", "b:a red kite too", "a:the red kite"]
    );
}

#[tokio::test]
async fn a_full_text_index_that_lost_its_newest_entries_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = open(&path, EAGER);
        for i in 1..=4 {
            append(&store, "a", &format!("owl number {i}")).await;
        }
    }
    assert_eq!(in_fts(&path), 4);
    let newest: i64 = count(&path, "SELECT max(n) FROM log");
    raw(&path)
        .execute("DELETE FROM log_fts WHERE rowid = ?1", [newest])
        .unwrap();
    assert_eq!(in_fts(&path), 3);
    let store = open(&path, EAGER);
    assert_eq!(store.stats().rebuilds, 1, "the disagreement was seen");
    assert_eq!(found(&store, &["a"], "owl").await.len(), 4);
    assert_eq!(found(&store, &["a"], "number 4").await, ["a:owl number 4"]);
}

#[tokio::test]
async fn retention_takes_messages_out_of_search() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let store = SqliteStore::open_with(
        &path,
        Retention {
            max_messages: Some(2),
            max_age: None,
        },
        EAGER,
    )
    .unwrap();
    for i in 1..=5 {
        append(&store, "a", &format!("heron {i}")).await;
    }
    // Removed on one of the writer's passes (each second): poll, bounded.
    let mut hits = Vec::new();
    for _ in 0..50 {
        hits = found(&store, &["a"], "heron").await;
        if hits.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hits, ["a:heron 5", "a:heron 4"]);
    drop(store);
    assert_eq!(in_fts(&path), 2, "the index lost the removed messages too");
}

#[tokio::test]
async fn a_version_1_file_gets_its_full_text_index_at_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = open(&path, EAGER);
        for i in 1..=5 {
            append(&store, "a", &format!("swift {i}")).await;
        }
    }
    {
        // Version 1: no full-text index (and its indexes keyed by texts, as up to version
        // 3); and a crash left the last two messages unindexed.
        let conn = raw(&path);
        common::schema_v3::downgrade_to_version_3(&conn);
        conn.execute_batch(
            "DROP TABLE log_fts;
             DELETE FROM room_index WHERE seq >= 4;
             UPDATE rooms SET last_seq = 3;
             UPDATE meta SET value = (SELECT n FROM log WHERE seq = 3) WHERE key = 'indexed_upto';
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = open(&path, NEVER);
    assert_eq!(
        count(&path, "PRAGMA user_version"),
        i64::from(SCHEMA_VERSION)
    );
    assert_eq!(store.stats().rebuilds, 0, "an upgrade, not a repair");
    assert_eq!(in_fts(&path), 5, "each message indexed once");
    assert_eq!(
        found(&store, &["a"], "swift").await,
        [
            "a:swift 5",
            "a:swift 4",
            "a:swift 3",
            "a:swift 2",
            "a:swift 1"
        ]
    );
    assert_eq!(append(&store, "a", "swift 6").await.seq, 6);
}

/// Chinese, Japanese and Korean are written without spaces: a phrase of their characters is
/// found inside a longer run of them, in the unindexed messages (a scan) and in the
/// full-text index alike.
#[tokio::test]
async fn chinese_japanese_and_korean_phrases_are_found_inside_longer_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let texts = [
        "明日は東京タワーに行く",
        "我住在北京市",
        "서울에서 만나요",
        "tokyo in latin letters",
        "각",
        "がっこう",
        "パン",
    ];
    // The same hits before and after indexing: a syllable or a voiced kana is not found by
    // its parts, or by the unvoiced kana.
    let searches: [(&str, &[&str]); 12] = [
        ("東京", &["a:明日は東京タワーに行く"]),
        ("タワー", &["a:明日は東京タワーに行く"]),
        ("北京", &["a:我住在北京市"]),
        ("서울", &["a:서울에서 만나요"]),
        ("上海", &[]),
        ("각", &["a:각"]),
        ("가", &[]),
        ("が", &["a:がっこう"]),
        ("か", &[]),
        ("パン", &["a:パン"]),
        ("ハン", &[]),
        ("latin", &["a:tokyo in latin letters"]),
    ];
    found_alike_before_and_after_indexing(&path, &texts, &searches).await;
}

/// Appends `texts` to room `a` of a store that does not index while running, checks each
/// search's hits, then opens it again (every message indexed at the open) and checks the
/// same hits: the scans and the full-text index find the same messages.
async fn found_alike_before_and_after_indexing(
    path: &Path,
    texts: &[&str],
    searches: &[(&str, &[&str])],
) {
    {
        let store = open(path, NEVER);
        for text in texts {
            append(&store, "a", text).await;
        }
        for (phrase, hits) in searches {
            assert_eq!(
                found(&store, &["a"], phrase).await,
                *hits,
                "unindexed: {phrase}"
            );
        }
    }
    let store = open(path, NEVER);
    assert_eq!(in_fts(path), texts.len() as i64, "indexed at the open");
    for (phrase, hits) in searches {
        assert_eq!(
            found(&store, &["a"], phrase).await,
            *hits,
            "indexed: {phrase}"
        );
    }
}

/// Makes the file at `path` look written by schema `version`, whose full-text index held the
/// texts as they are, and checks that such an index does not find `phrase` (an FTS5 query);
/// then opens it (the upgrade runs) and checks it was upgraded, not repaired, with each of
/// its `messages` indexed once.
fn upgraded_from_raw_index(path: &Path, version: u32, phrase: &str, messages: i64) -> SqliteStore {
    {
        let conn = raw(path);
        conn.execute_batch(&format!(
            "DELETE FROM log_fts;
             INSERT INTO log_fts (rowid, text, scope) SELECT n, text, hex(ns || ' ' || room) FROM log;
             PRAGMA user_version = {version};"
        ))
        .unwrap();
        let hits: i64 = conn
            .query_row(
                "SELECT count(*) FROM log_fts WHERE log_fts MATCH ?1",
                [format!("text : {phrase}")],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hits, 0, "a version {version} index does not find {phrase}");
    }
    let store = open(path, NEVER);
    assert_eq!(
        count(path, "PRAGMA user_version"),
        i64::from(SCHEMA_VERSION)
    );
    assert_eq!(store.stats().rebuilds, 0, "an upgrade, not a repair");
    assert_eq!(in_fts(path), messages, "each message indexed once");
    store
}

#[tokio::test]
async fn a_version_4_file_gets_its_chinese_japanese_and_korean_texts_indexed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = open(&path, EAGER);
        append(&store, "a", "明日は東京タワーに行く").await;
        append(&store, "a", "the tower of tokyo").await;
    }
    // Version 4 indexed the texts as they are: a run of CJK characters was one token.
    let store = upgraded_from_raw_index(&path, 4, "\" 東  京 \"", 2);
    assert_eq!(
        found(&store, &["a"], "東京").await,
        ["a:明日は東京タワーに行く"]
    );
    assert_eq!(
        found(&store, &["a"], "tower").await,
        ["a:the tower of tokyo"]
    );
}

#[tokio::test]
async fn every_script_is_found_alike_before_and_after_indexing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let texts = [
        "Η Ελλάδα είναι ωραία",
        "كَتَبَ الدرس",
        "שָׁלוֹם לכולם",
        "สวัสดีครับ",
        "ภาษาไทยง่าย",
        "ສະບາຍດີ",
        "தமிழ் நாடு",
        "İstanbul'da",
        "took 5µs",
    ];
    // The index and the scans agree: Greek without accents, Arabic and Hebrew without vowel
    // marks, a Thai or Lao phrase inside a run, half of a Tamil word is no word (the
    // tokenizer alone splits it at its vowel signs), a dotted capital I.
    let searches: [(&str, &[&str]); 13] = [
        ("ελλαδα", &["a:Η Ελλάδα είναι ωραία"]),
        // The micro sign as a mu; a NUL in the phrase is a separator (the index was given
        // the raw text and answered "unterminated string").
        ("5μs", &["a:took 5µs"]),
        ("took\u{0}5μs", &["a:took 5µs"]),
        ("ΩΡΑΙΑ", &["a:Η Ελλάδα είναι ωραία"]),
        ("كتب", &["a:كَتَبَ الدرس"]),
        ("שלום", &["a:שָׁלוֹם לכולם"]),
        ("ครับ", &["a:สวัสดีครับ"]),
        ("ไทย", &["a:ภาษาไทยง่าย"]),
        ("ค่ะ", &[]),
        ("ສະບາຍ", &["a:ສະບາຍດີ"]),
        ("தமிழ்", &["a:தமிழ் நாடு"]),
        ("தம", &[]),
        ("istanbul", &["a:İstanbul'da"]),
    ];
    found_alike_before_and_after_indexing(&path, &texts, &searches).await;
}

#[tokio::test]
async fn a_version_5_file_gets_its_texts_other_than_ascii_indexed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let store = open(&path, EAGER);
        append(&store, "a", "Η Ελλάδα").await;
        append(&store, "a", "สวัสดีครับ").await;
        append(&store, "a", "plain words").await;
    }
    // Version 5 gave the tokenizer these texts as they are: it kept the accent.
    let store = upgraded_from_raw_index(&path, 5, "\"ελλαδα\"", 3);
    assert_eq!(found(&store, &["a"], "ελλαδα").await, ["a:Η Ελλάδα"]);
    assert_eq!(found(&store, &["a"], "ครับ").await, ["a:สวัสดีครับ"]);
    assert_eq!(found(&store, &["a"], "plain").await, ["a:plain words"]);
}
