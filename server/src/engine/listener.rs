//! Accepts TCP connections and performs the HTTP upgrade itself, so every request that is
//! not a valid Engine.IO WebSocket handshake gets the documented HTTP 400 JSON answer:
//! `{"code":N,"message":"..."}` with the Engine.IO error codes (0 transport unknown,
//! 1 session id unknown, 2 bad handshake method, 3 bad request, 5 unsupported protocol version).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::{debug, warn};

use super::namespace::ConnectionInfo;
use super::{Engine, Sid, connection};

/// Largest HTTP request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// The path Socket.IO clients use by default.
pub const PATH: &str = "/socket.io/";

/// A refused handshake: the Engine.IO error code, its message, and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    pub status: u16,
    pub code: u8,
    pub message: &'static str,
}

impl HandshakeError {
    const TRANSPORT_UNKNOWN: Self = Self {
        status: 400,
        code: 0,
        message: "Transport unknown",
    };
    const SESSION_UNKNOWN: Self = Self {
        status: 400,
        code: 1,
        message: "Session ID unknown",
    };
    const BAD_METHOD: Self = Self {
        status: 400,
        code: 2,
        message: "Bad handshake method",
    };
    const BAD_REQUEST: Self = Self {
        status: 400,
        code: 3,
        message: "Bad request",
    };
    const BAD_VERSION: Self = Self {
        status: 400,
        code: 5,
        message: "Unsupported protocol version",
    };
}

/// A valid upgrade request.
#[derive(Debug)]
pub struct Upgrade {
    pub accept_key: String,
    pub query: String,
    /// How many bytes of the buffer the request head used.
    pub head_len: usize,
}

/// Accepts until shutdown. Each connection runs on its own task, tracked by the engine.
pub async fn serve(engine: Engine, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(engine.config().max_connections));
    let shutdown = engine.shutdown_token();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let engine2 = engine.clone();
        engine.tracker().spawn(async move {
            handle(engine2, stream, remote).await;
            drop(permit);
        });
    }
}

async fn handle(engine: Engine, mut stream: TcpStream, remote: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let config = engine.config().clone();
    let shutdown = engine.shutdown_token();
    let mut buf = Vec::with_capacity(1024);
    let read = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = timeout(config.handshake_timeout, read_head(&mut stream, &mut buf)) => r,
    };
    let upgrade = match read {
        Err(_) => {
            debug!(%remote, "handshake timeout");
            return;
        }
        Ok(Err(e)) => {
            debug!(%remote, error = %e, "handshake read failed");
            return;
        }
        Ok(Ok(())) => match parse_upgrade(&buf) {
            Ok(u) => u,
            Err(refusal) => {
                let _ = timeout(config.handshake_timeout, refuse(&mut stream, &refusal)).await;
                return;
            }
        },
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        upgrade.accept_key
    );
    if timeout(
        config.handshake_timeout,
        stream.write_all(response.as_bytes()),
    )
    .await
    .is_err()
    {
        return;
    }
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(config.max_payload))
        .max_frame_size(Some(config.max_payload));
    let leftover = buf.split_off(upgrade.head_len);
    let ws =
        WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(ws_config)).await;
    let info = Arc::new(ConnectionInfo {
        id: Sid::random(),
        remote,
        query: upgrade.query,
    });
    connection::serve(engine, ws, info).await;
}

/// Reads until the end of the request head (or [`MAX_HEAD`] bytes).
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= MAX_HEAD {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Validates an upgrade request head (pure; tested without sockets).
pub fn parse_upgrade(buf: &[u8]) -> Result<Upgrade, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(HandshakeError::BAD_REQUEST),
    };
    let path = req.path.unwrap_or("");
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    if route != PATH && route != PATH.trim_end_matches('/') {
        return Err(HandshakeError {
            status: 404,
            ..HandshakeError::BAD_REQUEST
        });
    }
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    };
    match param("transport") {
        Some("websocket") => {}
        _ => return Err(HandshakeError::TRANSPORT_UNKNOWN),
    }
    if param("EIO") != Some("4") {
        return Err(HandshakeError::BAD_VERSION);
    }
    if param("sid").is_some() {
        return Err(HandshakeError::SESSION_UNKNOWN);
    }
    if req.method != Some("GET") {
        return Err(HandshakeError::BAD_METHOD);
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let upgrade_ok = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection_ok = header("connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    let version_ok = header("sec-websocket-version") == Some("13");
    let key = header("sec-websocket-key").filter(|k| !k.trim().is_empty());
    match (upgrade_ok && connection_ok && version_ok, key) {
        (true, Some(key)) => Ok(Upgrade {
            accept_key: derive_accept_key(key.trim().as_bytes()),
            query: query.to_owned(),
            head_len,
        }),
        _ => Err(HandshakeError::BAD_REQUEST),
    }
}

async fn refuse(stream: &mut TcpStream, refusal: &HandshakeError) -> std::io::Result<()> {
    let body = serde_json::json!({"code": refusal.code, "message": refusal.message}).to_string();
    let status = if refusal.status == 404 {
        "404 Not Found"
    } else {
        "400 Bad Request"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, extra: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
    }

    #[test]
    fn accepts_a_valid_upgrade() {
        let r = req("/socket.io/?EIO=4&transport=websocket&t=abc", "");
        let u = parse_upgrade(r.as_bytes()).expect("valid");
        assert_eq!(u.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(u.head_len, r.len());
    }

    #[test]
    fn refusals_carry_engine_io_codes() {
        let code = |path: &str| parse_upgrade(req(path, "").as_bytes()).unwrap_err().code;
        assert_eq!(code("/socket.io/?EIO=4&transport=polling"), 0);
        assert_eq!(code("/socket.io/?EIO=4"), 0);
        assert_eq!(code("/socket.io/?EIO=3&transport=websocket"), 5);
        assert_eq!(code("/socket.io/?transport=websocket"), 5);
        assert_eq!(code("/socket.io/?EIO=4&transport=websocket&sid=abc"), 1);
        assert_eq!(
            parse_upgrade(req("/other", "").as_bytes())
                .unwrap_err()
                .status,
            404
        );
        let post = req("/socket.io/?EIO=4&transport=websocket", "").replacen("GET", "POST", 1);
        assert_eq!(parse_upgrade(post.as_bytes()).unwrap_err().code, 2);
        let plain = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parse_upgrade(plain.as_bytes()).unwrap_err().code, 3);
        assert_eq!(parse_upgrade(b"garbage\r\n\r\n").unwrap_err().code, 3);
    }
}
