//! What a node of a cluster tells the others about itself, and what it reads back about
//! them (cluster mode; a store of one process has no other node). A node hands its store a
//! [`Snapshot`] of its users (nick, registered, away reason, when last active, connections)
//! and its rooms' member counts; the store writes what changed on its heartbeat (every 2 s),
//! so what other nodes read is at most a heartbeat old, and never costs a write per chat
//! message. What they read back is a [`RemoteUser`] per (node, nick), and room counts.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ChatApp, Session, chat_rooms};
use crate::engine::{Engine, Transport, lock};

/// One user on one node, as the other nodes read it: that node's sessions of the nick
/// summed up as `whois` sums up sessions (the least idle; away only if all are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPresence {
    /// As connected.
    pub nick: String,
    /// Proved a registered nick with its password.
    pub authenticated: bool,
    /// The away reason, when every session of the nick on that node is away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away: Option<String>,
    /// When last active (a message, a direct message, a join): milliseconds since the Unix
    /// epoch, to the second.
    pub active_ms: i64,
    /// One per connection (several for an identity on several devices).
    pub connections: Vec<Link>,
}

/// A connection of a user on some node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub remote: String,
    pub transport: String,
    /// The namespaces it is connected to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// What a node tells the others: its users by nick key, and its chat rooms' member counts
/// (sockets) as (namespace, room, count).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub users: Vec<(String, UserPresence)>,
    pub rooms: Vec<(String, String, usize)>,
    /// Users connected per namespace (the welcome notice's count), as (namespace, users).
    pub namespaces: Vec<(String, usize)>,
}

/// Takes a node's [`Snapshot`] (the store calls it on each heartbeat).
pub type SnapshotFn = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// A user on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUser {
    /// The node's id (as its heartbeat and roster name it).
    pub node: String,
    pub presence: UserPresence,
    /// (namespace, room) of the rooms it is in there: for `whois`, those of the asked rooms
    /// it is in; for the admin API's list, all.
    pub rooms: Vec<(String, String)>,
}

impl RemoteUser {
    /// Seconds since it was last active, as of `now_ms`.
    pub fn idle_secs(&self, now_ms: i64) -> u64 {
        u64::try_from((now_ms - self.presence.active_ms).max(0) / 1000).unwrap_or(0)
    }
}

pub(crate) fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::WebSocket => "websocket",
        Transport::Polling => "polling",
    }
}

/// The presence of one nick's sessions on this node.
pub(crate) fn summary(sessions: &[Arc<Session>]) -> Option<UserPresence> {
    let first = sessions.first()?;
    Some(UserPresence {
        nick: first.nick(),
        authenticated: sessions.iter().any(|s| s.is_authenticated()),
        away: if sessions.iter().all(|s| s.away().is_some()) {
            first.away()
        } else {
            None
        },
        active_ms: sessions.iter().map(|s| s.active_at_ms()).max().unwrap_or(0),
        connections: sessions
            .iter()
            .filter_map(|session| {
                let sockets = session.sockets();
                let s = sockets.first()?;
                Some(Link {
                    remote: s.conn().remote.to_string(),
                    transport: transport_name(s.conn().transport()).to_owned(),
                    namespaces: sockets
                        .iter()
                        .map(|s| s.namespace().name().to_owned())
                        .collect(),
                })
            })
            .collect(),
    })
}

impl ChatApp {
    /// This node's [`Snapshot`]: its users, and the member counts of the chat rooms of
    /// `engine`'s namespaces.
    pub fn snapshot(&self, engine: &Engine) -> Snapshot {
        let by_key: Vec<(String, Vec<Arc<Session>>)> = lock(&self.users)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let users = by_key
            .into_iter()
            .filter_map(|(key, sessions)| summary(&sessions).map(|p| (key, p)))
            .collect();
        let mut rooms = Vec::new();
        for ns in engine.namespaces() {
            for (room, members) in ns.adapter().rooms() {
                if let Some(room) = room.strip_prefix('#') {
                    rooms.push((ns.name().to_owned(), room.to_owned(), members));
                }
            }
        }
        let namespaces = lock(&self.namespace_users)
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(ns, n)| (ns.clone(), *n))
            .collect();
        Snapshot {
            users,
            rooms,
            namespaces,
        }
    }
}

/// Local room counts with other nodes' added: (room, members), sorted by room.
pub(crate) fn add_counts(
    local: Vec<(String, usize)>,
    remote: Vec<(String, usize)>,
) -> Vec<(String, usize)> {
    let mut all: HashMap<String, usize> = HashMap::new();
    for (room, n) in local.into_iter().chain(remote) {
        *all.entry(room).or_default() += n;
    }
    let mut all: Vec<_> = all.into_iter().collect();
    all.sort();
    all
}

/// The chat rooms of this namespace a socket's user shares with `mine`, sorted.
pub(crate) fn shared_rooms(
    sessions: &[Arc<Session>],
    namespace: &str,
    mine: &std::collections::HashSet<String>,
) -> Vec<String> {
    let mut rooms: Vec<String> = sessions
        .iter()
        .flat_map(|s| s.sockets())
        .filter(|s| s.namespace().name() == namespace)
        .flat_map(|s| chat_rooms(&s))
        .filter(|r| mine.contains(r))
        .collect();
    rooms.sort();
    rooms.dedup();
    rooms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_room_and_rooms_of_either_side_are_kept() {
        let local = vec![("a".to_owned(), 2), ("b".to_owned(), 1)];
        let remote = vec![("b".to_owned(), 3), ("c".to_owned(), 1)];
        assert_eq!(
            add_counts(local, remote),
            vec![("a".into(), 2), ("b".into(), 4), ("c".into(), 1)]
        );
    }
}
