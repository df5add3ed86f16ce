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
//!   the ack, sends it again after the reconnect with the same `cid` (stored once); one
//!   answered `unavailable` (a cluster whose Redis is down for a moment) is sent again with
//!   its `cid` after a growing delay (0.5 s to 5 s, 20 times at most) on the same connection;
//! - measures the round-trip lag with the `ping` event every few seconds;
//! - acknowledges server events that carry an ack id (a direct message that waited for us),
//!   and passes each direct message id on once.
//!
//! A Socket.IO DISCONNECT sent by the server means: do not reconnect that namespace.
//!
//! Modules, one idea each (the session uses the others; none of them uses the session):
//! - `session`: the actor, the task that owns the connection: the reconnect loop, one
//!   `select!` per session, a handler per Socket.IO packet kind;
//! - `namespace`: each namespace's connect state machine (wanted, CONNECTing, connected,
//!   refused, closed), its rooms, `since` map and waiting requests; the CONNECT auth;
//! - `acks`: the requests in flight: ack ids, chat message `cid`s, the ack timeout;
//! - `request`: [`Request`] and its wire encoding, [`Reply`], [`Failure`];
//! - `server_event`: [`ServerEvent`], decoded from an EVENT;
//! - `reconnect`: when to try again ([`backoff`], the `nick_taken` and `busy` retries);
//! - `transport`: the WebSocket: [`socket_url`], connecting, sending, close reasons;
//!   `tls`: the rustls setup for `wss://` ([`tls_connector`]);
//! - `seen_ids`: the bounded set that passes each direct message on once; `random`: the
//!   random numbers of the jitter and the `cid`s.

mod acks;
mod namespace;
mod random;
mod reconnect;
mod request;
mod seen_ids;
mod server_event;
mod session;
mod tls;
mod transport;

use std::time::Duration;

use chat_protocol::events::ErrorCode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use self::namespace::{connect_auth, connect_error_details};
pub use self::reconnect::backoff;
pub use self::request::{Failure, Reply, Request};
pub use self::server_event::ServerEvent;
pub use self::tls::tls_connector;
pub use self::transport::socket_url;

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
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(3),
        }
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
    /// Leave a namespace (a Socket.IO DISCONNECT when it is connected) and forget it: its
    /// waiting requests fail, it is not CONNECTed again after a reconnect.
    Disconnect { nsp: String },
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
        /// The `data.code` (`nick_taken`, `forbidden`, ...); a code newer than this client is
        /// `Unknown` (the message still says what happened).
        code: Option<ErrorCode>,
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
    let task = tokio::spawn(session::Actor::new(config, cmd_rx, ev_tx).run());
    (NetHandle { tx: cmd_tx }, ev_rx, task)
}
