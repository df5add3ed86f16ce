//! Namespaces: each has its own handlers, connect middleware chain, adapter (rooms) and
//! sockets. Static ones are registered by name; dynamic ones are created on first CONNECT
//! from a name pattern (see [`super::Engine::dynamic_namespace`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock, Weak};

use bytes::Bytes;
use serde_json::Value;

use super::adapter::{Adapter, AdapterContext, LocalSockets, RoomEvent};
use super::broadcast::BroadcastOperator;
use super::socket::{AckSender, Socket};
use super::{AdapterFactory, Room, Sid, lock, read, write};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What is known about the underlying connection, shared by its sockets.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// The Engine.IO session id.
    pub id: Sid,
    pub remote: SocketAddr,
    /// The query string of the upgrade request.
    pub query: String,
}

/// Values the application attaches to a connection, shared by its sockets in every namespace
/// (for example the chat user behind it).
#[derive(Clone, Default)]
pub struct Extensions(Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl Extensions {
    pub fn insert<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        lock(&self.0).insert(TypeId::of::<T>(), value);
    }

    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        lock(&self.0)
            .get(&TypeId::of::<T>())
            .cloned()?
            .downcast()
            .ok()
    }
}

/// A CONNECT as the middleware chain sees it.
#[derive(Clone)]
pub struct ConnectRequest {
    pub namespace: Namespace,
    /// The CONNECT payload (`{}` when absent).
    pub auth: Value,
    pub conn: Arc<ConnectionInfo>,
    pub extensions: Extensions,
}

/// A middleware's refusal, sent as CONNECT_ERROR `{message, data}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    pub message: String,
    pub data: Option<Value>,
}

impl ConnectError {
    pub fn new(message: impl Into<String>) -> ConnectError {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> ConnectError {
        self.data = Some(data);
        self
    }
}

/// One received event.
#[derive(Debug)]
pub struct Event {
    pub name: String,
    /// The arguments after the event name (binary ones are placeholders).
    pub args: Vec<Value>,
    pub attachments: Vec<Bytes>,
    /// Present when the client asked for an acknowledgement.
    pub ack: Option<AckSender>,
}

type Middleware = Arc<dyn Fn(ConnectRequest) -> BoxFuture<Result<(), ConnectError>> + Send + Sync>;
type ConnectHandler = Arc<dyn Fn(Socket, Value) -> BoxFuture<()> + Send + Sync>;
type EventHandler = Arc<dyn Fn(Socket, Event) -> BoxFuture<()> + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(Socket, &'static str) -> BoxFuture<()> + Send + Sync>;
type RoomHandler = Arc<dyn Fn(&Namespace, &RoomEvent) + Send + Sync>;

/// A namespace's behaviour. Handlers of one connection run one at a time, in arrival order,
/// on that connection's task: a handler that waits for a client's ack must spawn that wait,
/// or it would wait for a packet its own connection cannot read yet.
#[derive(Clone, Default)]
pub struct Handlers {
    pub(crate) middleware: Vec<Middleware>,
    pub(crate) on_connect: Option<ConnectHandler>,
    events: HashMap<String, EventHandler>,
    fallback: Option<EventHandler>,
    pub(crate) on_disconnect: Option<DisconnectHandler>,
    on_room: Option<RoomHandler>,
}

impl Handlers {
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Adds a connect middleware; they run in the order added, the first refusal wins.
    pub fn middleware<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(ConnectRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.middleware.push(Arc::new(move |req| Box::pin(f(req))));
        self
    }

    /// Runs after the CONNECT answer has been queued, with the CONNECT payload.
    pub fn on_connect<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Socket, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_connect = Some(Arc::new(move |s, v| Box::pin(f(s, v))));
        self
    }

    /// Handles one event name.
    pub fn on<F, Fut>(mut self, event: &str, f: F) -> Self
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.events
            .insert(event.to_owned(), Arc::new(move |s, e| Box::pin(f(s, e))));
        self
    }

    /// Handles every event that has no handler of its own.
    pub fn on_any<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.fallback = Some(Arc::new(move |s, e| Box::pin(f(s, e))));
        self
    }

    /// Runs when a socket goes, while it is still in its rooms, with the reason.
    pub fn on_disconnect<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Socket, &'static str) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_disconnect = Some(Arc::new(move |s, r| Box::pin(f(s, r))));
        self
    }

    /// Observes room lifecycle events (created, deleted, joined, left). Called synchronously
    /// right after the change, with no engine lock held.
    pub fn on_room_event<F>(mut self, f: F) -> Self
    where
        F: Fn(&Namespace, &RoomEvent) + Send + Sync + 'static,
    {
        self.on_room = Some(Arc::new(f));
        self
    }

    pub(crate) fn event_handler(&self, name: &str) -> Option<&EventHandler> {
        self.events.get(name).or(self.fallback.as_ref())
    }
}

/// A namespace handle. Cheap to clone.
#[derive(Clone)]
pub struct Namespace {
    inner: Arc<NamespaceInner>,
}

struct NamespaceInner {
    name: String,
    handlers: Arc<Handlers>,
    adapter: Arc<dyn Adapter>,
    local: Arc<LocalSockets>,
    sockets: RwLock<HashMap<Sid, Socket>>,
}

impl Namespace {
    pub(crate) fn new(name: &str, handlers: Arc<Handlers>, factory: &AdapterFactory) -> Namespace {
        let inner = Arc::new_cyclic(|weak: &Weak<NamespaceInner>| {
            let local = Arc::new(LocalSockets::default());
            let listener = handlers.on_room.clone().map(|handler| {
                let weak = weak.clone();
                Arc::new(move |event: &RoomEvent| {
                    if let Some(inner) = weak.upgrade() {
                        handler(&Namespace { inner }, event);
                    }
                }) as Arc<dyn Fn(&RoomEvent) + Send + Sync>
            });
            let adapter = factory(AdapterContext::new(name, local.clone(), listener));
            NamespaceInner {
                name: name.to_owned(),
                handlers,
                adapter,
                local,
                sockets: RwLock::new(HashMap::new()),
            }
        });
        Namespace { inner }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.inner.adapter
    }

    pub(crate) fn handlers(&self) -> &Handlers {
        &self.inner.handlers
    }

    /// Targets every socket of the namespace (narrow it with `to`, `except`, `volatile`).
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.clone())
    }

    /// Targets a room.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        BroadcastOperator::new(self.clone()).to(room)
    }

    /// Targets everyone but the sockets in this room.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        BroadcastOperator::new(self.clone()).except(room)
    }

    /// Targets everyone, volatile.
    pub fn volatile(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.clone()).volatile()
    }

    /// Emits to every socket of the namespace.
    pub fn emit(&self, event: &str, args: Vec<Value>) -> usize {
        BroadcastOperator::new(self.clone()).emit(event, args)
    }

    pub fn socket(&self, sid: &str) -> Option<Socket> {
        read(&self.inner.sockets).get(sid).cloned()
    }

    pub fn sockets(&self) -> Vec<Socket> {
        read(&self.inner.sockets).values().cloned().collect()
    }

    pub(crate) fn add_socket(&self, socket: &Socket) {
        self.inner
            .local
            .insert(socket.sid().clone(), socket.outbox().clone());
        write(&self.inner.sockets).insert(socket.sid().clone(), socket.clone());
        self.adapter()
            .join(socket.sid(), &[socket.sid().as_str().to_owned()]);
    }

    pub(crate) fn remove_socket(&self, sid: &Sid) {
        // Out of the local map first: a `join` racing with this finds no outbox and adds
        // nothing that `leave_all` would miss.
        self.inner.local.remove(sid.as_str());
        self.adapter().leave_all(sid);
        write(&self.inner.sockets).remove(sid.as_str());
    }
}
