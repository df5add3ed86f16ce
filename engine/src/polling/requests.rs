//! The polling HTTP requests: the handshake GET, the held GET that carries the server's
//! packets, and the POST that carries the client's.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chat_protocol::http::{HandshakeError, MAX_HEAD, PollMethod, PollRequest};
use chat_protocol::payload::{self, Decoded, Part};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{Feed, HeldReceiver, PollingSession, session};
use crate::Engine;
use crate::http_io::{answer_text, read_body, refuse_with};
use crate::outbox::{CloseReason, EncodedPacket};
use crate::per_ip::PerIp;

/// Serves one polling request whose head is at the start of `buf` (`req` parsed from it),
/// answers it, and drains it (head and body) from `buf`. `true`: the connection may carry
/// another request.
pub(crate) async fn serve<S>(
    engine: &Engine,
    req: PollRequest,
    stream: &mut S,
    buf: &mut Vec<u8>,
    remote: SocketAddr,
    per_ip: &Arc<PerIp>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = engine.config().handshake_timeout;
    buf.drain(..req.head_len.min(buf.len()));
    // Every answer, refusals too, carries the CORS headers an allowed origin gets, so its
    // page can read the answer (or the error).
    let cors = engine
        .config()
        .cors_origins
        .answer_headers(req.origin.as_deref());
    let Some(sid) = req.sid.as_deref() else {
        // The handshake (a POST without sid is refused by the parser).
        return match session::open(engine, remote, req.query, per_ip) {
            Ok(open) => {
                answer_text(stream, &open, req.keep_alive, &cors, limit).await && req.keep_alive
            }
            Err(refusal) => {
                engine
                    .stats()
                    .refused(crate::stats::Refusal::of_status(refusal.status));
                refuse_with(stream, &refusal, &cors, limit).await;
                false
            }
        };
    };
    let Some(session) = engine.polling().get(sid) else {
        refuse_with(stream, &HandshakeError::SESSION_UNKNOWN, &cors, limit).await;
        return false;
    };
    // A GET holds the session's outbox receiver until its answer is written: a second GET
    // meanwhile is a concurrent one, and an upgrade waits for the answer to be out.
    let answered = match req.method {
        PollMethod::Get => get(engine, &session, stream, buf).await.map(Some),
        PollMethod::Post => post(engine, &session, req.content_length, stream, buf)
            .await
            .map(|()| None),
    };
    match answered {
        Ok(held) => {
            let body = held.as_ref().map_or("ok", |(body, _)| body.as_str());
            let sent = answer_text(stream, body, req.keep_alive, &cors, limit).await;
            if !sent && held.is_some() {
                // The packets taken for this answer did not reach the client: the session
                // cannot go on without a gap.
                session.outbox.close(CloseReason::TRANSPORT_ERROR);
            }
            drop(held);
            sent && req.keep_alive
        }
        Err(Some(refusal)) => {
            refuse_with(stream, &refusal, &cors, limit).await;
            false
        }
        // The client went away.
        Err(None) => false,
    }
}

/// What a request got instead of its `200`: a refusal to answer with, or `None` when the
/// client is gone.
type Refused = Option<HandshakeError>;

/// A held GET: waits until the session has packets to send, is closed or is being probed by
/// a WebSocket, and returns the payload: what is queued (up to `max_payload` bytes), then `6`
/// during a probe, or once the session is closed and all is sent `1` (`6` when the client's
/// own `1` closed it); with the receiver, given back when the answer is written.
async fn get<'s, S>(
    engine: &Engine,
    session: &'s PollingSession,
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<(String, HeldReceiver<'s>), Refused>
where
    S: AsyncRead + Unpin,
{
    let mut held = session.hold().map_err(Some)?;
    let Some(rx) = held.rx.as_mut() else {
        return Err(Some(HandshakeError::BAD_REQUEST));
    };
    let mut probing = session.probing.subscribe();
    let mut noop = *probing.borrow_and_update();
    let mut chunk = [0u8; 512];
    while !noop {
        tokio::select! {
            biased;
            () = poll_fn(|cx| rx.poll_ready(cx)) => break,
            changed = probing.wait_for(|p| *p) => {
                noop = changed.is_ok();
                if !noop {
                    break;
                }
            }
            // A client that hangs up while its GET waits is gone (a closed tab): the session
            // ends, as with the reference server, rather than wait for the ping timeout.
            // (Bytes it sends meanwhile are the next request; kept, up to a head.)
            read = stream.read(&mut chunk), if buf.len() < MAX_HEAD => match read {
                Ok(0) | Err(_) => {
                    session.outbox.close(CloseReason::TRANSPORT_CLOSE);
                    return Err(None);
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
    let mut batch = VecDeque::new();
    rx.take_within(&mut batch, engine.config().max_payload, cost);
    let closed = rx.is_closed() && rx.is_empty();
    let mut body = String::new();
    payload::encode(batch.iter().flat_map(parts), &mut body);
    // The client's own close (`1`, in a POST) is answered with a noop, as the reference
    // server answers it; a close of the server's with the close packet.
    let closed_by_client = closed && rx.reason() == Some(CloseReason::NORMAL);
    if noop || closed_by_client {
        payload::encode([Part::Text("6")], &mut body);
    }
    if closed && !closed_by_client {
        payload::encode([Part::Text("1")], &mut body);
    }
    if body.is_empty() {
        // Woken with nothing to send (a probe given up): a noop keeps the client polling.
        payload::encode([Part::Text("6")], &mut body);
    }
    Ok((body, held))
}

/// A packet's parts in a payload: its text, then its attachments.
fn parts(packet: &EncodedPacket) -> impl Iterator<Item = Part<'_>> {
    std::iter::once(Part::Text(packet.text.as_str()))
        .chain(packet.attachments().iter().map(attachment_part))
}

fn attachment_part(attachment: &Bytes) -> Part<'_> {
    Part::Binary(attachment)
}

/// A packet's size in a payload.
fn cost(packet: &EncodedPacket) -> usize {
    parts(packet).map(|p| p.encoded_len()).sum()
}

/// A POST: reads the body (`len` bytes, at most `max_payload`, within the handshake timeout),
/// decodes every packet and hands them to the session's reader in order. A body that does not
/// decode closes the session (400).
async fn post<S>(
    engine: &Engine,
    session: &PollingSession,
    len: usize,
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<(), Refused>
where
    S: AsyncRead + Unpin,
{
    let _claim = session.claim_post().map_err(Some)?;
    if !read_body(stream, buf, len, engine.config().handshake_timeout).await {
        return Err(None);
    }
    let body: Vec<u8> = buf.drain(..len).collect();
    // Checked whole first, so a bad body hands nothing to the session; then decoded one
    // packet at a time, so a body of many tiny packets never exists as many messages at once.
    let Some(text) = std::str::from_utf8(&body)
        .ok()
        .filter(|t| payload::decode(t).all(|p| p.is_ok()))
    else {
        session.outbox.close(CloseReason::PARSE_ERROR);
        return Err(Some(HandshakeError::BAD_REQUEST));
    };
    for part in payload::decode(text) {
        let frame = match part {
            Ok(Decoded::Text(t)) => Message::Text(Utf8Bytes::from(t)),
            Ok(Decoded::Binary(b)) => Message::Binary(Bytes::from(b)),
            Err(_) => return Err(Some(HandshakeError::BAD_REQUEST)),
        };
        if session.feed.send(Feed::Frame(frame)).await.is_err() {
            // The session ended meanwhile.
            return Err(Some(HandshakeError::SESSION_UNKNOWN));
        }
    }
    Ok(())
}
