//! The network actor: one task owns the WebSocket and speaks Engine.IO/Socket.IO over it.
//! The rest of the client talks to it through a [`NetHandle`] (commands in) and an mpsc of
//! [`NetEvent`]s (everything that happened, out). Nothing here touches the screen.
//!
//! What the actor does by itself:
//! - answers the server's Engine.IO ping `2` with pong `3`, and treats a silent server
//!   (no ping within `pingInterval + pingTimeout`) as gone;
//! - multiplexes every namespace over the one connection, buffering requests for a namespace
//!   until its CONNECT is answered;
//! - matches acks to requests (with a timeout) and decodes them into typed [`Reply`]s;
//! - remembers joined rooms and the last `seq` seen per room, and after a lost connection
//!   reconnects with capped, jittered exponential backoff, re-CONNECTs its namespaces with
//!   `since: {room: seq}` in the auth and rejoins the rooms;
//! - sends every chat message with a client id (`cid`) and, when the connection drops before
//!   the ack, sends it again after the reconnect with the same `cid` (stored once);
//! - measures the round-trip lag with the `ping` event every few seconds;
//! - acknowledges server events that carry an ack id (a direct message that waited for us),
//!   and passes each direct message id on once.
//!
//! A Socket.IO DISCONNECT sent by the server means: do not reconnect that namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chat_protocol::events::{self, ErrorBody, ErrorCode};
use chat_protocol::{engine_io, socket_io};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// How long to wait for the TCP/WebSocket handshake and the Engine.IO open packet.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for its ack.
const ACK_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Housekeeping period: ack timeouts, lag pings, namespace retries.
const TICK: Duration = Duration::from_millis(250);
/// A namespace refused with `nick_taken` while reconnecting is retried after this long (the
/// server may still hold our previous, dead connection).
const NICK_RETRY: Duration = Duration::from_secs(2);
/// A namespace refused with `busy` is retried after this long, doubling per refusal in a row
/// up to [`BUSY_RETRY_CAP`], with jitter.
const BUSY_RETRY: Duration = Duration::from_millis(500);
const BUSY_RETRY_CAP: Duration = Duration::from_secs(10);

/// What the actor needs to know to connect.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// `ws://host:port` (a path prefix is kept; `/socket.io/...` is appended).
    pub server: String,
    pub nick: String,
    pub password: Option<String>,
    pub token: Option<String>,
    /// For `wss://`: a PEM file of certificates to trust besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
    /// First reconnect delay; doubles per failed attempt.
    pub backoff_base: Duration,
    /// Largest reconnect delay (before jitter).
    pub backoff_cap: Duration,
}

impl NetConfig {
    pub fn new(server: &str, nick: &str) -> NetConfig {
        NetConfig {
            server: server.to_owned(),
            nick: nick.to_owned(),
            password: None,
            token: None,
            ca_file: None,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(15),
        }
    }
}

/// The Engine.IO WebSocket URL for a server address such as `ws://127.0.0.1:7878`.
pub fn socket_url(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    let server = if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if server.starts_with("ws://") || server.starts_with("wss://") {
        server.to_owned()
    } else {
        format!("ws://{server}")
    };
    format!("{server}/socket.io/?EIO=4&transport=websocket")
}

/// A request to the server, answered by an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    Message {
        room: String,
        text: String,
        action: bool,
    },
    Dm {
        to: String,
        text: String,
        action: bool,
    },
    Nick {
        nick: String,
    },
    Rooms,
    Who {
        room: String,
    },
    Topic {
        room: String,
        topic: Option<String>,
    },
    /// Older messages of a room (scrolling up past the top).
    History {
        room: String,
        before: Option<u64>,
        limit: u32,
    },
    Ping,
}

impl Request {
    pub fn event(&self) -> &'static str {
        use events::client as c;
        match self {
            Request::Join { .. } => c::JOIN,
            Request::Leave { .. } => c::LEAVE,
            Request::Message { .. } => c::MESSAGE,
            Request::Dm { .. } => c::DM,
            Request::Nick { .. } => c::NICK,
            Request::Rooms => c::ROOMS,
            Request::Who { .. } => c::WHO,
            Request::Topic { .. } => c::TOPIC,
            Request::History { .. } => c::HISTORY,
            Request::Ping => c::PING,
        }
    }

    /// The request object (the event's one argument).
    pub fn payload(&self) -> Value {
        let v = match self {
            Request::Join { room } => {
                serde_json::to_value(events::JoinRequest { room: room.clone() })
            }
            Request::Leave { room } => {
                serde_json::to_value(events::LeaveRequest { room: room.clone() })
            }
            Request::Message { room, text, action } => {
                // Built by hand rather than from `events::MessageRequest` so optional fields
                // the server added later do not have to be spelled out here.
                let mut map = serde_json::Map::new();
                map.insert("room".into(), Value::String(room.clone()));
                map.insert("text".into(), Value::String(text.clone()));
                if *action {
                    map.insert("action".into(), Value::Bool(true));
                }
                Ok(Value::Object(map))
            }
            Request::Dm { to, text, action } => serde_json::to_value(events::DmRequest {
                to: to.clone(),
                text: text.clone(),
                action: *action,
            }),
            Request::Nick { nick } => {
                serde_json::to_value(events::NickRequest { nick: nick.clone() })
            }
            Request::Rooms => serde_json::to_value(events::RoomsRequest {}),
            Request::Who { room } => {
                serde_json::to_value(events::WhoRequest { room: room.clone() })
            }
            Request::History {
                room,
                before,
                limit,
            } => serde_json::to_value(events::HistoryRequest {
                room: room.clone(),
                before: *before,
                limit: Some(*limit),
            }),
            Request::Topic { room, topic } => serde_json::to_value(events::TopicRequest {
                room: room.clone(),
                topic: topic.clone(),
            }),
            Request::Ping => Ok(Value::Object(serde_json::Map::new())),
        };
        v.unwrap_or(Value::Null)
    }

    /// Decodes the ack object for this request.
    fn parse_ack(&self, ack: &Value, rtt: Duration) -> Result<Reply, ErrorBody> {
        use events::parse_reply;
        Ok(match self {
            Request::Join { .. } => Reply::Join(parse_reply(ack)?),
            Request::Leave { .. } => Reply::Leave(parse_reply(ack)?),
            Request::Message { .. } => Reply::Message(parse_reply(ack)?),
            Request::Dm { .. } => Reply::Dm(parse_reply(ack)?),
            Request::Nick { .. } => Reply::Nick(parse_reply(ack)?),
            Request::Rooms => Reply::Rooms(parse_reply(ack)?),
            Request::Who { .. } => Reply::Who(parse_reply(ack)?),
            Request::Topic { .. } => Reply::Topic(parse_reply(ack)?),
            Request::History { .. } => Reply::History(parse_reply(ack)?),
            Request::Ping => {
                let _: events::PingReply = parse_reply(ack)?;
                Reply::Pong { rtt }
            }
        })
    }
}

/// A successful ack, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Join(events::JoinReply),
    Leave(events::LeaveReply),
    Message(events::MessageReply<'static>),
    Dm(events::DmReply),
    Nick(events::NickReply),
    Rooms(events::RoomsReply),
    Who(events::WhoReply),
    Topic(events::TopicReply),
    History(events::HistoryReply),
    Pong { rtt: Duration },
}

/// Why a request failed: the server said no, or it never got an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("{}", .0.message)]
    Server(ErrorBody),
    #[error("{0}")]
    Local(String),
}

impl Failure {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Failure::Server(body) => Some(body.code),
            Failure::Local(_) => None,
        }
    }
}

/// An event pushed by the server, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Message(events::ChatMessage),
    Dm(events::DirectMessage),
    Presence(events::Presence),
    Room(events::RoomChange),
    Topic(events::TopicChange),
    Notice(events::Notice),
    Typing(events::Typing),
    /// An event this client does not know (or could not decode); logged, shown plainly.
    Unknown(String),
}

impl ServerEvent {
    /// Decodes an EVENT's name and first argument.
    pub fn decode(name: &str, arg: &Value) -> ServerEvent {
        use events::server as s;
        fn de<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
            T::deserialize(v).ok()
        }
        let decoded = match name {
            s::MESSAGE => de(arg).map(ServerEvent::Message),
            s::DM => de(arg).map(ServerEvent::Dm),
            s::PRESENCE => de(arg).map(ServerEvent::Presence),
            s::ROOM => de(arg).map(ServerEvent::Room),
            s::TOPIC => de(arg).map(ServerEvent::Topic),
            s::NOTICE => de(arg).map(ServerEvent::Notice),
            s::TYPING => de(arg).map(ServerEvent::Typing),
            _ => None,
        };
        decoded.unwrap_or_else(|| ServerEvent::Unknown(format!("{name} {arg}")))
    }
}

/// What the application asks of the actor.
#[derive(Debug, Clone, PartialEq)]
pub enum NetCommand {
    /// Connect a namespace (again, after a refusal, possibly with a new key). Ignored when
    /// it is already connected.
    Connect { nsp: String, key: Option<String> },
    /// Send a request in a namespace; the answer comes back as [`NetEvent::Reply`].
    Request { nsp: String, request: Request },
    /// Use this nick for the next CONNECTs and retry namespaces refused for their nick.
    SetNick(String),
    /// "I am typing in this room": volatile, no ack, dropped when not connected.
    Typing { nsp: String, room: String },
    /// Close the connection and end the task.
    Shutdown,
}

/// What happened on the network side.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// Opening the WebSocket (`attempt` 0 is the first try).
    Connecting { attempt: u32 },
    /// The Engine.IO session is open.
    Up,
    /// The connection is gone (or could not be made); `retry_in` is the backoff delay.
    Down {
        reason: String,
        ever_connected: bool,
        retry_in: Duration,
    },
    /// A namespace accepted our CONNECT; `resumed` after a reconnect.
    NsConnected { nsp: String, resumed: bool },
    /// CONNECT_ERROR for a namespace.
    NsRefused {
        nsp: String,
        message: String,
        /// The `data.code` string (`nick_taken`, `forbidden`, ...), kept as text so codes
        /// newer than this client still reach the screen.
        code: Option<String>,
    },
    /// The server sent a Socket.IO DISCONNECT: the namespace is not reconnected.
    NsClosed { nsp: String },
    /// The answer to a request; `automatic` for the actor's own rejoins after a reconnect.
    Reply {
        nsp: String,
        request: Request,
        result: Result<Reply, Failure>,
        automatic: bool,
    },
    /// An event pushed by the server.
    Server { nsp: String, event: ServerEvent },
    /// A fresh round-trip measurement.
    Lag(Duration),
}

/// The application's side of the actor.
#[derive(Debug, Clone)]
pub struct NetHandle {
    tx: mpsc::UnboundedSender<NetCommand>,
}

impl NetHandle {
    /// A handle with no actor behind it: its commands go to the returned receiver. Tests
    /// drive an app or a script this way, feeding it [`NetEvent`]s of their own.
    pub fn detached() -> (NetHandle, mpsc::UnboundedReceiver<NetCommand>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (NetHandle { tx }, rx)
    }

    /// Queues a command; never blocks. A command sent after the actor ended is dropped.
    pub fn send(&self, command: NetCommand) {
        if self.tx.send(command).is_err() {
            tracing::debug!("network task has ended; command dropped");
        }
    }
}

/// Starts the actor on the current tokio runtime.
pub fn spawn(config: NetConfig) -> (NetHandle, mpsc::UnboundedReceiver<NetEvent>, JoinHandle<()>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let actor = Actor {
        nick: config.nick.clone(),
        config,
        namespaces: Vec::new(),
        pending: HashMap::new(),
        next_ack: 0,
        cmd_rx,
        ev_tx,
        ever_connected: false,
        cid_prefix: random_u64(),
        cid_counter: 0,
        seen_dms: SeenIds::default(),
    };
    let task = tokio::spawn(actor.run());
    (NetHandle { tx: cmd_tx }, ev_rx, task)
}

#[derive(Debug, Clone, PartialEq)]
enum NsState {
    /// To be CONNECTed when the session is (re)opened.
    Wanted,
    /// CONNECT sent, no answer yet.
    Connecting,
    Connected,
    /// CONNECT_ERROR; retried at the given time (nick clash after a reconnect), else never.
    Refused {
        retry_at: Option<Instant>,
    },
    /// Server DISCONNECT: never again (unless the application asks).
    Closed,
}

#[derive(Debug)]
struct Namespace {
    name: String,
    key: Option<String>,
    state: NsState,
    /// Has this namespace been connected in some earlier session?
    was_connected: bool,
    /// CONNECTs refused with `busy` in a row (the server was short of password checks).
    busy_refusals: u32,
    /// Rooms joined (acked), rejoined after a reconnect.
    rooms: BTreeSet<String>,
    /// Last seq seen per room, sent as `since` in the CONNECT auth.
    since: BTreeMap<String, u64>,
    /// Requests waiting for the CONNECT answer (and messages to re-send after a reconnect).
    queue: Vec<Queued>,
}

/// A request waiting for its namespace, with the client message id of a chat message.
#[derive(Debug)]
struct Queued {
    request: Request,
    cid: Option<String>,
}

#[derive(Debug)]
struct Pending {
    nsp: String,
    request: Request,
    sent: Instant,
    automatic: bool,
    /// The `cid` sent with a chat message: a re-send after a reconnect carries the same
    /// one, so the server stores the message once.
    cid: Option<String>,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How a session ended.
enum End {
    Quit,
    Lost(String),
}

struct Actor {
    config: NetConfig,
    /// The nick for the next CONNECT (follows successful `/nick` replies).
    nick: String,
    namespaces: Vec<Namespace>,
    pending: HashMap<u64, Pending>,
    next_ack: u64,
    cmd_rx: mpsc::UnboundedReceiver<NetCommand>,
    ev_tx: mpsc::UnboundedSender<NetEvent>,
    ever_connected: bool,
    /// Random per process run; with a counter it makes the `cid` of each chat message.
    cid_prefix: u64,
    cid_counter: u64,
    /// Ids of the direct messages shown (bounded).
    seen_dms: SeenIds,
}

impl Actor {
    fn new_cid(&mut self) -> String {
        self.cid_counter += 1;
        format!("{:016x}-{}", self.cid_prefix, self.cid_counter)
    }

    fn emit(&self, event: NetEvent) {
        // The application may be gone during shutdown; nothing to do then.
        let _ = self.ev_tx.send(event);
    }

    async fn run(mut self) {
        let url = socket_url(&self.config.server);
        let tls = if url.starts_with("wss://") {
            match tls_connector(self.config.ca_file.as_deref()) {
                Ok(c) => Some(c),
                Err(reason) => {
                    // `lib::run` checks this before starting; a library user learns it here.
                    self.emit(NetEvent::Down {
                        reason,
                        ever_connected: false,
                        retry_in: Duration::ZERO,
                    });
                    return;
                }
            }
        } else {
            None
        };
        let mut attempt: u32 = 0;
        loop {
            self.emit(NetEvent::Connecting { attempt });
            let reason = match tokio::time::timeout(CONNECT_TIMEOUT, open(&url, tls.clone())).await
            {
                Ok(Ok((ws, open))) => {
                    attempt = 0;
                    self.ever_connected = true;
                    self.emit(NetEvent::Up);
                    match self.session(ws, open).await {
                        End::Quit => return,
                        End::Lost(reason) => reason,
                    }
                }
                Ok(Err(e)) => e,
                Err(_) => "timed out".to_owned(),
            };
            self.connection_lost();
            let delay = backoff(
                attempt,
                self.config.backoff_base,
                self.config.backoff_cap,
                jitter(),
            );
            attempt = attempt.saturating_add(1);
            tracing::info!(%reason, ?delay, "connection down");
            self.emit(NetEvent::Down {
                reason,
                ever_connected: self.ever_connected,
                retry_in: delay,
            });
            // Wait out the backoff, still taking commands.
            let wake = tokio::time::sleep(delay);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = &mut wake => break,
                    cmd = self.cmd_rx.recv() => match cmd {
                        None | Some(NetCommand::Shutdown) => return,
                        Some(cmd) => self.offline_command(cmd),
                    },
                }
            }
        }
    }

    /// Forgets the session: fails the requests in flight and marks live namespaces to be
    /// connected again.
    fn connection_lost(&mut self) {
        let mut pending: Vec<(u64, Pending)> = self.pending.drain().collect();
        pending.sort_by_key(|(id, _)| *id);
        let mut resend: Vec<(String, Queued)> = Vec::new();
        for (_, p) in pending {
            if p.automatic || p.request == Request::Ping {
                continue;
            }
            // Chat messages (with their cid) and joins are sent again after the reconnect:
            // both are safe to repeat. Anything else is reported as lost.
            if matches!(p.request, Request::Message { .. } | Request::Join { .. }) {
                resend.push((
                    p.nsp,
                    Queued {
                        request: p.request,
                        cid: p.cid,
                    },
                ));
                continue;
            }
            self.emit(NetEvent::Reply {
                nsp: p.nsp,
                request: p.request,
                result: Err(Failure::Local("connection lost before the answer".into())),
                automatic: false,
            });
        }
        for (i, (nsp, queued)) in resend.into_iter().enumerate() {
            if let Some(ns) = self.ns_mut(&nsp) {
                // Before anything queued later, in the order they were first sent.
                let at = i.min(ns.queue.len());
                ns.queue.insert(at, queued);
            }
        }
        for ns in &mut self.namespaces {
            match ns.state {
                NsState::Connecting | NsState::Connected => ns.state = NsState::Wanted,
                NsState::Refused {
                    retry_at: Some(_), ..
                } => ns.state = NsState::Wanted,
                _ => {}
            }
        }
    }

    fn ns_mut(&mut self, name: &str) -> Option<&mut Namespace> {
        self.namespaces.iter_mut().find(|n| n.name == name)
    }

    /// Records a Connect: a new namespace, or a new try for a refused or closed one.
    /// Returns true when a CONNECT should be sent now (if a session is open).
    fn want(&mut self, nsp: String, key: Option<String>) -> bool {
        match self.ns_mut(&nsp) {
            Some(ns) => match ns.state {
                NsState::Refused { .. } | NsState::Closed => {
                    if key.is_some() {
                        ns.key = key;
                    }
                    ns.state = NsState::Wanted;
                    true
                }
                _ => false,
            },
            None => {
                self.namespaces.push(Namespace {
                    name: nsp,
                    key,
                    state: NsState::Wanted,
                    was_connected: false,
                    busy_refusals: 0,
                    rooms: BTreeSet::new(),
                    since: BTreeMap::new(),
                    queue: Vec::new(),
                });
                true
            }
        }
    }

    /// A command while there is no connection.
    fn offline_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Connect { nsp, key } => {
                self.want(nsp, key);
            }
            NetCommand::Request { nsp, request } => self.queue_or_fail(nsp, request),
            NetCommand::SetNick(nick) => self.set_nick(nick),
            NetCommand::Typing { .. } | NetCommand::Shutdown => {}
        }
    }

    fn set_nick(&mut self, nick: String) {
        self.nick = nick;
        for ns in &mut self.namespaces {
            if matches!(ns.state, NsState::Refused { .. }) {
                ns.state = NsState::Wanted;
            }
        }
    }

    /// Keeps a request for when its namespace is connected, or fails it at once when the
    /// namespace was refused, closed or never asked for.
    fn queue_or_fail(&mut self, nsp: String, request: Request) {
        let why = match self.ns_mut(&nsp) {
            Some(ns) => match ns.state {
                NsState::Refused { retry_at: None } => format!("not connected to {nsp}"),
                NsState::Closed => format!("the server closed {nsp}"),
                _ => {
                    ns.queue.push(Queued { request, cid: None });
                    return;
                }
            },
            None => format!("not connected to {nsp} (use /ns {nsp})"),
        };
        self.emit(NetEvent::Reply {
            nsp,
            request,
            result: Err(Failure::Local(why)),
            automatic: false,
        });
    }

    fn auth_for(&self, ns: &Namespace) -> Value {
        connect_auth(
            &self.nick,
            self.config.password.as_deref(),
            self.config.token.as_deref(),
            ns.key.as_deref(),
            &ns.since,
        )
    }

    async fn send_packet(ws: &mut Ws, packet: &socket_io::Packet) -> Result<(), String> {
        let frame = packet.encode_frame();
        tracing::trace!(%frame, "send");
        ws.send(Message::text(frame))
            .await
            .map_err(|e| format!("send failed: {e}"))
    }

    /// Sends CONNECT for every namespace in state `Wanted`.
    async fn connect_wanted(&mut self, ws: &mut Ws) -> Result<(), String> {
        let mut frames = Vec::new();
        for ns in &self.namespaces {
            if ns.state == NsState::Wanted {
                frames.push(socket_io::Packet::connect(
                    &ns.name,
                    Some(self.auth_for(ns)),
                ));
            }
        }
        for ns in &mut self.namespaces {
            if ns.state == NsState::Wanted {
                ns.state = NsState::Connecting;
            }
        }
        for packet in frames {
            Self::send_packet(ws, &packet).await?;
        }
        Ok(())
    }

    async fn send_request(
        &mut self,
        ws: &mut Ws,
        nsp: &str,
        request: Request,
        automatic: bool,
        cid: Option<String>,
    ) -> Result<(), String> {
        let id = self.next_ack;
        self.next_ack += 1;
        let mut payload = request.payload();
        let cid = match &request {
            Request::Message { .. } => {
                let cid = cid.unwrap_or_else(|| self.new_cid());
                if let Value::Object(map) = &mut payload {
                    map.insert("cid".into(), Value::String(cid.clone()));
                }
                Some(cid)
            }
            _ => None,
        };
        let packet = socket_io::Packet::event(nsp, request.event(), vec![payload], Some(id));
        self.pending.insert(
            id,
            Pending {
                nsp: nsp.to_owned(),
                request,
                sent: Instant::now(),
                automatic,
                cid,
            },
        );
        Self::send_packet(ws, &packet).await
    }

    /// One open Engine.IO session, until it ends.
    async fn session(&mut self, mut ws: Ws, open: engine_io::OpenPayload) -> End {
        let silence = Duration::from_millis(open.ping_interval + open.ping_timeout);
        let mut last_ping = Instant::now();
        let mut last_lag = Instant::now() - LAG_EVERY;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Err(e) = self.connect_wanted(&mut ws).await {
            return End::Lost(e);
        }
        loop {
            let result = tokio::select! {
                // Frames from the server.
                frame = ws.next() => match frame {
                    None => Err("the connection closed".to_owned()),
                    Some(Err(e)) => Err(format!("connection error: {e}")),
                    Some(Ok(msg)) => self.on_frame(&mut ws, msg, &mut last_ping).await,
                },
                // Commands from the application.
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(NetCommand::Shutdown) => {
                        let _ = ws.send(Message::text(engine_io::Packet::Close.encode())).await;
                        let _ = ws.close(None).await;
                        return End::Quit;
                    }
                    Some(cmd) => self.online_command(&mut ws, cmd).await,
                },
                // Housekeeping: heartbeat watchdog, ack timeouts, lag, namespace retries.
                _ = tick.tick() => {
                    if last_ping.elapsed() > silence {
                        Err("ping timeout: the server went silent".to_owned())
                    } else {
                        self.housekeeping(&mut ws, &mut last_lag).await
                    }
                }
            };
            if let Err(reason) = result {
                return End::Lost(reason);
            }
        }
    }

    async fn online_command(&mut self, ws: &mut Ws, cmd: NetCommand) -> Result<(), String> {
        match cmd {
            NetCommand::Connect { nsp, key } => {
                if self.want(nsp, key) {
                    self.connect_wanted(ws).await?;
                }
            }
            NetCommand::Request { nsp, request } => {
                let connected = self
                    .namespaces
                    .iter()
                    .any(|n| n.name == nsp && n.state == NsState::Connected);
                if connected {
                    self.send_request(ws, &nsp, request, false, None).await?;
                } else {
                    self.queue_or_fail(nsp, request);
                }
            }
            NetCommand::SetNick(nick) => {
                self.set_nick(nick);
                self.connect_wanted(ws).await?;
            }
            NetCommand::Typing { nsp, room } => {
                let connected = self
                    .namespaces
                    .iter()
                    .any(|n| n.name == nsp && n.state == NsState::Connected);
                if connected {
                    let payload =
                        serde_json::to_value(events::TypingRequest { room }).unwrap_or(Value::Null);
                    let packet =
                        socket_io::Packet::event(&nsp, events::client::TYPING, vec![payload], None);
                    Self::send_packet(ws, &packet).await?;
                }
            }
            NetCommand::Shutdown => {}
        }
        Ok(())
    }

    async fn housekeeping(&mut self, ws: &mut Ws, last_lag: &mut Instant) -> Result<(), String> {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent) > ACK_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                self.emit(NetEvent::Reply {
                    nsp: p.nsp,
                    request: p.request,
                    result: Err(Failure::Local("no answer from the server".into())),
                    automatic: p.automatic,
                });
            }
        }
        // Namespaces refused for a nick clash during a reconnect get another try.
        let mut retry = false;
        for ns in &mut self.namespaces {
            if matches!(ns.state, NsState::Refused { retry_at: Some(at) } if at <= now) {
                ns.state = NsState::Wanted;
                retry = true;
            }
        }
        if retry {
            self.connect_wanted(ws).await?;
        }
        if last_lag.elapsed() >= LAG_EVERY {
            let first = self
                .namespaces
                .iter()
                .find(|n| n.state == NsState::Connected)
                .map(|n| n.name.clone());
            let ping_in_flight = self.pending.values().any(|p| p.request == Request::Ping);
            if let (Some(nsp), false) = (first, ping_in_flight) {
                *last_lag = now;
                self.send_request(ws, &nsp, Request::Ping, true, None)
                    .await?;
            }
        }
        Ok(())
    }

    async fn on_frame(
        &mut self,
        ws: &mut Ws,
        msg: Message,
        last_ping: &mut Instant,
    ) -> Result<(), String> {
        let text = match msg {
            Message::Text(text) => text,
            Message::Close(frame) => {
                return Err(match frame {
                    Some(f) if u16::from(f.code) == 1001 => "the server is going away".to_owned(),
                    Some(f) if !f.reason.is_empty() => {
                        format!("closed by the server ({}: {})", u16::from(f.code), f.reason)
                    }
                    Some(f) => format!("closed by the server ({})", u16::from(f.code)),
                    None => "closed by the server".to_owned(),
                });
            }
            Message::Binary(_) => {
                tracing::debug!("ignoring a binary frame");
                return Ok(());
            }
            _ => return Ok(()),
        };
        tracing::trace!(frame = %text.as_str(), "recv");
        match engine_io::Packet::decode(text.as_str()) {
            Ok(engine_io::Packet::Ping(data)) => {
                *last_ping = Instant::now();
                ws.send(Message::text(engine_io::Packet::Pong(data).encode()))
                    .await
                    .map_err(|e| format!("send failed: {e}"))?;
            }
            Ok(engine_io::Packet::Close) => return Err("the server closed the session".into()),
            Ok(engine_io::Packet::Message(data)) => match socket_io::Packet::decode(&data) {
                Ok(packet) => self.on_packet(ws, packet).await?,
                Err(e) => tracing::warn!(error = %e, %data, "undecodable Socket.IO packet"),
            },
            Ok(other) => tracing::debug!(?other, "ignoring Engine.IO packet"),
            Err(e) => tracing::warn!(error = %e, "undecodable Engine.IO packet"),
        }
        Ok(())
    }

    async fn on_packet(&mut self, ws: &mut Ws, packet: socket_io::Packet) -> Result<(), String> {
        use socket_io::PacketKind as K;
        let nsp = packet.nsp.clone();
        match packet.kind {
            K::Connect => {
                let Some(ns) = self.ns_mut(&nsp) else {
                    return Ok(());
                };
                let resumed = ns.was_connected;
                ns.state = NsState::Connected;
                ns.was_connected = true;
                ns.busy_refusals = 0;
                let rooms: Vec<String> = ns.rooms.iter().cloned().collect();
                let queued = std::mem::take(&mut ns.queue);
                self.emit(NetEvent::NsConnected {
                    nsp: nsp.clone(),
                    resumed,
                });
                for room in rooms {
                    self.send_request(ws, &nsp, Request::Join { room }, true, None)
                        .await?;
                }
                for q in queued {
                    self.send_request(ws, &nsp, q.request, false, q.cid).await?;
                }
            }
            K::ConnectError => {
                let (message, code) = connect_error_details(packet.data.as_ref());
                let nick_taken = code.as_deref() == Some("nick_taken");
                let Some(ns) = self.ns_mut(&nsp) else {
                    return Ok(());
                };
                // After a reconnect our previous connection may still hold the nick; `busy`
                // (the server is short of password checks) is retried with a growing,
                // jittered delay.
                let retry_at = if nick_taken && ns.was_connected {
                    Some(Instant::now() + NICK_RETRY)
                } else if code.as_deref() == Some("busy") {
                    let delay = backoff(ns.busy_refusals, BUSY_RETRY, BUSY_RETRY_CAP, jitter());
                    ns.busy_refusals = ns.busy_refusals.saturating_add(1);
                    Some(Instant::now() + delay)
                } else {
                    None
                };
                ns.state = NsState::Refused { retry_at };
                let queued = if retry_at.is_some() {
                    Vec::new()
                } else {
                    std::mem::take(&mut ns.queue)
                };
                if retry_at.is_none() {
                    self.emit(NetEvent::NsRefused {
                        nsp: nsp.clone(),
                        message: message.clone(),
                        code,
                    });
                }
                for q in queued {
                    self.emit(NetEvent::Reply {
                        nsp: nsp.clone(),
                        request: q.request,
                        result: Err(Failure::Local(format!("{nsp} refused: {message}"))),
                        automatic: false,
                    });
                }
            }
            K::Disconnect => {
                if let Some(ns) = self.ns_mut(&nsp) {
                    ns.state = NsState::Closed;
                    ns.rooms.clear();
                    // Not members any more: a later CONNECT must not rejoin them by `since`.
                    ns.since.clear();
                }
                let ids: Vec<u64> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| p.nsp == nsp)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    if let Some(p) = self.pending.remove(&id) {
                        self.emit(NetEvent::Reply {
                            nsp: p.nsp,
                            request: p.request,
                            result: Err(Failure::Local("the server closed the namespace".into())),
                            automatic: p.automatic,
                        });
                    }
                }
                self.emit(NetEvent::NsClosed { nsp });
            }
            K::Event | K::BinaryEvent => {
                let Some(Value::Array(args)) = &packet.data else {
                    return Ok(());
                };
                let name = args.first().and_then(Value::as_str).unwrap_or_default();
                let arg = args.get(1).cloned().unwrap_or(Value::Null);
                let event = ServerEvent::decode(name, &arg);
                // The server asks for an ack when it must know the event arrived (a direct
                // message that waited for us): acknowledge it once it is ours.
                if let Some(id) = packet.id {
                    Self::send_packet(ws, &socket_io::Packet::ack(&nsp, id, Vec::new())).await?;
                }
                // A waiting direct message can come again (a reconnect before our ack got
                // through): show each id once.
                if let ServerEvent::Dm(d) = &event
                    && !self.seen_dms.insert(d.id.clone())
                {
                    return Ok(());
                }
                if let ServerEvent::Message(m) = &event
                    && let Some(ns) = self.ns_mut(&nsp)
                {
                    bump(&mut ns.since, &m.room, m.seq);
                }
                if let ServerEvent::Unknown(what) = &event {
                    tracing::warn!(%what, "unknown server event");
                }
                self.emit(NetEvent::Server { nsp, event });
            }
            K::Ack | K::BinaryAck => {
                let Some(id) = packet.id else {
                    return Ok(());
                };
                let Some(p) = self.pending.remove(&id) else {
                    tracing::debug!(id, "ack for no pending request");
                    return Ok(());
                };
                let ack = match &packet.data {
                    Some(Value::Array(a)) => a.first().cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                let result = p
                    .request
                    .parse_ack(&ack, p.sent.elapsed())
                    .map_err(Failure::Server);
                self.track(&p.nsp, &result);
                if let Ok(Reply::Pong { rtt }) = result {
                    self.emit(NetEvent::Lag(rtt));
                    return Ok(());
                }
                self.emit(NetEvent::Reply {
                    nsp: p.nsp,
                    request: p.request,
                    result,
                    automatic: p.automatic,
                });
            }
        }
        Ok(())
    }

    /// Keeps the rejoin list, the `since` map and the nick in step with successful replies.
    fn track(&mut self, nsp: &str, result: &Result<Reply, Failure>) {
        let Ok(reply) = result else {
            return;
        };
        if let Reply::Nick(n) = reply {
            self.nick = n.nick.clone();
            return;
        }
        let Some(ns) = self.ns_mut(nsp) else {
            return;
        };
        match reply {
            Reply::Join(j) => {
                ns.rooms.insert(j.room.clone());
                // Every joined room is named in `since` (0: nothing seen yet), so a server
                // that catches up on CONNECT covers it too.
                ns.since.entry(j.room.clone()).or_insert(0);
                for m in &j.history {
                    bump(&mut ns.since, &m.room, m.seq);
                }
            }
            Reply::Leave(l) => {
                ns.rooms.remove(&l.room);
                ns.since.remove(&l.room);
            }
            Reply::Message(m) => bump(&mut ns.since, &m.message.room, m.message.seq),
            _ => {}
        }
    }
}

/// The CONNECT auth payload: the nick (every namespace repeats it), the optional password,
/// token and namespace key, and `since: {room: last seq}` when the client has seen messages
/// there (the catch-up seam for durable history).
pub fn connect_auth(
    nick: &str,
    password: Option<&str>,
    token: Option<&str>,
    key: Option<&str>,
    since: &BTreeMap<String, u64>,
) -> Value {
    let auth = events::Auth {
        nick: Some(nick.to_owned()),
        password: password.map(str::to_owned),
        token: token.map(str::to_owned),
        key: key.map(str::to_owned),
        since: (!since.is_empty()).then(|| since.clone()),
    };
    serde_json::to_value(auth).unwrap_or(Value::Null)
}

fn bump(since: &mut BTreeMap<String, u64>, room: &str, seq: u64) {
    let entry = since.entry(room.to_owned()).or_insert(0);
    *entry = (*entry).max(seq);
}

/// The message and code of a CONNECT_ERROR payload (`{"message":..,"data":{"code":..}}`).
pub fn connect_error_details(data: Option<&Value>) -> (String, Option<String>) {
    match data {
        Some(Value::String(s)) => (s.clone(), None),
        Some(v) => {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("refused")
                .to_owned();
            let code = v
                .get("data")
                .and_then(|d| d.get("code"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            (message, code)
        }
        None => ("refused".to_owned(), None),
    }
}

/// Opens the WebSocket and reads the Engine.IO open packet.
/// The TLS setup for `wss://`: rustls (ring) trusting the system's certificates and, when
/// given, those in `ca_file` (PEM).
pub fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_tungstenite::Connector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: invalid PEM certificate: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no CERTIFICATE block", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
        config,
    )))
}

async fn open(
    url: &str,
    tls: Option<tokio_tungstenite::Connector>,
) -> Result<(Ws, engine_io::OpenPayload), String> {
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, tls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => match engine_io::Packet::decode(text.as_str()) {
                Ok(engine_io::Packet::Open(open)) => return Ok((ws, open)),
                other => return Err(format!("unexpected first packet: {other:?}")),
            },
            Some(Ok(Message::Close(_))) | None => {
                return Err("closed during the handshake".to_owned());
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("handshake failed: {e}")),
        }
    }
}

/// The delay before reconnect attempt `attempt` (0-based): `base * 2^attempt`, capped, then
/// scaled by `jitter` in `[0.5, 1.0]` so that many clients do not come back at once.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    exp.min(cap).mul_f64(jitter.clamp(0.5, 1.0))
}

/// A random number from the std hasher's random keys and the clock (no extra crate).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// A random factor in `[0.5, 1.0)`.
fn jitter() -> f64 {
    0.5 + (random_u64() % 1000) as f64 / 2000.0
}

/// A set of recently seen ids that forgets the oldest beyond [`SeenIds::CAPACITY`].
#[derive(Debug, Default)]
struct SeenIds {
    set: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl SeenIds {
    const CAPACITY: usize = 1024;

    /// True when `id` was not seen before.
    fn insert(&mut self, id: String) -> bool {
        if !self.set.insert(id.clone()) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_forget_the_oldest() {
        let mut seen = SeenIds::default();
        assert!(seen.insert("a".into()));
        assert!(!seen.insert("a".into()));
        for i in 0..SeenIds::CAPACITY {
            seen.insert(i.to_string());
        }
        assert!(
            seen.insert("a".into()),
            "forgotten after CAPACITY newer ids"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            socket_url("ws://127.0.0.1:7878"),
            "ws://127.0.0.1:7878/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url("http://h:1/"),
            "ws://h:1/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url("h:2"),
            "ws://h:2/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(10);
        assert_eq!(backoff(0, base, cap, 1.0), base);
        assert_eq!(backoff(3, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(30, base, cap, 1.0), cap);
        assert_eq!(backoff(30, base, cap, 0.5), Duration::from_secs(5));
        for _ in 0..20 {
            let j = jitter();
            assert!((0.5..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn request_payloads_match_the_protocol() {
        assert_eq!(
            Request::Join { room: "r".into() }.payload().to_string(),
            r#"{"room":"r"}"#
        );
        assert_eq!(
            Request::Message {
                room: "r".into(),
                text: "hi".into(),
                action: true
            }
            .payload()
            .to_string(),
            r#"{"room":"r","text":"hi","action":true}"#
        );
        assert_eq!(Request::Ping.payload().to_string(), "{}");
        assert_eq!(Request::Rooms.payload().to_string(), "{}");
        assert_eq!(
            Request::Topic {
                room: "r".into(),
                topic: None
            }
            .payload()
            .to_string(),
            r#"{"room":"r"}"#
        );
    }

    #[test]
    fn connect_auth_carries_since() {
        let none = BTreeMap::new();
        assert_eq!(
            connect_auth("alice", None, None, None, &none).to_string(),
            r#"{"nick":"alice"}"#
        );
        let mut since = BTreeMap::new();
        bump(&mut since, "general", 7);
        bump(&mut since, "general", 3);
        bump(&mut since, "ops", 1);
        assert_eq!(
            connect_auth("alice", Some("pw"), None, Some("k"), &since).to_string(),
            r#"{"nick":"alice","password":"pw","key":"k","since":{"general":7,"ops":1}}"#
        );
    }

    #[test]
    fn connect_error_payloads() {
        let v = serde_json::json!({"message":"nick 'x' is in use","data":{"code":"nick_taken"}});
        assert_eq!(
            connect_error_details(Some(&v)),
            ("nick 'x' is in use".into(), Some("nick_taken".into()))
        );
        let v = serde_json::json!({"message":"Invalid namespace"});
        assert_eq!(
            connect_error_details(Some(&v)),
            ("Invalid namespace".into(), None)
        );
    }

    #[test]
    fn acks_decode_into_typed_replies() {
        let ack = events::ok_reply(&events::LeaveReply { room: "a".into() });
        let r = Request::Leave { room: "a".into() }.parse_ack(&ack, Duration::ZERO);
        assert_eq!(r, Ok(Reply::Leave(events::LeaveReply { room: "a".into() })));
        let err = events::error_reply(ErrorCode::NotInRoom, "no");
        let r = Request::Leave { room: "a".into() }.parse_ack(&err, Duration::ZERO);
        assert_eq!(r.map_err(|e| e.code), Err(ErrorCode::NotInRoom));
    }

    #[test]
    fn server_events_decode() {
        let v = serde_json::json!({"text":"hello"});
        assert_eq!(
            ServerEvent::decode("notice", &v),
            ServerEvent::Notice(events::Notice {
                text: "hello".into()
            })
        );
        assert!(matches!(
            ServerEvent::decode("weird", &v),
            ServerEvent::Unknown(_)
        ));
    }
}
