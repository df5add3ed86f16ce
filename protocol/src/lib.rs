//! `chat-protocol`: the wire and event types shared by `chat-server` and `chat`. Pure: no
//! sockets, no tasks, no clocks.
//!
//! Modules:
//! - [`engine_io`]: Engine.IO v4 packets (the connection layer: open, ping/pong, close, message).
//! - [`socket_io`]: Socket.IO v5 packets (the seven packet types inside Engine.IO messages),
//!   [`socket_io::BinaryAssembler`] that joins a binary packet with its attachments, and
//!   [`socket_io::Incoming`], the server's decoder, which keeps an EVENT's arguments as JSON
//!   text for each handler to deserialize straight into its request type.
//! - [`events`]: the chat's typed events (requests, replies and server events) with their names.
//! - [`names`]: the rules for namespace, room and nick names.
//! - [`search`]: what a `search` text matches (its words in a row), for the server's scans
//!   and the client's search of its scrollback.
//! - [`payload`]: Engine.IO long-polling payloads (packets joined by `\x1e`, binary as
//!   `b` + base64).
//! - [`http`]: HTTP/1.1 request heads (bounded, via `httparse`) and the Engine.IO WebSocket
//!   handshake checked over them, with the refusals' HTTP answers.
//!
//! Where to add things: a new chat event is a struct in `events` plus its name constant, and a
//! line in `docs/PROTOCOL.md`. Decoders return [`DecodeError`], never panic.

pub mod engine_io;
pub mod events;
pub mod http;
pub mod names;
pub mod payload;
pub mod search;
pub mod socket_io;

/// Why a frame could not be decoded. Every decoder in this crate returns it instead of panicking;
/// the server answers any of them by closing that one connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    #[error("invalid attachment count")]
    BadAttachments,
    #[error("invalid namespace")]
    BadNamespace,
    #[error("invalid ack id")]
    BadAckId,
    #[error("invalid JSON: {0}")]
    BadJson(String),
    /// A `\\u` escape naming half of a UTF-16 surrogate pair: text that is not Unicode,
    /// answered like invalid UTF-8.
    #[error("invalid JSON: {0}")]
    LoneSurrogate(String),
    #[error("invalid payload for {0} packet")]
    BadPayload(&'static str),
    #[error("reserved event name {0:?}")]
    ReservedEvent(String),
}
