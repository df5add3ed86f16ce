//! The chat's events: what a client sends (each answered by an ack), what the server pushes,
//! and the ack envelope. `docs/PROTOCOL.md` is the prose version of this file.
//!
//! Every request is one Socket.IO EVENT whose single argument is the request object. Its ack
//! carries one object: `{"ok":true, ...reply fields}` or
//! `{"ok":false,"error":{"code":"...","message":"..."}}` ([`Reply`]).
//!
//! The vocabulary is typed: each request type names its event and its reply type
//! ([`Request`]), each pushed event type its name ([`ServerEvent`]). Adding a request is one
//! request/reply pair here (with its `impl Request`), one server handler, one client command,
//! and its line in `docs/PROTOCOL.md`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

/// A request a client sends: the event it goes out as, and what a successful ack carries.
pub trait Request: Serialize + DeserializeOwned {
    /// The event name (one of [`client`]'s).
    const EVENT: &'static str;
    /// The reply fields of `{"ok":true, ...}`.
    type Reply: Serialize + DeserializeOwned;
}

/// An event the server pushes, and its name (one of [`server`]'s).
pub trait ServerEvent: Serialize + DeserializeOwned {
    const EVENT: &'static str;
}

macro_rules! requests {
    ($($request:ty => $event:path, $reply:ty;)*) => {$(
        impl Request for $request {
            const EVENT: &'static str = $event;
            type Reply = $reply;
        }
    )*};
}

macro_rules! server_events {
    ($($event_type:ty => $event:path;)*) => {$(
        impl ServerEvent for $event_type {
            const EVENT: &'static str = $event;
        }
    )*};
}

requests! {
    JoinRequest => client::JOIN, JoinReply;
    LeaveRequest => client::LEAVE, LeaveReply;
    MessageRequest => client::MESSAGE, MessageReply<'static>;
    DmRequest => client::DM, DmReply;
    NickRequest => client::NICK, NickReply;
    RoomsRequest => client::ROOMS, RoomsReply;
    WhoRequest => client::WHO, WhoReply;
    TopicRequest => client::TOPIC, TopicReply;
    HistoryRequest => client::HISTORY, HistoryReply;
    TypingRequest => client::TYPING, TypingReply;
    PingRequest => client::PING, PingReply;
    WhoisRequest => client::WHOIS, WhoisReply;
    AwayRequest => client::AWAY, AwayReply;
}

server_events! {
    ChatMessage => server::MESSAGE;
    DirectMessage => server::DM;
    Presence => server::PRESENCE;
    RoomChange => server::ROOM;
    TopicChange => server::TOPIC;
    Notice => server::NOTICE;
    Typing => server::TYPING;
}

/// Event names, client to server.
pub mod client {
    pub const JOIN: &str = "join";
    pub const LEAVE: &str = "leave";
    pub const MESSAGE: &str = "message";
    pub const DM: &str = "dm";
    pub const NICK: &str = "nick";
    pub const ROOMS: &str = "rooms";
    pub const WHO: &str = "who";
    pub const TOPIC: &str = "topic";
    pub const HISTORY: &str = "history";
    /// Volatile, no ack.
    pub const TYPING: &str = "typing";
    /// Answered at once with the server time; clients use it to measure lag.
    pub const PING: &str = "ping";
    pub const WHOIS: &str = "whois";
    pub const AWAY: &str = "away";
}

/// Event names, server to client.
pub mod server {
    pub const MESSAGE: &str = "message";
    pub const DM: &str = "dm";
    pub const PRESENCE: &str = "presence";
    pub const ROOM: &str = "room";
    pub const TOPIC: &str = "topic";
    pub const NOTICE: &str = "notice";
    pub const TYPING: &str = "typing";
}

// ---- CONNECT auth payload ----

/// The CONNECT payload of every namespace. `nick` is required on a connection's first
/// namespace; later namespaces of the same connection may omit it (or repeat the same nick).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    /// Reserved for the nick's own password (durable-identity issue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Reserved for a signed token (durable-identity issue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The namespace's shared key, for namespaces that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Per room, the last `seq` the client already has (catch-up seam).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<std::collections::BTreeMap<String, u64>>,
}

/// `data` of a CONNECT_ERROR sent by the chat application: a stable code beside the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectErrorData {
    pub code: ErrorCode,
}

// ---- the ack envelope ----

/// Stable error codes, in acks and in CONNECT_ERROR data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request object was missing or had the wrong shape.
    BadRequest,
    /// A room, nick or namespace name broke the name rules.
    InvalidName,
    /// The message text was empty or too long.
    InvalidText,
    /// The nick is in use by another connected user.
    NickTaken,
    /// A nick is required to connect.
    NickRequired,
    /// The request needs membership of a room the socket has not joined.
    NotInRoom,
    /// The DM recipient is not connected.
    UserOffline,
    /// A namespace key is missing or wrong.
    Forbidden,
    /// The nick is claimed with a password and none (or a wrong one) was given.
    WrongPassword,
    /// The namespace requires a signed token and none was given.
    TokenRequired,
    /// The token's signature, format or subject is wrong.
    TokenInvalid,
    /// The token has expired.
    TokenExpired,
    /// The nick is claimed by a registered identity.
    NickClaimed,
    /// The event is not part of the protocol.
    UnknownEvent,
    /// The server failed; the details are in its log.
    Internal,
    /// The connection sent events faster than the server's rate limit; this one was not
    /// handled (sent by the engine, see `docs/PROTOCOL.md`, "Limits").
    RateLimited,
    /// The socket is already in as many rooms as the server allows.
    TooManyRooms,
    /// The server cannot take this now (too many password checks waiting); retry after a
    /// short, growing delay (see `docs/PROTOCOL.md`, "Passwords").
    Busy,
    /// A `dm` to an offline registered nick that has as many messages waiting as the server
    /// keeps (500).
    MailboxFull,
    /// The server's storage cannot be reached now (in cluster mode, its Redis is down or
    /// restarting): the request did not happen. Retry it after a short delay; a `message`
    /// re-sent with the same `cid` is stored once (see `docs/PROTOCOL.md`, "Errors").
    Unavailable,
    /// A code this build does not know (sent by a newer server): read it as a refusal with
    /// its message. Never sent.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// A decoded ack: `Ok(reply)` or the server's error.
pub type Reply<T> = Result<T, ErrorBody>;

/// `{"ok":true, ...fields of reply}`, written straight to JSON (no `Value` built): what a
/// server acks with.
#[derive(Debug, Serialize)]
pub struct OkAck<'a, T> {
    ok: bool,
    #[serde(flatten)]
    reply: &'a T,
}

impl<'a, T: Serialize> OkAck<'a, T> {
    pub fn new(reply: &'a T) -> Self {
        OkAck { ok: true, reply }
    }
}

/// `{"ok":false,"error":{...}}`, written straight to JSON.
#[derive(Debug, Serialize)]
pub struct ErrorAck<'a> {
    ok: bool,
    error: &'a ErrorBody,
}

impl<'a> ErrorAck<'a> {
    pub fn new(error: &'a ErrorBody) -> Self {
        ErrorAck { ok: false, error }
    }
}

/// Builds `{"ok":true, ...fields of reply}`.
pub fn ok_reply<T: Serialize>(reply: &T) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("ok".into(), Value::Bool(true));
    if let Ok(Value::Object(fields)) = serde_json::to_value(reply) {
        map.extend(fields);
    }
    Value::Object(map)
}

/// Builds `{"ok":false,"error":{"code":...,"message":...}}`.
pub fn error_reply(code: ErrorCode, message: impl Into<String>) -> Value {
    serde_json::json!({"ok": false, "error": ErrorBody { code, message: message.into() }})
}

/// Reads an ack object back into a typed reply. A malformed ack becomes a `BadRequest` error.
pub fn parse_reply<T: DeserializeOwned>(value: &Value) -> Reply<T> {
    let malformed = |why: String| ErrorBody {
        code: ErrorCode::BadRequest,
        message: format!("malformed reply: {why}"),
    };
    match value.get("ok").and_then(Value::as_bool) {
        Some(true) => T::deserialize(value).map_err(|e| malformed(e.to_string())),
        Some(false) => Err(value
            .get("error")
            .and_then(|e| ErrorBody::deserialize(e).ok())
            .unwrap_or_else(|| malformed("no error body".into()))),
        None => Err(malformed("no ok field".into())),
    }
}

// ---- shared shapes ----

/// A stored room message, as pushed in `message` events and returned in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique id (server-wide).
    pub id: String,
    pub room: String,
    /// Per-room sequence number: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    pub from: String,
    pub text: String,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: i64,
    /// A `/me` action.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
}

/// A direct message, pushed to its recipient as `dm` and returned to its sender in the ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectMessage {
    pub id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub room: String,
    pub members: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

// ---- client requests and their replies ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub room: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReply {
    pub room: String,
    /// Nicks of the members, the joiner included, sorted.
    pub members: Vec<String>,
    /// The members who are away (a subset of `members`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub away: Vec<String>,
    #[serde(default)]
    pub topic: Option<String>,
    /// The most recent messages, oldest first.
    pub history: Vec<ChatMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveRequest {
    pub room: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveReply {
    pub room: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRequest {
    pub room: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
    /// A client message id. A message re-sent with the same `cid` (after a reconnect, say)
    /// is stored once; the ack carries the message as first stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// The `message` ack. Borrowed when the server writes it (the stored message is also
/// published, so it is not copied), owned when a client reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReply<'a> {
    /// The message as stored; the sender gets it here and not as a `message` event.
    pub message: Cow<'a, ChatMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmRequest {
    pub to: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmReply {
    pub message: DirectMessage,
    /// True when it reached a connected recipient.
    pub delivered: bool,
    /// True when the recipient (a claimed nick) is offline and the message waits for them.
    #[serde(default)]
    pub queued: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NickRequest {
    pub nick: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NickReply {
    pub nick: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsRequest {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsReply {
    pub rooms: Vec<RoomInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoRequest {
    pub room: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoReply {
    pub room: String,
    pub members: Vec<String>,
    /// The members who are away (a subset of `members`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub away: Vec<String>,
}

/// Who a nick is: online or not, registered or a guest, the rooms of this namespace the
/// asker shares with them, how long since they last sent anything, and why they are away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoisRequest {
    pub nick: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoisReply {
    /// As they are connected (or registered) with it.
    pub nick: String,
    pub online: bool,
    pub registered: bool,
    /// Rooms of this namespace both are in, sorted.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Seconds since their last message, direct message or join (when online).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_secs: Option<u64>,
    /// Their away reason, when away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away: Option<String>,
}

/// Marks the connection away with a reason, or back without one (or with an empty one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwayRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwayReply {
    /// The reason now in force; none: back.
    #[serde(default)]
    pub away: Option<String>,
}

/// Without `topic` it asks for the current topic; with it, sets the topic (an empty string
/// clears it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRequest {
    pub room: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicReply {
    pub room: String,
    #[serde(default)]
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    pub room: String,
    /// Only messages with a smaller `seq`; absent means the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryReply {
    pub room: String,
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
}

/// Volatile: normally sent without an ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingRequest {
    pub room: String,
}

/// `{"ok":true}`, for a `typing` sent with an ack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingReply {}

/// Answered at once with the server time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingRequest {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReply {
    /// Server time, milliseconds since the Unix epoch.
    pub ts: i64,
}

// ---- server events ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceAction {
    /// Joined the room.
    Join,
    /// Left the room with `leave`.
    Leave,
    /// Disconnected.
    Quit,
    /// Changed nick; `previous` holds the old one.
    Nick,
    /// Marked away; `reason` says why.
    Away,
    /// Back from away.
    Back,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub room: String,
    pub nick: String,
    pub action: PresenceAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// For `away`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomAction {
    Created,
    Deleted,
}

/// A room appeared (first member joined) or vanished (last member left) in the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomChange {
    pub action: RoomAction,
    pub room: String,
}

/// A room's topic changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicChange {
    pub room: String,
    #[serde(default)]
    pub topic: Option<String>,
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    pub room: String,
    pub nick: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_envelope_round_trips() {
        let v = ok_reply(&LeaveReply { room: "a".into() });
        assert_eq!(v.to_string(), r#"{"ok":true,"room":"a"}"#);
        assert_eq!(
            parse_reply::<LeaveReply>(&v),
            Ok(LeaveReply { room: "a".into() })
        );
        let e = error_reply(ErrorCode::NotInRoom, "not in a");
        assert_eq!(
            e.to_string(),
            r#"{"ok":false,"error":{"code":"not_in_room","message":"not in a"}}"#
        );
        assert_eq!(
            parse_reply::<LeaveReply>(&e).unwrap_err().code,
            ErrorCode::NotInRoom
        );
        assert_eq!(
            parse_reply::<LeaveReply>(&Value::Null).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn acks_written_directly_match_the_envelope() {
        let message = ChatMessage {
            id: "i".into(),
            room: "r".into(),
            seq: 7,
            from: "ann".into(),
            text: "hi".into(),
            ts: 1,
            action: false,
        };
        let reply = MessageReply {
            message: Cow::Borrowed(&message),
        };
        let direct = serde_json::to_string(&OkAck::new(&reply)).unwrap();
        assert_eq!(direct, ok_reply(&reply).to_string());
        assert_eq!(
            direct,
            r#"{"ok":true,"message":{"id":"i","room":"r","seq":7,"from":"ann","text":"hi","ts":1}}"#
        );
        let read: <MessageRequest as Request>::Reply =
            parse_reply(&serde_json::from_str(&direct).unwrap()).unwrap();
        assert_eq!(read.message.into_owned(), message);
        let body = ErrorBody {
            code: ErrorCode::Busy,
            message: "later".into(),
        };
        assert_eq!(
            serde_json::to_string(&ErrorAck::new(&body)).unwrap(),
            error_reply(ErrorCode::Busy, "later").to_string()
        );
        assert_eq!(
            serde_json::to_string(&OkAck::new(&TypingReply {})).unwrap(),
            r#"{"ok":true}"#
        );
    }

    #[test]
    fn unknown_error_codes_are_read_as_unknown() {
        let e =
            serde_json::json!({"ok": false, "error": {"code": "from_the_future", "message": "m"}});
        let body = parse_reply::<LeaveReply>(&e).unwrap_err();
        assert_eq!(body.code, ErrorCode::Unknown);
        assert_eq!(body.message, "m");
        let data: ConnectErrorData =
            serde_json::from_value(serde_json::json!({"code": "from_the_future"})).unwrap();
        assert_eq!(data.code, ErrorCode::Unknown);
        assert_eq!(
            serde_json::from_value::<ErrorCode>(serde_json::json!("mailbox_full")).unwrap(),
            ErrorCode::MailboxFull
        );
    }

    #[test]
    fn every_event_has_one_type() {
        let requests = [
            JoinRequest::EVENT,
            LeaveRequest::EVENT,
            MessageRequest::EVENT,
            DmRequest::EVENT,
            NickRequest::EVENT,
            RoomsRequest::EVENT,
            WhoRequest::EVENT,
            TopicRequest::EVENT,
            HistoryRequest::EVENT,
            TypingRequest::EVENT,
            PingRequest::EVENT,
            WhoisRequest::EVENT,
            AwayRequest::EVENT,
        ];
        let pushed = [
            ChatMessage::EVENT,
            DirectMessage::EVENT,
            Presence::EVENT,
            RoomChange::EVENT,
            TopicChange::EVENT,
            Notice::EVENT,
            Typing::EVENT,
        ];
        for names in [&requests[..], &pushed[..]] {
            let mut sorted = names.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{names:?}");
        }
    }

    #[test]
    fn presence_wire_shape() {
        let p = Presence {
            room: "r".into(),
            nick: "n".into(),
            action: PresenceAction::Nick,
            previous: Some("o".into()),
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"room":"r","nick":"n","action":"nick","previous":"o"}"#
        );
    }
}
