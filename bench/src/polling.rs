//! The client side of Engine.IO v4 HTTP long-polling, what `--transport polling` speaks: the
//! handshake GET, then a GET held by the server until it has packets (or a ping is due), and
//! POSTs carrying the client's packets, each body the packets joined by `\x1e`
//! (`chat_protocol::payload`). No upgrade: the session stays on polling, so its cost can be
//! measured against a WebSocket's.
//!
//! Like a browser, it uses two keep-alive HTTP/1.1 connections from the same source address:
//! one for the GET loop, one for POSTs. Each runs in a task of its own, so [`Polling::next`]
//! and [`Polling::queue_text`] never wait on a request and stay cancel-safe (`fanout` races
//! them in a `select!`): packets the GET loop receives arrive through a channel, and packets
//! to send go through one to the POST task, which sends everything queued while its previous
//! POST was out in one body (as socket.io-client does). The HTTP is the smallest that does:
//! requests with a `Content-Length` body, answers read to their `Content-Length` (chunked
//! answers are refused: the server never sends them).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use bytes::{Buf, BytesMut};
use chat_protocol::engine_io;
use chat_protocol::payload::{self, Decoded, Part};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ws::Msg;

/// The largest answer head.
const MAX_HEAD: usize = 16 * 1024;
/// The largest answer body taken (the server's `max_payload` is 1 MB by default).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Every request but the held GET is answered within this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Packets in one POST at most (more wait for the next one).
const MAX_POST_PACKETS: usize = 1024;

/// HTTP requests answered `200` so far in this process: GETs (the handshake's included),
/// POSTs, and the connections opened for them.
static GETS: AtomicU64 = AtomicU64::new(0);
static POSTS: AtomicU64 = AtomicU64::new(0);
static CONNECTS: AtomicU64 = AtomicU64::new(0);

/// This process's polling traffic so far: (GETs, POSTs, TCP connections opened).
pub fn requests() -> (u64, u64, u64) {
    (
        GETS.load(Ordering::Relaxed),
        POSTS.load(Ordering::Relaxed),
        CONNECTS.load(Ordering::Relaxed),
    )
}

/// One HTTP/1.1 keep-alive connection, reopened from the same source address when the
/// server closed it between requests.
struct Http {
    addr: SocketAddr,
    src: IpAddr,
    stream: Option<TcpStream>,
    input: BytesMut,
}

impl Http {
    fn new(addr: SocketAddr, src: IpAddr) -> Http {
        Http {
            addr,
            src,
            stream: None,
            input: BytesMut::new(),
        }
    }

    async fn reopen(&mut self) -> anyhow::Result<()> {
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(self.src, 0))
            .with_context(|| format!("bind {}", self.src))?;
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        self.input.clear();
        self.stream = Some(stream);
        CONNECTS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends `method path` with `body` (a POST's) and returns the answer's status and body.
    /// A connection the server closed while it was idle (its keep-alive timeout) is reopened
    /// and the request sent once more: nothing was answered on it, so nothing was taken.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, String)> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n",
            self.addr
        );
        if method == "POST" {
            head.push_str(&format!(
                "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let reused = self.stream.is_some();
        match self.exchange(&request).await {
            Ok(answer) => Ok(answer),
            Err(Unanswered::Nothing(_)) if reused => {
                self.stream = None;
                self.exchange(&request)
                    .await
                    .map_err(Unanswered::into_error)
            }
            Err(e) => {
                self.stream = None;
                Err(e.into_error())
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<(u16, String), Unanswered> {
        if self.stream.is_none() {
            self.reopen().await.map_err(Unanswered::Nothing)?;
        }
        let (Some(stream), input) = (self.stream.as_mut(), &mut self.input) else {
            return Err(Unanswered::Nothing(anyhow!("no connection")));
        };
        stream
            .write_all(request)
            .await
            .map_err(|e| Unanswered::Nothing(e.into()))?;
        // The head.
        let head_len = loop {
            if let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if input.len() >= MAX_HEAD {
                return Err(Unanswered::Broken(anyhow!(
                    "answer head over {MAX_HEAD} bytes"
                )));
            }
            input.reserve(4096);
            let n = match stream.read_buf(input).await {
                Ok(n) => n,
                Err(e) if input.is_empty() => return Err(Unanswered::Nothing(e.into())),
                Err(e) => return Err(Unanswered::Broken(e.into())),
            };
            if n == 0 {
                let e = anyhow!("connection closed before the answer");
                return Err(if input.is_empty() {
                    Unanswered::Nothing(e)
                } else {
                    Unanswered::Broken(e)
                });
            }
        };
        let (status, len, close) = parse_head(&input[..head_len]).map_err(Unanswered::Broken)?;
        input.advance(head_len);
        while input.len() < len {
            input.reserve(len - input.len());
            let n = stream
                .read_buf(input)
                .await
                .map_err(|e| Unanswered::Broken(e.into()))?;
            if n == 0 {
                return Err(Unanswered::Broken(anyhow!(
                    "connection closed in an answer's body"
                )));
            }
        }
        let body = input.split_to(len);
        if close {
            self.stream = None;
        }
        let body = String::from_utf8(body.to_vec())
            .map_err(|_| Unanswered::Broken(anyhow!("answer body is not UTF-8")))?;
        if status == 200 {
            let counter = if request.starts_with(b"POST") {
                &POSTS
            } else {
                &GETS
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok((status, body))
    }
}

/// Why a request got no answer: nothing came back at all (the request may be sent again on a
/// new connection), or the answer broke off.
enum Unanswered {
    Nothing(anyhow::Error),
    Broken(anyhow::Error),
}

impl Unanswered {
    fn into_error(self) -> anyhow::Error {
        match self {
            Unanswered::Nothing(e) | Unanswered::Broken(e) => e,
        }
    }
}

/// An answer head: (status, `Content-Length`, `Connection: close`).
fn parse_head(head: &[u8]) -> anyhow::Result<(u16, usize, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(head).context("unparsable answer head")?;
    let status = response.code.ok_or_else(|| anyhow!("no status"))?;
    let mut len = None;
    let mut close = response.version == Some(0);
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("");
        if h.name.eq_ignore_ascii_case("content-length") {
            len = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .context("bad Content-Length")?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked answer (not sent by the server under test)");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.trim().eq_ignore_ascii_case("close");
        }
    }
    let len = len.ok_or_else(|| anyhow!("answer without Content-Length"))?;
    ensure!(len <= MAX_BODY, "answer body of {len} bytes");
    Ok((status, len, close))
}

/// The packets of a polling payload, as messages: text packets as they are (the open packet,
/// `2` pings, `4...` messages), binary ones as bytes, the close packet `1` as a close; noops
/// (`6`) are left out.
fn messages(body: &str) -> anyhow::Result<Vec<Msg>> {
    let mut out = Vec::new();
    for part in payload::decode(body) {
        match part.map_err(|e| anyhow!("bad payload {body:?}: {e}"))? {
            Decoded::Text("6") => {}
            Decoded::Text("1") => out.push(Msg::Close(None)),
            Decoded::Text(t) => out.push(Msg::Text(t.to_owned())),
            Decoded::Binary(b) => out.push(Msg::Binary(b)),
        }
    }
    Ok(out)
}

/// One Engine.IO session over long-polling.
pub struct Polling {
    /// What the GET loop received, in order; an error ends it.
    inbox: mpsc::UnboundedReceiver<anyhow::Result<Msg>>,
    /// Packets for the POST task.
    outbox: Option<mpsc::UnboundedSender<String>>,
    getter: JoinHandle<()>,
    poster: JoinHandle<()>,
}

impl std::fmt::Debug for Polling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Polling").finish_non_exhaustive()
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.getter.abort();
        self.poster.abort();
    }
}

impl Polling {
    /// The handshake GET from `src` to `addr`; the session's first messages (the open packet
    /// first) are then what [`Polling::next`] returns.
    pub async fn connect(addr: SocketAddr, src: IpAddr) -> anyhow::Result<Polling> {
        const BASE: &str = "/socket.io/?EIO=4&transport=polling";
        let mut get = Http::new(addr, src);
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, get.request("GET", BASE, b""))
            .await
            .map_err(|_| anyhow!("polling handshake timed out"))??;
        ensure!(status == 200, "polling handshake refused: {status} {body}");
        let first = messages(&body)?;
        let open = match first.first() {
            Some(Msg::Text(t)) => match engine_io::Packet::decode(t) {
                Ok(engine_io::Packet::Open(open)) => open,
                other => bail!("expected the open packet, got {other:?}"),
            },
            other => bail!("expected the open packet, got {other:?}"),
        };
        let path = format!("{BASE}&sid={}", open.sid);
        // The server answers a held GET by the time a ping is due; a ping unanswered for
        // longer than this has ended the session anyway.
        let held_limit =
            Duration::from_millis(open.ping_interval + open.ping_timeout) + REQUEST_TIMEOUT;
        let (in_tx, inbox) = mpsc::unbounded_channel();
        for msg in first {
            let _ = in_tx.send(Ok(msg));
        }
        let (outbox, out_rx) = mpsc::unbounded_channel();
        let poster = tokio::spawn(post_loop(
            Http::new(addr, src),
            path.clone(),
            out_rx,
            in_tx.clone(),
        ));
        let getter = tokio::spawn(get_loop(get, path, held_limit, in_tx));
        Ok(Polling {
            inbox,
            outbox: Some(outbox),
            getter,
            poster,
        })
    }

    /// Queues one text packet for the next POST (it goes out as soon as the previous POST
    /// is answered, with whatever else was queued by then).
    pub fn queue_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.outbox
            .as_ref()
            .ok_or_else(|| anyhow!("session closed"))?
            .send(text.to_owned())
            .map_err(|_| anyhow!("the POST task ended"))
    }

    /// The next message; `None` once the session ended without a close packet.
    pub async fn next(&mut self) -> anyhow::Result<Option<Msg>> {
        self.inbox.recv().await.transpose()
    }

    /// The next message if it has been received already.
    pub fn buffered(&mut self) -> anyhow::Result<Option<Msg>> {
        match self.inbox.try_recv() {
            Ok(msg) => msg.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Sends the close packet and waits for the GET loop to end (the server answers the held
    /// GET, and the session is gone). The caller bounds it in time.
    pub async fn close(&mut self) -> anyhow::Result<()> {
        if let Some(outbox) = self.outbox.take() {
            let _ = outbox.send(engine_io::Packet::Close.encode());
        }
        loop {
            match self.inbox.recv().await {
                Some(Ok(Msg::Close(_))) | Some(Err(_)) | None => return Ok(()),
                Some(Ok(_)) => {}
            }
        }
    }
}

/// The GET loop: one held GET after another, each answer's packets into `inbox`; ends at the
/// close packet, an error (sent on), or when nobody listens.
async fn get_loop(
    mut http: Http,
    path: String,
    limit: Duration,
    inbox: mpsc::UnboundedSender<anyhow::Result<Msg>>,
) {
    loop {
        let answer = match tokio::time::timeout(limit, http.request("GET", &path, b"")).await {
            Ok(Ok((200, body))) => messages(&body),
            Ok(Ok((status, body))) => Err(anyhow!("GET answered {status} {body}")),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(anyhow!("GET not answered within {limit:?}")),
        };
        match answer {
            Ok(msgs) => {
                for msg in msgs {
                    let close = matches!(msg, Msg::Close(_));
                    if inbox.send(Ok(msg)).is_err() || close {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = inbox.send(Err(e));
                return;
            }
        }
    }
}

/// The POST loop: waits for a packet, takes everything else queued meanwhile, sends it as one
/// payload; an error goes to `inbox` (so the session's reader sees it) and ends the loop.
async fn post_loop(
    mut http: Http,
    path: String,
    mut outbox: mpsc::UnboundedReceiver<String>,
    inbox: mpsc::UnboundedSender<anyhow::Result<Msg>>,
) {
    let mut packets = Vec::new();
    let mut body = String::new();
    while outbox.recv_many(&mut packets, MAX_POST_PACKETS).await > 0 {
        body.clear();
        payload::encode(packets.iter().map(|p| Part::Text(p)), &mut body);
        let closing = packets.iter().any(|p| p == "1");
        packets.clear();
        let sent = tokio::time::timeout(
            REQUEST_TIMEOUT,
            http.request("POST", &path, body.as_bytes()),
        )
        .await;
        match sent {
            Ok(Ok((200, _))) => {}
            // After the close packet the session may be gone before the answer.
            _ if closing => return,
            Ok(Ok((status, answer))) => {
                let _ = inbox.send(Err(anyhow!("POST answered {status} {answer}")));
                return;
            }
            Ok(Err(e)) => {
                let _ = inbox.send(Err(e.context("POST")));
                return;
            }
            Err(_) => {
                let _ = inbox.send(Err(anyhow!("POST not answered within {REQUEST_TIMEOUT:?}")));
                return;
            }
        }
        if closing {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_packets_become_messages() {
        let msgs = messages("0{\"sid\":\"x\"}\x1e6\x1e42[\"a\"]\x1ebAQI=\x1e2\x1e1").unwrap();
        assert_eq!(
            msgs,
            vec![
                Msg::Text("0{\"sid\":\"x\"}".into()),
                Msg::Text("42[\"a\"]".into()),
                Msg::Binary(vec![1, 2]),
                Msg::Text("2".into()),
                Msg::Close(None),
            ]
        );
        assert!(messages("42[]\x1e\x1e2").is_err());
    }

    #[test]
    fn answer_heads() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(parse_head(head).unwrap(), (200, 2, false));
        let head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\nConnection: close\r\n\r\n";
        assert_eq!(parse_head(head).unwrap(), (400, 5, true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }
}
