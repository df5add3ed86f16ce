//! One benchmark connection: a TCP socket bound to a chosen loopback source address, the
//! WebSocket handshake (or, with [`Transport::Polling`], the Engine.IO long-polling handshake),
//! and then either the Socket.IO handshake (open packet, CONNECT with `{nick}`, `join` with its
//! ack) or the bare peer's one-line join. Everything Socket.IO is encoded and decoded with
//! `chat-protocol`, so the generator speaks exactly what the chat server's own clients speak.
//! [`Client`] is either transport behind the same calls, so the scenarios do not know which.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use chat_protocol::{engine_io, socket_io};
use serde_json::json;
use tokio::net::TcpSocket;

use crate::polling::Polling;
use crate::ws::Msg;
pub use crate::ws::Ws;

/// How the generator talks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Engine.IO v4 + Socket.IO v5 on `/socket.io/`: chat-server, Node socket.io, socketioxide.
    Sio,
    /// Bare WebSocket frames (the `bench-bare` peer): `join:<room>` then payloads as-is.
    Raw,
}

/// The Engine.IO transport a Socket.IO client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A WebSocket from the start (`transport=websocket`), what every scenario uses by default.
    #[default]
    Websocket,
    /// HTTP long-polling only (`transport=polling`, no upgrade): a held GET and POSTs.
    Polling,
}

/// Where to connect and how.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub mode: Mode,
    /// Only with [`Mode::Sio`]: the bare peer speaks WebSocket only.
    pub transport: Transport,
    /// How many loopback source addresses to spread over: 127.0.0.2, 127.0.0.3, ...
    pub src_addrs: u8,
    /// First source address index (so several processes use different addresses).
    pub src_base: u8,
}

impl Target {
    /// The source address for connection number `i`.
    pub fn src_for(&self, i: usize) -> IpAddr {
        let n = usize::from(self.src_addrs.max(1));
        let last = (usize::from(self.src_base) + i % n) % 250;
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + last as u8))
    }

    fn path(&self) -> &'static str {
        match self.mode {
            Mode::Sio => "/socket.io/?EIO=4&transport=websocket",
            Mode::Raw => "/",
        }
    }
}

/// Every step of connecting has this long at most.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// A `join` not acked within this long is sent once more. One peer (socketioxide) sometimes
/// never acked a join sent right after its CONNECT answer while 2,000 members were joining;
/// the retries are counted ([`join_retries`]) and reported, so the peer still gets measured
/// and the miss stays visible.
pub const JOIN_RETRY_AFTER: Duration = Duration::from_secs(5);

static JOIN_RETRIES: AtomicU64 = AtomicU64::new(0);

/// How many joins this process had to send twice.
pub fn join_retries() -> u64 {
    JOIN_RETRIES.load(Ordering::Relaxed)
}

/// One client connection over either transport; the calls the scenarios make, dispatched.
#[derive(Debug)]
pub enum Client {
    Ws(Ws),
    Polling(Polling),
}

impl Client {
    /// Sends one text message (over polling: queued for the next POST, which goes out at once
    /// unless one is under way).
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        match self {
            Client::Ws(ws) => ws.send_text(text).await,
            Client::Polling(p) => p.queue_text(text),
        }
    }

    /// The next message; `None` when the server ended the connection between messages.
    /// Cancel-safe on both transports.
    pub async fn next(&mut self) -> anyhow::Result<Option<Msg>> {
        match self {
            Client::Ws(ws) => ws.next().await,
            Client::Polling(p) => p.next().await,
        }
    }

    /// The next message if it has been received already.
    pub fn buffered(&mut self) -> anyhow::Result<Option<Msg>> {
        match self {
            Client::Ws(ws) => ws.buffered(),
            Client::Polling(p) => p.buffered(),
        }
    }

    /// Closes gracefully (a WebSocket close handshake, or polling's close packet); the caller
    /// bounds it in time.
    pub async fn close(&mut self) -> anyhow::Result<()> {
        match self {
            Client::Ws(ws) => ws.close().await,
            Client::Polling(p) => p.close().await,
        }
    }
}

/// Opens the connection from `src` (bound before connect, so the ephemeral ports of each
/// source address are a separate pool) and does the WebSocket or the polling handshake.
pub async fn open(target: &Target, src: IpAddr) -> anyhow::Result<Client> {
    if target.transport == Transport::Polling {
        if target.mode == Mode::Raw {
            bail!("the bare peer speaks WebSocket only");
        }
        return Ok(Client::Polling(Polling::connect(target.addr, src).await?));
    }
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(src, 0))
        .with_context(|| format!("bind {src}"))?;
    let stream = tokio::time::timeout(STEP_TIMEOUT, socket.connect(target.addr))
        .await
        .map_err(|_| anyhow!("connect timed out"))??;
    stream.set_nodelay(true)?;
    let ws = tokio::time::timeout(
        STEP_TIMEOUT,
        Ws::handshake(stream, target.addr, target.path()),
    )
    .await
    .map_err(|_| anyhow!("websocket handshake timed out"))??;
    Ok(Client::Ws(ws))
}

/// Connects and, in Socket.IO mode, CONNECTs to `/` with `{nick}`. Returns the socket ready
/// for events (or, in raw mode, ready for `join`).
pub async fn connect(target: &Target, src: IpAddr, nick: &str) -> anyhow::Result<Client> {
    let mut ws = open(target, src).await?;
    if target.mode == Mode::Raw {
        return Ok(ws);
    }
    // The open packet comes first.
    let first = next_text(&mut ws).await?;
    match engine_io::Packet::decode(&first) {
        Ok(engine_io::Packet::Open(_)) => {}
        other => bail!("expected the open packet, got {other:?}"),
    }
    let connect = socket_io::Packet::connect("/", Some(json!({ "nick": nick })));
    ws.send_text(&connect.encode_frame()).await?;
    loop {
        let text = next_sio(&mut ws).await?;
        let Some(packet) = text else { continue };
        match packet.kind {
            socket_io::PacketKind::Connect => return Ok(ws),
            socket_io::PacketKind::ConnectError => bail!("connect refused: {:?}", packet.data),
            _ => {}
        }
    }
}

/// Joins `room`: the `join` event with ack id 1 in Socket.IO mode (waits for the ack), or
/// `join:<room>` and the peer's `ok` in raw mode.
pub async fn join(ws: &mut Client, mode: Mode, room: &str) -> anyhow::Result<()> {
    match mode {
        Mode::Raw => {
            ws.send_text(&format!("join:{room}")).await?;
            loop {
                if next_text(ws).await? == "ok" {
                    return Ok(());
                }
            }
        }
        Mode::Sio => {
            let join = |id| {
                socket_io::Packet::event("/", "join", vec![json!({ "room": room })], Some(id))
                    .encode_frame()
            };
            ws.send_text(&join(1)).await?;
            let retry_at = tokio::time::Instant::now() + JOIN_RETRY_AFTER;
            let mut retried = false;
            loop {
                let packet = if retried {
                    next_sio(ws).await?
                } else {
                    match tokio::time::timeout_at(retry_at, next_sio(ws)).await {
                        Ok(packet) => packet?,
                        Err(_) => {
                            // No ack yet: ask once more (joining twice is harmless) and count it.
                            JOIN_RETRIES.fetch_add(1, Ordering::Relaxed);
                            retried = true;
                            ws.send_text(&join(2)).await?;
                            continue;
                        }
                    }
                };
                let Some(packet) = packet else {
                    continue;
                };
                if packet.kind == socket_io::PacketKind::Ack && matches!(packet.id, Some(1 | 2)) {
                    let ok = packet
                        .data
                        .as_ref()
                        .and_then(|d| d.get(0))
                        .and_then(|a| a.get("ok"))
                        .and_then(|o| o.as_bool());
                    if ok == Some(false) {
                        bail!("join refused: {:?}", packet.data);
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// The next text frame, within [`STEP_TIMEOUT`]. Binary frames are skipped; a close is an error.
pub async fn next_text(ws: &mut Client) -> anyhow::Result<String> {
    loop {
        let msg = tokio::time::timeout(STEP_TIMEOUT, ws.next())
            .await
            .map_err(|_| anyhow!("no frame within {STEP_TIMEOUT:?}"))??
            .ok_or_else(|| anyhow!("connection closed"))?;
        match msg {
            Msg::Text(t) => return Ok(t),
            Msg::Close(c) => bail!("closed by the server: {c:?}"),
            Msg::Binary(_) => {}
        }
    }
}

/// The next Socket.IO packet; answers Engine.IO pings on the way (returns `None` for them).
async fn next_sio(ws: &mut Client) -> anyhow::Result<Option<socket_io::Packet>> {
    let text = next_text(ws).await?;
    match engine_io::Packet::decode(&text) {
        Ok(engine_io::Packet::Ping(data)) => {
            ws.send_text(&engine_io::Packet::Pong(data).encode())
                .await?;
            Ok(None)
        }
        Ok(engine_io::Packet::Message(inner)) => Ok(Some(
            socket_io::Packet::decode(&inner).map_err(|e| anyhow!("bad packet {inner:?}: {e}"))?,
        )),
        Ok(engine_io::Packet::Close) => bail!("engine.io close"),
        Ok(_) => Ok(None),
        Err(e) => bail!("bad frame {text:?}: {e}"),
    }
}

/// The frame a publisher sends: `message {room, text}` with an ack id in Socket.IO mode, the
/// text itself in raw mode.
pub fn publish_frame(mode: Mode, room: &str, text: &str, ack_id: u64) -> String {
    match mode {
        Mode::Raw => text.to_owned(),
        Mode::Sio => socket_io::Packet::event(
            "/",
            "message",
            vec![json!({ "room": room, "text": text })],
            Some(ack_id),
        )
        .encode_frame(),
    }
}

/// Answers an Engine.IO ping frame (`2...`) with its pong; true when `text` was one.
pub async fn answer_ping(ws: &mut Client, mode: Mode, text: &str) -> anyhow::Result<bool> {
    if mode == Mode::Sio && text.starts_with('2') {
        let data = text[1..].to_owned();
        ws.send_text(&engine_io::Packet::Pong(data).encode())
            .await?;
        return Ok(true);
    }
    Ok(false)
}
