//! What happens around a socket's life: on connect (the welcome, catch-up with `since`, the
//! direct messages that waited), on disconnect (presence, the nick freed), and the room
//! lifecycle events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::events::{
    Auth, DirectMessage, ErrorCode, Notice, Presence, PresenceAction, RoomAction, RoomChange,
    ServerEvent,
};
use chat_protocol::names;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::reply::Push;
use super::store::{Catchup, StoreError};
use super::{ChatApp, Session, chat_rooms, engine_room, enter_room};
use crate::engine::{Namespace, RoomEvent, RoomEventKind, Socket, lock};

/// Rooms a notice about refused `since` rooms names before "and N more".
const SINCE_REFUSALS_NAMED: usize = 10;

/// The disconnect reason of every socket when the server shuts down (the engine's
/// `CloseReason::GOING_AWAY`).
const SHUTTING_DOWN: &str = "server shutting down";

/// How long a recipient has to acknowledge a direct message that waited for it.
const DM_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The notice for the rooms of a CONNECT's `since` that were not rejoined, grouped by
/// reason (most share one: the rooms-per-socket limit), a few names each.
fn since_refusals(refused: &[(String, String)]) -> Option<String> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (room, why) in refused {
        match groups.iter_mut().find(|(w, _)| w == why) {
            Some((_, rooms)) => rooms.push(room),
            None => groups.push((why, vec![room])),
        }
    }
    if groups.is_empty() {
        return None;
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(why, rooms)| {
            // Escaped and cut short: a refused name may be anything the client sent.
            let named: Vec<String> = rooms
                .iter()
                .take(SINCE_REFUSALS_NAMED)
                .map(|room| {
                    let short: String = room.chars().take(names::ROOM_MAX).collect();
                    short.escape_debug().to_string()
                })
                .collect();
            let more = rooms.len() - named.len();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("{}{more} ({why})", named.join(", "))
        })
        .collect();
    Some(format!("not rejoined: {}", parts.join("; ")))
}

impl ChatApp {
    pub(super) async fn on_connect(self: Arc<Self>, socket: Socket, auth: Value) {
        let Some(session) = socket.extensions().get::<Session>() else {
            return;
        };
        let first = {
            let mut sockets = lock(&session.sockets);
            sockets.push(socket.clone());
            sockets.len() == 1
        };
        *lock(&self.namespace_users)
            .entry(socket.namespace().name().to_owned())
            .or_default() += 1;
        let online = self.namespace_users(socket.namespace().name());
        let text = format!(
            "Welcome to {}, {}. {online} user{} online.",
            socket.namespace().name(),
            session.nick(),
            if online == 1 { "" } else { "s" }
        );
        // The limits first, so a client knows them before it sends anything.
        socket.push(&self.announced);
        socket.push(&Notice { text });
        // Catch-up: rejoin the rooms the client names and send what it missed.
        let since = serde_json::from_value::<Auth>(auth)
            .ok()
            .and_then(|a| a.since)
            .unwrap_or_default();
        // Each room as a `join` would be: the name rules, the rooms-per-socket limit and the
        // join budget (rooms in name order); what is refused is named in one notice. Once
        // the limit or the budget is reached the rest are refused without more work.
        let mut refused = Vec::new();
        let mut stop: Option<String> = None;
        for (room, seq) in since {
            if let Some(why) = &stop {
                refused.push((room, why.clone()));
                continue;
            }
            let allowed = names::validate_room(&room)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    self.join_limits(&socket, &room).map_err(|f| {
                        if f.0 == ErrorCode::TooManyRooms {
                            stop = Some(f.1.clone());
                        }
                        f.1
                    })
                })
                .and_then(|()| {
                    if session.take_join() {
                        Ok(())
                    } else {
                        let why = "too many joins: try again in a moment".to_owned();
                        stop = Some(why.clone());
                        Err(why)
                    }
                });
            if let Err(why) = allowed {
                refused.push((room, why));
                continue;
            }
            // A `since` does not make a room a join could not.
            if let Err(f) = self.new_room_rule(&socket, &room).await {
                refused.push((room, f.1));
                continue;
            }
            // Not even a catch-up for a room that bans this user.
            if let Err(f) = self.may_enter(&socket, &session, &room).await {
                refused.push((room, f.1));
                continue;
            }
            if let Err(e) = self
                .attach(&socket, &session, &room, Some(seq), self.catchup_limit)
                .await
            {
                warn!(error = %e, room = %room, "catch-up failed");
            }
        }
        if let Some(text) = since_refusals(&refused) {
            socket.push(&Notice { text });
        }
        if first && session.is_authenticated() && session.first_dm_delivery() {
            self.deliver_queued_dms(&socket, &session).await;
        }
    }

    /// Joins `socket` to `room` inside the store's ordering section, sending it the catch-up
    /// (`message` events, oldest first, and a notice for what was skipped) before any live
    /// message. Returns the catch-up.
    pub(crate) async fn attach(
        &self,
        socket: &Socket,
        session: &Session,
        room: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Catchup, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (s, nick, r) = (socket.clone(), session.nick(), room.to_owned());
        let store = self.store.clone();
        let replay = after.is_some();
        let attach = Box::new(move |c: Catchup| {
            enter_room(&*store, &s, nick, &r);
            if replay {
                if c.skipped > 0 {
                    let text = format!(
                        "{} older message{} in {r} not shown",
                        c.skipped,
                        if c.skipped == 1 { "" } else { "s" }
                    );
                    s.push(&Notice { text });
                }
                for m in &c.messages {
                    s.push(m);
                }
            }
            let _ = tx.send(c);
        });
        self.store
            .attach(socket.namespace().name(), room, after, limit, attach)
            .await?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// Sends the direct messages that waited, each asking for an ack; removes each once acked.
    async fn deliver_queued_dms(&self, socket: &Socket, session: &Session) {
        let key = names::nick_key(&session.nick());
        let queued = match self.store.queued_dms(&key).await {
            Ok(q) => q,
            Err(e) => return warn!(error = %e, "cannot read queued direct messages"),
        };
        for dm in queued {
            let wait = socket.emit_with_ack(DirectMessage::EVENT, vec![json!(dm)], DM_ACK_TIMEOUT);
            let (store, key, id) = (self.store.clone(), key.clone(), dm.id.clone());
            // Waiting for the client's ack must not hold up its connection's reader.
            tokio::spawn(async move {
                if wait.await.is_ok()
                    && let Err(e) = store.remove_dm(&key, &id).await
                {
                    warn!(error = %e, "cannot remove a delivered direct message");
                }
            });
        }
    }

    pub(super) async fn on_disconnect(&self, socket: Socket, reason: &'static str) {
        let Some(session) = socket.extensions().get::<Session>() else {
            return;
        };
        // Its last messages are published (and acknowledged, if it is still there) first.
        session.settled().await;
        {
            let mut counts = lock(&self.namespace_users);
            let name = socket.namespace().name();
            if let Some(n) = counts.get_mut(name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(name);
                }
            }
        }
        let nick = session.nick();
        // A server shutting down is not every user quitting: clients say it once, from the
        // close (the engine's `CloseReason::GOING_AWAY`).
        let rooms = if reason == SHUTTING_DOWN {
            Vec::new()
        } else {
            chat_rooms(&socket)
        };
        for room in rooms {
            self.store
                .note_member(socket.namespace().name(), &room, &nick, false);
            let presence = Presence {
                room: room.clone(),
                nick: nick.clone(),
                action: PresenceAction::Quit,
                previous: None,
                reason: None,
            };
            socket.to(engine_room(&room)).push(&presence);
        }
        let mut sockets = lock(&session.sockets);
        sockets.retain(|s| s.sid() != socket.sid());
        if sockets.is_empty() {
            drop(sockets);
            self.release(&nick, &session);
            let conn = socket.conn();
            info!(nick = %nick, remote = %conn.remote, transport = ?conn.transport(), reason, "user disconnected");
        }
    }

    /// Forgets a session under a nick (the nick is free once no session holds it).
    pub(super) fn release(&self, nick: &str, session: &Arc<Session>) {
        let mut users = lock(&self.users);
        let key = names::nick_key(nick);
        if let Some(v) = users.get_mut(&key) {
            v.retain(|s| !Arc::ptr_eq(s, session));
            if v.is_empty() {
                users.remove(&key);
                lock(&self.online_nicks).remove(nick);
                self.release_everywhere(nick);
            }
        }
    }

    /// Gives up a nick no session here holds any more on every node (cluster mode).
    pub(super) fn release_everywhere(&self, nick: &str) {
        let (store, nick) = (self.store.clone(), nick.to_owned());
        tokio::spawn(async move {
            if let Err(e) = store.release_online_nick(&nick).await {
                tracing::warn!(error = %e, nick = %nick, "cannot release a nick in the cluster");
            }
        });
    }

    /// Tells the namespace when a chat room appears or vanishes: at most
    /// [`ROOM_ANNOUNCEMENTS_PER_SEC`] a second per namespace, each volatile (dropped for a
    /// member whose queue is half full), so that a guest creating and abandoning rooms by
    /// the hundred cannot flood every member of the namespace (nor get them closed as slow
    /// consumers). They are hints for room lists; `rooms` is the truth.
    pub(super) fn on_room_event(&self, ns: &Namespace, event: &RoomEvent) {
        let Some(room) = event.room.strip_prefix('#') else {
            return;
        };
        let action = match event.kind {
            RoomEventKind::Created => RoomAction::Created,
            RoomEventKind::Deleted => {
                self.forget_rules(ns.name(), room);
                RoomAction::Deleted
            }
            RoomEventKind::Joined | RoomEventKind::Left => return,
        };
        if !lock(&self.room_announcements).take(ns.name(), Instant::now()) {
            tracing::debug!(
                namespace = ns.name(),
                room,
                "room announcement over the rate: dropped"
            );
            return;
        }
        ns.broadcast().volatile().push(&RoomChange {
            action,
            room: room.to_owned(),
        });
    }
}

/// `room` announcements per namespace per second, at most (see `on_room_event`).
pub(crate) const ROOM_ANNOUNCEMENTS_PER_SEC: u32 = 20;

/// Namespaces at most in [`Announcements`] (dynamic namespaces come and go): past it, the
/// counts start over.
const ANNOUNCED_NAMESPACES_MAX: usize = 1024;

/// How many `room` announcements each namespace made in the current second.
#[derive(Default)]
pub(crate) struct Announcements(std::collections::HashMap<String, (Instant, u32)>);

impl Announcements {
    /// Counts one announcement in `namespace` at `now`; false if it is over the rate.
    pub(crate) fn take(&mut self, namespace: &str, now: Instant) -> bool {
        if !self.0.contains_key(namespace) && self.0.len() >= ANNOUNCED_NAMESPACES_MAX {
            self.0.clear();
        }
        let (since, count) = self.0.entry(namespace.to_owned()).or_insert((now, 0));
        if now.saturating_duration_since(*since) >= Duration::from_secs(1) {
            (*since, *count) = (now, 0);
        }
        *count += 1;
        *count <= ROOM_ANNOUNCEMENTS_PER_SEC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_announcements_are_counted_per_namespace_per_second() {
        let mut a = Announcements::default();
        let t = Instant::now();
        for _ in 0..ROOM_ANNOUNCEMENTS_PER_SEC {
            assert!(a.take("/", t));
        }
        assert!(!a.take("/", t + Duration::from_millis(900)));
        assert!(a.take("/other", t), "each namespace has its own count");
        assert!(a.take("/", t + Duration::from_secs(1)));
    }
}
