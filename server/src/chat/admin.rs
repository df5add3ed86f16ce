//! What the admin API (`crate::admin`) does to the chat: list who is online, kick a user out
//! of a room or off the server, send a server notice. The HTTP side (token, routes, JSON
//! bodies) is `crate::admin::api`'s; this file knows the chat's state.
//!
//! A kick out of a room is today's `leave` done for the user, announced to the room (the
//! user's client included) as a `presence` `leave` whose `reason` says an admin did it. A
//! kick off the server disconnects each of the user's sockets (a Socket.IO DISCONNECT, so
//! the official clients do not reconnect by themselves). Bans come with moderation.

use std::sync::Arc;

use chat_protocol::events::{Notice, Presence, PresenceAction};
use serde::Serialize;

use super::reply::Push;
use super::{ChatApp, engine_room};
use crate::engine::{Engine, Socket, Transport, lock};

/// One connected user, as the admin API lists it.
#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub nick: String,
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

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::WebSocket => "websocket",
        Transport::Polling => "polling",
    }
}

impl ChatApp {
    /// Everyone connected, by nick.
    pub fn list_users(&self) -> Vec<UserInfo> {
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

    /// The connected sockets of `nick`, in `namespace` when one is named.
    fn sockets_of(&self, nick: &str, namespace: Option<&str>) -> Result<Vec<Socket>, KickError> {
        let sessions = self.sessions(nick);
        if sessions.is_empty() {
            return Err(KickError::NoSuchUser);
        }
        Ok(sessions
            .iter()
            .flat_map(|s| s.sockets())
            .filter(|s| s.is_connected())
            .filter(|s| namespace.is_none_or(|ns| s.namespace().name() == ns))
            .collect())
    }

    /// Takes `nick` out of `room` (in `namespace`, or in every namespace where it is in a
    /// room of that name), announced to the room; returns how many sockets left it.
    pub fn kick_from_room(
        &self,
        nick: &str,
        namespace: Option<&str>,
        room: &str,
        reason: &str,
    ) -> Result<usize, KickError> {
        let engine_name = engine_room(room);
        let mut kicked = 0;
        for socket in self.sockets_of(nick, namespace)? {
            if !socket.rooms().contains(&engine_name) {
                continue;
            }
            let presence = Presence {
                room: room.to_owned(),
                nick: nick_of(&socket).unwrap_or_else(|| nick.to_owned()),
                action: PresenceAction::Leave,
                previous: None,
                reason: Some(format!("kicked by an admin: {reason}")),
            };
            // To the whole room, the kicked socket included, so its client knows it is out.
            socket.namespace().to(engine_name.clone()).push(&presence);
            socket.leave(&engine_name);
            kicked += 1;
        }
        if kicked == 0 {
            return Err(KickError::NotInRoom);
        }
        Ok(kicked)
    }

    /// Disconnects every socket of `nick` (in `namespace` only, when one is named); returns
    /// how many.
    pub async fn kick_off(&self, nick: &str, namespace: Option<&str>) -> Result<usize, KickError> {
        let sockets = self.sockets_of(nick, namespace)?;
        for socket in &sockets {
            socket.disconnect().await;
        }
        Ok(sockets.len())
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
