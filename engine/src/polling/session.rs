//! The handshake of a polling session and the task that runs it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chat_protocol::engine_io::{self, OpenPayload};
use chat_protocol::http::HandshakeError;
use tokio::sync::{Notify, mpsc, watch};

use super::inbound::Inbound;
use super::{Phase, PollingSession, State};
use crate::connection::Connection;
use crate::namespace::{ConnectionInfo, Transport};
use crate::outbox::session_outbox;
use crate::per_ip::{IpSlot, PerIp};
use crate::{Engine, Sid};

/// Frames waiting for the session's reader; a POST with more waits for room.
const FEED_CAPACITY: usize = 16;

/// Opens a session for a handshake GET from `remote` and starts its task; returns the open
/// packet to answer with. Refused beyond `max_connections_per_ip` sessions from that
/// address (429) or `max_connections` polling sessions in all (503).
pub(super) fn open(
    engine: &Engine,
    remote: SocketAddr,
    query: String,
    per_ip: &Arc<PerIp>,
) -> Result<String, HandshakeError> {
    let config = engine.config();
    let (slot, within) = PerIp::enter(per_ip, remote.ip(), config.max_connections_per_ip);
    if !within {
        return Err(HandshakeError::TOO_MANY);
    }
    let info = Arc::new(ConnectionInfo::new(
        Sid::random(),
        remote,
        query,
        Transport::Polling,
    ));
    let (outbox, rx) = session_outbox(config.outbox_bounds(), &engine.shutdown_token());
    let (feed, feed_rx) = mpsc::channel(FEED_CAPACITY);
    let session = Arc::new(PollingSession {
        info: info.clone(),
        outbox,
        state: Mutex::new(State {
            rx: Some(rx),
            post_busy: false,
            answering: false,
            phase: Phase::Polling,
        }),
        feed,
        probing: watch::Sender::new(false),
        returned: Notify::new(),
    });
    if !engine
        .polling()
        .insert_within(session.clone(), config.max_connections)
    {
        return Err(HandshakeError::SERVER_FULL);
    }
    let open = engine_io::Packet::Open(OpenPayload {
        sid: info.id.to_string(),
        upgrades: vec!["websocket".to_owned()],
        ping_interval: config.ping_interval.as_millis() as u64,
        ping_timeout: config.ping_timeout.as_millis() as u64,
        max_payload: config.max_payload as u64,
    });
    engine
        .tracker()
        .spawn(run(engine.clone(), session, Inbound::new(feed_rx), slot));
    Ok(open.encode())
}

/// The session task: the reader over the inbound stream until the session ends, then its
/// end (out of the registry, sockets closed, the WebSocket writer awaited).
async fn run(engine: Engine, session: Arc<PollingSession>, mut inbound: Inbound, slot: IpSlot) {
    let mut conn = Connection::new(engine.clone(), session.info.clone(), session.outbox.clone());
    let reason = Box::pin(conn.read_loop(&mut inbound)).await;
    let writer = inbound.close().await;
    engine.polling().remove(&session.info.id);
    conn.finish(reason).await;
    if let Some(writer) = writer {
        let _ = writer.await;
    }
    drop(slot);
}
