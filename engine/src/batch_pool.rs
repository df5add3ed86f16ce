//! Buffers lent for one batch: one spare of each kind per worker thread, none per connection.
//!
//! A connection's writer takes a batch of packets out of its queue ([`borrow_packets`]) and
//! gathers their frames into one buffer it writes ([`borrow_gather`], `wire::gather_frames`).
//! Kept by every connection between batches, these buffers cost each member of a busy room
//! a few hundred bytes to a few KiB for its life (the gather buffer up to 4 KiB, the batch a
//! burst's packets); allocated anew for every batch, they would cost fan-out throughput. So
//! each thread keeps one spare of each: a writer borrows them for a batch and gives them back
//! once the socket has taken it. A connection holds them only while a write of its is
//! unfinished (its peer's socket is full); a thread whose spare is lent meanwhile allocates.

use std::cell::Cell;
use std::collections::VecDeque;

use super::buffers::{KEEP_BATCH, KEEP_GATHER};
use super::outbox::EncodedPacket;

thread_local! {
    static GATHER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static PACKETS: Cell<VecDeque<EncodedPacket>> = const { Cell::new(VecDeque::new()) };
}

/// The thread's spare gather buffer (empty), or a new one without capacity if it is lent.
pub fn borrow_gather() -> Vec<u8> {
    GATHER.with(Cell::take)
}

/// Gives `buf` back as the thread's spare gather buffer, unless it grew past
/// [`KEEP_GATHER`] bytes or the spare there is at least as large (then `buf` is dropped).
pub fn give_back_gather(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEEP_GATHER {
        return;
    }
    buf.clear();
    GATHER.with(|spare| {
        let old = spare.take();
        spare.set(if old.capacity() >= buf.capacity() {
            old
        } else {
            buf
        });
    });
}

/// The thread's spare batch buffer (empty), or a new one without capacity if it is lent.
pub fn borrow_packets() -> VecDeque<EncodedPacket> {
    PACKETS.with(Cell::take)
}

/// Gives `batch` back as the thread's spare batch buffer (emptied first: its packets are
/// dropped), unless it grew past [`KEEP_BATCH`] packets or the spare there is at least as
/// large (then `batch` is dropped).
pub fn give_back_packets(mut batch: VecDeque<EncodedPacket>) {
    if batch.capacity() == 0 || batch.capacity() > KEEP_BATCH {
        return;
    }
    batch.clear();
    PACKETS.with(|spare| {
        let old = spare.take();
        spare.set(if old.capacity() >= batch.capacity() {
            old
        } else {
            batch
        });
    });
}

/// The capacity (in packets) of the thread's spare batch buffer, which stays in place.
#[cfg(test)]
pub(crate) fn spare_packets_capacity() -> usize {
    PACKETS.with(|spare| {
        let buf = spare.take();
        let capacity = buf.capacity();
        spare.set(buf);
        capacity
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_lent_again_and_a_huge_one_is_dropped() {
        let mut buf = borrow_gather();
        buf.extend_from_slice(&[1; 1000]);
        let cap = buf.capacity();
        give_back_gather(buf);
        let again = borrow_gather();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), cap);
        // Lent: the thread has no spare until it comes back.
        assert_eq!(borrow_gather().capacity(), 0);
        give_back_gather(again);
        give_back_gather(Vec::with_capacity(KEEP_GATHER + 1));
        assert_eq!(borrow_gather().capacity(), cap);
        assert_eq!(borrow_gather().capacity(), 0);
    }

    #[test]
    fn a_batch_given_back_is_emptied_and_lent_again_and_a_huge_one_is_dropped() {
        let mut batch = borrow_packets();
        for n in 0..10 {
            batch.push_back(EncodedPacket::raw(format!("4{n}")));
        }
        let cap = batch.capacity();
        give_back_packets(batch);
        assert_eq!(spare_packets_capacity(), cap);
        let again = borrow_packets();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), cap);
        assert_eq!(borrow_packets().capacity(), 0);
        // A smaller one does not replace a larger spare; a huge one is not kept.
        give_back_packets(again);
        give_back_packets(VecDeque::with_capacity(1));
        give_back_packets(VecDeque::with_capacity(KEEP_BATCH + 1));
        assert_eq!(borrow_packets().capacity(), cap);
    }
}
