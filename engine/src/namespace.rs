//! Namespaces: each has its own handlers, connect middleware chain, adapter (rooms) and
//! sockets. Static ones are registered by name and live as long as the engine; dynamic ones
//! are made from a name pattern (see [`super::Engine::dynamic_namespace`]), registered when a
//! CONNECT to them is admitted and removed when their last socket leaves.
//!
//! A dynamic namespace's lifetime, and the race it must not lose: a connection that found the
//! registered instance must add its socket to an instance that is still registered, or its
//! socket would sit in an orphan that other connections of the same name never meet. So
//! registering (`Namespace::register`) *pins* the instance under the registry lock, and the
//! pin is released only after the socket is added; the instance is removed only under the
//! registry's write lock, when it has no pin and no socket and the registry's entry is this
//! very instance. A pin taken before the removal's check stops it; one that would be taken
//! after it finds no entry and registers a new instance. Neither the registry lock nor any
//! namespace lock is held while the socket is added (its adapter's `join` runs the
//! application's room listeners).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use bytes::Bytes;
use chat_protocol::socket_io::JsonArgs;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::adapter::{Adapter, AdapterContext, LocalSockets, RoomEvent};
use super::socket::{AckSender, Socket};
use super::stats::EngineStats;
use super::{AdapterFactory, Registry, Sid, lock, read, write};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What is known about the underlying connection (the Engine.IO session), shared by its
/// sockets.
pub struct ConnectionInfo {
    /// The Engine.IO session id. A long-polling session's requests carry it: it is a bearer
    /// credential (random, 120 bits), never to be logged or shown to other clients.
    pub id: Sid,
    pub remote: SocketAddr,
    /// The query string of the request that opened the session.
    pub query: String,
    /// The current [`Transport`], changed by an upgrade.
    transport: AtomicU8,
}

/// The transport a session's packets currently flow over: for logs and metrics only, nothing
/// above the Engine.IO session acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling (the session may still upgrade to WebSocket).
    Polling,
    WebSocket,
}

impl ConnectionInfo {
    pub fn new(id: Sid, remote: SocketAddr, query: String, transport: Transport) -> Self {
        ConnectionInfo {
            id,
            remote,
            query,
            transport: AtomicU8::new(transport as u8),
        }
    }

    /// The transport the session's packets flow over now.
    pub fn transport(&self) -> Transport {
        if self.transport.load(Ordering::Relaxed) == Transport::Polling as u8 {
            Transport::Polling
        } else {
            Transport::WebSocket
        }
    }

    pub(crate) fn set_transport(&self, transport: Transport) {
        self.transport.store(transport as u8, Ordering::Relaxed);
    }
}

/// Leaves the session id out: it is a credential.
impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("remote", &self.remote)
            .field("query", &self.query)
            .field("transport", &self.transport())
            .finish_non_exhaustive()
    }
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
    /// The namespace asked for. A dynamic one is not registered yet (the engine does not know
    /// it) and, when another connection registers the same name meanwhile, the socket joins
    /// that instance instead: keep its name, not the handle.
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

/// One received event. Its arguments (those after its name) are read with [`Event::arg`],
/// straight into the type wanted, or all as [`Value`]s with [`Event::args`].
#[derive(Debug)]
pub struct Event {
    pub name: String,
    args: EventArgs,
    pub attachments: Vec<Bytes>,
    /// Present when the client asked for an acknowledgement.
    pub ack: Option<AckSender>,
}

/// An event's arguments as they arrived.
#[derive(Debug)]
pub(crate) enum EventArgs {
    /// An EVENT's: each argument's JSON text, checked at decode.
    Json(JsonArgs),
    /// A BINARY_EVENT's: decoded, with a placeholder where each attachment goes.
    Values(Vec<Value>),
}

impl Event {
    pub(crate) fn new(
        name: String,
        args: EventArgs,
        attachments: Vec<Bytes>,
        ack: Option<AckSender>,
    ) -> Event {
        Event {
            name,
            args,
            attachments,
            ack,
        }
    }

    /// Argument `i` (`null` when there is none) as a `T`: the value, or the error (message
    /// included), that `serde_json::from_value` gives for that argument's [`Value`]. An
    /// EVENT's argument is deserialized straight from its JSON text, with no `Value` built
    /// (unless it does not fit `T`).
    pub fn arg<T: DeserializeOwned>(&self, i: usize) -> Result<T, serde_json::Error> {
        match &self.args {
            EventArgs::Json(args) => args.parse(i),
            EventArgs::Values(args) => {
                serde_json::from_value(args.get(i).cloned().unwrap_or(Value::Null))
            }
        }
    }

    /// Every argument as a [`Value`] (a binary event's attachments as their placeholders):
    /// built on each call, for code that wants the JSON tree.
    pub fn args(&self) -> Vec<Value> {
        match &self.args {
            EventArgs::Json(args) => args.to_values(),
            EventArgs::Values(args) => args.clone(),
        }
    }
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
    /// The engine's registry, for a dynamic namespace (`None`: static, never removed).
    registry: Option<Weak<Registry>>,
    /// Admissions between [`Namespace::register`] and their `add_socket`; taken under the
    /// registry lock, so a removal (under its write lock) sees every one of them.
    pins: AtomicUsize,
    /// The engine's counters (a broadcast adds its deliveries).
    stats: Arc<EngineStats>,
}

/// A namespace returned by [`Namespace::register`], pinned (it stays registered) until this
/// is dropped, which the caller does right after adding its socket.
pub(crate) struct Registered {
    pub(crate) ns: Namespace,
    pinned: bool,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.pinned {
            self.ns.inner.pins.fetch_sub(1, Ordering::AcqRel);
            // The socket may already have left again (a listener disconnected it): then
            // nobody else would remove the namespace.
            self.ns.release_if_unused();
        }
    }
}

impl Namespace {
    /// A namespace; `registry` is given for a dynamic one.
    pub(crate) fn new(
        name: &str,
        handlers: Arc<Handlers>,
        factory: &AdapterFactory,
        registry: Option<Weak<Registry>>,
        stats: Arc<EngineStats>,
    ) -> Namespace {
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
                registry,
                pins: AtomicUsize::new(0),
                stats,
            }
        });
        Namespace { inner }
    }

    /// Whether this namespace was made from a pattern (and lives while it has sockets).
    pub fn is_dynamic(&self) -> bool {
        self.inner.registry.is_some()
    }

    fn is(&self, other: &Namespace) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Where an admitted socket goes. For a static namespace: itself. For a dynamic one: the
    /// instance registered under its name, this one inserted when there is none, pinned
    /// until the returned value is dropped. (When a static namespace took the name meanwhile,
    /// the socket stays in this unregistered instance, as sockets of a replaced static one
    /// stay in theirs: that namespace's middleware did not run for it.)
    pub(crate) fn register(&self) -> Registered {
        let unpinned = || Registered {
            ns: self.clone(),
            pinned: false,
        };
        let Some(registry) = self.inner.registry.as_ref().and_then(Weak::upgrade) else {
            return unpinned();
        };
        let same_kind = |found: &Namespace| {
            found.is_dynamic() && Arc::ptr_eq(&found.inner.handlers, &self.inner.handlers)
        };
        let pin = |ns: &Namespace| {
            ns.inner.pins.fetch_add(1, Ordering::AcqRel);
            Registered {
                ns: ns.clone(),
                pinned: true,
            }
        };
        // Usually registered already: a read lock excludes a removal just as well.
        if let Some(found) = read(&registry).get(self.name()) {
            return if same_kind(found) {
                pin(found)
            } else {
                unpinned()
            };
        }
        let mut map = write(&registry);
        match map.get(self.name()) {
            Some(found) if same_kind(found) => pin(found),
            Some(_) => unpinned(),
            None => {
                map.insert(self.name().to_owned(), self.clone());
                pin(self)
            }
        }
    }

    /// No socket and no admission under way.
    fn unused(&self) -> bool {
        self.inner.pins.load(Ordering::Acquire) == 0 && read(&self.inner.sockets).is_empty()
    }

    /// Removes a dynamic namespace from the registry once it has no socket and no pin
    /// (called after a socket leaves and after a pin is released).
    fn release_if_unused(&self) {
        if !self.is_dynamic() || !self.unused() {
            return;
        }
        let Some(registry) = self.inner.registry.as_ref().and_then(Weak::upgrade) else {
            return;
        };
        let mut map = write(&registry);
        // Checked again under the write lock: no pin can be taken meanwhile.
        if self.unused() && map.get(self.name()).is_some_and(|ns| ns.is(self)) {
            let removed = map.remove(self.name());
            drop(map);
            drop(removed);
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn stats(&self) -> &EngineStats {
        &self.inner.stats
    }

    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.inner.adapter
    }

    pub(crate) fn handlers(&self) -> &Handlers {
        &self.inner.handlers
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
        self.release_if_unused();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalAdapter;
    use crate::outbox::outbox;

    fn make(name: &str, registry: Option<&Arc<Registry>>, handlers: &Arc<Handlers>) -> Namespace {
        let factory: AdapterFactory =
            Arc::new(|ctx| Arc::new(LocalAdapter::new(ctx)) as Arc<dyn Adapter>);
        Namespace::new(
            name,
            handlers.clone(),
            &factory,
            registry.map(Arc::downgrade),
            Arc::default(),
        )
    }

    fn socket(ns: &Namespace) -> Socket {
        let (tx, _rx) = outbox(4);
        let conn = Arc::new(ConnectionInfo::new(
            Sid::random(),
            SocketAddr::from(([127, 0, 0, 1], 1)),
            String::new(),
            Transport::WebSocket,
        ));
        Socket::new(ns.clone(), tx, conn, Extensions::default())
    }

    /// The instance registered under `name`, if it is `ns`.
    fn registered_is(registry: &Registry, name: &str, ns: &Namespace) -> bool {
        read(registry).get(name).is_some_and(|found| found.is(ns))
    }

    #[test]
    fn a_dynamic_namespace_is_not_removed_under_a_pending_admission() {
        let registry: Arc<Registry> = Arc::default();
        let handlers = Arc::new(Handlers::new());
        // The first admission registers its instance.
        let first = make("/d", Some(&registry), &handlers);
        let admitted = first.register();
        assert!(admitted.ns.is(&first) && registered_is(&registry, "/d", &first));
        let s1 = socket(&first);
        first.add_socket(&s1);
        drop(admitted);

        // A second connection resolved its own instance; admitted, it gets the registered
        // one, pinned ...
        let pending = make("/d", Some(&registry), &handlers).register();
        assert!(pending.ns.is(&first));
        // ... so the first socket leaving does not remove it under the admission.
        first.remove_socket(s1.sid());
        assert!(registered_is(&registry, "/d", &first));
        let s2 = socket(&pending.ns);
        pending.ns.add_socket(&s2);
        drop(pending);
        assert!(registered_is(&registry, "/d", &first));
        // The last socket leaves: removed.
        first.remove_socket(s2.sid());
        assert!(read(&registry).is_empty());

        // A pin released without a socket (it left again at once) frees it too.
        let again = make("/d", Some(&registry), &handlers);
        let pinned = again.register();
        assert!(registered_is(&registry, "/d", &again));
        let s3 = socket(&again);
        again.add_socket(&s3);
        again.remove_socket(s3.sid());
        assert!(registered_is(&registry, "/d", &again), "still pinned");
        drop(pinned);
        assert!(read(&registry).is_empty());

        // An instance no longer registered never removes the one that is.
        let old = make("/d", Some(&registry), &handlers);
        drop(old.register());
        let current = make("/d", Some(&registry), &handlers);
        let pinned = current.register();
        assert!(pinned.ns.is(&current));
        old.release_if_unused();
        drop(pinned);
        let s4 = socket(&current);
        let pinned = current.register();
        current.add_socket(&s4);
        drop(pinned);
        old.release_if_unused();
        assert!(registered_is(&registry, "/d", &current));
    }

    #[test]
    fn static_namespaces_stay_and_a_static_name_is_never_taken_over() {
        let registry: Arc<Registry> = Arc::default();
        let handlers = Arc::new(Handlers::new());
        let fixed = make("/s", None, &handlers);
        write(&registry).insert("/s".to_owned(), fixed.clone());
        let admitted = fixed.register();
        let s = socket(&admitted.ns);
        admitted.ns.add_socket(&s);
        drop(admitted);
        fixed.remove_socket(s.sid());
        assert!(registered_is(&registry, "/s", &fixed));
        // A dynamic instance of a name a static one took meanwhile stays unregistered.
        let late = make("/s", Some(&registry), &handlers);
        let admitted = late.register();
        assert!(admitted.ns.is(&late));
        let s = socket(&late);
        late.add_socket(&s);
        drop(admitted);
        late.remove_socket(s.sid());
        assert!(registered_is(&registry, "/s", &fixed));
    }
}
