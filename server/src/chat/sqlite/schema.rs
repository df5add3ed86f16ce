//! The database's tables, the connection settings, and the upgrade of files written by
//! earlier versions.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use tracing::info;

use super::super::store::StoreError;
use super::{backend, write_transaction};

/// The tables of schema version 1 (what [`to_version_1`] creates): later steps change some of
/// them (version 4 keys `room_index` and `cids` by a room id), so this text stays as it was.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    ns TEXT NOT NULL, room TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0, topic TEXT,
    PRIMARY KEY (ns, room)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    n INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL, room TEXT NOT NULL,
    seq INTEGER NOT NULL, id TEXT NOT NULL, sender TEXT NOT NULL, text TEXT NOT NULL,
    ts INTEGER NOT NULL, action INTEGER NOT NULL, cid TEXT);
CREATE TABLE IF NOT EXISTS room_index (
    ns TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (ns, room, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cids (
    ns TEXT NOT NULL, room TEXT NOT NULL, sender TEXT NOT NULL, cid TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (ns, room, sender, cid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identities (
    nick_key TEXT PRIMARY KEY, nick TEXT NOT NULL, password_hash TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS queued_dms (
    n INTEGER PRIMARY KEY AUTOINCREMENT, to_key TEXT NOT NULL, id TEXT NOT NULL,
    sender TEXT NOT NULL, recipient TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL,
    action INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS queued_dms_to ON queued_dms (to_key, n);
";

/// Page cache of each connection (the writer's and the reader's: up to twice this in all):
/// indexing touches the newest page of every active room in two B-trees; SQLite's default
/// 2 MiB made the writer re-read them from the OS again and again.
const CACHE_KIB: i64 = 64 * 1024;

/// WAL pages after which the WAL is checkpointed (about 40 MiB at 4 KiB pages). A checkpoint
/// copies each distinct page once, so a larger WAL means fewer copies of the same hot pages
/// (1,000, SQLite's default, cost a third of the acked messages per second in
/// `durable_bench`). Once the writer runs, its checkpoints are on a thread of their own
/// (`checkpoint`); until then (the upgrades and the recovery at open) a commit checkpoints
/// past this size.
pub(super) const WAL_CHECKPOINT_PAGES: i32 = 10_000;

/// If a long read held a checkpoint back and the WAL grew past this, it is truncated back to
/// this size once a checkpoint resets it.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)
        .map_err(backend)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
        .map_err(backend)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(backend)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(backend)?;
    crate::chat::phrase::register_index_text(&conn).map_err(backend)?;
    Ok(conn)
}

/// The schema this build writes, kept in the file's `PRAGMA user_version`. 0 is a file
/// written before the schema carried a version (every release up to the one that added it),
/// or a new, empty file.
pub const SCHEMA_VERSION: u32 = 6;

/// One step of [`UPGRADES`]: brings a file from the version at its index to the next one,
/// inside the upgrade's transaction.
type Upgrade = fn(&Connection) -> Result<(), StoreError>;

/// `UPGRADES[v]` upgrades version `v` to `v + 1`. A new schema is a step here (and
/// [`SCHEMA_VERSION`] one higher), never an edit of [`SCHEMA`] alone: a file of any earlier
/// version must open.
const UPGRADES: [Upgrade; SCHEMA_VERSION as usize] = [
    to_version_1,
    to_version_2,
    to_version_3,
    to_version_4,
    to_version_5,
    to_version_6,
];

/// Brings the database to [`SCHEMA_VERSION`] in one transaction (a crash half-way leaves the
/// file as it was), or refuses a file a newer build wrote ([`StoreError::NewerSchema`]),
/// before changing anything in it.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let tx = write_transaction(conn)?;
    let found: u32 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            db: path.display().to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for step in &UPGRADES[found as usize..] {
        step(&tx)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(backend)?;
    tx.commit().map_err(backend)?;
    if found > 0 {
        info!(from = found, to = SCHEMA_VERSION, "store schema upgraded");
    }
    Ok(())
}

/// Version 0 to 1: the tables this build uses, created where missing (a new file, or one of
/// the first layout), and that first layout's `messages` table (clustered by room, with a
/// client-id and a time index) moved to the `log`, in time order, to be indexed like any
/// unindexed messages. A file of the log layout (the releases before versions) already has
/// every table: only its version changes.
fn to_version_1(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA).map_err(backend)?;
    let first_layout: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if !first_layout {
        return Ok(());
    }
    let n = conn
        .execute(
            "INSERT INTO log (ns, room, seq, id, sender, text, ts, action, cid) SELECT ns, room, seq, id, sender, text, ts, action, cid FROM messages ORDER BY ts, ns, room, seq",
            [],
        )
        .map_err(backend)?;
    conn.execute_batch("DROP TABLE messages").map_err(backend)?;
    info!(messages = n, "store upgraded: messages moved to the log");
    Ok(())
}

/// Version 1 to 2: moderation. Each room's operators (nick keys), its bans and mutes (one
/// per kind and target, with an optional end), and the messages an admin deleted (their
/// room and seq, so a room whose newest message was deleted keeps its `last_seq`: see
/// `index::disagreement` and `index::repair`).
fn to_version_2(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS operators (
            ns TEXT NOT NULL, room TEXT NOT NULL, nick_key TEXT NOT NULL,
            PRIMARY KEY (ns, room, nick_key)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS operators_by_nick ON operators (nick_key);
        CREATE TABLE IF NOT EXISTS restrictions (
            ns TEXT NOT NULL, room TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
            by TEXT NOT NULL, reason TEXT, until INTEGER, created INTEGER NOT NULL,
            PRIMARY KEY (ns, room, kind, target)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS deleted_messages (
            ns TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
            deleted INTEGER NOT NULL,
            PRIMARY KEY (ns, room, seq)) WITHOUT ROWID;",
    )
    .map_err(backend)
}

/// The full-text index of the log (`search`): FTS5, contentless (the texts stay in the log
/// only; a hit is read from the log by its rowid) with deletes, so retention removes a
/// message by rowid. Two columns: the text, and the message's room as one token
/// ([`super::search::SCOPE_SQL`]), so a search of some rooms reads only their hits.
pub(super) fn fts_schema() -> String {
    format!(
        "CREATE VIRTUAL TABLE IF NOT EXISTS log_fts USING fts5(text, scope, content = '', contentless_delete = 1, tokenize = '{}')",
        crate::chat::phrase::FTS5_TOKENIZER
    )
}

/// Version 2 to 3: the full-text index (`log_fts`), built for the indexed part of the log
/// (`n <= meta.indexed_upto`); the rest is indexed with it by the writer's indexing pass.
fn to_version_3(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(&fts_schema()).map_err(backend)?;
    let n = conn
        .execute(
            &format!(
                "INSERT INTO log_fts (rowid, text, scope) SELECT n, text, {} FROM log WHERE n <= coalesce((SELECT value FROM meta WHERE key = 'indexed_upto'), 0) ORDER BY n",
                super::search::SCOPE_SQL
            ),
            [],
        )
        .map_err(backend)?;
    if n > 0 {
        info!(messages = n, "store upgraded: full-text index built");
    }
    Ok(())
}

/// Version 3 to 4: rooms get an integer id (`rooms.id`, the rowid; `(ns, room)` stays unique,
/// so the statements that name a room by its texts are unchanged), and the two indexes the
/// writer fills for every message are keyed by it: `room_index` (room_id, seq -> rowid) and
/// `cids` (room_id, sender, cid -> rowid). Their keys were the namespace's and the room's
/// texts, compared again at every B-tree step of every insert and lookup (BENCHMARKS.md,
/// "Integer room ids"). Every entry is kept: a room in an index without a `rooms` row (none
/// should be) gets one. The log keeps its texts: it is what a repair rebuilds from.
fn to_version_4(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE rooms_v4 (
            id INTEGER PRIMARY KEY, ns TEXT NOT NULL, room TEXT NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0, topic TEXT,
            UNIQUE (ns, room));
        INSERT INTO rooms_v4 (ns, room, last_seq, topic)
            SELECT ns, room, last_seq, topic FROM rooms ORDER BY ns, room;
        INSERT INTO rooms_v4 (ns, room, last_seq)
            SELECT ns, room, max(seq) FROM room_index GROUP BY ns, room
            ON CONFLICT (ns, room) DO NOTHING;
        INSERT INTO rooms_v4 (ns, room)
            SELECT DISTINCT ns, room FROM cids WHERE true
            ON CONFLICT (ns, room) DO NOTHING;
        CREATE TABLE room_index_v4 (
            room_id INTEGER NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (room_id, seq)) WITHOUT ROWID;
        INSERT INTO room_index_v4 (room_id, seq, n)
            SELECT r.id, i.seq, i.n FROM room_index i CROSS JOIN rooms_v4 r
            ON r.ns = i.ns AND r.room = i.room ORDER BY r.id, i.seq;
        CREATE TABLE cids_v4 (
            room_id INTEGER NOT NULL, sender TEXT NOT NULL, cid TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (room_id, sender, cid)) WITHOUT ROWID;
        INSERT INTO cids_v4 (room_id, sender, cid, n)
            SELECT r.id, c.sender, c.cid, c.n FROM cids c CROSS JOIN rooms_v4 r
            ON r.ns = c.ns AND r.room = c.room ORDER BY r.id, c.sender, c.cid;
        DROP TABLE room_index;
        DROP TABLE cids;
        DROP TABLE rooms;
        ALTER TABLE rooms_v4 RENAME TO rooms;
        ALTER TABLE room_index_v4 RENAME TO room_index;
        ALTER TABLE cids_v4 RENAME TO cids;",
    )
    .map_err(backend)?;
    let rooms: i64 = conn
        .query_row("SELECT count(*) FROM rooms", [], |r| r.get(0))
        .map_err(backend)?;
    if rooms > 0 {
        info!(
            rooms,
            "store upgraded: rooms numbered, indexes keyed by room id"
        );
    }
    Ok(())
}

/// Version 4 to 5: Chinese, Japanese and Korean characters became words of their own in the
/// full-text index. Its re-indexing of those messages is done by version 6's, which covers
/// them, so a file older than 5 is read once.
fn to_version_5(_: &Connection) -> Result<(), StoreError> {
    Ok(())
}

/// Version 5 to 6: the full-text index is given every text as its words (`index_text(text)`,
/// see `chat_protocol::search`) unless the tokenizer would split it the same way: one
/// character a word in Chinese, Japanese, Korean, Thai, Lao, Khmer and Myanmar, combining
/// marks dropped everywhere (Greek accents, Arabic and Hebrew vowel marks, Indic vowel signs
/// that the tokenizer took for word breaks), so the index finds what the scans find. The
/// indexed part of the log is indexed again whole, as the repair does (emptied, then one
/// read of the log): cheaper than picking the texts that changed, which are most of them in
/// a chat in any script but English. 1M Greek messages took 12 s; it is logged before and
/// after. The unindexed tail is indexed the new way by the indexing pass.
fn to_version_6(conn: &Connection) -> Result<(), StoreError> {
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM log WHERE n <= coalesce((SELECT value FROM meta WHERE key = 'indexed_upto'), 0)",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if n > 0 {
        info!(
            messages = n,
            "store upgrade: indexing the messages' words again"
        );
    }
    conn.execute_batch(&format!(
        "INSERT INTO log_fts (log_fts) VALUES ('delete-all');
         INSERT INTO log_fts (rowid, text, scope)
             SELECT n, coalesce(index_text(text), text), {} FROM log
             WHERE n <= coalesce((SELECT value FROM meta WHERE key = 'indexed_upto'), 0) ORDER BY n;",
        super::search::SCOPE_SQL
    ))
    .map_err(backend)?;
    if n > 0 {
        info!(
            messages = n,
            "store upgraded: messages indexed as their words"
        );
    }
    Ok(())
}
