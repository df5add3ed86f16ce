//! The socketioxide peer of `chat-bench`: the same two events as the chat server's bench
//! path, and nothing else. `join {room}` joins and acks `{ok:true, room}`; `message {room, text}`
//! is broadcast to the room (sender excluded) as `message {room, from, text}` and acked
//! `{ok:true}`. Listens on 127.0.0.1:<port> (first argument, default 3001).

use serde::Deserialize;
use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

#[derive(Debug, Deserialize)]
struct Join {
    room: String,
}

#[derive(Debug, Deserialize)]
struct Message {
    room: String,
    text: String,
}

#[derive(Debug, Clone)]
struct Nick(std::sync::Arc<str>);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(3001);
    // A large per-socket buffer, like chat-server's --outbox-capacity: a fan-out burst must
    // not be dropped by the peer's own queue limit.
    let (layer, io) = SocketIo::builder().max_buffer_size(65_536).build_layer();
    io.ns(
        "/",
        async |s: SocketRef, Data(auth): Data<serde_json::Value>| {
            let nick = auth
                .get("nick")
                .and_then(|n| n.as_str())
                .unwrap_or("anon")
                .to_owned();
            let nick = Nick(std::sync::Arc::from(nick.as_str()));
            s.on(
                "join",
                async |s: SocketRef, Data(j): Data<Join>, ack: AckSender| {
                    s.join(j.room.clone());
                    let _ = ack.send(&json!({"ok": true, "room": j.room}));
                },
            );
            s.on(
                "message",
                move |s: SocketRef, Data(m): Data<Message>, ack: AckSender| {
                    let from = nick.0.clone();
                    async move {
                        let out = json!({"room": m.room, "from": &*from, "text": m.text});
                        let _ = s.to(m.room).emit("message", &out).await;
                        let _ = ack.send(&json!({"ok": true}));
                    }
                },
            );
        },
    );
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
