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
    KickRequest => client::KICK, Moderation;
    BanRequest => client::BAN, Moderation;
    UnbanRequest => client::UNBAN, Moderation;
    MuteRequest => client::MUTE, Moderation;
    UnmuteRequest => client::UNMUTE, Moderation;
    OpRequest => client::OP, Moderation;
    DeopRequest => client::DEOP, Moderation;
    DeleteRequest => client::DELETE, MessageDeleted;
    UnregisterRequest => client::UNREGISTER, UnregisterReply;
    ResetPasswordRequest => client::RESET_PASSWORD, ResetPasswordReply;
    SearchRequest => client::SEARCH, SearchReply;
}

server_events! {
    ChatMessage => server::MESSAGE;
    DirectMessage => server::DM;
    Presence => server::PRESENCE;
    RoomChange => server::ROOM;
    TopicChange => server::TOPIC;
    Notice => server::NOTICE;
    Typing => server::TYPING;
    Moderation => server::MODERATION;
    MessageDeleted => server::DELETED;
    Limits => server::LIMITS;
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
    /// Moderation (room operators and server admins; see `docs/PROTOCOL.md`, "Moderation").
    pub const KICK: &str = "kick";
    pub const BAN: &str = "ban";
    pub const UNBAN: &str = "unban";
    pub const MUTE: &str = "mute";
    pub const UNMUTE: &str = "unmute";
    pub const OP: &str = "op";
    pub const DEOP: &str = "deop";
    /// Server admins only.
    pub const DELETE: &str = "delete";
    pub const UNREGISTER: &str = "unregister";
    pub const RESET_PASSWORD: &str = "reset_password";
    /// Searches the history of the rooms the socket is in.
    pub const SEARCH: &str = "search";
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
    /// A moderation action in a room (kick, ban, op, ...).
    pub const MODERATION: &str = "moderation";
    /// A message an admin deleted from a room's history.
    pub const DELETED: &str = "deleted";
    /// The server's limits, sent once after each CONNECT.
    pub const LIMITS: &str = "limits";
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
    /// The request needs a room operator (or a server admin), and the sender is not one;
    /// also an operator acting on a server admin.
    NotOperator,
    /// The request is for server admins only.
    NotAdmin,
    /// The sender is banned from the room (`join`, and rooms of a CONNECT's `since`).
    Banned,
    /// The sender is muted in the room (`message`).
    Muted,
    /// The nick named is not a registered nick (`op`, `unregister`, `reset_password`).
    NotRegistered,
    /// The thing named does not exist: a message to delete, a ban or mute to lift, a user
    /// to kick who is not in the room.
    NotFound,
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
    /// The members who are room operators (a subset of `members`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<String>,
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
    /// The members who are room operators (a subset of `members`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<String>,
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

// ---- moderation requests (see `docs/PROTOCOL.md`, "Moderation") ----

/// Removes a user (every device of the nick) from a room; they may join again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KickRequest {
    pub room: String,
    pub nick: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Bans a nick (and its look-alikes) or, for server admins, an IP address (an IPv6 address
/// bans its /64) from a room, for `duration_secs` or until lifted. Members it matches are
/// removed from the room (each seen as a `kick`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRequest {
    pub room: String,
    /// A nick, or an IP address.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Lifts a ban (the nick or address as banned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbanRequest {
    pub room: String,
    pub target: String,
}

/// Mutes a nick in a room: its `message`s are refused (`muted`), for `duration_secs` or
/// until lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteRequest {
    pub room: String,
    pub nick: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmuteRequest {
    pub room: String,
    pub nick: String,
}

/// Makes a registered nick a room operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRequest {
    pub room: String,
    pub nick: String,
}

/// Takes a room operator's status away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeopRequest {
    pub room: String,
    pub nick: String,
}

/// Server admins: removes one message from a room's history (its `seq` is not reused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub room: String,
    pub seq: u64,
}

/// Server admins: forgets a registered nick (its password, its waiting direct messages and
/// its operator status in every room); it becomes a guest nick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterRequest {
    pub nick: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterReply {
    pub nick: String,
}

/// Server admins: gives a registered nick a new password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPasswordRequest {
    pub nick: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPasswordReply {
    pub nick: String,
}

/// Searches the messages of one room the socket is in, or of every room it is in (in this
/// namespace) when `room` is absent, for `text` as a phrase: its words in that order, whole
/// words, without regard to case. The text is never a query language: quotes, `*`, `AND`,
/// `NEAR` and the like are words or punctuation like any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    pub text: String,
    /// The `next` of the previous page: only older hits. Opaque (the store's own cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// 1..50, default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchReply {
    /// The hits, newest first (by when they were stored).
    pub messages: Vec<ChatMessage>,
    /// Present when there may be older hits: send it back as `before` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

// ---- server events ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationAction {
    /// The target was removed from the room (by a `kick`, or by a ban that matched them).
    Kick,
    Ban,
    Unban,
    Mute,
    Unmute,
    Op,
    Deop,
    /// A moderation action this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

/// A moderation action, shown to the room (every member, the actor and the target too) and
/// returned to the actor as the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moderation {
    pub room: String,
    /// Who did it: a nick, or `server` for the admin API.
    pub actor: String,
    pub action: ModerationAction,
    /// A nick, or an IP address (a ban by address).
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a ban or mute with a duration: when it ends, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// A message removed from a room's history by an admin; clients drop or blank it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub room: String,
    pub seq: u64,
    pub id: String,
    pub by: String,
}

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

/// The server's limits, pushed to a socket right after its CONNECT is accepted (before the
/// welcome `notice`), so a client can split a long line instead of having it refused.
/// Fields may be added; a client ignores what it does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest message (and `dm`) text, in characters (Unicode scalar values).
    pub max_text_len: usize,
    /// Longest nick, in characters.
    pub max_nick_len: usize,
    /// Longest room name, in characters.
    pub max_room_len: usize,
    /// Rooms one socket may be in.
    pub max_rooms: usize,
    /// Events per second the connection may send after its burst (0: no limit).
    pub events_per_sec: u32,
    /// Events the connection may send at once.
    pub events_burst: u32,
    /// Longest `search` text, in characters.
    pub max_search_len: usize,
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
            KickRequest::EVENT,
            BanRequest::EVENT,
            UnbanRequest::EVENT,
            MuteRequest::EVENT,
            UnmuteRequest::EVENT,
            OpRequest::EVENT,
            DeopRequest::EVENT,
            DeleteRequest::EVENT,
            UnregisterRequest::EVENT,
            ResetPasswordRequest::EVENT,
            SearchRequest::EVENT,
        ];
        let pushed = [
            ChatMessage::EVENT,
            DirectMessage::EVENT,
            Presence::EVENT,
            RoomChange::EVENT,
            TopicChange::EVENT,
            Notice::EVENT,
            Typing::EVENT,
            Moderation::EVENT,
            MessageDeleted::EVENT,
            Limits::EVENT,
        ];
        for names in [&requests[..], &pushed[..]] {
            let mut sorted = names.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{names:?}");
        }
    }

    #[test]
    fn moderation_wire_shape() {
        let m = Moderation {
            room: "r".into(),
            actor: "op".into(),
            action: ModerationAction::Ban,
            target: "bob".into(),
            reason: Some("spam".into()),
            until: Some(5),
        };
        let text =
            r#"{"room":"r","actor":"op","action":"ban","target":"bob","reason":"spam","until":5}"#;
        assert_eq!(serde_json::to_string(&m).unwrap(), text);
        assert_eq!(serde_json::from_str::<Moderation>(text).unwrap(), m);
        let later: Moderation =
            serde_json::from_str(r#"{"room":"r","actor":"op","action":"invite","target":"bob"}"#)
                .unwrap();
        assert_eq!(later.action, ModerationAction::Unknown);
        assert_eq!(
            serde_json::from_value::<ErrorCode>(serde_json::json!("not_operator")).unwrap(),
            ErrorCode::NotOperator
        );
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
