//! `chat-server`: a Socket.IO v5 compatible realtime engine and the chat application on it.
//!
//! Modules:
//! - [`engine`]: the generic realtime layer, the `chat-engine` crate re-exported (listener,
//!   WebSocket and long-polling sessions, namespaces, rooms, broadcast, acks, the `Adapter`
//!   seam). It knows nothing about chat: a crate of its own, so the compiler checks that.
//! - [`chat`]: the chat application: nicks, rooms, messages, DMs, topics, presence, built on
//!   engine handlers; its storage sits behind the [`chat::store::Store`] trait (whose
//!   [`chat::store::RoomLog`], a sequenced log per room, orders every room's messages).
//! - [`cluster`]: cluster mode's fan-out across nodes (the engine's adapter on Redis
//!   pub/sub); the shared room logs are the Redis store's (`chat::redis`).
//! - [`config`]: the server configuration (flags, environment, TOML file, defaults).
//! - [`cli`]: the binary's whole command line: the server's flags and the subcommands
//!   (`completions`, `manpage`, `admin`) beside them.
//! - [`web`]: the web chat page (`server/web/`), compiled in and served at `/`.
//! - [`admin`]: the admin listener (`/metrics`, `/healthz`, `/readyz`, the admin API behind
//!   a bearer token) and `chat-server admin <verb>`, its client.
//! - [`metrics`]: what `/metrics` shows (the engine's counters, the chat's, the store's).
//!
//! [`start`] binds and runs a whole server in-process (what `main.rs` and the tests use).
//! Where to add things: a new chat event goes in `chat/handlers.rs` (and `chat-protocol`);
//! a protocol-level behaviour goes in the engine crate's `connection/` (`engine/src`).

pub mod admin;
pub mod chat;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod web;
pub use chat_engine as engine;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use admin::{AdminServer, AdminState, Health};
pub use config::{NamespaceConfig, ServerConfig};
pub use engine::{Engine, EngineConfig};

/// A server running on this process.
pub struct RunningServer {
    addr: SocketAddr,
    engine: Engine,
    accept: JoinHandle<()>,
    /// Ready, starting or draining (`/readyz`).
    health: Arc<Health>,
    /// The admin listener, when `admin_listen` is set.
    admin: Option<AdminServer>,
    /// The chat's store, to see it closed (its file unlocked) before `shutdown` returns.
    store: Option<std::sync::Weak<dyn chat::store::Store>>,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the admin listener listens, if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::local_addr)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The first step of a graceful stop: `/readyz` answers 503 from now on, while every
    /// connection is still served (and new ones accepted) until [`RunningServer::shutdown`].
    pub fn drain(&self) {
        self.health.set_draining();
    }

    /// Stops accepting, closes every connection with code 1001 (a long-polling session's
    /// held GET gets the Engine.IO close packet) and waits for them; then stops the admin
    /// listener.
    pub async fn shutdown(self) {
        self.health.set_draining();
        self.engine.shutdown().await;
        let _ = self.accept.await;
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
        drop(self.engine);
        // The store closes (the SQLite writer stops, the lock file is let go) when its last
        // holder, a connection's task still ending, lets it go: waited for, at most 5 s, so
        // a new server on the same file can start at once.
        if let Some(store) = self.store {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while store.strong_count() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Binds `config.listen` and serves the chat application on it, and the admin listener on
/// `config.admin_listen` when set (bound first, so `/readyz` says "starting" until the chat
/// listens).
pub async fn start(config: ServerConfig) -> std::io::Result<RunningServer> {
    let (engine, app) = match &config.store {
        config::StoreConfig::Redis(redis) => chat::build_cluster(&config, redis).await,
        _ => chat::build_app(&config),
    }
    .map_err(std::io::Error::other)?;
    if config.web {
        engine.set_http_routes(web::routes());
    }
    let tls = match &config.tls {
        Some(t) => Some(engine::listener::tls_acceptor(&t.cert, &t.key)?),
        None => None,
    };
    let store = app.store_handle();
    let health = Arc::new(Health::default());
    let admin = match config.admin_listen {
        Some(addr) => {
            if config.admin_token.is_none() {
                tracing::info!("admin API off: no admin_token (metrics and health still served)");
            }
            let state = AdminState::new(
                engine.clone(),
                app,
                health.clone(),
                config.admin_token.as_deref(),
                config.limits.max_text_len,
            );
            Some(AdminServer::start(addr, state).await?)
        }
        None => None,
    };
    let mut server = match serve_engine_with(engine, config.listen, tls).await {
        Ok(server) => server,
        Err(e) => {
            if let Some(admin) = admin {
                admin.stop().await;
            }
            return Err(e);
        }
    };
    server.health = health;
    server.health.set_ready();
    server.admin = admin;
    server.store = Some(store);
    Ok(server)
}

/// What a failed bind says: the address, the cause in words, and what to do about it.
fn listen_error(addr: SocketAddr, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => {
            format!("cannot listen on {addr} (in use): choose another with --listen")
        }
        ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr} (no such local address): choose another with --listen")
        }
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr} (permission denied: ports below 1024 need privileges): choose another with --listen"
        ),
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

/// Binds `addr` and serves any engine on it (the examples use this).
pub async fn serve_engine(engine: Engine, addr: SocketAddr) -> std::io::Result<RunningServer> {
    serve_engine_with(engine, addr, None).await
}

/// Like [`serve_engine`]; with `tls`, connections are TLS (`wss://`).
pub async fn serve_engine_with(
    engine: Engine,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), listen_error(addr, &e)))?;
    let addr = listener.local_addr()?;
    let accept = tokio::spawn(engine::listener::serve_with(engine.clone(), listener, tls));
    let health = Arc::new(Health::default());
    health.set_ready();
    Ok(RunningServer {
        addr,
        engine,
        accept,
        health,
        admin: None,
        store: None,
    })
}
