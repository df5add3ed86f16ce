//! Engine integration tests: a real server on 127.0.0.1:0 driven by a raw WebSocket client.
//! The test app exposes every broadcast operator as a client event (like the `interop`
//! example) and records every broadcast that reaches the adapter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::socket_io::{Packet, PacketKind, placeholder};
use chat_server::engine::{
    Adapter, AdapterContext, BroadcastOptions, ConnectError, EncodedPacket, Engine, EngineConfig,
    Event, Handlers, LocalAdapter, Room, RoomEvent, RoomEventKind, Sid, Socket,
};
use chat_server::{RunningServer, serve_engine};
use common::{Client, Seen};
use regex::Regex;
use serde_json::{Value, json};

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

struct TestServer {
    server: RunningServer,
    broadcasts: Arc<Mutex<Vec<(BroadcastOptions, String)>>>,
    room_events: Arc<Mutex<Vec<(String, RoomEvent)>>>,
}

impl TestServer {
    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Broadcasts recorded so far whose text contains `needle`.
    fn recorded(&self, needle: &str) -> Vec<BroadcastOptions> {
        self.broadcasts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.contains(needle))
            .map(|(o, _)| o.clone())
            .collect()
    }
}

fn arg(event: &Event) -> Value {
    event.args.first().cloned().unwrap_or(Value::Null)
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

fn handlers(tag: &'static str, room_events: Arc<Mutex<Vec<(String, RoomEvent)>>>) -> Handlers {
    Handlers::new()
        .on_connect(move |socket: Socket, auth| async move {
            let _ = socket.emit("hello", vec![json!({"tag": tag, "auth": auth})]);
        })
        .on_room_event(move |ns, event| {
            room_events
                .lock()
                .unwrap()
                .push((ns.name().to_owned(), event.clone()))
        })
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
            if let Some(ack) = event.ack {
                ack.send_binary(event.args, event.attachments).unwrap();
            }
        })
        .on("echo", |socket: Socket, event| async move {
            let _ = socket.emit_binary("echo-back", event.args, event.attachments);
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

async fn start(config: EngineConfig) -> TestServer {
    let broadcasts = Arc::new(Mutex::new(Vec::new()));
    let room_events = Arc::new(Mutex::new(Vec::new()));
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

async fn start_default() -> TestServer {
    start(EngineConfig::default()).await
}

/// A client connected to `/` that has consumed its `hello`.
async fn client(addr: SocketAddr) -> (Client, String) {
    let mut c = Client::connect(addr).await;
    let sid = c.join_ns("/", None).await;
    c.wait_event("hello").await;
    (c, sid)
}

/// Events (name, data) that reached `c` before a barrier round trip.
async fn received(c: &mut Client, nsp: &str) -> Vec<(String, Value)> {
    c.drain(nsp, "echo-ack")
        .await
        .into_iter()
        .map(|(_, n, v)| (n, v))
        .collect()
}

// ---------------------------------------------------------------- handshake

#[tokio::test]
async fn open_packet_has_the_reference_shape() {
    let s = start_default().await;
    let c = Client::connect(s.addr()).await;
    let keys: Vec<&String> = c.open.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "sid",
            "upgrades",
            "pingInterval",
            "pingTimeout",
            "maxPayload"
        ]
    );
    assert_eq!(c.open["upgrades"], json!([]));
    assert_eq!(c.open["pingInterval"], 25000);
    assert_eq!(c.open["pingTimeout"], 20000);
    assert_eq!(c.open["maxPayload"], 1_000_000);
    assert_eq!(c.open["sid"].as_str().unwrap().len(), 20);
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(common::RECV_TIMEOUT, tcp.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn plain_http_requests_get_400_json() {
    let s = start_default().await;
    let r = http_get(s.addr(), "/socket.io/?EIO=4&transport=polling").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(
        r.ends_with(r#"{"code":0,"message":"Transport unknown"}"#),
        "{r}"
    );
    let r = http_get(s.addr(), "/socket.io/?EIO=3&transport=websocket").await;
    assert!(
        r.ends_with(r#"{"code":5,"message":"Unsupported protocol version"}"#),
        "{r}"
    );
    let r = http_get(s.addr(), "/socket.io/?EIO=4&transport=websocket").await;
    assert!(r.ends_with(r#"{"code":3,"message":"Bad request"}"#), "{r}");
    // The server still serves WebSocket clients.
    client(s.addr()).await;
}

#[tokio::test]
async fn slowloris_handshake_is_dropped_after_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(EngineConfig {
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    tcp.write_all(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(common::RECV_TIMEOUT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed without a response");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

// ---------------------------------------------------------------- heartbeat and timeouts

#[tokio::test]
async fn server_pings_after_one_interval_and_closes_on_missed_pong() {
    let s = start(EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut c = Client::connect(s.addr()).await;
    let opened = Instant::now();
    c.join_ns("/", None).await;
    c.auto_pong = false;
    c.wait_event("hello").await;
    // The first ping comes one interval after the open packet, not at once.
    assert_eq!(c.recv_text().await, "2");
    assert!(
        opened.elapsed() >= Duration::from_millis(280),
        "first ping too early: {:?}",
        opened.elapsed()
    );
    c.send("3").await;
    assert_eq!(c.recv_text().await, "2");
    // No pong this time: the server gives up after pingTimeout.
    let close = c.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1011);
    assert_eq!(close.reason.as_str(), "ping timeout");
}

#[tokio::test]
async fn connect_timeout_closes_a_connection_that_never_connects() {
    let s = start(EngineConfig {
        connect_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut c = Client::connect(s.addr()).await;
    let close = c.expect_close().await.expect("close frame");
    assert_eq!(close.reason.as_str(), "connect timeout");
    // A connected client is not affected.
    let (mut ok, _) = client(s.addr()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok.call("/", "echo-ack", vec![json!(1)]).await;
}

#[tokio::test]
async fn client_ping_is_a_protocol_violation() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    c.send("2").await;
    assert_eq!(u16::from(c.expect_close().await.unwrap().code), 1002);
}

// ---------------------------------------------------------------- namespaces and middleware

#[tokio::test]
async fn unknown_namespace_is_refused_and_the_connection_stays() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    let p = c.connect_ns("/nope", None).await;
    assert_eq!(p.encode(), r#"4/nope,{"message":"Invalid namespace"}"#);
    c.call("/", "echo-ack", vec![json!(1)]).await;
}

#[tokio::test]
async fn middleware_chain_refuses_with_message_and_data_in_order() {
    let s = start_default().await;
    let mut c = Client::connect(s.addr()).await;
    let p = c
        .connect_ns("/secure", Some(json!({"token": "letmein"})))
        .await;
    assert_eq!(p.encode(), r#"4/secure,{"message":"who are you?"}"#);
    let p = c
        .connect_ns("/secure", Some(json!({"user": "u", "token": "nope"})))
        .await;
    assert_eq!(
        p.encode(),
        r#"4/secure,{"message":"not authorized","data":{"reason":"bad token"}}"#
    );
    let sid = c
        .join_ns("/secure", Some(json!({"user": "u", "token": "letmein"})))
        .await;
    assert_eq!(sid.len(), 20);
    let hello = c.wait_event("hello").await;
    assert_eq!(hello["auth"], json!({"user": "u", "token": "letmein"}));
}

#[tokio::test]
async fn dynamic_namespaces_match_a_pattern_and_static_wins() {
    let s = start_default().await;
    let mut c = Client::connect(s.addr()).await;
    c.join_ns("/team-42", None).await;
    assert_eq!(c.wait_event("hello").await["tag"], "dynamic");
    c.join_ns("/team-1", None).await;
    assert_eq!(c.wait_event("hello").await["tag"], "static");
    let p = c.connect_ns("/team-x", None).await;
    assert_eq!(p.kind, PacketKind::ConnectError);
}

#[tokio::test]
async fn namespaces_are_multiplexed_and_separate() {
    let s = start_default().await;
    let mut a = Client::connect(s.addr()).await;
    let root_sid = a.join_ns("/", None).await;
    let admin_sid = a.join_ns("/admin", None).await;
    assert_ne!(root_sid, admin_sid, "each namespace socket has its own id");
    let mut b = Client::connect(s.addr()).await;
    b.join_ns("/", None).await;
    b.join_ns("/admin", None).await;
    for c in [&mut a, &mut b] {
        c.call("/", "join", vec![json!({"room": "r"})]).await;
        c.call("/admin", "join", vec![json!({"room": "r"})]).await;
    }
    a.call(
        "/admin",
        "broadcast-room",
        vec![json!({"room": "r", "event": "only-admin", "data": 1})],
    )
    .await;
    let seen = b.drain("/", "echo-ack").await;
    let admin_only: Vec<_> = seen.iter().filter(|(_, n, _)| n == "only-admin").collect();
    assert_eq!(admin_only.len(), 1);
    assert_eq!(
        admin_only[0].0, "/admin",
        "delivered on the /admin namespace only"
    );

    // Leaving the last namespace keeps the Engine.IO connection (and its heartbeat).
    a.send_packet(&Packet::disconnect("/")).await;
    a.send_packet(&Packet::disconnect("/admin")).await;
    a.join_ns("/", None).await;
    a.call("/", "echo-ack", vec![json!("still here")]).await;
}

// ---------------------------------------------------------------- broadcast operators

/// Four clients on `/`: a in r1, b in r2, c in r1 and r2, d in none.
async fn four(s: &TestServer) -> [Client; 4] {
    let mut out = Vec::new();
    for rooms in [vec!["r1"], vec!["r2"], vec!["r1", "r2"], vec![]] {
        let (mut c, _) = client(s.addr()).await;
        for r in rooms {
            c.call("/", "join", vec![json!({"room": r})]).await;
        }
        out.push(c);
    }
    out.try_into().ok().unwrap()
}

async fn receivers(clients: &mut [Client; 4], event: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let n = received(c, "/")
            .await
            .iter()
            .filter(|(name, _)| name == event)
            .count();
        if n > 0 {
            out.push((i, n));
        }
    }
    out
}

#[tokio::test]
async fn to_rooms_is_a_union_and_each_socket_receives_once() {
    let s = start_default().await;
    let mut cs = four(&s).await;
    cs[3]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": ["r1", "r2"], "event": "u", "data": 1})],
        )
        .await;
    assert_eq!(receivers(&mut cs, "u").await, [(0, 1), (1, 1), (2, 1)]);
    // Sender included when in the rooms (namespace-level operator): it gets it before its ack.
    let (_, before_ack) = cs[0]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": ["r1"], "event": "v", "data": 1})],
        )
        .await;
    assert_eq!(
        before_ack
            .iter()
            .filter(|p| p.event_name() == Some("v"))
            .count(),
        1
    );
    assert_eq!(receivers(&mut cs, "v").await, [(2, 1)]);
    // Everyone, the sender included.
    let (_, before_ack) = cs[0]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": [], "event": "w", "data": 1})],
        )
        .await;
    assert_eq!(
        before_ack
            .iter()
            .filter(|p| p.event_name() == Some("w"))
            .count(),
        1
    );
    assert_eq!(receivers(&mut cs, "w").await, [(1, 1), (2, 1), (3, 1)]);
}

#[tokio::test]
async fn except_leaves_out_every_socket_in_those_rooms() {
    let s = start_default().await;
    let mut cs = four(&s).await;
    cs[3]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": ["r1", "r2"], "except": ["r2"], "event": "e", "data": 1})],
        )
        .await;
    assert_eq!(receivers(&mut cs, "e").await, [(0, 1)]);
    cs[0]
        .call(
            "/",
            "to-rooms",
            vec![json!({"rooms": [], "except": ["r1"], "event": "f", "data": 1})],
        )
        .await;
    assert_eq!(receivers(&mut cs, "f").await, [(1, 1), (3, 1)]);
}

#[tokio::test]
async fn socket_broadcasts_exclude_the_sender() {
    let s = start_default().await;
    let mut cs = four(&s).await;
    cs[0]
        .call(
            "/",
            "broadcast-room",
            vec![json!({"room": "r1", "event": "s", "data": 1})],
        )
        .await;
    assert_eq!(receivers(&mut cs, "s").await, [(2, 1)]);
    cs[2]
        .call("/", "broadcast", vec![json!({"event": "t", "data": 1})])
        .await;
    assert_eq!(receivers(&mut cs, "t").await, [(0, 1), (1, 1), (3, 1)]);
}

#[tokio::test]
async fn every_broadcast_goes_through_the_adapter_as_bytes_rooms_and_except() {
    let s = start_default().await;
    let (mut a, a_sid) = client(s.addr()).await;
    a.call(
        "/",
        "to-rooms",
        vec![json!({"rooms": ["r1", "r2"], "except": ["r3"], "event": "rec1", "data": 1})],
    )
    .await;
    a.call(
        "/",
        "to-rooms",
        vec![json!({"rooms": [], "volatile": true, "event": "rec2", "data": 1})],
    )
    .await;
    a.call(
        "/",
        "broadcast-room",
        vec![json!({"room": "r1", "event": "rec3", "data": 1})],
    )
    .await;
    a.call("/", "broadcast", vec![json!({"event": "rec4", "data": 1})])
        .await;
    let one = |needle| {
        let v = s.recorded(needle);
        assert_eq!(v.len(), 1, "{needle} recorded once");
        v[0].clone()
    };
    assert_eq!(
        one("rec1"),
        BroadcastOptions {
            rooms: vec!["r1".into(), "r2".into()],
            except: vec!["r3".into()],
            volatile: false
        }
    );
    assert_eq!(
        one("rec2"),
        BroadcastOptions {
            rooms: vec![],
            except: vec![],
            volatile: true
        }
    );
    assert_eq!(
        one("rec3"),
        BroadcastOptions {
            rooms: vec!["r1".into()],
            except: vec![a_sid.clone()],
            volatile: false
        }
    );
    assert_eq!(
        one("rec4"),
        BroadcastOptions {
            rooms: vec![],
            except: vec![a_sid],
            volatile: false
        }
    );
    // The encoded text is the wire frame, encoded once.
    let text = s
        .broadcasts
        .lock()
        .unwrap()
        .iter()
        .find(|(_, t)| t.contains("rec4"))
        .unwrap()
        .1
        .clone();
    assert_eq!(text, r#"42["rec4",1]"#);
}

#[tokio::test]
async fn room_lifecycle_events_are_observable() {
    let s = start_default().await;
    let (mut a, a_sid) = client(s.addr()).await;
    let (mut b, b_sid) = client(s.addr()).await;
    a.call("/", "join", vec![json!({"room": "lobby"})]).await;
    b.call("/", "join", vec![json!({"room": "lobby"})]).await;
    a.call("/", "leave", vec![json!({"room": "lobby"})]).await;
    b.close().await;
    a.call("/", "echo-ack", vec![]).await;
    // Wait (bounded) for b's disconnect to be processed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let lobby = loop {
        let v: Vec<(RoomEventKind, String)> = s
            .room_events
            .lock()
            .unwrap()
            .iter()
            .filter(|(ns, e)| ns == "/" && e.room == "lobby")
            .map(|(_, e)| (e.kind, e.sid.to_string()))
            .collect();
        if v.len() >= 6 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        lobby,
        [
            (RoomEventKind::Created, a_sid.clone()),
            (RoomEventKind::Joined, a_sid.clone()),
            (RoomEventKind::Joined, b_sid.clone()),
            (RoomEventKind::Left, a_sid),
            (RoomEventKind::Left, b_sid.clone()),
            (RoomEventKind::Deleted, b_sid),
        ]
    );
}

// ---------------------------------------------------------------- acks, binary, order

#[tokio::test]
async fn acks_in_both_directions_with_timeout() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    let (args, _) = c
        .call(
            "/",
            "echo-ack",
            vec![json!({"3": [true]}), json!("x"), json!(null)],
        )
        .await;
    assert_eq!(args, vec![json!({"3": [true]}), json!("x"), json!(null)]);

    // The question is queued before the ack of the request that caused it.
    let (_, before_ack) = c.call("/", "server-ack", vec![json!({"data": "q1"})]).await;
    let p = before_ack
        .into_iter()
        .find(|p| p.event_name() == Some("question"))
        .expect("question");
    assert_eq!(p.data, Some(json!(["question", "q1"])));
    let id = p.id.expect("the server asks for an ack");
    c.send_packet(&Packet::ack("/", id, vec![json!("a1"), json!(2)]))
        .await;
    assert_eq!(c.wait_event("answer").await, json!({"args": ["a1", 2]}));

    c.call(
        "/",
        "server-ack",
        vec![json!({"data": "q2", "timeout": 200})],
    )
    .await;
    assert_eq!(
        c.wait_event("answer").await,
        json!({"error": "no acknowledgement within the timeout"})
    );
}

#[tokio::test]
async fn binary_events_and_acks_keep_their_attachments() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    let p = Packet::event(
        "/",
        "echo",
        vec![json!("x"), placeholder(0), json!({"b": placeholder(1)})],
        None,
    )
    .with_attachments(2);
    c.send_packet(&p).await;
    c.send_binary(&[1, 2, 3]).await;
    c.send_binary(&[4]).await;
    assert_eq!(
        c.recv_text().await,
        r#"452-["echo-back","x",{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}]"#
    );
    assert!(matches!(c.next().await, Seen::Binary(b) if b == [1, 2, 3]));
    assert!(matches!(c.next().await, Seen::Binary(b) if b == [4]));

    let p = Packet::event("/", "echo-ack", vec![placeholder(0)], Some(9)).with_attachments(1);
    c.send_packet(&p).await;
    c.send_binary(b"zz").await;
    assert_eq!(
        c.recv_text().await,
        r#"461-9[{"_placeholder":true,"num":0}]"#
    );
    assert!(matches!(c.next().await, Seen::Binary(b) if b == b"zz"));
}

#[tokio::test]
async fn events_are_handled_and_answered_in_arrival_order() {
    let s = start_default().await;
    let (mut a, _) = client(s.addr()).await;
    let (mut b, _) = client(s.addr()).await;
    b.call("/", "join", vec![json!({"room": "o"})]).await;
    const N: u64 = 300;
    for i in 0..N {
        a.send_packet(&Packet::event(
            "/",
            "broadcast-room",
            vec![json!({"room": "o", "event": "n", "data": i})],
            Some(i),
        ))
        .await;
    }
    for i in 0..N {
        let p = a.recv_packet().await;
        assert_eq!(
            (p.kind, p.id),
            (PacketKind::Ack, Some(i)),
            "acks leave in arrival order"
        );
    }
    let got: Vec<u64> = received(&mut b, "/")
        .await
        .into_iter()
        .filter(|(n, _)| n == "n")
        .map(|(_, v)| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "broadcasts arrive in order, none lost or repeated"
    );
}

#[tokio::test]
async fn server_side_disconnect_sends_disconnect_and_keeps_the_connection() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    c.join_ns("/admin", None).await;
    c.wait_event("hello").await;
    c.call("/admin", "kick", vec![]).await;
    assert_eq!(c.recv_text().await, "41/admin,");
    c.call("/", "echo-ack", vec![json!(1)]).await;
    // The client may connect that namespace again.
    c.join_ns("/admin", None).await;
    c.call("/admin", "echo-ack", vec![json!(2)]).await;
}

#[tokio::test]
async fn a_panicking_handler_closes_only_its_connection() {
    let s = start_default().await;
    let (mut a, _) = client(s.addr()).await;
    let (mut b, _) = client(s.addr()).await;
    a.send_packet(&Packet::event("/", "panic", vec![], None))
        .await;
    let close = a.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1011);
    b.call("/", "echo-ack", vec![json!(1)]).await;
}

// ---------------------------------------------------------------- hostile input

#[tokio::test]
async fn malformed_packets_close_that_connection_only() {
    let s = start(EngineConfig {
        max_payload: 10_000,
        ..Default::default()
    })
    .await;
    let (mut bystander, _) = client(s.addr()).await;
    bystander
        .call("/", "join", vec![json!({"room": "r"})])
        .await;
    let big = format!("42[\"echo-ack\",\"{}\"]", "x".repeat(20_000));
    let cases: Vec<(&str, String, u16)> = vec![
        ("empty frame", String::new(), 1002),
        ("unknown engine.io type", "9".into(), 1002),
        ("client open", "0{}".into(), 1002),
        ("unknown socket.io type", "49".into(), 1002),
        ("invalid json", "42[\"a\"".into(), 1002),
        ("event not an array", "42{}".into(), 1002),
        ("empty event array", "42[]".into(), 1002),
        ("event name not a string", "42[1]".into(), 1002),
        ("reserved event name", "42[\"connect\"]".into(), 1002),
        ("ack without id", "43[]".into(), 1002),
        ("connect with array", "40[]".into(), 1002),
        ("disconnect with data", "41{}".into(), 1002),
        ("binary without count", "45[\"a\"]".into(), 1002),
        (
            "connect_error from client",
            "44{\"message\":\"x\"}".into(),
            1002,
        ),
        (
            "event for unjoined namespace",
            "42/admin,[\"echo-ack\"]".into(),
            1002,
        ),
        ("second connect", "40".into(), 1002),
        ("bad ack id", format!("42{}[\"a\"]", "9".repeat(25)), 1002),
        ("oversized message", big, 1009),
    ];
    for (name, frame, code) in cases {
        let (mut c, _) = client(s.addr()).await;
        c.send(&frame).await;
        let close = c
            .expect_close()
            .await
            .unwrap_or_else(|| panic!("{name}: no close frame"));
        assert_eq!(u16::from(close.code), code, "{name}");
        bystander.call("/", "echo-ack", vec![json!(name)]).await;
    }
    // Binary frames: unexpected, and text where an attachment was due.
    let (mut c, _) = client(s.addr()).await;
    c.send_binary(&[1]).await;
    assert_eq!(u16::from(c.expect_close().await.unwrap().code), 1002);
    let (mut c, _) = client(s.addr()).await;
    c.send(r#"451-["echo",{"_placeholder":true,"num":0}]"#)
        .await;
    c.send("42[\"echo\"]").await;
    assert_eq!(u16::from(c.expect_close().await.unwrap().code), 1002);
    // Invalid UTF-8 in a text frame fails at the WebSocket layer.
    bystander.call("/", "echo-ack", vec![json!("done")]).await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_and_others_keep_their_messages() {
    let s = start(EngineConfig {
        outbox_capacity: 8,
        ..Default::default()
    })
    .await;
    let mut slow = Client::connect(s.addr()).await;
    slow.join_ns("/", None).await;
    slow.call("/", "join", vec![json!({"room": "victims"})])
        .await;
    let (mut fast, _) = client(s.addr()).await;
    let (mut sender, _) = client(s.addr()).await;
    fast.call("/", "join", vec![json!({"room": "victims"})])
        .await;
    // `slow` stops reading; 400 x 64 KiB cannot all sit in socket buffers and an 8-slot queue.
    // `fast` reads concurrently so it keeps up.
    let reader = tokio::spawn(async move {
        let mut blobs = 0;
        while blobs < 4 * 300 {
            let p = fast.recv_packet().await;
            if p.event_name() == Some("blob") {
                blobs += 1;
            }
        }
        blobs
    });
    // Four at a time, so a client that reads never has more than half its queue waiting;
    // until the slow one has been dropped (the last blob reached only `fast`).
    let mut sent = 0;
    for _ in 0..300 {
        let (reached, _) = sender
            .call("/", "flood", vec![json!({"count": 4, "size": 65536})])
            .await;
        sent += 4;
        if reached == [json!(1)] {
            break;
        }
    }
    assert!(sent < 4 * 300, "the slow consumer was never dropped");
    // Keep `fast` busy until it has everything, with the rest of the 300 rounds.
    for _ in sent / 4..300 {
        sender
            .call("/", "flood", vec![json!({"count": 4, "size": 16})])
            .await;
    }
    let mut frames = 0;
    let close = loop {
        match slow.next().await {
            Seen::Close(f) => break f,
            _ => frames += 1,
        }
    };
    let close = close.unwrap_or_else(|| panic!("close frame after {frames} frames"));
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "slow consumer: outgoing queue full");
    assert_eq!(
        reader.await.unwrap(),
        4 * 300,
        "the reading client got every message"
    );
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_no_disconnect_packet() {
    let s = start_default().await;
    let (mut c, _) = client(s.addr()).await;
    let server = s.server;
    let stop = tokio::spawn(server.shutdown());
    loop {
        match c.next().await {
            Seen::Close(f) => {
                assert_eq!(u16::from(f.expect("close frame").code), 1001);
                break;
            }
            Seen::Text(t) => assert!(
                !t.starts_with("41"),
                "no Socket.IO DISCONNECT on shutdown: {t}"
            ),
            Seen::Binary(_) => {}
        }
    }
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .expect("shutdown finishes")
        .unwrap();
}

/// A masked client frame (the mask is fixed; the server only checks that there is one).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    assert!(payload.len() < 126);
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The server's frames (opcode, payload) in `bytes`, which must hold whole unmasked frames.
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert_eq!(bytes[0] & 0xf0, 0x80, "final frame, no reserved bits");
        assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
        let (start, len) = match bytes[1] & 0x7f {
            126 => (4, u16::from_be_bytes([bytes[2], bytes[3]]) as usize),
            127 => (
                10,
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
            ),
            n => (2, n as usize),
        };
        frames.push((bytes[0] & 0x0f, bytes[start..start + len].to_vec()));
        bytes = &bytes[start + len..];
    }
    frames
}

/// Upgrades a raw TCP connection and returns it with the bytes read past the response head.
async fn raw_upgrade(addr: SocketAddr) -> (tokio::net::TcpStream, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed during the upgrade");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    assert!(
        buf.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    (tcp, buf.split_off(end))
}

/// Upgrades a raw connection, writes `frames`, and returns every frame the server sent until
/// it closed the socket (bounded by a timeout).
async fn exchange(addr: SocketAddr, frames: &[u8]) -> Vec<(u8, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut tcp, mut seen) = raw_upgrade(addr).await;
    tcp.write_all(frames).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut seen))
        .await
        .expect("the server closes the socket")
        .unwrap();
    server_frames(&seen)
}

#[tokio::test]
async fn pings_are_answered_and_a_client_close_is_answered_once_before_the_socket_closes() {
    let s = start_default().await;
    let mut out = client_frame(0x9, b"are you there");
    out.extend(client_frame(0x8, &[0x03, 0xe8, b'o', b'k']));
    let frames = exchange(s.addr(), &out).await;
    assert_eq!(frames.len(), 3, "open, pong, close: {frames:?}");
    assert_eq!(frames[0].0, 0x1);
    assert!(frames[0].1.starts_with(b"0{"), "the open packet first");
    assert_eq!(frames[1], (0xa, b"are you there".to_vec()));
    assert_eq!(frames[2].0, 0x8, "one close frame");
    assert_eq!(&frames[2].1[..2], &[0x03, 0xe8], "the close code echoed");
}

#[tokio::test]
async fn what_was_queued_before_a_server_close_arrives_whole_and_then_the_close_frame() {
    let s = start_default().await;
    let mut out = client_frame(0x1, b"40");
    for i in 0..50 {
        out.extend(client_frame(
            0x1,
            format!("42[\"echo\",{{\"n\":{i}}}]").as_bytes(),
        ));
    }
    // Then an Engine.IO packet that makes no sense from a client: a protocol close (1002).
    out.extend(client_frame(0x1, b"5"));
    let frames = exchange(s.addr(), &out).await;
    let (close, rest) = frames.split_last().unwrap();
    assert_eq!(close.0, 0x8, "the close frame last: {close:?}");
    assert_eq!(&close.1[..2], &1002u16.to_be_bytes());
    assert!(
        rest.iter().all(|(op, _)| *op == 0x1),
        "only text frames before it"
    );
    let echoes = rest
        .iter()
        .filter(|(_, text)| text.starts_with(b"42[\"echo-back\""))
        .count();
    assert_eq!(
        echoes, 50,
        "what was queued before the close is written before it"
    );
}

#[tokio::test]
async fn a_client_that_pings_and_never_reads_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start_default().await;
    let (tcp, _) = raw_upgrade(s.addr()).await;
    let (mut read, mut write) = tcp.into_split();
    // 125-byte pings, a thousand per write, never reading the pongs: once the socket's buffers
    // are full the pongs pile up in the server, which must close the connection instead of
    // holding them all (the loop is bounded: 100 MB at most).
    let mut chunk = Vec::new();
    for _ in 0..1000 {
        chunk.extend(client_frame(0x9, &[b'p'; 125]));
    }
    let pinger = tokio::spawn(async move {
        for _ in 0..800 {
            if write.write_all(&chunk).await.is_err() {
                return true;
            }
        }
        false
    });
    let closed = tokio::time::timeout(Duration::from_secs(30), pinger)
        .await
        .expect("the server closes within the timeout")
        .unwrap();
    assert!(closed, "the server kept taking pings it could not answer");
    // Whatever arrived ends (a reset, or the close after the pongs it could send).
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut sink)).await;
}

#[tokio::test]
async fn a_client_close_after_a_burst_gets_the_burst_then_one_close_frame_last() {
    let s = start_default().await;
    // Repeated: the close reply can reach the writer before the connection is marked closed.
    for round in 0..20 {
        let mut out = client_frame(0x1, b"40");
        for i in 0..50 {
            out.extend(client_frame(
                0x1,
                format!("42[\"echo\",{{\"n\":{i}}}]").as_bytes(),
            ));
        }
        out.extend(client_frame(0x8, &[0x03, 0xe8]));
        let frames = exchange(s.addr(), &out).await;
        let closes = frames.iter().filter(|(op, _)| *op == 0x8).count();
        assert_eq!(closes, 1, "round {round}: one close frame: {frames:?}");
        let (close, rest) = frames.split_last().unwrap();
        assert_eq!(close.0, 0x8, "round {round}: the close frame last");
        assert_eq!(&close.1[..2], &[0x03, 0xe8]);
        let echoes = rest
            .iter()
            .filter(|(_, text)| text.starts_with(b"42[\"echo-back\""))
            .count();
        assert_eq!(echoes, 50, "round {round}: the burst before the close");
    }
}

/// CPU time this thread has used, in nanoseconds (Linux's schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat")
}

#[tokio::test]
async fn waiting_for_a_pong_costs_no_cpu() {
    use tokio::io::AsyncWriteExt;
    // One thread runs the server and this test, so its CPU time is the server's.
    let s = start(EngineConfig {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_secs(10),
        ..EngineConfig::default()
    })
    .await;
    let (mut tcp, _) = raw_upgrade(s.addr()).await;
    tcp.write_all(&client_frame(0x1, b"40")).await.unwrap();
    // The ping goes out at 200 ms and is never answered.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = thread_cpu_ns();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = thread_cpu_ns() - before;
    assert!(
        used < 200_000_000,
        "the server used {} ms of CPU in 1 s while a pong was due",
        used / 1_000_000
    );
    drop(tcp);
}

// ---------------------------------------------------------------- dynamic namespace lifetime

/// Waits (up to 5 s) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sockets in the registered namespace of that name (0 when it is not registered).
fn registered_sockets(engine: &Engine, name: &str) -> usize {
    engine
        .get_namespace(name)
        .map_or(0, |ns| ns.sockets().len())
}

#[tokio::test]
async fn refused_connects_to_dynamic_names_leave_no_namespace_behind() {
    let s = start_default().await;
    let engine = s.server.engine().clone();
    let statics = engine.namespaces().len();
    let mut c = Client::connect(s.addr()).await;
    // 3,000 distinct names the pattern matches and the middleware refuses, in batches (so
    // the answers never fill the connection's queue).
    const BATCH: usize = 250;
    for batch in 0..12 {
        let names = (batch * BATCH..(batch + 1) * BATCH).map(|i| format!("/locked-{i}"));
        for name in names.clone() {
            c.send(&format!("40{name},")).await;
        }
        for name in names {
            let p = c.recv_packet().await;
            assert_eq!(p.encode(), format!(r#"4{name},{{"message":"locked"}}"#));
        }
    }
    assert_eq!(
        engine.namespaces().len(),
        statics,
        "refused names were kept"
    );
    assert!(engine.get_namespace("/locked-7").is_none());

    // Admitted, the namespace exists while its socket does, and works.
    c.join_ns("/locked-7", Some(json!({"key": "open"}))).await;
    assert_eq!(c.wait_event("hello").await["tag"], "locked");
    assert_eq!(registered_sockets(&engine, "/locked-7"), 1);
    assert_eq!(engine.namespaces().len(), statics + 1);
    c.call("/locked-7", "echo-ack", vec![json!(1)]).await;
    c.send("41/locked-7,").await;
    eventually("/locked-7 removed", || {
        engine.get_namespace("/locked-7").is_none()
    })
    .await;
    assert_eq!(engine.namespaces().len(), statics);
}

#[tokio::test]
async fn a_dynamic_namespace_lives_while_it_has_sockets_and_comes_back() {
    let s = start_default().await;
    let engine = s.server.engine().clone();
    let statics = engine.namespaces().len();
    let [mut a, mut b] = [
        Client::connect(s.addr()).await,
        Client::connect(s.addr()).await,
    ];
    for c in [&mut a, &mut b] {
        c.join_ns("/team-7", None).await;
        c.wait_event("hello").await;
    }
    assert_eq!(registered_sockets(&engine, "/team-7"), 2);
    assert_eq!(engine.namespaces().len(), statics + 1);
    // A client DISCONNECT: b is still there, so is the namespace.
    a.send("41/team-7,").await;
    eventually("a left /team-7", || {
        registered_sockets(&engine, "/team-7") == 1
    })
    .await;
    // The last socket leaves with its connection: the namespace goes.
    b.close().await;
    eventually("/team-7 removed", || {
        engine.get_namespace("/team-7").is_none()
    })
    .await;
    assert_eq!(engine.namespaces().len(), statics);

    // Connecting again makes it again; rooms and broadcasts work in the new one.
    let mut c = Client::connect(s.addr()).await;
    for c in [&mut a, &mut c] {
        c.join_ns("/team-7", None).await;
        c.wait_event("hello").await;
        c.call("/team-7", "join", vec![json!({"room": "r"})]).await;
    }
    assert_eq!(registered_sockets(&engine, "/team-7"), 2);
    a.call(
        "/team-7",
        "broadcast-room",
        vec![json!({"room": "r", "event": "in-r", "data": 1})],
    )
    .await;
    assert_eq!(c.wait_event("in-r").await, json!(1));
    let (_, before_ack) = a
        .call(
            "/team-7",
            "to-rooms",
            vec![json!({"rooms": [], "event": "to-all", "data": 2})],
        )
        .await;
    assert!(
        before_ack
            .iter()
            .any(|p| p.nsp == "/team-7" && p.event_name() == Some("to-all"))
    );
    assert_eq!(c.wait_event("to-all").await, json!(2));
    // A server-side disconnect and a client DISCONNECT empty it: gone again.
    c.call("/team-7", "kick", vec![]).await;
    assert_eq!(c.recv_text().await, "41/team-7,");
    a.send("41/team-7,").await;
    eventually("/team-7 removed again", || {
        engine.get_namespace("/team-7").is_none()
    })
    .await;
    assert_eq!(engine.namespaces().len(), statics);
}

#[tokio::test]
async fn a_panicking_disconnect_handler_still_frees_the_namespace() {
    let s = start_default().await;
    let engine = s.server.engine().clone();
    let statics = engine.namespaces().len();
    let (mut c, _) = client(s.addr()).await;
    c.join_ns("/fragile-1", None).await;
    c.wait_event("hello").await;
    assert_eq!(registered_sockets(&engine, "/fragile-1"), 1);
    c.send("41/fragile-1,").await;
    // The connection survives its handler's panic, and the socket left all the same.
    c.call("/", "echo-ack", vec![json!(1)]).await;
    assert!(engine.get_namespace("/fragile-1").is_none());
    // And on a connection close.
    c.join_ns("/fragile-1", None).await;
    c.wait_event("hello").await;
    c.close().await;
    eventually("/fragile-1 removed", || {
        engine.get_namespace("/fragile-1").is_none()
    })
    .await;
    assert_eq!(engine.namespaces().len(), statics);
}

#[tokio::test]
async fn concurrent_connects_to_one_new_dynamic_name_share_one_namespace() {
    let s = start_default().await;
    let engine = s.server.engine().clone();
    let statics = engine.namespaces().len();
    // Eight connections connect to a new name at once: one namespace holds them all.
    let joining: Vec<_> = (0..8)
        .map(|_| {
            let addr = s.addr();
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let sid = c.join_ns("/team-500", None).await;
                c.wait_event("hello").await;
                (c, sid)
            })
        })
        .collect();
    let mut clients = Vec::new();
    for j in joining {
        clients.push(j.await.unwrap());
    }
    let ns = engine.get_namespace("/team-500").expect("registered");
    assert_eq!(ns.sockets().len(), 8);
    for (_, sid) in &clients {
        assert!(
            ns.socket(sid).is_some(),
            "a socket outside the registered one"
        );
    }
    clients[0]
        .0
        .call(
            "/team-500",
            "broadcast",
            vec![json!({"event": "hi-all", "data": 3})],
        )
        .await;
    for (c, _) in &mut clients[1..] {
        assert_eq!(c.wait_event("hi-all").await, json!(3));
    }

    // Churn on one name: the namespace empties and comes back while connections keep
    // joining and leaving it; every socket must land in the registered instance.
    let churners: Vec<_> = (0..4)
        .map(|_| {
            let addr = s.addr();
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                for _ in 0..40 {
                    let sid = c.join_ns("/team-501", None).await;
                    c.wait_event("hello").await;
                    let inside = engine
                        .get_namespace("/team-501")
                        .is_some_and(|ns| ns.socket(&sid).is_some());
                    assert!(
                        inside,
                        "a connected socket outside the registered namespace"
                    );
                    c.send("41/team-501,").await;
                }
                c.close().await;
            })
        })
        .collect();
    for task in churners {
        task.await.unwrap();
    }
    for (c, _) in clients {
        c.close().await;
    }
    for name in ["/team-500", "/team-501"] {
        eventually(&format!("{name} removed"), || {
            engine.get_namespace(name).is_none()
        })
        .await;
    }
    assert_eq!(engine.namespaces().len(), statics);
}

/// The engine knows no chat vocabulary: over the rate limit, an event with an ack id gets the
/// plain default reply and one without gets nothing (the chat supplies its own shapes, see
/// `hostile.rs`).
#[tokio::test]
async fn rate_limit_refusals_default_to_plain_replies() {
    let s = start(EngineConfig {
        rate_burst: 2,
        rate_per_sec: 1,
        ..Default::default()
    })
    .await;
    let mut c = Client::connect(s.addr()).await;
    c.join_ns("/", None).await;
    c.wait_event("hello").await;
    // The CONNECT took one token, this join the other.
    let (first, _) = c.call("/", "join", vec![json!({"room": "a"})]).await;
    assert_eq!(first, vec![json!("done")]);
    let (refused, skipped) = c.call("/", "join", vec![json!({"room": "b"})]).await;
    assert_eq!(refused, vec![json!({"error": "rate limit exceeded"})]);
    assert!(skipped.is_empty(), "no notice event: {skipped:?}");
}
