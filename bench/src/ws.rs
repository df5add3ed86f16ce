//! The generator's own client side of WebSocket (RFC 6455): the upgrade request, masked frames
//! out, unmasked frames in, pings answered, fragments joined, a close handshake.
//!
//! Why not tokio-tungstenite, as before: the generator reads every delivery on the same two
//! cores as the server it measures, so what it spends per frame shows up as the server's
//! latency. tungstenite zeroes its whole read buffer before every `read` (16 KiB here, 9% of
//! the generator's samples at 100,000 deliveries/s) and wraps every poll in a waker proxy;
//! this reads into spare capacity (`read_buf`) and parses the frame in place. The handshake's
//! key and accept check still come from tungstenite.
//!
//! Every method is cancel-safe where `fanout` races it in a `select!`: [`Ws::next`] keeps all
//! its state (received bytes, a pong half sent) in `self` between awaits.

use std::net::SocketAddr;

use anyhow::{Context, anyhow, bail, ensure};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Reads ask for at least this much room.
const READ_CHUNK: usize = 4096;
/// The largest response head to an upgrade request.
const MAX_HEAD: usize = 16 * 1024;
/// The largest message taken from a server (nothing in the scenarios comes near it).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Text(String),
    Binary(Vec<u8>),
    /// The server's close frame, with its status code when it gave one.
    Close(Option<u16>),
}

/// One client WebSocket over TCP.
pub struct Ws {
    stream: TcpStream,
    /// Received and not yet parsed.
    input: BytesMut,
    /// Encoded frames not yet written (a pong queued while reading, a close).
    output: Vec<u8>,
    /// A fragmented message being put together: its opcode and what came so far.
    fragments: Option<(u8, Vec<u8>)>,
    /// State of the masking keys' generator (xorshift32; RFC 6455 asks for keys a proxy
    /// cannot predict, which matters on the web, not on loopback).
    mask_state: u32,
    close_sent: bool,
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ws")
            .field("peer", &self.stream.peer_addr().ok())
            .field("buffered", &self.input.len())
            .finish_non_exhaustive()
    }
}

impl Ws {
    /// The upgrade handshake for `path` on `addr`, over a connected `stream`.
    pub async fn handshake(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
    ) -> anyhow::Result<Ws> {
        let key = generate_key();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut input = BytesMut::with_capacity(READ_CHUNK);
        let head_len = loop {
            if let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            ensure!(
                input.len() < MAX_HEAD,
                "upgrade response head over {MAX_HEAD} bytes"
            );
            input.reserve(READ_CHUNK);
            if stream.read_buf(&mut input).await? == 0 {
                bail!("connection closed during the upgrade");
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        response
            .parse(&input[..head_len])
            .context("unparsable upgrade response")?;
        ensure!(
            response.code == Some(101),
            "upgrade refused: {:?} {:?}",
            response.code,
            response.reason
        );
        let accept = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|h| h.value)
            .ok_or_else(|| anyhow!("no Sec-WebSocket-Accept in the upgrade response"))?;
        ensure!(
            accept == derive_accept_key(key.as_bytes()).as_bytes(),
            "wrong Sec-WebSocket-Accept"
        );
        input.advance(head_len);
        // Seeded from the key, so connections mask differently.
        let seed = key
            .bytes()
            .fold(0x9E37_79B9u32, |h, b| h.rotate_left(5) ^ u32::from(b));
        Ok(Ws {
            stream,
            input,
            output: Vec::new(),
            fragments: None,
            mask_state: seed | 1,
            close_sent: false,
        })
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.queue_text(text);
        self.flush().await
    }

    /// Queues one text message, to go out with the next [`Ws::flush`] (several in one write).
    pub fn queue_text(&mut self, text: &str) {
        self.queue_frame(OP_TEXT, text.as_bytes());
    }

    /// The next message; `None` when the server closed the TCP connection between frames.
    /// Pings are answered on the way (the pong is written before the next read), pongs
    /// skipped; the answer to a server's close is written before the close is returned.
    pub async fn next(&mut self) -> anyhow::Result<Option<Msg>> {
        loop {
            while let Some(msg) = self.parse()? {
                if let Some(msg) = msg {
                    if matches!(msg, Msg::Close(_)) {
                        // The peer may be gone already; the close is returned either way.
                        let _ = self.flush().await;
                    }
                    return Ok(Some(msg));
                }
            }
            if !self.output.is_empty() {
                self.flush().await?;
            }
            if self.input.capacity() - self.input.len() < READ_CHUNK {
                self.input.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                ensure!(
                    self.input.is_empty() && self.fragments.is_none(),
                    "connection closed in the middle of a message"
                );
                return Ok(None);
            }
        }
    }

    /// The next message if it has been received already, without reading: what a client
    /// that answers a batch of messages with one write takes after [`Ws::next`]. The answer
    /// to a ping or a close met on the way goes out with the next flush.
    pub fn buffered(&mut self) -> anyhow::Result<Option<Msg>> {
        while let Some(msg) = self.parse()? {
            if msg.is_some() {
                return Ok(msg);
            }
        }
        Ok(None)
    }

    /// Starts the close handshake (status 1000), waits for the server's close or the end
    /// of the connection, then shuts the socket down. The caller bounds it in time.
    pub async fn close(&mut self) -> anyhow::Result<()> {
        if !self.close_sent {
            self.close_sent = true;
            self.queue_frame(OP_CLOSE, &1000u16.to_be_bytes());
        }
        self.flush().await?;
        loop {
            match self.next().await {
                Ok(Some(Msg::Close(_))) | Ok(None) | Err(_) => break,
                Ok(Some(_)) => {}
            }
        }
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    /// Writes what is queued. Cancel-safe: what a finished `write` took is removed at once.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        while !self.output.is_empty() {
            let n = self.stream.write(&self.output).await?;
            ensure!(n > 0, "connection closed while writing");
            self.output.drain(..n);
        }
        Ok(())
    }

    /// Takes one frame off the input: `None` when it is incomplete, `Some(None)` for a frame
    /// that is not (yet) a message (a ping, a pong, a fragment), `Some(Some(msg))` otherwise.
    fn parse(&mut self) -> anyhow::Result<Option<Option<Msg>>> {
        let Some((header, len)) = frame_header(&self.input)? else {
            return Ok(None);
        };
        // Everything the header alone can refuse is refused before its payload is awaited.
        let (b0, b1) = (self.input[0], self.input[1]);
        ensure!(b1 & 0x80 == 0, "masked frame from the server");
        ensure!(
            b0 & 0x70 == 0,
            "reserved bits set (no extension was agreed)"
        );
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        if opcode & 0x8 != 0 {
            ensure!(
                fin && len <= 125,
                "control frame {opcode:#x} fragmented or over 125 bytes"
            );
        }
        ensure!(len <= MAX_MESSAGE, "frame of {len} bytes");
        if self.input.len() < header + len {
            self.input.reserve(header + len - self.input.len());
            return Ok(None);
        }
        self.input.advance(header);
        let payload = self.input.split_to(len);
        let msg = match opcode {
            OP_PING => {
                self.queue_frame(OP_PONG, &payload);
                None
            }
            OP_PONG => None,
            OP_CLOSE => {
                ensure!(payload.len() != 1, "close frame with a 1-byte payload");
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                if !self.close_sent {
                    // The answer echoes the status code (or, for a close without one, nothing).
                    self.close_sent = true;
                    self.queue_frame(OP_CLOSE, &payload[..payload.len().min(2)]);
                }
                Some(Msg::Close(code))
            }
            OP_TEXT | OP_BINARY if fin => {
                ensure!(
                    self.fragments.is_none(),
                    "new message inside a fragmented one"
                );
                Some(message(opcode, payload.to_vec())?)
            }
            OP_TEXT | OP_BINARY => {
                ensure!(
                    self.fragments.is_none(),
                    "new message inside a fragmented one"
                );
                self.fragments = Some((opcode, payload.to_vec()));
                None
            }
            OP_CONTINUATION => {
                let (first, mut data) = self
                    .fragments
                    .take()
                    .ok_or_else(|| anyhow!("continuation without a first fragment"))?;
                ensure!(
                    data.len() + len <= MAX_MESSAGE,
                    "message over {MAX_MESSAGE} bytes"
                );
                data.extend_from_slice(&payload);
                if fin {
                    Some(message(first, data)?)
                } else {
                    self.fragments = Some((first, data));
                    None
                }
            }
            other => bail!("unknown opcode {other:#x}"),
        };
        Ok(Some(msg))
    }

    /// Appends one masked, final frame to the output.
    fn queue_frame(&mut self, opcode: u8, payload: &[u8]) {
        let out = &mut self.output;
        out.push(0x80 | opcode);
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        // xorshift32
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        let key = x.to_be_bytes();
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    }
}

/// A frame's header length and payload length, once the header is all there.
fn frame_header(input: &[u8]) -> anyhow::Result<Option<(usize, usize)>> {
    if input.len() < 2 {
        return Ok(None);
    }
    let (header, len) = match input[1] & 0x7F {
        126 if input.len() >= 4 => (4, usize::from(u16::from_be_bytes([input[2], input[3]]))),
        127 if input.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&input[2..10]);
            let n = u64::from_be_bytes(n);
            (
                10,
                usize::try_from(n).map_err(|_| anyhow!("frame of {n} bytes"))?,
            )
        }
        126 | 127 => return Ok(None),
        n => (2, usize::from(n)),
    };
    // The mask key, were the server to send one, is refused by the caller.
    Ok(Some((header, len)))
}

fn message(opcode: u8, data: Vec<u8>) -> anyhow::Result<Msg> {
    if opcode == OP_TEXT {
        Ok(Msg::Text(
            String::from_utf8(data).map_err(|_| anyhow!("text message is not UTF-8"))?,
        ))
    } else {
        Ok(Msg::Binary(data))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A server on loopback that answers the upgrade with tokio-tungstenite and then runs
    /// `script` on the accepted WebSocket.
    async fn serve_one<F, Fut>(script: F) -> (SocketAddr, tokio::task::JoinHandle<()>)
    where
        F: FnOnce(tokio_tungstenite::WebSocketStream<TcpStream>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
            script(ws).await;
        });
        (addr, task)
    }

    async fn client(addr: SocketAddr) -> Ws {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Ws::handshake(tcp, addr, "/").await.expect("handshake")
    }

    #[tokio::test]
    async fn talks_to_tungstenite_both_ways() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let (addr, server) = serve_one(|mut ws| async move {
            // Echo text; a ping of our own in between; then a long and a fragmented message.
            let got = ws.next().await.expect("frame").expect("ok");
            ws.send(Message::Ping(b"p1".to_vec().into()))
                .await
                .expect("ping");
            ws.send(got).await.expect("echo");
            ws.send(Message::text("é".repeat(40_000)))
                .await
                .expect("long");
            let pong = ws.next().await.expect("frame").expect("ok");
            assert_eq!(pong, Message::Pong(b"p1".to_vec().into()));
            let bye = CloseFrame {
                code: CloseCode::Away,
                reason: "bye".into(),
            };
            ws.close(Some(bye)).await.expect("close");
            while ws.next().await.is_some() {}
        })
        .await;
        let mut ws = client(addr).await;
        ws.send_text("hello, 世界").await.expect("send");
        assert_eq!(
            ws.next().await.expect("next"),
            Some(Msg::Text("hello, 世界".into()))
        );
        assert_eq!(
            ws.next().await.expect("next"),
            Some(Msg::Text("é".repeat(40_000)))
        );
        assert_eq!(ws.next().await.expect("next"), Some(Msg::Close(Some(1001))));
        ws.close().await.expect("close");
        server.await.expect("server");
    }

    #[test]
    fn fragments_are_joined_and_bad_frames_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (addr, server) = serve_one(|ws| async move {
                let mut tcp = ws.into_inner();
                // "ab" + "c" as two fragments, a pong (skipped), then a frame with RSV1 set.
                tcp.write_all(&[0x01, 2, b'a', b'b', 0x8A, 0, 0x80, 1, b'c', 0xC1, 1, b'x'])
                    .await
                    .expect("write");
                let _ = tcp.read(&mut [0u8; 64]).await;
            })
            .await;
            let mut ws = client(addr).await;
            assert_eq!(
                ws.next().await.expect("next"),
                Some(Msg::Text("abc".into()))
            );
            let err = ws.next().await.expect_err("RSV1 must be refused");
            assert!(err.to_string().contains("reserved bits"), "{err}");
            drop(ws);
            server.await.expect("server");
        });
    }

    /// A server that writes `bytes` raw after the upgrade and returns what it reads back
    /// within `listen`.
    async fn raw_server(
        bytes: &'static [u8],
        listen: std::time::Duration,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (addr, server) = serve_one(move |ws| async move {
            let mut tcp = ws.into_inner();
            tcp.write_all(bytes).await.expect("write");
            let mut got = Vec::new();
            let _ = tokio::time::timeout(listen, async {
                let mut buf = [0u8; 256];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            })
            .await;
            let _ = tx.send(got);
        })
        .await;
        let task = tokio::spawn(async move {
            server.await.expect("server");
            rx.await.unwrap_or_default()
        });
        (addr, task)
    }

    /// Unmasks the frames a client sent: (opcode, payload) each.
    fn client_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while bytes.len() >= 6 {
            let len = usize::from(bytes[1] & 0x7F);
            assert!(
                len < 126 && bytes[1] & 0x80 != 0,
                "short masked frames only here"
            );
            let key = [bytes[2], bytes[3], bytes[4], bytes[5]];
            let payload = bytes[6..6 + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4]);
            out.push((bytes[0] & 0x0F, payload.collect()));
            bytes = &bytes[6 + len..];
        }
        out
    }

    #[tokio::test]
    async fn a_ping_is_answered_while_nothing_else_comes() {
        let (addr, server) = raw_server(&[0x89, 2, b'h', b'i'], Duration::from_millis(500)).await;
        let mut ws = client(addr).await;
        // Nothing but the ping arrives: the pong must still go out while `next` waits.
        let waited = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
        assert!(matches!(waited, Ok(Ok(None))), "{waited:?}");
        assert_eq!(
            client_frames(&server.await.expect("server")),
            [(OP_PONG, b"hi".to_vec())]
        );
    }

    #[tokio::test]
    async fn the_close_answer_goes_out_before_the_close_is_returned() {
        let (addr, server) = raw_server(
            &[0x88, 5, 0x03, 0xE9, b'b', b'y', b'e'],
            Duration::from_millis(500),
        )
        .await;
        let mut ws = client(addr).await;
        assert_eq!(ws.next().await.expect("next"), Some(Msg::Close(Some(1001))));
        drop(ws);
        assert_eq!(
            client_frames(&server.await.expect("server")),
            [(OP_CLOSE, vec![0x03, 0xE9])]
        );
    }

    #[tokio::test]
    async fn a_bad_header_is_refused_before_its_payload_and_a_cut_frame_is_an_error() {
        // Reserved bits and a 16 MiB length: refused at once, nothing reserved for it.
        let (addr, server) = raw_server(
            &[0xC1, 127, 0, 0, 0, 0, 1, 0, 0, 0],
            Duration::from_millis(100),
        )
        .await;
        let mut ws = client(addr).await;
        let err = ws.next().await.expect_err("refused");
        assert!(err.to_string().contains("reserved bits"), "{err}");
        assert!(ws.input.capacity() < 1024 * 1024, "{}", ws.input.capacity());
        drop(ws);
        server.await.expect("server");
        // A ping over 125 bytes, and a frame cut off by the end of the connection.
        let (addr, server) = raw_server(&[0x89, 126, 0, 200], Duration::from_millis(100)).await;
        let mut ws = client(addr).await;
        assert!(ws.next().await.is_err());
        drop(ws);
        server.await.expect("server");
        let (addr, server) = raw_server(&[0x81, 10, b'c', b'u', b't'], Duration::ZERO).await;
        let mut ws = client(addr).await;
        let err = ws.next().await.expect_err("cut");
        assert!(err.to_string().contains("middle of a message"), "{err}");
        server.await.expect("server");
    }
}
