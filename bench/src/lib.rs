//! `chat-bench`: the load generator that drives `chat-server` and its peers (Node Socket.IO,
//! socketioxide, the bare tokio-tungstenite ceiling) through the same scenarios, and writes
//! the results into `BENCHMARKS.md`.
//!
//! It speaks Socket.IO v5 over WebSocket with `chat-protocol`'s codecs (or raw WebSocket
//! frames for the bare peer), binds each client socket to one of several loopback source
//! addresses (127.0.0.2, 127.0.0.3, ...) before connecting, and reads the server's memory and
//! CPU from `/proc` beside its own CPU, because generator and server share the cores.
//!
//! Modules:
//! - [`conn`]: one connection: source address, WebSocket (or polling) and Socket.IO
//!   handshakes, join; [`conn::Client`] is either transport behind the same calls.
//! - [`fanout`]: R rooms of M members, P publishers at a fixed rate; loss, duplicates,
//!   reordering per (publisher, seq) and per receiver; latency histogram. Members spread over
//!   one server or the nodes of a cluster, latency kept apart for the publisher's node and
//!   the others.
//! - [`connections`]: N idle connections over several worker processes; RSS per connection.
//! - [`churn`]: connect+disconnect cycles per second.
//! - [`procfs`]: `/proc` readings (RSS, CPU seconds, the machine).
//! - [`redis_stats`]: a cluster's Redis read around a fan-out run: commands (by command) and
//!   Redis CPU per message, net of the idle rate.
//! - [`report`]: results file -> the generated part of `BENCHMARKS.md` and the SVG chart.
//! - [`ws`]: the client side of WebSocket the generator speaks (lighter than tungstenite's).
//! - [`polling`]: the client side of Engine.IO long-polling (`--transport polling`): a held
//!   GET loop and POSTs over two keep-alive HTTP/1.1 connections.
//!
//! Where to add things: a new scenario is a module with a `Config`, a `Result` that
//! serialises to one JSON line (with `scenario`, `server` and `command`), a subcommand in
//! `main.rs`, a step in `bench/run.sh`, and a table in `report.rs`. A new server is a start
//! line and a name in `bench/run.sh`; if it speaks Socket.IO it needs `join {room}` (acked)
//! and `message {room, text}` broadcast to the room, sender excluded.

pub mod churn;
pub mod conn;
pub mod connections;
pub mod fanout;
pub mod polling;
pub mod procfs;
pub mod redis_stats;
pub mod report;
pub mod ws;

/// This process's command line, recorded with every result so a run can be repeated.
pub fn command_line() -> String {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let program = std::path::Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(program);
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}
