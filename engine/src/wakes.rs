//! Wake-ups deferred to the end of a batch: a thread that queues packets for many connections
//! in one go (the chat store's writer answering a commit's messages) wakes each connection's
//! writer once, when the batch is done, instead of at its first packet.
//!
//! Why: a writer woken at a connection's first ack of a batch may run at once on the other
//! core, write that ack alone and be woken again for the next one; deferred, it finds all of
//! that connection's acks queued and writes them in one frame gather, one `send`, which the
//! client also reads in one `recv`. Nothing is reordered: packets are queued at once, in
//! order; only the wake-up waits, and only until the batch's closure returns.
//!
//! Inside [`wake_after`], [`Outbox::send`](crate::outbox::Outbox::send) takes the writer's
//! registered waker (if any) and keeps it here; the wakers are woken when the outermost
//! `wake_after` returns or unwinds. The list holds at most one waker per connection queued to
//! in the batch (a waker is taken, so a second packet to the same connection finds none).

use std::cell::RefCell;
use std::task::Waker;

use futures_util::task::AtomicWaker;

thread_local! {
    /// `Some` while this thread is inside [`wake_after`]: the wakers to wake at its end (the
    /// `Vec` is kept between batches, so a batch allocates nothing once it has grown).
    static DEFERRED: RefCell<(bool, Vec<Waker>)> = const { RefCell::new((false, Vec::new())) };
}

/// Runs `f`; the connection writers that packets queued inside it (on this thread) would
/// wake are woken once, when `f` returns (or panics). Nested calls defer to the outermost.
pub fn wake_after<R>(f: impl FnOnce() -> R) -> R {
    let outermost = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        !std::mem::replace(&mut d.0, true)
    });
    if !outermost {
        return f();
    }
    /// Wakes what was deferred, also when `f` unwinds.
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let mut wakers = DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                d.0 = false;
                std::mem::take(&mut d.1)
            });
            // Outside the borrow: a waker runs code of its own.
            wakers.drain(..).for_each(Waker::wake);
            DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                if d.1.capacity() < wakers.capacity() {
                    d.1 = wakers;
                }
            });
        }
    }
    let _flush = Flush;
    f()
}

/// Wakes the task registered in `waker` now, or at the end of the enclosing [`wake_after`].
pub(crate) fn wake(waker: &AtomicWaker) {
    let deferred = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        if !d.0 {
            return false;
        }
        if let Some(w) = waker.take() {
            d.1.push(w);
        }
        true
    });
    if !deferred {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn registered() -> (Arc<Count>, AtomicWaker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let atomic = AtomicWaker::new();
        atomic.register(&Waker::from(count.clone()));
        (count, atomic)
    }

    #[test]
    fn outside_a_batch_the_wake_is_immediate() {
        let (count, atomic) = registered();
        wake(&atomic);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn inside_a_batch_each_writer_is_woken_once_at_its_end() {
        let (a, wa) = registered();
        let (b, wb) = registered();
        wake_after(|| {
            wake(&wa);
            wake(&wb);
            wake(&wa);
            // Nested: still deferred to the outermost.
            wake_after(|| wake(&wb));
            assert_eq!(a.0.load(Ordering::SeqCst), 0);
            assert_eq!(b.0.load(Ordering::SeqCst), 0);
        });
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        // After the batch, wakes are immediate again.
        wa.register(&Waker::from(a.clone()));
        wake(&wa);
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_batch_still_wakes() {
        let (a, wa) = registered();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wake_after(|| {
                wake(&wa);
                panic!("batch failed");
            })
        }));
        assert!(result.is_err());
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
    }
}
