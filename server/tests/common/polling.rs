//! A plain HTTP/1.1 client over a tokio `TcpStream` (keep-alive, one request at a time) and
//! a raw Engine.IO long-polling client on it, with a timeout on every receive.

use std::collections::VecDeque;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chat_protocol::socket_io::Packet;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::RECV_TIMEOUT;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The JSON body of a refusal.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The first header called `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One TCP connection carrying HTTP requests in turn.
pub struct Http {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

pub fn engine_path(sid: Option<&str>) -> String {
    match sid {
        Some(sid) => format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
        None => "/socket.io/?EIO=4&transport=polling".to_owned(),
    }
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> Http {
        let tcp = tokio::time::timeout(RECV_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("tcp connect");
        Http {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Writes a request (a body sets `Content-Length`) without waiting for the answer.
    pub async fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) {
        self.send_with(method, path, &[], body).await;
    }

    /// [`Http::send`] with more headers (`Host: test` is always sent).
    pub async fn send_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            req.push_str(&format!(
                "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.tcp.write_all(&bytes).await.expect("send the request");
    }

    /// Reads one answer (head and `Content-Length` body); `None` when the server closed the
    /// connection first.
    pub async fn try_response(&mut self) -> Option<Response> {
        tokio::time::timeout(RECV_TIMEOUT, async {
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let n = self.tcp.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return None;
                }
                self.buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("a status code");
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while self.buf.len() < head_end + len {
                let n = self.tcp.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return None;
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8(self.buf[head_end..head_end + len].to_vec())
                .expect("a UTF-8 body");
            self.buf.drain(..head_end + len);
            Some(Response { status, head, body })
        })
        .await
        .expect("timed out waiting for an HTTP answer")
    }

    pub async fn response(&mut self) -> Response {
        self.try_response().await.expect("an answer")
    }

    pub async fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Response {
        self.send(method, path, body).await;
        self.response().await
    }

    /// A request with more headers, and its answer.
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        self.send_with(method, path, headers, body).await;
        self.response().await
    }

    /// Whether the server closed the connection (reads to its end within the timeout).
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(RECV_TIMEOUT, self.tcp.read_to_end(&mut rest)).await,
            Ok(Ok(_)) | Ok(Err(_))
        )
    }
}

/// A payload's packets: text ones as they are, binary ones as `Err(bytes)`.
pub fn decode_payload(body: &str) -> Vec<Result<String, Vec<u8>>> {
    body.split('\x1e')
        .map(|p| match p.strip_prefix('b') {
            Some(b64) => Err(STANDARD.decode(b64).expect("base64")),
            None => Ok(p.to_owned()),
        })
        .collect()
}

/// A long-polling Engine.IO client: one connection for GETs, one for POSTs (as browsers and
/// the official clients do).
pub struct PollingClient {
    pub addr: SocketAddr,
    pub sid: String,
    pub open: Value,
    pub get: Http,
    pub post: Http,
    /// Packets received and not yet consumed.
    pub pending: VecDeque<Result<String, Vec<u8>>>,
    /// Answer server pings automatically.
    pub auto_pong: bool,
    next_ack: u64,
}

impl PollingClient {
    /// The handshake: a GET without sid.
    pub async fn connect(addr: SocketAddr) -> PollingClient {
        let mut get = Http::connect(addr).await;
        let r = get.request("GET", &engine_path(None), None).await;
        assert_eq!(r.status, 200, "{r:?}");
        let open = r.body.strip_prefix('0').expect("the open packet");
        let open: Value = serde_json::from_str(open).expect("open JSON");
        let sid = open["sid"].as_str().expect("sid").to_owned();
        PollingClient {
            addr,
            sid,
            open,
            get,
            post: Http::connect(addr).await,
            pending: VecDeque::new(),
            auto_pong: true,
            next_ack: 0,
        }
    }

    pub fn path(&self) -> String {
        engine_path(Some(&self.sid))
    }

    /// One GET: its payload's packets.
    pub async fn poll(&mut self) -> Vec<Result<String, Vec<u8>>> {
        let path = self.path();
        let r = self.get.request("GET", &path, None).await;
        assert_eq!(r.status, 200, "{r:?}");
        decode_payload(&r.body)
    }

    /// POSTs a payload; returns the answer.
    pub async fn post_raw(&mut self, body: &[u8]) -> Response {
        let path = self.path();
        self.post.request("POST", &path, Some(body)).await
    }

    /// POSTs packets (text, or binary as `Err`), expecting `ok`.
    pub async fn send_parts(&mut self, parts: &[Result<&str, &[u8]>]) {
        let body: Vec<String> = parts
            .iter()
            .map(|p| match p {
                Ok(t) => (*t).to_owned(),
                Err(b) => format!("b{}", STANDARD.encode(b)),
            })
            .collect();
        let r = self.post_raw(body.join("\x1e").as_bytes()).await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{r:?}");
    }

    pub async fn send(&mut self, text: &str) {
        self.send_parts(&[Ok(text)]).await;
    }

    pub async fn send_packet(&mut self, p: &Packet) {
        self.send(&p.encode_frame()).await;
    }

    /// The next packet (polling as needed; pings answered when `auto_pong`).
    pub async fn next(&mut self) -> Result<String, Vec<u8>> {
        for _ in 0..1000 {
            if let Some(p) = self.pending.pop_front() {
                if self.auto_pong && p.as_deref() == Ok("2") {
                    self.send("3").await;
                    continue;
                }
                return p;
            }
            let got = self.poll().await;
            self.pending.extend(got);
        }
        panic!("no packet in 1000 polls");
    }

    pub async fn recv_text(&mut self) -> String {
        self.next().await.expect("a text packet")
    }

    pub async fn recv_packet(&mut self) -> Packet {
        let t = self.recv_text().await;
        let body = t
            .strip_prefix('4')
            .unwrap_or_else(|| panic!("expected a message packet, got {t:?}"));
        Packet::decode(body).expect("valid Socket.IO packet")
    }

    /// Skips packets until an event with this name arrives; returns its first argument.
    pub async fn wait_event(&mut self, name: &str) -> Value {
        for _ in 0..100 {
            let p = self.recv_packet().await;
            if p.event_name() == Some(name) {
                return p
                    .data
                    .and_then(|d| d.get(1).cloned())
                    .unwrap_or(Value::Null);
            }
        }
        panic!("no {name} event in 100 packets");
    }

    /// CONNECTs `nsp` and returns the socket id (after the `hello` the test app sends).
    pub async fn join_namespace(&mut self, nsp: &str) -> String {
        self.send_packet(&Packet::connect(nsp, None)).await;
        let p = self.recv_packet().await;
        let sid = p.data.as_ref().and_then(|d| d["sid"].as_str());
        sid.unwrap_or_else(|| panic!("CONNECT refused: {p:?}"))
            .to_owned()
    }

    /// Emits with an ack id and returns the ack's arguments.
    pub async fn call(&mut self, nsp: &str, event: &str, args: Vec<Value>) -> Vec<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send_packet(&Packet::event(nsp, event, args, Some(id)))
            .await;
        for _ in 0..100 {
            let p = self.recv_packet().await;
            if p.id == Some(id) && p.event_name().is_none() {
                return match p.data {
                    Some(Value::Array(a)) => a,
                    other => panic!("bad ack data {other:?}"),
                };
            }
        }
        panic!("no ack {id}");
    }
}
