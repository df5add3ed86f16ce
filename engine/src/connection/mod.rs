//! One WebSocket connection: the Engine.IO session and the Socket.IO packets on it.
//!
//! Two tasks per connection. This one reads: one `select!` over inbound frames, the
//! heartbeat/connect-timeout timer, the connection's close signal and the server's shutdown;
//! it runs handlers one at a time, so a client's events are handled, and their acks and
//! broadcasts queued, in arrival order. The writer task owns the socket's write half: it takes
//! everything queued and writes it as frames with vectored writes (see [`wire`];
//! tungstenite only reads, and its pongs and close replies reach the writer as control bytes).
//!
//! Limits enforced here (see [`EngineConfig`](super::EngineConfig)): namespaces per
//! connection, the per-connection rate limit on CONNECT and EVENT packets (`rate_limit`),
//! and a deadline and a byte budget for binary attachments.
//!
//! Files: this one (the session and the reader: frames, packets, CONNECT, attachments),
//! `rate_limit.rs` (the token bucket and what an event over it gets), `sockets.rs` (the
//! connection's sockets by namespace), `writer.rs` (the task that drains the outbox into
//! the socket).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use chat_protocol::DecodeError;
use chat_protocol::engine_io::{self, OpenPayload};
use chat_protocol::socket_io::{BinaryAssembler, Incoming, Packet, PacketKind};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, warn};

use super::Engine;
use super::namespace::{
    ConnectError, ConnectRequest, ConnectionInfo, Event, EventArgs, Extensions,
};
use super::outbox::{CloseReason, EncodedPacket, Outbox, session_outbox};
use super::socket::{AckResponse, AckSender, Socket};
use super::wire::{self, websocket_config};

mod rate_limit;
mod sockets;
mod writer;

use rate_limit::{Admit, TokenBucket};
use sockets::SocketsByNamespace;
pub(crate) use writer::write_loop;

/// Serves one upgraded connection until it closes (`leftover`: bytes read past the upgrade
/// request, the start of the first frames).
pub(crate) async fn serve<S>(
    engine: Engine,
    stream: S,
    leftover: Vec<u8>,
    info: Arc<ConnectionInfo>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The start in a block: a local of this function lives in the connection's future (held
    // for the connection's life) until its scope ends, even when no longer used; what only
    // the start needs (the config, the open packet) goes out of scope with the block. Not
    // `engine.config().clone()` either, for the same reason.
    let (mut ws, mut conn, writer) = {
        let config = engine.config();
        let (read, write, control) = wire::split(stream);
        let ws_config = websocket_config(config.max_payload, config.max_frame_size);
        let ws =
            WebSocketStream::from_partially_read(read, leftover, Role::Server, Some(ws_config))
                .await;
        let (outbox, rx) = session_outbox(config.outbox_bounds(), &engine.shutdown_token());
        let open = engine_io::Packet::Open(OpenPayload {
            sid: info.id.to_string(),
            upgrades: Vec::new(),
            ping_interval: config.ping_interval.as_millis() as u64,
            ping_timeout: config.ping_timeout.as_millis() as u64,
            max_payload: config.max_payload as u64,
        })
        .encode();
        // The queue is empty, so the open packet is the first frame.
        let _ = outbox.send(EncodedPacket::raw(open), false);
        let writer = tokio::spawn(write_loop(write, rx, control));
        (ws, Connection::new(engine, info, outbox), writer)
    };
    let reason = conn.read_loop(&mut ws).await;
    // tungstenite answers a peer's close when it next writes: this puts the answer in the
    // control bytes, which the writer sends before it closes.
    let _ = ws.flush().await;
    drop(ws);
    conn.finish(reason).await;
    let _ = writer.await;
}

/// The Socket.IO side of one Engine.IO session, whatever its transport: the reader's state.
/// [`serve`] runs one over a WebSocket; a long-polling session (`engine::polling`) runs one
/// over the frames its POSTs carry, then over the WebSocket it upgrades to.
pub(crate) struct Connection {
    engine: Engine,
    info: Arc<ConnectionInfo>,
    outbox: Outbox,
    extensions: Extensions,
    /// The sockets of this connection, by namespace name.
    sockets: SocketsByNamespace,
    /// A binary packet waiting for its attachments (boxed: rare, and inline every
    /// connection would carry its size).
    pending: Option<Box<BinaryAssembler>>,
    /// Bytes of attachments received for `pending` (bounded by `max_payload`).
    pending_bytes: usize,
    /// When `pending` must be complete (`attachment_timeout`).
    attachment_deadline: Option<Instant>,
    /// The rate limit on inbound CONNECT and EVENT packets.
    bucket: TokenBucket,
    /// Reading is paused until then (set when an event was over the rate limit).
    resume_at: Option<Instant>,
    /// When the current run of over-limit events began (cleared once the client calms down).
    throttled_since: Option<Instant>,
    /// When the last rate-limit `notice` was sent (at most one per second).
    last_notice: Option<Instant>,
}

/// What ends the read loop early: the close reason to send.
type Close = CloseReason;

impl Connection {
    /// A session's reader state; `outbox` is the session's queue, drained by whichever
    /// transport holds it, and made by [`session_outbox`] with the engine's shutdown token
    /// (the reader learns of the shutdown through it).
    pub(crate) fn new(engine: Engine, info: Arc<ConnectionInfo>, outbox: Outbox) -> Connection {
        let bucket = {
            let config = engine.config();
            TokenBucket::new(config.rate_burst, config.rate_per_sec)
        };
        Connection {
            engine,
            info,
            outbox,
            extensions: Extensions::default(),
            sockets: SocketsByNamespace::default(),
            pending: None,
            pending_bytes: 0,
            attachment_deadline: None,
            bucket,
            resume_at: None,
            throttled_since: None,
            last_notice: None,
        }
    }

    /// Ends the session: closes its queue with `reason` (the transport's writer sends what is
    /// left and the close) and its sockets (their disconnect handlers run).
    pub(crate) async fn finish(mut self, reason: CloseReason) {
        // Counted by the reason the outbox was closed with, if it was already (a slow
        // consumer, a polling client gone): the reader only saw "forced".
        let counted = self.outbox.reason().unwrap_or_else(|| reason.clone());
        self.engine.stats().closed(&counted);
        self.outbox.close(reason.clone());
        // The Socket.IO disconnect reason the handlers see (and the server logs): for a close
        // from elsewhere, why it was closed (a slow consumer, a polling request that broke
        // the rules) rather than "forced".
        let why = if reason == CloseReason::NORMAL {
            "transport close"
        } else if reason == CloseReason::FORCED && counted != CloseReason::NORMAL {
            counted.reason
        } else {
            reason.reason
        };
        for (_, socket) in self.sockets.drain() {
            Box::pin(socket.close(why)).await;
        }
        debug!(remote = %self.info.remote, code = reason.code, reason = reason.reason, "session closed");
    }

    /// Reads and handles the session's inbound frames until it ends; returns why.
    pub(crate) async fn read_loop<S>(&mut self, mut stream: S) -> CloseReason
    where
        S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    {
        // Locals live in the connection's future until their scope ends: what is only
        // needed to start, or to set the timer before each wait, is scoped to a block.
        let (mut next_ping, mut connect_deadline) = {
            let config = self.engine.config();
            let opened = Instant::now();
            (
                opened + config.ping_interval,
                Some(opened + config.connect_timeout),
            )
        };
        // While a ping waits for its pong: when the pong is due, and the ping's place in the
        // outbox (a pong counts once the ping has left it: see `on_frame`).
        let mut pong_deadline: Option<(Instant, u64)> = None;
        // Made once for the connection's life, not per frame: each new wait registered with
        // the close token and the timer wheel, and unregistered on drop. One wait for a close
        // from elsewhere and for the server's shutdown: the queue's close token is a child of
        // the shutdown token (`session_outbox`); a second wait was ~80 bytes in every task.
        let mut ended = std::pin::pin!(self.outbox.closer_token().cancelled_owned());
        let mut timer_sleep = std::pin::pin!(sleep_until(next_ping));

        loop {
            let paused = {
                let now = Instant::now();
                if self.resume_at.is_some_and(|t| now >= t) {
                    self.resume_at = None;
                }
                // While a ping waits for its pong, the next ping is not due: its time (already
                // past) must not be the timer, or the loop spins until the pong arrives.
                let heartbeat = pong_deadline.map_or(next_ping, |(due, _)| due);
                let timer = [connect_deadline, self.attachment_deadline, self.resume_at]
                    .into_iter()
                    .flatten()
                    .fold(heartbeat, Instant::min);
                if timer_sleep.deadline() != timer {
                    timer_sleep.as_mut().reset(timer);
                }
                self.resume_at.is_some()
            };
            tokio::select! {
                biased;
                // Closed from elsewhere (a slow-consumer verdict or `Socket` code), or else the
                // server's shutdown: 1001 and no Socket.IO DISCONNECT, so clients reconnect.
                () = &mut ended => {
                    return if self.outbox.is_closed() {
                        CloseReason::FORCED
                    } else {
                        CloseReason::GOING_AWAY
                    };
                }
                // Inbound frames, handled to completion one at a time (not while paused by
                // the rate limit: unread frames wait in the client's TCP window).
                frame = stream.next(), if !paused => {
                    let result = match frame {
                        None => return CloseReason { code: 1006, reason: "transport close" },
                        Some(Err(tungstenite::Error::Capacity(_))) => return CloseReason::TOO_BIG,
                        Some(Err(tungstenite::Error::Utf8(_))) => return CloseReason::INVALID_UTF8,
                        Some(Err(tungstenite::Error::Protocol(
                            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                        ))) => return CloseReason::CONNECTION_RESET,
                        Some(Err(tungstenite::Error::Io(e)))
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::ConnectionReset
                                    | std::io::ErrorKind::ConnectionAborted
                                    | std::io::ErrorKind::BrokenPipe
                                    | std::io::ErrorKind::UnexpectedEof
                            ) =>
                        {
                            return CloseReason::CONNECTION_RESET;
                        }
                        Some(Err(tungstenite::Error::Protocol(e))) => {
                            debug!(remote = %self.info.remote, error = %e, "WebSocket protocol error");
                            return CloseReason::WS_PROTOCOL;
                        }
                        Some(Err(e)) => {
                            debug!(remote = %self.info.remote, error = %e, "read error");
                            return CloseReason { code: 1006, reason: "transport error" };
                        }
                        // Boxed: the handling future is large and lives only while a frame is
                        // handled; inline, every idle connection's task would carry its size.
                        Some(Ok(message)) => Box::pin(self.on_frame(message, &mut pong_deadline, &mut next_ping)).await,
                    };
                    if let Err(close) = result {
                        return close;
                    }
                    if connect_deadline.is_some() && !self.sockets.is_empty() {
                        connect_deadline = None;
                    }
                }
                // Heartbeat, connect timeout, attachment timeout, end of a rate-limit pause.
                () = &mut timer_sleep => {
                    let now = Instant::now();
                    if self.attachment_deadline.is_some_and(|d| now >= d) {
                        return CloseReason::ATTACHMENT_TIMEOUT;
                    }
                    if connect_deadline.is_some_and(|d| now >= d) {
                        if self.sockets.is_empty() {
                            return CloseReason::CONNECT_TIMEOUT;
                        }
                        connect_deadline = None;
                    }
                    if pong_deadline.is_some_and(|(due, _)| now >= due) {
                        return CloseReason::PING_TIMEOUT;
                    }
                    if pong_deadline.is_none() && now >= next_ping {
                        let ping = EncodedPacket::raw(engine_io::Packet::Ping(String::new()).encode());
                        // Not queued: the connection is closed, and `ended` ends the loop.
                        let at = self.outbox.send_counted(ping).unwrap_or(u64::MAX);
                        pong_deadline = Some((now + self.engine.config().ping_timeout, at));
                    }
                }
            }
        }
    }

    async fn on_frame(
        &mut self,
        message: Message,
        pong_deadline: &mut Option<(Instant, u64)>,
        next_ping: &mut Instant,
    ) -> Result<(), Close> {
        match message {
            Message::Text(text) => {
                if self.pending.is_some() {
                    return Err(CloseReason::PROTOCOL);
                }
                match engine_io::Packet::decode(text.as_str())
                    .map_err(|_| CloseReason::PARSE_ERROR)?
                {
                    engine_io::Packet::Message(data) => {
                        let packet = Incoming::decode(&data).map_err(|e| {
                            debug!(remote = %self.info.remote, error = %e, "bad Socket.IO packet");
                            match e {
                                DecodeError::LoneSurrogate(_) => CloseReason::INVALID_UTF8,
                                _ => CloseReason::PARSE_ERROR,
                            }
                        })?;
                        match packet {
                            // An EVENT's arguments stay JSON text until its handler reads them.
                            Incoming::Event(e) => {
                                let args = EventArgs::Json(e.args);
                                self.on_event(&e.nsp, e.id, e.name, args, Vec::new()).await
                            }
                            Incoming::Packet(packet) => self.on_packet(packet).await,
                        }
                    }
                    // A pong answers the ping only once the ping has left the outbox (taken
                    // by a held GET, or by the WebSocket's writer): a polling session that
                    // never GETs cannot keep itself alive with pongs sent blind, and is
                    // closed at the ping timeout. (A WebSocket's writer takes the ping into
                    // the kernel's buffers even when the client does not read: that client
                    // is closed as a slow consumer once those fill.)
                    engine_io::Packet::Pong(_) => {
                        if pong_deadline.is_some_and(|(_, at)| self.outbox.was_taken(at)) {
                            *pong_deadline = None;
                            *next_ping = Instant::now() + self.engine.config().ping_interval;
                        }
                        Ok(())
                    }
                    engine_io::Packet::Close => Err(CloseReason::NORMAL),
                    engine_io::Packet::Noop => Ok(()),
                    // In v4 only the server pings; an open or upgrade makes no sense here.
                    engine_io::Packet::Ping(_)
                    | engine_io::Packet::Open(_)
                    | engine_io::Packet::Upgrade => Err(CloseReason::PROTOCOL),
                }
            }
            Message::Binary(bytes) => {
                let assembler = self.pending.as_mut().ok_or(CloseReason::PROTOCOL)?;
                self.pending_bytes = self.pending_bytes.saturating_add(bytes.len());
                if self.pending_bytes > self.engine.config().max_payload {
                    return Err(CloseReason::TOO_BIG);
                }
                if !assembler.push(bytes) {
                    return Ok(());
                }
                let (packet, attachments) =
                    self.pending.take().ok_or(CloseReason::PROTOCOL)?.finish();
                self.attachment_deadline = None;
                self.pending_bytes = 0;
                self.on_complete(packet, attachments).await
            }
            Message::Close(_) => Err(CloseReason::NORMAL),
            // WebSocket-level pings are answered by tungstenite itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    async fn on_packet(&mut self, packet: Packet) -> Result<(), Close> {
        match packet.kind {
            PacketKind::Connect => self.on_connect(packet).await,
            PacketKind::Disconnect => {
                let socket = self
                    .sockets
                    .remove(&packet.nsp)
                    .ok_or(CloseReason::PROTOCOL)?;
                socket.close("client namespace disconnect").await;
                Ok(())
            }
            PacketKind::BinaryEvent | PacketKind::BinaryAck if packet.attachments > 0 => {
                let config = self.engine.config();
                if packet.attachments > config.max_attachments {
                    return Err(CloseReason::PROTOCOL);
                }
                self.attachment_deadline = Some(Instant::now() + config.attachment_timeout);
                self.pending_bytes = 0;
                self.pending = Some(Box::new(BinaryAssembler::new(packet)));
                Ok(())
            }
            PacketKind::Event
            | PacketKind::Ack
            | PacketKind::BinaryEvent
            | PacketKind::BinaryAck => self.on_complete(packet, Vec::new()).await,
            PacketKind::ConnectError => Err(CloseReason::PROTOCOL),
        }
    }

    /// The connected socket of namespace `nsp`; `None` when the server disconnected it a
    /// moment ago (packets already in flight for it are dropped).
    fn connected(&mut self, nsp: &str) -> Result<Option<Socket>, Close> {
        match self.sockets.get(nsp) {
            Some(s) if s.is_connected() => Ok(Some(s.clone())),
            Some(_) => {
                self.sockets.remove(nsp);
                Ok(None)
            }
            None => Err(CloseReason::PROTOCOL),
        }
    }

    /// A BINARY_EVENT, or an ACK, with all its attachments.
    async fn on_complete(&mut self, packet: Packet, attachments: Vec<Bytes>) -> Result<(), Close> {
        let Some(Value::Array(mut args)) = packet.data else {
            return Err(CloseReason::PROTOCOL);
        };
        if matches!(packet.kind, PacketKind::Ack | PacketKind::BinaryAck) {
            if let (Some(socket), Some(id)) = (self.connected(&packet.nsp)?, packet.id) {
                socket.resolve_ack(id, AckResponse { args, attachments });
            }
            return Ok(());
        }
        let name = match args.remove(0) {
            Value::String(name) => name,
            _ => return Err(CloseReason::PROTOCOL),
        };
        let args = EventArgs::Values(args);
        self.on_event(&packet.nsp, packet.id, name, args, attachments)
            .await
    }

    /// An event: admitted by the rate limit, handed to its handler.
    async fn on_event(
        &mut self,
        nsp: &str,
        id: Option<u64>,
        name: String,
        args: EventArgs,
        attachments: Vec<Bytes>,
    ) -> Result<(), Close> {
        let Some(socket) = self.connected(nsp)? else {
            return Ok(());
        };
        if let Admit::Refused = self.admit(nsp, id, false)? {
            return Ok(());
        }
        let Some(handler) = socket.namespace().handlers().event_handler(&name).cloned() else {
            return Ok(());
        };
        let ack = id.map(|id| AckSender::new(self.outbox.clone(), nsp, id));
        let event = Event::new(name, args, attachments, ack);
        if AssertUnwindSafe(handler(socket, event))
            .catch_unwind()
            .await
            .is_err()
        {
            warn!(remote = %self.info.remote, "event handler panicked; closing the connection");
            return Err(CloseReason {
                code: 1011,
                reason: "internal error",
            });
        }
        Ok(())
    }

    /// Answers a CONNECT with its CONNECT_ERROR, counted as a refusal.
    fn refuse_connect(&self, packet: Packet) {
        self.engine.stats().refused(crate::stats::Refusal::Connect);
        self.send_alone(packet);
    }

    async fn on_connect(&mut self, packet: Packet) -> Result<(), Close> {
        let nsp = packet.nsp;
        match self.sockets.get(&nsp) {
            Some(socket) if socket.is_connected() => return Err(CloseReason::PROTOCOL),
            // Disconnected by the server: the client may connect it again.
            Some(_) => {
                self.sockets.remove(&nsp);
            }
            None => {}
        }
        if let Admit::Refused = self.admit(&nsp, None, true)? {
            return Ok(());
        }
        let connected = self.sockets.values().filter(|s| s.is_connected()).count();
        if connected >= self.engine.config().max_namespaces {
            self.refuse_connect(Packet::connect_error(
                &nsp,
                "Too many namespaces",
                Some(json!({"limit": self.engine.config().max_namespaces})),
            ));
            return Ok(());
        }
        let too_long = nsp.chars().count() > self.engine.config().max_namespace_len;
        let Some(ns) = (!too_long)
            .then(|| self.engine.resolve_namespace(&nsp))
            .flatten()
        else {
            self.refuse_connect(Packet::connect_error(&nsp, "Invalid namespace", None));
            return Ok(());
        };
        let auth = packet
            .data
            .unwrap_or_else(|| Value::Object(Default::default()));
        let request = ConnectRequest {
            namespace: ns.clone(),
            auth: auth.clone(),
            conn: self.info.clone(),
            extensions: self.extensions.clone(),
        };
        for middleware in ns.handlers().middleware.clone() {
            match AssertUnwindSafe(middleware(request.clone()))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(ConnectError { message, data })) => {
                    self.refuse_connect(Packet::connect_error(&nsp, &message, data));
                    return Ok(());
                }
                Err(_) => {
                    warn!(remote = %self.info.remote, "connect middleware panicked");
                    self.refuse_connect(Packet::connect_error(&nsp, "internal error", None));
                    return Ok(());
                }
            }
        }
        // Admitted: only now is a dynamic namespace registered (or the instance another
        // connection registered meanwhile taken), pinned until the socket is in it.
        let registered = ns.register();
        let ns = registered.ns.clone();
        let socket = Socket::new(
            ns.clone(),
            self.outbox.clone(),
            self.info.clone(),
            self.extensions.clone(),
        );
        ns.add_socket(&socket);
        drop(registered);
        self.send_alone(Packet::connect_ok(&nsp, socket.sid().as_str()));
        self.sockets.insert(nsp, socket.clone());
        if let Some(on_connect) = ns.handlers().on_connect.clone()
            && AssertUnwindSafe(on_connect(socket, auth))
                .catch_unwind()
                .await
                .is_err()
        {
            warn!(remote = %self.info.remote, "connect handler panicked; closing the connection");
            return Err(CloseReason {
                code: 1011,
                reason: "internal error",
            });
        }
        Ok(())
    }

    fn send(&self, packet: Packet) {
        let _ = self
            .outbox
            .send(EncodedPacket::new(packet, Vec::new()), false);
    }

    /// A CONNECT answer (ok or error): written apart from what follows it, since some
    /// clients (the official test-suite's) lose a second frame read in the same TCP chunk.
    fn send_alone(&self, packet: Packet) {
        let _ = self
            .outbox
            .send_alone(EncodedPacket::new(packet, Vec::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::Transport;
    use crate::{EngineConfig, Sid};

    fn info() -> Arc<ConnectionInfo> {
        Arc::new(ConnectionInfo::new(
            Sid::random(),
            "127.0.0.1:1".parse().unwrap(),
            String::new(),
            Transport::WebSocket,
        ))
    }

    #[tokio::test]
    async fn one_wait_ends_the_reader_on_a_close_and_on_the_shutdown() {
        for shutdown in [false, true] {
            let engine = Engine::new(EngineConfig::default());
            let (outbox, _rx) = session_outbox(
                EngineConfig::default().outbox_bounds(),
                &engine.shutdown_token(),
            );
            let mut conn = Connection::new(engine.clone(), info(), outbox.clone());
            let frames = futures_util::stream::pending::<Result<Message, tungstenite::Error>>();
            let reader = conn.read_loop(frames);
            if shutdown {
                engine.shutdown_token().cancel();
            } else {
                outbox.close(CloseReason::SLOW_CONSUMER);
            }
            let reason = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
                .await
                .expect("the reader ends");
            if shutdown {
                assert_eq!(reason, CloseReason::GOING_AWAY);
                // The shutdown alone does not close the queue: the reader's `finish` does.
                assert!(!outbox.is_closed());
            } else {
                assert_eq!(reason, CloseReason::FORCED);
            }
        }
    }

    #[tokio::test]
    async fn a_connection_holds_its_sockets_in_a_list_of_exactly_their_number() {
        let engine = Engine::new(EngineConfig::default());
        for name in ["/", "/a"] {
            let _ = engine.namespace(name, crate::namespace::Handlers::default());
        }
        let (outbox, _rx) = session_outbox(
            EngineConfig::default().outbox_bounds(),
            &engine.shutdown_token(),
        );
        let mut conn = Connection::new(engine, info(), outbox);
        let text =
            |t: &str| -> Result<Message, tungstenite::Error> { Ok(Message::text(t.to_owned())) };
        // Connect "/" and "/a", leave "/a", connect it again, leave it; then the stream ends.
        let frames = ["40", "40/a,", "41/a,", "40/a,", "41/a,"].map(text);
        let reason = conn.read_loop(futures_util::stream::iter(frames)).await;
        assert_eq!(reason.code, 1006, "the stream ended: {reason:?}");
        assert!(conn.sockets.get("/").is_some_and(Socket::is_connected));
        assert!(conn.sockets.get("/a").is_none());
        // One socket, room for one (a hash map kept a table of four and its hasher's keys).
        assert_eq!(conn.sockets.values().count(), 1);
        assert!(conn.sockets.capacity() <= 2, "{}", conn.sockets.capacity());
        conn.finish(reason).await;
    }

    /// Closed from elsewhere, a connection's sockets are told why (a polling request that
    /// broke the rules, a slow consumer): the server's log said "forced close" for both.
    #[tokio::test]
    async fn a_close_from_elsewhere_tells_the_handlers_its_reason() {
        for (closed_with, told) in [
            (CloseReason::PROTOCOL, CloseReason::PROTOCOL.reason),
            (
                CloseReason::SLOW_CONSUMER,
                CloseReason::SLOW_CONSUMER.reason,
            ),
            (CloseReason::NORMAL, CloseReason::FORCED.reason),
        ] {
            let engine = Engine::new(EngineConfig::default());
            let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
            let handlers = crate::namespace::Handlers::default().on_disconnect(move |_, why| {
                let _ = seen_tx.send(why);
                async {}
            });
            let _ = engine.namespace("/", handlers);
            let (outbox, _rx) = session_outbox(
                EngineConfig::default().outbox_bounds(),
                &engine.shutdown_token(),
            );
            let mut conn = Connection::new(engine, info(), outbox.clone());
            let frames = futures_util::stream::iter([Ok(Message::text("40"))])
                .chain(futures_util::stream::pending());
            let reader = async {
                let reason = conn.read_loop(frames).await;
                conn.finish(reason).await;
            };
            let closer = async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                outbox.close(closed_with.clone());
            };
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                tokio::join!(reader, closer)
            })
            .await
            .expect("the reader ends");
            assert_eq!(seen.recv().await, Some(told), "closed with {closed_with:?}");
        }
    }

    #[test]
    fn a_connections_future_holds_one_wait_and_no_start_locals() {
        // Every WebSocket connection's task holds this future (boxed) for its life. It was
        // 1,360 bytes: it waited on the queue's close token and the shutdown token apart,
        // kept what only its start needs (the open packet, the config) and its sockets in
        // a hash map (48 bytes inline; 24 as a list).
        let engine = Engine::new(EngineConfig::default());
        let (_client, server) = tokio::io::duplex(64);
        let serving = serve(engine, server, Vec::new(), info());
        let size = std::mem::size_of_val(&serving);
        assert!(size <= 1160, "the connection's future is {size} bytes");
        let conn = std::mem::size_of::<Connection>();
        assert!(conn <= 176, "the reader's state is {conn} bytes");
    }
}
