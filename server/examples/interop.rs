//! A small engine app for the interoperability tests in `tests/interop` (official
//! `socket.io-client` and `python-socketio` against our engine). Every broadcast operator is
//! reachable from a client event:
//!
//! - `/` and `/admin` (identical): `join {room}`, `leave {room}`, `to-rooms {rooms,event,data}`,
//!   `except {rooms,except,event,data}`, `broadcast-room {room,event,data}` (sender excluded),
//!   `broadcast {event,data}` (all but the sender), `echo-ack` (acks its arguments),
//!   `server-ack {event,data}` (asks the client for an ack, reports it as `server-ack-result`).
//!   Each acks `"done"` after its broadcast is queued.
//! - `/secure`: refuses any CONNECT whose auth is not `{"token":"letmein"}`.
//!
//! `cargo run -p chat-server --example interop -- --port 0` prints `listening on ADDR`.

use std::net::SocketAddr;
use std::time::Duration;

use chat_server::engine::{ConnectError, Engine, EngineConfig, Event, Handlers, Socket};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
}

fn arg(event: &Event) -> Value {
    event.arg(0).unwrap_or(Value::Null)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn event_and_data(v: &Value) -> (String, Value) {
    (
        v["event"].as_str().unwrap_or("event").to_owned(),
        v["data"].clone(),
    )
}

fn done(event: Event) {
    if let Some(ack) = event.ack {
        let _ = ack.send(vec![json!("done")]);
    }
}

fn room_handlers() -> Handlers {
    Handlers::new()
        .on("join", |socket: Socket, event| async move {
            if let Some(room) = arg(&event)["room"].as_str() {
                socket.join(room);
            }
            done(event);
        })
        .on("leave", |socket: Socket, event| async move {
            if let Some(room) = arg(&event)["room"].as_str() {
                socket.leave(room);
            }
            done(event);
        })
        .on("to-rooms", |socket: Socket, event| async move {
            let a = arg(&event);
            let (name, data) = event_and_data(&a);
            let op = strings(&a["rooms"])
                .into_iter()
                .fold(socket.namespace().broadcast(), |op, r| op.to(r));
            op.emit(&name, vec![data]);
            done(event);
        })
        .on("except", |socket: Socket, event| async move {
            let a = arg(&event);
            let (name, data) = event_and_data(&a);
            let mut op = socket.namespace().broadcast();
            op = strings(&a["rooms"]).into_iter().fold(op, |op, r| op.to(r));
            op = strings(&a["except"])
                .into_iter()
                .fold(op, |op, r| op.except(r));
            op.emit(&name, vec![data]);
            done(event);
        })
        .on("broadcast-room", |socket: Socket, event| async move {
            let a = arg(&event);
            let (name, data) = event_and_data(&a);
            if let Some(room) = a["room"].as_str() {
                socket.to(room).emit(&name, vec![data]);
            }
            done(event);
        })
        .on("broadcast", |socket: Socket, event| async move {
            let (name, data) = event_and_data(&arg(&event));
            socket.broadcast().emit(&name, vec![data]);
            done(event);
        })
        .on("echo-ack", |_socket, event| async move {
            let args = event.args();
            if let Some(ack) = event.ack {
                let _ = ack.send_binary(args, event.attachments);
            }
        })
        .on("server-ack", |socket: Socket, event| async move {
            let (name, data) = event_and_data(&arg(&event));
            let reply = socket.emit_with_ack(&name, vec![data], Duration::from_secs(2));
            // Waiting for the client's ack must not hold up this connection's reader.
            tokio::spawn(async move {
                let result = match reply.await {
                    Ok(r) => r.args,
                    Err(e) => vec![json!({"error": e.to_string()})],
                };
                let _ = socket.emit("server-ack-result", result);
            });
            done(event);
        })
}

fn engine() -> Engine {
    let engine = Engine::new(EngineConfig::default());
    engine.namespace("/", room_handlers());
    engine.namespace("/admin", room_handlers());
    engine.namespace(
        "/secure",
        Handlers::new().middleware(|req| async move {
            if req.auth.get("token").and_then(Value::as_str) == Some("letmein") {
                Ok(())
            } else {
                Err(ConnectError::new("not authorized").with_data(json!({"reason": "bad token"})))
            }
        }),
    );
    engine
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server =
        chat_server::serve_engine(engine(), SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    println!("listening on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
