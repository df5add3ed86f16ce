//! The actor: the task that owns the connection. [`Actor::run`] connects, runs one session
//! (one `select!` over the server's frames, the application's commands and a housekeeping
//! tick) until it ends, and after a lost connection waits out the backoff (still taking
//! commands) and connects again. Each Socket.IO packet kind has its own handler here; the
//! namespace states, the requests in flight and the wire live in their own modules.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chat_protocol::events::{self, ErrorCode};
use chat_protocol::{engine_io, socket_io};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::acks::InFlight;
use super::namespace::{Namespaces, Queued, Refusal, connect_error_details};
use super::reconnect::{SLOW_DOWN_BASE, SLOW_DOWN_CAP, backoff, jitter};
use super::request::{Failure, Reply, Request};
use super::seen_ids::SeenIds;
use super::server_event::ServerEvent;
use super::tls::tls_connector;
use super::transport::{self, Ws};
use super::{NetCommand, NetConfig, NetEvent};

/// How often the lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Housekeeping period: ack timeouts, lag pings, namespace retries.
const TICK: Duration = Duration::from_millis(250);

/// A chat message answered `unavailable` (the cluster's storage is down for a moment) is
/// sent again with its `cid` after a growing delay, this many times at most, without waiting
/// for a reconnect: the connection is fine.
const UNAVAILABLE_RETRIES: u32 = 20;
const UNAVAILABLE_BASE: Duration = Duration::from_millis(500);
const UNAVAILABLE_CAP: Duration = Duration::from_secs(5);

/// A chat message waiting to be sent again after an `unavailable` answer.
struct Retry {
    due: Instant,
    nsp: String,
    request: Request,
    cid: String,
}

/// How a session ended.
enum End {
    Quit,
    Lost(String),
}

pub(super) struct Actor {
    config: NetConfig,
    /// The nick for the next CONNECT (follows successful `/nick` replies).
    nick: String,
    namespaces: Namespaces,
    in_flight: InFlight,
    cmd_rx: mpsc::UnboundedReceiver<NetCommand>,
    ev_tx: mpsc::UnboundedSender<NetEvent>,
    ever_connected: bool,
    /// Ids of the direct messages shown (bounded).
    seen_dms: SeenIds,
    /// Chat messages to send again (answered `unavailable`), and how often each was, by cid.
    retries: Vec<Retry>,
    unavailable: HashMap<String, u32>,
}

impl Actor {
    pub(super) fn new(
        config: NetConfig,
        cmd_rx: mpsc::UnboundedReceiver<NetCommand>,
        ev_tx: mpsc::UnboundedSender<NetEvent>,
    ) -> Actor {
        Actor {
            nick: config.nick.clone(),
            config,
            namespaces: Namespaces::default(),
            in_flight: InFlight::new(),
            cmd_rx,
            ev_tx,
            ever_connected: false,
            seen_dms: SeenIds::default(),
            retries: Vec::new(),
            unavailable: HashMap::new(),
        }
    }

    fn emit(&self, event: NetEvent) {
        // The application may be gone during shutdown; nothing to do then.
        let _ = self.ev_tx.send(event);
    }

    /// Reports a request that will get no answer.
    fn fail(&self, nsp: String, request: Request, why: String, automatic: bool) {
        self.emit(NetEvent::Reply {
            nsp,
            request,
            result: Err(Failure::Local(why)),
            automatic,
        });
    }

    /// Connects, runs the session, backs off and connects again, until told to shut down.
    pub(super) async fn run(mut self) {
        let url = transport::socket_url(&self.config.server);
        let tls = if url.starts_with("wss://") {
            match tls_connector(self.config.ca_file.as_deref()) {
                Ok(c) => Some(c),
                Err(reason) => {
                    // `lib::run` checks this before starting; a library user learns it here.
                    self.emit(NetEvent::Down {
                        reason,
                        ever_connected: false,
                        retry_in: Duration::ZERO,
                    });
                    return;
                }
            }
        } else {
            None
        };
        let mut attempt: u32 = 0;
        loop {
            self.emit(NetEvent::Connecting { attempt });
            let reason = match transport::connect(&url, tls.clone()).await {
                Ok((ws, open)) => {
                    attempt = 0;
                    self.ever_connected = true;
                    self.emit(NetEvent::Up);
                    match self.session(ws, open).await {
                        End::Quit => return,
                        End::Lost(reason) => reason,
                    }
                }
                Err(e) => e,
            };
            self.connection_lost();
            // A server that refuses for too many connections is given longer.
            let (base, cap) = if reason.starts_with(transport::SLOW_DOWN) {
                (SLOW_DOWN_BASE, SLOW_DOWN_CAP)
            } else {
                (self.config.backoff_base, self.config.backoff_cap)
            };
            let delay = backoff(attempt, base, cap, jitter());
            attempt = attempt.saturating_add(1);
            tracing::info!(%reason, ?delay, "connection down");
            self.emit(NetEvent::Down {
                reason,
                ever_connected: self.ever_connected,
                retry_in: delay,
            });
            if !self.wait_out(delay).await {
                return;
            }
        }
    }

    /// Waits out the backoff, still taking commands; false when told to shut down.
    async fn wait_out(&mut self, delay: Duration) -> bool {
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                _ = &mut wake => return true,
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(NetCommand::Shutdown) => return false,
                    Some(cmd) => self.offline_command(cmd),
                },
            }
        }
    }

    /// Forgets the session: fails the requests in flight and marks live namespaces to be
    /// connected again.
    fn connection_lost(&mut self) {
        let mut resend: Vec<(String, Queued)> = Vec::new();
        for p in self.in_flight.take_all() {
            if p.automatic || p.request == Request::Ping {
                continue;
            }
            // Chat messages (with their cid) and joins are sent again after the reconnect:
            // both are safe to repeat. Anything else is reported as lost.
            if matches!(p.request, Request::Message { .. } | Request::Join { .. }) {
                resend.push((
                    p.nsp,
                    Queued {
                        request: p.request,
                        cid: p.cid,
                    },
                ));
                continue;
            }
            self.fail(
                p.nsp,
                p.request,
                "connection lost before the answer".into(),
                false,
            );
        }
        // Messages waiting for their retry go with the reconnect's re-sends.
        for r in self.retries.drain(..) {
            resend.push((
                r.nsp,
                Queued {
                    request: r.request,
                    cid: Some(r.cid),
                },
            ));
        }
        self.namespaces.connection_lost(resend);
    }

    /// A command while there is no connection.
    fn offline_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Connect { nsp, key } => {
                self.namespaces.want(nsp, key);
            }
            NetCommand::Request { nsp, request } => self.queue_or_fail(nsp, request),
            NetCommand::SetNick(nick) => self.set_nick(nick),
            NetCommand::Disconnect { nsp } => {
                self.forget(&nsp);
            }
            NetCommand::Typing { .. } | NetCommand::Shutdown => {}
        }
    }

    /// Forgets a namespace the application closed, failing what waited for it; true when
    /// the server is to be told (a DISCONNECT).
    fn forget(&mut self, nsp: &str) -> bool {
        let (live, waiting) = self.namespaces.remove(nsp);
        let (gone, kept): (Vec<Retry>, Vec<Retry>) =
            self.retries.drain(..).partition(|r| r.nsp == nsp);
        self.retries = kept;
        let waiting = waiting
            .into_iter()
            .chain(gone.into_iter().map(|r| r.request));
        for request in waiting {
            self.fail(nsp.to_owned(), request, format!("you closed {nsp}"), false);
        }
        live
    }

    fn set_nick(&mut self, nick: String) {
        self.nick = nick;
        self.namespaces.retry_refused();
    }

    /// Keeps a request for when its namespace is connected, or fails it at once when the
    /// namespace was refused, closed or never asked for.
    fn queue_or_fail(&mut self, nsp: String, request: Request) {
        if let Err((request, why)) = self.namespaces.queue(&nsp, request) {
            self.fail(nsp, request, why, false);
        }
    }

    /// Sends CONNECT for every namespace in state `Wanted`.
    async fn connect_wanted(&mut self, ws: &mut Ws) -> Result<(), String> {
        let mut frames = Vec::new();
        let password = self.config.password.as_deref();
        let token = self.config.token.as_deref();
        for ns in self.namespaces.start_wanted() {
            let auth = ns.auth(&self.nick, password, token);
            frames.push(socket_io::Packet::connect(&ns.name, Some(auth)));
        }
        for packet in frames {
            transport::send_packet(ws, &packet).await?;
        }
        Ok(())
    }

    async fn send_request(
        &mut self,
        ws: &mut Ws,
        nsp: &str,
        request: Request,
        automatic: bool,
        cid: Option<String>,
    ) -> Result<(), String> {
        let packet = self.in_flight.start(nsp, request, automatic, cid);
        transport::send_packet(ws, &packet).await
    }

    /// One open Engine.IO session, until it ends.
    async fn session(&mut self, mut ws: Ws, open: engine_io::OpenPayload) -> End {
        let silence = Duration::from_millis(open.ping_interval + open.ping_timeout);
        let mut last_ping = Instant::now();
        let mut last_lag = Instant::now() - LAG_EVERY;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Err(e) = self.connect_wanted(&mut ws).await {
            return End::Lost(e);
        }
        loop {
            let result = tokio::select! {
                // Frames from the server.
                frame = ws.next() => match frame {
                    None => Err("the connection closed".to_owned()),
                    Some(Err(e)) => Err(format!("connection error: {e}")),
                    Some(Ok(msg)) => self.on_frame(&mut ws, msg, &mut last_ping).await,
                },
                // Commands from the application.
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(NetCommand::Shutdown) => {
                        transport::close(&mut ws).await;
                        return End::Quit;
                    }
                    Some(cmd) => self.online_command(&mut ws, cmd).await,
                },
                // Housekeeping: heartbeat watchdog, ack timeouts, lag, namespace retries.
                _ = tick.tick() => {
                    if last_ping.elapsed() > silence {
                        Err("ping timeout: the server went silent".to_owned())
                    } else {
                        self.housekeeping(&mut ws, &mut last_lag).await
                    }
                }
            };
            if let Err(reason) = result {
                return End::Lost(reason);
            }
        }
    }

    async fn online_command(&mut self, ws: &mut Ws, cmd: NetCommand) -> Result<(), String> {
        match cmd {
            NetCommand::Connect { nsp, key } => {
                if self.namespaces.want(nsp, key) {
                    self.connect_wanted(ws).await?;
                }
            }
            NetCommand::Request { nsp, request } => {
                if self.namespaces.is_connected(&nsp) {
                    self.send_request(ws, &nsp, request, false, None).await?;
                } else {
                    self.queue_or_fail(nsp, request);
                }
            }
            NetCommand::SetNick(nick) => {
                self.set_nick(nick);
                self.connect_wanted(ws).await?;
            }
            NetCommand::Typing { nsp, room } => {
                if self.namespaces.is_connected(&nsp) {
                    let payload =
                        serde_json::to_value(events::TypingRequest { room }).unwrap_or(Value::Null);
                    let packet =
                        socket_io::Packet::event(&nsp, events::client::TYPING, vec![payload], None);
                    transport::send_packet(ws, &packet).await?;
                }
            }
            NetCommand::Disconnect { nsp } => {
                if self.forget(&nsp) {
                    transport::send_packet(ws, &socket_io::Packet::disconnect(&nsp)).await?;
                }
            }
            NetCommand::Shutdown => {}
        }
        Ok(())
    }

    /// Every tick: ack timeouts, namespace retries, messages answered `unavailable`, the
    /// lag ping.
    async fn housekeeping(&mut self, ws: &mut Ws, last_lag: &mut Instant) -> Result<(), String> {
        let now = Instant::now();
        let (due, later): (Vec<Retry>, Vec<Retry>) =
            self.retries.drain(..).partition(|r| r.due <= now);
        self.retries = later;
        for r in due {
            self.send_request(ws, &r.nsp, r.request, false, Some(r.cid))
                .await?;
        }
        for p in self.in_flight.take_expired(now) {
            self.fail(
                p.nsp,
                p.request,
                "no answer from the server".into(),
                p.automatic,
            );
        }
        // Namespaces refused for a nick clash during a reconnect, or for `busy`, get another
        // try.
        if self.namespaces.retry_due(now) {
            self.connect_wanted(ws).await?;
        }
        if last_lag.elapsed() >= LAG_EVERY {
            let first = self.namespaces.first_connected().map(str::to_owned);
            if let (Some(nsp), false) = (first, self.in_flight.ping_in_flight()) {
                *last_lag = now;
                self.send_request(ws, &nsp, Request::Ping, true, None)
                    .await?;
            }
        }
        Ok(())
    }

    /// A WebSocket frame from the server: Engine.IO ping, close or message.
    async fn on_frame(
        &mut self,
        ws: &mut Ws,
        msg: Message,
        last_ping: &mut Instant,
    ) -> Result<(), String> {
        let text = match msg {
            Message::Text(text) => text,
            Message::Close(frame) => return Err(transport::close_reason(frame)),
            Message::Binary(_) => {
                tracing::debug!("ignoring a binary frame");
                return Ok(());
            }
            _ => return Ok(()),
        };
        tracing::trace!(frame = %text.as_str(), "recv");
        match engine_io::Packet::decode(text.as_str()) {
            Ok(engine_io::Packet::Ping(data)) => {
                *last_ping = Instant::now();
                transport::send_text(ws, engine_io::Packet::Pong(data).encode()).await?;
            }
            Ok(engine_io::Packet::Close) => return Err("the server closed the session".into()),
            Ok(engine_io::Packet::Message(data)) => match socket_io::Packet::decode(&data) {
                Ok(packet) => self.on_packet(ws, packet).await?,
                Err(e) => tracing::warn!(error = %e, %data, "undecodable Socket.IO packet"),
            },
            Ok(other) => tracing::debug!(?other, "ignoring Engine.IO packet"),
            Err(e) => tracing::warn!(error = %e, "undecodable Engine.IO packet"),
        }
        Ok(())
    }

    /// A Socket.IO packet, to its kind's handler.
    async fn on_packet(&mut self, ws: &mut Ws, packet: socket_io::Packet) -> Result<(), String> {
        use socket_io::PacketKind as K;
        match packet.kind {
            K::Connect => self.on_connect(ws, packet.nsp).await,
            K::ConnectError => {
                self.on_connect_error(packet.nsp, packet.data.as_ref());
                Ok(())
            }
            K::Disconnect => {
                self.on_disconnect(packet.nsp);
                Ok(())
            }
            K::Event | K::BinaryEvent => self.on_event(ws, packet).await,
            K::Ack | K::BinaryAck => {
                self.on_ack(packet);
                Ok(())
            }
        }
    }

    /// CONNECT accepted: rejoin the namespace's rooms, then send what waited for it.
    async fn on_connect(&mut self, ws: &mut Ws, nsp: String) -> Result<(), String> {
        let Some(ns) = self.namespaces.get_mut(&nsp) else {
            return Ok(());
        };
        let accepted = ns.accepted();
        self.emit(NetEvent::NsConnected {
            nsp: nsp.clone(),
            resumed: accepted.resumed,
        });
        for room in accepted.rooms {
            self.send_request(ws, &nsp, Request::Join { room }, true, None)
                .await?;
        }
        for q in accepted.queued {
            self.send_request(ws, &nsp, q.request, false, q.cid).await?;
        }
        Ok(())
    }

    /// CONNECT_ERROR: retried quietly later, or reported with what waited for it.
    fn on_connect_error(&mut self, nsp: String, data: Option<&Value>) {
        let (message, code) = connect_error_details(data);
        let Some(ns) = self.namespaces.get_mut(&nsp) else {
            return;
        };
        let Refusal::Final { queued } = ns.refused(code, Instant::now()) else {
            return;
        };
        self.emit(NetEvent::NsRefused {
            nsp: nsp.clone(),
            message: message.clone(),
            code,
        });
        for q in queued {
            self.fail(
                nsp.clone(),
                q.request,
                format!("{nsp} refused: {message}"),
                false,
            );
        }
    }

    /// The server's DISCONNECT: the namespace is closed and its requests fail.
    fn on_disconnect(&mut self, nsp: String) {
        if let Some(ns) = self.namespaces.get_mut(&nsp) {
            ns.closed();
        }
        for p in self.in_flight.take_namespace(&nsp) {
            self.fail(
                p.nsp,
                p.request,
                "the server closed the namespace".into(),
                p.automatic,
            );
        }
        self.emit(NetEvent::NsClosed { nsp });
    }

    /// An event pushed by the server: acknowledged when it asks, passed on (a direct message
    /// once per id).
    async fn on_event(&mut self, ws: &mut Ws, packet: socket_io::Packet) -> Result<(), String> {
        let Some(Value::Array(args)) = &packet.data else {
            return Ok(());
        };
        let nsp = packet.nsp;
        let name = args.first().and_then(Value::as_str).unwrap_or_default();
        let arg = args.get(1).cloned().unwrap_or(Value::Null);
        let event = ServerEvent::decode(name, &arg);
        // The server asks for an ack when it must know the event arrived (a direct
        // message that waited for us): acknowledge it once it is ours.
        if let Some(id) = packet.id {
            transport::send_packet(ws, &socket_io::Packet::ack(&nsp, id, Vec::new())).await?;
        }
        // A waiting direct message can come again (a reconnect before our ack got
        // through): show each id once.
        if let ServerEvent::Dm(d) = &event
            && !self.seen_dms.insert(d.id.clone())
        {
            return Ok(());
        }
        if let ServerEvent::Message(m) = &event
            && let Some(ns) = self.namespaces.get_mut(&nsp)
        {
            ns.seen(&m.room, m.seq);
        }
        // Kicked (or removed by a ban): not a member any more, so a reconnect must not
        // rejoin it by `since`.
        if let ServerEvent::Moderation(m) = &event
            && m.action == chat_protocol::events::ModerationAction::Kick
            && chat_protocol::names::nick_key(&m.target)
                == chat_protocol::names::nick_key(&self.nick)
            && let Some(ns) = self.namespaces.get_mut(&nsp)
        {
            ns.removed(&m.room);
        }
        if let ServerEvent::Unknown(what) = &event {
            tracing::warn!(%what, "unknown server event");
        }
        self.emit(NetEvent::Server { nsp, event });
        Ok(())
    }

    /// An ack: the answer to a request in flight (the lag ping's becomes a measurement).
    fn on_ack(&mut self, packet: socket_io::Packet) {
        let Some(id) = packet.id else {
            return;
        };
        let Some(p) = self.in_flight.take(id) else {
            tracing::debug!(id, "ack for no pending request");
            return;
        };
        let result = p.result(packet.data.as_ref());
        if let Some(cid) = &p.cid {
            if result
                .as_ref()
                .is_err_and(|f| f.code() == Some(ErrorCode::Unavailable))
            {
                let attempt = self.unavailable.get(cid).copied().unwrap_or(0);
                if attempt < UNAVAILABLE_RETRIES {
                    self.unavailable.insert(cid.clone(), attempt + 1);
                    let delay = backoff(attempt, UNAVAILABLE_BASE, UNAVAILABLE_CAP, jitter());
                    tracing::info!(?delay, "message answered unavailable: sending it again");
                    self.retries.push(Retry {
                        due: Instant::now() + delay,
                        nsp: p.nsp,
                        request: p.request,
                        cid: cid.clone(),
                    });
                    return;
                }
            }
            self.unavailable.remove(cid);
        }
        self.track(&p.nsp, &result);
        if let Ok(Reply::Pong { rtt }) = result {
            self.emit(NetEvent::Lag(rtt));
            return;
        }
        self.emit(NetEvent::Reply {
            nsp: p.nsp,
            request: p.request,
            result,
            automatic: p.automatic,
        });
    }

    /// Keeps the rejoin list, the `since` map and the nick in step with successful replies.
    fn track(&mut self, nsp: &str, result: &Result<Reply, Failure>) {
        let Ok(reply) = result else {
            return;
        };
        if let Reply::Nick(n) = reply {
            self.nick = n.nick.clone();
            return;
        }
        if let Some(ns) = self.namespaces.get_mut(nsp) {
            ns.track(reply);
        }
    }
}
