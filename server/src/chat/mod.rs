//! The chat application, built on the engine's handlers.
//!
//! - this file: [`build`] (an engine with the chat namespaces from the config), the shared
//!   [`ChatApp`] state (who is online), the connect middleware (namespace key, token, nick and
//!   password), and the connect/disconnect/room-lifecycle handlers (catch-up with `since`,
//!   delivery of direct messages that waited);
//! - [`handlers`]: one method per client event (`join`, `message`, `dm`, ...);
//! - `reply`: typed acks (each request's reply type) and typed pushes (`Push::push`, the
//!   event's name from its type);
//! - [`store`]: the `Store` trait and the in-memory store; [`sqlite`]: the durable store
//!   (its log's newest messages wait in memory for indexing in `unindexed`);
//! - [`token`]: HS256 tokens for namespaces that require one.
//!
//! Chat rooms live in the engine as rooms named `#<room>`, so they can never collide with the
//! own-id room of a socket.

mod auth;
pub mod handlers;
mod look_alike;
mod reply;
pub mod sqlite;
pub mod store;
pub mod token;
mod unindexed;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_protocol::events::{
    self, Auth, ChatMessage, ConnectErrorData, DirectMessage, ErrorCode, Notice, Presence,
    PresenceAction, RoomAction, RoomChange, ServerEvent,
};
use chat_protocol::names;
use regex::Regex;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::{ServerConfig, StoreConfig};
use crate::engine::{
    ConnectError, ConnectRequest, Engine, Handlers, Namespace, RateLimitReplies, RoomEvent,
    RoomEventKind, Socket, lock,
};
use look_alike::LookAlikes;
use reply::Push;
use store::{Catchup, Identity, MemoryStore, Store, StoreError};

/// Engine room name of a chat room.
pub(crate) fn engine_room(room: &str) -> String {
    format!("#{room}")
}

/// Longest password accepted (hashing is deliberately slow; this bounds it).
const PASSWORD_MAX: usize = 1024;
/// Rooms a notice about refused `since` rooms names before "and N more".
const SINCE_REFUSALS_NAMED: usize = 10;
/// How long a recipient has to acknowledge a direct message that waited for it.
const DM_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Most `message`s one connection may have waiting for their commit (see `handlers`); the
/// connection's next `message` waits for a slot, so its reads pause.
pub(crate) const MESSAGES_IN_FLIGHT: usize = 16;

/// One connected user: a connection and its sockets, one per namespace. Shared by those
/// sockets through the connection's extensions.
pub struct Session {
    nick: Mutex<String>,
    /// Proved a claimed nick with its password.
    authenticated: AtomicBool,
    sockets: Mutex<Vec<Socket>>,
    /// A permit per `message` slot; a message not yet acknowledged holds one.
    in_flight: tokio::sync::Semaphore,
}

impl Session {
    fn new(nick: &str, authenticated: bool) -> Arc<Session> {
        Arc::new(Session {
            nick: Mutex::new(nick.to_owned()),
            authenticated: AtomicBool::new(authenticated),
            sockets: Mutex::new(Vec::new()),
            in_flight: tokio::sync::Semaphore::new(MESSAGES_IN_FLIGHT),
        })
    }

    /// Waits for a `message` slot and takes it; [`Session::release_message`] gives it back.
    pub(crate) async fn reserve_message(&self) {
        if let Ok(permit) = self.in_flight.acquire().await {
            permit.forget();
        }
    }

    pub(crate) fn release_message(&self) {
        self.in_flight.add_permits(1);
    }

    /// Waits until every `message` of this connection has been answered.
    pub(crate) async fn settled(&self) {
        if self.in_flight.available_permits() < MESSAGES_IN_FLIGHT {
            // The permits are given back at once: this only waits for them.
            let _ = self.in_flight.acquire_many(MESSAGES_IN_FLIGHT as u32).await;
        }
    }

    pub fn nick(&self) -> String {
        lock(&self.nick).clone()
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    pub(crate) fn sockets(&self) -> Vec<Socket> {
        lock(&self.sockets).clone()
    }
}

/// How a CONNECT's nick was claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// No password: a guest nick.
    Guest,
    /// A registered nick's password, checked.
    Login,
    /// A new identity, registered by this CONNECT.
    Registered,
}

/// A new registration's place among the registered nicks' skeletons, held while its
/// password is hashed; withdrawn on drop unless kept.
struct Reservation<'a> {
    index: &'a Mutex<LookAlikes>,
    /// The nick this reservation filed (`None`: its key was filed already, by another
    /// registration of the same nick, which owns that entry).
    nick: Option<String>,
}

impl Reservation<'_> {
    fn keep(mut self) {
        self.nick = None;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(nick) = self.nick.take() {
            lock(self.index).remove(&nick);
        }
    }
}

/// State shared by every namespace of the chat.
pub struct ChatApp {
    store: Arc<dyn Store>,
    /// Connected users by nick key (lowercase nick). Several sessions only for an identity
    /// connected from several devices.
    users: Mutex<HashMap<String, Vec<Arc<Session>>>>,
    /// The nicks of `users` by skeleton (taken after `users` when both are locked).
    online_nicks: Mutex<LookAlikes>,
    /// Registered nicks by skeleton, read from the store on first use.
    registered_nicks: tokio::sync::OnceCell<Mutex<LookAlikes>>,
    join_history: usize,
    catchup_limit: usize,
    token_secret: Option<String>,
    /// Every password check and hash goes through here (bounded, delayed per address).
    passwords: auth::Passwords,
    /// Configured limits (rooms per socket, name and text lengths).
    limits: crate::config::ChatLimits,
}

/// Builds an engine serving the chat as configured, with the configured store.
pub fn build(config: &ServerConfig) -> Result<Engine, StoreError> {
    let store: Arc<dyn Store> = match &config.store {
        StoreConfig::Memory => Arc::new(MemoryStore::new(config.room_capacity)),
        StoreConfig::Sqlite(path) => Arc::new(
            sqlite::SqliteStore::open(path, config.retention.clone()).map_err(|e| match e {
                StoreError::Backend(why) => {
                    StoreError::Backend(format!("{}: {why}", path.display()))
                }
                other => other,
            })?,
        ),
    };
    Ok(build_with_store(config, store))
}

pub fn build_with_store(config: &ServerConfig, store: Arc<dyn Store>) -> Engine {
    let engine = Engine::new(config.engine.clone());
    const SLOW_DOWN: &str = "rate limit exceeded: slow down";
    engine.set_rate_limit_replies(RateLimitReplies {
        connect_data: Some(json!(ConnectErrorData {
            code: ErrorCode::RateLimited
        })),
        ack: vec![events::error_reply(ErrorCode::RateLimited, SLOW_DOWN)],
        notice: Some((
            Notice::EVENT.to_owned(),
            vec![json!(Notice {
                text: SLOW_DOWN.to_owned()
            })],
        )),
    });
    let app = Arc::new(ChatApp {
        store,
        users: Mutex::new(HashMap::new()),
        online_nicks: Mutex::default(),
        registered_nicks: tokio::sync::OnceCell::new(),
        join_history: config.join_history,
        catchup_limit: config.catchup_limit,
        token_secret: config.token_secret.clone(),
        passwords: auth::Passwords::sized_to_cores(),
        limits: config.limits.clone(),
    });
    for ns in &config.namespaces {
        engine.namespace(&ns.name, app.handlers(ns.key.clone(), ns.token));
    }
    if engine.get_namespace("/").is_none() {
        engine.namespace("/", app.handlers(None, false));
    }
    if config.dynamic_namespaces {
        // Any name that passes the namespace rules; declared names win over this pattern.
        #[allow(clippy::unwrap_used)] // a constant, valid pattern
        let any = Regex::new(r"^/[A-Za-z0-9_./-]{0,63}$").unwrap();
        engine.dynamic_namespace(any, app.handlers(None, false));
    }
    engine
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> ConnectError {
    ConnectError::new(message).with_data(json!(ConnectErrorData { code }))
}

/// The CONNECT_ERROR for a password attempt that was not made.
fn password_refusal(why: auth::Refusal) -> ConnectError {
    match why {
        auth::Refusal::Busy => refusal(
            ErrorCode::Busy,
            "the server is busy checking passwords: retry in a moment",
        ),
        auth::Refusal::Registrations => refusal(
            ErrorCode::RateLimited,
            "too many nicks were registered from your address lately: try again later",
        ),
    }
}

fn internal(e: impl std::fmt::Display) -> ConnectError {
    warn!(error = %e, "connect failed");
    refusal(ErrorCode::Internal, "internal error")
}

impl ChatApp {
    fn handlers(self: &Arc<Self>, key: Option<String>, token: bool) -> Handlers {
        let (a, b, c, d, e, f) = (
            self.clone(),
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
                async move { if token { app.check_token(&req) } else { Ok(()) } }
            })
            .middleware(move |req| {
                let app = b.clone();
                async move { app.claim_nick(&req).await }
            })
            .on_connect(move |socket, auth| {
                let app = c.clone();
                async move { app.on_connect(socket, auth).await }
            })
            .on_any(move |socket, event| {
                let app = d.clone();
                async move { app.dispatch(socket, event).await }
            })
            .on_disconnect(move |socket, reason| {
                let app = e.clone();
                async move { app.on_disconnect(socket, reason).await }
            })
            .on_room_event(move |ns, event| f.on_room_event(ns, event))
    }

    /// The nick this CONNECT is for: the connection's, or the one in its auth payload.
    fn requested_nick(req: &ConnectRequest, auth: &Auth) -> Option<String> {
        req.extensions
            .get::<Session>()
            .map(|s| s.nick())
            .or_else(|| auth.nick.clone())
    }

    fn parse_auth(req: &ConnectRequest) -> Result<Auth, ConnectError> {
        serde_json::from_value(req.auth.clone())
            .map_err(|e| refusal(ErrorCode::BadRequest, format!("invalid auth payload: {e}")))
    }

    /// The token middleware: a valid HS256 token whose subject is this connection's nick.
    fn check_token(&self, req: &ConnectRequest) -> Result<(), ConnectError> {
        let auth = Self::parse_auth(req)?;
        let ns = req.namespace.name();
        let token = auth.token.as_deref().ok_or_else(|| {
            refusal(
                ErrorCode::TokenRequired,
                format!("namespace {ns} requires a token"),
            )
        })?;
        let secret = self
            .token_secret
            .as_deref()
            .ok_or_else(|| internal("token required but no secret configured"))?;
        let now = store::now_ms() / 1000;
        let claims = token::verify(token, secret.as_bytes(), now).map_err(|e| match e {
            token::TokenError::Expired => refusal(ErrorCode::TokenExpired, e.to_string()),
            other => refusal(ErrorCode::TokenInvalid, other.to_string()),
        })?;
        let nick = Self::requested_nick(req, &auth).unwrap_or_default();
        if names::nick_key(&claims.sub) != names::nick_key(&nick) {
            return Err(refusal(
                ErrorCode::TokenInvalid,
                format!("the token is for '{}', not '{nick}'", claims.sub),
            ));
        }
        Ok(())
    }

    /// The nick middleware: the connection's first namespace claims a nick (unique among
    /// connected users; a registered nick needs its password); later namespaces share it.
    async fn claim_nick(&self, req: &ConnectRequest) -> Result<(), ConnectError> {
        let auth = Self::parse_auth(req)?;
        if let Some(session) = req.extensions.get::<Session>() {
            let current = session.nick();
            if auth
                .nick
                .as_ref()
                .is_some_and(|n| names::nick_key(n) != names::nick_key(&current))
            {
                return Err(refusal(
                    ErrorCode::BadRequest,
                    format!("this connection already uses the nick '{current}'"),
                ));
            }
            if !session.sockets().is_empty() {
                return Ok(());
            }
            // Every namespace was left: the nick was released, claim it again (an
            // authenticated session's identity exists by now).
            let login = session.is_authenticated();
            return self.register(session, req, login);
        }
        let nick = auth.nick.ok_or_else(|| {
            refusal(
                ErrorCode::NickRequired,
                "a nick is required (auth: {\"nick\": ...})",
            )
        })?;
        names::validate_nick(&nick).map_err(|e| refusal(ErrorCode::InvalidName, e.to_string()))?;
        (self.limits.check_nick(&nick)).map_err(|e| refusal(ErrorCode::InvalidName, e))?;
        let claim = self
            .authenticate(req.conn.remote.ip(), &nick, auth.password)
            .await?;
        let session = Session::new(&nick, claim != Claim::Guest);
        self.register(session, req, claim == Claim::Login)
    }

    /// Checks or claims the nick's identity.
    async fn authenticate(
        &self,
        ip: IpAddr,
        nick: &str,
        password: Option<String>,
    ) -> Result<Claim, ConnectError> {
        let key = names::nick_key(nick);
        let identity = self.store.identity(&key).await.map_err(internal)?;
        match (identity, password) {
            (Some(identity), Some(password)) => {
                let verified = self
                    .passwords
                    .verify(ip, password, identity.password_hash)
                    .await
                    .map_err(password_refusal)?;
                if verified {
                    Ok(Claim::Login)
                } else {
                    Err(refusal(
                        ErrorCode::WrongPassword,
                        format!("wrong password for '{nick}'"),
                    ))
                }
            }
            (Some(_), None) => Err(refusal(
                ErrorCode::NickClaimed,
                format!("'{nick}' is registered: a password is required"),
            )),
            (None, Some(password)) => {
                if password.is_empty() || password.len() > PASSWORD_MAX {
                    return Err(refusal(
                        ErrorCode::BadRequest,
                        format!("a password has 1 to {PASSWORD_MAX} bytes"),
                    ));
                }
                // The nick's skeletons are held among the registered ones while it is
                // hashed, so two look-alikes registered at once cannot both pass; no hash
                // for a nick that passes for an online user's.
                let reservation = self.reserve_registered_nick(nick).await?;
                self.not_like_an_online_nick(nick)?;
                let registration = self
                    .passwords
                    .hash_new(ip, password.clone())
                    .await
                    .map_err(password_refusal)?;
                let created = self
                    .store
                    .create_identity(
                        &key,
                        Identity {
                            nick: nick.to_owned(),
                            password_hash: registration.hash.clone(),
                        },
                    )
                    .await
                    .map_err(internal)?;
                if created {
                    reservation.keep();
                    registration.done();
                    info!(nick, "nick registered");
                    return Ok(Claim::Registered);
                }
                drop(reservation);
                // Someone registered it a moment ago: check against theirs.
                Box::pin(self.authenticate(ip, nick, Some(password))).await
            }
            (None, None) => {
                self.not_like_a_registered_nick(nick).await?;
                Ok(Claim::Guest)
            }
        }
    }

    /// Refuses a nick that would pass for an online user's (the final check is made again
    /// under the lock in `register`).
    fn not_like_an_online_nick(&self, nick: &str) -> Result<(), ConnectError> {
        match lock(&self.online_nicks).conflict(nick, None) {
            Some(other) => Err(refusal(
                ErrorCode::NickTaken,
                format!("'{nick}' looks like '{other}', who is online"),
            )),
            None => Ok(()),
        }
    }

    /// Checks a new registration against the registered nicks and files it among them at
    /// once; the reservation is withdrawn when dropped unkept.
    async fn reserve_registered_nick<'a>(
        &'a self,
        nick: &str,
    ) -> Result<Reservation<'a>, ConnectError> {
        let index = self.registered_look_alikes().await?;
        let mut guard = lock(index);
        if let Some(other) = guard.conflict(nick, None) {
            return Err(refusal(
                ErrorCode::NickClaimed,
                format!("'{nick}' looks like the registered nick '{other}': choose another"),
            ));
        }
        let filed = guard.insert(nick);
        drop(guard);
        Ok(Reservation {
            index,
            nick: filed.then(|| nick.to_owned()),
        })
    }

    /// The registered nicks by skeleton, read from the store the first time.
    async fn registered_look_alikes(&self) -> Result<&Mutex<LookAlikes>, ConnectError> {
        self.registered_nicks
            .get_or_try_init(|| async {
                let nicks = self.store.registered_nicks().await.map_err(internal)?;
                Ok(Mutex::new(LookAlikes::from_nicks(nicks)))
            })
            .await
    }

    /// Refuses a nick that is not registered but would pass for one that is.
    pub(crate) async fn not_like_a_registered_nick(&self, nick: &str) -> Result<(), ConnectError> {
        let index = self.registered_look_alikes().await?;
        match lock(index).conflict(nick, None) {
            Some(other) => Err(refusal(
                ErrorCode::NickClaimed,
                format!("'{nick}' looks like the registered nick '{other}': choose another"),
            )),
            None => Ok(()),
        }
    }

    /// Puts a session under its nick. `login`: an existing identity proved with its
    /// password, which is let in whatever look-alike is online (two registered nicks may
    /// already look alike); anyone else must not pass for an online user.
    fn register(
        &self,
        session: Arc<Session>,
        req: &ConnectRequest,
        login: bool,
    ) -> Result<(), ConnectError> {
        let nick = session.nick();
        let mut users = lock(&self.users);
        let entry = users.entry(names::nick_key(&nick)).or_default();
        if !entry.iter().any(|s| Arc::ptr_eq(s, &session)) {
            // A nick is one user's; only a registered identity may be connected twice.
            let same_identity =
                session.is_authenticated() && entry.iter().all(|s| s.is_authenticated());
            if !entry.is_empty() && !same_identity {
                return Err(refusal(
                    ErrorCode::NickTaken,
                    format!("nick '{nick}' is in use"),
                ));
            }
            if entry.is_empty() {
                let mut online = lock(&self.online_nicks);
                if let Some(other) = online.conflict(&nick, None).filter(|_| !login) {
                    let message = format!("'{nick}' looks like '{other}', who is online");
                    drop(online);
                    users.remove(&names::nick_key(&nick));
                    return Err(refusal(ErrorCode::NickTaken, message));
                }
                online.insert(&nick);
            }
            entry.push(session.clone());
        }
        drop(users);
        req.extensions.insert(session.clone());
        info!(nick, remote = %req.conn.remote, registered = session.is_authenticated(), "user connected");
        Ok(())
    }

    async fn on_connect(self: Arc<Self>, socket: Socket, auth: Value) {
        let Some(session) = socket.extensions().get::<Session>() else {
            return;
        };
        let first = {
            let mut sockets = lock(&session.sockets);
            sockets.push(socket.clone());
            sockets.len() == 1
        };
        let online = lock(&self.users).len();
        let text = format!(
            "Welcome to {}, {}. {online} user{} online.",
            socket.namespace().name(),
            session.nick(),
            if online == 1 { "" } else { "s" }
        );
        socket.push(&Notice { text });
        // Catch-up: rejoin the rooms the client names and send what it missed.
        let since = serde_json::from_value::<Auth>(auth)
            .ok()
            .and_then(|a| a.since)
            .unwrap_or_default();
        // Each room as a `join` would be: the name rules and the rooms-per-socket limit
        // (rooms in name order); what is refused is named in one notice.
        let mut refused = Vec::new();
        for (room, seq) in since {
            let allowed = names::validate_room(&room)
                .map_err(|e| e.to_string())
                .and_then(|()| self.join_limits(&socket, &room).map_err(|f| f.1));
            if let Err(why) = allowed {
                refused.push((room, why));
                continue;
            }
            if let Err(e) = self
                .attach(&socket, &session, &room, Some(seq), self.catchup_limit)
                .await
            {
                warn!(error = %e, room, "catch-up failed");
            }
        }
        if let Some(text) = since_refusals(&refused) {
            socket.push(&Notice { text });
        }
        if first && session.is_authenticated() {
            self.deliver_queued_dms(&socket, &session).await;
        }
    }

    /// Joins `socket` to `room` inside the store's ordering section, sending it the catch-up
    /// (`message` events, oldest first, and a notice for what was skipped) before any live
    /// message. Returns the catch-up.
    pub(crate) async fn attach(
        &self,
        socket: &Socket,
        session: &Session,
        room: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Catchup, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (s, nick, r) = (socket.clone(), session.nick(), room.to_owned());
        let replay = after.is_some();
        let attach = Box::new(move |c: Catchup| {
            enter_room(&s, nick, &r);
            if replay {
                if c.skipped > 0 {
                    let text = format!(
                        "{} older message{} in {r} not shown",
                        c.skipped,
                        if c.skipped == 1 { "" } else { "s" }
                    );
                    s.push(&Notice { text });
                }
                for m in &c.messages {
                    s.push(m);
                }
            }
            let _ = tx.send(c);
        });
        self.store
            .attach(socket.namespace().name(), room, after, limit, attach)
            .await?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// Sends the direct messages that waited, each asking for an ack; removes each once acked.
    async fn deliver_queued_dms(&self, socket: &Socket, session: &Session) {
        let key = names::nick_key(&session.nick());
        let queued = match self.store.queued_dms(&key).await {
            Ok(q) => q,
            Err(e) => return warn!(error = %e, "cannot read queued direct messages"),
        };
        for dm in queued {
            let wait = socket.emit_with_ack(DirectMessage::EVENT, vec![json!(dm)], DM_ACK_TIMEOUT);
            let (store, key, id) = (self.store.clone(), key.clone(), dm.id.clone());
            // Waiting for the client's ack must not hold up its connection's reader.
            tokio::spawn(async move {
                if wait.await.is_ok()
                    && let Err(e) = store.remove_dm(&key, &id).await
                {
                    warn!(error = %e, "cannot remove a delivered direct message");
                }
            });
        }
    }

    async fn on_disconnect(&self, socket: Socket, reason: &'static str) {
        let Some(session) = socket.extensions().get::<Session>() else {
            return;
        };
        // Its last messages are published (and acknowledged, if it is still there) first.
        session.settled().await;
        let nick = session.nick();
        for room in chat_rooms(&socket) {
            let presence = Presence {
                room: room.clone(),
                nick: nick.clone(),
                action: PresenceAction::Quit,
                previous: None,
            };
            socket.to(engine_room(&room)).push(&presence);
        }
        let mut sockets = lock(&session.sockets);
        sockets.retain(|s| s.sid() != socket.sid());
        if sockets.is_empty() {
            drop(sockets);
            self.release(&nick, &session);
            info!(nick, reason, "user disconnected");
        }
    }

    /// Forgets a session under a nick (the nick is free once no session holds it).
    fn release(&self, nick: &str, session: &Arc<Session>) {
        let mut users = lock(&self.users);
        let key = names::nick_key(nick);
        if let Some(v) = users.get_mut(&key) {
            v.retain(|s| !Arc::ptr_eq(s, session));
            if v.is_empty() {
                users.remove(&key);
                lock(&self.online_nicks).remove(nick);
            }
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
        ns.push(&RoomChange {
            action,
            room: room.to_owned(),
        });
    }

    /// The sessions of the user with this nick (several for an identity on several devices).
    pub(crate) fn sessions(&self, nick: &str) -> Vec<Arc<Session>> {
        lock(&self.users)
            .get(&names::nick_key(nick))
            .cloned()
            .unwrap_or_default()
    }

    /// Sends one stored message to a socket's room except the sender (the publish callback).
    pub(crate) fn publisher(socket: &Socket) -> store::Publish {
        let sender = socket.clone();
        Box::new(move |stored: &ChatMessage| {
            // A ChatMessage always serialises.
            sender.to(engine_room(&stored.room)).push(stored);
        })
    }
}

/// The notice for the rooms of a CONNECT's `since` that were not rejoined, grouped by
/// reason (most share one: the rooms-per-socket limit), a few names each.
fn since_refusals(refused: &[(String, String)]) -> Option<String> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (room, why) in refused {
        match groups.iter_mut().find(|(w, _)| w == why) {
            Some((_, rooms)) => rooms.push(room),
            None => groups.push((why, vec![room])),
        }
    }
    if groups.is_empty() {
        return None;
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(why, rooms)| {
            // Escaped and cut short: a refused name may be anything the client sent.
            let named: Vec<String> = rooms
                .iter()
                .take(SINCE_REFUSALS_NAMED)
                .map(|room| {
                    let short: String = room.chars().take(names::ROOM_MAX).collect();
                    short.escape_debug().to_string()
                })
                .collect();
            let more = rooms.len() - named.len();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("{}{more} ({why})", named.join(", "))
        })
        .collect();
    Some(format!("not rejoined: {}", parts.join("; ")))
}

/// Joins `socket` to a chat room, announcing it to the room's members, unless it is in
/// already. Called inside the store's ordering section (see `store`).
pub(crate) fn enter_room(socket: &Socket, nick: String, room: &str) {
    if socket.rooms().contains(&engine_room(room)) {
        return;
    }
    let presence = Presence {
        room: room.to_owned(),
        nick,
        action: PresenceAction::Join,
        previous: None,
    };
    socket.to(engine_room(room)).push(&presence);
    socket.join(engine_room(room));
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
