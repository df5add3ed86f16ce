//! Engine.IO long-polling sessions, and their upgrade to WebSocket.
//!
//! One session, two transports behind one seam. A polling session is a task running the same
//! [`Connection`] reader as a WebSocket one (one ordering, one rate limiter, one attachments
//! assembler), over an [`Inbound`] stream: the frames its POSTs carry, then, after an upgrade,
//! the WebSocket's. Its outbox is the session's and is drained by whichever transport holds
//! the receiver: a held GET (which takes a payload's worth and answers), or, after the
//! upgrade, the WebSocket writer. So nothing queued is lost, duplicated or reordered across
//! the switch. Nothing above the session knows the transport
//! ([`ConnectionInfo::transport`](super::ConnectionInfo::transport) says it, for logs).
//!
//! Files: this one (the registry and the session's shared state), `session.rs` (the handshake
//! and the session task), `inbound.rs` (the inbound stream), `requests.rs` (GET and POST),
//! `upgrade.rs` (the WebSocket probe and the switch).
//!
//! What an unauthenticated client can make the server hold, and the bounds: a session (its
//! reader state and outbox, as a WebSocket connection's) per handshake, counted per IP from the
//! handshake on (`max_connections_per_ip`) and in all (`max_connections` polling sessions at
//! once, beyond: 503); a session nobody polls is closed when its ping goes unanswered
//! (`ping_interval + ping_timeout`: a pong counts only once a GET has taken the ping, so
//! pongs POSTed blind keep nothing alive) or, with no namespace, at the connect timeout. One held GET
//! and one POST per session (a second of either: 400 and the session is closed; a GET that
//! comes while the last one's answer is being written is the next poll, not a second one, and
//! waits for it: a client may read an answer before the server is done writing it); a POST body of
//! at most `max_payload` (413), read within the handshake timeout; a held GET lasts until
//! there is something to send, a ping at the latest. The sid is the credential of every later
//! request: 120 random bits, never logged; a wrong one gets 400 code 1.

mod inbound;
mod requests;
mod session;
mod upgrade;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc, watch};

use super::namespace::ConnectionInfo;
use super::outbox::{CloseReason, Outbox, OutboxReceiver};
use super::{Sid, lock};

pub(crate) use inbound::Feed;
pub(crate) use requests::serve;
pub(crate) use upgrade::upgrade;

#[cfg(doc)]
use super::connection::Connection;
#[cfg(doc)]
use inbound::Inbound;

/// The open polling sessions by sid (upgraded ones too, until they end). Bounded: a handshake
/// beyond `max_connections` sessions is refused.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<Sid, Arc<PollingSession>>>,
}

impl Sessions {
    pub(crate) fn get(&self, sid: &str) -> Option<Arc<PollingSession>> {
        lock(&self.map).get(sid).cloned()
    }

    /// Registers `session` unless `max` are open; `false` when full.
    fn insert_within(&self, session: Arc<PollingSession>, max: usize) -> bool {
        let mut map = lock(&self.map);
        if map.len() >= max {
            return false;
        }
        map.insert(session.info.id.clone(), session);
        true
    }

    fn remove(&self, sid: &Sid) {
        let removed = lock(&self.map).remove(sid);
        drop(removed);
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Closes the session `sid` names, if any (a request that broke its rules).
    pub(crate) fn close(&self, sid: &str, reason: CloseReason) {
        if let Some(session) = self.get(sid) {
            session.outbox.close(reason);
        }
    }
}

/// Where a session's packets flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Polling,
    /// A WebSocket claimed the session and probes it; polling still works meanwhile.
    Upgrading,
    /// The WebSocket holds the session: HTTP requests with its sid get 400.
    Upgraded,
}

/// A polling session's state shared by its requests (the session task holds the reader).
pub(crate) struct PollingSession {
    info: Arc<ConnectionInfo>,
    outbox: Outbox,
    state: Mutex<State>,
    /// The session task's inbound frames (bounded: a POST waits while the reader is busy).
    feed: mpsc::Sender<Feed>,
    /// Set while a WebSocket probes the session: a held GET answers `6` (noop) at once, so
    /// the client stops polling and sends the upgrade.
    probing: watch::Sender<bool>,
    /// Signalled (to every waiter) when a GET gives the outbox receiver back or a POST ends
    /// (what the upgrade, and a GET that came while the last answer was being written, wait
    /// for).
    returned: Notify,
}

struct State {
    /// The outbox receiver while no GET holds it (and before the upgrade takes it).
    rx: Option<OutboxReceiver>,
    /// A POST is being read or delivered.
    post_busy: bool,
    /// The GET holding the receiver has taken its answer and is writing it: the client may
    /// already have read it and polled again (on another connection).
    answering: bool,
    phase: Phase,
}

/// Gives the receiver back to its session when a GET ends, however it ends.
struct HeldReceiver<'s> {
    session: &'s PollingSession,
    rx: Option<OutboxReceiver>,
}

impl HeldReceiver<'_> {
    /// The answer is taken and about to be written: a GET from now on is the next poll.
    fn answering(&self) {
        lock(&self.session.state).answering = true;
    }
}

impl Drop for HeldReceiver<'_> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            let mut state = lock(&self.session.state);
            state.answering = false;
            if state.phase != Phase::Upgraded {
                state.rx = Some(rx);
            }
            drop(state);
            self.session.returned.notify_waiters();
        }
    }
}

/// Clears `post_busy` when a POST ends, however it ends.
struct PostClaim<'s>(&'s PollingSession);

impl Drop for PostClaim<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).post_busy = false;
        self.0.returned.notify_waiters();
    }
}

impl PollingSession {
    /// The receiver for a GET: 400 after the upgrade; 400 and the session closed when
    /// another GET holds it waiting for packets. One that finds the last GET's answer being
    /// written waits until it is (bounded: that write's own time limit).
    async fn hold(&self) -> Result<HeldReceiver<'_>, chat_protocol::http::HandshakeError> {
        use chat_protocol::http::HandshakeError;
        loop {
            // Registered before the state is read, so a return in between is not missed.
            let returned = self.returned.notified();
            {
                let mut state = lock(&self.state);
                if state.phase == Phase::Upgraded {
                    return Err(HandshakeError::TRANSPORT_MISMATCH);
                }
                if let Some(rx) = state.rx.take() {
                    return Ok(HeldReceiver {
                        session: self,
                        rx: Some(rx),
                    });
                }
                if !state.answering {
                    drop(state);
                    self.outbox.close(CloseReason::PROTOCOL);
                    return Err(HandshakeError::BAD_REQUEST);
                }
            }
            returned.await;
        }
    }

    /// The right to deliver a POST: 400 after the upgrade; 400 and the session closed when
    /// another POST is under way.
    fn claim_post(&self) -> Result<PostClaim<'_>, chat_protocol::http::HandshakeError> {
        use chat_protocol::http::HandshakeError;
        let mut state = lock(&self.state);
        if state.phase == Phase::Upgraded {
            return Err(HandshakeError::TRANSPORT_MISMATCH);
        }
        if state.post_busy {
            drop(state);
            self.outbox.close(CloseReason::PROTOCOL);
            return Err(HandshakeError::BAD_REQUEST);
        }
        state.post_busy = true;
        Ok(PostClaim(self))
    }
}
