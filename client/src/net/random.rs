//! Random numbers for the reconnect jitter and the client message id prefix, without a crate
//! of their own.

use std::hash::{BuildHasher, Hasher};

/// A random number from the std hasher's random keys and the clock.
pub(super) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}
