//! Look-alike nicks: an index of nicks by their UTS #39 confusable skeletons
//! (`chat_protocol::names::nick_skeletons`), so a new nick that would pass for a registered
//! or connected one is found without comparing it with every nick.

use std::collections::HashMap;

use chat_protocol::names;

/// Nicks by skeleton key. A key may hold several nicks: two registered nicks whose skeletons
/// already collide (registered before this check existed) both stay usable by their owners.
#[derive(Debug, Default)]
pub struct LookAlikes {
    by_skeleton: HashMap<String, Vec<String>>,
    /// The spelling each nick key was indexed under (one per key), so removing it under
    /// another case finds every skeleton it was filed under.
    spelling: HashMap<String, String>,
}

impl LookAlikes {
    pub fn from_nicks(nicks: impl IntoIterator<Item = String>) -> LookAlikes {
        let mut index = LookAlikes::default();
        for nick in nicks {
            index.insert(&nick);
        }
        index
    }

    /// Indexes a nick, unless its key is indexed already (under any case); says whether it
    /// did.
    pub fn insert(&mut self, nick: &str) -> bool {
        let key = names::nick_key(nick);
        if self.spelling.contains_key(&key) {
            return false;
        }
        self.spelling.insert(key, nick.to_owned());
        for key in names::nick_skeletons(nick) {
            let nicks = self.by_skeleton.entry(key).or_default();
            if !nicks.iter().any(|n| n == nick) {
                nicks.push(nick.to_owned());
            }
        }
        true
    }

    /// Forgets a nick (written in any case).
    pub fn remove(&mut self, nick: &str) {
        let Some(nick) = self.spelling.remove(&names::nick_key(nick)) else {
            return;
        };
        for key in names::nick_skeletons(&nick) {
            if let Some(nicks) = self.by_skeleton.get_mut(&key) {
                nicks.retain(|n| *n != nick);
                if nicks.is_empty() {
                    self.by_skeleton.remove(&key);
                }
            }
        }
    }

    /// A nick in the index that `nick` would pass for (not `nick` itself in another case,
    /// nor `ignore`, a nick being given up for this one).
    pub fn conflict(&self, nick: &str, ignore: Option<&str>) -> Option<&str> {
        let own = names::nick_key(nick);
        let ignore = ignore.map(names::nick_key);
        names::nick_skeletons(nick)
            .iter()
            .filter_map(|key| self.by_skeleton.get(key))
            .flatten()
            .find(|other| {
                let key = names::nick_key(other);
                key != own && Some(&key) != ignore.as_ref()
            })
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_look_alikes_but_not_the_nick_itself() {
        let mut index = LookAlikes::from_nicks(["Alice".to_owned(), "bob".to_owned()]);
        assert_eq!(index.conflict("aIice", None), Some("Alice"));
        assert_eq!(
            index.conflict("aIice", Some("alice")),
            None,
            "Alice renaming"
        );
        assert_eq!(index.conflict("ALICE", None), None, "the same nick");
        assert_eq!(index.conflict("b0b", None), Some("bob"));
        assert_eq!(index.conflict("carol", None), None);
        index.insert("ALICE");
        index.remove("alice");
        assert_eq!(index.conflict("aIice", None), None);
        assert!(
            index
                .by_skeleton
                .values()
                .all(|v| !v.iter().any(|n| n == "Alice"))
        );
        assert_eq!(index.conflict("b0b", None), Some("bob"));
    }
}
