//! The writer thread: batches of commands in one transaction each (group commit), their
//! effects after the commit in order (the per-room ordering section), and indexing between
//! batches.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::events::{ChatMessage, DirectMessage};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use tracing::{debug, error};

use super::super::store::{
    AppendDone, Appended, Attach, Identity, NewMessage, Publish, StoreError, catchup, new_id,
    now_ms,
};
use super::index::{LogRow, full_sync, index_chunk_unsynced};
use super::read::{MESSAGE_COLUMNS, read_messages, row_message};
use super::unindexed::{CidIndex, CidRef, Entry, Map, RoomKey, RoomRef, Set, Unindexed};
use super::{IndexLimits, MAX_BATCH, Retention, WriterStats, backend, write_transaction};
use crate::engine::lock;

pub(super) const RETENTION_EVERY: Duration = Duration::from_secs(1);

/// Appends are refused while this many chunks ([`IndexLimits::rows`]) wait for indexing.
pub(super) const UNINDEXED_CHUNKS_MAX: usize = 16;

/// After a failed indexing, the next attempt waits this long.
const INDEX_RETRY: Duration = Duration::from_secs(1);

/// An indexing pass holds the appends back for about as long as this many batches of the
/// recent size take to write ([`Writer::pass_rows`]).
const PASS_BATCHES: f64 = 12.0;

/// An indexing pass takes at least this many messages (unless [`IndexLimits::rows`] is
/// lower): each pass has a fixed cost (its transaction, the full-text index's new segment).
const PASS_ROWS_MIN: usize = 2048;

pub(super) enum Command {
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
    /// A write with no effect on the writer's state (moderation, identity changes): runs in
    /// the batch's transaction; its result (rows changed) is answered after the commit.
    Write {
        write: WriteFn,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// Removes one message (indexed or not) and keeps a tombstone of its seq. The batch
    /// that holds one indexes the log first (`Writer::apply`), so the message is usually
    /// indexed by then.
    DeleteMessage {
        ns: String,
        room: String,
        seq: u64,
        reply: oneshot::Sender<Result<Option<ChatMessage>, StoreError>>,
    },
}

/// A [`Command::Write`]'s statements.
pub(super) type WriteFn = Box<dyn FnOnce(&Connection) -> rusqlite::Result<usize> + Send>;

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
    Wrote {
        changed: usize,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    Deleted {
        /// The message, and its key if it was unindexed (forgotten from memory now).
        deleted: Option<(ChatMessage, Option<(String, u64)>)>,
        reply: oneshot::Sender<Result<Option<ChatMessage>, StoreError>>,
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
            Effect::Wrote { reply, .. } => drop(reply.send(Err(err()))),
            Effect::Deleted { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    /// The thread that checkpoints `conn`'s WAL; stopped and waited for when the writer ends.
    pub(super) _checkpointer: super::checkpoint::Checkpointer,
    pub(super) rooms: RoomCache,
    pub(super) retention: Retention,
    pub(super) limits: IndexLimits,
    /// The newest rowid of the log in the indexes.
    pub(super) indexed_upto: i64,
    /// After a failed indexing: not before then.
    pub(super) next_index: Option<Instant>,
    /// Appends per committed batch, a moving average (1/8 per batch).
    pub(super) recent_batch: f64,
    pub(super) stats: Arc<Mutex<WriterStats>>,
}

/// The two statements every append runs, prepared once per batch: taking a statement out
/// of rusqlite's cache and putting it back, twice per message, cost about a tenth of what
/// the appends' own statements do (BENCHMARKS.md, "Integer room ids").
pub(super) struct AppendStatements<'c> {
    /// Adds a message to the log.
    insert: rusqlite::CachedStatement<'c>,
    /// The rowid of a client id's message in `cids`.
    by_cid: rusqlite::CachedStatement<'c>,
}

impl<'c> AppendStatements<'c> {
    fn new(tx: &'c Connection) -> Result<AppendStatements<'c>, StoreError> {
        Ok(AppendStatements {
            insert: tx
                .prepare_cached(
                    "INSERT INTO log (ns, room, seq, id, sender, text, ts, action, cid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(backend)?,
            by_cid: tx
                .prepare_cached("SELECT n FROM cids WHERE room_id = ?1 AND sender = ?2 AND cid = ?3")
                .map_err(backend)?,
        })
    }
}

/// What the writer knows of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Room {
    /// The room's last seq.
    pub(super) last: u64,
    /// Its `rooms.id`, the key of its `room_index` and `cids` entries; `None` until its first
    /// indexing gives it one (or a topic or a deletion does): until then none of its client
    /// ids is in `cids`.
    pub(super) id: Option<i64>,
}

/// What the writer remembers between batches.
#[derive(Default)]
pub(super) struct RoomCache {
    /// Each room (namespace, room) with messages, loaded on first use; only rooms with
    /// messages (an attach to an empty room, which anyone can name, leaves nothing behind),
    /// so it holds no more rooms than the store does.
    pub(super) seqs: Map<RoomKey, Room>,
    /// Rooms appended to since the last retention pass.
    pub(super) touched: Set<RoomKey>,
    /// Committed messages not yet indexed (shared with the readers).
    pub(super) unindexed: Arc<Mutex<Unindexed>>,
    /// This batch's messages: added to `unmoved` once it commits.
    pub(super) staged: Vec<Entry>,
    /// This batch's client ids: index in `staged`.
    pub(super) staged_cids: CidIndex<usize>,
    /// Appends are refused while this many messages wait for indexing (it keeps failing):
    /// memory stays bounded, and so does the work of the next open.
    pub(super) max_unindexed: usize,
}

impl RoomCache {
    fn last_seq(&mut self, tx: &Connection, ns: &str, room: &str) -> Result<u64, StoreError> {
        self.room(tx, ns, room).map(|r| r.last)
    }

    /// The room's last seq and id: from memory, or read (and kept, if it has messages).
    fn room(&mut self, tx: &Connection, ns: &str, room: &str) -> Result<Room, StoreError> {
        let key = RoomRef(ns, room);
        if let Some(found) = self.seqs.get(&key) {
            return Ok(*found);
        }
        let (id, moved) = room_row(tx, ns, room)?;
        let found = Room {
            last: lock(&self.unindexed)
                .last_seq(ns, room)
                .unwrap_or(0)
                .max(moved),
            id,
        };
        if found.last > 0 {
            self.seqs.insert(key.to_key(), found);
        }
        Ok(found)
    }

    /// The room's id: from memory, else read (a room gets one at its first indexing, after
    /// the writer first saw it: so an id not known yet is read again, not taken as none).
    fn room_id(
        &mut self,
        tx: &Connection,
        ns: &str,
        room: &str,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(Room { id: Some(id), .. }) = self.seqs.get(&RoomRef(ns, room)) {
            return Ok(Some(*id));
        }
        let (id, _) = room_row(tx, ns, room)?;
        if id.is_some()
            && let Some(cached) = self.seqs.get_mut(&RoomRef(ns, room))
        {
            cached.id = id;
        }
        Ok(id)
    }

    /// The message this sender already stored with this client id in this room: in this
    /// batch, not yet indexed, or indexed (looked up only if the room has an id: a room
    /// never indexed has nothing in `cids`).
    fn by_cid(
        &mut self,
        tx: &Connection,
        statements: &mut AppendStatements<'_>,
        key: &CidRef<'_>,
    ) -> Result<Option<ChatMessage>, StoreError> {
        if let Some(i) = self.staged_cids.find(key, |i| self.staged[i].is(key)) {
            return Ok(Some(self.staged[i].message.clone()));
        }
        if let Some(found) = lock(&self.unindexed).by_cid(key) {
            return Ok(Some(found));
        }
        let Some(room_id) = self.room_id(tx, key.0, key.1)? else {
            return Ok(None);
        };
        let n: Option<i64> = statements
            .by_cid
            .query_row(params![room_id, key.2, key.3], |r| r.get(0))
            .optional()
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

    /// An append's write: refused while indexing fails, the first message when its client
    /// id was stored before, else a new message with the room's next seq, staged for the
    /// indexing.
    fn write_append(
        &mut self,
        tx: &Connection,
        statements: &mut AppendStatements<'_>,
        m: NewMessage,
        publish: Publish,
        reply: AppendDone,
    ) -> Result<Effect, StoreError> {
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
            && let Some(first) = self.by_cid(tx, statements, key)?
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
        statements
            .insert
            .execute(params![
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
            .map_err(backend)?;
        let room = RoomRef(&m.namespace, &message.room);
        match self.seqs.get_mut(&room) {
            Some(known) => known.last = seq,
            None => drop(self.seqs.insert(
                room.to_key(),
                Room {
                    last: seq,
                    id: None,
                },
            )),
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
        Ok(Effect::Appended {
            appended: Appended {
                message,
                duplicate: false,
            },
            publish,
            reply,
        })
    }

    /// The write phase of one command (inside the batch's transaction).
    fn write(
        &mut self,
        tx: &Connection,
        statements: &mut AppendStatements<'_>,
        command: Command,
    ) -> Result<Effect, StoreError> {
        Ok(match command {
            Command::Append {
                message,
                publish,
                reply,
            } => self.write_append(tx, statements, message, publish, reply)?,
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
            Command::Write { write, reply } => Effect::Wrote {
                changed: write(tx).map_err(backend)?,
                reply,
            },
            Command::DeleteMessage {
                ns,
                room,
                seq,
                reply,
            } => Effect::Deleted {
                deleted: self.delete_message(tx, &ns, &room, seq)?,
                reply,
            },
        })
    }

    /// A [`Command::DeleteMessage`]'s write: the message out of the log (and its indexes,
    /// if indexed), a tombstone of its seq, and the room's `last_seq` kept at least there
    /// (an unindexed message's seq is not in `rooms` yet).
    #[allow(clippy::type_complexity)]
    fn delete_message(
        &mut self,
        tx: &Connection,
        ns: &str,
        room: &str,
        seq: u64,
    ) -> Result<Option<(ChatMessage, Option<(String, u64)>)>, StoreError> {
        if seq == 0 || seq > i64::MAX as u64 {
            return Ok(None);
        }
        let indexed = tx
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS}, l.n, l.cid FROM room_index r JOIN log l ON l.n = r.n WHERE r.room_id = (SELECT id FROM rooms WHERE ns = ?1 AND room = ?2) AND r.seq = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![ns, room, seq as i64], |r| {
                    Ok((row_message(r)?, r.get::<_, i64>(7)?, r.get::<_, Option<String>>(8)?))
                })
                .optional()
            })
            .map_err(backend)?;
        let (message, unindexed) = match indexed {
            Some((message, n, cid)) => {
                let row = LogRow {
                    n,
                    ns: ns.to_owned(),
                    room: room.to_owned(),
                    seq: seq as i64,
                    sender: message.from.clone(),
                    cid,
                };
                row.delete(tx).map_err(backend)?;
                (message, None)
            }
            None => {
                let Some((n, message)) = lock(&self.unindexed).find(ns, room, seq) else {
                    return Ok(None);
                };
                tx.prepare_cached("DELETE FROM log WHERE n = ?1")
                    .and_then(|mut stmt| stmt.execute([n]))
                    .map_err(backend)?;
                (message, Some((ns.to_owned(), seq)))
            }
        };
        tx.prepare_cached(
            "INSERT INTO deleted_messages (ns, room, seq, id, deleted) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut stmt| stmt.execute(params![ns, room, seq as i64, message.id, now_ms()]))
        .map_err(backend)?;
        tx.prepare_cached(
            "INSERT INTO rooms (ns, room, last_seq) VALUES (?1, ?2, ?3) ON CONFLICT (ns, room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
        )
        .and_then(|mut stmt| stmt.execute(params![ns, room, seq as i64]))
        .map_err(backend)?;
        Ok(Some((message, unindexed)))
    }
}

impl Writer {
    pub(super) fn run(mut self, rx: std::sync::mpsc::Receiver<Command>) {
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

    /// How many messages an indexing pass waits for and takes: [`IndexLimits::rows`] when
    /// the batches are big, fewer when they are small. A pass runs on the writer's thread, so
    /// every append waits for it. When the senders wait for their acks (small batches, the
    /// writer idle between them) a short pass keeps that wait short and costs no throughput;
    /// when the writer is the bottleneck (big batches), a long pass spreads its fixed cost
    /// over more messages. About [`PASS_BATCHES`] batches' worth, within
    /// [`PASS_ROWS_MIN`]..=[`IndexLimits::rows`].
    fn pass_rows(&self) -> usize {
        pass_rows(self.recent_batch, self.limits.rows)
    }

    fn apply(&mut self, batch: Vec<Command>) {
        let size = batch.len() as u64;
        // A deletion finds its message indexed (rare: an admin's action).
        if batch
            .iter()
            .any(|c| matches!(c, Command::DeleteMessage { .. }))
        {
            self.index_due(true);
        }
        let mut effects = Vec::with_capacity(batch.len());
        let mut pending: std::collections::VecDeque<Command> = batch.into();
        let started = Instant::now();
        let mut written = started;
        let result = (|| -> Result<(), StoreError> {
            if self.next_index.is_some() {
                // The last indexing pass failed, perhaps to set `synchronous = FULL` back:
                // no append commits without it.
                full_sync(&self.conn)?;
            }
            let tx = write_transaction(&self.conn)?;
            {
                let mut statements = AppendStatements::new(&tx)?;
                while let Some(command) = pending.pop_front() {
                    effects.push(self.rooms.write(&tx, &mut statements, command)?);
                }
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
                self.recent_batch += (appends as f64 - self.recent_batch) / 8.0;
                if appends > 0 {
                    let metrics = crate::metrics::store();
                    metrics
                        .append_seconds
                        .observe((committed - started).as_secs_f64());
                    metrics.batch_size.observe(appends as f64);
                }
                let mut stats = lock(&self.stats);
                stats.write_time += written - started;
                stats.commit_time += committed - written;
                stats.finish_time += committed.elapsed();
                stats.commits += 1;
                stats.appends += appends;
                stats.largest_batch = stats.largest_batch.max(size);
                stats.cached_rooms = self.rooms.seqs.len() as u64;
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
            Effect::Wrote { changed, reply } => drop(reply.send(Ok(changed))),
            Effect::Deleted { deleted, reply } => {
                let deleted = deleted.map(|(message, unindexed)| {
                    if let Some((ns, seq)) = unindexed {
                        lock(&self.rooms.unindexed).forget(&ns, &message.room, seq);
                    }
                    message
                });
                drop(reply.send(Ok(deleted)));
            }
        }
    }

    /// Indexes the log, a chunk at a time, while the unindexed messages are at the limit (or
    /// the oldest of them at the age limit, or `all` says so).
    pub(super) fn index_due(&mut self, all: bool) {
        loop {
            let started = Instant::now();
            if self.next_index.is_some_and(|at| started < at) {
                return;
            }
            let rows = self.pass_rows();
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
            let chunk = lock(&self.rooms.unindexed).chunk(upto);
            let count = chunk.iter().map(|r| r.rows.len()).sum::<usize>();
            match index_chunk_unsynced(&self.conn, upto, &chunk) {
                Ok(ids) => {
                    lock(&self.rooms.unindexed).remove_upto(upto);
                    for (room, id) in chunk.iter().zip(ids) {
                        if let Some(id) = id
                            && let Some(cached) =
                                self.rooms.seqs.get_mut(&RoomRef(&room.ns, &room.room))
                        {
                            cached.id = Some(id);
                        }
                    }
                    self.indexed_upto = upto;
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
            Command::Write { reply, .. } => Effect::Wrote { changed: 0, reply },
            Command::DeleteMessage { reply, .. } => Effect::Deleted {
                deleted: None,
                reply,
            },
        }
    }
}

/// A room's `rooms` row: its id and its last indexed seq (none and 0 without one).
fn room_row(tx: &Connection, ns: &str, room: &str) -> Result<(Option<i64>, u64), StoreError> {
    let row: Option<(i64, i64)> = tx
        .prepare_cached("SELECT id, last_seq FROM rooms WHERE ns = ?1 AND room = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![ns, room], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(backend)?;
    Ok(row.map_or((None, 0), |(id, last)| (Some(id), last as u64)))
}

/// [`Writer::pass_rows`] for batches of `recent_batch` appends on average and a limit of
/// `limit` rows.
fn pass_rows(recent_batch: f64, limit: usize) -> usize {
    let rows = (recent_batch * PASS_BATCHES) as usize;
    rows.max(PASS_ROWS_MIN).min(limit).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_indexing_pass_is_short_when_batches_are_small_and_long_when_they_are_big() {
        let limit = IndexLimits::default().rows;
        // Senders waiting for each ack: small batches, short passes.
        assert_eq!(pass_rows(0.0, limit), PASS_ROWS_MIN);
        assert_eq!(pass_rows(80.0, limit), PASS_ROWS_MIN);
        // In between: about PASS_BATCHES batches' worth.
        assert_eq!(pass_rows(400.0, limit), 4800);
        // A saturated writer: the limit.
        assert_eq!(pass_rows(700.0, limit), limit);
        // A limit below the minimum (tests, benchmarks) is kept.
        assert_eq!(pass_rows(700.0, 4), 4);
        assert_eq!(pass_rows(0.0, 0), 1);
    }

    #[test]
    fn an_indexing_pass_leaves_the_appends_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let conn = super::super::schema::open(&path).unwrap();
        super::super::schema::migrate(&conn, &path).unwrap();
        conn.execute(
            "INSERT INTO log (ns, room, seq, id, sender, text, ts, action) VALUES ('/', 'r', 1, 'a', 'ann', 'hi', 0, 0)",
            [],
        )
        .unwrap();
        let synchronous = |c: &Connection| -> i64 {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(synchronous(&conn), 2, "FULL before");
        let chunk = [super::super::unindexed::ChunkRoom {
            ns: "/".into(),
            room: "r".into(),
            rows: vec![super::super::unindexed::ChunkRow {
                n: 1,
                seq: 1,
                cid: None,
            }],
        }];
        let ids = index_chunk_unsynced(&conn, 1, &chunk).unwrap();
        assert_eq!(ids.len(), 1);
        assert!(ids[0].is_some());
        let indexed: i64 = conn
            .query_row("SELECT count(*) FROM room_index", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexed, 1);
        assert_eq!(synchronous(&conn), 2, "FULL again after the pass");
    }

    #[test]
    fn a_pass_that_committed_though_it_reported_an_error_is_not_written_twice() {
        use super::super::unindexed::{ChunkRoom, ChunkRow};
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::schema::open(&dir.path().join("chat.db")).unwrap();
        super::super::schema::migrate(&conn, &dir.path().join("chat.db")).unwrap();
        for (n, cid) in [(1, "c1"), (2, "c2"), (3, "c3")] {
            conn.execute(
                "INSERT INTO log (ns, room, seq, id, sender, text, ts, action, cid) VALUES ('/', 'r', ?1, 'id', 'ann', 'hi', 0, 0, ?2)",
                params![n, cid],
            )
            .unwrap();
        }
        let chunk = |upto: i64| {
            [ChunkRoom {
                ns: "/".into(),
                room: "r".into(),
                rows: (1..=upto)
                    .map(|n| ChunkRow {
                        n,
                        seq: n as u64,
                        cid: Some(("ann".into(), format!("c{n}"))),
                    })
                    .collect(),
            }]
        };
        let counts = || -> (i64, i64, i64, i64) {
            conn.query_row(
                "SELECT (SELECT count(*) FROM room_index), (SELECT count(*) FROM cids), (SELECT count(*) FROM log_fts_docsize), (SELECT value FROM meta WHERE key = 'indexed_upto')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
        };
        let first = index_chunk_unsynced(&conn, 2, &chunk(2)).unwrap();
        assert_eq!(counts(), (2, 2, 2, 2));
        // The same chunk again (its pass committed, then failed to set FULL back): nothing to do.
        assert_eq!(index_chunk_unsynced(&conn, 2, &chunk(2)).unwrap(), [None]);
        assert_eq!(counts(), (2, 2, 2, 2));
        // A chunk that overlaps the indexed part: only the rest is written.
        assert_eq!(index_chunk_unsynced(&conn, 3, &chunk(3)).unwrap(), first);
        assert_eq!(counts(), (3, 3, 3, 3));
    }
}
