//! The engine's test app: every broadcast operator, acks both ways, binary echo, a flood, a
//! kick, a panic and the session's transport as client events (like the `interop` example), on `/`, `/admin`,
//! `/secure` (two middlewares), `/team-1` and the dynamic `/team-N`, `/locked-N` (a key) and
//! `/fragile-N` (a panicking disconnect handler); every broadcast that reaches the adapter and
//! every room event is recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_server::engine::{
    Adapter, AdapterContext, BroadcastOptions, ConnectError, EncodedPacket, Engine, EngineConfig,
    Event, Handlers, LocalAdapter, Room, RoomEvent, Sid, Socket,
};
use chat_server::{RunningServer, serve_engine};
use regex::Regex;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Client, RECV_TIMEOUT};

/// Records what every broadcast handed to the adapter, then delegates to the local adapter.
struct RecordingAdapter {
    inner: LocalAdapter,
    log: Arc<Mutex<Vec<(BroadcastOptions, String)>>>,
}

impl Adapter for RecordingAdapter {
    fn join(&self, sid: &Sid, rooms: &[Room]) {
        self.inner.join(sid, rooms)
    }
    fn leave(&self, sid: &Sid, room: &str) {
        self.inner.leave(sid, room)
    }
    fn leave_all(&self, sid: &Sid) {
        self.inner.leave_all(sid)
    }
    fn rooms_of(&self, sid: &Sid) -> Vec<Room> {
        self.inner.rooms_of(sid)
    }
    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.inner.sockets(opts)
    }
    fn rooms(&self) -> Vec<(Room, usize)> {
        self.inner.rooms()
    }
    fn broadcast(&self, packet: EncodedPacket, opts: &BroadcastOptions) -> usize {
        self.log
            .lock()
            .unwrap()
            .push((opts.clone(), packet.text.to_string()));
        self.inner.broadcast(packet, opts)
    }
}

pub struct TestServer {
    pub server: RunningServer,
    /// Every broadcast handed to the adapter: its options and its encoded text.
    pub broadcasts: Arc<Mutex<Vec<(BroadcastOptions, String)>>>,
    pub room_events: RoomEvents,
}

impl TestServer {
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Broadcasts recorded so far whose text contains `needle`.
    pub fn recorded(&self, needle: &str) -> Vec<BroadcastOptions> {
        self.broadcasts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.contains(needle))
            .map(|(o, _)| o.clone())
            .collect()
    }
}

/// Every room event, after the name (`nsp`) of its namespace, with a count to await.
#[derive(Clone, Default)]
pub struct RoomEvents {
    events: Arc<Mutex<Vec<(String, RoomEvent)>>>,
    recorded: Arc<watch::Sender<usize>>,
}

impl RoomEvents {
    fn record(&self, nsp: &str, event: &RoomEvent) {
        self.events
            .lock()
            .unwrap()
            .push((nsp.to_owned(), event.clone()));
        self.recorded.send_modify(|n| *n += 1);
    }

    /// The events recorded once `enough` holds of them, or after [`RECV_TIMEOUT`].
    pub async fn wait_until(
        &self,
        enough: impl Fn(&[(String, RoomEvent)]) -> bool,
    ) -> Vec<(String, RoomEvent)> {
        let mut recorded = self.recorded.subscribe();
        let events = || self.events.lock().unwrap().clone();
        let _ = tokio::time::timeout(RECV_TIMEOUT, recorded.wait_for(|_| enough(&events()))).await;
        events()
    }
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

fn done(event: Event) {
    if let Some(ack) = event.ack {
        ack.send(vec![json!("done")]).unwrap();
    }
}

fn handlers(tag: &'static str, room_events: RoomEvents) -> Handlers {
    Handlers::new()
        .on_connect(move |socket: Socket, auth| async move {
            let _ = socket.emit("hello", vec![json!({"tag": tag, "auth": auth})]);
        })
        .on_room_event(move |namespace, event| room_events.record(namespace.name(), event))
        .on("join", |socket: Socket, event| async move {
            socket.join(arg(&event)["room"].as_str().unwrap_or("").to_owned());
            done(event);
        })
        .on("leave", |socket: Socket, event| async move {
            socket.leave(arg(&event)["room"].as_str().unwrap_or(""));
            done(event);
        })
        .on("to-rooms", |socket: Socket, event| async move {
            let a = arg(&event);
            let op = strings(&a["rooms"])
                .into_iter()
                .fold(socket.namespace().broadcast(), |op, r| op.to(r));
            let op = strings(&a["except"])
                .into_iter()
                .fold(op, |op, r| op.except(r));
            let op = if a["volatile"] == json!(true) {
                op.volatile()
            } else {
                op
            };
            op.emit(a["event"].as_str().unwrap_or("x"), vec![a["data"].clone()]);
            done(event);
        })
        .on("broadcast-room", |socket: Socket, event| async move {
            let a = arg(&event);
            socket
                .to(a["room"].as_str().unwrap_or("").to_owned())
                .emit(a["event"].as_str().unwrap_or("x"), vec![a["data"].clone()]);
            done(event);
        })
        .on("broadcast", |socket: Socket, event| async move {
            let a = arg(&event);
            socket
                .broadcast()
                .emit(a["event"].as_str().unwrap_or("x"), vec![a["data"].clone()]);
            done(event);
        })
        .on("echo-ack", |_socket, event| async move {
            let args = event.args();
            if let Some(ack) = event.ack {
                ack.send_binary(args, event.attachments).unwrap();
            }
        })
        .on("transport", |socket: Socket, event| async move {
            // Which transport the session uses now (read-only, for logs and metrics).
            if let Some(ack) = event.ack {
                let _ = ack.send(vec![json!(format!("{:?}", socket.conn().transport()))]);
            }
        })
        .on("echo", |socket: Socket, event| async move {
            let _ = socket.emit_binary("echo-back", event.args(), event.attachments);
        })
        .on("server-ack", |socket: Socket, event| async move {
            let a = arg(&event);
            let wait = socket.emit_with_ack(
                "question",
                vec![a["data"].clone()],
                Duration::from_millis(a["timeout"].as_u64().unwrap_or(2000)),
            );
            tokio::spawn(async move {
                let result = match wait.await {
                    Ok(r) => json!({"args": r.args}),
                    Err(e) => json!({"error": e.to_string()}),
                };
                let _ = socket.emit("answer", vec![result]);
            });
            done(event);
        })
        .on("flood", |socket: Socket, event| async move {
            // Queues `count` packets of `size` bytes for this socket's room `victims`.
            let a = arg(&event);
            let blob = "x".repeat(a["size"].as_u64().unwrap_or(1000) as usize);
            let mut reached = 0;
            for _ in 0..a["count"].as_u64().unwrap_or(10) {
                reached = socket
                    .namespace()
                    .to("victims")
                    .emit("blob", vec![json!(blob)]);
            }
            if let Some(ack) = event.ack {
                ack.send(vec![json!(reached)]).unwrap();
            }
        })
        .on("kick", |socket: Socket, event| async move {
            done(event);
            socket.disconnect().await;
        })
        .on("panic", |_socket, _event| async move {
            panic!("handler panicked on purpose");
        })
}

pub async fn start(config: EngineConfig) -> TestServer {
    let broadcasts = Arc::new(Mutex::new(Vec::new()));
    let room_events = RoomEvents::default();
    let log = broadcasts.clone();
    let engine = Engine::with_adapter(config, move |ctx: AdapterContext| {
        Arc::new(RecordingAdapter {
            inner: LocalAdapter::new(ctx),
            log: log.clone(),
        }) as Arc<dyn Adapter>
    });
    engine.namespace("/", handlers("root", room_events.clone()));
    engine.namespace("/admin", handlers("admin", room_events.clone()));
    engine.namespace("/team-1", handlers("static", room_events.clone()));
    engine.dynamic_namespace(
        Regex::new(r"^/team-\d+$").unwrap(),
        handlers("dynamic", room_events.clone()),
    );
    // Dynamic, behind a middleware: admitted only with `{"key":"open"}`.
    engine.dynamic_namespace(
        Regex::new(r"^/locked-\d+$").unwrap(),
        handlers("locked", room_events.clone()).middleware(|req| async move {
            match req.auth.get("key").and_then(Value::as_str) {
                Some("open") => Ok(()),
                _ => Err(ConnectError::new("locked")),
            }
        }),
    );
    // Dynamic, with a disconnect handler that panics.
    engine.dynamic_namespace(
        Regex::new(r"^/fragile-\d+$").unwrap(),
        handlers("fragile", room_events.clone()).on_disconnect(|_socket, _reason| async move {
            panic!("disconnect handler panicked on purpose");
        }),
    );
    let secure =
        handlers("secure", room_events.clone())
            .middleware(|req| async move {
                if req.auth.get("user").is_none() {
                    return Err(ConnectError::new("who are you?"));
                }
                Ok(())
            })
            .middleware(|req| async move {
                match req.auth.get("token").and_then(Value::as_str) {
                    Some("letmein") => Ok(()),
                    _ => Err(ConnectError::new("not authorized")
                        .with_data(json!({"reason": "bad token"}))),
                }
            });
    engine.namespace("/secure", secure);
    let server = serve_engine(engine, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    TestServer {
        server,
        broadcasts,
        room_events,
    }
}

pub async fn start_default() -> TestServer {
    start(EngineConfig::default()).await
}

/// A client connected to `/` that has consumed its `hello`.
pub async fn client(addr: SocketAddr) -> (Client, String) {
    let mut c = Client::connect(addr).await;
    let sid = c.join_namespace("/", None).await;
    c.wait_event("hello").await;
    (c, sid)
}

/// Events (name, data) that reached `c` before a barrier round trip.
pub async fn received(c: &mut Client, nsp: &str) -> Vec<(String, Value)> {
    c.drain(nsp, "echo-ack")
        .await
        .into_iter()
        .map(|(_, n, v)| (n, v))
        .collect()
}
