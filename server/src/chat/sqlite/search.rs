//! `search` on the durable store: the indexed messages through the full-text index
//! (`log_fts`, filled by the writer's indexing pass), the newest ones (not indexed yet) by a
//! scan of [`super::unindexed`].
//!
//! Cost: one FTS5 query, `text : "<phrase>" AND scope : (<room> OR ...)`, newest rowid first,
//! stopped at the limit: FTS5 reads the posting lists of the phrase's words and of the
//! rooms searched (never other rooms' hits), then `limit` rows of the log. The unindexed
//! messages are at most a few chunks of indexing (`IndexLimits::rows`), scanned in memory.
//! Searches run on a connection of their own, so a slow one never holds up `history`.

use std::fmt::Write as _;
use std::sync::Mutex;

use rusqlite::{Connection, params};

use super::super::store::{SearchPage, SearchQuery, StoreError, cursor, parse_cursor};
use super::backend;
use super::read::{MESSAGE_COLUMNS, row_message};
use super::unindexed::Unindexed;
use crate::engine::lock;

/// A message's room as one token of the index's `scope` column: the hex of
/// `<namespace> <room>` (letters and digits only, so the tokenizer keeps it whole), from the
/// `log` table's columns.
pub(super) const SCOPE_SQL: &str = "hex(ns || ' ' || room)";

/// [`SCOPE_SQL`] of one room, computed here for a query.
fn scope(namespace: &str, room: &str) -> String {
    let mut out = String::with_capacity(2 * (namespace.len() + room.len() + 1));
    for b in namespace.bytes().chain([b' ']).chain(room.bytes()) {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The FTS5 query: the phrase (quoted, see `Phrase::fts5`) in the text column, in one of
/// the rooms.
fn match_expression(query: &SearchQuery) -> String {
    let rooms: Vec<String> = query
        .rooms
        .iter()
        .map(|room| format!("\"{}\"", scope(&query.namespace, room)))
        .collect();
    format!(
        "text : {} AND scope : ({})",
        super::super::phrase::fts5(&query.phrase),
        rooms.join(" OR ")
    )
}

/// One page of hits: the unindexed ones first (they are the newest), then from the index
/// below the oldest unindexed message (everything older is indexed by then, as indexing
/// goes in log order), so none is missed or found twice while the writer indexes.
pub(super) fn search(
    conn: &Connection,
    unindexed: &Mutex<Unindexed>,
    query: &SearchQuery,
) -> Result<SearchPage, StoreError> {
    let before =
        parse_cursor(query.before.as_deref())?.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
    let limit = query.limit.max(1);
    if query.rooms.is_empty() {
        return Ok(SearchPage::default());
    }
    let (mut hits, oldest_unindexed) =
        lock(unindexed).search(&query.namespace, &query.rooms, &query.phrase, before, limit);
    if hits.len() < limit {
        let below = oldest_unindexed.map_or(before, |n| n.min(before));
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS}, f.rowid FROM log_fts f CROSS JOIN log l ON l.n = f.rowid WHERE log_fts MATCH ?1 AND f.rowid < ?2 ORDER BY f.rowid DESC LIMIT ?3"
            ))
            .map_err(backend)?;
        let found = stmt
            .query_map(
                params![match_expression(query), below, (limit - hits.len()) as i64],
                |r| Ok((r.get::<_, i64>(7)?, row_message(r)?)),
            )
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(backend)?;
        hits.extend(found);
    }
    let next = (hits.len() == limit)
        .then(|| hits.last().map(|(n, _)| cursor(*n as u64)))
        .flatten();
    Ok(SearchPage {
        messages: hits.into_iter().map(|(_, m)| m).collect(),
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_the_hex_of_namespace_and_room() {
        assert_eq!(scope("/", "ab"), "2F206162");
        let conn = Connection::open_in_memory().expect("open");
        let sql: String = conn
            .query_row(
                &format!("SELECT {SCOPE_SQL} FROM (SELECT '/' AS ns, 'ab' AS room)"),
                [],
                |r| r.get(0),
            )
            .expect("hex");
        assert_eq!(sql, scope("/", "ab"));
        // Not ASCII: the bytes of its UTF-8, as SQLite's hex() gives them.
        let sql: String = conn
            .query_row(
                &format!("SELECT {SCOPE_SQL} FROM (SELECT '/' AS ns, 'café' AS room)"),
                [],
                |r| r.get(0),
            )
            .expect("hex");
        assert_eq!(sql, scope("/", "café"));
    }
}
