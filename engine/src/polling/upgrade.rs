//! The upgrade of a polling session to WebSocket: `GET ...&transport=websocket&sid=<sid>`.
//!
//! The client sends `2probe` over the new WebSocket; the server answers `3probe` and makes
//! the held GET answer `6`, so the client stops polling; the client sends `5` (upgrade). Then
//! the WebSocket writer takes the session's outbox receiver (once the last GET has given it
//! back and no POST is under way) and the session's reader reads the WebSocket, after the
//! frames POSTs carried before.
//! What the last GET took went out in its answer, which the client handles before it sends `5`;
//! the rest goes out over the WebSocket, in order, once. A probe that fails (other frames, a
//! timeout: the handshake timeout) leaves the session polling; a second WebSocket for the
//! same session, or one after the upgrade, is accepted and closed at once (1008 "transport
//! mismatch").

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use chat_protocol::http::{HandshakeError, Upgrade};
use futures_util::StreamExt;

use super::inbound::Upgraded;
use super::{Feed, Phase, PollingSession};
use crate::Engine;
use crate::connection::write_loop;
use crate::http_io::refuse;
use crate::lock;
use crate::namespace::Transport;
use crate::outbox::{CloseReason, OutboxReceiver};
use crate::wire::{self, websocket_config};

/// Upgrades the session `sid` to the WebSocket whose request `upgrade` is (not yet answered);
/// `leftover`: bytes read past the request head.
pub(crate) async fn upgrade<S>(
    engine: Engine,
    mut stream: S,
    leftover: Vec<u8>,
    sid: &str,
    upgrade: Upgrade,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limit = engine.config().handshake_timeout;
    let Some(session) = engine.polling().get(sid) else {
        refuse(&mut stream, &HandshakeError::SESSION_UNKNOWN, limit).await;
        return;
    };
    let Some(claim) = Claim::new(&session) else {
        // Another WebSocket probes or holds the session: accepted, then closed at once, as
        // the reference server does (its clients expect a close, not a failed handshake).
        let _ = timeout(limit, async {
            stream.write_all(upgrade.response().as_bytes()).await?;
            stream.write_all(&close_frame(&TRANSPORT_MISMATCH)).await?;
            stream.shutdown().await
        })
        .await;
        return;
    };
    match timeout(limit, stream.write_all(upgrade.response().as_bytes())).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    let config = engine.config();
    let (read, mut write, control) = wire::split(stream);
    let ws_config = websocket_config(config.max_payload, config.max_frame_size);
    let mut ws =
        WebSocketStream::from_partially_read(read, leftover, Role::Server, Some(ws_config)).await;
    let closed = session.outbox.closer_token();
    let probe = async {
        if !next_is(&mut ws, "2probe").await {
            return None;
        }
        let mut pong = Vec::with_capacity(8);
        wire::put_header(&mut pong, wire::OP_TEXT, 6);
        pong.extend_from_slice(b"3probe");
        write.write_all(&pong).await.ok()?;
        session.probing.send_replace(true);
        if !next_is(&mut ws, "5").await {
            return None;
        }
        Some(take_receiver(&session).await)
    };
    let rx = tokio::select! {
        () = closed.cancelled() => None,
        rx = timeout(limit, probe) => rx.ok().flatten(),
    };
    let Some(rx) = rx else {
        // The WebSocket is dropped (closed without a close frame); polling goes on.
        return;
    };
    session.info.set_transport(Transport::WebSocket);
    claim.done();
    let writer = engine.tracker().spawn(write_loop(write, rx, control));
    let upgraded = Upgraded {
        ws: Box::new(ws),
        writer,
    };
    // Fails only when the session ended meanwhile: the writer sees the queue closed and
    // closes the WebSocket.
    let _ = session.feed.send(Feed::Upgrade(upgraded)).await;
}

/// The close of a second WebSocket for a session that already has one.
const TRANSPORT_MISMATCH: CloseReason = CloseReason {
    code: 1008,
    reason: "transport mismatch",
};

/// A close frame (unmasked, as a server's) with `reason`'s code and text.
fn close_frame(reason: &CloseReason) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + reason.reason.len());
    wire::put_header(&mut frame, wire::OP_CLOSE, 2 + reason.reason.len());
    frame.extend_from_slice(&reason.code.to_be_bytes());
    frame.extend_from_slice(reason.reason.as_bytes());
    frame
}

/// Whether the next WebSocket message is the text `want`.
async fn next_is<W>(ws: &mut W, want: &str) -> bool
where
    W: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    matches!(ws.next().await, Some(Ok(Message::Text(t))) if t.as_str() == want)
}

/// Waits until no GET holds the session's outbox receiver and no POST is under way (its
/// frames must reach the reader before the switch), and takes the receiver for the
/// WebSocket; from then on HTTP requests with the sid get 400.
async fn take_receiver(session: &PollingSession) -> OutboxReceiver {
    loop {
        let returned = session.returned.notified();
        {
            let mut state = lock(&session.state);
            if !state.post_busy
                && let Some(rx) = state.rx.take()
            {
                state.phase = Phase::Upgraded;
                return rx;
            }
        }
        returned.await;
    }
}

/// A WebSocket's claim on a session: one at a time; given up (back to polling) unless done.
struct Claim<'s> {
    session: &'s PollingSession,
    done: bool,
}

impl<'s> Claim<'s> {
    fn new(session: &'s PollingSession) -> Option<Claim<'s>> {
        let mut state = lock(&session.state);
        if state.phase != Phase::Polling {
            return None;
        }
        state.phase = Phase::Upgrading;
        Some(Claim {
            session,
            done: false,
        })
    }

    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = lock(&self.session.state);
        if state.phase == Phase::Upgrading {
            state.phase = Phase::Polling;
        }
        drop(state);
        self.session.probing.send_replace(false);
    }
}
