//! Accepts TCP connections and performs the HTTP upgrade itself, so every request that is
//! not a valid Engine.IO WebSocket handshake gets the documented HTTP 400 JSON answer:
//! `{"code":N,"message":"..."}` with the Engine.IO error codes (0 transport unknown,
//! 1 session id unknown, 2 bad handshake method, 3 bad request, 4 forbidden, 5 unsupported
//! protocol version).
//!
//! Limits here: `max_connections` open at once (further ones wait in the accept queue),
//! `max_connections_per_ip` (beyond it: HTTP 429 `{"code":4,"message":"Too many
//! connections"}`), the request head's size (`chat_protocol::http::MAX_HEAD`) and time (`handshake_timeout`),
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
use tracing::{debug, warn};

use chat_protocol::http::{ENGINE_PATH, head_ended};
pub use chat_protocol::http::{HandshakeError, Upgrade, parse_upgrade, parse_websocket_upgrade};

use super::namespace::ConnectionInfo;
use super::{Engine, Sid, connection};

/// The path Socket.IO clients use by default.
pub const PATH: &str = ENGINE_PATH;

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

/// Reads an HTTP upgrade request (bounded by `http::MAX_HEAD` and `limit`), checks it with
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
    match timeout(limit, stream.write_all(upgrade.response().as_bytes())).await {
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

/// Reads until the end of the request head (or `http::MAX_HEAD` bytes).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 1024];
    loop {
        if head_ended(buf) {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    refusal: &HandshakeError,
) -> std::io::Result<()> {
    stream.write_all(refusal.response().as_bytes()).await?;
    stream.shutdown().await
}
