//! The admin listener (`admin_listen`): a TCP listener of its own, never the public port,
//! serving plain HTTP/1.1 to operators and their tools:
//! - `GET /metrics`: every metric in the Prometheus text format ([`crate::metrics`]);
//! - `GET /healthz`: 200 while the process runs;
//! - `GET /readyz`: 200 when it takes users; 503 while starting, draining (after SIGTERM)
//!   or while its store cannot write ([`Health`]);
//! - `/api/...`: the admin API ([`api`]), behind `Authorization: Bearer <admin_token>`; off
//!   (403) when no token is configured.
//!
//! What a client of this port can make the server hold, and the bounds: at most
//! [`MAX_CONNECTIONS`] connections at once (more are closed at once), each answering one
//! request (`Connection: close`); a request head of at most `chat_protocol::http::MAX_HEAD`
//! bytes (parsed by the engine's own head parser) and a body of at most [`MAX_BODY`] bytes
//! (413 beyond; chunked bodies 411), each read within [`TIMEOUT`]; the answer written within
//! it too. The token is compared in constant time (SHA-256 of both sides, then
//! `subtle::ConstantTimeEq`, so neither its bytes nor its length show in the timing).
//! Unknown paths get 404; a request without the token, or with a wrong one, 401.
//!
//! Files: this one (the listener, the request reading, health and metrics), `api.rs` (the
//! API's routes and JSON), `client.rs` (`chat-server admin <verb>`, the API's client).

pub mod api;
pub mod client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use chat_protocol::http::{MAX_HEAD, RequestHead, head_complete};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::chat::ChatApp;
use crate::engine::Engine;
use crate::metrics::{self, Metrics};

/// Connections served at once; one more is closed without an answer.
pub const MAX_CONNECTIONS: usize = 32;
/// The largest request body accepted (the API's JSON requests are small).
pub const MAX_BODY: usize = 16 * 1024;
/// Time to send the request head, then its body, then to take the answer (each).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the server takes users (`/readyz`): starting, ready, or draining; and its store.
#[derive(Debug)]
pub struct Health {
    state: AtomicU8,
}

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Default for Health {
    fn default() -> Self {
        Health {
            state: AtomicU8::new(STARTING),
        }
    }
}

impl Health {
    /// Listening: ready (unless draining already).
    pub fn set_ready(&self) {
        let _ = self
            .state
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Draining: not ready any more, for good.
    pub fn set_draining(&self) {
        self.state.store(DRAINING, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.state.load(Ordering::Acquire) == DRAINING
    }

    /// `None` when ready, else why not (`starting`, `draining`).
    fn not_ready(&self) -> Option<&'static str> {
        match self.state.load(Ordering::Acquire) {
            READY => None,
            DRAINING => Some("draining"),
            _ => Some("starting"),
        }
    }
}

/// What the admin listener serves from.
pub struct AdminState {
    pub engine: Engine,
    pub app: Arc<ChatApp>,
    pub health: Arc<Health>,
    pub metrics: Metrics,
    /// SHA-256 of the admin token; `None`: the API is off.
    token_digest: Option<[u8; 32]>,
    /// The longest notice text (the chat's message limit).
    pub max_text_len: usize,
}

impl AdminState {
    pub fn new(
        engine: Engine,
        app: Arc<ChatApp>,
        health: Arc<Health>,
        token: Option<&str>,
        max_text_len: usize,
    ) -> AdminState {
        AdminState {
            metrics: Metrics::new(engine.clone(), app.clone()),
            engine,
            app,
            health,
            token_digest: token.map(digest),
            max_text_len,
        }
    }

    /// Whether `authorization` (the header's value) carries the admin token; in constant
    /// time over the token's bytes and length.
    fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(expected) = &self.token_digest else {
            return false;
        };
        let Some(given) = authorization.and_then(bearer) else {
            return false;
        };
        bool::from(digest(given).ct_eq(expected))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The token of `Bearer <token>` (the scheme in any case, as RFC 7235 has it).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The admin listener, running.
pub struct AdminServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Binds `addr` and serves `state` on it until [`AdminServer::stop`].
    pub async fn start(addr: SocketAddr, state: AdminState) -> std::io::Result<AdminServer> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} (admin_listen): {e}"),
            )
        })?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept(listener, Arc::new(state), stop.clone()));
        Ok(AdminServer { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the accept loop (requests under way finish on their own,
    /// each within its time bounds).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn accept(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, remote) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%remote, "admin listener: too many connections");
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            serve(stream, &state).await;
            drop(permit);
        });
    }
}

/// An answer: status, content type, body, and extra header lines (`Name: value\r\n`).
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub extra: &'static str,
}

impl Answer {
    pub fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            extra: "",
        }
    }

    pub fn json(status: u16, body: &serde_json::Value) -> Answer {
        let mut body = body.to_string();
        body.push('\n');
        Answer {
            status,
            content_type: "application/json",
            body,
            extra: "",
        }
    }

    /// `{"error": code, "message": message}` with `status`.
    pub fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer::json(
            status,
            &serde_json::json!({"error": code, "message": message}),
        )
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            self.extra,
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A request as routed: method, path, query, and its body (empty for a GET).
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// Reads one request (bounded), answers it and closes.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: &AdminState) {
    let mut buf = Vec::with_capacity(1024);
    let answer = match timeout(TIMEOUT, read_head(&mut stream, &mut buf)).await {
        Ok(Ok(true)) => Some(Box::pin(answer(&mut stream, &mut buf, state)).await),
        Ok(Ok(false)) => Some((
            Answer::error(431, "head_too_large", "request head too large"),
            false,
        )),
        // Too slow, or gone: nothing to answer.
        _ => None,
    };
    if let Some((answer, head_only)) = answer {
        let _ = timeout(TIMEOUT, async {
            stream.write_all(&answer.encode(head_only)).await?;
            stream.flush().await?;
            stream.shutdown().await
        })
        .await;
    }
}

/// Reads until `buf` holds a whole request head (or a bare LF): `true`, or `false` when
/// `MAX_HEAD` bytes hold none.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let mut chunk = [0u8; 1024];
    // As the engine's reading does: only the new bytes (and the three before them) are
    // looked at, and a bare LF ends the reading too (the head is then refused, 400).
    let mut searched = 0;
    loop {
        if head_complete(buf, searched) {
            return Ok(true);
        }
        if buf.len() >= MAX_HEAD {
            return Ok(false);
        }
        searched = buf.len().saturating_sub(3);
        let want = chunk.len().min(MAX_HEAD - buf.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses the head in `buf`, reads the body, routes; the answer and whether it is for a HEAD.
async fn answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    state: &AdminState,
) -> (Answer, bool) {
    let Ok(head) = RequestHead::parse(buf) else {
        return (
            Answer::error(
                400,
                "bad_request",
                "not a well-formed HTTP/1.x request head (HTTP/1.1 needs one Host header; lines end with CRLF)",
            ),
            false,
        );
    };
    let head_only = head.method == "HEAD";
    if head.header("transfer-encoding").is_some() {
        return (
            Answer::error(411, "length_required", "send a Content-Length"),
            head_only,
        );
    }
    let length = match head
        .header("content-length")
        .map(|v| v.trim().parse::<usize>())
    {
        None => 0,
        Some(Ok(n)) if n <= MAX_BODY => n,
        Some(Ok(_)) => {
            return (
                Answer::error(413, "too_large", "request body over 16 KiB"),
                head_only,
            );
        }
        Some(Err(_)) => {
            return (
                Answer::error(400, "bad_request", "bad Content-Length"),
                head_only,
            );
        }
    };
    let (method, path, query) = (
        head.method.to_owned(),
        head.path.to_owned(),
        head.query.to_owned(),
    );
    let authorization = head.header("authorization").map(str::to_owned);
    let head_len = head.head_len;
    buf.drain(..head_len.min(buf.len()));
    let read_body = async {
        let mut chunk = [0u8; 4096];
        while buf.len() < length {
            let want = (length - buf.len()).min(chunk.len());
            let n = stream.read(&mut chunk[..want]).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    if !matches!(timeout(TIMEOUT, read_body).await, Ok(Ok(()))) {
        return (
            Answer::error(400, "bad_request", "the body did not arrive"),
            head_only,
        );
    }
    buf.truncate(length);
    let request = Request {
        method: if head_only { "GET" } else { &method },
        path: &path,
        query: &query,
        body: buf,
    };
    (
        route(&request, authorization.as_deref(), state).await,
        head_only,
    )
}

/// The answer to a request.
async fn route(request: &Request<'_>, authorization: Option<&str>, state: &AdminState) -> Answer {
    let get_only = |answer: Answer| match request.method {
        "GET" => answer,
        _ => Answer {
            extra: "Allow: GET, HEAD\r\n",
            ..Answer::error(405, "method_not_allowed", "use GET")
        },
    };
    match request.path {
        "/healthz" => get_only(Answer::text(200, "ok\n")),
        "/readyz" => get_only(readiness(state)),
        "/metrics" => get_only(Answer {
            content_type: metrics::CONTENT_TYPE,
            ..Answer::text(200, state.metrics.render())
        }),
        path if path == "/api" || path.starts_with("/api/") => {
            if state.token_digest.is_none() {
                return Answer::error(
                    403,
                    "api_off",
                    "the admin API is off: no admin_token is set",
                );
            }
            if !state.authorized(authorization) {
                return Answer {
                    extra: "WWW-Authenticate: Bearer realm=\"chat-server admin\"\r\n",
                    ..Answer::error(
                        401,
                        "unauthorized",
                        "send Authorization: Bearer <admin_token>",
                    )
                };
            }
            api::route(request, state).await
        }
        _ => Answer::error(404, "not_found", "no such path"),
    }
}

fn readiness(state: &AdminState) -> Answer {
    match state.health.not_ready() {
        Some(why) => Answer::text(503, format!("{why}\n")),
        None if !state.app.store_available() => Answer::text(503, "store unavailable\n"),
        None => Answer::text(200, "ready\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_takes_the_token_of_any_case_scheme() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
