//! A connection's sockets by namespace name: a short list, searched in order.
//!
//! A connection has a socket per namespace it joined: one almost always, at most
//! `max_namespaces`. A `HashMap` kept its hasher's keys and a table of four slots for that
//! one entry (~200 bytes per connection, for its life); a list holds the entry and nothing
//! more, and a search of a few names costs less than hashing one.

use super::Socket;

/// The sockets of one connection, by namespace name (each name at most once).
#[derive(Default)]
pub(super) struct SocketsByNamespace(Vec<(String, Socket)>);

impl SocketsByNamespace {
    pub(super) fn get(&self, nsp: &str) -> Option<&Socket> {
        self.0.iter().find(|(name, _)| name == nsp).map(|(_, s)| s)
    }

    pub(super) fn remove(&mut self, nsp: &str) -> Option<Socket> {
        let at = self.0.iter().position(|(name, _)| name == nsp)?;
        Some(self.0.remove(at).1)
    }

    /// Adds `socket` for `nsp`, in place of the one there was, if any.
    pub(super) fn insert(&mut self, nsp: String, socket: Socket) {
        if let Some((_, old)) = self.0.iter_mut().find(|(name, _)| *name == nsp) {
            *old = socket;
            return;
        }
        // Room for this one only: most connections never add a second.
        self.0.reserve_exact(1);
        self.0.push((nsp, socket));
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Socket> {
        self.0.iter().map(|(_, s)| s)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes every socket out, in the order they were added.
    pub(super) fn drain(&mut self) -> std::vec::Drain<'_, (String, Socket)> {
        self.0.drain(..)
    }

    /// The list's capacity (what the connection holds for it).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.0.capacity()
    }
}
