//! Writer wake-ups held until a reader's poll ends, so that the messages a reader handles in
//! one go reach each member's writer as one batch.
//!
//! A broadcast wakes a member's writer when its queue goes from empty to not. One publisher
//! with many messages in flight is read several messages at a time, and its reader queues
//! them one broadcast after the other: a writer woken by the first could run on the other
//! worker thread before the rest are queued, and write the burst in several writes, each a
//! `send`, a wake-up and a poll here and a wake-up and a read for the client. Inside
//! [`holding`], [`queued`] keeps the waker instead, and the wake-ups go out when the reader's
//! poll ends (it has handled what it could read and waits), so each writer is woken once per
//! burst and writes it in one go: one `send` per recipient per batch.
//!
//! Bounds: a wake-up is held at most until the poll ends (tokio's cooperative budget ends a
//! reader's poll after 128 socket reads), and not past [`HOLD_PUSHES`] packets queued while
//! holding, nor past a queue reaching [`HOLD_DEPTH`](crate::buffers::HOLD_DEPTH) packets (or half its capacity): then
//! every held wake-up goes out at once. A queue of few members never fills while its writer
//! waits for the end of the poll. A held waker costs 16 bytes of a vector each worker thread
//! keeps (up to [`KEEP_HELD`] entries between polls), nothing per connection.
//!
//! Nothing else changes: what is queued, its order, the slow-consumer and volatile rules are
//! the queue's; a close wakes its writer at once.

use std::cell::RefCell;
use std::future::Future;
use std::task::Waker;

use crate::buffers::{HOLD_PUSHES, KEEP_HELD};

thread_local! {
    static HELD: RefCell<Held> = const {
        RefCell::new(Held { depth: 0, pushes: 0, wakers: Vec::new() })
    };
}

/// This thread's held wake-ups.
struct Held {
    /// Nested [`holding`] polls running on this thread (0: wake at once).
    depth: u32,
    /// Packets queued since the wake-ups were last released.
    pushes: usize,
    wakers: Vec<Waker>,
}

/// Runs `fut`, holding the writer wake-ups its polls cause until each poll ends.
pub(crate) async fn holding<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _hold = Hold::enter();
        fut.as_mut().poll(cx)
    })
    .await
}

/// A packet was queued; `waker` is its writer's when the queue went from empty to not (and
/// the writer was waiting), and `deep` says the queue is at [`HOLD_DEPTH`](crate::buffers::HOLD_DEPTH) or half full.
/// Wakes now outside [`holding`], else holds the waker (see the module doc for the bounds).
pub(crate) fn queued(waker: Option<Waker>, deep: bool) {
    enum Then {
        WakeNow(Option<Waker>),
        Held,
        Release(Vec<Waker>),
    }
    let then = HELD.with_borrow_mut(|held| {
        if held.depth == 0 {
            return Then::WakeNow(waker);
        }
        held.wakers.extend(waker);
        held.pushes += 1;
        if held.pushes >= HOLD_PUSHES || deep {
            Then::Release(take(held))
        } else {
            Then::Held
        }
    });
    match then {
        Then::WakeNow(Some(waker)) => waker.wake(),
        Then::WakeNow(None) | Then::Held => {}
        Then::Release(wakers) => wake_all(wakers),
    }
}

/// The held wakers, leaving the thread's vector empty (its buffer goes with them and comes
/// back in [`wake_all`]).
fn take(held: &mut Held) -> Vec<Waker> {
    held.pushes = 0;
    std::mem::take(&mut held.wakers)
}

/// Wakes each (no borrow of [`HELD`] is held: a waker may run anything), then gives the
/// vector back as the thread's buffer unless it grew past [`KEEP_HELD`].
fn wake_all(mut wakers: Vec<Waker>) {
    for waker in wakers.drain(..) {
        waker.wake();
    }
    if wakers.capacity() <= KEEP_HELD {
        HELD.with_borrow_mut(|held| {
            if held.wakers.capacity() < wakers.capacity() {
                wakers.append(&mut held.wakers);
                held.wakers = wakers;
            }
        });
    }
}

/// One poll of a [`holding`] future: entered before it, released after it, also when the
/// poll panics.
struct Hold;

impl Hold {
    fn enter() -> Hold {
        HELD.with_borrow_mut(|held| held.depth += 1);
        Hold
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let wakers = HELD.with_borrow_mut(|held| {
            held.depth -= 1;
            (held.depth == 0).then(|| take(held))
        });
        if let Some(wakers) = wakers {
            wake_all(wakers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffers::HOLD_DEPTH;
    use crate::outbox::{EncodedPacket, outbox};
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake};

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Count {
        fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Polls `fut` once with a no-op waker (it must finish in that poll).
    fn poll_once<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("the future waited"),
        }
    }

    #[test]
    fn a_burst_wakes_each_writer_once_when_the_poll_ends() {
        let writers: Vec<_> = (0..3).map(|_| outbox(64)).collect();
        let counts: Vec<Arc<Count>> = (0..3).map(|_| Arc::default()).collect();
        let mut receivers = Vec::new();
        let mut senders = Vec::new();
        for ((tx, mut rx), count) in writers.into_iter().zip(&counts) {
            // Each writer waits for packets.
            let waker = Waker::from(count.clone());
            let mut batch = VecDeque::new();
            assert!(
                rx.poll_next_batch(&mut Context::from_waker(&waker), &mut batch, 256)
                    .is_pending()
            );
            senders.push(tx);
            receivers.push(rx);
        }
        poll_once(holding(async {
            // Five messages, each to every member, handled in one poll.
            for n in 0..5 {
                for tx in &senders {
                    tx.send(EncodedPacket::raw(format!("4{n}")), false).unwrap();
                }
            }
            let woken: Vec<usize> = counts.iter().map(|c| c.get()).collect();
            assert_eq!(woken, [0, 0, 0], "woken before the poll ended");
        }));
        let woken: Vec<usize> = counts.iter().map(|c| c.get()).collect();
        assert_eq!(woken, [1, 1, 1], "each writer woken once, after the poll");
        // Each writer then takes the whole burst in one batch.
        for rx in &mut receivers {
            let mut batch = VecDeque::new();
            assert!(rx.take_queued(&mut batch, 256));
            assert_eq!(batch.len(), 5);
        }
    }

    #[test]
    fn outside_a_holding_poll_a_writer_is_woken_at_once() {
        let (tx, mut rx) = outbox(64);
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut batch = VecDeque::new();
        assert!(
            rx.poll_next_batch(&mut Context::from_waker(&waker), &mut batch, 256)
                .is_pending()
        );
        tx.send(EncodedPacket::raw("42".into()), false).unwrap();
        assert_eq!(count.get(), 1);
    }

    #[test]
    fn a_queue_at_the_hold_depth_releases_the_held_wake_ups() {
        let (tx, mut rx) = outbox(1024);
        let (other, mut other_rx) = outbox(1024);
        let (count, other_count) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let mut batch = VecDeque::new();
        for (rx, count) in [(&mut rx, &count), (&mut other_rx, &other_count)] {
            let waker = Waker::from(count.clone());
            assert!(
                rx.poll_next_batch(&mut Context::from_waker(&waker), &mut batch, 256)
                    .is_pending()
            );
        }
        poll_once(holding(async {
            other.send(EncodedPacket::raw("40".into()), false).unwrap();
            for n in 1..HOLD_DEPTH {
                tx.send(EncodedPacket::raw(format!("4{n}")), false).unwrap();
            }
            assert_eq!((count.get(), other_count.get()), (0, 0));
            // The queue reaches the depth: every held wake-up goes out now.
            tx.send(EncodedPacket::raw("4".into()), false).unwrap();
            assert_eq!((count.get(), other_count.get()), (1, 1));
        }));
        assert_eq!((count.get(), other_count.get()), (1, 1));
    }

    #[test]
    fn a_small_queue_is_released_at_half_its_capacity() {
        let (tx, mut rx) = outbox(4);
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut batch = VecDeque::new();
        assert!(
            rx.poll_next_batch(&mut Context::from_waker(&waker), &mut batch, 256)
                .is_pending()
        );
        poll_once(holding(async {
            tx.send(EncodedPacket::raw("40".into()), false).unwrap();
            assert_eq!(count.get(), 0);
            tx.send(EncodedPacket::raw("41".into()), false).unwrap();
            assert_eq!(count.get(), 1, "two of four: released");
        }));
    }

    #[test]
    fn held_wake_ups_go_out_when_the_poll_panics() {
        let (tx, mut rx) = outbox(64);
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut batch = VecDeque::new();
        assert!(
            rx.poll_next_batch(&mut Context::from_waker(&waker), &mut batch, 256)
                .is_pending()
        );
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll_once(holding(async {
                tx.send(EncodedPacket::raw("42".into()), false).unwrap();
                panic!("a handler panics");
            }))
        }));
        assert!(panicked.is_err());
        assert_eq!(count.get(), 1);
        // And the thread holds nothing afterwards.
        tx.send(EncodedPacket::raw("43".into()), false).unwrap();
        assert!(HELD.with_borrow(|held| held.depth == 0 && held.wakers.is_empty()));
    }
}
