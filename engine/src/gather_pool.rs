//! Gather buffers lent for one batch: one spare per worker thread, none per connection.
//!
//! A connection's writer gathers a batch's frames into one buffer and writes it
//! (`wire::gather_frames`). Kept by every connection between batches, that buffer cost each
//! member of a busy room up to 4 KiB for as long as its batches came within a second of each
//! other; allocated anew for every batch, it would cost fan-out throughput. So each thread
//! keeps one spare: a writer borrows it for a batch and gives it back once the socket has
//! taken the batch. A connection holds a gather buffer only while a write of its is
//! unfinished (its peer's socket is full); a thread whose spare is lent meanwhile allocates.

use std::cell::Cell;

use super::buffers::KEEP_GATHER;

thread_local! {
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The thread's spare buffer (empty), or a new one without capacity if it is lent.
pub fn borrow() -> Vec<u8> {
    SPARE.with(Cell::take)
}

/// Gives `buf` back as the thread's spare, unless it grew past [`KEEP_GATHER`] or the
/// spare there is at least as large (then `buf` is dropped).
pub fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEEP_GATHER {
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        let old = spare.take();
        spare.set(if old.capacity() >= buf.capacity() {
            old
        } else {
            buf
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_lent_again_and_a_huge_one_is_dropped() {
        let mut buf = borrow();
        buf.extend_from_slice(&[1; 1000]);
        let cap = buf.capacity();
        give_back(buf);
        let again = borrow();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), cap);
        // Lent: the thread has no spare until it comes back.
        assert_eq!(borrow().capacity(), 0);
        give_back(again);
        give_back(Vec::with_capacity(KEEP_GATHER + 1));
        assert_eq!(borrow().capacity(), cap);
        assert_eq!(borrow().capacity(), 0);
    }
}
