//! One method per client event. Each parses its request, acts, and returns the ack object
//! (`{"ok":true,...}` or `{"ok":false,"error":{...}}`, see `chat_protocol::events`).

use std::sync::Arc;

use chat_protocol::events::{
    self, ChatMessage, DirectMessage, DmReply, DmRequest, ErrorCode, HistoryReply, HistoryRequest,
    JoinReply, JoinRequest, LeaveReply, LeaveRequest, MessageReply, MessageRequest, NickReply,
    NickRequest, PingReply, Presence, PresenceAction, RoomInfo, RoomsReply, TopicChange,
    TopicReply, TopicRequest, Typing, TypingRequest, WhoReply, WhoRequest, client,
};
use chat_protocol::names;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::warn;

use super::store::{NewMessage, now_ms};
use super::{ChatApp, Session, chat_rooms, engine_room};
use crate::engine::{BroadcastOptions, Event, Socket, lock};

/// An error ack.
struct Failure(ErrorCode, String);

type Outcome = Result<Value, Failure>;

fn parse<T: DeserializeOwned>(arg: Value) -> Result<T, Failure> {
    serde_json::from_value(arg)
        .map_err(|e| Failure(ErrorCode::BadRequest, format!("invalid request: {e}")))
}

fn valid_room(room: &str) -> Result<(), Failure> {
    names::validate_room(room).map_err(|e| Failure(ErrorCode::InvalidName, e.to_string()))
}

fn member(socket: &Socket, room: &str) -> Result<(), Failure> {
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

fn internal(e: impl std::fmt::Display) -> Failure {
    warn!(error = %e, "request failed");
    Failure(ErrorCode::Internal, "internal error".into())
}

impl ChatApp {
    /// Routes one event and sends its ack.
    pub(crate) async fn dispatch(self: Arc<Self>, socket: Socket, event: Event) {
        let Event {
            name, args, ack, ..
        } = event;
        let Some(session) = socket.extensions().get::<Session>() else {
            return;
        };
        let arg = args.into_iter().next().unwrap_or(Value::Null);
        let outcome = match name.as_str() {
            client::JOIN => self.join(&socket, &session, arg).await,
            client::LEAVE => self.leave(&socket, &session, arg),
            client::MESSAGE => self.message(&socket, &session, arg).await,
            client::DM => self.dm(&socket, &session, arg),
            client::NICK => self.nick(&session, arg),
            client::ROOMS => self.rooms(&socket).await,
            client::WHO => self.who(&socket, arg),
            client::TOPIC => self.topic(&socket, &session, arg).await,
            client::HISTORY => self.history(&socket, arg).await,
            client::TYPING => self.typing(&socket, &session, arg),
            client::PING => Ok(events::ok_reply(&PingReply { ts: now_ms() })),
            other => Err(Failure(
                ErrorCode::UnknownEvent,
                format!("unknown event '{other}'"),
            )),
        };
        if let Some(ack) = ack {
            let reply = match outcome {
                Ok(v) => v,
                Err(Failure(code, message)) => events::error_reply(code, message),
            };
            let _ = ack.send(vec![reply]);
        }
    }

    async fn join(&self, socket: &Socket, session: &Session, arg: Value) -> Outcome {
        let JoinRequest { room } = parse(arg)?;
        valid_room(&room)?;
        let ns = socket.namespace().name().to_owned();
        let history = self
            .store
            .history(&ns, &room, None, self.join_history)
            .await
            .map_err(internal)?;
        let topic = self.store.topic(&ns, &room).await.map_err(internal)?;
        let already = chat_rooms(socket).contains(&room);
        if !already {
            let nick = session.nick();
            let presence = Presence {
                room: room.clone(),
                nick,
                action: PresenceAction::Join,
                previous: None,
            };
            socket
                .to(engine_room(&room))
                .emit(events::server::PRESENCE, vec![json!(presence)]);
            socket.join(engine_room(&room));
        }
        let members = self.members(socket, &room);
        Ok(events::ok_reply(&JoinReply {
            room,
            members,
            topic,
            history,
        }))
    }

    fn leave(&self, socket: &Socket, session: &Session, arg: Value) -> Outcome {
        let LeaveRequest { room } = parse(arg)?;
        member(socket, &room)?;
        let presence = Presence {
            room: room.clone(),
            nick: session.nick(),
            action: PresenceAction::Leave,
            previous: None,
        };
        socket
            .to(engine_room(&room))
            .emit(events::server::PRESENCE, vec![json!(presence)]);
        socket.leave(&engine_room(&room));
        Ok(events::ok_reply(&LeaveReply { room }))
    }

    async fn message(&self, socket: &Socket, session: &Session, arg: Value) -> Outcome {
        let MessageRequest { room, text, action } = parse(arg)?;
        member(socket, &room)?;
        names::validate_text(&text).map_err(|e| Failure(ErrorCode::InvalidText, e.to_string()))?;
        let new = NewMessage {
            namespace: socket.namespace().name().to_owned(),
            room: room.clone(),
            from: session.nick(),
            text,
            action,
        };
        let sender = socket.clone();
        let publish = Box::new(move |stored: &ChatMessage| {
            sender
                .to(engine_room(&stored.room))
                .emit(events::server::MESSAGE, vec![json!(stored)]);
        });
        let message = self.store.append(new, publish).await.map_err(internal)?;
        Ok(events::ok_reply(&MessageReply { message }))
    }

    fn dm(&self, socket: &Socket, session: &Session, arg: Value) -> Outcome {
        let DmRequest { to, text, action } = parse(arg)?;
        names::validate_nick(&to).map_err(|e| Failure(ErrorCode::InvalidName, e.to_string()))?;
        names::validate_text(&text).map_err(|e| Failure(ErrorCode::InvalidText, e.to_string()))?;
        let recipient = self
            .session(&to)
            .ok_or_else(|| Failure(ErrorCode::UserOffline, format!("{to} is not online")))?;
        let message = DirectMessage {
            id: super::store::new_id(),
            from: session.nick(),
            to: recipient.nick(),
            text,
            ts: now_ms(),
            action,
        };
        // Same namespace as the sender when the recipient is there, else their `/`, else any.
        let sockets = recipient.sockets();
        let target = sockets
            .iter()
            .find(|s| s.namespace().name() == socket.namespace().name())
            .or_else(|| sockets.iter().find(|s| s.namespace().name() == "/"))
            .or_else(|| sockets.first())
            .ok_or_else(|| Failure(ErrorCode::UserOffline, format!("{to} is not online")))?;
        let ns = target.namespace();
        let delivered = ns
            .to(target.sid().as_str())
            .emit(events::server::DM, vec![json!(message)])
            > 0;
        Ok(events::ok_reply(&DmReply { message, delivered }))
    }

    fn nick(&self, session: &Arc<Session>, arg: Value) -> Outcome {
        let NickRequest { nick } = parse(arg)?;
        names::validate_nick(&nick).map_err(|e| Failure(ErrorCode::InvalidName, e.to_string()))?;
        let old = session.nick();
        {
            let mut users = lock(&self.users);
            let new_key = names::nick_key(&nick);
            if users
                .get(&new_key)
                .is_some_and(|s| !Arc::ptr_eq(s, session))
            {
                return Err(Failure(
                    ErrorCode::NickTaken,
                    format!("nick '{nick}' is in use"),
                ));
            }
            users.remove(&names::nick_key(&old));
            users.insert(new_key, session.clone());
            *lock(&session.nick) = nick.clone();
        }
        if old != nick {
            for socket in session.sockets() {
                for room in chat_rooms(&socket) {
                    let presence = Presence {
                        room: room.clone(),
                        nick: nick.clone(),
                        action: PresenceAction::Nick,
                        previous: Some(old.clone()),
                    };
                    socket
                        .to(engine_room(&room))
                        .emit(events::server::PRESENCE, vec![json!(presence)]);
                }
            }
        }
        Ok(events::ok_reply(&NickReply { nick }))
    }

    async fn rooms(&self, socket: &Socket) -> Outcome {
        let ns = socket.namespace();
        let mut rooms = Vec::new();
        for (room, members) in ns.adapter().rooms() {
            let Some(room) = room.strip_prefix('#') else {
                continue;
            };
            let topic = self.store.topic(ns.name(), room).await.map_err(internal)?;
            rooms.push(RoomInfo {
                room: room.to_owned(),
                members,
                topic,
            });
        }
        Ok(events::ok_reply(&RoomsReply { rooms }))
    }

    fn who(&self, socket: &Socket, arg: Value) -> Outcome {
        let WhoRequest { room } = parse(arg)?;
        valid_room(&room)?;
        let members = self.members(socket, &room);
        Ok(events::ok_reply(&WhoReply { room, members }))
    }

    /// Sorted nicks of a room's members in this namespace.
    fn members(&self, socket: &Socket, room: &str) -> Vec<String> {
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
            .filter_map(|s| s.extensions().get::<Session>().map(|sess| sess.nick()))
            .collect();
        nicks.sort_by_key(|n| n.to_lowercase());
        nicks.dedup();
        nicks
    }

    async fn topic(&self, socket: &Socket, session: &Session, arg: Value) -> Outcome {
        let TopicRequest { room, topic } = parse(arg)?;
        let ns = socket.namespace().name().to_owned();
        let Some(topic) = topic else {
            valid_room(&room)?;
            let topic = self.store.topic(&ns, &room).await.map_err(internal)?;
            return Ok(events::ok_reply(&TopicReply { room, topic }));
        };
        member(socket, &room)?;
        if topic.chars().count() > names::TOPIC_MAX {
            return Err(Failure(
                ErrorCode::InvalidText,
                format!("topic is longer than {} characters", names::TOPIC_MAX),
            ));
        }
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
        socket
            .to(engine_room(&room))
            .emit(events::server::TOPIC, vec![json!(change)]);
        Ok(events::ok_reply(&TopicReply { room, topic }))
    }

    async fn history(&self, socket: &Socket, arg: Value) -> Outcome {
        let HistoryRequest {
            room,
            before,
            limit,
        } = parse(arg)?;
        member(socket, &room)?;
        let limit = limit.unwrap_or(50).clamp(1, 200) as usize;
        let messages = self
            .store
            .history(socket.namespace().name(), &room, before, limit)
            .await
            .map_err(internal)?;
        Ok(events::ok_reply(&HistoryReply { room, messages }))
    }

    fn typing(&self, socket: &Socket, session: &Session, arg: Value) -> Outcome {
        let TypingRequest { room } = parse(arg)?;
        member(socket, &room)?;
        let typing = Typing {
            room: room.clone(),
            nick: session.nick(),
        };
        socket
            .to(engine_room(&room))
            .volatile()
            .emit(events::server::TYPING, vec![json!(typing)]);
        Ok(json!({"ok": true}))
    }
}
