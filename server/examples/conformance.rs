//! The engine configured as the official Socket.IO protocol test-suite expects: port 3000 by
//! default, pingInterval 300, pingTimeout 200, maxPayload 1000000, connectTimeout 1000, CORS
//! for any origin; namespaces `/` and `/custom` each emit `auth` with the CONNECT payload on connect; on `/`,
//! `message` is echoed back as `message-back` with all arguments (binary too) and
//! `message-with-ack` is acknowledged with all arguments.
//!
//! It also shows the engine used as a library, with no chat in it:
//! `cargo run -p chat-server --example conformance -- --port 3000`.

use std::net::SocketAddr;
use std::time::Duration;

use chat_server::engine::{CorsOrigins, Engine, EngineConfig, Handlers, Socket};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 3000)]
    port: u16,
}

fn emit_auth(socket: Socket, auth: serde_json::Value) -> impl std::future::Future<Output = ()> {
    let _ = socket.emit("auth", vec![auth]);
    std::future::ready(())
}

pub fn engine() -> Engine {
    let engine = Engine::new(EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        connect_timeout: Duration::from_millis(1000),
        // The reference server's `cors: { origin: "*" }`, for the suite's browser page.
        cors_origins: CorsOrigins::Any,
        ..EngineConfig::default()
    });
    let root = Handlers::new()
        .on_connect(emit_auth)
        .on("message", |socket, event| async move {
            let _ = socket.emit_binary("message-back", event.args(), event.attachments);
        })
        .on("message-with-ack", |_socket, event| async move {
            let args = event.args();
            if let Some(ack) = event.ack {
                let _ = ack.send_binary(args, event.attachments);
            }
        });
    engine.namespace("/", root);
    engine.namespace("/custom", Handlers::new().on_connect(emit_auth));
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
