//! When to try again: the reconnect delay after a lost connection ([`backoff`]: capped,
//! jittered, exponential) and the delays before a refused namespace is CONNECTed again
//! (`nick_taken` after a reconnect, `busy`).

use std::time::Duration;

use super::random::random_u64;

/// A namespace refused with `nick_taken` while reconnecting is retried after this long (the
/// server may still hold our previous, dead connection).
pub(super) const NICK_RETRY: Duration = Duration::from_secs(2);
/// A namespace refused with `busy` is retried after this long, doubling per refusal in a row
/// up to [`BUSY_RETRY_CAP`], with jitter.
const BUSY_RETRY: Duration = Duration::from_millis(500);
const BUSY_RETRY_CAP: Duration = Duration::from_secs(10);

/// The reconnect delays after the server refused for too many connections (HTTP 429):
/// from 2 s, doubling up to a minute, jittered.
pub(super) const SLOW_DOWN_BASE: Duration = Duration::from_secs(2);
pub(super) const SLOW_DOWN_CAP: Duration = Duration::from_secs(60);

/// The delay before reconnect attempt `attempt` (0-based): `base * 2^attempt`, capped, then
/// scaled by `jitter` in `[0.5, 1.0]` so that many clients do not come back at once.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    exp.min(cap).mul_f64(jitter.clamp(0.5, 1.0))
}

/// The delay before a namespace refused with `busy` `refusals` times in a row (0-based) is
/// CONNECTed again (the server was short of password checks).
pub(super) fn busy_retry(refusals: u32) -> Duration {
    backoff(refusals, BUSY_RETRY, BUSY_RETRY_CAP, jitter())
}

/// A random factor in `[0.5, 1.0)`.
pub(super) fn jitter() -> f64 {
    0.5 + (random_u64() % 1000) as f64 / 2000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(10);
        assert_eq!(backoff(0, base, cap, 1.0), base);
        assert_eq!(backoff(3, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(30, base, cap, 1.0), cap);
        assert_eq!(backoff(30, base, cap, 0.5), Duration::from_secs(5));
        for _ in 0..20 {
            let j = jitter();
            assert!((0.5..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn busy_retries_grow_from_half_a_second_to_ten() {
        for _ in 0..20 {
            let first = busy_retry(0);
            assert!(
                (Duration::from_millis(250)..=Duration::from_millis(500)).contains(&first),
                "{first:?}"
            );
            let third = busy_retry(2);
            assert!(
                (Duration::from_secs(1)..=Duration::from_secs(2)).contains(&third),
                "{third:?}"
            );
            let late = busy_retry(40);
            assert!(
                (Duration::from_secs(5)..=Duration::from_secs(10)).contains(&late),
                "{late:?}"
            );
        }
    }
}
