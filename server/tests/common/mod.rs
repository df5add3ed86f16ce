//! Test helpers: a raw Socket.IO-over-WebSocket client with a timeout on every receive.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod bystanders;
pub mod chat;
pub mod engine_app;
pub mod frames;
pub mod polling;
pub mod redis;
pub mod schema_v3;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chat_protocol::socket_io::{Packet, PacketKind};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long any single receive may take before the test fails.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The open packet's payload.
    pub open: Value,
    next_ack: u64,
    /// Answer server pings automatically.
    pub auto_pong: bool,
}

/// What a client saw instead of the frame it waited for.
#[derive(Debug)]
pub enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<CloseFrame>),
}

pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
}

impl Client {
    /// Connects and reads the open packet.
    pub async fn connect(addr: SocketAddr) -> Client {
        let (ws, _) = tokio::time::timeout(RECV_TIMEOUT, connect_async(url(addr)))
            .await
            .expect("connect timed out")
            .expect("websocket connect");
        Client::opened(ws).await
    }

    /// Connects from a local address of our choosing (another loopback address, so the
    /// server sees another client address) and reads the open packet.
    pub async fn connect_from(addr: SocketAddr, local: IpAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(local, 0)).expect("bind");
        let stream = tokio::time::timeout(RECV_TIMEOUT, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("tcp connect");
        let (ws, _) = tokio::time::timeout(
            RECV_TIMEOUT,
            tokio_tungstenite::client_async(url(addr), MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("upgrade timed out")
        .expect("websocket upgrade");
        Client::opened(ws).await
    }

    /// Connects from `local` with one extra request header (`X-Forwarded-For`, as a proxy
    /// would add it) and reads the open packet.
    pub async fn connect_with_header(
        addr: SocketAddr,
        local: IpAddr,
        name: &'static str,
        value: &str,
    ) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(local, 0)).expect("bind");
        let stream = tokio::time::timeout(RECV_TIMEOUT, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("tcp connect");
        let mut request = url(addr).into_client_request().expect("request");
        request
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
        let (ws, _) = tokio::time::timeout(
            RECV_TIMEOUT,
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("upgrade timed out")
        .expect("websocket upgrade");
        Client::opened(ws).await
    }

    async fn opened(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        let mut c = Client {
            ws,
            open: Value::Null,
            next_ack: 0,
            auto_pong: true,
        };
        let open = c.recv_text().await;
        assert!(
            open.starts_with('0'),
            "first frame must be the open packet, got {open:?}"
        );
        c.open = serde_json::from_str(&open[1..]).expect("open payload is JSON");
        c
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_binary(&mut self, data: &[u8]) {
        self.ws
            .send(Message::binary(data.to_vec()))
            .await
            .expect("send binary");
    }

    pub async fn send_packet(&mut self, p: &Packet) {
        self.send(&p.encode_frame()).await;
    }

    /// The next frame of any kind (pings answered when `auto_pong`), or panics after the timeout.
    pub async fn next(&mut self) -> Seen {
        loop {
            let msg = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match msg {
                None => return Seen::Close(None),
                Some(Err(_)) => return Seen::Close(None),
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() == "2" && self.auto_pong {
                        self.send("3").await;
                        continue;
                    }
                    return Seen::Text(t.to_string());
                }
                Some(Ok(Message::Binary(b))) => return Seen::Binary(b.to_vec()),
                Some(Ok(Message::Close(f))) => return Seen::Close(f),
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn recv_text(&mut self) -> String {
        match self.next().await {
            Seen::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next Socket.IO packet.
    pub async fn recv_packet(&mut self) -> Packet {
        let t = self.recv_text().await;
        let body = t
            .strip_prefix('4')
            .unwrap_or_else(|| panic!("expected a message packet, got {t:?}"));
        Packet::decode(body).expect("valid Socket.IO packet")
    }

    /// The next EVENT as (namespace, name, args).
    pub async fn recv_event(&mut self) -> (String, String, Vec<Value>) {
        let p = self.recv_packet().await;
        assert!(
            matches!(p.kind, PacketKind::Event | PacketKind::BinaryEvent),
            "expected an event, got {p:?}"
        );
        let mut args = match p.data {
            Some(Value::Array(a)) => a,
            other => panic!("bad event data {other:?}"),
        };
        let name = args.remove(0).as_str().expect("event name").to_owned();
        (p.nsp, name, args)
    }

    /// Skips frames until an event with this name arrives; returns its first argument.
    pub async fn wait_event(&mut self, name: &str) -> Value {
        for _ in 0..100 {
            let p = self.recv_packet().await;
            if p.event_name() == Some(name) {
                return p
                    .data
                    .and_then(|d| d.get(1).cloned())
                    .unwrap_or(Value::Null);
            }
        }
        panic!("no {name} event in 100 packets");
    }

    /// Waits for the close frame (skipping other frames) and returns it.
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        for _ in 0..10_000 {
            if let Seen::Close(f) = self.next().await {
                return f;
            }
        }
        panic!("no close frame");
    }

    /// Sends CONNECT for `nsp` and returns the answer packet (CONNECT or CONNECT_ERROR).
    pub async fn connect_namespace(&mut self, nsp: &str, auth: Option<Value>) -> Packet {
        self.send_packet(&Packet::connect(nsp, auth)).await;
        loop {
            let p = self.recv_packet().await;
            if p.nsp == nsp && matches!(p.kind, PacketKind::Connect | PacketKind::ConnectError) {
                return p;
            }
        }
    }

    /// Connects `nsp` and asserts success; returns the socket id.
    pub async fn join_namespace(&mut self, nsp: &str, auth: Option<Value>) -> String {
        let p = self.connect_namespace(nsp, auth).await;
        assert_eq!(
            p.kind,
            PacketKind::Connect,
            "CONNECT to {nsp} refused: {p:?}"
        );
        p.data
            .and_then(|d| d["sid"].as_str().map(str::to_owned))
            .expect("sid")
    }

    /// Emits with an ack request and waits for that ack, skipping other packets (returned
    /// in order as the second value).
    pub async fn call(
        &mut self,
        nsp: &str,
        event: &str,
        args: Vec<Value>,
    ) -> (Vec<Value>, Vec<Packet>) {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send_packet(&Packet::event(nsp, event, args, Some(id)))
            .await;
        let mut skipped = Vec::new();
        // Bounded, and generous: a busy room can queue many events before a slow (loaded)
        // machine answers (each receive has its own timeout too).
        for _ in 0..20_000 {
            let p = self.recv_packet().await;
            if p.kind == PacketKind::Ack && p.id == Some(id) && p.nsp == nsp {
                match p.data {
                    Some(Value::Array(a)) => return (a, skipped),
                    other => panic!("bad ack data {other:?}"),
                }
            }
            skipped.push(p);
        }
        panic!("no ack for {event}");
    }

    /// Like [`Client::call`] for the chat's one-object requests: returns the reply object.
    pub async fn request(&mut self, nsp: &str, event: &str, arg: Value) -> Value {
        let (mut args, _) = self.call(nsp, event, vec![arg]).await;
        assert_eq!(args.len(), 1, "one reply object expected");
        args.remove(0)
    }

    /// A round trip that proves everything queued for this client before it has arrived:
    /// returns the events seen on the way, as (namespace, name, first arg).
    pub async fn drain(&mut self, nsp: &str, echo_event: &str) -> Vec<(String, String, Value)> {
        let (_, skipped) = self.call(nsp, echo_event, vec![json!("barrier")]).await;
        skipped
            .into_iter()
            .filter_map(|p| {
                let name = p.event_name()?.to_owned();
                let arg = p
                    .data
                    .as_ref()
                    .and_then(|d| d.get(1).cloned())
                    .unwrap_or(Value::Null);
                Some((p.nsp, name, arg))
            })
            .collect()
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

impl Client {
    /// Sends a packet; an error instead of a panic when the connection is gone.
    pub async fn send_packet_checked(&mut self, p: &Packet) -> Result<(), String> {
        self.ws
            .send(Message::text(p.encode_frame()))
            .await
            .map_err(|e| e.to_string())
    }
}
