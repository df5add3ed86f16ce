//! Retention: removing each room's messages beyond a count or an age, on the writer between
//! batches, in bounded chunks.

use rusqlite::params;

use super::super::store::{StoreError, now_ms};
use super::index::LogRow;
use super::unindexed::RoomKey;
use super::writer::Writer;
use super::{Retention, backend, write_transaction};

/// Rows removed per retention chunk, so a big clean-up never holds the writer for long.
const RETENTION_CHUNK: usize = 2000;

impl Writer {
    /// Removes, in bounded chunks and one transaction, messages beyond the per-room count and
    /// older than the age. Only indexed messages are removed (the rest are newer). True when a
    /// chunk was full: there is more to remove at once.
    pub(super) fn enforce_retention(&mut self) -> Result<bool, StoreError> {
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
                    "SELECT r.n, l.ns, l.room, r.seq, l.sender, l.cid FROM room_index r JOIN log l ON l.n = r.n WHERE r.room_id = (SELECT id FROM rooms WHERE ns = ?1 AND room = ?2) AND r.seq <= ?3 ORDER BY r.seq LIMIT ?4",
                )
                .map_err(backend)?;
            for key in touched {
                let last = self.rooms.seqs.get(&key).map_or(0, |room| room.last);
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
