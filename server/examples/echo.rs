//! A plain WebSocket echo server on the engine's own accept path and WebSocket
//! configuration (`engine::listener::accept_websocket`, `websocket_config`), for the
//! Autobahn conformance cases (`scripts/autobahn.sh`): the Socket.IO endpoint itself does not
//! echo, so this is how the WebSocket layer it runs on is tested.
//!
//! Any path is accepted (no Engine.IO checks); limits are raised to the cases' 16 MiB. Text
//! and binary messages come back as they arrived; protocol errors close with the same codes
//! as a Socket.IO connection (1002, 1007 invalid UTF-8, 1009 too big).
//!
//! `cargo run -p chat-server --example echo -- [ADDR]` (default `127.0.0.1:9001`).

use std::time::Duration;

use chat_server::engine::listener::{accept_websocket, parse_websocket_upgrade, websocket_config};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

/// The Autobahn cases send messages of up to 16 MiB.
const LIMIT: usize = 16 * 1024 * 1024;
/// How long a client may take to send its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection is closed after this long (every loop is bounded in time).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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
            let config = websocket_config(LIMIT, LIMIT);
            if let Some((ws, _)) =
                accept_websocket(stream, HANDSHAKE_TIMEOUT, config, parse_websocket_upgrade).await
            {
                echo(ws).await;
            }
        });
    }
}

async fn echo<S>(mut ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let next = match tokio::time::timeout(IDLE_TIMEOUT, ws.next()).await {
            Ok(Some(next)) => next,
            _ => return,
        };
        let reply = match next {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => message,
            // Pings are answered and the close handshake completed by tungstenite itself.
            Ok(_) => continue,
            Err(e) => {
                let code = match e {
                    Error::Capacity(_) => 1009,
                    Error::Utf8(_) => 1007,
                    Error::Protocol(_) => 1002,
                    _ => return,
                };
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: "".into(),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(3),
                    ws.send(Message::Close(Some(frame))),
                )
                .await;
                return;
            }
        };
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}
