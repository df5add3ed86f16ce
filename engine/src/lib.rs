//! `chat-engine`: a Socket.IO v5 server over Engine.IO v4 (WebSocket and HTTP long-polling,
//! with the upgrade), independent of any application: it imports only `chat-protocol`'s wire
//! codecs, and nothing above the Engine.IO session knows which transport a session uses.
//! `chat-server` re-exports it as `chat_server::engine`.
//!
//! Where to add things: a protocol-level behaviour goes in `connection/` (both transports
//! run its reader), a transport's own in `listener.rs`/`polling/`, a fan-out one behind the
//! [`Adapter`] seam.
//!
//! One layer per file:
//! - [`listener`]: accepts TCP, reads each request head and routes it: a WebSocket upgrade
//!   (`/socket.io/?EIO=4&transport=websocket`), a long-polling request, or the upgrade of a
//!   polling session; answers anything else with HTTP 400 JSON; one task per TCP connection.
//! - `http_io`: bounded reading of request heads and bodies, and writing the answers.
//! - [`cors`]: which browser origins may use the Engine.IO path (CORS headers, preflights)
//!   and the `Origin` check of WebSocket upgrades; pure.
//! - [`http_routes`]: the application's own routes for other paths (the chat's web page).
//! - `per_ip`: the open sessions per IP address; [`trusted_proxy`]: the client's address
//!   from `X-Forwarded-For`, believed from listed proxies only.
//! - `polling`: Engine.IO long-polling sessions (held GET, POST, the upgrade to WebSocket).
//! - [`connection`]: one connection: the Engine.IO session (open packet, heartbeat, connect
//!   timeout), Socket.IO packet dispatch in arrival order, and the writer that drains the
//!   bounded outgoing queue.
//! - [`wire`]: the socket split between tungstenite (reading, through a small buffer) and
//!   the writer, which writes WebSocket frames itself with vectored writes.
//! - `batch_pool`: the buffers a writer takes a batch into and gathers its frames into,
//!   lent per batch from a spare per worker thread.
//! - [`namespace`]: static and pattern-matched namespaces, their handlers and connect
//!   middleware, and the [`Event`] a handler gets (its arguments read straight into the
//!   handler's type).
//! - [`socket`]: the per-namespace socket handle (emit, acks, join/leave, broadcast from it).
//! - [`adapter`]: the fan-out seam: rooms and broadcast delivery; [`adapter::LocalAdapter`]
//!   is the in-memory implementation.
//! - [`broadcast`]: the operator (`to`, `except`, `volatile`) that encodes once and hands the
//!   bytes to the adapter.
//! - [`outbox`]: encoded packets and each connection's bounded queue with the slow-consumer rule.
//! - [`stats`]: the engine's counters (connections, deliveries, refusals, closes by reason),
//!   relaxed atomics the application reads for its metrics.
//! - [`buffers`]: the buffer policy: what each connection's buffers keep between batches and
//!   when a burst's are given back (every such constant lives there).
//!
//! Which errors end a connection: any undecodable frame, a packet for a namespace the client
//! has not joined, a second CONNECT, a client ping, a message over `max_payload` or a frame
//! over `max_frame_size` (close 1009), a missed pong, no CONNECT within `connect_timeout`,
//! attachments that do not arrive within `attachment_timeout`, a sustained flood over the
//! rate limit (1008), and a full outgoing queue for a non-volatile packet (1008). Each closes
//! that connection only, with a WebSocket close reason. Refused without closing: a CONNECT
//! beyond `max_namespaces` (CONNECT_ERROR) and an event over the rate limit (error ack or
//! `notice`). Refused before the upgrade: more than `max_connections_per_ip` (HTTP 429).
//! A long-polling session ends for the same causes, and also for a second concurrent GET or
//! POST, a POST body that is not a payload (400) or over `max_payload` (413), or a GET answer
//! the client does not take.

pub mod adapter;
mod batch_pool;
pub mod broadcast;
pub mod buffers;
pub mod connection;
pub mod cors;
mod http_io;
pub mod http_routes;
pub mod listener;
pub mod namespace;
pub mod outbox;
mod per_ip;
pub(crate) mod polling;
pub mod socket;
pub mod stats;
pub mod trusted_proxy;
pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use regex::Regex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use adapter::{
    Adapter, AdapterContext, BroadcastOptions, LocalAdapter, RoomEvent, RoomEventKind,
};
pub use broadcast::BroadcastOperator;
pub use cors::CorsOrigins;
pub use namespace::{
    ConnectError, ConnectRequest, ConnectionInfo, Event, Handlers, Namespace, Transport,
};
pub use outbox::EncodedPacket;
pub use socket::{AckError, AckResponse, AckSender, Socket};
pub use stats::EngineStats;
pub use trusted_proxy::TrustedProxies;

/// A session or socket id: 20 random URL-safe characters. Cheap to clone.
#[derive(Clone, PartialOrd, Ord)]
pub struct Sid(Arc<str>);

/// Hashes as the string does (maps keyed by `Sid` are looked up by `&str`).
impl std::hash::Hash for Sid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

/// Equality as strings, with two shortcuts for the broadcast path, which compares every member
/// of a room against the except set: clones of one `Sid` share their allocation, and two
/// random ids almost always differ in their first eight bytes.
impl PartialEq for Sid {
    fn eq(&self, other: &Sid) -> bool {
        if Arc::ptr_eq(&self.0, &other.0) {
            return true;
        }
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.first_chunk::<8>() == b.first_chunk::<8>() && a == b
    }
}

impl Eq for Sid {}

impl Sid {
    /// 20 characters of a 64-letter alphabet from the thread's CSPRNG (`rand`'s `ThreadRng`,
    /// ChaCha reseeded from the OS): 120 bits. A polling session's sid is the credential of
    /// its requests, so it must not be guessable (nor logged).
    pub fn random() -> Sid {
        use rand::Rng;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut rng = rand::rng();
        let s: String = (0..20)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Sid(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address of this id's allocation. Ids are only made by [`Sid::random`] and then
    /// cloned, so within one process two `Sid`s with the same address are the same id, and
    /// the ids an adapter stores (all clones of the socket's own) can be told apart by address
    /// without reading their bytes.
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as *const u8 as usize
    }
}

impl std::borrow::Borrow<str> for Sid {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self.0)
    }
}

/// A room name. Every socket is also in the room named by its own sid.
pub type Room = String;

/// Protocol timings and limits. The defaults are the reference Socket.IO ones.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often the server pings (the first ping comes one interval after the open packet).
    pub ping_interval: Duration,
    /// How long the client has to answer a ping with a pong.
    pub ping_timeout: Duration,
    /// The largest message (and frame) accepted, in bytes; above it the connection is closed
    /// with code 1009. Also the largest long-polling POST body (above: HTTP 413 and the
    /// session closed) and about the most a GET answer carries.
    pub max_payload: usize,
    /// How long a new connection may go without connecting to any namespace.
    pub connect_timeout: Duration,
    /// How long a client may take to send an HTTP request head (the upgrade request, each
    /// long-polling request, also on a kept-alive connection), a POST body, or a WebSocket
    /// upgrade's probe; also the bound on writing an HTTP answer.
    pub handshake_timeout: Duration,
    /// Packets queued per connection before a non-volatile packet closes it (slow consumer).
    pub outbox_capacity: usize,
    /// Bytes queued per connection (texts and attachments) before a non-volatile packet
    /// closes it (slow consumer); one packet bigger than this is taken into an empty queue.
    /// A client that does not read holds at most about twice this in the server (its queue,
    /// and the batch its connection's writer is blocked on).
    pub outbox_bytes: usize,
    /// Open connections at most; further ones wait in the accept queue. Also the most
    /// long-polling sessions open at once (a handshake beyond: HTTP 503).
    pub max_connections: usize,
    /// The largest single WebSocket frame accepted, in bytes (a message may be fragmented
    /// into several frames up to `max_payload`); above it the connection is closed with 1009.
    pub max_frame_size: usize,
    /// Namespaces one connection may be connected to at once; a CONNECT beyond it gets
    /// CONNECT_ERROR `{"message":"Too many namespaces"}` and the connection stays.
    pub max_namespaces: usize,
    /// Longest namespace name accepted in a CONNECT; a longer one gets CONNECT_ERROR
    /// `{"message":"Invalid namespace"}` before any pattern is tried.
    pub max_namespace_len: usize,
    /// Open sessions (WebSocket or long-polling) from one IP address at most, and three times
    /// as many TCP connections; beyond, the request gets HTTP 429 with
    /// `{"code":4,"message":"Too many connections"}`.
    pub max_connections_per_ip: usize,
    /// Rate limit on inbound CONNECT and EVENT packets, per connection: a token bucket of
    /// `rate_burst` tokens refilled at `rate_per_sec`. An event over the limit is not handled:
    /// it gets an error ack (`rate_limited`) when it asked for one, else a `notice` event,
    /// and the reader waits for the next token before reading on (that slows the client).
    pub rate_burst: u32,
    /// Tokens added per second (see `rate_burst`); 0 turns the rate limit off.
    pub rate_per_sec: u32,
    /// A connection that keeps going over the rate limit for this long (without once letting
    /// its bucket fill back to half) is closed with 1008 "rate limit exceeded".
    pub flood_timeout: Duration,
    /// How long the binary attachments of a BINARY_EVENT/BINARY_ACK may take to arrive;
    /// after it the connection is closed with 1002 "attachment timeout".
    pub attachment_timeout: Duration,
    /// Most attachments one binary packet may announce (more: 1002 "protocol violation").
    pub max_attachments: usize,
    /// Browser origins allowed to use the Engine.IO path from pages of their own (CORS on
    /// long-polling answers and preflights; see [`cors`]). Same origin only by default.
    pub cors_origins: CorsOrigins,
    /// Refuse (403) a WebSocket upgrade whose `Origin` is neither allowed by `cors_origins`
    /// nor the server's own `Host`. Off by default: credentials travel in the CONNECT
    /// payload, not in cookies a browser would attach for another site's page.
    pub check_ws_origin: bool,
    /// Reverse proxies (addresses, CIDR blocks) whose `X-Forwarded-For` names the client: its
    /// address then counts for the per-address limits, the chat's password delay and the
    /// logs (see [`trusted_proxy`]). None by default: every peer is the client.
    pub trusted_proxies: TrustedProxies,
}

impl EngineConfig {
    /// Each connection's queue bounds ([`outbox_capacity`](Self::outbox_capacity),
    /// [`outbox_bytes`](Self::outbox_bytes)).
    pub(crate) fn outbox_bounds(&self) -> outbox::Bounds {
        outbox::Bounds {
            packets: self.outbox_capacity,
            bytes: self.outbox_bytes,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            connect_timeout: Duration::from_millis(45_000),
            handshake_timeout: Duration::from_millis(10_000),
            outbox_capacity: 1024,
            outbox_bytes: 4 * 1024 * 1024,
            max_connections: 20_000,
            max_frame_size: 1_000_000,
            max_namespaces: 32,
            max_namespace_len: chat_protocol::names::NAMESPACE_MAX,
            max_connections_per_ip: 1_000,
            rate_burst: 200,
            // Off in the library default (tests drive single connections as fast as they
            // can); the `chat-server` binary defaults to `config::DEFAULT_RATE_PER_SEC`.
            rate_per_sec: 0,
            flood_timeout: Duration::from_secs(10),
            attachment_timeout: Duration::from_secs(10),
            max_attachments: 64,
            cors_origins: CorsOrigins::SameOrigin,
            check_ws_origin: false,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

type AdapterFactory = Arc<dyn Fn(AdapterContext) -> Arc<dyn Adapter> + Send + Sync>;

/// The engine's namespaces by name. A dynamic namespace holds a `Weak` to it, to remove itself
/// when its last socket leaves (see [`Namespace`]'s lifetime rules).
pub(crate) type Registry = RwLock<HashMap<String, Namespace>>;

/// The engine: configuration, the namespace registry and the shutdown signal. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: EngineConfig,
    /// Static namespaces, and dynamic ones while they have sockets. Lock order: this map,
    /// then a namespace's own locks (its socket map, its adapter's); never the other way
    /// round, and no application callback runs while it is held.
    namespaces: Arc<Registry>,
    dynamic: RwLock<Vec<(Regex, Arc<Handlers>)>>,
    adapter_factory: AdapterFactory,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Set by the application (the chat), else the plain defaults.
    rate_limit_replies: OnceLock<RateLimitReplies>,
    /// Open long-polling sessions by sid (bounded by `max_connections`).
    polling: polling::Sessions,
    /// The application's routes for paths other than the Engine.IO one.
    http_routes: OnceLock<http_routes::HttpRoutes>,
    /// Counters for the application's metrics (namespaces share it for their broadcasts).
    stats: Arc<EngineStats>,
}

/// What the engine tells a client whose packet went over the rate limit. The engine knows no
/// application vocabulary, so the application shapes these (the chat: its error envelope
/// with `rate_limited`, and its `notice` event); the defaults are plain.
#[derive(Debug, Clone)]
pub struct RateLimitReplies {
    /// The `data` of the CONNECT_ERROR `{"message":"Rate limit exceeded","data":...}`.
    pub connect_data: Option<Value>,
    /// The ack's arguments for an event that asked for an ack.
    pub ack: Vec<Value>,
    /// An event (name, arguments) for one that did not, at most one a second; `None`: none.
    pub notice: Option<(String, Vec<Value>)>,
}

impl Default for RateLimitReplies {
    fn default() -> Self {
        RateLimitReplies {
            connect_data: None,
            ack: vec![json!({"error": "rate limit exceeded"})],
            notice: None,
        }
    }
}

impl Engine {
    /// An engine with the in-memory adapter.
    pub fn new(config: EngineConfig) -> Engine {
        Engine::with_adapter(config, |ctx| Arc::new(LocalAdapter::new(ctx)))
    }

    /// An engine whose namespaces each get an adapter made by `factory`.
    pub fn with_adapter<F>(config: EngineConfig, factory: F) -> Engine
    where
        F: Fn(AdapterContext) -> Arc<dyn Adapter> + Send + Sync + 'static,
    {
        Engine {
            inner: Arc::new(EngineInner {
                config,
                namespaces: Arc::new(RwLock::new(HashMap::new())),
                dynamic: RwLock::new(Vec::new()),
                adapter_factory: Arc::new(factory),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                rate_limit_replies: OnceLock::new(),
                polling: polling::Sessions::default(),
                http_routes: OnceLock::new(),
                stats: Arc::new(EngineStats::default()),
            }),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Sets what clients over the rate limit are told (once, before serving; a later call
    /// is ignored and returns false).
    pub fn set_rate_limit_replies(&self, replies: RateLimitReplies) -> bool {
        self.inner.rate_limit_replies.set(replies).is_ok()
    }

    /// Sets the application's routes for paths other than the Engine.IO one (once, before
    /// serving; a later call is ignored and returns false). Without them such a request gets
    /// 404.
    pub fn set_http_routes(&self, routes: http_routes::HttpRoutes) -> bool {
        self.inner.http_routes.set(routes).is_ok()
    }

    pub(crate) fn http_routes(&self) -> Option<&http_routes::HttpRoutes> {
        self.inner.http_routes.get()
    }

    pub(crate) fn rate_limit_replies(&self) -> &RateLimitReplies {
        self.inner
            .rate_limit_replies
            .get_or_init(RateLimitReplies::default)
    }

    /// Registers (or replaces the handlers of) a static namespace and returns its handle.
    /// Static namespaces live as long as the engine.
    pub fn namespace(&self, name: &str, handlers: Handlers) -> Namespace {
        let ns = Namespace::new(
            name,
            Arc::new(handlers),
            &self.inner.adapter_factory,
            None,
            self.inner.stats.clone(),
        );
        let old = write(&self.inner.namespaces).insert(name.to_owned(), ns.clone());
        drop(old);
        ns
    }

    /// Namespaces whose name matches `pattern` are created with `handlers` when a CONNECT to
    /// them is admitted, and removed when their last socket leaves (a refused CONNECT leaves
    /// nothing behind). A static namespace of the same name wins; patterns are tried in
    /// registration order.
    pub fn dynamic_namespace(&self, pattern: Regex, handlers: Handlers) {
        write(&self.inner.dynamic).push((pattern, Arc::new(handlers)));
    }

    /// The namespace of that name, if it exists: static, or dynamic with sockets.
    pub fn get_namespace(&self, name: &str) -> Option<Namespace> {
        read(&self.inner.namespaces).get(name).cloned()
    }

    /// Every existing namespace (the static ones and the dynamic ones that have sockets).
    pub fn namespaces(&self) -> Vec<Namespace> {
        read(&self.inner.namespaces).values().cloned().collect()
    }

    /// The namespace a CONNECT names: the registered one, else a new dynamic one from the
    /// first matching pattern, which is NOT registered: the connect middleware runs against
    /// it and [`Namespace::register`] registers it (or finds the instance another connection
    /// registered meanwhile) only once the chain admits the socket.
    pub(crate) fn resolve_namespace(&self, name: &str) -> Option<Namespace> {
        if let Some(ns) = self.get_namespace(name) {
            return Some(ns);
        }
        let handlers = read(&self.inner.dynamic)
            .iter()
            .find(|(re, _)| re.is_match(name))
            .map(|(_, h)| h.clone())?;
        let registry = Arc::downgrade(&self.inner.namespaces);
        Some(Namespace::new(
            name,
            handlers,
            &self.inner.adapter_factory,
            Some(registry),
            self.inner.stats.clone(),
        ))
    }

    /// The signal every connection watches; cancelled by [`Engine::shutdown`].
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    pub(crate) fn polling(&self) -> &polling::Sessions {
        &self.inner.polling
    }

    /// How many sessions opened by long-polling are open (upgraded ones included).
    pub fn polling_sessions(&self) -> usize {
        self.inner.polling.len()
    }

    /// The engine's counters (see [`stats`]).
    pub fn stats(&self) -> &EngineStats {
        &self.inner.stats
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// Closes every connection with code 1001 (no Socket.IO DISCONNECT, so clients reconnect)
    /// and waits for the connection tasks to end.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

/// Locks that are only held for short sections and never across an `.await`; a poisoned lock
/// (a panic while held) still holds consistent data for these maps, so it is taken over.
pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Locks a std `Mutex` held only for a short section that never crosses an `.await`, taking
/// over a poisoned one (as the engine's `RwLock` helpers do). Public because the application built
/// on the engine (the chat) keeps its own short-held state by the same rule.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::Sid;

    #[test]
    fn sids_are_equal_as_strings() {
        let a = Sid("abcdefgh-1".into());
        assert_eq!(a, a.clone());
        assert_eq!(a, Sid("abcdefgh-1".into()));
        assert_ne!(a, Sid("abcdefgh-2".into()));
        assert_ne!(a, Sid("abcdefgh-10".into()));
        assert_ne!(a, Sid("xbcdefgh-1".into()));
        assert_eq!(Sid("s1".into()), Sid("s1".into()));
        assert_ne!(Sid("s1".into()), Sid("s2".into()));
    }
}
