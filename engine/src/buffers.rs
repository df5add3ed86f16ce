//! The engine's buffer policy, in one place: what a connection's buffers keep between
//! batches, and when a burst's buffers are given back.
//!
//! A server with thousands of mostly idle members and a few busy rooms pays for buffers in
//! two ways: allocating per batch costs fan-out throughput (a queue reallocated for every
//! batch cost 7%), and keeping a burst's buffers for a connection's life costs memory (2,000
//! members after one burst would each hold its buffer). So each buffer grows freely for a
//! burst, keeps a small capacity while batches come often, and is given back once the
//! burst is written and drained (the outgoing queue), or lent per batch (the batch and
//! gather buffers), or once the connection has
//! been quiet for [`QUIET`]:
//!
//! | buffer (owner) | kept while busy | given back |
//! |---|---|---|
//! | outgoing queue (`outbox`) | up to [`SMALL_BATCH`] packets | once a larger batch is written and nothing more is queued, else after [`QUIET`] |
//! | batch of packets being written (`batch_pool`) | none: one spare per worker thread (up to [`KEEP_BATCH`] packets), lent from a take to the writer's next wait | at the writer's next wait |
//! | gather buffer for a batch's frames (`batch_pool`) | none: lent with the batch buffer, as a pair (up to [`KEEP_GATHER`] bytes) | at the writer's next wait |
//! | control bytes: pongs, close replies (`connection`) | [`KEEP_CONTROL`] bytes | never over it between batches |
//! | control bytes waiting for the writer (`wire`) | at most [`CONTROL_MAX`]: past it the peer is not reading and is closed | — |
//! | WebSocket read buffer, tungstenite's (`wire`) | [`READ_BUFFER`] bytes (grown to the largest frame read) | fixed |
//! | bytes read past what tungstenite took (`wire::ReadSide`) | none: read [`READ_CHUNK`] at a time onto the stack | as soon as tungstenite takes them |
//! | WebSocket write buffer (`wire`) | none: the writer frames packets itself | — |
//!
//! A writer takes at most [`MAX_BATCH`] frames before it flushes, so one busy connection's
//! vectored write stays bounded; payloads up to [`COPY_UP_TO`] bytes are copied into the
//! gather buffer (the kernel copies one long run much faster than many short slices), larger
//! ones are written from their own shared bytes. Changing any of these is a performance change: measure
//! fan-out and idle memory before and after (BENCHMARKS.md).

use std::time::Duration;

/// A connection that has had no batch for this long is idle: the buffers a burst grew are
/// given back (if the writer did not already when it drained the queue).
pub const QUIET: Duration = Duration::from_secs(1);

/// Most frames a writer takes before one flush.
pub const MAX_BATCH: usize = 256;

/// Outgoing queue capacity (in packets) a busy connection keeps between batches; a batch
/// over it gives the queue's buffer back once written, if nothing more is queued.
pub const SMALL_BATCH: usize = 16;

/// Largest batch buffer (in packets) a worker thread keeps as its spare, lent to one
/// connection's writer per batch (`batch_pool`): a full batch ([`MAX_BATCH`]) fits.
pub const KEEP_BATCH: usize = 1024;

/// Largest gather buffer (in bytes) a worker thread keeps as its spare, lent to one
/// connection's writer per batch (`batch_pool`): a full batch of small frames fits.
pub const KEEP_GATHER: usize = 256 * 1024;

/// Control bytes buffer capacity kept between batches.
pub const KEEP_CONTROL: usize = 4096;

/// Each connection's WebSocket read buffer (tungstenite's), in bytes: a chat message's
/// frame fits; a larger frame grows it (tungstenite reserves a frame's length).
pub const READ_BUFFER: usize = 256;

/// Most bytes taken from the socket by one read (into a scratch buffer on the stack; see
/// `wire::ReadSide`).
pub const READ_CHUNK: usize = 4 * 1024;

/// Most control bytes waiting for the writer. A peer that keeps pinging and never reads
/// would otherwise grow the buffer without bound; past this the connection is closed.
pub const CONTROL_MAX: usize = 64 * 1024;

/// Payloads up to this many bytes are copied into a batch's gather buffer; larger ones are
/// written from their own bytes.
pub const COPY_UP_TO: usize = 1024;
