//! What the sequencer is asked to do ([`Event`]): by this node's writer (its appends'
//! outcomes), by the subscriber (other nodes' messages, a subscription confirmed), by the
//! store (attaches) and by a timer (sweeps). A file of its own, so the sequencer and the
//! subscriber both name it without naming each other.

use chat_protocol::events::ChatMessage;
use tokio::sync::oneshot;

use crate::chat::store::{AppendDone, Attach, Publish, StoreError};

/// What the sequencer is asked to do, in the order asked.
pub(super) enum Event {
    /// One of this node's appends came back from Redis.
    Own {
        namespace: String,
        room: String,
        outcome: Result<(bool, ChatMessage), StoreError>,
        publish: Publish,
        done: AppendDone,
    },
    /// Another node's message, as published.
    Published {
        namespace: String,
        room: String,
        message: ChatMessage,
    },
    /// The subscription of a room was (re)confirmed: anything missed while it was down is
    /// read from the log. Also sent again, a little later, when that read failed (Redis
    /// just back, this node's command connection not yet): `attempt` counts.
    Subscribed {
        namespace: String,
        room: String,
        attempt: u32,
    },
    Attach {
        namespace: String,
        room: String,
        after: Option<u64>,
        limit: usize,
        attach: Attach,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Stops following the rooms nobody here is in (their cursor and subscription go; a
    /// later attach starts again). Sent every `sequencer::SWEEP_EVERY`, so what a node follows is
    /// bounded by the rooms its sockets are in, not by every room they ever joined.
    Sweep {
        done: Option<oneshot::Sender<usize>>,
    },
}
