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
//! Retention (count and age per room) runs on the writer between batches, in bounded chunks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::events::{ChatMessage, DirectMessage};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use tracing::{debug, error, info};

use super::store::{
    Appended, Attach, Identity, NewMessage, Publish, Store, StoreError, StoreFuture, catchup,
    new_id, now_ms,
};
use crate::engine::lock;

/// Most commands applied in one transaction.
pub const MAX_BATCH: usize = 4096;
/// Rows removed per retention chunk, so a big clean-up never holds the writer for long.
const RETENTION_CHUNK: usize = 2000;
const RETENTION_EVERY: Duration = Duration::from_secs(1);

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
}

enum Command {
    Append {
        message: NewMessage,
        publish: Publish,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
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
    stats: Arc<Mutex<WriterStats>>,
    path: PathBuf,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    ns TEXT NOT NULL, room TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0, topic TEXT,
    PRIMARY KEY (ns, room)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    ns TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL,
    id TEXT NOT NULL, sender TEXT NOT NULL, text TEXT NOT NULL,
    ts INTEGER NOT NULL, action INTEGER NOT NULL DEFAULT 0, cid TEXT,
    PRIMARY KEY (ns, room, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_cid ON messages (ns, room, sender, cid) WHERE cid IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
CREATE TABLE IF NOT EXISTS identities (
    nick_key TEXT PRIMARY KEY, nick TEXT NOT NULL, password_hash TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS queued_dms (
    n INTEGER PRIMARY KEY AUTOINCREMENT, to_key TEXT NOT NULL, id TEXT NOT NULL,
    sender TEXT NOT NULL, recipient TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL,
    action INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS queued_dms_to ON queued_dms (to_key, n);
";

/// Page cache of each connection (the writer's and the reader's: up to twice this in all):
/// the writer touches the newest page of every active room in three B-trees; SQLite's default
/// 2 MiB made it re-read them from the OS on every batch.
const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages after which a commit checkpoints (about 40 MiB at 4 KiB pages, the WAL file's
/// usual largest size). A checkpoint copies each distinct page once, so a larger WAL means
/// fewer copies of the same hot pages (1,000, SQLite's default, cost a third of the acked
/// messages per second in `durable_bench`).
const WAL_CHECKPOINT_PAGES: i64 = 10_000;
/// If a long read held a checkpoint back and the WAL grew past this, it is truncated back to
/// this size once a checkpoint resets it.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

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
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and starts the writer thread.
    pub fn open(path: &Path, retention: Retention) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let writer = open(path)?;
        writer.execute_batch(SCHEMA).map_err(backend)?;
        let reader = open(path)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                Writer {
                    conn: writer,
                    rooms: RoomCache::default(),
                    retention,
                    stats: thread_stats,
                }
                .run(rx)
            })
            .map_err(backend)?;
        info!(path = %path.display(), "store opened");
        Ok(SqliteStore {
            tx,
            reader: Arc::new(Mutex::new(reader)),
            stats,
            path: path.to_owned(),
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

const MESSAGE_COLUMNS: &str = "room, seq, id, sender, text, ts, action";

/// Messages with `after < seq <= upto`, the newest `limit`, oldest first.
fn read_range(
    conn: &Connection,
    ns: &str,
    room: &str,
    after: u64,
    upto: u64,
    limit: usize,
) -> rusqlite::Result<Vec<ChatMessage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE ns = ?1 AND room = ?2 AND seq > ?3 AND seq <= ?4 ORDER BY seq DESC LIMIT ?5"
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

impl Store for SqliteStore {
    fn append(&self, message: NewMessage, publish: Publish) -> StoreFuture<'_, Appended> {
        self.send(|reply| Command::Append {
            message,
            publish,
            reply,
        })
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
        self.read(move |c| {
            read_range(
                c,
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
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
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
            Effect::Appended { reply, .. } => drop(reply.send(Err(err()))),
            Effect::Attach { reply, .. } | Effect::Done { reply } => drop(reply.send(Err(err()))),
            Effect::Created { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

struct Writer {
    conn: Connection,
    rooms: RoomCache,
    retention: Retention,
    stats: Arc<Mutex<WriterStats>>,
}

/// What the writer remembers between batches.
#[derive(Default)]
struct RoomCache {
    /// Last seq per room (namespace, room), loaded on first use.
    seqs: HashMap<(String, String), u64>,
    /// Rooms appended to since the last retention pass.
    touched: HashSet<(String, String)>,
    /// Rooms appended to in the current batch: their last_seq is written before the commit.
    dirty: HashSet<(String, String)>,
}

impl RoomCache {
    /// Writes the last seq of every room appended to in this batch.
    fn flush_seqs(&mut self, tx: &Connection) -> Result<(), StoreError> {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO rooms (ns, room, last_seq) VALUES (?1, ?2, ?3) ON CONFLICT (ns, room) DO UPDATE SET last_seq = excluded.last_seq",
            )
            .map_err(backend)?;
        for key in self.dirty.drain() {
            let seq = self.seqs.get(&key).copied().unwrap_or(0);
            stmt.execute(params![key.0, key.1, seq as i64])
                .map_err(backend)?;
        }
        Ok(())
    }

    fn last_seq(&mut self, tx: &Connection, ns: &str, room: &str) -> Result<u64, StoreError> {
        let key = (ns.to_owned(), room.to_owned());
        if let Some(seq) = self.seqs.get(&key) {
            return Ok(*seq);
        }
        let seq: i64 = tx
            .query_row(
                "SELECT last_seq FROM rooms WHERE ns = ?1 AND room = ?2",
                params![ns, room],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?
            .unwrap_or(0);
        self.seqs.insert(key, seq as u64);
        Ok(seq as u64)
    }

    /// The write phase of one command (inside the batch's transaction).
    fn write(&mut self, tx: &Connection, command: Command) -> Result<Effect, StoreError> {
        Ok(match command {
            Command::Append {
                message: m,
                publish,
                reply,
            } => {
                let seq = self.last_seq(tx, &m.namespace, &m.room)? + 1;
                let message = ChatMessage {
                    id: new_id(),
                    room: m.room.clone(),
                    seq,
                    from: m.from,
                    text: m.text,
                    ts: now_ms(),
                    action: m.action,
                };
                // A message with a client id is inserted unless that sender already stored the
                // same id in the room (a re-send): one index search instead of a lookup first.
                let sql = if m.cid.is_some() {
                    "INSERT INTO messages (ns, room, seq, id, sender, text, ts, action, cid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (ns, room, sender, cid) WHERE cid IS NOT NULL DO NOTHING"
                } else {
                    "INSERT INTO messages (ns, room, seq, id, sender, text, ts, action, cid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                };
                let inserted = tx
                    .prepare_cached(sql)
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
                if inserted == 0 {
                    let first = tx
                        .prepare_cached(&format!(
                            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE ns = ?1 AND room = ?2 AND sender = ?3 AND cid = ?4"
                        ))
                        .and_then(|mut stmt| {
                            stmt.query_row(
                                params![m.namespace, message.room, message.from, m.cid],
                                row_message,
                            )
                        })
                        .map_err(backend)?;
                    return Ok(Effect::Appended {
                        appended: Appended {
                            message: first,
                            duplicate: true,
                        },
                        publish,
                        reply,
                    });
                }
                self.seqs
                    .insert((m.namespace.clone(), message.room.clone()), seq);
                // The room's last_seq is written once per batch (see `flush_seqs`).
                self.dirty
                    .insert((m.namespace.clone(), message.room.clone()));
                self.touched.insert((m.namespace, message.room.clone()));
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
        loop {
            let first = match rx.recv_timeout(RETENTION_EVERY) {
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
            if last_retention.elapsed() >= RETENTION_EVERY {
                if let Err(e) = self.enforce_retention() {
                    error!(error = %e, "retention pass failed");
                }
                last_retention = Instant::now();
            }
        }
        debug!("store writer stopped");
    }

    fn apply(&mut self, batch: Vec<Command>) {
        let size = batch.len() as u64;
        let mut effects = Vec::with_capacity(batch.len());
        let mut pending: Vec<Command> = batch;
        let started = Instant::now();
        let mut written = started;
        let result = (|| -> Result<(), StoreError> {
            let tx = self.conn.unchecked_transaction().map_err(backend)?;
            for command in pending.drain(..) {
                effects.push(self.rooms.write(&tx, command)?);
            }
            self.rooms.flush_seqs(&tx)?;
            written = Instant::now();
            tx.commit().map_err(backend)
        })();
        match result {
            Ok(()) => {
                let committed = Instant::now();
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
                // The transaction rolled back: forget cached sequence numbers.
                self.rooms.seqs.clear();
                self.rooms.dirty.clear();
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
                let _ = reply.send(Ok(appended));
            }
            Effect::Attach {
                ns,
                room,
                after,
                upto,
                limit,
                attach,
                reply,
            } => match read_range(&self.conn, &ns, &room, after.unwrap_or(0), upto, limit) {
                Ok(found) => {
                    attach(catchup(found, after, upto));
                    let _ = reply.send(Ok(()));
                }
                Err(e) => drop(reply.send(Err(backend(e)))),
            },
            Effect::Done { reply } => drop(reply.send(Ok(()))),
            Effect::Created { created, reply } => drop(reply.send(Ok(created))),
        }
    }

    /// Removes, in bounded chunks, messages beyond the per-room count and older than the age.
    fn enforce_retention(&mut self) -> Result<(), StoreError> {
        let touched: Vec<_> = self.rooms.touched.drain().collect();
        if let Some(max) = self.retention.max_messages {
            for (ns, room) in touched {
                let Some(last) = self.rooms.seqs.get(&(ns.clone(), room.clone())).copied() else {
                    continue;
                };
                if last > max {
                    self.conn
                        .execute(
                            "DELETE FROM messages WHERE ns = ?1 AND room = ?2 AND seq <= ?3",
                            params![ns, room, (last - max) as i64],
                        )
                        .map_err(backend)?;
                }
            }
        }
        if let Some(age) = self.retention.max_age {
            let cutoff = now_ms() - age.as_millis() as i64;
            self.conn
                .execute(
                    "DELETE FROM messages WHERE (ns, room, seq) IN (SELECT ns, room, seq FROM messages WHERE ts < ?1 LIMIT ?2)",
                    params![cutoff, RETENTION_CHUNK as i64],
                )
                .map_err(backend)?;
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
