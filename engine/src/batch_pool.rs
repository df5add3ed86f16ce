//! Buffers lent for one batch: one spare pair per worker thread, none per connection.
//!
//! A connection's writer takes a batch of packets out of its queue and gathers their frames
//! into one buffer it writes (`wire::gather_frames`). Kept by every connection between
//! batches, these buffers cost each member of a busy room a few hundred bytes to a few KiB
//! for its life (the gather buffer up to 4 KiB, the batch a burst's packets); allocated anew
//! for every batch, they would cost fan-out throughput. So each thread keeps one spare
//! [`Lent`] pair: a writer borrows it when it takes a batch and gives it back when it waits
//! again. A connection holds the pair only while a write of its is unfinished (its peer's
//! socket is full); a thread whose spare is lent meanwhile allocates. One thread-local
//! access each way for both buffers: per wake-up, lending costs the writer what lending the
//! gather buffer alone did.

use std::cell::Cell;
use std::collections::VecDeque;

use super::buffers::{KEEP_BATCH, KEEP_GATHER};
use super::outbox::EncodedPacket;

/// A writer's buffers for a batch: the packets taken from the queue, and the bytes their
/// frames are gathered into.
#[derive(Default)]
pub struct Lent {
    pub packets: VecDeque<EncodedPacket>,
    pub gather: Vec<u8>,
}

impl Lent {
    /// Whether this holds no buffer at all (not borrowed, or the spare was lent elsewhere).
    pub fn is_unallocated(&self) -> bool {
        self.packets.capacity() == 0 && self.gather.capacity() == 0
    }
}

thread_local! {
    static SPARE: Cell<Lent> = const {
        Cell::new(Lent {
            packets: VecDeque::new(),
            gather: Vec::new(),
        })
    };
}

/// Puts the thread's spare buffers (empty) in `lent`, unless it holds some already (see
/// [`Lent::is_unallocated`]: then it keeps them); if the spare is lent elsewhere, `lent`
/// stays without buffers.
pub fn borrow_into(lent: &mut Lent) {
    if !lent.is_unallocated() {
        return;
    }
    let spare = SPARE.with(Cell::take);
    discard(std::mem::replace(lent, spare));
}

/// Gives the buffers in `lent` back as the thread's spare (emptied: its packets are
/// dropped) and leaves `lent` without buffers. If the thread has a spare meanwhile (ours
/// was lent elsewhere), of each buffer the larger is kept, unless it grew past
/// [`KEEP_BATCH`] packets or [`KEEP_GATHER`] bytes; the other is dropped.
pub fn give_back(lent: &mut Lent) {
    if lent.is_unallocated() {
        return;
    }
    let mut mine = std::mem::take(lent);
    if !mine.packets.is_empty() {
        mine.packets.clear();
    }
    mine.gather.clear();
    if mine.packets.capacity() > KEEP_BATCH {
        mine.packets = VecDeque::new();
    }
    if mine.gather.capacity() > KEEP_GATHER {
        mine.gather = Vec::new();
    }
    let old = SPARE.with(|spare| spare.replace(mine));
    if old.is_unallocated() {
        // The common case: the spare was ours.
        discard(old);
        return;
    }
    SPARE.with(|spare| {
        let mut kept = spare.take();
        let Lent { packets, gather } = old;
        if packets.capacity() > kept.packets.capacity() {
            kept.packets = packets;
        }
        if gather.capacity() > kept.gather.capacity() {
            kept.gather = gather;
        }
        discard(spare.replace(kept));
    });
}

/// Drops a [`Lent`] that holds no buffer (nothing to free) without running the drop glue of
/// its two empty buffers, which cost the writer's path per wake-up more than the lending.
fn discard(lent: Lent) {
    debug_assert!(lent.is_unallocated());
    std::mem::forget(lent);
}

/// The capacities (packets, bytes) of the thread's spare buffers, which stay in place.
#[cfg(test)]
pub(crate) fn spare_capacities() -> (usize, usize) {
    let mut spare = Lent::default();
    borrow_into(&mut spare);
    let capacities = (spare.packets.capacity(), spare.gather.capacity());
    give_back(&mut spare);
    capacities
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_given_back_are_emptied_and_lent_again_and_huge_ones_are_dropped() {
        let mut lent = Lent::default();
        borrow_into(&mut lent);
        lent.gather.extend_from_slice(&[1; 1000]);
        for n in 0..10 {
            lent.packets.push_back(EncodedPacket::raw(format!("4{n}")));
        }
        let caps = (lent.packets.capacity(), lent.gather.capacity());
        give_back(&mut lent);
        assert!(lent.is_unallocated());
        assert_eq!(spare_capacities(), caps);
        let mut again = Lent::default();
        borrow_into(&mut again);
        assert!(again.packets.is_empty() && again.gather.is_empty());
        assert_eq!((again.packets.capacity(), again.gather.capacity()), caps);
        // Lent: the thread has no spare until it comes back.
        let mut none = Lent::default();
        borrow_into(&mut none);
        assert!(none.is_unallocated());
        give_back(&mut again);
        // Smaller ones do not replace the spare's; huge ones are not kept.
        give_back(&mut Lent {
            packets: VecDeque::with_capacity(1),
            gather: Vec::with_capacity(KEEP_GATHER + 1),
        });
        give_back(&mut Lent {
            packets: VecDeque::with_capacity(KEEP_BATCH + 1),
            gather: Vec::with_capacity(1),
        });
        assert_eq!(spare_capacities(), caps);
    }

    #[test]
    fn borrowing_into_buffers_held_keeps_them_and_leaves_the_spare() {
        let mut spare = Lent::default();
        borrow_into(&mut spare);
        spare.gather.reserve(64);
        give_back(&mut spare);
        let before = spare_capacities();
        let mut held = Lent {
            packets: VecDeque::with_capacity(3),
            gather: Vec::with_capacity(5),
        };
        let held_caps = (held.packets.capacity(), held.gather.capacity());
        borrow_into(&mut held);
        assert_eq!((held.packets.capacity(), held.gather.capacity()), held_caps);
        assert_eq!(spare_capacities(), before, "the spare stays the thread's");
    }
}
