//! The durable store: one SQLite file (rusqlite, bundled SQLite: nothing to install), WAL
//! mode, `synchronous = FULL`.
//!
//! Every write goes to one writer thread through a channel. The thread takes everything
//! queued (up to [`MAX_BATCH`] commands), applies it in one transaction, commits (group
//! commit: one fsync for the whole batch), and only then runs each command's effects in
//! order: an append publishes its message and answers its sender, an attach reads what the
//! socket missed (up to the room's `seq` at its place in the batch) and joins it. That
//! thread is the per-room ordering section of the `Store` contract. Reads that need no
//! ordering (history, topics, identities, queued DMs) use a second connection.
//!
//! Messages are appended to the `log` table (in arrival order, no secondary index: a commit
//! writes a few pages however many rooms its batch touches) and acknowledged after that
//! commit. Between batches the writer indexes the log by room and seq (`room_index`) and by
//! client id (`cids`) in chunks of up to [`IndexLimits::rows`] messages, or once the oldest
//! unindexed one is [`IndexLimits::age`] old, one transaction per chunk (`meta.indexed_upto`
//! says how far); at open it indexes whatever a crash left (after a cheap check that the
//! indexes agree with the log, rebuilding them from the log when they do not: `recover`).
//! Until then reads find the unindexed messages in memory (`super::unindexed`).
//! A store holds an advisory lock on `<db>.lock` for its life: a second one on the same file
//! is refused ([`StoreError::InUse`]).
//! Retention (count and age per room) runs on the writer between batches, in bounded chunks.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::events::{ChatMessage, DirectMessage};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::store::{
    AppendDone, Appended, Attach, Identity, NewMessage, Publish, Store, StoreError, StoreFuture,
    catchup, new_id, now_ms,
};
use super::unindexed::{CidIndex, CidRef, Entry, Map, RoomKey, RoomRef, Set, Unindexed};
use crate::engine::lock;

/// Most commands applied in one transaction.
pub const MAX_BATCH: usize = 4096;
/// Rows removed per retention chunk, so a big clean-up never holds the writer for long.
const RETENTION_CHUNK: usize = 2000;
const RETENTION_EVERY: Duration = Duration::from_secs(1);
/// Appends are refused while this many chunks ([`IndexLimits::rows`]) wait for indexing.
const UNINDEXED_CHUNKS_MAX: usize = 16;
/// After a failed indexing, the next attempt waits this long.
const INDEX_RETRY: Duration = Duration::from_secs(1);

/// When the log is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLimits {
    /// Index once this many messages are unindexed (and at most this many at once).
    pub rows: usize,
    /// Index once the oldest unindexed message is this old.
    pub age: Duration,
}

impl Default for IndexLimits {
    fn default() -> Self {
        IndexLimits {
            rows: 8192,
            age: Duration::from_millis(500),
        }
    }
}

/// How long messages are kept, per room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many messages per room.
    pub max_messages: Option<u64>,
    /// Remove messages older than this.
    pub max_age: Option<Duration>,
}

/// Batching figures since start (for benchmarks and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub commits: u64,
    pub appends: u64,
    pub largest_batch: u64,
    /// Time spent executing the batches' statements.
    pub write_time: Duration,
    /// Time spent committing (writing the WAL, fsync, checkpoints).
    pub commit_time: Duration,
    /// Time spent after the commits: replies and publishing.
    pub finish_time: Duration,
    /// Indexing transactions, the messages they indexed, and their time.
    pub index_passes: u64,
    pub indexed: u64,
    pub index_time: Duration,
    /// 1 when the open found the indexes disagreeing with the log and rebuilt them.
    pub rebuilds: u64,
}

enum Command {
    Append {
        message: NewMessage,
        publish: Publish,
        reply: AppendDone,
    },
    Attach {
        ns: String,
        room: String,
        after: Option<u64>,
        limit: usize,
        attach: Attach,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    SetTopic {
        ns: String,
        room: String,
        topic: Option<String>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    CreateIdentity {
        key: String,
        identity: Identity,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    QueueDm {
        to_key: String,
        message: DirectMessage,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    RemoveDm {
        to_key: String,
        id: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

pub struct SqliteStore {
    tx: std::sync::mpsc::Sender<Command>,
    reader: Arc<Mutex<Connection>>,
    unindexed: Arc<Mutex<Unindexed>>,
    stats: Arc<Mutex<WriterStats>>,
    path: PathBuf,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The lock on `<db>.lock` ([`lock_database`]), held for the store's life; dropped last,
    /// after the writer has stopped and both connections are closed.
    _lock: File,
}

impl Drop for SqliteStore {
    /// Stops the writer after what is queued and waits for it, so the file can be opened
    /// again at once (a test's restart) with nothing of this store still writing.
    fn drop(&mut self) {
        drop(std::mem::replace(
            &mut self.tx,
            std::sync::mpsc::channel().0,
        ));
        if let Some(writer) = self.writer.take()
            && writer.thread().id() != std::thread::current().id()
        {
            let _ = writer.join();
        }
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

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
/// WAL pages after which a commit checkpoints (about 40 MiB at 4 KiB pages, the WAL file's
/// usual largest size). A checkpoint copies each distinct page once, so a larger WAL means
/// fewer copies of the same hot pages (1,000, SQLite's default, cost a third of the acked
/// messages per second in `durable_bench`).
const WAL_CHECKPOINT_PAGES: i64 = 10_000;
/// If a long read held a checkpoint back and the WAL grew past this, it is truncated back to
/// this size once a checkpoint resets it.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The lock file beside a database: `<db>.lock` (of the file a symlink `db` names, when it is
/// one).
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the advisory lock that makes a store the only one on its database: an exclusive
/// `flock` on a separate file, `<db>.lock` (created if needed, never removed: removing it
/// would let a third store lock a new file while the second still holds the old one). The OS
/// releases it when the holder's file is closed or its process dies, so a crash never leaves
/// a stale lock. Not SQLite's own locks: `locking_mode = EXCLUSIVE` would shut out the
/// store's read connection, and a second handle on the database file, once closed, would drop
/// the process's POSIX locks on it. The holder writes its pid into the file, for the error
/// the next one reports (and for humans).
fn lock_database(db: &Path) -> Result<File, StoreError> {
    // Beside the file itself when `db` is a symlink (SQLite, too, follows it): two paths to
    // one database meet on one lock file. A database not created yet has nothing to follow.
    let lock = lock_path(&std::fs::canonicalize(db).unwrap_or_else(|_| db.to_owned()));
    let cannot =
        |e: std::io::Error| StoreError::Backend(format!("cannot lock {}: {e}", lock.display()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(cannot)?;
    // `File::try_lock` (a `flock`) is why the workspace needs Rust 1.89.
    let locked = file.try_lock();
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let holder = match pid.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}; "),
                Err(_) => String::new(),
            };
            return Err(StoreError::InUse {
                db: db.display().to_string(),
                lock: lock.display().to_string(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
    }
    // Only a courtesy: a failure to record the pid does not stop the store.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(file)
}

fn open(path: &Path) -> Result<Connection, StoreError> {
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
    Ok(conn)
}

impl SqliteStore {
    /// Locks (refusing a file another store holds: [`StoreError::InUse`]), opens (creating if
    /// needed, or upgrading) the database file, indexes what a crash left unindexed (or
    /// rebuilds indexes that disagree with the log), and starts the writer thread.
    pub fn open(path: &Path, retention: Retention) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, retention, IndexLimits::default())
    }

    /// [`SqliteStore::open`] with other indexing limits (tests and benchmarks).
    pub fn open_with(
        path: &Path,
        retention: Retention,
        limits: IndexLimits,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        if path.is_dir() {
            // Refused before its lock file would be left beside it.
            return Err(StoreError::Backend(
                "is a directory, not a database file".into(),
            ));
        }
        // Before any connection: a store that is not the only one on the file touches nothing.
        let lock = lock_database(path)?;
        let writer = open(path)?;
        writer.execute_batch(SCHEMA).map_err(backend)?;
        upgrade(&writer)?;
        let (recovered, rebuilt) = recover(&writer)?;
        let reader = open(path)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stats = Arc::new(Mutex::new(WriterStats {
            rebuilds: rebuilt as u64,
            ..WriterStats::default()
        }));
        let unindexed = Arc::new(Mutex::new(Unindexed::default()));
        let writer = Writer {
            conn: writer,
            rooms: RoomCache {
                unindexed: unindexed.clone(),
                max_unindexed: limits.rows.saturating_mul(UNINDEXED_CHUNKS_MAX),
                ..RoomCache::default()
            },
            retention,
            limits,
            indexed_upto: recovered.1,
            next_index: None,
            stats: stats.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(backend)?;
        info!(path = %path.display(), recovered = recovered.0, "store opened");
        Ok(SqliteStore {
            tx,
            reader: Arc::new(Mutex::new(reader)),
            unindexed,
            stats,
            path: path.to_owned(),
            writer: Some(writer),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> WriterStats {
        *lock(&self.stats)
    }

    fn send<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> StoreFuture<'_, T> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(make(reply));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// Runs a read on the reader connection off the async threads.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let reader = self.reader.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&lock(&reader)).map_err(backend))
                .await
                .map_err(backend)?
        })
    }
}

fn row_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        room: row.get(0)?,
        seq: row.get::<_, i64>(1)? as u64,
        id: row.get(2)?,
        from: row.get(3)?,
        text: row.get(4)?,
        ts: row.get(5)?,
        action: row.get::<_, i64>(6)? != 0,
    })
}

/// The columns [`row_message`] reads, of the `log` table aliased `l`.
const MESSAGE_COLUMNS: &str = "l.room, l.seq, l.id, l.sender, l.text, l.ts, l.action";

/// Indexed messages with `after < seq <= upto`, the newest `limit`, oldest first.
fn read_range(
    conn: &Connection,
    ns: &str,
    room: &str,
    after: u64,
    upto: u64,
    limit: usize,
) -> rusqlite::Result<Vec<ChatMessage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM room_index r JOIN log l ON l.n = r.n WHERE r.ns = ?1 AND r.room = ?2 AND r.seq > ?3 AND r.seq <= ?4 ORDER BY r.seq DESC LIMIT ?5"
    ))?;
    let mut out = stmt
        .query_map(
            params![ns, room, after as i64, upto as i64, limit as i64],
            row_message,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// Messages with `after < seq <= upto`, the newest `limit`, oldest first, indexed or not.
///
/// The unindexed messages are read first. They are the newest of their room, so everything
/// older is indexed by then (indexing only moves forward), and the indexes are read below the
/// first of them, for what is still missing: no gap and no duplicate, whatever the writer
/// indexes in between.
fn read_messages(
    conn: &Connection,
    unindexed: &Mutex<Unindexed>,
    ns: &str,
    room: &str,
    after: u64,
    upto: u64,
    limit: usize,
) -> rusqlite::Result<Vec<ChatMessage>> {
    // SQLite integers are signed.
    let (after, upto) = (after.min(i64::MAX as u64), upto.min(i64::MAX as u64));
    let recent = lock(unindexed).range(ns, room, after, upto, limit);
    if recent.len() >= limit {
        return Ok(recent);
    }
    let below = recent.first().map_or(upto, |m| m.seq - 1);
    let mut out = read_range(conn, ns, room, after, below, limit - recent.len())?;
    out.extend(recent);
    Ok(out)
}

/// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`), waiting out the busy
/// timeout if another process holds it. A deferred one reads first and must then upgrade to
/// a write, which SQLite refuses at once, without waiting, when another writer got in between.
fn write_transaction(conn: &Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)
}

/// Indexes the log's messages with rowid `<= upto` not indexed yet (and writes their rooms'
/// last seq, and how far the log is indexed) in one transaction; returns how many, and the
/// newest rowid indexed.
fn index_log(conn: &Connection, upto: i64) -> Result<(usize, i64), StoreError> {
    // Where the indexing starts is read under the write lock.
    let tx = write_transaction(conn)?;
    let from: i64 = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'indexed_upto'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .unwrap_or_default();
    let run = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([from, upto]))
            .map_err(backend)
    };
    // In key order, so each room's index pages are visited once.
    let count = run(
        "INSERT INTO room_index (ns, room, seq, n) SELECT ns, room, seq, n FROM log WHERE n > ?1 AND n <= ?2 ORDER BY ns, room, seq",
    )?;
    let mut last = from;
    if count > 0 {
        run(
            "INSERT INTO cids (ns, room, sender, cid, n) SELECT ns, room, sender, cid, n FROM log WHERE n > ?1 AND n <= ?2 AND cid IS NOT NULL ORDER BY ns, room, sender, cid",
        )?;
        run(
            "INSERT INTO rooms (ns, room, last_seq) SELECT ns, room, max(seq) FROM log WHERE n > ?1 AND n <= ?2 GROUP BY ns, room ON CONFLICT (ns, room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
        )?;
        last = tx
            .query_row(
                "SELECT max(n) FROM log WHERE n > ?1 AND n <= ?2",
                [from, upto],
                |r| r.get(0),
            )
            .map_err(backend)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('indexed_upto', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [last],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    Ok((count, last))
}

/// At open: indexes what a crash left unindexed, after a cheap check that the indexes agree
/// with the log; if they do not, or the tail does not index, rebuilds them ([`repair`]).
/// Returns what [`index_log`] does, and whether the indexes were rebuilt.
fn recover(conn: &Connection) -> Result<((usize, i64), bool), StoreError> {
    if let Some(why) = disagreement(conn)? {
        warn!(%why, "the store's indexes disagree with its log: rebuilding them");
        return Ok((repair(conn)?, true));
    }
    match index_log(conn, i64::MAX) {
        Ok(done) => Ok((done, false)),
        Err(e) => {
            warn!(error = %e, "indexing the log's tail failed: rebuilding the indexes");
            Ok((repair(conn)?, true))
        }
    }
}

/// Where the indexes disagree with the log, looked for without reading the whole log:
/// O(rooms) index lookups, however many messages.
///
/// Where damage can be: indexing is one transaction per chunk that also moves
/// `meta.indexed_upto`, so a crash leaves only an unindexed tail (the log after
/// `indexed_upto`), which [`index_log`] then indexes. A second writer on the file (a store
/// that did not take the lock, as before there was one) counts rooms from its own memory, so
/// its messages take seqs (or client ids) already taken; indexing them fails on the indexes'
/// keys, and stops there: what it left is all in the tail too, and makes indexing the tail
/// fail, which [`recover`] answers with [`repair`]. So the indexed part is checked only where
/// any writer touches it, at its newest entries:
/// - the log's newest indexed message (`n <= indexed_upto`) is in `room_index` under its
///   room and seq, and its client id in `cids` (under its own or an earlier message): this
///   catches an `indexed_upto` ahead of the indexes, and the newest entries gone;
/// - every room's newest `room_index` entry names a log message with that room and seq, and
///   is the room's `last_seq` (a room's messages are numbered in log order, and retention
///   removes a room's oldest messages first or all of them, so a room with indexed messages
///   has its `last_seq` among them): this catches a `last_seq` behind (new messages would
///   take taken seqs) or ahead, and a room's newest entries gone or pointing elsewhere.
///
/// An `indexed_upto` behind the indexes makes indexing the tail fail (on keys already
/// there), which repairs too. Damage only a hand edit could leave below the newest entries
/// is not looked for; deleting `meta.indexed_upto` forces a rebuild at the next open.
fn disagreement(conn: &Connection) -> Result<Option<String>, StoreError> {
    let upto: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'indexed_upto'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .unwrap_or_default();
    let newest = conn
        .query_row(
            "SELECT n, ns, room, seq, sender, cid FROM log WHERE n <= ?1 ORDER BY n DESC LIMIT 1",
            [upto],
            LogRow::read,
        )
        .optional()
        .map_err(backend)?;
    if let Some(row) = newest {
        let indexed: Option<i64> = conn
            .query_row(
                "SELECT n FROM room_index WHERE ns = ?1 AND room = ?2 AND seq = ?3",
                params![row.ns, row.room, row.seq],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if indexed != Some(row.n) {
            return Ok(Some(format!(
                "message {} ({} {} #{}) is not in room_index",
                row.n, row.ns, row.room, row.seq
            )));
        }
        if let Some(cid) = &row.cid {
            let first: Option<i64> = conn
                .query_row(
                    "SELECT n FROM cids WHERE ns = ?1 AND room = ?2 AND sender = ?3 AND cid = ?4",
                    params![row.ns, row.room, row.sender, cid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if first.is_none_or(|n| n > row.n) {
                return Ok(Some(format!(
                    "message {}'s client id is not in cids",
                    row.n
                )));
            }
        }
    }
    let mut rooms = conn
        .prepare("SELECT ns, room, last_seq FROM rooms")
        .map_err(backend)?;
    let mut rooms = rooms.query([]).map_err(backend)?;
    let mut top = conn
        .prepare(
            "SELECT r.seq, r.n, l.ns, l.room, l.seq FROM room_index r LEFT JOIN log l ON l.n = r.n WHERE r.ns = ?1 AND r.room = ?2 ORDER BY r.seq DESC LIMIT 1",
        )
        .map_err(backend)?;
    while let Some(room) = rooms.next().map_err(backend)? {
        let (ns, name, last_seq): (String, String, i64) = (
            room.get(0).map_err(backend)?,
            room.get(1).map_err(backend)?,
            room.get(2).map_err(backend)?,
        );
        type Top = (i64, i64, Option<String>, Option<String>, Option<i64>);
        let found: Option<Top> = top
            .query_row(params![ns, name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
            .map_err(backend)?;
        let Some((seq, n, log_ns, log_room, log_seq)) = found else {
            continue; // No indexed message: none yet, or retention removed them all.
        };
        if seq != last_seq {
            return Ok(Some(format!(
                "room {ns} {name}: last_seq {last_seq}, newest indexed message #{seq}"
            )));
        }
        if (log_ns.as_deref(), log_room.as_deref(), log_seq)
            != (Some(ns.as_str()), Some(name.as_str()), Some(seq))
            || n > upto
        {
            return Ok(Some(format!(
                "room {ns} {name}: #{seq} names message {n}, which is not it"
            )));
        }
    }
    Ok(None)
}

/// Rebuilds `room_index`, `cids`, the rooms' `last_seq` and `meta.indexed_upto` from the log,
/// in one transaction, keeping every message in it (each was acknowledged once committed).
///
/// Each room's messages are numbered in log order (rowid order, the order they were
/// committed), as one writer numbers them: walking a room's messages in that order, a
/// message keeps its seq if it is above every earlier one's, else (a seq a second writer
/// took again) it takes the next one after them; so from the first such message the room's
/// later ones are mostly numbered on too. Ids, texts and times are unchanged. A client id
/// stored twice (a re-send that reached both writers) names its first message, as a re-send
/// would have found it; both messages stay. A room's `last_seq` becomes its newest message's
/// seq (rooms whose messages retention removed keep theirs).
fn repair(conn: &Connection) -> Result<(usize, i64), StoreError> {
    let started = Instant::now();
    let tx = write_transaction(conn)?;
    let mut renumbered = Vec::new();
    {
        let mut rooms: Map<RoomKey, i64> = Map::default();
        let mut stmt = tx
            .prepare("SELECT n, ns, room, seq FROM log ORDER BY n")
            .map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let (n, ns, room, seq): (i64, String, String, i64) = (
                row.get(0).map_err(backend)?,
                row.get(1).map_err(backend)?,
                row.get(2).map_err(backend)?,
                row.get(3).map_err(backend)?,
            );
            let key = RoomRef(&ns, &room);
            match rooms.get_mut(&key) {
                Some(last) if seq <= *last => {
                    *last += 1;
                    renumbered.push((n, *last));
                }
                Some(last) => *last = seq,
                None => drop(rooms.insert(key.to_key(), seq)),
            }
        }
    }
    {
        let mut update = tx
            .prepare("UPDATE log SET seq = ?2 WHERE n = ?1")
            .map_err(backend)?;
        for (n, seq) in &renumbered {
            update.execute([n, seq]).map_err(backend)?;
        }
    }
    tx.execute_batch(
        "DELETE FROM room_index;
         DELETE FROM cids;
         INSERT INTO room_index (ns, room, seq, n) SELECT ns, room, seq, n FROM log ORDER BY ns, room, seq;
         INSERT INTO cids (ns, room, sender, cid, n) SELECT ns, room, sender, cid, min(n) FROM log WHERE cid IS NOT NULL GROUP BY ns, room, sender, cid;
         INSERT INTO rooms (ns, room, last_seq) SELECT ns, room, max(seq) FROM room_index GROUP BY ns, room
             ON CONFLICT (ns, room) DO UPDATE SET last_seq = excluded.last_seq;
         INSERT INTO meta (key, value) SELECT 'indexed_upto', coalesce(max(n), 0) FROM log WHERE true
             ON CONFLICT (key) DO UPDATE SET value = excluded.value;",
    )
    .map_err(backend)?;
    let (count, last): (i64, i64) = tx
        .query_row("SELECT count(*), coalesce(max(n), 0) FROM log", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(backend)?;
    tx.commit().map_err(backend)?;
    warn!(
        messages = count,
        renumbered = renumbered.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "store indexes rebuilt from the log"
    );
    Ok((count as usize, last))
}

/// Brings a database written by an earlier version to this schema: the `messages` table
/// (clustered by room, with a client-id and a time index) becomes the `log`, in time order,
/// to be indexed like any unindexed messages.
fn upgrade(conn: &Connection) -> Result<(), StoreError> {
    let old: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if !old {
        return Ok(());
    }
    let tx = conn.unchecked_transaction().map_err(backend)?;
    let n = tx
        .execute(
            "INSERT INTO log (ns, room, seq, id, sender, text, ts, action, cid) SELECT ns, room, seq, id, sender, text, ts, action, cid FROM messages ORDER BY ts, ns, room, seq",
            [],
        )
        .map_err(backend)?;
    tx.execute_batch("DROP TABLE messages").map_err(backend)?;
    tx.commit().map_err(backend)?;
    info!(messages = n, "store upgraded: messages moved to the log");
    Ok(())
}

impl Store for SqliteStore {
    fn append_then(&self, message: NewMessage, publish: Publish, done: AppendDone) {
        // A closed channel hands the command back, and dropping it answers `Closed`.
        let _ = self.tx.send(Command::Append {
            message,
            publish,
            reply: done,
        });
    }

    fn attach(
        &self,
        namespace: &str,
        room: &str,
        after: Option<u64>,
        limit: usize,
        attach: Attach,
    ) -> StoreFuture<'_, ()> {
        let (ns, room) = (namespace.to_owned(), room.to_owned());
        self.send(|reply| Command::Attach {
            ns,
            room,
            after,
            limit,
            attach,
            reply,
        })
    }

    fn history(
        &self,
        namespace: &str,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<ChatMessage>> {
        let (ns, room) = (namespace.to_owned(), room.to_owned());
        let unindexed = self.unindexed.clone();
        self.read(move |c| {
            read_messages(
                c,
                &unindexed,
                &ns,
                &room,
                0,
                before
                    .map(|b| b.saturating_sub(1))
                    .unwrap_or(i64::MAX as u64),
                limit,
            )
        })
    }

    fn topic(&self, namespace: &str, room: &str) -> StoreFuture<'_, Option<String>> {
        let (ns, room) = (namespace.to_owned(), room.to_owned());
        self.read(move |c| {
            c.query_row(
                "SELECT topic FROM rooms WHERE ns = ?1 AND room = ?2",
                params![ns, room],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
    }

    fn set_topic(&self, namespace: &str, room: &str, topic: Option<String>) -> StoreFuture<'_, ()> {
        let (ns, room) = (namespace.to_owned(), room.to_owned());
        self.send(|reply| Command::SetTopic {
            ns,
            room,
            topic,
            reply,
        })
    }

    fn identity(&self, nick_key: &str) -> StoreFuture<'_, Option<Identity>> {
        let key = nick_key.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT nick, password_hash FROM identities WHERE nick_key = ?1",
                params![key],
                |r| {
                    Ok(Identity {
                        nick: r.get(0)?,
                        password_hash: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    fn registered_nicks(&self) -> StoreFuture<'_, Vec<String>> {
        self.read(|c| {
            let mut statement = c.prepare("SELECT nick FROM identities")?;
            let nicks = statement.query_map([], |r| r.get(0))?;
            nicks.collect()
        })
    }

    fn create_identity(&self, nick_key: &str, identity: Identity) -> StoreFuture<'_, bool> {
        let key = nick_key.to_owned();
        self.send(|reply| Command::CreateIdentity {
            key,
            identity,
            reply,
        })
    }

    fn queue_dm(&self, to_key: &str, message: DirectMessage) -> StoreFuture<'_, ()> {
        let to_key = to_key.to_owned();
        self.send(|reply| Command::QueueDm {
            to_key,
            message,
            reply,
        })
    }

    fn queued_dm_count(&self, to_key: &str) -> StoreFuture<'_, usize> {
        let key = to_key.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT count(*) FROM queued_dms WHERE to_key = ?1")?
                .query_row(params![key], |r| r.get::<_, i64>(0))
                .map(|n| n as usize)
        })
    }

    fn queued_dms(&self, to_key: &str) -> StoreFuture<'_, Vec<DirectMessage>> {
        let key = to_key.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached("SELECT id, sender, recipient, text, ts, action FROM queued_dms WHERE to_key = ?1 ORDER BY n")?;
            stmt.query_map(params![key], |r| {
                Ok(DirectMessage {
                    id: r.get(0)?,
                    from: r.get(1)?,
                    to: r.get(2)?,
                    text: r.get(3)?,
                    ts: r.get(4)?,
                    action: r.get::<_, i64>(5)? != 0,
                })
            })?
            .collect()
        })
    }

    fn remove_dm(&self, to_key: &str, id: &str) -> StoreFuture<'_, ()> {
        let (to_key, id) = (to_key.to_owned(), id.to_owned());
        self.send(|reply| Command::RemoveDm { to_key, id, reply })
    }
}

/// What a command does once its transaction has committed.
enum Effect {
    Appended {
        appended: Appended,
        publish: Publish,
        reply: AppendDone,
    },
    /// An append not stored (nothing else in the batch is affected).
    Refused { reply: AppendDone, error: String },
    Attach {
        ns: String,
        room: String,
        after: Option<u64>,
        upto: u64,
        limit: usize,
        attach: Attach,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Done {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Created {
        created: bool,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
}

impl Effect {
    fn fail(self, e: &StoreError) {
        let err = || StoreError::Backend(e.to_string());
        match self {
            Effect::Appended { reply, .. } | Effect::Refused { reply, .. } => {
                reply.call(Err(err()))
            }
            Effect::Attach { reply, .. } | Effect::Done { reply } => drop(reply.send(Err(err()))),
            Effect::Created { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

struct Writer {
    conn: Connection,
    rooms: RoomCache,
    retention: Retention,
    limits: IndexLimits,
    /// The newest rowid of the log in the indexes.
    indexed_upto: i64,
    /// After a failed indexing: not before then.
    next_index: Option<Instant>,
    stats: Arc<Mutex<WriterStats>>,
}

/// What the writer remembers between batches.
#[derive(Default)]
struct RoomCache {
    /// Last seq per room (namespace, room), loaded on first use.
    seqs: Map<RoomKey, u64>,
    /// Rooms appended to since the last retention pass.
    touched: Set<RoomKey>,
    /// Committed messages not yet indexed (shared with the readers).
    unindexed: Arc<Mutex<Unindexed>>,
    /// This batch's messages: added to `unmoved` once it commits.
    staged: Vec<Entry>,
    /// This batch's client ids: index in `staged`.
    staged_cids: CidIndex<usize>,
    /// Appends are refused while this many messages wait for indexing (it keeps failing):
    /// memory stays bounded, and so does the work of the next open.
    max_unindexed: usize,
}

impl RoomCache {
    fn last_seq(&mut self, tx: &Connection, ns: &str, room: &str) -> Result<u64, StoreError> {
        let key = RoomRef(ns, room);
        if let Some(seq) = self.seqs.get(&key) {
            return Ok(*seq);
        }
        let moved: i64 = tx
            .query_row(
                "SELECT last_seq FROM rooms WHERE ns = ?1 AND room = ?2",
                params![ns, room],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?
            .unwrap_or(0);
        let seq = lock(&self.unindexed)
            .last_seq(ns, room)
            .unwrap_or(0)
            .max(moved as u64);
        self.seqs.insert(key.to_key(), seq);
        Ok(seq)
    }

    /// The message this sender already stored with this client id in this room: in this
    /// batch, not yet indexed, or indexed.
    fn by_cid(&self, tx: &Connection, key: &CidRef<'_>) -> Result<Option<ChatMessage>, StoreError> {
        if let Some(i) = self.staged_cids.find(key, |i| self.staged[i].is(key)) {
            return Ok(Some(self.staged[i].message.clone()));
        }
        if let Some(found) = lock(&self.unindexed).by_cid(key) {
            return Ok(Some(found));
        }
        let n: Option<i64> = tx
            .prepare_cached(
                "SELECT n FROM cids WHERE ns = ?1 AND room = ?2 AND sender = ?3 AND cid = ?4",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![key.0, key.1, key.2, key.3], |r| r.get(0))
                    .optional()
            })
            .map_err(backend)?;
        let Some(n) = n else { return Ok(None) };
        tx.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM log l WHERE l.n = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([n], row_message).optional())
        .map_err(backend)
    }

    /// Forgets what the rolled-back batch did.
    fn rolled_back(&mut self) {
        self.seqs.clear();
        self.staged.clear();
        self.staged_cids.clear();
    }

    /// The write phase of one command (inside the batch's transaction).
    fn write(&mut self, tx: &Connection, command: Command) -> Result<Effect, StoreError> {
        Ok(match command {
            Command::Append {
                message: m,
                publish,
                reply,
            } => {
                let waiting = lock(&self.unindexed).len() + self.staged.len();
                if waiting >= self.max_unindexed {
                    return Ok(Effect::Refused {
                        reply,
                        error: format!("{waiting} messages wait for indexing, which is failing"),
                    });
                }
                let seq = self.last_seq(tx, &m.namespace, &m.room)? + 1;
                // A re-sent message (same sender, client id and room) is stored once.
                let cid_key = m
                    .cid
                    .as_deref()
                    .map(|cid| CidRef(&m.namespace, &m.room, &m.from, cid));
                if let Some(key) = &cid_key
                    && let Some(first) = self.by_cid(tx, key)?
                {
                    return Ok(Effect::Appended {
                        appended: Appended {
                            message: first,
                            duplicate: true,
                        },
                        publish,
                        reply,
                    });
                }
                let message = ChatMessage {
                    id: new_id(),
                    room: m.room,
                    seq,
                    from: m.from,
                    text: m.text,
                    ts: now_ms(),
                    action: m.action,
                };
                tx.prepare_cached(
                    "INSERT INTO log (ns, room, seq, id, sender, text, ts, action, cid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        m.namespace,
                        message.room,
                        seq as i64,
                        message.id,
                        message.from,
                        message.text,
                        message.ts,
                        message.action as i64,
                        m.cid
                    ])
                })
                .map_err(backend)?;
                let room = RoomRef(&m.namespace, &message.room);
                match self.seqs.get_mut(&room) {
                    Some(last) => *last = seq,
                    None => drop(self.seqs.insert(room.to_key(), seq)),
                }
                if !self.touched.contains(&room) {
                    self.touched.insert(room.to_key());
                }
                if let Some(cid) = &m.cid {
                    let key = CidRef(&m.namespace, &message.room, &message.from, cid);
                    self.staged_cids.insert(&key, self.staged.len());
                }
                self.staged.push(Entry {
                    n: tx.last_insert_rowid(),
                    ns: m.namespace,
                    cid: m.cid,
                    message: message.clone(),
                });
                Effect::Appended {
                    appended: Appended {
                        message,
                        duplicate: false,
                    },
                    publish,
                    reply,
                }
            }
            Command::Attach {
                ns,
                room,
                after,
                limit,
                attach,
                reply,
            } => {
                let upto = self.last_seq(tx, &ns, &room)?;
                Effect::Attach {
                    ns,
                    room,
                    after,
                    upto,
                    limit,
                    attach,
                    reply,
                }
            }
            Command::SetTopic {
                ns,
                room,
                topic,
                reply,
            } => {
                tx.execute(
                    "INSERT INTO rooms (ns, room, topic) VALUES (?1, ?2, ?3) ON CONFLICT (ns, room) DO UPDATE SET topic = excluded.topic",
                    params![ns, room, topic],
                )
                .map_err(backend)?;
                Effect::Done { reply }
            }
            Command::CreateIdentity {
                key,
                identity,
                reply,
            } => {
                let n = tx
                    .execute(
                        "INSERT INTO identities (nick_key, nick, password_hash, created) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                        params![key, identity.nick, identity.password_hash, now_ms()],
                    )
                    .map_err(backend)?;
                Effect::Created {
                    created: n == 1,
                    reply,
                }
            }
            Command::QueueDm {
                to_key,
                message: d,
                reply,
            } => {
                tx.execute(
                    "INSERT INTO queued_dms (to_key, id, sender, recipient, text, ts, action) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![to_key, d.id, d.from, d.to, d.text, d.ts, d.action as i64],
                )
                .map_err(backend)?;
                Effect::Done { reply }
            }
            Command::RemoveDm { to_key, id, reply } => {
                tx.execute(
                    "DELETE FROM queued_dms WHERE to_key = ?1 AND id = ?2",
                    params![to_key, id],
                )
                .map_err(backend)?;
                Effect::Done { reply }
            }
        })
    }
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Command>) {
        let mut last_retention = Instant::now();
        let mut retention_left = false;
        let tick = RETENTION_EVERY
            .min(self.limits.age)
            .max(Duration::from_millis(10));
        loop {
            let wait = if retention_left { Duration::ZERO } else { tick };
            let first = match rx.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                self.apply(batch);
            }
            self.index_due(false);
            if retention_left || last_retention.elapsed() >= RETENTION_EVERY {
                retention_left = self.enforce_retention().unwrap_or_else(|e| {
                    error!(error = %e, "retention pass failed");
                    false
                });
                last_retention = Instant::now();
            }
        }
        debug!("store writer stopped");
    }

    fn apply(&mut self, batch: Vec<Command>) {
        let size = batch.len() as u64;
        let mut effects = Vec::with_capacity(batch.len());
        let mut pending: std::collections::VecDeque<Command> = batch.into();
        let started = Instant::now();
        let mut written = started;
        let result = (|| -> Result<(), StoreError> {
            let tx = write_transaction(&self.conn)?;
            while let Some(command) = pending.pop_front() {
                effects.push(self.rooms.write(&tx, command)?);
            }
            written = Instant::now();
            tx.commit().map_err(backend)
        })();
        match result {
            Ok(()) => {
                let committed = Instant::now();
                self.rooms.staged_cids.clear();
                let staged = std::mem::take(&mut self.rooms.staged);
                lock(&self.rooms.unindexed).add(staged, committed);
                let mut appends = 0;
                for effect in effects {
                    if matches!(effect, Effect::Appended { .. }) {
                        appends += 1;
                    }
                    self.finish(effect);
                }
                let mut stats = lock(&self.stats);
                stats.write_time += written - started;
                stats.commit_time += committed - written;
                stats.finish_time += committed.elapsed();
                stats.commits += 1;
                stats.appends += appends;
                stats.largest_batch = stats.largest_batch.max(size);
            }
            Err(e) => {
                error!(error = %e, "store transaction failed");
                self.rooms.rolled_back();
                for effect in effects {
                    effect.fail(&e);
                }
                for command in pending {
                    Effect::from_unapplied(command).fail(&e);
                }
            }
        }
    }

    /// The effects of one command after its commit, in batch order.
    fn finish(&mut self, effect: Effect) {
        match effect {
            Effect::Appended {
                appended,
                publish,
                reply,
            } => {
                if !appended.duplicate {
                    publish(&appended.message);
                }
                reply.call(Ok(appended));
            }
            Effect::Attach {
                ns,
                room,
                after,
                upto,
                limit,
                attach,
                reply,
            } => match read_messages(
                &self.conn,
                &self.rooms.unindexed,
                &ns,
                &room,
                after.unwrap_or(0),
                upto,
                limit,
            ) {
                Ok(found) => {
                    attach(catchup(found, after, upto));
                    let _ = reply.send(Ok(()));
                }
                Err(e) => drop(reply.send(Err(backend(e)))),
            },
            Effect::Refused { reply, error } => reply.call(Err(StoreError::Backend(error))),
            Effect::Done { reply } => drop(reply.send(Ok(()))),
            Effect::Created { created, reply } => drop(reply.send(Ok(created))),
        }
    }

    /// Indexes the log, a chunk at a time, while the unindexed messages are at the limit (or
    /// the oldest of them at the age limit, or `all` says so).
    fn index_due(&mut self, all: bool) {
        loop {
            let started = Instant::now();
            if self.next_index.is_some_and(|at| started < at) {
                return;
            }
            let rows = self.limits.rows.max(1);
            let (len, oldest, upto) = {
                let unindexed = lock(&self.rooms.unindexed);
                (
                    unindexed.len(),
                    unindexed.oldest(),
                    unindexed.chunk_end(rows),
                )
            };
            let aged = oldest.is_some_and(|at| started.duration_since(at) >= self.limits.age);
            let Some(upto) = upto.filter(|_| all || aged || len >= rows) else {
                return;
            };
            match index_log(&self.conn, upto) {
                Ok((count, last)) => {
                    lock(&self.rooms.unindexed).remove_upto(upto);
                    self.indexed_upto = last;
                    self.next_index = None;
                    let mut stats = lock(&self.stats);
                    stats.index_passes += 1;
                    stats.indexed += count as u64;
                    stats.index_time += started.elapsed();
                }
                Err(e) => {
                    // The messages stay unindexed (and readable); indexing is tried again, and
                    // appends are refused once too many wait (`RoomCache::max_unindexed`).
                    error!(error = %e, unindexed = len, "indexing the log failed");
                    self.next_index = Some(started + INDEX_RETRY);
                    return;
                }
            }
            if len <= rows {
                return;
            }
        }
    }

    /// Removes, in bounded chunks and one transaction, messages beyond the per-room count and
    /// older than the age. Only indexed messages are removed (the rest are newer). True when a
    /// chunk was full: there is more to remove at once.
    fn enforce_retention(&mut self) -> Result<bool, StoreError> {
        let touched: Vec<RoomKey> = self.rooms.touched.drain().collect();
        if self.retention == Retention::default() {
            return Ok(false);
        }
        let mut more = false;
        self.index_due(true);
        let tx = write_transaction(&self.conn)?;
        let mut doomed = Vec::new();
        if let Some(max) = self.retention.max_messages {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT r.n, r.ns, r.room, r.seq, l.sender, l.cid FROM room_index r JOIN log l ON l.n = r.n WHERE r.ns = ?1 AND r.room = ?2 AND r.seq <= ?3 ORDER BY r.seq LIMIT ?4",
                )
                .map_err(backend)?;
            for key in touched {
                let last = self.rooms.seqs.get(&key).copied().unwrap_or(0);
                if last <= max {
                    continue;
                }
                let before = doomed.len();
                doomed.extend(
                    stmt.query_map(
                        params![key.0, key.1, (last - max) as i64, RETENTION_CHUNK as i64],
                        LogRow::read,
                    )
                    .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
                    .map_err(backend)?,
                );
                if doomed.len() - before == RETENTION_CHUNK {
                    more = true;
                    self.rooms.touched.insert(key);
                }
            }
        }
        if let Some(age) = self.retention.max_age {
            // The log is in arrival order: its oldest messages are first.
            let cutoff = now_ms() - age.as_millis() as i64;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT n, ns, room, seq, sender, cid, ts FROM log WHERE n <= ?1 ORDER BY n LIMIT ?2",
                )
                .map_err(backend)?;
            let oldest = stmt
                .query_map(params![self.indexed_upto, RETENTION_CHUNK as i64], |r| {
                    Ok((LogRow::read(r)?, r.get::<_, i64>(6)?))
                })
                .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
                .map_err(backend)?;
            let before = doomed.len();
            doomed.extend(
                oldest
                    .into_iter()
                    .take_while(|(_, ts)| *ts < cutoff)
                    .map(|(row, _)| row),
            );
            more |= doomed.len() - before == RETENTION_CHUNK;
        }
        for row in &doomed {
            row.delete(&tx).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(more)
    }
}

/// A logged message's keys, for removing it from the log and the indexes.
struct LogRow {
    n: i64,
    ns: String,
    room: String,
    seq: i64,
    sender: String,
    cid: Option<String>,
}

impl LogRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogRow> {
        Ok(LogRow {
            n: r.get(0)?,
            ns: r.get(1)?,
            room: r.get(2)?,
            seq: r.get(3)?,
            sender: r.get(4)?,
            cid: r.get(5)?,
        })
    }

    fn delete(&self, tx: &Connection) -> rusqlite::Result<()> {
        tx.prepare_cached("DELETE FROM log WHERE n = ?1")?
            .execute([self.n])?;
        tx.prepare_cached("DELETE FROM room_index WHERE ns = ?1 AND room = ?2 AND seq = ?3")?
            .execute(params![self.ns, self.room, self.seq])?;
        if let Some(cid) = &self.cid {
            tx.prepare_cached(
                "DELETE FROM cids WHERE ns = ?1 AND room = ?2 AND sender = ?3 AND cid = ?4",
            )?
            .execute(params![self.ns, self.room, self.sender, cid])?;
        }
        Ok(())
    }
}

impl Effect {
    /// A command that never reached its write phase (an earlier one failed the batch).
    fn from_unapplied(command: Command) -> Effect {
        match command {
            Command::Append {
                message,
                publish,
                reply,
            } => Effect::Appended {
                appended: Appended {
                    message: ChatMessage {
                        id: String::new(),
                        room: message.room,
                        seq: 0,
                        from: message.from,
                        text: String::new(),
                        ts: 0,
                        action: false,
                    },
                    duplicate: true,
                },
                publish,
                reply,
            },
            Command::Attach {
                ns,
                room,
                after,
                limit,
                attach,
                reply,
            } => Effect::Attach {
                ns,
                room,
                after,
                upto: 0,
                limit,
                attach,
                reply,
            },
            Command::SetTopic { reply, .. }
            | Command::QueueDm { reply, .. }
            | Command::RemoveDm { reply, .. } => Effect::Done { reply },
            Command::CreateIdentity { reply, .. } => Effect::Created {
                created: false,
                reply,
            },
        }
    }
}
