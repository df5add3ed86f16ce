//! `chat-server`: parses flags (and their environment variables), reads the optional config
//! file, sets up logging, and runs the server until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use chat_server::config::{FileConfig, Overrides, ServerConfig};
use clap::Parser;
use tracing::info;

/// A Socket.IO v5 compatible chat server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CHAT_LISTEN")]
    listen: Option<SocketAddr>,
    /// TOML config file (namespaces, keys, limits).
    #[arg(long, env = "CHAT_CONFIG")]
    config: Option<PathBuf>,
    /// Milliseconds between server pings.
    #[arg(long, env = "CHAT_PING_INTERVAL_MS")]
    ping_interval_ms: Option<u64>,
    /// Milliseconds a client has to answer a ping.
    #[arg(long, env = "CHAT_PING_TIMEOUT_MS")]
    ping_timeout_ms: Option<u64>,
    /// Milliseconds a new connection has to connect to a namespace.
    #[arg(long, env = "CHAT_CONNECT_TIMEOUT_MS")]
    connect_timeout_ms: Option<u64>,
    /// Milliseconds a client has to send its HTTP upgrade request.
    #[arg(long, env = "CHAT_HANDSHAKE_TIMEOUT_MS")]
    handshake_timeout_ms: Option<u64>,
    /// Largest message in bytes (larger ones close the connection with code 1009).
    #[arg(long, env = "CHAT_MAX_PAYLOAD")]
    max_payload: Option<usize>,
    /// Packets queued per connection before a slow client is disconnected.
    #[arg(long, env = "CHAT_OUTBOX_CAPACITY")]
    outbox_capacity: Option<usize>,
    /// Open connections at most.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Largest single WebSocket frame in bytes (larger ones close the connection with 1009).
    #[arg(long, env = "CHAT_MAX_FRAME_SIZE")]
    max_frame_size: Option<usize>,
    /// Namespaces one connection may join at once (beyond it: CONNECT_ERROR).
    #[arg(long, env = "CHAT_MAX_NAMESPACES")]
    max_namespaces: Option<usize>,
    /// Longest namespace name, in characters (at most 64).
    #[arg(long, env = "CHAT_MAX_NAMESPACE_LEN")]
    max_namespace_len: Option<usize>,
    /// Open connections from one IP address at most (beyond it: HTTP 429).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Rate limit: events a connection may send in a burst.
    #[arg(long, env = "CHAT_RATE_BURST")]
    rate_burst: Option<u32>,
    /// Rate limit: steady events per second per connection (0: no limit).
    #[arg(long, env = "CHAT_RATE_PER_SEC")]
    rate_per_sec: Option<u32>,
    /// Milliseconds over the rate limit before a flooding connection is closed.
    #[arg(long, env = "CHAT_FLOOD_TIMEOUT_MS")]
    flood_timeout_ms: Option<u64>,
    /// Milliseconds the binary attachments of a packet may take to arrive.
    #[arg(long, env = "CHAT_ATTACHMENT_TIMEOUT_MS")]
    attachment_timeout_ms: Option<u64>,
    /// Chat rooms one socket may be in at once.
    #[arg(long, env = "CHAT_MAX_ROOMS_PER_SOCKET")]
    max_rooms_per_socket: Option<usize>,
    /// Longest room name, in characters (at most 64).
    #[arg(long, env = "CHAT_MAX_ROOM_LEN")]
    max_room_len: Option<usize>,
    /// Longest nick, in characters (at most 32).
    #[arg(long, env = "CHAT_MAX_NICK_LEN")]
    max_nick_len: Option<usize>,
    /// Longest message text, in characters (at most 4000).
    #[arg(long, env = "CHAT_MAX_TEXT_LEN")]
    max_text_len: Option<usize>,
    /// Serve wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "CHAT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, env = "CHAT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where messages are kept: `sqlite` (durable, the default) or `memory` (lost on exit).
    #[arg(long, env = "CHAT_STORE", value_parser = ["sqlite", "memory"])]
    store: Option<String>,
    /// The SQLite database file [default: <data dir>/chat-server/chat.db].
    #[arg(long, env = "CHAT_DATA")]
    data: Option<PathBuf>,
    /// Secret for HS256 tokens (namespaces declared with `token = true`).
    #[arg(long, env = "CHAT_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (stderr is a pipe whose reader died) is dropped:
        // by default tracing-subscriber reports it with `eprintln!`, which panics on the same
        // broken pipe, in whichever task was logging (a connection, or the shutdown).
        .log_internal_errors(false)
        .init();
    let args = Args::parse();
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let flags = Overrides {
        listen: args.listen,
        ping_interval_ms: args.ping_interval_ms,
        ping_timeout_ms: args.ping_timeout_ms,
        connect_timeout_ms: args.connect_timeout_ms,
        handshake_timeout_ms: args.handshake_timeout_ms,
        max_payload: args.max_payload,
        outbox_capacity: args.outbox_capacity,
        max_connections: args.max_connections,
        max_frame_size: args.max_frame_size,
        max_namespaces: args.max_namespaces,
        max_namespace_len: args.max_namespace_len,
        max_connections_per_ip: args.max_connections_per_ip,
        rate_burst: args.rate_burst,
        rate_per_sec: args.rate_per_sec,
        flood_timeout_ms: args.flood_timeout_ms,
        attachment_timeout_ms: args.attachment_timeout_ms,
        max_rooms_per_socket: args.max_rooms_per_socket,
        max_room_len: args.max_room_len,
        max_nick_len: args.max_nick_len,
        max_text_len: args.max_text_len,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        store: args.store,
        data: args.data,
        token_secret: args.token_secret,
    };
    let config = ServerConfig::resolve(flags, file)?;
    let server = chat_server::start(config.clone())
        .await
        .context("cannot start")?;
    info!("listening on {}", server.local_addr());
    shutdown_signal().await;
    info!("shutting down");
    server.shutdown().await;
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
