//! Reading messages by room and seq: the indexed ones from SQLite, the newest from memory
//! ([`super::unindexed`]).

use std::sync::Mutex;

use chat_protocol::events::ChatMessage;
use rusqlite::{Connection, params};

use super::unindexed::Unindexed;
use crate::engine::lock;

pub(super) fn row_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
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
pub(super) const MESSAGE_COLUMNS: &str = "l.room, l.seq, l.id, l.sender, l.text, l.ts, l.action";

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
        "SELECT {MESSAGE_COLUMNS} FROM room_index r JOIN log l ON l.n = r.n WHERE r.room_id = (SELECT id FROM rooms WHERE ns = ?1 AND room = ?2) AND r.seq > ?3 AND r.seq <= ?4 ORDER BY r.seq DESC LIMIT ?5"
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
pub(super) fn read_messages(
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
