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
//! connection, the per-connection rate limit on CONNECT and EVENT packets (a token bucket;
//! over it the event is refused and the reader pauses until the next token, so a flooding
//! client is slowed by its own TCP window, and a sustained flood is closed), and a deadline
//! and a byte budget for binary attachments.

use std::collections::HashMap;
use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use chat_protocol::DecodeError;
use chat_protocol::engine_io::{self, OpenPayload};
use chat_protocol::socket_io::{BinaryAssembler, Packet, PacketKind};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, warn};

use super::Engine;
use super::buffers::{KEEP_CONTROL, KEEP_GATHER, MAX_BATCH, QUIET};
use super::namespace::{ConnectError, ConnectRequest, ConnectionInfo, Event, Extensions};
use super::outbox::{CloseReason, EncodedPacket, Next, Outbox, OutboxReceiver, outbox};
use super::socket::{AckResponse, AckSender, Socket};
use super::wire::{self, Control, websocket_config};

/// How long the writer may spend sending the close frame to a peer that is not reading (it
/// must first drain what the kernel already buffered for it).
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
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
    // Not `engine.config().clone()`: a copy held across an `.await` would sit in every idle
    // connection's task.
    let config = engine.config();
    let (read, write, control) = wire::split(stream);
    let ws_config = websocket_config(config.max_payload, config.max_frame_size);
    let mut ws =
        WebSocketStream::from_partially_read(read, leftover, Role::Server, Some(ws_config)).await;
    let (outbox, rx) = outbox(config.outbox_capacity);

    let open = engine_io::Packet::Open(OpenPayload {
        sid: info.id.to_string(),
        upgrades: Vec::new(),
        ping_interval: config.ping_interval.as_millis() as u64,
        ping_timeout: config.ping_timeout.as_millis() as u64,
        max_payload: config.max_payload as u64,
    });
    // The queue is empty, so the open packet is the first frame.
    let _ = outbox.send(EncodedPacket::raw(open.encode()), false);
    let writer = tokio::spawn(write_loop(write, rx, control));

    let bucket = TokenBucket::new(config.rate_burst, config.rate_per_sec);
    let mut conn = Connection {
        engine: engine.clone(),
        info,
        outbox: outbox.clone(),
        extensions: Extensions::default(),
        sockets: HashMap::new(),
        pending: None,
        pending_bytes: 0,
        attachment_deadline: None,
        bucket,
        resume_at: None,
        throttled_since: None,
        last_notice: None,
    };
    let reason = conn.read_loop(&mut ws).await;
    // tungstenite answers a peer's close when it next writes: this puts the answer in the
    // control bytes, which the writer sends before it closes.
    let _ = ws.flush().await;
    drop(ws);
    outbox.close(reason.clone());
    // The Socket.IO disconnect reason the handlers see.
    let why = if reason == CloseReason::NORMAL {
        "transport close"
    } else {
        reason.reason
    };
    for (_, socket) in conn.sockets.drain() {
        Box::pin(socket.close(why)).await;
    }
    let _ = writer.await;
    debug!(id = %conn.info.id, code = reason.code, reason = reason.reason, "connection closed");
}

struct Connection {
    engine: Engine,
    info: Arc<ConnectionInfo>,
    outbox: Outbox,
    extensions: Extensions,
    /// The sockets of this connection, by namespace name.
    sockets: HashMap<String, Socket>,
    /// A binary packet waiting for its attachments.
    pending: Option<BinaryAssembler>,
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

/// A token bucket: `burst` tokens, refilled at `rate` per second. A rate of 0 disables it.
struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(burst: u32, rate: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            tokens: burst,
            burst,
            rate: f64::from(rate),
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes one token if there is one. The second value says whether the bucket was at
    /// least half full (the client is not flooding).
    fn take(&mut self, now: Instant) -> (bool, bool) {
        if self.rate <= 0.0 {
            return (true, true);
        }
        self.refill(now);
        let calm = self.tokens >= (self.burst / 2.0).max(1.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            (true, calm)
        } else {
            (false, false)
        }
    }

    /// How long until the next token.
    fn wait(&self) -> std::time::Duration {
        if self.rate <= 0.0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64(((1.0 - self.tokens).max(0.0) / self.rate).min(1.0))
    }
}

/// Whether a rate-limited packet may be handled.
enum Admit {
    Yes,
    /// Over the limit: refused (the client has been told), not handled.
    Refused,
}

/// What ends the read loop early: the close reason to send.
type Close = CloseReason;

impl Connection {
    async fn read_loop<S>(&mut self, mut stream: S) -> CloseReason
    where
        S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    {
        let (ping_interval, ping_timeout) = {
            let config = self.engine.config();
            (config.ping_interval, config.ping_timeout)
        };
        let shutdown = self.engine.shutdown_token();
        let closer = self.outbox_closer();
        let opened = Instant::now();
        let mut next_ping = opened + ping_interval;
        let mut pong_deadline: Option<Instant> = None;
        let mut connect_deadline = Some(opened + self.engine.config().connect_timeout);
        // Made once for the connection's life, not per frame: each new wait registered with
        // the close token, the shutdown token and the timer wheel, and unregistered on drop.
        let mut closed = std::pin::pin!(closer.cancelled());
        let mut shutting_down = std::pin::pin!(shutdown.cancelled());
        let mut timer_sleep = std::pin::pin!(sleep_until(next_ping));

        loop {
            let now = Instant::now();
            if self.resume_at.is_some_and(|t| now >= t) {
                self.resume_at = None;
            }
            let paused = self.resume_at.is_some();
            // While a ping waits for its pong, the next ping is not due: its time (already
            // past) must not be the timer, or the loop spins until the pong arrives.
            let heartbeat = pong_deadline.unwrap_or(next_ping);
            let timer = [connect_deadline, self.attachment_deadline, self.resume_at]
                .into_iter()
                .flatten()
                .fold(heartbeat, Instant::min);
            if timer_sleep.deadline() != timer {
                timer_sleep.as_mut().reset(timer);
            }
            tokio::select! {
                biased;
                // Closed from elsewhere: a slow-consumer verdict or `Socket` code.
                () = &mut closed => return CloseReason::FORCED,
                // Server shutdown: 1001 and no Socket.IO DISCONNECT, so clients reconnect.
                () = &mut shutting_down => return CloseReason::GOING_AWAY,
                // Inbound frames, handled to completion one at a time (not while paused by
                // the rate limit: unread frames wait in the client's TCP window).
                frame = stream.next(), if !paused => {
                    let result = match frame {
                        None => return CloseReason { code: 1006, reason: "transport close" },
                        Some(Err(tungstenite::Error::Capacity(_))) => return CloseReason::TOO_BIG,
                        Some(Err(tungstenite::Error::Utf8(_))) => return CloseReason::INVALID_UTF8,
                        Some(Err(tungstenite::Error::Protocol(e))) => {
                            debug!(id = %self.info.id, error = %e, "WebSocket protocol error");
                            return CloseReason::WS_PROTOCOL;
                        }
                        Some(Err(e)) => {
                            debug!(id = %self.info.id, error = %e, "read error");
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
                    if pong_deadline.is_some_and(|d| now >= d) {
                        return CloseReason::PING_TIMEOUT;
                    }
                    if pong_deadline.is_none() && now >= next_ping {
                        let _ = self.outbox.send(EncodedPacket::raw(engine_io::Packet::Ping(String::new()).encode()), false);
                        pong_deadline = Some(now + ping_timeout);
                    }
                }
            }
        }
    }

    fn outbox_closer(&self) -> tokio_util::sync::CancellationToken {
        // `Outbox::close` cancels this token; the read loop watches it.
        self.outbox.closer_token()
    }

    async fn on_frame(
        &mut self,
        message: Message,
        pong_deadline: &mut Option<Instant>,
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
                        let packet = Packet::decode(&data).map_err(|e| {
                            debug!(id = %self.info.id, error = %e, "bad Socket.IO packet");
                            match e {
                                DecodeError::LoneSurrogate(_) => CloseReason::INVALID_UTF8,
                                _ => CloseReason::PARSE_ERROR,
                            }
                        })?;
                        self.on_packet(packet).await
                    }
                    engine_io::Packet::Pong(_) => {
                        if pong_deadline.take().is_some() {
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
                self.pending = Some(BinaryAssembler::new(packet));
                Ok(())
            }
            PacketKind::Event
            | PacketKind::Ack
            | PacketKind::BinaryEvent
            | PacketKind::BinaryAck => self.on_complete(packet, Vec::new()).await,
            PacketKind::ConnectError => Err(CloseReason::PROTOCOL),
        }
    }

    /// An EVENT or ACK with all its attachments.
    async fn on_complete(&mut self, packet: Packet, attachments: Vec<Bytes>) -> Result<(), Close> {
        let socket = match self.sockets.get(&packet.nsp) {
            Some(s) if s.is_connected() => s.clone(),
            // Disconnected by the server a moment ago: packets already in flight are dropped.
            Some(_) => {
                self.sockets.remove(&packet.nsp);
                return Ok(());
            }
            None => return Err(CloseReason::PROTOCOL),
        };
        let Some(Value::Array(mut args)) = packet.data else {
            return Err(CloseReason::PROTOCOL);
        };
        if matches!(packet.kind, PacketKind::Ack | PacketKind::BinaryAck) {
            if let Some(id) = packet.id {
                socket.resolve_ack(id, AckResponse { args, attachments });
            }
            return Ok(());
        }
        let name = match args.remove(0) {
            Value::String(name) => name,
            _ => return Err(CloseReason::PROTOCOL),
        };
        if let Admit::Refused = self.admit(&packet.nsp, packet.id, false)? {
            return Ok(());
        }
        let Some(handler) = socket.namespace().handlers().event_handler(&name).cloned() else {
            return Ok(());
        };
        let ack = packet
            .id
            .map(|id| AckSender::new(self.outbox.clone(), &packet.nsp, id));
        let event = Event {
            name,
            args,
            attachments,
            ack,
        };
        if AssertUnwindSafe(handler(socket, event))
            .catch_unwind()
            .await
            .is_err()
        {
            warn!(id = %self.info.id, "event handler panicked; closing the connection");
            return Err(CloseReason {
                code: 1011,
                reason: "internal error",
            });
        }
        Ok(())
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
            self.send(Packet::connect_error(
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
            self.send(Packet::connect_error(&nsp, "Invalid namespace", None));
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
                    self.send(Packet::connect_error(&nsp, &message, data));
                    return Ok(());
                }
                Err(_) => {
                    warn!(id = %self.info.id, "connect middleware panicked");
                    self.send(Packet::connect_error(&nsp, "internal error", None));
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
        self.send(Packet::connect_ok(&nsp, socket.sid().as_str()));
        self.sockets.insert(nsp, socket.clone());
        if let Some(on_connect) = ns.handlers().on_connect.clone()
            && AssertUnwindSafe(on_connect(socket, auth))
                .catch_unwind()
                .await
                .is_err()
        {
            warn!(id = %self.info.id, "connect handler panicked; closing the connection");
            return Err(CloseReason {
                code: 1011,
                reason: "internal error",
            });
        }
        Ok(())
    }

    /// The rate limit for one CONNECT or EVENT. Over the limit the packet is refused: an
    /// event that asked for an ack gets `[{"ok":false,"error":{"code":"rate_limited",...}}]`,
    /// another event a `notice` event `{"text":...}` (at most one a second), a CONNECT a
    /// CONNECT_ERROR; then reading pauses until the next token. Over the limit for
    /// `flood_timeout` without the bucket once refilling to half: closed (1008).
    fn admit(&mut self, nsp: &str, ack: Option<u64>, connect: bool) -> Result<Admit, Close> {
        let now = Instant::now();
        let (ok, calm) = self.bucket.take(now);
        if calm {
            self.throttled_since = None;
        }
        if ok {
            return Ok(Admit::Yes);
        }
        let since = *self.throttled_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.engine.config().flood_timeout {
            return Err(CloseReason::RATE_LIMIT);
        }
        let replies = self.engine.rate_limit_replies();
        if connect {
            let data = replies.connect_data.clone();
            self.send(Packet::connect_error(nsp, "Rate limit exceeded", data));
        } else if let Some(id) = ack {
            self.send(Packet::ack(nsp, id, replies.ack.clone()));
        } else if let Some((event, args)) = &replies.notice
            && self.last_notice.is_none_or(|t| {
                now.saturating_duration_since(t) >= std::time::Duration::from_secs(1)
            })
        {
            self.last_notice = Some(now);
            self.send(Packet::event(nsp, event, args.clone(), None));
        }
        self.resume_at = Some(now + self.bucket.wait());
        Ok(Admit::Refused)
    }

    fn send(&self, packet: Packet) {
        let _ = self
            .outbox
            .send(EncodedPacket::new(packet, Vec::new()), false);
    }
}

/// Drains the queue into the socket: everything queued (and any control bytes tungstenite
/// wrote) goes out as one run of vectored writes. On close it finishes the batch being
/// written, writes what is still queued (unless the peer is a slow consumer), then the close
/// frame (tungstenite's answer to the peer's close, else its own), each step bounded by
/// [`CLOSE_GRACE`], and shuts the socket down.
async fn write_loop<W>(mut w: W, mut rx: OutboxReceiver, control: Arc<Control>)
where
    W: AsyncWrite + Unpin,
{
    let mut batch = std::collections::VecDeque::new();
    let mut control_bytes = Vec::new();
    // Where a batch's frames are gathered: kept from batch to batch while batches come often
    // (cut back after a burst), given back when they do not.
    let mut gather = Vec::new();
    let mut last_batch: Option<std::time::Instant> = None;
    loop {
        // The close is seen through the queue's own flag (one lock with the batch), not the
        // close token, whose check takes a lock of its own on every wake-up.
        let next = poll_fn(|cx| {
            let packets = rx.poll_next_batch(cx, &mut batch, MAX_BATCH);
            if packets == Poll::Ready(Next::Closed) {
                return Poll::Ready(Next::Closed);
            }
            let control = control.poll_take(cx, &mut control_bytes);
            if control.is_ready() || packets.is_ready() {
                Poll::Ready(Next::Packets)
            } else {
                Poll::Pending
            }
        })
        .await;
        if next == Next::Closed {
            break;
        }
        if control.overflowed() {
            rx.close(CloseReason::SLOW_CONSUMER);
        }
        // tungstenite's answer to the peer's close may arrive before the connection is marked
        // closed: it must be the last frame, so it waits for the close path below.
        let peer_closed = wire::contains_close(&control_bytes);
        let control_now: &[u8] = if peer_closed { &[] } else { &control_bytes };
        let (result, closing) = {
            let mut write = std::pin::pin!(write_batch(&mut w, &mut gather, control_now, &batch));
            let finished = tokio::select! {
                biased;
                result = &mut write => Some(result),
                // Closed while the socket does not take the batch, or pongs piling up past
                // the bound meanwhile (a peer that pings and does not read).
                () = poll_fn(|cx| {
                    if rx.poll_closed(cx).is_ready() || control.poll_overflowed(cx).is_ready() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                }) => None,
            };
            match finished {
                Some(result) => (result, peer_closed),
                // Closed mid-batch: the batch is finished first (a frame cut short would
                // garble the close frame after it), within the grace.
                None => {
                    if control.overflowed() {
                        rx.close(CloseReason::SLOW_CONSUMER);
                    }
                    match timeout(CLOSE_GRACE, write).await {
                        Ok(result) => (result, true),
                        Err(_) => (Err(std::io::ErrorKind::TimedOut.into()), true),
                    }
                }
            }
        };
        batch.clear();
        if !peer_closed {
            control_bytes.clear();
        }
        // A burst (of pongs, of packets) does not keep its buffer for the connection's life.
        control_bytes.shrink_to(KEEP_CONTROL);
        let now = std::time::Instant::now();
        if last_batch.is_some_and(|t| now.duration_since(t) < QUIET) {
            gather.shrink_to(KEEP_GATHER);
        } else {
            // A connection that writes seldom (an idle one after its CONNECT answer) holds
            // no buffer between batches.
            gather = Vec::new();
        }
        last_batch = Some(now);
        if let Err(e) = result {
            debug!(error = %e, "write failed");
            rx.close(CloseReason {
                code: 1006,
                reason: "transport error",
            });
            return;
        }
        if closing {
            break;
        }
    }
    let reason = rx.reason().unwrap_or(CloseReason::NORMAL);
    if reason.code != 1006 {
        let _ = timeout(CLOSE_GRACE, async {
            // What was queued before the close goes out first (an answer, a last error), but
            // not to a slow consumer: its queue is full because it does not read.
            if reason != CloseReason::SLOW_CONSUMER {
                while rx.take_queued(&mut batch, MAX_BATCH) {
                    write_batch(&mut w, &mut gather, &[], &batch).await?;
                    batch.clear();
                }
            }
            control.take(&mut control_bytes);
            if !wire::contains_close(&control_bytes) {
                control_bytes.extend(wire::close_frame(reason.code, reason.reason));
            }
            w.write_all(&control_bytes).await?;
            w.flush().await
        })
        .await;
    }
    let _ = timeout(CLOSE_GRACE, w.shutdown()).await;
}

/// A packet's frames: its text, then its attachments as binary frames. (Functions, not
/// closures: the writer's future must be `Send` for every lifetime of the batch it borrows.)
fn packet_frames(packet: &EncodedPacket) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::once((wire::OP_TEXT, packet.text.as_bytes()))
        .chain(packet.attachments().iter().map(attachment_frame))
}

fn attachment_frame(attachment: &bytes::Bytes) -> (u8, &[u8]) {
    (wire::OP_BINARY, &attachment[..])
}

/// Writes the control bytes, then every packet of the batch (its text frame, then its
/// attachments as binary frames).
async fn write_batch<W>(
    w: &mut W,
    gather: &mut Vec<u8>,
    control: &[u8],
    batch: &std::collections::VecDeque<EncodedPacket>,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut large = Vec::new();
    wire::gather_frames(
        gather,
        control,
        batch.iter().flat_map(packet_frames),
        &mut large,
    );
    wire::write_gathered(w, gather, &large).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames (opcode, payload) in `bytes`, which must hold whole unmasked frames.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while bytes.len() >= 2 {
            let len = usize::from(bytes[1] & 0x7f);
            assert!(len < 126, "small frames only here");
            out.push((bytes[0] & 0x0f, bytes[2..2 + len].to_vec()));
            bytes = &bytes[2 + len..];
        }
        assert!(bytes.is_empty(), "a cut frame at the end");
        out
    }

    #[tokio::test]
    async fn a_close_reply_taken_with_a_batch_goes_out_last_and_alone() {
        // The reader's close reply can reach the writer together with packets, before the
        // connection is marked closed: the packets go first, the reply last, and no second
        // close frame follows.
        let (tx, rx) = outbox(16);
        for n in 0..3 {
            tx.send(EncodedPacket::raw(format!("4{n}")), false).unwrap();
        }
        let control = Arc::new(Control::default());
        control.push(&wire::close_frame(1000, ""));
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(write_loop(server, rx, control.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tx.close(CloseReason::NORMAL);
        let mut seen = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut seen),
        )
        .await
        .expect("the writer shuts the stream down")
        .unwrap();
        writer.await.unwrap();
        let frames = frames(&seen);
        let ops: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
        assert_eq!(ops, [1, 1, 1, 8], "{frames:?}");
        assert_eq!(frames[3].1, 1000u16.to_be_bytes());
    }

    #[tokio::test]
    async fn pongs_piling_up_behind_a_blocked_write_close_the_connection() {
        let (tx, rx) = outbox(16);
        tx.send(EncodedPacket::raw("4".repeat(1000)), false)
            .unwrap();
        let control = Arc::new(Control::default());
        // The peer never reads: the write of the packet blocks on a 16-byte pipe.
        let (_client, server) = tokio::io::duplex(16);
        let writer = tokio::spawn(write_loop(server, rx, control.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!tx.is_closed());
        let pong = [0x8a, 125]
            .into_iter()
            .chain([b'p'; 125])
            .collect::<Vec<u8>>();
        for _ in 0..600 {
            control.push(&pong);
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while !tx.is_closed() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "closed while the write is blocked"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tokio::time::timeout(CLOSE_GRACE * 2, writer)
            .await
            .expect("the writer gives up within the grace")
            .unwrap();
    }
}
