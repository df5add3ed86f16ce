//! A plain WebSocket echo server on the engine's own accept path, WebSocket configuration
//! and write path (`engine::listener::accept_upgrade`, `engine::wire` and its `websocket_config`:
//! tungstenite reads, frames are written straight to the socket), for the Autobahn
//! conformance cases (`scripts/autobahn.sh`): the Socket.IO endpoint itself does not echo, so
//! this is how the WebSocket layer it runs on is tested.
//!
//! Any path is accepted (no Engine.IO checks); limits are raised to the cases' 16 MiB. Text
//! and binary messages come back as they arrived; protocol errors close with the same codes
//! as a Socket.IO connection (1002, 1007 invalid UTF-8, 1009 too big).
//!
//! `cargo run -p chat-server --example echo -- [ADDR]` (default `127.0.0.1:9001`).

use std::time::Duration;

use chat_server::engine::listener::{accept_upgrade, parse_websocket_upgrade};
use chat_server::engine::wire;
use chat_server::engine::wire::websocket_config;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error, Message};

/// The Autobahn cases send messages of up to 16 MiB.
const LIMIT: usize = 16 * 1024 * 1024;
/// How long a client may take to send its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection is closed after this long (every loop is bounded in time).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a close may take to write.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo: listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            if let Some((stream, leftover, _)) =
                accept_upgrade(stream, HANDSHAKE_TIMEOUT, parse_websocket_upgrade).await
            {
                echo(stream, leftover).await;
            }
        });
    }
}

async fn echo(stream: TcpStream, leftover: Vec<u8>) {
    let (read, mut write, control) = wire::split(stream);
    let config = websocket_config(LIMIT, LIMIT);
    let mut ws =
        WebSocketStream::from_partially_read(read, leftover, Role::Server, Some(config)).await;
    let mut control_bytes = Vec::new();
    let mut gather = Vec::new();
    let mut close_code = 1000;
    loop {
        let next = match tokio::time::timeout(IDLE_TIMEOUT, ws.next()).await {
            Ok(Some(next)) => next,
            _ => break,
        };
        // Pings are answered and the peer's close is answered by tungstenite; those answers
        // are control bytes, written before the next frame.
        let (opcode, payload) = match &next {
            Ok(Message::Text(text)) => (wire::OP_TEXT, text.as_bytes()),
            Ok(Message::Binary(bytes)) => (wire::OP_BINARY, &bytes[..]),
            Ok(Message::Close(_)) => break,
            Ok(_) => {
                // tungstenite queues a pong when it returns the ping and writes it on its
                // next read or flush: flushed now, so it does not wait for the next frame.
                let _ = ws.flush().await;
                control.take(&mut control_bytes);
                if wire::write_frames(&mut write, &mut gather, &control_bytes, [])
                    .await
                    .is_err()
                {
                    return;
                }
                control_bytes.clear();
                continue;
            }
            Err(e) => {
                let code = match e {
                    Error::Capacity(_) => 1009,
                    Error::Utf8(_) => 1007,
                    Error::Protocol(_) => 1002,
                    _ => return,
                };
                close_code = code;
                break;
            }
        };
        control.take(&mut control_bytes);
        if wire::write_frames(&mut write, &mut gather, &control_bytes, [(opcode, payload)])
            .await
            .is_err()
        {
            return;
        }
        control_bytes.clear();
    }
    // The peer closed, broke the protocol, or went idle: tungstenite's answer to a close, if
    // it wrote one, else ours.
    let _ = ws.flush().await;
    control.take(&mut control_bytes);
    if !wire::contains_close(&control_bytes) {
        control_bytes.extend(wire::close_frame(close_code, ""));
    }
    let _ = tokio::time::timeout(
        CLOSE_GRACE,
        wire::write_frames(&mut write, &mut gather, &control_bytes, []),
    )
    .await;
    let _ = tokio::time::timeout(CLOSE_GRACE, write.shutdown()).await;
}
