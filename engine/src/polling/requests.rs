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
    let mut held = session.hold().await.map_err(Some)?;
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
    held.answering();
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

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use chat_protocol::http::{EngineRequest, parse_engine_request};
    use tokio::io::ReadBuf;

    use super::*;
    use crate::EngineConfig;

    /// A connection whose reads never come and whose writes are kept; its flush waits until
    /// `open` (a client that has the answer's bytes before the server is done writing it).
    #[derive(Clone, Default)]
    struct Gated(Arc<GateState>);

    #[derive(Default)]
    struct GateState {
        written: Mutex<Vec<u8>>,
        open: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    impl Gated {
        fn opened() -> Gated {
            let g = Gated::default();
            g.open();
            g
        }

        fn open(&self) {
            self.0.open.store(true, Ordering::SeqCst);
            if let Some(w) = self.0.waker.lock().unwrap().take() {
                w.wake();
            }
        }

        fn written(&self) -> String {
            String::from_utf8_lossy(&self.0.written.lock().unwrap()).into_owned()
        }
    }

    impl AsyncRead for Gated {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Gated {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.written.lock().unwrap().extend_from_slice(data);
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.0.open.load(Ordering::SeqCst) {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn poll_request(head: &str) -> PollRequest {
        match parse_engine_request(head.as_bytes(), 1_000_000) {
            Ok(EngineRequest::Polling(req)) => req,
            other => panic!("not a polling request: {other:?}"),
        }
    }

    /// Serves `head` on `stream` in a task of its own.
    fn spawn_serve(
        engine: &Engine,
        per_ip: &Arc<PerIp>,
        head: String,
        stream: Gated,
    ) -> tokio::task::JoinHandle<bool> {
        let (engine, per_ip) = (engine.clone(), per_ip.clone());
        tokio::spawn(async move {
            let mut stream = stream;
            let mut buf = head.as_bytes().to_vec();
            let req = poll_request(&head);
            let remote = "127.0.0.1:9".parse().unwrap();
            serve(&engine, req, &mut stream, &mut buf, remote, &per_ip).await
        })
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: not in 5 s");
    }

    /// A browser may read a held GET's answer and send the next GET on another connection
    /// before the server is done writing the first (its flush, its bookkeeping after): that
    /// GET is the next poll, answered once the first is done, never a "second concurrent GET"
    /// that gets 400 and closes the session (a flake of the browser tests over polling).
    #[tokio::test]
    async fn a_get_sent_while_the_last_answer_is_being_written_waits_for_it() {
        let engine = Engine::new(EngineConfig {
            ping_interval: Duration::from_millis(100),
            ..EngineConfig::default()
        });
        let per_ip = Arc::new(PerIp::default());
        let handshake = Gated::opened();
        let get = |sid: &str| {
            format!("GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\r\n")
        };
        let task = spawn_serve(
            &engine,
            &per_ip,
            "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
            handshake.clone(),
        );
        assert!(task.await.unwrap());
        let written = handshake.written();
        let sid = written
            .split("\"sid\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();

        // The first GET is answered with the first ping; its flush is held.
        let first = Gated::default();
        let first_task = spawn_serve(&engine, &per_ip, get(sid), first.clone());
        until("the first answer written", || {
            first.written().ends_with("\r\n\r\n2")
        })
        .await;
        // The next GET, on another connection, while the first is not done.
        let second = Gated::opened();
        let second_task = spawn_serve(&engine, &per_ip, get(sid), second.clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(second.written(), "", "the next GET was answered at once");
        let session = engine.polling().get(sid).expect("the session is open");
        assert!(!session.outbox.is_closed());

        // The first is done: the second holds the session and gets the next ping.
        first.open();
        assert!(first_task.await.unwrap());
        let pong = format!(
            "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n3"
        );
        let posted = Gated::opened();
        assert!(
            spawn_serve(&engine, &per_ip, pong, posted.clone())
                .await
                .unwrap()
        );
        assert!(posted.written().ends_with("ok"), "{}", posted.written());
        until("the second answered", || {
            second.written().ends_with("\r\n\r\n2")
        })
        .await;
        assert!(
            second.written().starts_with("HTTP/1.1 200"),
            "{}",
            second.written()
        );
        assert!(second_task.await.unwrap());
        assert!(!session.outbox.is_closed());
    }
}
