//! Accepts TCP connections, reads each request head itself and routes it (a WebSocket
//! upgrade, a long-polling request, the upgrade of a polling session, a CORS preflight: see
//! `cors`), so every request that is not a valid Engine.IO request gets the documented HTTP
//! 400 JSON answer:
//! `{"code":N,"message":"..."}` with the Engine.IO error codes (0 transport unknown,
//! 1 session id unknown, 2 bad handshake method, 3 bad request, 4 forbidden, 5 unsupported
//! protocol version).
//!
//! Limits here: `max_connections` open at once (further ones wait in the accept queue),
//! `max_connections_per_ip` sessions (beyond it: HTTP 429 `{"code":4,"message":"Too many
//! connections"}`; a polling session counts from its handshake, see `per_ip`), the request
//! head's size (`chat_protocol::http::MAX_HEAD`) and time (`handshake_timeout`, also for each
//! later request on a keep-alive connection, and for a POST body), a POST body's size
//! (`max_payload`, else 413; chunked: 411), and the WebSocket frame and message sizes
//! (`wire::websocket_config`).
//!
//! [`accept_upgrade`] and [`parse_websocket_upgrade`] are the same accept path without the
//! Engine.IO checks, for plain WebSocket servers such as the `echo` example.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tracing::{debug, warn};

use chat_protocol::http::{ENGINE_PATH, EngineRequest, RequestHead, parse_engine_request};
pub use chat_protocol::http::{HandshakeError, Upgrade, parse_upgrade, parse_websocket_upgrade};

use super::http_routes::HttpRequest;
use super::namespace::{ConnectionInfo, Transport};
use super::outbox::CloseReason;
use super::per_ip::{CONNECTIONS_PER_SESSION, IpSlot, PerIp};
use super::stats::Refusal;
use super::{Engine, Sid, connection, http_io, polling};

/// Counts an open WebSocket connection while it lives (the gauge goes down however the
/// connection's task ends).
struct OpenWebSocket(Engine);

impl OpenWebSocket {
    fn new(engine: &Engine) -> OpenWebSocket {
        engine.stats().websocket_opened();
        OpenWebSocket(engine.clone())
    }
}

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        self.0.stats().websocket_closed();
    }
}

/// The path Socket.IO clients use by default.
pub const PATH: &str = ENGINE_PATH;

/// The per-IP table of sessions, this connection's place in the per-IP table of connections,
/// and whether that place is within the bound.
type Counted = (Arc<PerIp>, IpSlot, bool);

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
    // Sessions per address, and TCP connections per address (see `per_ip`).
    let per_ip = Arc::new(PerIp::default());
    let per_conn = Arc::new(PerIp::default());
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
        let max_per_ip = engine.config().max_connections_per_ip;
        let (slot, within) = PerIp::enter(
            &per_conn,
            remote.ip(),
            max_per_ip.saturating_mul(CONNECTIONS_PER_SESSION),
        );
        // A trusted proxy's connections carry many clients: their sessions are counted per
        // client (the address its X-Forwarded-For names), its connections not at all.
        let within = within || engine.config().trusted_proxies.trusts(remote.ip());
        let engine2 = engine.clone();
        let tls = tls.clone();
        let per_ip = per_ip.clone();
        // The connection's futures are boxed, so the task holds only a pointer and each box
        // only the state of its kind of connection (a plain one does not carry a TLS stream's
        // size). The request handling's box is given back before the upgraded connection is
        // served, so a connection's long life holds only the WebSocket's state; the `Upgraded`
        // value becomes its boxed future before the await (kept in a local across it, the
        // larger, TLS one would sit in every connection's task).
        engine.tracker().spawn(async move {
            let counted = (per_ip, slot, within);
            let upgraded = match tls {
                None => Box::pin(handle(engine2.clone(), stream, remote, counted))
                    .await
                    .map(|upgraded| upgraded.serve(engine2)),
                Some(acceptor) => Box::pin(handle_tls(
                    engine2.clone(),
                    acceptor,
                    stream,
                    remote,
                    counted,
                ))
                .await
                .map(|upgraded| upgraded.serve(engine2)),
            };
            if let Some(connection) = upgraded {
                connection.await;
            }
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
    counted: Counted,
) -> Option<Upgraded<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>> {
    let limit = engine.config().handshake_timeout;
    match timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => handle(engine, tls_stream, remote, counted).await,
        Ok(Err(e)) => {
            debug!(%remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            debug!(%remote, "TLS handshake timeout");
            None
        }
    }
}

/// A TCP connection whose HTTP part is over and which is now a WebSocket for the rest of its
/// life, with the places it holds in the per-IP tables. [`handle`] returns it rather than
/// serving it itself: the request handling's future is ~900 bytes larger than the
/// WebSocket's and would otherwise stay in every connection's task for the connection's life.
enum Upgraded<S> {
    /// A new session over WebSocket ([`connection::serve`]).
    WebSocket {
        stream: S,
        leftover: Vec<u8>,
        info: Arc<ConnectionInfo>,
        session_slot: IpSlot,
        conn_slot: IpSlot,
        open: OpenWebSocket,
    },
    /// A polling session moving to this WebSocket ([`polling::upgrade`]).
    Session {
        stream: S,
        leftover: Vec<u8>,
        sid: String,
        upgrade: Upgrade,
        conn_slot: IpSlot,
    },
}

impl<S> Upgraded<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Serves the WebSocket until it closes; the per-IP places are given back after. Not an
    /// `async fn`: the returned future holds only its own variant's state (an async match
    /// over `self` would also keep `self` whole, and both variants' futures' room).
    fn serve(self, engine: Engine) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        match self {
            Upgraded::WebSocket {
                stream,
                leftover,
                info,
                session_slot,
                conn_slot,
                open,
            } => Box::pin(async move {
                connection::serve(engine, stream, leftover, info).await;
                drop(session_slot);
                drop(open);
                drop(conn_slot);
            }),
            Upgraded::Session {
                stream,
                leftover,
                sid,
                upgrade,
                conn_slot,
            } => Box::pin(async move {
                polling::upgrade(engine, stream, leftover, &sid, upgrade).await;
                drop(conn_slot);
            }),
        }
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
    match timeout(limit, http_io::read_head(&mut stream, &mut buf)).await {
        Ok(Ok(())) => {}
        _ => return None,
    }
    let mut upgrade = match check(&buf) {
        Ok(u) => u,
        Err(refusal) => {
            http_io::refuse(&mut stream, &refusal, limit).await;
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

/// Serves one TCP connection: reads a request head (within the handshake timeout) and routes
/// it. A WebSocket upgrade without `sid` becomes a connection ([`connection::serve`]); with
/// `sid`, the upgrade of a polling session; a polling request is answered and the next one
/// read (HTTP/1.1 keep-alive, one request at a time). The connection counts for its address
/// while open (beyond the bound: 429 for its first request); a session counts apart, from the
/// upgrade request or the polling handshake. A WebSocket is not served here but returned
/// ([`Upgraded`]), for the caller to serve once this future is gone.
async fn handle<S>(
    engine: Engine,
    mut stream: S,
    remote: SocketAddr,
    counted: Counted,
) -> Option<Upgraded<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (per_ip, conn_slot, conn_within) = counted;
    let limit = engine.config().handshake_timeout;
    let max_body = engine.config().max_payload;
    let shutdown = engine.shutdown_token();
    let mut buf = Vec::with_capacity(1024);
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => return None,
            read = timeout(limit, http_io::read_head(&mut stream, &mut buf)) => read,
        };
        if !matches!(read, Ok(Ok(()))) {
            debug!(%remote, "no request head in time, or the client went away");
            return None;
        }
        // Behind a trusted proxy, the client it names (per request: a proxy may send
        // several clients' requests on one connection).
        let peer = remote;
        let proxies = &engine.config().trusted_proxies;
        let remote = if proxies.trusts(peer.ip()) {
            RequestHead::parse(&buf).map_or(peer, |head| {
                proxies.client(peer, head.header_values("x-forwarded-for"))
            })
        } else {
            peer
        };
        if !conn_within {
            debug!(%remote, "too many connections from this address");
            engine.stats().refused(Refusal::PerIp);
            http_io::refuse(&mut stream, &HandshakeError::TOO_MANY, limit).await;
            return None;
        }
        let request = match parse_engine_request(&buf, max_body) {
            Ok(request) => request,
            Err(HandshakeError::NOT_FOUND) if engine.http_routes().is_some() => {
                if Box::pin(serve_route(&engine, &mut stream, &mut buf)).await {
                    continue;
                }
                return None;
            }
            Err(refusal) => {
                let head = RequestHead::parse(&buf).ok();
                if refusal == HandshakeError::TOO_LARGE {
                    // A body over max_payload ends the session it was for.
                    if let Some(sid) = head.as_ref().and_then(|h| h.param("sid")) {
                        engine.polling().close(sid, CloseReason::TOO_BIG);
                    }
                }
                // A refusal on the Engine.IO path is readable by an allowed origin's page.
                let origin = head.as_ref().and_then(|h| h.header("origin"));
                let cors = match refusal.status {
                    404 => String::new(),
                    _ => engine.config().cors_origins.answer_headers(origin),
                };
                debug!(%remote, status = refusal.status, "request refused");
                engine.stats().refused(Refusal::of_status(refusal.status));
                http_io::refuse_with(&mut stream, &refusal, &cors, limit).await;
                return None;
            }
        };
        if let EngineRequest::WebSocket(upgrade) | EngineRequest::UpgradeSession { upgrade, .. } =
            &request
            && !websocket_origin_allowed(engine.config(), upgrade)
        {
            debug!(%remote, "WebSocket upgrade from an origin not allowed");
            engine.stats().refused(Refusal::Origin);
            http_io::refuse(&mut stream, &HandshakeError::FORBIDDEN, limit).await;
            return None;
        }
        match request {
            EngineRequest::Preflight(preflight) => {
                let answer = engine.config().cors_origins.preflight(&preflight);
                let Ok(response) = answer else {
                    debug!(%remote, "CORS preflight from an origin not allowed");
                    engine.stats().refused(Refusal::Origin);
                    http_io::refuse(&mut stream, &HandshakeError::FORBIDDEN, limit).await;
                    return None;
                };
                let sent = http_io::answer(&mut stream, response.as_bytes(), limit).await;
                if !sent || !preflight.keep_alive {
                    let _ = timeout(limit, stream.shutdown()).await;
                    return None;
                }
                buf.drain(..preflight.head_len.min(buf.len()));
            }
            EngineRequest::WebSocket(upgrade) => {
                let max = engine.config().max_connections_per_ip;
                let (session_slot, within) = PerIp::enter(&per_ip, remote.ip(), max);
                if !within {
                    debug!(%remote, "too many sessions from this address");
                    engine.stats().refused(Refusal::PerIp);
                    http_io::refuse(&mut stream, &HandshakeError::TOO_MANY, limit).await;
                    return None;
                }
                match timeout(limit, stream.write_all(upgrade.response().as_bytes())).await {
                    Ok(Ok(())) => {}
                    _ => return None,
                }
                let leftover = buf.split_off(upgrade.head_len.min(buf.len()));
                let open = OpenWebSocket::new(&engine);
                let info = Arc::new(ConnectionInfo::new(
                    Sid::random(),
                    remote,
                    upgrade.query,
                    Transport::WebSocket,
                ));
                return Some(Upgraded::WebSocket {
                    stream,
                    leftover,
                    info,
                    session_slot,
                    conn_slot,
                    open,
                });
            }
            EngineRequest::UpgradeSession { sid, upgrade } => {
                // The session counts for its address already; this connection becomes its
                // transport.
                let leftover = buf.split_off(upgrade.head_len.min(buf.len()));
                return Some(Upgraded::Session {
                    stream,
                    leftover,
                    sid,
                    upgrade,
                    conn_slot,
                });
            }
            EngineRequest::Polling(req) => {
                let keep_alive = Box::pin(polling::serve(
                    &engine,
                    req,
                    &mut stream,
                    &mut buf,
                    remote,
                    &per_ip,
                ))
                .await;
                if !keep_alive {
                    let _ = timeout(limit, stream.shutdown()).await;
                    return None;
                }
            }
        }
    }
}

/// Whether a WebSocket upgrade may proceed: always, unless `check_ws_origin` is on; then
/// only without an `Origin`, from an allowed one, or from the server's own host.
fn websocket_origin_allowed(config: &crate::EngineConfig, upgrade: &Upgrade) -> bool {
    !config.check_ws_origin
        || config
            .cors_origins
            .allows_websocket(upgrade.origin.as_deref(), upgrade.host.as_deref())
}

/// Answers a request for a path other than the Engine.IO one from the application's routes
/// (404 JSON when they do not serve it) and drops its head from `buf`; true when the
/// connection stays open for the next request (HTTP/1.1 keep-alive, no request body).
async fn serve_route<S>(engine: &Engine, stream: &mut S, buf: &mut Vec<u8>) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = engine.config().handshake_timeout;
    let Ok(head) = RequestHead::parse(buf) else {
        http_io::refuse(stream, &HandshakeError::BAD_REQUEST, limit).await;
        return false;
    };
    let has_body = head
        .header("content-length")
        .is_some_and(|v| v.trim() != "0")
        || head.header("transfer-encoding").is_some();
    let keep_alive = head.version >= 1 && !head.lists("connection", "close") && !has_body;
    let request = HttpRequest {
        method: head.method,
        path: head.path,
        query: head.query,
        if_none_match: head.header("if-none-match"),
    };
    let answer = engine.http_routes().and_then(|routes| routes(&request));
    let head_only = head.method == "HEAD";
    let head_len = head.head_len;
    let Some(response) = answer else {
        http_io::refuse(stream, &HandshakeError::NOT_FOUND, limit).await;
        return false;
    };
    let bytes = response.encode(head_only, keep_alive);
    let written = timeout(limit, async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) || !keep_alive {
        let _ = timeout(limit, stream.shutdown()).await;
        return false;
    }
    buf.drain(..head_len.min(buf.len()));
    true
}
