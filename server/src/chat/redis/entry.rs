//! A stored message as the append script writes it (`cjson`): the log's members, the
//! published payloads (`<node> <entry>`) and what reads return.

use chat_protocol::events::ChatMessage;
use serde::Deserialize;

use crate::chat::store::StoreError;

/// An entry of a room's log (its room is the key's).
#[derive(Debug, Deserialize)]
struct Entry {
    id: String,
    seq: u64,
    from: String,
    text: String,
    ts: i64,
    #[serde(default)]
    action: bool,
    /// The node that appended it.
    #[serde(default)]
    n: String,
    /// Its store-wide order (see `script`), digits.
    #[serde(default)]
    o: Option<String>,
}

/// A log entry with the node that appended it.
pub(super) struct Logged {
    pub message: ChatMessage,
    pub node: String,
}

/// Decodes an entry of `room`'s log, with its node.
pub(super) fn decode_logged(room: &str, json: &[u8]) -> Result<Logged, StoreError> {
    let e: Entry = serde_json::from_slice(json)
        .map_err(|e| StoreError::Backend(format!("a log entry does not decode: {e}")))?;
    Ok(Logged {
        node: e.n.clone(),
        message: message(room, e),
    })
}

/// Decodes an entry of `room`'s log with its store-wide order (an entry written before the
/// order existed counts as its `ts`, in microseconds).
pub(super) fn decode_ordered(room: &str, json: &[u8]) -> Result<(ChatMessage, u64), StoreError> {
    let e: Entry = serde_json::from_slice(json)
        .map_err(|e| StoreError::Backend(format!("a log entry does not decode: {e}")))?;
    let order =
        e.o.as_deref()
            .and_then(|o| o.parse().ok())
            .unwrap_or_else(|| u64::try_from(e.ts).unwrap_or(0).saturating_mul(1000));
    Ok((message(room, e), order))
}

/// Decodes an entry of `room`'s log.
pub(super) fn decode(room: &str, json: &[u8]) -> Result<ChatMessage, StoreError> {
    decode_logged(room, json).map(|l| l.message)
}

fn message(room: &str, e: Entry) -> ChatMessage {
    ChatMessage {
        id: e.id,
        room: room.to_owned(),
        seq: e.seq,
        from: e.from,
        text: e.text,
        ts: e.ts,
        action: e.action,
    }
}

/// Splits a published payload into the publishing node's id and the entry.
pub(super) fn split_published(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = payload.iter().position(|&b| b == b' ')?;
    Some((&payload[..space], &payload[space + 1..]))
}
