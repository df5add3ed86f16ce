//! What the admin API (`crate::admin`) does to the chat: list who is online, kick a user out
//! of a room or off the server, send a server notice. The HTTP side (token, routes, JSON
//! bodies) is `crate::admin::api`'s; this file knows the chat's state.
//!
//! A kick out of a room is today's `leave` done for the user, announced to the room (the
//! user's client included) as a `presence` `leave` whose `reason` says an admin did it. A
//! kick off the server disconnects each of the user's sockets (a Socket.IO DISCONNECT, so
//! the official clients do not reconnect by themselves). Bans come with moderation.
//!
//! In cluster mode the list holds every node's users, each with its `node`, and a kick
//! reaches the user on every node (`control`): the answer's `sockets` counts this node's,
//! and `elsewhere` says other nodes had the user too.

use std::collections::HashSet;
use std::sync::Arc;

use chat_protocol::events::{Notice, Presence, PresenceAction};
use chat_protocol::names;
use serde::Serialize;

use super::presence::transport_name;
use super::reply::Push;
use super::store::RemoteUser;
use super::{ChatApp, engine_room};
use crate::engine::{Engine, Socket, lock};

/// One connected user, as the admin API lists it.
#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub nick: String,
    /// The node it is connected to (cluster mode: the id the Redis roster uses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Proved a registered nick with its password.
    pub authenticated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub away: Option<String>,
    /// One entry per connection of the user (several for one identity on several devices).
    pub connections: Vec<ConnectionEntry>,
}

/// One connection of a user.
#[derive(Debug, Serialize)]
pub struct ConnectionEntry {
    pub remote: String,
    pub transport: &'static str,
    /// The namespaces it is connected to, each with the chat rooms it is in there.
    pub namespaces: Vec<NamespaceEntry>,
}

#[derive(Debug, Serialize)]
pub struct NamespaceEntry {
    pub name: String,
    pub rooms: Vec<String>,
}

/// Why a kick did nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum KickError {
    /// Nobody with that nick is connected.
    NoSuchUser,
    /// The user is not in that room (in that namespace, when one was named).
    NotInRoom,
}

/// What a kick did: this node's sockets, and whether other nodes had the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kicked {
    pub sockets: usize,
    pub elsewhere: bool,
}

impl ChatApp {
    /// Everyone connected, on every node (cluster mode: from the other nodes' last
    /// heartbeat), by nick then node.
    pub async fn list_users(&self) -> Vec<UserInfo> {
        let mut users = self.local_users();
        let node = self.store.node_id().map(str::to_owned);
        for u in &mut users {
            u.node.clone_from(&node);
        }
        match self.store.remote_users().await {
            Ok(remote) => users.extend(remote.into_iter().map(remote_info)),
            Err(e) => tracing::warn!(error = %e, "cannot list the other nodes' users"),
        }
        users.sort_by(|a, b| (&a.nick, &a.node).cmp(&(&b.nick, &b.node)));
        users
    }

    /// This node's users, by nick.
    fn local_users(&self) -> Vec<UserInfo> {
        let sessions: Vec<_> = lock(&self.users).values().flatten().cloned().collect();
        let mut users: Vec<UserInfo> = Vec::new();
        for session in sessions {
            let sockets = session.sockets();
            let connection = ConnectionEntry {
                remote: sockets
                    .first()
                    .map(|s| s.conn().remote.to_string())
                    .unwrap_or_default(),
                transport: sockets
                    .first()
                    .map_or("websocket", |s| transport_name(s.conn().transport())),
                namespaces: sockets
                    .iter()
                    .filter(|s| s.is_connected())
                    .map(|s| NamespaceEntry {
                        name: s.namespace().name().to_owned(),
                        rooms: super::chat_rooms(s),
                    })
                    .collect(),
            };
            let nick = session.nick();
            match users.iter_mut().find(|u| u.nick == nick) {
                Some(user) => user.connections.push(connection),
                None => users.push(UserInfo {
                    nick,
                    node: None,
                    authenticated: session.is_authenticated(),
                    away: session.away(),
                    connections: vec![connection],
                }),
            }
        }
        users.sort_by(|a, b| a.nick.cmp(&b.nick));
        users
    }

    /// Whether the store takes writes (`/readyz`).
    pub fn store_available(&self) -> bool {
        self.store.available()
    }

    /// The connected sockets of `nick` on this node, in `namespace` when one is named.
    fn sockets_of(&self, nick: &str, namespace: Option<&str>) -> Vec<Socket> {
        self.sessions(nick)
            .iter()
            .flat_map(|s| s.sockets())
            .filter(|s| s.is_connected())
            .filter(|s| namespace.is_none_or(|ns| s.namespace().name() == ns))
            .collect()
    }

    /// Takes `nick` out of `room` (in `namespace`, or in every namespace of `engine` where
    /// it is in a room of that name), announced to the room, on every node.
    pub async fn kick_from_room(
        &self,
        engine: &Engine,
        nick: &str,
        namespace: Option<&str>,
        room: &str,
        reason: &str,
    ) -> Result<Kicked, KickError> {
        let engine_name = engine_room(room);
        let local = self.sockets_of(nick, namespace);
        let mut kicked = 0;
        let mut told = HashSet::new();
        for socket in &local {
            if !socket.rooms().contains(&engine_name) {
                continue;
            }
            let shown = nick_of(socket).unwrap_or_else(|| nick.to_owned());
            let presence = Presence {
                room: room.to_owned(),
                nick: shown.clone(),
                action: PresenceAction::Leave,
                previous: None,
                reason: Some(format!("kicked by an admin: {reason}")),
            };
            // To the whole room, the kicked socket included, so its client knows it is out.
            socket.namespace().to(engine_name.clone()).push(&presence);
            socket.leave(&engine_name);
            self.store
                .note_member(socket.namespace().name(), room, &shown, false);
            told.insert(socket.namespace().name().to_owned());
            kicked += 1;
        }
        let namespaces = match namespace {
            Some(name) => engine.get_namespace(name).into_iter().collect(),
            None => engine.namespaces(),
        };
        let elsewhere = self
            .room_kick_elsewhere(&namespaces, nick, room, reason, &told)
            .await;
        if kicked == 0 && !elsewhere {
            let online = !self.sessions(nick).is_empty() || self.online_elsewhere(nick).await;
            return Err(if online {
                KickError::NotInRoom
            } else {
                KickError::NoSuchUser
            });
        }
        Ok(Kicked {
            sockets: kicked,
            elsewhere,
        })
    }

    /// Whether `nick` is connected on another node (cluster mode).
    async fn online_elsewhere(&self, nick: &str) -> bool {
        self.has_peers()
            && self
                .store
                .remote_user(&names::nick_key(nick), "/", &[])
                .await
                .is_ok_and(|r| !r.is_empty())
    }

    /// Disconnects every socket of `nick` (in `namespace` only, when one is named), on
    /// every node.
    pub async fn kick_off(&self, nick: &str, namespace: Option<&str>) -> Result<Kicked, KickError> {
        let sockets = self.sockets_of(nick, namespace);
        let here = !self.sessions(nick).is_empty();
        let elsewhere = self.disconnect_elsewhere(nick, namespace).await;
        if !here && !elsewhere {
            return Err(KickError::NoSuchUser);
        }
        for socket in &sockets {
            socket.disconnect().await;
        }
        Ok(Kicked {
            sockets: sockets.len(),
            elsewhere,
        })
    }
}

/// A user on another node as the admin API lists it. The roster keeps rooms per nick, not
/// per connection: the first connection carries them all.
fn remote_info(r: RemoteUser) -> UserInfo {
    // Each connection with the namespaces it is connected to; the roster keeps rooms per
    // nick, so a namespace's rooms go to the first connection in it (or the first of all).
    let mut connections: Vec<ConnectionEntry> = r
        .presence
        .connections
        .into_iter()
        .map(|l| ConnectionEntry {
            remote: l.remote,
            transport: if l.transport == "polling" {
                "polling"
            } else {
                "websocket"
            },
            namespaces: l
                .namespaces
                .into_iter()
                .map(|name| NamespaceEntry {
                    name,
                    rooms: Vec::new(),
                })
                .collect(),
        })
        .collect();
    for (ns, room) in r.rooms {
        let entry = connections
            .iter_mut()
            .flat_map(|c| c.namespaces.iter_mut())
            .find(|n| n.name == ns);
        match entry {
            Some(n) => n.rooms.push(room),
            None => {
                if let Some(c) = connections.first_mut() {
                    c.namespaces.push(NamespaceEntry {
                        name: ns,
                        rooms: vec![room],
                    });
                }
            }
        }
    }
    UserInfo {
        nick: r.presence.nick,
        node: Some(r.node),
        authenticated: r.presence.authenticated,
        away: r.presence.away,
        connections,
    }
}

fn nick_of(socket: &Socket) -> Option<String> {
    socket
        .extensions()
        .get::<super::Session>()
        .map(|s: Arc<super::Session>| s.nick())
}

/// Sends a `notice` to a room of a namespace, to a whole namespace, or to every socket of
/// every namespace; returns how many sockets took it.
pub fn notice(engine: &Engine, namespace: Option<&str>, room: Option<&str>, text: &str) -> usize {
    let notice = Notice {
        text: text.to_owned(),
    };
    let namespaces = match namespace {
        Some(name) => engine.get_namespace(name).into_iter().collect(),
        None => engine.namespaces(),
    };
    namespaces
        .iter()
        .map(|ns| match room {
            Some(room) => ns.to(engine_room(room)).push(&notice),
            None => ns.push(&notice),
        })
        .sum()
}
