//! The chat application, built on the engine's handlers.
//!
//! - this file: [`build`] (an engine with the chat namespaces from the config), the shared
//!   [`ChatApp`] state (who is online) and the handlers it registers on every namespace;
//! - `session`: [`Session`], one connected user (nick, sockets, `message` slots);
//! - `middleware`: the connect middleware (namespace key, token, nick and password, look-alike
//!   nicks) and its CONNECT_ERRORs; `auth`: the bounded password pool; `look_alike`: nick
//!   skeletons;
//! - `lifecycle`: connect (catch-up with `since`, direct messages that waited), disconnect,
//!   room lifecycle events;
//! - [`handlers`]: one method per client event (`join`, `message`, `dm`, ...);
//! - [`moderation`]: server admins and room operators, bans, mutes, kicks, message deletion
//!   (the functions an admin API calls take an [`moderation::Actor`]);
//! - `reply`: typed acks (each request's reply type) and typed pushes (`Push::push`, the
//!   event's name from its type);
//! - [`store`]: the `Store` trait (the `RoomLog`, a sequenced log per room, and the state
//!   beside it) and the in-memory store; [`sqlite`]: the durable store
//!   (its log's newest messages wait in memory for indexing in `unindexed`); [`redis`]: the
//!   store every node of a cluster shares (`--store redis`, [`build_cluster`]);
//! - `search`: the `search` request (its budget, its concurrency); `phrase`: a search text
//!   as words, for FTS5 and for the scans;
//! - [`token`]: HS256 tokens for namespaces that require one;
//! - [`admin`]: what the admin API does to the chat (list users, kick, notices);
//! - [`presence`]: in cluster mode, what a node tells the others about its users and rooms
//!   (the store writes it on its heartbeat) and reads back about theirs (`whois`, `who`,
//!   `rooms`, the admin API);
//! - [`control`]: in cluster mode, the commands a node sends the others to act on their
//!   sockets (kicks, a ban's removals, disconnects).
//!
//! Chat rooms live in the engine as rooms named `#<room>`, so they can never collide with the
//! own-id room of a socket.

pub mod admin;
mod auth;
mod budget;
pub mod control;
pub mod handlers;
mod lifecycle;
mod look_alike;
mod middleware;
pub mod moderation;
mod phrase;
pub mod presence;
pub mod redis;
mod reply;
mod search;
mod session;
pub mod sqlite;
pub mod store;
pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_protocol::events::{
    self, ChatMessage, ConnectErrorData, ErrorCode, Notice, Presence, PresenceAction, ServerEvent,
};
use chat_protocol::names;
use regex::Regex;
use serde_json::json;

use crate::config::{RedisConfig, ServerConfig, StoreConfig};
use crate::engine::{ConnectRequest, Engine, Handlers, RateLimitReplies, Socket, lock};
use look_alike::LookAlikes;
use middleware::check_key;
use reply::Push;
pub use reply::{Failure, Outcome};
pub use session::Session;
use store::{MemoryStore, Store, StoreError};

/// Engine room name of a chat room.
pub(crate) fn engine_room(room: &str) -> String {
    format!("#{room}")
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
    /// Connections in each namespace (for the welcome's count), by namespace name.
    namespace_users: Mutex<HashMap<String, usize>>,
    /// The config's server admins, as nick keys.
    admins: std::collections::HashSet<String>,
    /// Operators, bans and mutes of the rooms with members (see `moderation`).
    rules: moderation::RulesCache,
    /// Taken by loads into `rules` and by moderation writes, so a load never caches what a
    /// write just changed (never held with `rules`).
    rules_io: tokio::sync::Mutex<()>,
    /// A permit per search running ([`search::SEARCHES_AT_ONCE`]).
    searches: tokio::sync::Semaphore,
    /// The `limits` event every socket gets after its CONNECT.
    announced: events::Limits,
    /// In cluster mode, where commands to the other nodes go (`control`).
    peers: std::sync::OnceLock<control::Peers>,
    /// In cluster mode, this node's id.
    node: std::sync::OnceLock<String>,
    /// The `room` announcements made in each namespace this second (`lifecycle`).
    room_announcements: Mutex<lifecycle::Announcements>,
}

/// Builds an engine serving the chat as configured, with the configured store.
pub fn build(config: &ServerConfig) -> Result<Engine, StoreError> {
    build_app(config).map(|(engine, _)| engine)
}

/// [`build`], also handing out the chat's state, whose moderation functions
/// ([`ChatApp::kick`], [`ChatApp::ban`], ...) an admin API calls with
/// [`moderation::Actor::server`].
pub fn build_app(config: &ServerConfig) -> Result<(Engine, Arc<ChatApp>), StoreError> {
    let store: Arc<dyn Store> = match &config.store {
        StoreConfig::Memory => Arc::new(MemoryStore::new(config.room_capacity)),
        StoreConfig::Redis(_) => {
            return Err(StoreError::Backend(
                "the redis store connects asynchronously: use build_cluster".into(),
            ));
        }
        StoreConfig::Sqlite(path) => Arc::new(
            sqlite::SqliteStore::open(path, config.retention.clone()).map_err(|e| match e {
                StoreError::Backend(why) => {
                    StoreError::Backend(format!("{}: {why}", path.display()))
                }
                other => other,
            })?,
        ),
    };
    Ok(build_app_with_store(config, store))
}

/// In cluster mode, how often a node forgets its cached room rules (operators, bans,
/// mutes), so that what another node changed holds here within this time.
pub const RULES_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Builds an engine serving the chat as one node of a cluster on Redis (`--store redis`):
/// connects to Redis (an error naming the URL, without its password, when it cannot), says
/// in the log what an acknowledgement means there, and wires the store's delivery of other
/// nodes' messages to this node's sockets. Also hands out the chat's state (see
/// [`build_app`]).
pub async fn build_cluster(
    config: &ServerConfig,
    redis: &RedisConfig,
) -> Result<(Engine, Arc<ChatApp>), StoreError> {
    let store = Arc::new(redis::RedisStore::connect(&redis.url, redis.max_messages).await?);
    match store.durability() {
        Ok(()) => tracing::info!(
            redis = %redis.url,
            node = store.node(),
            "cluster mode: redis has appendfsync always, an acknowledged message is on its disk"
        ),
        Err(why) => tracing::warn!(redis = %redis.url, node = store.node(), "{why}"),
    }
    let fanout = crate::cluster::adapter::Fanout::start(&store);
    let (engine, app) = build_on(
        Engine::with_adapter(config.engine.clone(), fanout.factory()),
        config,
        store.clone(),
    );
    let here = engine.clone();
    store.set_has_members(Arc::new(move |namespace: &str, room: &str| {
        here.get_namespace(namespace).is_some_and(|ns| {
            !ns.adapter()
                .sockets(&crate::engine::BroadcastOptions {
                    rooms: vec![engine_room(room)],
                    ..Default::default()
                })
                .is_empty()
        })
    }));
    let (of, app_of) = (engine.clone(), Arc::downgrade(&app));
    store.set_snapshot(Arc::new(move || {
        app_of
            .upgrade()
            .map(|app| app.snapshot(&of))
            .unwrap_or_default()
    }));
    let to_peers = fanout.clone();
    app.set_peers(
        store.node(),
        Arc::new(move |namespace: &str, json: String| {
            to_peers.send_control(namespace, json);
        }),
    );
    let (on, app_on) = (engine.clone(), Arc::downgrade(&app));
    fanout.set_control(Arc::new(move |json: &str| {
        if let Some(app) = app_on.upgrade() {
            app.apply_control(&on, json);
        }
    }));
    let (gone, app_gone) = (engine.clone(), Arc::downgrade(&app));
    store.set_gone(Arc::new(
        move |namespace: &str, room: &str, nick: &str, node: &str, back: bool| {
            if let Some(app) = app_gone.upgrade() {
                app.node_presence(&gone, namespace, room, nick, node, back);
            }
        },
    ));
    // Another node's bans, mutes and operators are in Redis, not in this node's rules
    // cache: it is read again every RULES_REFRESH.
    let rules_of = Arc::downgrade(&app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RULES_REFRESH);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(app) = rules_of.upgrade() else {
                return;
            };
            app.forget_all_rules();
        }
    });
    let weak = engine.clone();
    store.set_delivery(Arc::new(move |namespace: &str, message: &ChatMessage| {
        if let Some(ns) = weak.get_namespace(namespace) {
            // The other nodes got it from the store too: this node's sockets only.
            ns.to(engine_room(&message.room)).local().push(message);
        }
    }));
    Ok((engine, app))
}

pub fn build_with_store(config: &ServerConfig, store: Arc<dyn Store>) -> Engine {
    build_app_with_store(config, store).0
}

/// [`build_with_store`], also handing out the chat's state (see [`build_app`]).
pub fn build_app_with_store(
    config: &ServerConfig,
    store: Arc<dyn Store>,
) -> (Engine, Arc<ChatApp>) {
    build_on(Engine::new(config.engine.clone()), config, store)
}

/// The chat's namespaces and handlers on `engine` (made with the adapter it needs).
fn build_on(
    engine: Engine,
    config: &ServerConfig,
    store: Arc<dyn Store>,
) -> (Engine, Arc<ChatApp>) {
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
        namespace_users: Mutex::new(HashMap::new()),
        online_nicks: Mutex::default(),
        registered_nicks: tokio::sync::OnceCell::new(),
        join_history: config.join_history,
        catchup_limit: config.catchup_limit,
        token_secret: config.token_secret.clone(),
        passwords: auth::Passwords::sized_to_cores(),
        limits: config.limits.clone(),
        admins: moderation::admin_keys(&config.admins),
        rules: moderation::RulesCache::default(),
        rules_io: tokio::sync::Mutex::new(()),
        searches: tokio::sync::Semaphore::new(search::SEARCHES_AT_ONCE),
        announced: events::Limits {
            max_text_len: config.limits.max_text_len,
            max_nick_len: config.limits.max_nick_len,
            max_room_len: config.limits.max_room_len,
            max_rooms: config.limits.max_rooms_per_socket,
            events_per_sec: config.engine.rate_per_sec,
            events_burst: config.engine.rate_burst,
            max_search_len: search::SEARCH_TEXT_MAX,
        },
        peers: std::sync::OnceLock::new(),
        node: std::sync::OnceLock::new(),
        room_announcements: Mutex::default(),
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
    (engine, app)
}

impl ChatApp {
    /// The store, without keeping it open (for a shutdown to see it closed).
    pub fn store_handle(&self) -> std::sync::Weak<dyn Store> {
        Arc::downgrade(&self.store)
    }
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
            // A ChatMessage always serialises. Local: a store shared by several processes
            // brings its messages to the others itself (in `seq` order).
            sender.to(engine_room(&stored.room)).local().push(stored);
        })
    }
}

/// Joins `socket` to a chat room, announcing it to the room's members, unless it is in
/// already. Called inside the store's ordering section (see `store`).
pub(crate) fn enter_room(store: &dyn Store, socket: &Socket, nick: String, room: &str) {
    if socket.rooms().contains(&engine_room(room)) {
        return;
    }
    store.note_member(socket.namespace().name(), room, &nick, true);
    let presence = Presence {
        room: room.to_owned(),
        nick,
        action: PresenceAction::Join,
        previous: None,
        reason: None,
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
