//! Accepts TCP connections and performs the HTTP upgrade itself, so every request that is
//! not a valid Engine.IO WebSocket handshake gets the documented HTTP 400 JSON answer:
//! `{"code":N,"message":"..."}` with the Engine.IO error codes (0 transport unknown,
//! 1 session id unknown, 2 bad handshake method, 3 bad request, 4 forbidden, 5 unsupported
//! protocol version).
//!
//! Limits here: `max_connections` open at once (further ones wait in the accept queue),
//! `max_connections_per_ip` (beyond it: HTTP 429 `{"code":4,"message":"Too many
//! connections"}`), the request head's size (`MAX_HEAD`) and time (`handshake_timeout`),
//! and the WebSocket frame and message sizes (`wire::websocket_config`).
//!
//! [`accept_upgrade`] and [`parse_websocket_upgrade`] are the same accept path without the
//! Engine.IO checks, for plain WebSocket servers such as the `echo` example.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
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
    /// RFC 6455 4.4: a `Sec-WebSocket-Version` we do not speak; answered with the version we
    /// do (`Sec-WebSocket-Version: 13`).
    const WEBSOCKET_VERSION: Self = Self {
        status: 426,
        code: 3,
        message: "Unsupported WebSocket version (13 is supported)",
    };
    const TOO_MANY: Self = Self {
        status: 429,
        code: 4,
        message: "Too many connections",
    };
}

/// Open connections per remote IP address; a [`IpSlot`] gives its place back on drop.
#[derive(Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Counts one more connection from `ip`; the second value says whether it is within `max`.
    fn enter(table: &Arc<PerIp>, ip: IpAddr, max: usize) -> (IpSlot, bool) {
        let mut counts = super::lock(&table.counts);
        let n = counts.entry(ip).or_insert(0);
        *n += 1;
        let within = *n <= max;
        drop(counts);
        (
            IpSlot {
                table: table.clone(),
                ip,
            },
            within,
        )
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = super::lock(&self.table.counts);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
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
    serve_with(engine, listener, None).await
}

/// Like [`serve`]; with `tls`, every connection first completes a TLS handshake (within
/// `handshake_timeout`), so clients use `wss://`.
pub async fn serve_with(
    engine: Engine,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let permits = Arc::new(Semaphore::new(engine.config().max_connections));
    let per_ip = Arc::new(PerIp::default());
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
        let _ = stream.set_nodelay(true);
        let (slot, within) =
            PerIp::enter(&per_ip, remote.ip(), engine.config().max_connections_per_ip);
        let engine2 = engine.clone();
        let tls = tls.clone();
        // The connection's future is boxed, so the task holds only a pointer and the box only
        // the state of its kind of connection (a plain one does not carry a TLS stream's size).
        engine.tracker().spawn(async move {
            match tls {
                None => Box::pin(handle(engine2, stream, remote, within)).await,
                Some(acceptor) => {
                    Box::pin(handle_tls(engine2, acceptor, stream, remote, within)).await
                }
            }
            drop(slot);
            drop(permit);
        });
    }
}

/// The TLS handshake (bounded by `handshake_timeout`), then [`handle`].
async fn handle_tls(
    engine: Engine,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    within_ip_limit: bool,
) {
    let limit = engine.config().handshake_timeout;
    match timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => handle(engine, tls_stream, remote, within_ip_limit).await,
        Ok(Err(e)) => debug!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => debug!(%remote, "TLS handshake timeout"),
    }
}

/// A TLS acceptor (rustls with the `ring` provider) from a PEM certificate chain (leaf
/// first) and a PEM private key (PKCS#8, PKCS#1 or SEC1). Errors name the file at fault.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{ServerConfig, crypto::ring};
    let bad = |path: &std::path::Path, what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {what}: {e}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, "cannot read certificates", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, "invalid PEM certificate", &e))?;
    if chain.is_empty() {
        return Err(bad(
            cert,
            "no certificate",
            &"the file has no CERTIFICATE block",
        ));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, "invalid PEM private key", &e))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, "TLS setup", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| bad(key, "certificate and key do not match", &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reads an HTTP upgrade request (bounded by `MAX_HEAD` and `limit`), checks it with
/// `check`, and answers: the JSON refusal, or `101`. Returns the stream, the bytes read past
/// the request head (the start of the first frames) and the checked request; `None` when
/// refused, timed out or failed.
pub async fn accept_upgrade<S, F>(
    mut stream: S,
    limit: Duration,
    check: F,
) -> Option<(S, Vec<u8>, Upgrade)>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&[u8]) -> Result<Upgrade, HandshakeError>,
{
    let mut buf = Vec::with_capacity(1024);
    match timeout(limit, read_head(&mut stream, &mut buf)).await {
        Ok(Ok(())) => {}
        _ => return None,
    }
    let mut upgrade = match check(&buf) {
        Ok(u) => u,
        Err(refusal) => {
            let _ = timeout(limit, refuse(&mut stream, &refusal)).await;
            return None;
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        upgrade.accept_key
    );
    match timeout(limit, stream.write_all(response.as_bytes())).await {
        Ok(Ok(())) => {}
        _ => return None,
    }
    let leftover = buf.split_off(upgrade.head_len.min(buf.len()));
    upgrade.head_len = 0;
    Some((stream, leftover, upgrade))
}

async fn handle<S>(engine: Engine, mut stream: S, remote: SocketAddr, within_ip_limit: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake_timeout = engine.config().handshake_timeout;
    let shutdown = engine.shutdown_token();
    if !within_ip_limit {
        // Read the request first, so the client sees the answer instead of a reset.
        let mut buf = Vec::with_capacity(1024);
        if let Ok(Ok(())) = timeout(handshake_timeout, read_head(&mut stream, &mut buf)).await {
            debug!(%remote, "too many connections from this address");
            let _ = timeout(
                handshake_timeout,
                refuse(&mut stream, &HandshakeError::TOO_MANY),
            )
            .await;
        }
        return;
    }
    let accepted = tokio::select! {
        _ = shutdown.cancelled() => return,
        a = Box::pin(accept_upgrade(stream, handshake_timeout, parse_upgrade)) => a,
    };
    let Some((stream, leftover, upgrade)) = accepted else {
        debug!(%remote, "handshake refused, failed or timed out");
        return;
    };
    let info = Arc::new(ConnectionInfo {
        id: Sid::random(),
        remote,
        query: upgrade.query,
    });
    connection::serve(engine, stream, leftover, info).await;
}

/// Reads until the end of the request head (or [`MAX_HEAD`] bytes).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> std::io::Result<()> {
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
    websocket_headers(&req, head_len, query)
}

/// Validates a plain WebSocket upgrade on any path (no Engine.IO checks): `GET`, `Upgrade:
/// websocket`, `Connection: upgrade`, version 13 and a key.
pub fn parse_websocket_upgrade(buf: &[u8]) -> Result<Upgrade, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(HandshakeError::BAD_REQUEST),
    };
    let path = req.path.unwrap_or("");
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    websocket_headers(&req, head_len, query)
}

fn websocket_headers(
    req: &httparse::Request<'_, '_>,
    head_len: usize,
    query: &str,
) -> Result<Upgrade, HandshakeError> {
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
    if upgrade_ok && connection_ok && !version_ok {
        return Err(HandshakeError::WEBSOCKET_VERSION);
    }
    match (upgrade_ok && connection_ok && version_ok, key) {
        (true, Some(key)) => Ok(Upgrade {
            accept_key: derive_accept_key(key.trim().as_bytes()),
            query: query.to_owned(),
            head_len,
        }),
        _ => Err(HandshakeError::BAD_REQUEST),
    }
}

async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    refusal: &HandshakeError,
) -> std::io::Result<()> {
    let body = serde_json::json!({"code": refusal.code, "message": refusal.message}).to_string();
    let status = match refusal.status {
        404 => "404 Not Found",
        426 => "426 Upgrade Required",
        429 => "429 Too Many Requests",
        _ => "400 Bad Request",
    };
    let version = if refusal.status == 426 {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{version}Connection: close\r\n\r\n{body}",
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
