//! Encoded packets and each connection's bounded outgoing queue.
//!
//! A broadcast is encoded once into an [`EncodedPacket`]; every receiver's queue gets a clone,
//! which only bumps reference counts. Sending never waits: [`Outbox::send`] queues or refuses
//! at once, drops a volatile packet that does not fit, and closes the connection when a
//! non-volatile one does not fit (slow consumer), so one slow client never stalls anyone else.
//! A queue is bounded in packets and in bytes (a packet's text and attachments; a packet
//! bigger than the bound alone is taken into an empty queue, so any one reply can be sent):
//! a connection that does not read holds at most about twice the byte bound (its queue, and
//! the batch its writer is blocked on), however big the replies it asks for. Volatile
//! packets (typing, room announcements) fit only in the first half of either bound, so a
//! storm of them never fills the queue the rest needs.
//!
//! The queue is a `VecDeque` under a mutex that the writer empties a batch at a time by
//! moving its packets into a batch buffer it borrows for the batch (`batch_pool`): one lock
//! per batch on its side, one per packet on the senders'. The queue keeps its own buffer, so
//! senders do not allocate; one grown in a burst is given back as soon as the writer has
//! drained the queue (else once the connection has been quiet for a second), so an idle
//! connection holds one small buffer at most (a tokio channel allocated ~2 KiB per
//! connection up front; swapping the queue's buffer with the writer's batch, as before,
//! kept two).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use chat_protocol::socket_io::Packet;
use futures_util::task::AtomicWaker;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::buffers::{QUIET, SMALL_BATCH};
use super::lock;

/// A packet ready for the wire: the text frame and its binary attachments (sent right after
/// it, in order, as one unit). Cloning shares the bytes.
#[derive(Debug, Clone)]
pub struct EncodedPacket {
    pub text: Utf8Bytes,
    /// `None` without attachments, so the common clone touches one reference count, not two.
    pub attachments: Option<Arc<[Bytes]>>,
}

impl EncodedPacket {
    /// Encodes a Socket.IO packet with its attachments (the packet's attachment count is set
    /// from `attachments`).
    pub fn new(packet: Packet, attachments: Vec<Bytes>) -> EncodedPacket {
        let packet = packet.with_attachments(attachments.len());
        EncodedPacket {
            text: Utf8Bytes::from(packet.encode_frame()),
            attachments: (!attachments.is_empty()).then(|| attachments.into()),
        }
    }

    /// The binary frames that follow the text frame.
    pub fn attachments(&self) -> &[Bytes] {
        self.attachments.as_deref().unwrap_or_default()
    }

    /// A whole Engine.IO text frame, already encoded (open, ping, a typed send).
    pub fn raw(text: String) -> EncodedPacket {
        EncodedPacket {
            text: Utf8Bytes::from(text),
            attachments: None,
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
    /// The client went away without a close (a reset, a killed process, a dropped network):
    /// what a vanished client is, not a protocol error.
    pub const CONNECTION_RESET: CloseReason = CloseReason {
        code: 1006,
        reason: "connection reset",
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
    /// The transport went away (a polling client hung up on its held GET).
    pub const TRANSPORT_CLOSE: CloseReason = CloseReason {
        code: 1006,
        reason: "transport close",
    };
    /// The transport failed (a polling answer the client did not take).
    pub const TRANSPORT_ERROR: CloseReason = CloseReason {
        code: 1006,
        reason: "transport error",
    };
    pub const FORCED: CloseReason = CloseReason {
        code: 1008,
        reason: "forced close",
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// A volatile packet did not fit and was dropped.
    Dropped,
    /// The connection is closed (or was just closed for being too slow).
    Closed,
    /// The data given to a typed send (`send_json`, `emit_json`) did not serialise to JSON.
    Unserializable,
}

/// The sending side of a connection's queue, plus the means to close that connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// What the writer's wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Packets were moved into the batch.
    Packets,
    /// The connection is closed.
    Closed,
}

/// The receiving side, owned by the connection's writer.
pub(crate) struct OutboxReceiver {
    shared: Arc<Shared>,
    /// The last batch larger than [`SMALL_BATCH`], if the queue's buffer it grew has not been
    /// given back.
    burst_at: Option<Instant>,
    /// The last take ended with a packet queued by [`Outbox::send_alone`].
    ended_alone: bool,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// The writer waiting for packets.
    waker: AtomicWaker,
    /// Cancelled by [`Outbox::close`]; for a session's queue a child of the engine's shutdown
    /// token, so the session's reader waits on this one token for both ([`session_outbox`]).
    closer: CancellationToken,
    /// Packets and bytes queued at most (see the module doc).
    bounds: Bounds,
    /// The bounds a volatile packet must fit in: half of each (computed once: every send of
    /// a fan-out checks them).
    volatile: Bounds,
}

#[derive(Debug, Default)]
struct Queue {
    packets: VecDeque<EncodedPacket>,
    /// The queued packets' size in bytes ([`size`]).
    bytes: usize,
    /// Closed, or the writer is gone: nothing more is queued. (A flag here rather than
    /// asking the cancellation token, which takes a lock of its own on every send.)
    closed: bool,
    reason: Option<CloseReason>,
    /// Packets ever taken out of the queue (positions in `cuts` count from the first).
    taken: u64,
    /// Positions of the packets that end a batch (queued by [`Outbox::send_alone`]); empty
    /// almost always, and then a take is the plain swap.
    cuts: VecDeque<u64>,
}

/// A packet's size in a queue's byte count: its text and its attachments.
fn size(packet: &EncodedPacket) -> usize {
    packet.text.len() + packet.attachments().iter().map(Bytes::len).sum::<usize>()
}

/// A queue's bounds: packets, and bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub packets: usize,
    pub bytes: usize,
}

/// A queue of `capacity` packets (and 64 KiB a packet on average), closed only by
/// [`Outbox::close`] (or its receiver's drop): for tests; a session's queue is a
/// [`session_outbox`].
#[cfg(test)]
pub(crate) fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let bounds = Bounds {
        packets: capacity,
        bytes: capacity.saturating_mul(64 * 1024),
    };
    queue_with(bounds, CancellationToken::new())
}

/// A session's queue (a WebSocket connection's, a polling session's): like [`outbox`], and
/// its close token ([`Outbox::closer_token`]) is cancelled by the engine's `shutdown` too.
/// So the session's reader waits on one token for "closed from elsewhere" and "server
/// shutting down" (each wait is ~70 bytes held in every connection's task for its life) and
/// tells them apart by [`Outbox::is_closed`], which only a close sets.
pub(crate) fn session_outbox(
    bounds: Bounds,
    shutdown: &CancellationToken,
) -> (Outbox, OutboxReceiver) {
    queue_with(bounds, shutdown.child_token())
}

fn queue_with(bounds: Bounds, closer: CancellationToken) -> (Outbox, OutboxReceiver) {
    let bounds = Bounds {
        packets: bounds.packets.max(1),
        bytes: bounds.bytes.max(1),
    };
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        waker: AtomicWaker::new(),
        closer,
        bounds,
        volatile: Bounds {
            packets: bounds.packets.div_ceil(2),
            bytes: bounds.bytes / 2,
        },
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        OutboxReceiver {
            shared,
            burst_at: None,
            ended_alone: false,
        },
    )
}

impl Outbox {
    /// Queues a packet without waiting (see the module doc for the slow-consumer rule).
    pub fn send(&self, packet: EncodedPacket, volatile: bool) -> Result<(), SendError> {
        self.push(packet, volatile).map(|_| ())
    }

    /// Queues a packet as [`Outbox::send`] does (never volatile) and says where it stands:
    /// the number of packets queued before it since the queue began, for
    /// [`Outbox::was_taken`].
    pub(crate) fn send_counted(&self, packet: EncodedPacket) -> Result<u64, SendError> {
        self.push(packet, false)
    }

    /// Whether the packet [`Outbox::send_counted`] placed at `position` has left the queue
    /// (taken by the writer, or by a held GET): before that, the client cannot have read it.
    pub(crate) fn was_taken(&self, position: u64) -> bool {
        lock(&self.shared.queue).taken > position
    }

    fn push(&self, packet: EncodedPacket, volatile: bool) -> Result<u64, SendError> {
        let size = size(&packet);
        let mut queue = lock(&self.shared.queue);
        if queue.closed {
            return Err(SendError::Closed);
        }
        if volatile && full(&queue, size, self.shared.volatile) {
            return Err(SendError::Dropped);
        }
        if full(&queue, size, self.shared.bounds) {
            drop(queue);
            self.close(CloseReason::SLOW_CONSUMER);
            return Err(SendError::Closed);
        }
        let was_empty = queue.packets.is_empty();
        let position = queue.taken + queue.packets.len() as u64;
        queue.bytes += size;
        queue.packets.push_back(packet);
        drop(queue);
        // The writer takes what is queued before it waits again, so it needs waking only when
        // the queue goes from empty to not.
        if was_empty {
            self.shared.waker.wake();
        }
        Ok(position)
    }

    /// Queues a packet that ends its batch: the writer writes it and what precedes it in one
    /// write, and what follows in another (a CONNECT answer, so that a client that reads one
    /// frame per TCP chunk sees it apart from the first event). Never dropped for a full
    /// queue; closes the connection instead, like any non-volatile packet.
    pub fn send_alone(&self, packet: EncodedPacket) -> Result<(), SendError> {
        let size = size(&packet);
        let mut queue = lock(&self.shared.queue);
        if queue.closed {
            return Err(SendError::Closed);
        }
        if full(&queue, size, self.shared.bounds) {
            drop(queue);
            self.close(CloseReason::SLOW_CONSUMER);
            return Err(SendError::Closed);
        }
        let was_empty = queue.packets.is_empty();
        queue.bytes += size;
        let at = queue.taken + queue.packets.len() as u64;
        queue.cuts.push_back(at);
        queue.packets.push_back(packet);
        drop(queue);
        if was_empty {
            self.shared.waker.wake();
        }
        Ok(())
    }

    /// Closes the connection with `reason` (the first reason given wins).
    pub fn close(&self, reason: CloseReason) {
        self.shared.close(reason);
    }

    /// Whether the connection is closed (by [`Outbox::close`], or its writer is gone): its
    /// queue refuses packets. The engine's shutdown alone does not close it; the session's
    /// reader does, once it has seen the shutdown.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.queue).closed
    }

    /// Why it was closed (the first reason given), once it is.
    pub(crate) fn reason(&self) -> Option<CloseReason> {
        lock(&self.shared.queue).reason.clone()
    }
}

impl OutboxReceiver {
    /// Waits until packets are queued and moves up to `max` of them into `batch` (which must
    /// be empty; its buffer is used, and grown if need be).
    #[cfg(test)]
    pub async fn next_batch(&mut self, batch: &mut VecDeque<EncodedPacket>, max: usize) -> Next {
        std::future::poll_fn(|cx| self.poll_next_batch(cx, batch, max)).await
    }

    /// Waits for a batch, as a poll, for a writer that also waits on other things: ready
    /// with [`Next::Packets`] once some (up to `max`) are in `batch`, or with
    /// [`Next::Closed`] once the connection is closed (then nothing is taken; see
    /// [`OutboxReceiver::take_queued`]).
    pub fn poll_next_batch(
        &mut self,
        cx: &mut std::task::Context<'_>,
        batch: &mut VecDeque<EncodedPacket>,
        max: usize,
    ) -> Poll<Next> {
        debug_assert!(batch.is_empty());
        if let Some(next) = self.take(batch, max, true) {
            return Poll::Ready(next);
        }
        self.trim_if_quiet();
        self.shared.waker.register(cx.waker());
        // Checked again after registering, so a packet queued in between is not missed.
        match self.take(batch, max, true) {
            Some(next) => Poll::Ready(next),
            None => Poll::Pending,
        }
    }

    /// Ready once the connection is closed (a writer blocked on a socket waits on this).
    pub fn poll_closed(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if lock(&self.shared.queue).closed {
            return Poll::Ready(());
        }
        self.shared.waker.register(cx.waker());
        if lock(&self.shared.queue).closed {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Moves up to `max` queued packets into `batch` without waiting, also after the close
    /// (what was queued before it); `false` when none were queued.
    pub fn take_queued(&mut self, batch: &mut VecDeque<EncodedPacket>, max: usize) -> bool {
        self.take(batch, max, false).is_some()
    }

    /// Moves up to `max` packets into `batch` (the queue keeps its buffer: the batch's is
    /// the writer's, lent for the batch); `None` when there are none (and, with
    /// `closed_first`, the connection is open).
    fn take(
        &mut self,
        batch: &mut VecDeque<EncodedPacket>,
        max: usize,
        closed_first: bool,
    ) -> Option<Next> {
        let mut queue = lock(&self.shared.queue);
        if closed_first && queue.closed {
            return Some(Next::Closed);
        }
        if queue.packets.is_empty() {
            return None;
        }
        // A packet queued to end its batch limits this take to it.
        let to_cut = queue
            .cuts
            .front()
            .map(|&cut| (cut - queue.taken) as usize + 1);
        let max = to_cut.map_or(max, |n| max.min(n));
        self.ended_alone = to_cut.is_some_and(|n| n <= max);
        // Moved one by one (a batch is one or two packets almost always: cheaper than
        // `append`'s slice copies).
        let n = queue.packets.len().min(max);
        for _ in 0..n {
            if let Some(packet) = queue.packets.pop_front() {
                queue.bytes -= size(&packet);
                batch.push_back(packet);
            }
        }
        queue.taken += batch.len() as u64;
        if !queue.cuts.is_empty() {
            let taken = queue.taken;
            while queue.cuts.front().is_some_and(|&c| c < taken) {
                queue.cuts.pop_front();
            }
        }
        drop(queue);
        if batch.len() > SMALL_BATCH {
            self.burst_at = Some(Instant::now());
        }
        Some(Next::Packets)
    }

    /// Whether the last batch taken ended with a packet queued by [`Outbox::send_alone`].
    pub(crate) fn ended_alone(&self) -> bool {
        self.ended_alone
    }

    /// Moves queued packets into `batch` without waiting while their encoded size (`cost`)
    /// stays within `budget` (at least one, when any is queued), also after the close; the
    /// number moved. For a long-polling answer, whose payload is one buffer.
    pub fn take_within(
        &mut self,
        batch: &mut VecDeque<EncodedPacket>,
        mut budget: usize,
        cost: impl Fn(&EncodedPacket) -> usize,
    ) -> usize {
        let mut queue = lock(&self.shared.queue);
        let mut n = 0;
        while let Some(first) = queue.packets.front() {
            let c = cost(first);
            if n > 0 && c > budget {
                break;
            }
            budget = budget.saturating_sub(c);
            queue.bytes -= size(first);
            if let Some(p) = queue.packets.pop_front() {
                batch.push_back(p);
            }
            n += 1;
        }
        queue.taken += n as u64;
        let taken = queue.taken;
        while queue.cuts.front().is_some_and(|&c| c < taken) {
            queue.cuts.pop_front();
        }
        n
    }

    /// Ready once packets are queued or the connection is closed, taking nothing.
    pub fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let ready = |q: &Queue| q.closed || !q.packets.is_empty();
        if ready(&lock(&self.shared.queue)) {
            return Poll::Ready(());
        }
        self.shared.waker.register(cx.waker());
        if ready(&lock(&self.shared.queue)) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.queue).closed
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        lock(&self.shared.queue).packets.is_empty()
    }

    /// The writer has written a batch of `written` packets: if it was a burst's (over
    /// [`SMALL_BATCH`] packets), gives the queue's grown buffer back if nothing is queued
    /// meanwhile, without waiting for the next packet and a [`QUIET`] second (an idle member
    /// would keep a join storm's buffer until its next packet). One lock, only after such a
    /// batch; a batch of [`SMALL_BATCH`] or fewer costs nothing here.
    pub(crate) fn trim_drained(&mut self, written: usize) {
        if written <= SMALL_BATCH {
            return;
        }
        let mut queue = lock(&self.shared.queue);
        if queue.packets.is_empty() {
            if queue.packets.capacity() > SMALL_BATCH {
                queue.packets = VecDeque::new();
            }
            // The buffer is small again: nothing left for the quiet trim.
            self.burst_at = None;
        }
    }

    /// About to wait: if the last burst is [`QUIET`] ago, gives back the buffer it grew.
    fn trim_if_quiet(&mut self) {
        if self.burst_at.is_none_or(|t| t.elapsed() < QUIET) {
            return;
        }
        self.burst_at = None;
        let mut queue = lock(&self.shared.queue);
        if queue.packets.is_empty() && queue.packets.capacity() > SMALL_BATCH {
            queue.packets = VecDeque::new();
        }
    }

    pub fn reason(&self) -> Option<CloseReason> {
        lock(&self.shared.queue).reason.clone()
    }

    /// Closes the connection from the writer's side (the first reason given wins).
    pub fn close(&self, reason: CloseReason) {
        self.shared.close(reason);
    }
}

/// Whether a packet of `size` bytes does not fit in `bounds` (a packet over the byte bound
/// alone fits an empty queue).
fn full(queue: &Queue, size: usize, bounds: Bounds) -> bool {
    queue.packets.len() >= bounds.packets
        || (!queue.packets.is_empty() && queue.bytes + size > bounds.bytes)
}

impl Shared {
    /// Refuses further packets, records the first reason given, and signals the close.
    fn close(&self, reason: CloseReason) {
        {
            let mut queue = lock(&self.queue);
            queue.closed = true;
            queue.reason.get_or_insert(reason);
        }
        self.closer.cancel();
        // The writer may be waiting for packets or on a blocked socket.
        self.waker.wake();
    }
}

impl Drop for OutboxReceiver {
    /// The writer is gone (normally after a close; otherwise it ended abnormally): nothing
    /// more is queued and the connection is told to close.
    fn drop(&mut self) {
        self.shared.close(CloseReason {
            code: 1006,
            reason: "transport error",
        });
        // Closed first, so nothing is queued after this.
        let mut queue = lock(&self.shared.queue);
        queue.packets = VecDeque::new();
        queue.bytes = 0;
    }
}

impl Outbox {
    /// The queue buffer's capacity, in packets (what a connection holds between batches).
    #[cfg(test)]
    pub(crate) fn queue_capacity(&self) -> usize {
        lock(&self.shared.queue).packets.capacity()
    }

    /// The token that [`Outbox::close`] cancels (and, for a [`session_outbox`], the
    /// engine's shutdown).
    pub(crate) fn closer_token(&self) -> CancellationToken {
        self.shared.closer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: usize) -> EncodedPacket {
        EncodedPacket::raw(format!("4{n}"))
    }

    fn texts(batch: &VecDeque<EncodedPacket>) -> Vec<String> {
        batch.iter().map(|p| p.text.as_str().to_owned()).collect()
    }

    #[tokio::test]
    async fn batches_keep_order_and_respect_max() {
        let (tx, mut rx) = outbox(100);
        for n in 0..5 {
            tx.send(packet(n), false).unwrap();
        }
        let mut batch = VecDeque::new();
        rx.next_batch(&mut batch, 3).await;
        assert_eq!(texts(&batch), ["40", "41", "42"]);
        batch.clear();
        rx.next_batch(&mut batch, 3).await;
        assert_eq!(texts(&batch), ["43", "44"]);
    }

    #[tokio::test]
    async fn a_close_wakes_the_writer_and_leaves_what_was_queued_to_take() {
        let (tx, mut rx) = outbox(100);
        let waiter = tokio::spawn(async move {
            let mut batch = VecDeque::new();
            let first = rx.next_batch(&mut batch, 8).await;
            (rx, first)
        });
        tokio::task::yield_now().await;
        tx.close(CloseReason::NORMAL);
        let (mut rx, first) = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("writer woken by the close")
            .unwrap();
        assert_eq!(first, Next::Closed);
        // Packets queued before a close are still there for the writer's last flush.
        let (tx, mut rx2) = outbox(100);
        tx.send(packet(1), false).unwrap();
        tx.close(CloseReason::NORMAL);
        let mut batch = VecDeque::new();
        assert_eq!(rx2.next_batch(&mut batch, 8).await, Next::Closed);
        assert!(batch.is_empty());
        assert!(rx2.take_queued(&mut batch, 8));
        assert_eq!(texts(&batch), ["41"]);
        batch.clear();
        assert!(!rx.take_queued(&mut batch, 8));
    }

    #[tokio::test]
    async fn a_waiting_writer_is_woken_by_a_send() {
        let (tx, mut rx) = outbox(4);
        let waiter = tokio::spawn(async move {
            let mut batch = VecDeque::new();
            rx.next_batch(&mut batch, 8).await;
            texts(&batch)
        });
        tokio::task::yield_now().await;
        tx.send(packet(7), false).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("writer woken")
            .unwrap();
        assert_eq!(got, ["47"]);
    }

    #[test]
    fn full_queue_drops_volatile_and_closes_for_the_rest() {
        let (tx, rx) = outbox(2);
        tx.send(packet(0), false).unwrap();
        tx.send(packet(1), false).unwrap();
        assert_eq!(tx.send(packet(2), true), Err(SendError::Dropped));
        assert!(!tx.is_closed());
        assert_eq!(tx.send(packet(3), false), Err(SendError::Closed));
        assert!(tx.is_closed());
        assert_eq!(rx.reason(), Some(CloseReason::SLOW_CONSUMER));
        // Closed is final, even with room in the queue.
        assert_eq!(tx.send(packet(4), true), Err(SendError::Closed));
    }

    /// A packet of `len` bytes.
    fn sized(len: usize) -> EncodedPacket {
        EncodedPacket::raw("x".repeat(len))
    }

    fn bounded(packets: usize, bytes: usize) -> (Outbox, OutboxReceiver) {
        queue_with(Bounds { packets, bytes }, CancellationToken::new())
    }

    #[test]
    fn volatile_packets_fit_only_in_the_first_half_of_the_queue() {
        let (tx, rx) = bounded(4, 1000);
        tx.send(packet(0), false).unwrap();
        tx.send(packet(1), true).unwrap();
        // Half the packets queued: a volatile one is dropped, the rest still fit.
        assert_eq!(tx.send(packet(2), true), Err(SendError::Dropped));
        tx.send(packet(3), false).unwrap();
        tx.send(packet(4), false).unwrap();
        assert!(!tx.is_closed());
        // And by bytes: over half of them, dropped.
        let (tx, _rx2) = bounded(100, 1000);
        tx.send(sized(400), false).unwrap();
        assert_eq!(tx.send(sized(200), true), Err(SendError::Dropped));
        tx.send(sized(100), true).unwrap();
        tx.send(sized(450), false).unwrap();
        assert!(!tx.is_closed());
        drop(rx);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_too() {
        let (tx, mut rx) = bounded(100, 1000);
        // One packet over the bound fits an empty queue (any one reply can be sent).
        tx.send(sized(5000), false).unwrap();
        let mut batch = VecDeque::new();
        assert_eq!(rx.next_batch(&mut batch, 100).await, Next::Packets);
        batch.clear();
        for _ in 0..3 {
            tx.send(sized(300), false).unwrap();
        }
        assert_eq!(rx.next_batch(&mut batch, 2).await, Next::Packets);
        batch.clear();
        // Taken bytes no longer count: 300 queued, so 700 more fit...
        tx.send(sized(700), false).unwrap();
        assert!(!tx.is_closed());
        // ...and one byte more closes the connection (slow consumer), however few packets.
        assert_eq!(tx.send(sized(1), false), Err(SendError::Closed));
        assert_eq!(rx.reason(), Some(CloseReason::SLOW_CONSUMER));
    }

    #[test]
    fn sends_after_the_writer_is_gone_are_refused() {
        let (tx, rx) = outbox(8);
        drop(rx);
        assert_eq!(tx.send(packet(0), false), Err(SendError::Closed));
        // The connection is told to close too, with a reason.
        assert!(tx.is_closed());
        assert_eq!(
            lock(&tx.shared.queue).reason.as_ref().map(|r| r.code),
            Some(1006)
        );
    }

    #[tokio::test]
    async fn a_take_moves_the_packets_and_leaves_the_queue_its_buffer() {
        // The batch's buffer is the writer's (lent per batch): the queue keeps its own, so a
        // connection holds one queue buffer between batches, not a second one for batches.
        let (tx, mut rx) = outbox(100);
        for n in 0..3 {
            tx.send(packet(n), false).unwrap();
        }
        let held = tx.queue_capacity();
        assert!(held >= 3);
        let mut batch = VecDeque::new();
        rx.next_batch(&mut batch, 256).await;
        assert_eq!(texts(&batch), ["40", "41", "42"]);
        assert_eq!(tx.queue_capacity(), held);
        // More than `max`: the rest stays, in order.
        for n in 3..8 {
            tx.send(packet(n), false).unwrap();
        }
        batch.clear();
        rx.next_batch(&mut batch, 2).await;
        assert_eq!(texts(&batch), ["43", "44"]);
        batch.clear();
        rx.next_batch(&mut batch, 256).await;
        assert_eq!(texts(&batch), ["45", "46", "47"]);
    }

    #[tokio::test]
    async fn a_queue_grown_in_a_burst_is_given_back_once_quiet() {
        let (tx, mut rx) = outbox(1024);
        for n in 0..600 {
            tx.send(packet(n), false).unwrap();
        }
        let mut batch = VecDeque::new();
        let mut got = Vec::new();
        while got.len() < 600 {
            rx.next_batch(&mut batch, 256).await;
            assert!(batch.len() <= 256);
            got.extend(texts(&batch));
            batch.clear();
        }
        let want: Vec<String> = (0..600).map(|n| format!("4{n}")).collect();
        assert_eq!(got, want);
        // Right after the burst the buffer is kept (a busy connection reuses it)...
        tx.send(packet(600), false).unwrap();
        rx.next_batch(&mut batch, 256).await;
        batch.clear();
        assert!(tx.queue_capacity() > SMALL_BATCH, "{}", tx.queue_capacity());
        // ...and given back when the writer waits after a quiet second.
        tokio::time::sleep(QUIET + std::time::Duration::from_millis(50)).await;
        tx.send(packet(601), false).unwrap();
        rx.next_batch(&mut batch, 256).await;
        assert_eq!(texts(&batch), ["4601"]);
        batch.clear();
        let wait = rx.next_batch(&mut batch, 256);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), wait)
                .await
                .is_err()
        );
        assert!(
            tx.queue_capacity() <= SMALL_BATCH,
            "{}",
            tx.queue_capacity()
        );
    }

    #[tokio::test]
    async fn a_bursts_queue_is_given_back_once_written_and_drained() {
        let (tx, mut rx) = outbox(1024);
        let mut batch = VecDeque::new();
        for n in 0..200 {
            tx.send(packet(n), false).unwrap();
        }
        rx.next_batch(&mut batch, 256).await;
        assert_eq!(batch.len(), 200);
        assert!(tx.queue_capacity() >= 200);
        rx.trim_drained(batch.len());
        // Given back at once, with no quiet second and no further packet.
        assert_eq!(tx.queue_capacity(), 0);
        // A queue that is not drained keeps its buffer (the next batch is in it).
        batch.clear();
        for n in 0..200 {
            tx.send(packet(n), false).unwrap();
        }
        rx.next_batch(&mut batch, 256).await;
        for n in 0..40 {
            tx.send(packet(n), false).unwrap();
        }
        rx.trim_drained(batch.len());
        assert!(tx.queue_capacity() >= 200);
        // A small batch's queue buffer is kept as it is (no allocation per batch).
        let (tx, mut rx) = outbox(1024);
        batch.clear();
        tx.send(packet(0), false).unwrap();
        rx.next_batch(&mut batch, 256).await;
        let kept = tx.queue_capacity();
        assert!(kept > 0 && kept <= SMALL_BATCH, "{kept}");
        rx.trim_drained(batch.len());
        assert_eq!(tx.queue_capacity(), kept);
    }

    #[test]
    fn first_close_reason_wins() {
        let (tx, rx) = outbox(8);
        tx.close(CloseReason::PING_TIMEOUT);
        tx.close(CloseReason::NORMAL);
        rx.close(CloseReason::FORCED);
        assert_eq!(rx.reason(), Some(CloseReason::PING_TIMEOUT));
    }

    #[tokio::test]
    async fn a_packet_sent_alone_ends_its_batch() {
        let (tx, mut rx) = outbox(100);
        tx.send(packet(0), false).unwrap();
        tx.send_alone(packet(1)).unwrap();
        tx.send(packet(2), false).unwrap();
        tx.send_alone(packet(3)).unwrap();
        tx.send_alone(packet(4)).unwrap();
        tx.send(packet(5), false).unwrap();
        let mut batch = VecDeque::new();
        let mut batches = Vec::new();
        for _ in 0..4 {
            rx.next_batch(&mut batch, 256).await;
            batches.push(texts(&batch));
            batch.clear();
        }
        assert_eq!(
            batches,
            [vec!["40", "41"], vec!["42", "43"], vec!["44"], vec!["45"]]
        );
        // Without cuts, a take is everything again.
        tx.send(packet(6), false).unwrap();
        tx.send(packet(7), false).unwrap();
        rx.next_batch(&mut batch, 256).await;
        assert_eq!(texts(&batch), ["46", "47"]);
        assert!(lock(&rx.shared.queue).cuts.is_empty());
    }

    #[test]
    fn take_within_keeps_to_the_budget_and_takes_at_least_one() {
        let (tx, mut rx) = outbox(100);
        for n in 0..5 {
            tx.send(packet(n), false).unwrap();
        }
        let mut batch = VecDeque::new();
        assert_eq!(rx.take_within(&mut batch, 1, |p| p.text.len()), 1);
        assert_eq!(rx.take_within(&mut batch, 5, |p| p.text.len()), 2);
        assert_eq!(rx.take_within(&mut batch, 100, |p| p.text.len()), 2);
        assert_eq!(rx.take_within(&mut batch, 100, |p| p.text.len()), 0);
        assert_eq!(texts(&batch), ["40", "41", "42", "43", "44"]);
    }
}
