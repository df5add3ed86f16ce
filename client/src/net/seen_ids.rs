//! [`SeenIds`]: a bounded set of recently seen ids, so that a direct message the server sends
//! again (a reconnect before our ack got through) is passed on once.

use std::collections::{HashSet, VecDeque};

/// A set of recently seen ids that forgets the oldest beyond [`SeenIds::CAPACITY`].
#[derive(Debug, Default)]
pub(super) struct SeenIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenIds {
    pub(super) const CAPACITY: usize = 1024;

    /// True when `id` was not seen before.
    pub(super) fn insert(&mut self, id: String) -> bool {
        if !self.set.insert(id.clone()) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_forget_the_oldest() {
        let mut seen = SeenIds::default();
        assert!(seen.insert("a".into()));
        assert!(!seen.insert("a".into()));
        for i in 0..SeenIds::CAPACITY {
            seen.insert(i.to_string());
        }
        assert!(
            seen.insert("a".into()),
            "forgotten after CAPACITY newer ids"
        );
    }
}
