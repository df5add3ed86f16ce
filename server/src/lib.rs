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
//!   (`completions`, `manpage`) beside them.
//! - [`web`]: the web chat page (`server/web/`), compiled in and served at `/`.
//!
//! [`start`] binds and runs a whole server in-process (what `main.rs` and the tests use).
//! Where to add things: a new chat event goes in `chat/handlers.rs` (and `chat-protocol`);
//! a protocol-level behaviour goes in the engine crate's `connection/` (`engine/src`).

pub mod chat;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod web;
pub use chat_engine as engine;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{NamespaceConfig, ServerConfig};
pub use engine::{Engine, EngineConfig};

/// A server running on this process.
pub struct RunningServer {
    addr: SocketAddr,
    engine: Engine,
    accept: JoinHandle<()>,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stops accepting, closes every connection with code 1001 and waits for them.
    pub async fn shutdown(self) {
        self.engine.shutdown().await;
        let _ = self.accept.await;
    }
}

/// Binds `config.listen` and serves the chat application on it.
pub async fn start(config: ServerConfig) -> std::io::Result<RunningServer> {
    let engine = match &config.store {
        config::StoreConfig::Redis(redis) => chat::build_cluster(&config, redis).await,
        _ => chat::build(&config),
    }
    .map_err(std::io::Error::other)?;
    if config.web {
        engine.set_http_routes(web::routes());
    }
    let tls = match &config.tls {
        Some(t) => Some(engine::listener::tls_acceptor(&t.cert, &t.key)?),
        None => None,
    };
    serve_engine_with(engine, config.listen, tls).await
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
    Ok(RunningServer {
        addr,
        engine,
        accept,
    })
}
