//! The engine's counters, for an operator's metrics: plain relaxed atomics, one add where the
//! event happens (per broadcast, not per recipient; per connection, not per frame), no lock,
//! no allocation, no label per user. The application reads them ([`Engine::stats`]) when it
//! is scraped and renders them in whatever format it serves (`chat-server`: Prometheus, on
//! its admin listener).
//!
//! Gauges that are cheaper to count when asked (namespaces, sockets, rooms, polling
//! sessions) are not kept here: the engine's own maps hold them.
//!
//! [`Engine::stats`]: crate::Engine::stats

use std::sync::atomic::{AtomicU64, Ordering};

use crate::outbox::CloseReason;

/// Why a connection was refused before it became a session (an HTTP answer, not a close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `max_connections_per_ip` (HTTP 429).
    PerIp,
    /// Over `max_connections` long-polling sessions (HTTP 503).
    ServerFull,
    /// A WebSocket upgrade or preflight from an origin not allowed (HTTP 403).
    Origin,
    /// Anything else on the Engine.IO path that is not a valid request (HTTP 400, 404, 411,
    /// 413...).
    BadRequest,
    /// A namespace CONNECT refused (CONNECT_ERROR: middleware, namespace limits, rate limit).
    Connect,
}

impl Refusal {
    /// Every refusal, in the order of [`Refusal::label`]'s table.
    pub const ALL: [Refusal; 5] = [
        Refusal::PerIp,
        Refusal::ServerFull,
        Refusal::Origin,
        Refusal::BadRequest,
        Refusal::Connect,
    ];

    /// The refusal an HTTP refusal on the Engine.IO path counts as, by its status.
    pub fn of_status(status: u16) -> Refusal {
        match status {
            429 => Refusal::PerIp,
            503 => Refusal::ServerFull,
            403 => Refusal::Origin,
            _ => Refusal::BadRequest,
        }
    }

    /// The metric label (`reason="..."`).
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerIp => "too_many_per_ip",
            Refusal::ServerFull => "server_full",
            Refusal::Origin => "origin",
            Refusal::BadRequest => "bad_request",
            Refusal::Connect => "connect_error",
        }
    }
}

/// Close reasons as metric labels: the engine's own reasons, each a fixed word (the labels
/// are a fixed set, whatever clients do).
const CLOSES: [(CloseReason, &str); 15] = [
    (CloseReason::NORMAL, "client_close"),
    (CloseReason::GOING_AWAY, "shutdown"),
    (CloseReason::PARSE_ERROR, "parse_error"),
    (CloseReason::PROTOCOL, "protocol_violation"),
    (CloseReason::SLOW_CONSUMER, "slow_consumer"),
    (CloseReason::TOO_BIG, "too_big"),
    (CloseReason::PING_TIMEOUT, "ping_timeout"),
    (CloseReason::CONNECT_TIMEOUT, "connect_timeout"),
    (CloseReason::WS_PROTOCOL, "websocket_protocol_error"),
    (CloseReason::CONNECTION_RESET, "connection_reset"),
    (CloseReason::INVALID_UTF8, "invalid_utf8"),
    (CloseReason::ATTACHMENT_TIMEOUT, "attachment_timeout"),
    (CloseReason::RATE_LIMIT, "flood"),
    (CloseReason::TRANSPORT_CLOSE, "transport_close"),
    (CloseReason::TRANSPORT_ERROR, "transport_error"),
];

/// The label of a close reason not in the table (a 1006 "transport close" of a WebSocket
/// whose stream ended, "forced close"...).
const OTHER_CLOSE: &str = "other";

/// The engine's counters. Every field is monotonic but `websocket_open`.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Open WebSocket connections that started as one (a polling session that upgraded counts
    /// as a polling session).
    websocket_open: AtomicU64,
    /// Packets queued to clients by broadcasts, one per recipient (added once per broadcast).
    delivered: AtomicU64,
    /// Events and CONNECTs refused by the rate limit.
    rate_limited: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Sessions ended, by [`CLOSES`] index (the last slot: any other reason).
    closed: [AtomicU64; CLOSES.len() + 1],
}

impl EngineStats {
    pub(crate) fn websocket_opened(&self) {
        self.websocket_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn websocket_closed(&self) {
        self.websocket_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn delivered(&self, n: usize) {
        if n > 0 {
            self.delivered.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, why: Refusal) {
        let i = Refusal::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, reason: &CloseReason) {
        let i = CLOSES
            .iter()
            .position(|(r, _)| r == reason)
            .unwrap_or(CLOSES.len());
        self.closed[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Open WebSocket connections that did not start as polling sessions.
    pub fn websocket_connections(&self) -> u64 {
        self.websocket_open.load(Ordering::Relaxed)
    }

    /// Packets queued to clients by broadcasts (one per recipient).
    pub fn messages_delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Events and CONNECTs refused by the rate limit.
    pub fn rate_limited_events(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Refused connections and CONNECTs, by reason label.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refusal::ALL
            .iter()
            .zip(&self.refused)
            .map(|(r, n)| (r.label(), n.load(Ordering::Relaxed)))
    }

    /// Ended sessions by reason label (every label, zeros too, so a dashboard sees them).
    pub fn disconnects(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CLOSES
            .iter()
            .map(|(_, label)| *label)
            .chain([OTHER_CLOSE])
            .zip(&self.closed)
            .map(|(label, n)| (label, n.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_counted_under_their_label_and_unknown_ones_under_other() {
        let stats = EngineStats::default();
        stats.closed(&CloseReason::SLOW_CONSUMER);
        stats.closed(&CloseReason::SLOW_CONSUMER);
        stats.closed(&CloseReason::RATE_LIMIT);
        stats.closed(&CloseReason::FORCED);
        let got: Vec<_> = stats.disconnects().filter(|(_, n)| *n > 0).collect();
        assert_eq!(got, vec![("slow_consumer", 2), ("flood", 1), ("other", 1)]);
    }

    #[test]
    fn every_close_label_is_distinct() {
        let mut labels: Vec<_> = CLOSES.iter().map(|(_, l)| *l).collect();
        labels.push(OTHER_CLOSE);
        let n = labels.len();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), n);
    }
}
