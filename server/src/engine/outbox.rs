//! Encoded packets and each connection's bounded outgoing queue.
//!
//! A broadcast is encoded once into an [`EncodedPacket`]; every receiver's queue gets a clone,
//! which only bumps reference counts. Sending never waits: [`Outbox::send`] uses `try_send`,
//! drops a volatile packet that does not fit, and closes the connection when a non-volatile
//! one does not fit (slow consumer), so one slow client never stalls anyone else.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chat_protocol::socket_io::Packet;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use super::lock;

/// A packet ready for the wire: the text frame and its binary attachments (sent right after
/// it, in order, as one unit). Cloning shares the bytes.
#[derive(Debug, Clone)]
pub struct EncodedPacket {
    pub text: Utf8Bytes,
    pub attachments: Arc<[Bytes]>,
}

impl EncodedPacket {
    /// Encodes a Socket.IO packet with its attachments (the packet's attachment count is set
    /// from `attachments`).
    pub fn new(packet: Packet, attachments: Vec<Bytes>) -> EncodedPacket {
        let packet = packet.with_attachments(attachments.len());
        EncodedPacket {
            text: Utf8Bytes::from(packet.encode_frame()),
            attachments: attachments.into(),
        }
    }

    /// A raw Engine.IO text frame (open, ping).
    pub fn raw(text: String) -> EncodedPacket {
        EncodedPacket {
            text: Utf8Bytes::from(text),
            attachments: Arc::from(Vec::new()),
        }
    }
}

/// Why a connection was closed, as sent in the WebSocket close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    pub const NORMAL: CloseReason = CloseReason {
        code: 1000,
        reason: "bye",
    };
    pub const GOING_AWAY: CloseReason = CloseReason {
        code: 1001,
        reason: "server shutting down",
    };
    pub const PARSE_ERROR: CloseReason = CloseReason {
        code: 1002,
        reason: "parse error",
    };
    pub const PROTOCOL: CloseReason = CloseReason {
        code: 1002,
        reason: "protocol violation",
    };
    pub const SLOW_CONSUMER: CloseReason = CloseReason {
        code: 1008,
        reason: "slow consumer: outgoing queue full",
    };
    pub const TOO_BIG: CloseReason = CloseReason {
        code: 1009,
        reason: "message too big",
    };
    pub const PING_TIMEOUT: CloseReason = CloseReason {
        code: 1011,
        reason: "ping timeout",
    };
    pub const CONNECT_TIMEOUT: CloseReason = CloseReason {
        code: 1008,
        reason: "connect timeout",
    };
    /// A WebSocket-level protocol error (bad framing, an unmasked client frame...).
    pub const WS_PROTOCOL: CloseReason = CloseReason {
        code: 1002,
        reason: "WebSocket protocol error",
    };
    /// A text frame that is not UTF-8.
    pub const INVALID_UTF8: CloseReason = CloseReason {
        code: 1007,
        reason: "invalid UTF-8",
    };
    pub const ATTACHMENT_TIMEOUT: CloseReason = CloseReason {
        code: 1002,
        reason: "attachment timeout",
    };
    pub const RATE_LIMIT: CloseReason = CloseReason {
        code: 1008,
        reason: "rate limit exceeded",
    };
    pub const FORCED: CloseReason = CloseReason {
        code: 1008,
        reason: "forced close",
    };

    pub fn frame(&self) -> CloseFrame {
        CloseFrame {
            code: CloseCode::from(self.code),
            reason: self.reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// A volatile packet did not fit and was dropped.
    Dropped,
    /// The connection is closed (or was just closed for being too slow).
    Closed,
}

/// The sending side of a connection's queue, plus the means to close that connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<EncodedPacket>,
    closer: CancellationToken,
    reason: Arc<Mutex<Option<CloseReason>>>,
}

/// The receiving side, owned by the connection's writer.
pub(crate) struct OutboxReceiver {
    pub rx: mpsc::Receiver<EncodedPacket>,
    pub closer: CancellationToken,
    reason: Arc<Mutex<Option<CloseReason>>>,
}

pub(crate) fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let closer = CancellationToken::new();
    let reason = Arc::new(Mutex::new(None));
    (
        Outbox {
            tx,
            closer: closer.clone(),
            reason: reason.clone(),
        },
        OutboxReceiver { rx, closer, reason },
    )
}

impl Outbox {
    /// Queues a packet without waiting (see the module doc for the slow-consumer rule).
    pub fn send(&self, packet: EncodedPacket, volatile: bool) -> Result<(), SendError> {
        match self.tx.try_send(packet) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) if volatile => Err(SendError::Dropped),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::SLOW_CONSUMER);
                Err(SendError::Closed)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Closes the connection with `reason` (the first reason given wins).
    pub fn close(&self, reason: CloseReason) {
        lock(&self.reason).get_or_insert(reason);
        self.closer.cancel();
    }

    pub fn is_closed(&self) -> bool {
        self.closer.is_cancelled()
    }
}

impl OutboxReceiver {
    pub fn reason(&self) -> Option<CloseReason> {
        lock(&self.reason).clone()
    }

    pub fn set_reason(&self, reason: CloseReason) {
        lock(&self.reason).get_or_insert(reason);
    }
}

impl Outbox {
    /// The token that [`Outbox::close`] cancels.
    pub(crate) fn closer_token(&self) -> CancellationToken {
        self.closer.clone()
    }
}
