//! The `search` request: the history of the rooms the socket is in, for a phrase.
//!
//! What a search may cost: its text is at most [`SEARCH_TEXT_MAX`] characters, its page at
//! most [`SEARCH_LIMIT_MAX`] hits; it reads only rooms the socket is in (at most the
//! rooms-per-socket limit). A connection has a budget of [`SEARCH_BURST`] searches at once,
//! then [`SEARCHES_PER_SEC`] a second (beyond: `rate_limited`), and at most
//! [`SEARCHES_AT_ONCE`] searches run on the server at a time (beyond: `busy`, retryable),
//! so searching never takes the store from everything else. The store bounds each one's
//! work (see `Store::search`).

use chat_protocol::events::{ErrorCode, SearchReply, SearchRequest};

use super::handlers::{Failure, internal, member, parse};
use super::phrase::Phrase;
use super::reply::Outcome;
use super::store::{SearchQuery, StoreError};
use super::{ChatApp, Session, chat_rooms};
use crate::engine::{Event, Socket};

/// Longest search text, in characters.
pub const SEARCH_TEXT_MAX: usize = 200;
/// Most hits in one page, and the default.
pub const SEARCH_LIMIT_MAX: u32 = 50;
pub const SEARCH_LIMIT_DEFAULT: u32 = 20;
/// Searches one connection may make at once, then per second.
pub const SEARCH_BURST: usize = 10;
pub const SEARCHES_PER_SEC: f64 = 1.0;
/// Searches running on the server at once.
pub const SEARCHES_AT_ONCE: usize = 4;

impl ChatApp {
    pub(super) async fn search(
        &self,
        socket: &Socket,
        session: &Session,
        request: &Event,
    ) -> Outcome<SearchReply> {
        let SearchRequest {
            room,
            text,
            before,
            limit,
        } = parse(request)?;
        let text = text.trim();
        let chars = text.chars().count();
        if chars == 0 || chars > SEARCH_TEXT_MAX {
            return Err(Failure(
                ErrorCode::InvalidText,
                format!("a search text has 1 to {SEARCH_TEXT_MAX} characters"),
            ));
        }
        let rooms = match room {
            Some(room) => {
                member(socket, &room)?;
                vec![room]
            }
            None => chat_rooms(socket),
        };
        let limit = limit
            .unwrap_or(SEARCH_LIMIT_DEFAULT)
            .clamp(1, SEARCH_LIMIT_MAX) as usize;
        if !session.take_search() {
            return Err(Failure(
                ErrorCode::RateLimited,
                "too many searches: try again in a moment".into(),
            ));
        }
        let Some(phrase) = Phrase::new(text) else {
            // Only punctuation: no word to find.
            return Ok(SearchReply {
                messages: Vec::new(),
                next: None,
            });
        };
        let _running = self.searches.try_acquire().map_err(|_| {
            Failure(
                ErrorCode::Busy,
                "the server is busy searching: retry in a moment".into(),
            )
        })?;
        let query = SearchQuery {
            namespace: socket.namespace().name().to_owned(),
            rooms,
            phrase,
            before,
            limit,
        };
        let page = self.store.search(query).await.map_err(|e| match e {
            StoreError::BadCursor(_) => Failure(
                ErrorCode::BadRequest,
                "before: not the next of a search".into(),
            ),
            e => internal(e),
        })?;
        Ok(SearchReply {
            messages: page.messages,
            next: page.next,
        })
    }
}
