//! The durable store: one SQLite file (rusqlite, bundled SQLite: nothing to install), WAL
//! mode, `synchronous = FULL`.
//!
//! Every write goes to one writer thread through a channel. The thread takes everything
//! queued (up to [`MAX_BATCH`] commands), applies it in one transaction, commits (group
//! commit: one fsync for the whole batch), and only then runs each command's effects in
//! order: an append publishes its message and answers its sender, an attach reads what the
//! socket missed (up to the room's `seq` at its place in the batch) and joins it. That
//! thread is the per-room ordering section of the `RoomLog` contract. Reads that need no
//! ordering (history, topics, identities, queued DMs) use a second connection.
//!
//! Messages are appended to the `log` table (in arrival order, no secondary index: a commit
//! writes a few pages however many rooms its batch touches) and acknowledged after that
//! commit. Between batches the writer indexes the log by room and seq (`room_index`) and by
//! client id (`cids`), both keyed by the room's integer id (`rooms.id`, given at the room's
//! first indexing; the writer keeps it in memory with the room's last seq), from the copy of
//! the unindexed messages it holds in memory rather than from the log, in chunks of up
//! to [`IndexLimits::rows`] messages, or once the oldest unindexed one is
//! [`IndexLimits::age`] old, one transaction per chunk (`meta.indexed_upto` says how far); at
//! open it indexes whatever a crash left (after a cheap check that the indexes agree with the
//! log, rebuilding them from the log when they do not: `recover`).
//! Until then reads find the unindexed messages in memory (`super::unindexed`).
//! A store holds an advisory lock on `<db>.lock` for its life: a second one on the same file
//! is refused ([`StoreError::InUse`]).
//! Retention (count and age per room) runs on the writer between batches, in bounded chunks.
//!
//! The indexing pass also fills the full-text index (`log_fts`, FTS5) that `search` reads:
//! never in an append's commit, so acknowledgements cost what they did without it.
//!
//! Modules: `schema` (tables, connection settings, upgrades), `lockfile` (the lock file),
//! `writer` (the writer thread, its commands and their effects), `checkpoint` (the WAL's
//! checkpoints, on a thread of their own), `index` (indexing the log,
//! checking and rebuilding the indexes at open), `retention`, `read` (messages by room and
//! seq), `search` (full-text search), `unindexed` (the log's newest messages in memory).
//! Moderation (operators, bans and
//! mutes) is written through the writer's generic `Command::Write`, a deleted message by its
//! own command (it may still be unindexed). A new command is a
//! `writer::Command` variant, its write in `RoomCache::write` and its effect in
//! `Writer::finish`.

mod checkpoint;
mod index;
mod lockfile;
mod read;
mod retention;
mod schema;
mod search;
mod unindexed;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_protocol::events::{ChatMessage, DirectMessage};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use tracing::info;

pub use self::lockfile::lock_path;
use self::read::read_messages;
pub use self::schema::SCHEMA_VERSION;
use self::unindexed::Unindexed;
use self::writer::{Command, RoomCache, UNINDEXED_CHUNKS_MAX, Writer};
use super::store::{
    AppendDone, Attach, Identity, NewMessage, Publish, Restriction, RestrictionKind, RoomLog,
    SearchPage, SearchQuery, Store, StoreError, StoreFuture,
};
use crate::engine::lock;

/// How long messages are kept, per room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many messages per room.
    pub max_messages: Option<u64>,
    /// Remove messages older than this.
    pub max_age: Option<Duration>,
}

/// Most commands applied in one transaction.
pub const MAX_BATCH: usize = 4096;

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
    /// Rooms whose last seq the writer keeps in memory, as of the last commit.
    pub cached_rooms: u64,
}

pub struct SqliteStore {
    tx: std::sync::mpsc::Sender<Command>,
    reader: Arc<Mutex<Connection>>,
    /// Searches' own connection: a long one never holds up the reader's short reads.
    searcher: Arc<Mutex<Connection>>,
    unindexed: Arc<Mutex<Unindexed>>,
    stats: Arc<Mutex<WriterStats>>,
    path: PathBuf,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The lock on `<db>.lock` ([`lockfile::lock_database`]), held for the store's life; dropped last,
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

/// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`), waiting out the busy
/// timeout if another process holds it. A deferred one reads first and must then upgrade to
/// a write, which SQLite refuses at once, without waiting, when another writer got in between.
fn write_transaction(conn: &Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)
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
        let lock = lockfile::lock_database(path)?;
        let mut writer = schema::open(path)?;
        schema::migrate(&writer, path)?;
        let (recovered, rebuilt) = index::recover(&writer)?;
        let checkpointer = checkpoint::Checkpointer::start(path, &mut writer)?;
        let reader = schema::open(path)?;
        let searcher = schema::open(path)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stats = Arc::new(Mutex::new(WriterStats {
            rebuilds: rebuilt as u64,
            ..WriterStats::default()
        }));
        let unindexed = Arc::new(Mutex::new(Unindexed::default()));
        let writer = Writer {
            conn: writer,
            _checkpointer: checkpointer,
            rooms: RoomCache {
                unindexed: unindexed.clone(),
                max_unindexed: limits.rows.saturating_mul(UNINDEXED_CHUNKS_MAX),
                ..RoomCache::default()
            },
            retention,
            limits,
            indexed_upto: recovered.1,
            next_index: None,
            recent_batch: 0.0,
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
            searcher: Arc::new(Mutex::new(searcher)),
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

    /// Runs `write` in the writer's next transaction; resolves with the rows it changed once
    /// committed.
    fn write(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<usize> + Send + 'static,
    ) -> StoreFuture<'_, usize> {
        self.send(|reply| Command::Write {
            write: Box::new(write),
            reply,
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

impl RoomLog for SqliteStore {
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
}

impl Store for SqliteStore {
    /// While the writer thread runs (it stops only when the store is dropped, or on a panic).
    fn available(&self) -> bool {
        self.writer.as_ref().is_some_and(|w| !w.is_finished())
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

    fn operators(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<String>> {
        let (ns, room) = (namespace.to_owned(), room.to_owned());
        self.read(move |c| {
            c.prepare_cached("SELECT nick_key FROM operators WHERE ns = ?1 AND room = ?2")?
                .query_map(params![ns, room], |r| r.get(0))?
                .collect()
        })
    }

    fn set_operator(
        &self,
        namespace: &str,
        room: &str,
        nick_key: &str,
        operator: bool,
    ) -> StoreFuture<'_, ()> {
        let (ns, room, key) = (namespace.to_owned(), room.to_owned(), nick_key.to_owned());
        let wrote = self.write(move |c| {
            let sql = if operator {
                "INSERT INTO operators (ns, room, nick_key) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM operators WHERE ns = ?1 AND room = ?2 AND nick_key = ?3"
            };
            c.execute(sql, params![ns, room, key])
        });
        Box::pin(async move { wrote.await.map(drop) })
    }

    fn restrictions(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<Restriction>> {
        let (ns, room) = (namespace.to_owned(), room.to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, target, by, reason, until FROM restrictions WHERE ns = ?1 AND room = ?2 ORDER BY created",
            )?;
            let rows = stmt.query_map(params![ns, room], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Restriction {
                        kind: RestrictionKind::Ban,
                        target: r.get(1)?,
                        by: r.get(2)?,
                        reason: r.get(3)?,
                        until: r.get(4)?,
                    },
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (kind, restriction) = row?;
                // A kind a newer build wrote is not this build's to enforce.
                if let Some(kind) = RestrictionKind::parse(&kind) {
                    out.push(Restriction {
                        kind,
                        ..restriction
                    });
                }
            }
            Ok(out)
        })
    }

    fn add_restriction(&self, namespace: &str, room: &str, r: Restriction) -> StoreFuture<'_, ()> {
        let (ns, room) = (namespace.to_owned(), room.to_owned());
        let wrote = self.write(move |c| {
            c.execute(
                "INSERT INTO restrictions (ns, room, kind, target, by, reason, until, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (ns, room, kind, target) DO UPDATE SET by = excluded.by, reason = excluded.reason, until = excluded.until, created = excluded.created",
                params![ns, room, r.kind.as_str(), r.target, r.by, r.reason, r.until, super::store::now_ms()],
            )
        });
        Box::pin(async move { wrote.await.map(drop) })
    }

    fn remove_restriction(
        &self,
        namespace: &str,
        room: &str,
        kind: RestrictionKind,
        target: &str,
    ) -> StoreFuture<'_, bool> {
        let (ns, room, target) = (namespace.to_owned(), room.to_owned(), target.to_owned());
        let wrote = self.write(move |c| {
            c.execute(
                "DELETE FROM restrictions WHERE ns = ?1 AND room = ?2 AND kind = ?3 AND target = ?4",
                params![ns, room, kind.as_str(), target],
            )
        });
        Box::pin(async move { wrote.await.map(|n| n > 0) })
    }

    fn delete_message(
        &self,
        namespace: &str,
        room: &str,
        seq: u64,
    ) -> StoreFuture<'_, Option<ChatMessage>> {
        let (ns, room) = (namespace.to_owned(), room.to_owned());
        self.send(|reply| Command::DeleteMessage {
            ns,
            room,
            seq,
            reply,
        })
    }

    fn delete_identity(&self, nick_key: &str) -> StoreFuture<'_, bool> {
        let key = nick_key.to_owned();
        let wrote = self.write(move |c| {
            let n = c.execute("DELETE FROM identities WHERE nick_key = ?1", [&key])?;
            c.execute("DELETE FROM queued_dms WHERE to_key = ?1", [&key])?;
            c.execute("DELETE FROM operators WHERE nick_key = ?1", [&key])?;
            Ok(n)
        });
        Box::pin(async move { wrote.await.map(|n| n > 0) })
    }

    fn set_password(&self, nick_key: &str, password_hash: String) -> StoreFuture<'_, bool> {
        let key = nick_key.to_owned();
        let wrote = self.write(move |c| {
            c.execute(
                "UPDATE identities SET password_hash = ?2 WHERE nick_key = ?1",
                params![key, password_hash],
            )
        });
        Box::pin(async move { wrote.await.map(|n| n > 0) })
    }
    fn search(&self, query: SearchQuery) -> StoreFuture<'_, SearchPage> {
        let (searcher, unindexed) = (self.searcher.clone(), self.unindexed.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                search::search(&lock(&searcher), &unindexed, &query)
            })
            .await
            .map_err(backend)?
        })
    }
}
