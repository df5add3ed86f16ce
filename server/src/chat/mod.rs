//! The chat application, built on the engine's handlers.
//!
//! - this file: [`build`] (an engine with the chat namespaces from the config), the shared
//!   [`ChatApp`] state (who is online), the connect middleware (namespace key, nick) and the
//!   connect/disconnect/room-lifecycle handlers;
//! - [`handlers`]: one method per client event (`join`, `message`, `dm`, ...);
//! - [`store`]: room history behind the `Store` trait.
//!
//! Chat rooms live in the engine as rooms named `#<room>`, so they can never collide with the
//! own-id room of a socket.

pub mod handlers;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_protocol::events::{
    self, Auth, ConnectErrorData, ErrorCode, Notice, PresenceAction, RoomAction, RoomChange,
};
use chat_protocol::names;
use regex::Regex;
use serde_json::{Value, json};
use tracing::info;

use crate::config::ServerConfig;
use crate::engine::{
    ConnectError, ConnectRequest, Engine, Handlers, Namespace, RoomEvent, RoomEventKind, Socket,
    lock,
};
use store::{MemoryStore, Store};

/// Engine room name of a chat room.
pub(crate) fn engine_room(room: &str) -> String {
    format!("#{room}")
}

/// One connected user: a connection and its sockets, one per namespace. Shared by those
/// sockets through the connection's extensions.
pub struct Session {
    nick: Mutex<String>,
    sockets: Mutex<Vec<Socket>>,
}

impl Session {
    pub fn nick(&self) -> String {
        lock(&self.nick).clone()
    }

    pub(crate) fn sockets(&self) -> Vec<Socket> {
        lock(&self.sockets).clone()
    }
}

/// State shared by every namespace of the chat.
pub struct ChatApp {
    store: Arc<dyn Store>,
    /// Connected users by nick key (lowercase nick).
    users: Mutex<HashMap<String, Arc<Session>>>,
    join_history: usize,
}

/// Builds an engine serving the chat as configured.
pub fn build(config: &ServerConfig) -> Result<Engine, String> {
    let store = Arc::new(MemoryStore::new(config.room_capacity));
    Ok(build_with_store(config, store))
}

pub fn build_with_store(config: &ServerConfig, store: Arc<dyn Store>) -> Engine {
    let engine = Engine::new(config.engine.clone());
    let app = Arc::new(ChatApp {
        store,
        users: Mutex::new(HashMap::new()),
        join_history: config.join_history,
    });
    for ns in &config.namespaces {
        engine.namespace(&ns.name, app.handlers(ns.key.clone()));
    }
    if engine.get_namespace("/").is_none() {
        engine.namespace("/", app.handlers(None));
    }
    if config.dynamic_namespaces {
        // Any name that passes the namespace rules; declared names win over this pattern.
        #[allow(clippy::unwrap_used)] // a constant, valid pattern
        let any = Regex::new(r"^/[A-Za-z0-9_./-]{0,63}$").unwrap();
        engine.dynamic_namespace(any, app.handlers(None));
    }
    engine
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> ConnectError {
    ConnectError::new(message).with_data(json!(ConnectErrorData { code }))
}

impl ChatApp {
    fn handlers(self: &Arc<Self>, key: Option<String>) -> Handlers {
        let (a, b, c, d, e) = (
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
        );
        Handlers::new()
            .middleware(move |req: ConnectRequest| {
                let key = key.clone();
                async move { check_key(&req, key.as_deref()) }
            })
            .middleware(move |req| {
                let app = a.clone();
                async move { app.claim_nick(&req) }
            })
            .on_connect(move |socket, _auth| {
                let app = b.clone();
                async move { app.on_connect(socket) }
            })
            .on_any(move |socket, event| {
                let app = c.clone();
                async move { app.dispatch(socket, event).await }
            })
            .on_disconnect(move |socket, reason| {
                let app = d.clone();
                async move { app.on_disconnect(socket, reason) }
            })
            .on_room_event(move |ns, event| e.on_room_event(ns, event))
    }

    /// The nick middleware: the connection's first namespace claims a nick (unique among
    /// connected users); later namespaces share it.
    fn claim_nick(&self, req: &ConnectRequest) -> Result<(), ConnectError> {
        let auth: Auth = serde_json::from_value(req.auth.clone())
            .map_err(|e| refusal(ErrorCode::BadRequest, format!("invalid auth payload: {e}")))?;
        if let Some(session) = req.extensions.get::<Session>() {
            let current = session.nick();
            match &auth.nick {
                Some(n) if names::nick_key(n) != names::nick_key(&current) => {
                    return Err(refusal(
                        ErrorCode::BadRequest,
                        format!("this connection already uses the nick '{current}'"),
                    ));
                }
                _ => {}
            }
            if !session.sockets().is_empty() {
                return Ok(());
            }
            // Every namespace was left: the nick was released, claim it again.
            return self.register(&current, session, req);
        }
        let nick = auth.nick.ok_or_else(|| {
            refusal(
                ErrorCode::NickRequired,
                "a nick is required (auth: {\"nick\": ...})",
            )
        })?;
        names::validate_nick(&nick).map_err(|e| refusal(ErrorCode::InvalidName, e.to_string()))?;
        let session = Arc::new(Session {
            nick: Mutex::new(nick.clone()),
            sockets: Mutex::new(Vec::new()),
        });
        self.register(&nick, session, req)
    }

    fn register(
        &self,
        nick: &str,
        session: Arc<Session>,
        req: &ConnectRequest,
    ) -> Result<(), ConnectError> {
        let mut users = lock(&self.users);
        match users.get(&names::nick_key(nick)) {
            Some(other) if !Arc::ptr_eq(other, &session) => {
                return Err(refusal(
                    ErrorCode::NickTaken,
                    format!("nick '{nick}' is in use"),
                ));
            }
            _ => {}
        }
        users.insert(names::nick_key(nick), session.clone());
        drop(users);
        req.extensions.insert(session);
        info!(nick, remote = %req.conn.remote, "user connected");
        Ok(())
    }

    fn on_connect(&self, socket: Socket) {
        let Some(session) = socket.extensions().get::<Session>() else {
            return;
        };
        lock(&session.sockets).push(socket.clone());
        let online = lock(&self.users).len();
        let text = format!(
            "Welcome to {}, {}. {online} user{} online.",
            socket.namespace().name(),
            session.nick(),
            if online == 1 { "" } else { "s" }
        );
        let _ = socket.emit(events::server::NOTICE, vec![json!(Notice { text })]);
    }

    fn on_disconnect(&self, socket: Socket, reason: &'static str) {
        let Some(session) = socket.extensions().get::<Session>() else {
            return;
        };
        let nick = session.nick();
        for room in chat_rooms(&socket) {
            let presence = events::Presence {
                room: room.clone(),
                nick: nick.clone(),
                action: PresenceAction::Quit,
                previous: None,
            };
            socket
                .to(engine_room(&room))
                .emit(events::server::PRESENCE, vec![json!(presence)]);
        }
        let mut sockets = lock(&session.sockets);
        sockets.retain(|s| s.sid() != socket.sid());
        if sockets.is_empty() {
            drop(sockets);
            let mut users = lock(&self.users);
            let key = names::nick_key(&nick);
            if users.get(&key).is_some_and(|s| Arc::ptr_eq(s, &session)) {
                users.remove(&key);
            }
            drop(users);
            info!(nick, reason, "user disconnected");
        }
    }

    /// Tells the namespace when a chat room appears or vanishes.
    fn on_room_event(&self, ns: &Namespace, event: &RoomEvent) {
        let Some(room) = event.room.strip_prefix('#') else {
            return;
        };
        let action = match event.kind {
            RoomEventKind::Created => RoomAction::Created,
            RoomEventKind::Deleted => RoomAction::Deleted,
            RoomEventKind::Joined | RoomEventKind::Left => return,
        };
        ns.emit(
            events::server::ROOM,
            vec![json!(RoomChange {
                action,
                room: room.to_owned()
            })],
        );
    }

    /// The session of the user with this nick, if connected.
    pub(crate) fn session(&self, nick: &str) -> Option<Arc<Session>> {
        lock(&self.users).get(&names::nick_key(nick)).cloned()
    }
}

/// The chat rooms (without `#`) a socket is in.
pub(crate) fn chat_rooms(socket: &Socket) -> Vec<String> {
    socket
        .rooms()
        .into_iter()
        .filter_map(|r| r.strip_prefix('#').map(str::to_owned))
        .collect()
}

fn check_key(req: &ConnectRequest, key: Option<&str>) -> Result<(), ConnectError> {
    let Some(expected) = key else { return Ok(()) };
    match req.auth.get("key").and_then(Value::as_str) {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(refusal(
            ErrorCode::Forbidden,
            format!("wrong key for namespace {}", req.namespace.name()),
        )),
        None => Err(refusal(
            ErrorCode::Forbidden,
            format!("namespace {} requires a key", req.namespace.name()),
        )),
    }
}

/// Compares secrets without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
