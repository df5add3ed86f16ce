//! Search on Redis: a bounded scan of the rooms' logs (Redis has no full-text index here).
//!
//! Each room searched is read newest first, in chunks of [`CHUNK`], down to its newest
//! `scan` messages at most (the retention cap, [`SCAN_MAX`] when that is larger or 0), and
//! stops early once it gave a page's worth of hits. A hit is a message whose text holds the
//! phrase ([`Phrase::matches`](crate::chat::phrase::Phrase::matches), the rule of the memory
//! store). The order is the entries' store-wide order `o` (Redis's clock in microseconds,
//! rising within a room; see `script`), ties broken by room name: newest first. The cursor
//! is the last hit's `<o>:<room>`; the next page takes what comes strictly after it in that
//! order, so pages neither repeat nor skip a hit of the scanned window. On a Redis Cluster
//! the shards' clocks order rooms of different shards only as well as those clocks agree.
//!
//! What a page may cost: at most `scan` entries read per room searched (the rooms a socket
//! may be in), a page's hits held.

use chat_protocol::events::ChatMessage;

use super::{RedisStore, entry, keys};
use crate::chat::store::{SearchPage, SearchQuery, StoreError, parse_order};

/// Entries read from a room's log per command.
pub(super) const CHUNK: usize = 200;
/// Most entries of one room a search reads (the default retention cap).
pub const SCAN_MAX: u64 = 10_000;

/// The newest messages of one room a search reads, for a retention cap (0: none).
pub(super) fn scan_for(cap: u64) -> u64 {
    if cap == 0 {
        SCAN_MAX
    } else {
        cap.min(SCAN_MAX)
    }
}

/// A hit's place in the newest-first order: (order, room).
type Place = (u64, String);

fn cursor(place: &Place) -> String {
    format!("{}:{}", place.0, place.1)
}

fn parse_cursor(before: Option<&str>) -> Result<Option<Place>, StoreError> {
    before
        .map(|b| {
            b.split_once(':')
                .filter(|(_, room)| !room.is_empty())
                .and_then(|(o, room)| Some((parse_order(o)?, room.to_owned())))
                .ok_or_else(|| StoreError::BadCursor(b.to_owned()))
        })
        .transpose()
}

impl RedisStore {
    pub(super) async fn search_logs(&self, query: SearchQuery) -> Result<SearchPage, StoreError> {
        let before = parse_cursor(query.before.as_deref())?;
        let limit = query.limit.max(1);
        let mut rooms = query.rooms.clone();
        rooms.sort();
        rooms.dedup();
        let mut hits: Vec<(Place, ChatMessage)> = Vec::new();
        for room in &rooms {
            self.search_room(&query, room, before.as_ref(), limit, &mut hits)
                .await?;
        }
        hits.sort_by(|a, b| b.0.cmp(&a.0));
        hits.truncate(limit);
        let next = (hits.len() == limit)
            .then(|| hits.last().map(|(p, _)| cursor(p)))
            .flatten();
        Ok(SearchPage {
            messages: hits.into_iter().map(|(_, m)| m).collect(),
            next,
        })
    }

    /// Adds one room's newest hits before the cursor (at most `limit`) to `hits`.
    async fn search_room(
        &self,
        query: &SearchQuery,
        room: &str,
        before: Option<&Place>,
        limit: usize,
        hits: &mut Vec<(Place, ChatMessage)>,
    ) -> Result<(), StoreError> {
        let log = keys::room(&query.namespace, room).log;
        let mut conn = self.conn();
        let mut read = 0u64;
        let mut found = 0usize;
        let mut upper = "+inf".to_owned();
        while read < self.scan && found < limit {
            let n = (self.scan - read).min(CHUNK as u64);
            let chunk: Vec<Vec<u8>> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&log)
                .arg(&upper)
                .arg("-inf")
                .arg("LIMIT")
                .arg(0)
                .arg(n)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(&e))?;
            for e in &chunk {
                read += 1;
                let (message, order) = entry::decode_ordered(room, e)?;
                upper = format!("({}", message.seq);
                let place = (order, room.to_owned());
                if before.is_some_and(|b| place >= *b) || !query.phrase.matches(&message.text) {
                    continue;
                }
                hits.push((place, message));
                found += 1;
                if found == limit {
                    break;
                }
            }
            if (chunk.len() as u64) < n {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_anything_else_is_refused() {
        let place = (1_765_000_000_123_456, "a:b".to_owned());
        assert_eq!(parse_cursor(Some(&cursor(&place))).unwrap(), Some(place));
        assert_eq!(parse_cursor(None).unwrap(), None);
        for bad in ["", "12", "x:r", "-1:r", "0:r", "+5:r", "05:r", "5:"] {
            assert!(matches!(
                parse_cursor(Some(bad)),
                Err(StoreError::BadCursor(_))
            ));
        }
    }

    #[test]
    fn the_scan_is_the_retention_cap_bounded() {
        assert_eq!(scan_for(0), SCAN_MAX);
        assert_eq!(scan_for(500), 500);
        assert_eq!(scan_for(1_000_000), SCAN_MAX);
    }
}
