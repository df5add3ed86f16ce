//! Indexing the log by room and seq (`room_index`), by client id (`cids`) and by its words
//! (`log_fts`, for `search`), and, at open, checking the indexes against the log and
//! rebuilding them when they disagree.

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use tracing::warn;

use super::super::store::StoreError;
use super::search::SCOPE_SQL;
use super::unindexed::{ChunkRoom, Map, RoomKey, RoomRef};
use super::{backend, write_transaction};

/// Indexes the log's messages with rowid `<= upto` not indexed yet (and writes their rooms'
/// last seq, and how far the log is indexed) in one transaction; returns how many, and the
/// newest rowid indexed.
pub(super) fn index_log(conn: &Connection, upto: i64) -> Result<(usize, i64), StoreError> {
    // Where the indexing starts is read under the write lock.
    let tx = write_transaction(conn)?;
    let from = indexed_upto(&tx)?;
    let last: Option<i64> = tx
        .query_row(
            "SELECT max(n) FROM log WHERE n > ?1 AND n <= ?2",
            [from, upto],
            |r| r.get(0),
        )
        .map_err(backend)?;
    let mut count = 0;
    if let Some(last) = last {
        let run = |sql: &str| {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute([from, last]))
                .map_err(backend)
        };
        // The rooms first: a room's first indexing gives it its id, which the indexes' keys
        // are made of. Each message then finds its room's id by the (ns, room) key of
        // `rooms` (the log is the outer loop: `CROSS JOIN`).
        run(
            "INSERT INTO rooms (ns, room, last_seq) SELECT ns, room, max(seq) FROM log WHERE n > ?1 AND n <= ?2 GROUP BY ns, room ON CONFLICT (ns, room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
        )?;
        // In log order: sorting the chunk by key first (so each room's pages are visited in
        // turn) cost more than it saved once the keys are integers (BENCHMARKS.md, "Integer
        // room ids"); the pages are in the cache either way, and each is written once at
        // the commit whatever the order.
        count = run(
            "INSERT INTO room_index (room_id, seq, n) SELECT r.id, l.seq, l.n FROM log l CROSS JOIN rooms r ON r.ns = l.ns AND r.room = l.room WHERE l.n > ?1 AND l.n <= ?2",
        )?;
        run(
            "INSERT INTO cids (room_id, sender, cid, n) SELECT r.id, l.sender, l.cid, l.n FROM log l CROSS JOIN rooms r ON r.ns = l.ns AND r.room = l.room WHERE l.n > ?1 AND l.n <= ?2 AND l.cid IS NOT NULL",
        )?;
        // The full-text index, here and not in the appends' commits: one FTS5 segment per
        // chunk, off the acknowledgement path.
        run(&format!(
            "INSERT INTO log_fts (rowid, text, scope) SELECT n, coalesce(index_text(text), text), {SCOPE_SQL} FROM log WHERE n > ?1 AND n <= ?2 ORDER BY n"
        ))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('indexed_upto', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [last],
        )
        .map_err(backend)?;
    }
    let last = last.unwrap_or(from);
    tx.commit().map_err(backend)?;
    Ok((count, last))
}

/// The newest rowid in the indexes (`meta.indexed_upto`).
fn indexed_upto(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'indexed_upto'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .unwrap_or_default())
}

/// [`index_log`] from memory, for the writer: `rooms` holds the log's unindexed rows up to
/// `upto`, copied from the unindexed tail ([`super::unindexed::Unindexed::chunk`]), so their
/// index entries are written with integer keys as they are, without reading the log back and
/// looking each message's room up by its name (only the full-text index reads the log, for
/// the texts). As in [`index_log`], the pass starts after `meta.indexed_upto`, read under the
/// write lock: rows already indexed (a pass whose commit landed though it reported an error)
/// are skipped, not inserted twice. Returns each room's id, in `rooms` order (`None` for a
/// room with nothing left to index).
pub(super) fn index_chunk(
    conn: &Connection,
    upto: i64,
    rooms: &[ChunkRoom],
) -> Result<Vec<Option<i64>>, StoreError> {
    let tx = write_transaction(conn)?;
    let from = indexed_upto(&tx)?;
    let mut ids = Vec::with_capacity(rooms.len());
    if upto <= from {
        ids.resize(rooms.len(), None);
        return Ok(ids);
    }
    {
        let mut room = tx
            .prepare_cached(
                "INSERT INTO rooms (ns, room, last_seq) VALUES (?1, ?2, ?3) ON CONFLICT (ns, room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq) RETURNING id",
            )
            .map_err(backend)?;
        let mut by_seq = tx
            .prepare_cached("INSERT INTO room_index (room_id, seq, n) VALUES (?1, ?2, ?3)")
            .map_err(backend)?;
        let mut by_cid = tx
            .prepare_cached("INSERT INTO cids (room_id, sender, cid, n) VALUES (?1, ?2, ?3, ?4)")
            .map_err(backend)?;
        for r in rooms {
            let rows: Vec<_> = r
                .rows
                .iter()
                .filter(|row| row.n > from && row.n <= upto)
                .collect();
            let Some(last) = rows.last() else {
                ids.push(None);
                continue;
            };
            let id: i64 = room
                .query_row(params![r.ns, r.room, last.seq as i64], |row| row.get(0))
                .map_err(backend)?;
            for row in rows {
                by_seq
                    .execute(params![id, row.seq as i64, row.n])
                    .map_err(backend)?;
                if let Some((sender, cid)) = &row.cid {
                    by_cid
                        .execute(params![id, sender, cid, row.n])
                        .map_err(backend)?;
                }
            }
            ids.push(Some(id));
        }
    }
    tx.prepare_cached(&format!(
        "INSERT INTO log_fts (rowid, text, scope) SELECT n, coalesce(index_text(text), text), {SCOPE_SQL} FROM log WHERE n > ?1 AND n <= ?2 ORDER BY n"
    ))
    .and_then(|mut s| s.execute([from, upto]))
    .map_err(backend)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('indexed_upto', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [upto],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(ids)
}

/// [`index_chunk`] for the writer: the pass commits without waiting for the disk
/// (`synchronous = NORMAL` for this transaction only), then `synchronous = FULL` is back for
/// the appends. Safe because the indexes hold nothing that is not in the log already, where
/// it was committed with `FULL` before it was acknowledged: a power loss can take the pass
/// back, and [`recover`] indexes the tail again at the next open; and the WAL is one file
/// written in order, so the next append's `fsync` makes the pass durable too, and a pass can
/// never be on disk without the log rows before it. What it saves is the pass's `fsync`, which
/// held the appends back for a commit's time (the pass runs on the writer's thread).
///
/// When `FULL` cannot be restored, the error is returned (even if the pass committed: the
/// retry then finds it done) and the connection is not used for appends until it is
/// ([`full_sync`]).
pub(super) fn index_chunk_unsynced(
    conn: &Connection,
    upto: i64,
    rooms: &[ChunkRoom],
) -> Result<Vec<Option<i64>>, StoreError> {
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(backend)?;
    let indexed = index_chunk(conn, upto, rooms);
    full_sync(conn)?;
    indexed
}

/// Sets `synchronous = FULL` (the appends' setting) on the writer's connection.
pub(super) fn full_sync(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)
}

/// At open: indexes what a crash left unindexed, after a cheap check that the indexes agree
/// with the log; if they do not, or the tail does not index, rebuilds them ([`repair`]).
/// Returns what [`index_log`] does, and whether the indexes were rebuilt.
pub(super) fn recover(conn: &Connection) -> Result<((usize, i64), bool), StoreError> {
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
///   room and seq, its client id in `cids` (under its own or an earlier message), and its
///   rowid in the full-text index (`log_fts_docsize`): this catches an `indexed_upto` ahead
///   of the indexes, and the newest entries gone;
/// - every room's newest `room_index` entry names a log message with that room and seq, and
///   is the room's `last_seq` (a room's messages are numbered in log order, and retention
///   removes a room's oldest messages first or all of them, so a room with indexed messages
///   has its `last_seq` among them, or above them only seqs an admin deleted, which
///   `deleted_messages` keeps): this catches a `last_seq` behind (new messages would
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
                "SELECT n FROM room_index WHERE room_id = (SELECT id FROM rooms WHERE ns = ?1 AND room = ?2) AND seq = ?3",
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
        let in_fts: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM log_fts_docsize WHERE id = ?1",
                [row.n],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if !in_fts {
            return Ok(Some(format!(
                "message {} is not in the full-text index",
                row.n
            )));
        }
        if let Some(cid) = &row.cid {
            let first: Option<i64> = conn
                .query_row(
                    "SELECT n FROM cids WHERE room_id = (SELECT id FROM rooms WHERE ns = ?1 AND room = ?2) AND sender = ?3 AND cid = ?4",
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
        .prepare("SELECT id, ns, room, last_seq FROM rooms")
        .map_err(backend)?;
    let mut rooms = rooms.query([]).map_err(backend)?;
    let mut top = conn
        .prepare(
            "SELECT r.seq, r.n, l.ns, l.room, l.seq FROM room_index r LEFT JOIN log l ON l.n = r.n WHERE r.room_id = ?1 ORDER BY r.seq DESC LIMIT 1",
        )
        .map_err(backend)?;
    while let Some(room) = rooms.next().map_err(backend)? {
        let (id, ns, name, last_seq): (i64, String, String, i64) = (
            room.get(0).map_err(backend)?,
            room.get(1).map_err(backend)?,
            room.get(2).map_err(backend)?,
            room.get(3).map_err(backend)?,
        );
        type Top = (i64, i64, Option<String>, Option<String>, Option<i64>);
        let found: Option<Top> = top
            .query_row([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
            .map_err(backend)?;
        let Some((seq, n, log_ns, log_room, log_seq)) = found else {
            continue; // No indexed message: none yet, or retention removed them all.
        };
        // Above the newest indexed message, only deleted ones (their tombstones) may be.
        let deleted_above = || -> Result<i64, StoreError> {
            conn.query_row(
                "SELECT count(*) FROM deleted_messages WHERE ns = ?1 AND room = ?2 AND seq > ?3 AND seq <= ?4",
                params![ns, name, seq, last_seq],
                |r| r.get(0),
            )
            .map_err(backend)
        };
        if seq != last_seq && !(seq < last_seq && deleted_above()? == last_seq - seq) {
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

/// Rebuilds `room_index`, `cids`, `log_fts`, the rooms' `last_seq` and `meta.indexed_upto` from the log,
/// in one transaction, keeping every message in it (each was acknowledged once committed).
///
/// Each room's messages are numbered in log order (rowid order, the order they were
/// committed), as one writer numbers them: walking a room's messages in that order, a
/// message keeps its seq if it is above every earlier one's, else (a seq a second writer
/// took again) it takes the next one after them; so from the first such message the room's
/// later ones are mostly numbered on too. Ids, texts and times are unchanged. A client id
/// stored twice (a re-send that reached both writers) names its first message, as a re-send
/// would have found it; both messages stay. A room's `last_seq` becomes its newest message's
/// seq, or its newest deleted message's if that is newer (rooms whose messages retention
/// removed keep theirs).
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
    tx.execute_batch(&format!(
        "DELETE FROM room_index;
         DELETE FROM cids;
         INSERT INTO log_fts (log_fts) VALUES ('delete-all');
         INSERT INTO log_fts (rowid, text, scope) SELECT n, coalesce(index_text(text), text), {SCOPE_SQL} FROM log ORDER BY n;
         INSERT INTO rooms (ns, room, last_seq)
             SELECT ns, room, max(seq) FROM (SELECT ns, room, seq FROM log UNION ALL SELECT ns, room, seq FROM deleted_messages) GROUP BY ns, room
             ON CONFLICT (ns, room) DO UPDATE SET last_seq = excluded.last_seq;
         INSERT INTO room_index (room_id, seq, n)
             SELECT r.id, l.seq, l.n FROM log l CROSS JOIN rooms r ON r.ns = l.ns AND r.room = l.room ORDER BY r.id, l.seq;
         INSERT INTO cids (room_id, sender, cid, n)
             SELECT r.id, l.sender, l.cid, min(l.n) FROM log l CROSS JOIN rooms r ON r.ns = l.ns AND r.room = l.room WHERE l.cid IS NOT NULL GROUP BY r.id, l.sender, l.cid;
         INSERT INTO meta (key, value) SELECT 'indexed_upto', coalesce(max(n), 0) FROM log WHERE true
             ON CONFLICT (key) DO UPDATE SET value = excluded.value;",
    ))
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

/// A logged message's keys, for removing it from the log and the indexes.
pub(super) struct LogRow {
    pub(super) n: i64,
    pub(super) ns: String,
    pub(super) room: String,
    pub(super) seq: i64,
    pub(super) sender: String,
    pub(super) cid: Option<String>,
}

impl LogRow {
    pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogRow> {
        Ok(LogRow {
            n: r.get(0)?,
            ns: r.get(1)?,
            room: r.get(2)?,
            seq: r.get(3)?,
            sender: r.get(4)?,
            cid: r.get(5)?,
        })
    }

    pub(super) fn delete(&self, tx: &Connection) -> rusqlite::Result<()> {
        tx.prepare_cached("DELETE FROM log WHERE n = ?1")?
            .execute([self.n])?;
        tx.prepare_cached("DELETE FROM log_fts WHERE rowid = ?1")?
            .execute([self.n])?;
        tx.prepare_cached("DELETE FROM room_index WHERE room_id = (SELECT id FROM rooms WHERE ns = ?1 AND room = ?2) AND seq = ?3")?
            .execute(params![self.ns, self.room, self.seq])?;
        if let Some(cid) = &self.cid {
            tx.prepare_cached(
                "DELETE FROM cids WHERE room_id = (SELECT id FROM rooms WHERE ns = ?1 AND room = ?2) AND sender = ?3 AND cid = ?4",
            )?
            .execute(params![self.ns, self.room, self.sender, cid])?;
        }
        Ok(())
    }
}
