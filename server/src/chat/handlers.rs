//! One method per client event. Each parses its request, acts, and returns its reply type
//! (`Outcome<R::Reply>`), which `dispatch` sends as the ack (see `reply`).
//! `message` is pipelined: it is acknowledged from the store's callback after its commit,
//! while the connection's next events are read; every other event waits for those acks first
//! (see `ChatApp::dispatch`).

use std::sync::{Arc, Mutex};

use chat_protocol::events::{
    AwayReply, AwayRequest, DeleteRequest, DirectMessage, DmReply, DmRequest, ErrorCode,
    HistoryReply, HistoryRequest, JoinReply, JoinRequest, KickRequest, LeaveReply, LeaveRequest,
    MessageRequest, NickReply, NickRequest, PingReply, PingRequest, Presence, PresenceAction,
    ResetPasswordRequest, RoomInfo, RoomsReply, RoomsRequest, SearchRequest, TopicChange,
    TopicReply, TopicRequest, Typing, TypingReply, TypingRequest, UnregisterRequest, WhoReply,
    WhoRequest, WhoisReply, WhoisRequest, client,
};
use chat_protocol::names;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::presence::{self, UserPresence};
pub(crate) use super::reply::Failure;
use super::reply::{Outcome, Push, answer, answer_message, refuse};
use super::store::{AppendDone, Catchup, NewMessage, StoreError, now_ms};
use super::{ChatApp, Session, chat_rooms, engine_room, enter_room};
use crate::engine::{AckSender, BroadcastOptions, Event, Namespace, Socket, lock};

/// Most direct messages that may wait for one offline recipient.
pub(crate) const QUEUED_DMS_MAX: usize = 500;

/// Longest client message id.
const CID_MAX: usize = 64;

/// The request in an event's first argument (`null` when there is none), deserialized
/// straight from its JSON text.
pub(crate) fn parse<T: DeserializeOwned>(request: &Event) -> Result<T, Failure> {
    request
        .arg(0)
        .map_err(|e| Failure(ErrorCode::BadRequest, format!("invalid request: {e}")))
}

pub(crate) fn valid_room(room: &str) -> Result<(), Failure> {
    names::validate_room(room).map_err(|e| Failure(ErrorCode::InvalidName, e.to_string()))
}

impl ChatApp {
    /// Whether `room` may be entered under the new rooms' name rule
    /// (`names::validate_new_room`: no mixing of scripts): a name that breaks it is still
    /// let in when the room exists (members here or on another node, a topic, or stored
    /// messages), so rooms made before the rule keep their names; only a new room is refused.
    pub(super) async fn new_room_rule(&self, socket: &Socket, room: &str) -> Result<(), Failure> {
        let Err(why) = names::validate_new_room(room) else {
            return Ok(());
        };
        let ns = socket.namespace().name();
        let exists = has_members(socket, room)
            || !self
                .store
                .remote_members(ns, room)
                .await
                .map_err(internal)?
                .is_empty()
            || self
                .store
                .topic(ns, room)
                .await
                .map_err(internal)?
                .is_some()
            || !self
                .store
                .history(ns, room, None, 1)
                .await
                .map_err(internal)?
                .is_empty();
        if exists {
            Ok(())
        } else {
            Err(Failure(ErrorCode::InvalidName, why.to_string()))
        }
    }
}

pub(super) fn member(socket: &Socket, room: &str) -> Result<(), Failure> {
    valid_room(room)?;
    if socket
        .rooms()
        .iter()
        .any(|r| r.strip_prefix('#') == Some(room))
    {
        Ok(())
    } else {
        Err(Failure(
            ErrorCode::NotInRoom,
            format!("you are not in {room}"),
        ))
    }
}

/// A message or DM text with its line breaks made LF, checked against the text rules and
/// the configured length.
fn checked_text(limits: &crate::config::ChatLimits, text: String) -> Result<String, Failure> {
    let text = match names::normalize_newlines(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(normalized) => normalized,
    };
    names::validate_text(&text).map_err(|e| Failure(ErrorCode::InvalidText, e.to_string()))?;
    limits
        .check_text(&text)
        .map_err(|e| Failure(ErrorCode::InvalidText, e))?;
    Ok(text)
}

pub(crate) fn internal(e: impl std::fmt::Display + 'static) -> Failure {
    // A store that cannot be reached now (the cluster's Redis restarting) is a retryable
    // refusal, not a server failure.
    if let Some(StoreError::Unavailable(why)) =
        (&e as &dyn std::any::Any).downcast_ref::<StoreError>()
    {
        warn!(error = %why, "request refused: storage unavailable");
        return Failure(
            ErrorCode::Unavailable,
            "storage unavailable: retry in a moment".into(),
        );
    }
    warn!(error = %e, "request failed");
    Failure(ErrorCode::Internal, "internal error".into())
}

impl ChatApp {
    /// The configured limits a `join` must pass: the room name's length and the rooms per
    /// socket (a room the socket is already in does not count again).
    pub(crate) fn join_limits(&self, socket: &Socket, room: &str) -> Result<(), Failure> {
        (self.limits.check_room(room)).map_err(|e| Failure(ErrorCode::InvalidName, e))?;
        let rooms = socket.rooms();
        let max = self.limits.max_rooms_per_socket;
        let joined = rooms.iter().filter(|r| r.starts_with('#')).count();
        if joined >= max && !rooms.contains(&engine_room(room)) {
            return Err(Failure(
                ErrorCode::TooManyRooms,
                format!("you are in {max} rooms already: leave one first"),
            ));
        }
        Ok(())
    }

    /// Routes one event and sends its ack.
    pub(crate) async fn dispatch(self: Arc<Self>, socket: Socket, mut event: Event) {
        let ack = event.ack.take();
        let Some(session) = socket.extensions().get::<Session>() else {
            return;
        };
        // Each handler parses its request from the event's first argument (`parse`).
        let (name, request) = (event.name.as_str(), &event);
        if matches!(name, client::MESSAGE | client::DM | client::JOIN) {
            session.active();
            if name != client::JOIN {
                crate::metrics::chat().messages_received.inc();
            }
        }
        if name == client::MESSAGE {
            return self.message(&socket, &session, request, ack).await;
        }
        // Any other event is handled once the connection's messages are answered, as if each
        // had been waited for (a `history` sees them, a `leave` is announced after them).
        session.settled().await;
        match name {
            client::JOIN => self.join(&socket, &session, request, ack).await,
            client::LEAVE => answer::<LeaveRequest>(ack, self.leave(&socket, &session, request)),
            client::DM => answer::<DmRequest>(ack, self.dm(&socket, &session, request).await),
            client::NICK => answer::<NickRequest>(ack, self.nick(&session, request).await),
            client::ROOMS => answer::<RoomsRequest>(ack, self.rooms(&socket).await),
            client::WHO => answer::<WhoRequest>(ack, self.who(&socket, request).await),
            client::TOPIC => {
                answer::<TopicRequest>(ack, self.topic(&socket, &session, request).await)
            }
            client::HISTORY => answer::<HistoryRequest>(ack, self.history(&socket, request).await),
            client::TYPING => answer::<TypingRequest>(ack, self.typing(&socket, &session, request)),
            client::PING => answer::<PingRequest>(ack, Ok(PingReply { ts: now_ms() })),
            client::WHOIS => answer::<WhoisRequest>(ack, self.whois(&socket, request).await),
            client::AWAY => answer::<AwayRequest>(ack, self.away(&session, request)),
            client::KICK
            | client::BAN
            | client::UNBAN
            | client::MUTE
            | client::UNMUTE
            | client::OP
            | client::DEOP => {
                answer::<KickRequest>(ack, self.moderate(&socket, &session, request).await)
            }
            client::DELETE => {
                answer::<DeleteRequest>(ack, self.delete(&socket, &session, request).await)
            }
            client::UNREGISTER => {
                answer::<UnregisterRequest>(ack, self.unregister_request(&session, request).await)
            }
            client::RESET_PASSWORD => answer::<ResetPasswordRequest>(
                ack,
                self.reset_password_request(&socket, &session, request)
                    .await,
            ),
            client::SEARCH => {
                answer::<SearchRequest>(ack, self.search(&socket, &session, request).await)
            }
            other => refuse(
                ack,
                Failure(ErrorCode::UnknownEvent, format!("unknown event '{other}'")),
            ),
        }
    }

    /// Joins inside the store's ordering section and answers from there, so the ack (with
    /// the recent history) reaches the client before any message published after it.
    async fn join(
        &self,
        socket: &Socket,
        session: &Session,
        request: &Event,
        ack: Option<AckSender>,
    ) {
        let room = match parse::<JoinRequest>(request)
            .and_then(|r| valid_room(&r.room).map(|()| r.room))
        {
            Ok(room) => room,
            Err(f) => return refuse(ack, f),
        };
        if let Err(f) = self.join_limits(socket, &room) {
            return refuse(ack, f);
        }
        if !socket.rooms().contains(&engine_room(&room)) && !session.take_join() {
            return refuse(
                ack,
                Failure(
                    ErrorCode::RateLimited,
                    "too many joins: try again in a moment".into(),
                ),
            );
        }
        if let Err(f) = self.new_room_rule(socket, &room).await {
            return refuse(ack, f);
        }
        let ns = socket.namespace().name().to_owned();
        if let Err(f) = self.may_enter(socket, session, &room).await {
            return refuse(ack, f);
        }
        let topic = match self.store.topic(&ns, &room).await {
            Ok(t) => t,
            Err(e) => return refuse(ack, internal(e)),
        };
        // Other nodes' members (cluster mode), read before the ordering section.
        let remote = match self.store.remote_members(&ns, &room).await {
            Ok(r) => r,
            Err(e) => return refuse(ack, internal(e)),
        };
        let away_elsewhere = match self.store.remote_away(&ns, &room).await {
            Ok(r) => r,
            Err(e) => return refuse(ack, internal(e)),
        };
        // The room's creator (a registered joiner of a room with no member on any node and
        // no operator) becomes its operator.
        if !has_members(socket, &room)
            && remote.is_empty()
            && let Err(f) = self.creator_takes_op(&ns, &room, session).await
        {
            return refuse(ack, f);
        }
        let operators = match self
            .with_rules(&ns, &room, true, |r| r.operators.clone())
            .await
        {
            Ok(ops) => ops,
            Err(f) => return refuse(ack, f),
        };
        let operators_elsewhere = operators_among(remote.clone(), &operators);
        // The callback answers on success; if the store fails first, the slot is still full.
        let slot = Arc::new(Mutex::new(ack));
        let (s, nick, r, slot_in) = (socket.clone(), session.nick(), room.clone(), slot.clone());
        let store = self.store.clone();
        let attach = Box::new(move |c: Catchup| {
            enter_room(&*store, &s, nick, &r);
            let reply = JoinReply {
                room: r.clone(),
                members: with_remote(members(&s, &r), remote),
                away: with_remote(away_members(&s, &r), away_elsewhere),
                operators: with_remote(operators_in(&s, &r, &operators), operators_elsewhere),
                topic,
                history: c.messages,
            };
            answer::<JoinRequest>(lock(&slot_in).take(), Ok(reply));
        });
        let result = self
            .store
            .attach(&ns, &room, None, self.join_history, attach)
            .await;
        // Still here: the store failed before the callback ran.
        let ack = lock(&slot).take();
        if let Err(e) = result {
            return refuse(ack, internal(e));
        }
        // A ban made between the check above and the entry did not see us in the room: look
        // again now that we are (the rules are cached), and go as its removal would.
        self.banned_after_entering(socket, session, &room).await;
    }

    fn leave(&self, socket: &Socket, session: &Session, request: &Event) -> Outcome<LeaveReply> {
        let LeaveRequest { room } = parse(request)?;
        member(socket, &room)?;
        let presence = Presence {
            room: room.clone(),
            nick: session.nick(),
            action: PresenceAction::Leave,
            previous: None,
            reason: None,
        };
        socket.to(engine_room(&room)).push(&presence);
        socket.leave(&engine_room(&room));
        self.store
            .note_member(socket.namespace().name(), &room, &session.nick(), false);
        Ok(LeaveReply { room })
    }

    /// Checks a message and hands it to the store without waiting for its commit: the ack
    /// is sent when the store reports back (from its writer thread), so a client may have
    /// up to [`MESSAGES_IN_FLIGHT`](super::session::MESSAGES_IN_FLIGHT) messages in the writer at once,
    /// stored in the order sent. A refused message is answered at once.
    async fn message(
        &self,
        socket: &Socket,
        session: &Arc<Session>,
        request: &Event,
        ack: Option<AckSender>,
    ) {
        let new = match self.new_message(socket, session, request) {
            Ok(new) => new,
            Err(failure) => return refuse(ack, failure),
        };
        if let Err(failure) = self.not_muted(socket, session, &new.room).await {
            return refuse(ack, failure);
        }
        session.reserve_message().await;
        let held = session.clone();
        let done = AppendDone::new(move |outcome| {
            match (outcome, ack) {
                // The ack written straight to JSON: this runs on the store's writer thread,
                // once per message.
                (Ok(appended), Some(ack)) => answer_message(ack, &appended.message),
                (Ok(_), None) => {}
                (Err(e), ack) => refuse(ack, internal(e)),
            }
            // After the ack is queued, so `settled` also means answered.
            held.release_message();
        });
        self.store
            .append_then(new, ChatApp::publisher(socket), done);
    }

    /// A `message` request, checked.
    fn new_message(
        &self,
        socket: &Socket,
        session: &Session,
        request: &Event,
    ) -> Result<NewMessage, Failure> {
        let MessageRequest {
            room,
            text,
            action,
            cid,
        } = parse(request)?;
        member(socket, &room)?;
        let text = checked_text(&self.limits, text)?;
        if cid
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > CID_MAX)
        {
            return Err(Failure(
                ErrorCode::BadRequest,
                format!("cid must have 1 to {CID_MAX} bytes"),
            ));
        }
        Ok(NewMessage {
            namespace: socket.namespace().name().to_owned(),
            room,
            from: session.nick(),
            text,
            action,
            cid,
        })
    }

    /// To every connected session of the recipient (an identity may be on several devices);
    /// to a registered nick that is offline, stored until it connects.
    async fn dm(&self, socket: &Socket, session: &Session, request: &Event) -> Outcome<DmReply> {
        let DmRequest { to, text, action } = parse(request)?;
        names::validate_nick(&to).map_err(|e| Failure(ErrorCode::InvalidName, e.to_string()))?;
        let text = checked_text(&self.limits, text)?;
        let sessions = self.sessions(&to);
        let recipient = sessions.first().map(|s| s.nick()).unwrap_or(to.clone());
        let message = DirectMessage {
            id: super::store::new_id(),
            from: session.nick(),
            to: recipient,
            text,
            ts: now_ms(),
            action,
        };
        let mut delivered = false;
        for target in &sessions {
            // Same namespace as the sender when the recipient is there, else their `/`, else any.
            let sockets = target.sockets();
            let chosen = sockets
                .iter()
                .find(|s| s.namespace().name() == socket.namespace().name())
                .or_else(|| sockets.iter().find(|s| s.namespace().name() == "/"))
                .or_else(|| sockets.first());
            if let Some(t) = chosen {
                delivered |= t.namespace().to(t.sid().as_str()).push(&message) > 0;
            }
        }
        if delivered {
            return Ok(DmReply {
                message,
                delivered: true,
                queued: false,
            });
        }
        let key = names::nick_key(&to);
        if let Some(identity) = self.store.identity(&key).await.map_err(internal)? {
            // Bounded, or anyone could fill the store (and the owner's next connect).
            if self.store.queued_dm_count(&key).await.map_err(internal)? >= QUEUED_DMS_MAX {
                return Err(Failure(
                    ErrorCode::MailboxFull,
                    format!(
                        "{} has {QUEUED_DMS_MAX} messages waiting already: try again once they have been online",
                        identity.nick
                    ),
                ));
            }
            let message = DirectMessage {
                to: identity.nick,
                ..message
            };
            self.store
                .queue_dm(&key, message.clone())
                .await
                .map_err(internal)?;
            return Ok(DmReply {
                message,
                delivered: false,
                queued: true,
            });
        }
        Err(Failure(
            ErrorCode::UserOffline,
            format!("{to} is not online"),
        ))
    }

    async fn nick(&self, session: &Arc<Session>, request: &Event) -> Outcome<NickReply> {
        let NickRequest { nick } = parse(request)?;
        names::validate_nick(&nick).map_err(|e| Failure(ErrorCode::InvalidName, e.to_string()))?;
        (self.limits.check_nick(&nick)).map_err(|e| Failure(ErrorCode::InvalidName, e))?;
        let old = session.nick();
        let (old_key, new_key) = (names::nick_key(&old), names::nick_key(&nick));
        if old_key != new_key
            && self
                .store
                .identity(&new_key)
                .await
                .map_err(internal)?
                .is_some()
        {
            return Err(Failure(
                ErrorCode::NickClaimed,
                format!("'{nick}' is registered: connect with its password to use it"),
            ));
        }
        if old_key != new_key {
            self.not_like_a_registered_nick(&nick)
                .await
                .map_err(|e| Failure(ErrorCode::NickClaimed, e.message))?;
        }
        // Every node sharing the store (cluster mode) must agree first.
        if old_key != new_key
            && !self
                .store
                .claim_online_nick(&nick, false)
                .await
                .map_err(internal)?
        {
            return Err(Failure(
                ErrorCode::NickTaken,
                format!("nick '{nick}' (or one that looks like it) is in use"),
            ));
        }
        {
            let mut users = lock(&self.users);
            if users
                .get(&new_key)
                .is_some_and(|v| v.iter().any(|s| !Arc::ptr_eq(s, session)))
            {
                return Err(Failure(
                    ErrorCode::NickTaken,
                    format!("nick '{nick}' is in use"),
                ));
            }
            let mut online = lock(&self.online_nicks);
            if let Some(other) = online.conflict(&nick, Some(&old)) {
                return Err(Failure(
                    ErrorCode::NickTaken,
                    format!("'{nick}' looks like '{other}', who is online"),
                ));
            }
            if let Some(v) = users.get_mut(&old_key) {
                v.retain(|s| !Arc::ptr_eq(s, session));
                if v.is_empty() {
                    users.remove(&old_key);
                    online.remove(&old);
                    if old_key != new_key {
                        self.release_everywhere(&old);
                    }
                }
            }
            users
                .entry(new_key.clone())
                .or_default()
                .push(session.clone());
            online.insert(&nick);
            drop(online);
            *lock(&session.nick) = nick.clone();
            if old_key != new_key {
                // A new nick is a guest nick: the old identity's proof does not carry over.
                session
                    .authenticated
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
        if old != nick {
            for socket in session.sockets() {
                for room in chat_rooms(&socket) {
                    let ns = socket.namespace();
                    self.store.note_member(ns.name(), &room, &old, false);
                    self.store.note_member(ns.name(), &room, &nick, true);
                    let presence = Presence {
                        room: room.clone(),
                        nick: nick.clone(),
                        action: PresenceAction::Nick,
                        previous: Some(old.clone()),
                        reason: None,
                    };
                    socket.to(engine_room(&room)).push(&presence);
                }
            }
        }
        Ok(NickReply { nick })
    }

    /// The namespace's rooms with their members on every node (in cluster mode, other
    /// nodes' counts as their last heartbeat told).
    async fn rooms(&self, socket: &Socket) -> Outcome<RoomsReply> {
        let ns = socket.namespace();
        let counts = self.room_counts(ns).await.map_err(internal)?;
        let mut rooms = Vec::new();
        for (room, members) in counts {
            let topic = self.store.topic(ns.name(), &room).await.map_err(internal)?;
            rooms.push(RoomInfo {
                room,
                members,
                topic,
            });
        }
        Ok(RoomsReply { rooms })
    }

    async fn who(&self, socket: &Socket, request: &Event) -> Outcome<WhoReply> {
        let WhoRequest { room } = parse(request)?;
        valid_room(&room)?;
        // Other nodes' members too (cluster mode; none for a store of one process).
        let remote = self
            .store
            .remote_members(socket.namespace().name(), &room)
            .await
            .map_err(internal)?;
        let remote_nicks = remote.clone();
        let members = with_remote(members(socket, &room), remote);
        let away_elsewhere = self
            .store
            .remote_away(socket.namespace().name(), &room)
            .await
            .map_err(internal)?;
        let away = with_remote(away_members(socket, &room), away_elsewhere);
        let operators = if members.is_empty() {
            Vec::new()
        } else {
            let ns = socket.namespace().name();
            let ops = self
                .with_rules(ns, &room, false, |r| r.operators.clone())
                .await?;
            with_remote(
                operators_in(socket, &room, &ops),
                operators_among(remote_nicks, &ops),
            )
        };
        Ok(WhoReply {
            room,
            members,
            away,
            operators,
        })
    }

    /// Who a nick is: online (and then the rooms of this namespace shared with the asker,
    /// idle time and away reason) and registered or not. In cluster mode its sessions on
    /// other nodes count too, as their last heartbeat told (`presence`).
    async fn whois(&self, socket: &Socket, request: &Event) -> Outcome<WhoisReply> {
        let WhoisRequest { nick } = parse(request)?;
        names::validate_nick(&nick).map_err(|e| Failure(ErrorCode::InvalidName, e.to_string()))?;
        let key = names::nick_key(&nick);
        let identity = self.store.identity(&key).await.map_err(internal)?;
        let sessions: Vec<Arc<Session>> = lock(&self.users).get(&key).cloned().unwrap_or_default();
        let mine: std::collections::HashSet<String> = chat_rooms(socket).into_iter().collect();
        let namespace = socket.namespace().name().to_owned();
        let asked: Vec<String> = mine.iter().cloned().collect();
        let remote = self
            .store
            .remote_user(&key, &namespace, &asked)
            .await
            .map_err(internal)?;
        let here = presence::summary(&sessions);
        let now = now_ms();
        // Every node's summary of the nick: this node's first.
        let all: Vec<(&UserPresence, u64)> = here
            .iter()
            .map(|p| (p, sessions.iter().map(|s| s.idle_secs()).min().unwrap_or(0)))
            .chain(remote.iter().map(|r| (&r.presence, r.idle_secs(now))))
            .collect();
        let Some((first, _)) = all.first() else {
            return match identity {
                Some(identity) => Ok(WhoisReply {
                    nick: identity.nick,
                    online: false,
                    registered: true,
                    rooms: Vec::new(),
                    idle_secs: None,
                    away: None,
                }),
                None => Err(Failure(
                    ErrorCode::UserOffline,
                    format!("nobody is called '{nick}'"),
                )),
            };
        };
        // Several devices of one identity (on any nodes): the least idle, and away only if
        // all are.
        let idle = all.iter().map(|(_, idle)| *idle).min();
        let away = if all.iter().all(|(p, _)| p.away.is_some()) {
            first.away.clone()
        } else {
            None
        };
        let mut rooms = presence::shared_rooms(&sessions, &namespace, &mine);
        rooms.extend(
            remote
                .iter()
                .flat_map(|r| r.rooms.iter().map(|(_, room)| room.clone())),
        );
        rooms.sort();
        rooms.dedup();
        Ok(WhoisReply {
            nick: first.nick.clone(),
            online: true,
            registered: identity.is_some(),
            rooms,
            idle_secs: idle,
            away,
        })
    }

    /// Marks the connection away (with a reason) or back (without), and tells the rooms it
    /// is in, in every namespace, when that changes.
    fn away(&self, session: &Session, request: &Event) -> Outcome<AwayReply> {
        let AwayRequest { reason } = parse(request)?;
        let reason = match reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
        {
            Some(r) => {
                names::validate_reason(&r)
                    .map_err(|e| Failure(ErrorCode::InvalidText, e.to_string()))?;
                Some(r)
            }
            None => None,
        };
        let before = std::mem::replace(&mut *lock(&session.away), reason.clone());
        if before != reason {
            let (action, why) = match &reason {
                Some(r) => (PresenceAction::Away, Some(r.clone())),
                None => (PresenceAction::Back, None),
            };
            let nick = session.nick();
            for socket in session.sockets() {
                for room in chat_rooms(&socket) {
                    let presence = Presence {
                        room: room.clone(),
                        nick: nick.clone(),
                        action,
                        previous: None,
                        reason: why.clone(),
                    };
                    socket.to(engine_room(&room)).push(&presence);
                }
            }
        }
        Ok(AwayReply { away: reason })
    }

    async fn topic(
        &self,
        socket: &Socket,
        session: &Session,
        request: &Event,
    ) -> Outcome<TopicReply> {
        let TopicRequest { room, topic } = parse(request)?;
        let ns = socket.namespace().name().to_owned();
        let Some(topic) = topic else {
            valid_room(&room)?;
            let topic = self.store.topic(&ns, &room).await.map_err(internal)?;
            return Ok(TopicReply { room, topic });
        };
        member(socket, &room)?;
        self.may_set_topic(&ns, &room, &self.actor(session)).await?;
        names::validate_topic(&topic)
            .map_err(|e| Failure(ErrorCode::InvalidText, e.to_string()))?;
        let topic = Some(topic.trim().to_owned()).filter(|t| !t.is_empty());
        self.store
            .set_topic(&ns, &room, topic.clone())
            .await
            .map_err(internal)?;
        let change = TopicChange {
            room: room.clone(),
            topic: topic.clone(),
            by: session.nick(),
        };
        socket.to(engine_room(&room)).push(&change);
        Ok(TopicReply { room, topic })
    }

    async fn history(&self, socket: &Socket, request: &Event) -> Outcome<HistoryReply> {
        let HistoryRequest {
            room,
            before,
            limit,
        } = parse(request)?;
        member(socket, &room)?;
        let limit = limit.unwrap_or(50).clamp(1, 200) as usize;
        let messages = self
            .store
            .history(socket.namespace().name(), &room, before, limit)
            .await
            .map_err(internal)?;
        Ok(HistoryReply { room, messages })
    }

    fn typing(&self, socket: &Socket, session: &Session, request: &Event) -> Outcome<TypingReply> {
        let TypingRequest { room } = parse(request)?;
        member(socket, &room)?;
        let typing = Typing {
            room: room.clone(),
            nick: session.nick(),
        };
        socket.to(engine_room(&room)).volatile().push(&typing);
        Ok(TypingReply {})
    }
}

impl ChatApp {
    /// The chat rooms of a namespace with their members on every node (other nodes' as
    /// their last heartbeat told), sorted by room.
    pub async fn room_counts(&self, ns: &Namespace) -> Result<Vec<(String, usize)>, StoreError> {
        let local = ns
            .adapter()
            .rooms()
            .into_iter()
            .filter_map(|(room, n)| room.strip_prefix('#').map(|r| (r.to_owned(), n)))
            .collect();
        let remote = self.store.remote_room_counts(ns.name()).await?;
        Ok(presence::add_counts(local, remote))
    }

    /// The users connected to the namespace named `ns`, on every node (cluster mode: the
    /// other nodes' as of their last heartbeat).
    pub fn namespace_users(&self, ns: &str) -> usize {
        lock(&self.namespace_users).get(ns).copied().unwrap_or(0)
            + self.store.remote_namespace_users(ns)
    }
}

/// The sorted nicks of a room's members in the socket's namespace whose session passes
/// `keep`.
pub(crate) fn nicks_in(
    socket: &Socket,
    room: &str,
    keep: impl Fn(&Session) -> bool,
) -> Vec<String> {
    let ns = socket.namespace();
    let opts = BroadcastOptions {
        rooms: vec![engine_room(room)],
        ..Default::default()
    };
    let mut nicks: Vec<String> = ns
        .adapter()
        .sockets(&opts)
        .iter()
        .filter_map(|sid| ns.socket(sid.as_str()))
        .filter_map(|s| s.extensions().get::<Session>())
        .filter(|sess| keep(sess))
        .map(|sess| sess.nick())
        .collect();
    nicks.sort_by_key(|n| n.to_lowercase());
    nicks.dedup();
    nicks
}

/// Whether the room has a member here: one pass over its sockets, no nick read or sorted
/// (a join asks this, so a join storm into a big room stays linear per join).
fn has_members(socket: &Socket, room: &str) -> bool {
    let ns = socket.namespace();
    let opts = BroadcastOptions {
        rooms: vec![engine_room(room)],
        ..Default::default()
    };
    ns.adapter()
        .sockets(&opts)
        .iter()
        .filter_map(|sid| ns.socket(sid.as_str()))
        .any(|s| s.extensions().get::<Session>().is_some())
}

/// The room members who are its operators, sorted as members are.
fn operators_in(
    socket: &Socket,
    room: &str,
    operators: &std::collections::HashSet<String>,
) -> Vec<String> {
    if operators.is_empty() {
        return Vec::new();
    }
    nicks_in(socket, room, |s| {
        s.is_authenticated() && operators.contains(&names::nick_key(&s.nick()))
    })
}

/// The nicks among `nicks` (other nodes' members) that are operators. An operator's nick
/// is registered, and a registered nick is only ever connected with its password, so the
/// nick alone tells.
fn operators_among(
    nicks: Vec<String>,
    operators: &std::collections::HashSet<String>,
) -> Vec<String> {
    nicks
        .into_iter()
        .filter(|n| operators.contains(&names::nick_key(n)))
        .collect()
}

/// Sorted nicks of a room's members in the socket's namespace.
fn members(socket: &Socket, room: &str) -> Vec<String> {
    nicks_in(socket, room, |_| true)
}

/// Local members with other nodes' added, sorted as [`members`], each nick once.
fn with_remote(mut local: Vec<String>, remote: Vec<String>) -> Vec<String> {
    local.extend(remote);
    local.sort_by_key(|n| n.to_lowercase());
    local.dedup_by_key(|n| n.to_lowercase());
    local
}

/// The members of a room who are away, sorted as [`members`].
fn away_members(socket: &Socket, room: &str) -> Vec<String> {
    nicks_in(socket, room, |session| session.away().is_some())
}
