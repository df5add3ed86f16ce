//! A token bucket: what a connection may do at once (the burst), refilled at a rate. The
//! session's room joins and searches each have one.

use std::sync::Mutex;
use std::time::Instant;

use crate::engine::lock;

pub(crate) struct Budget {
    /// (tokens, when last refilled).
    tokens: Mutex<(f64, Instant)>,
    burst: f64,
    /// 0: no budget (every take succeeds).
    per_sec: f64,
}

impl Budget {
    /// Full at first: `burst` (at least 1) at once, then `per_sec` a second.
    pub(crate) fn new(burst: usize, per_sec: f64) -> Budget {
        let burst = burst.max(1) as f64;
        Budget {
            tokens: Mutex::new((burst, Instant::now())),
            burst,
            per_sec,
        }
    }

    /// Takes one token; false when there is none left.
    pub(crate) fn take(&self) -> bool {
        if self.per_sec == 0.0 {
            return true;
        }
        let mut tokens = lock(&self.tokens);
        let now = Instant::now();
        let (left, at) = &mut *tokens;
        *left = (*left + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *left >= 1.0 {
            *left -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_nothing_until_refilled() {
        let budget = Budget::new(2, 0.001);
        assert!(budget.take());
        assert!(budget.take());
        assert!(!budget.take());
        let free = Budget::new(1, 0.0);
        assert!((0..10).all(|_| free.take()));
    }
}
