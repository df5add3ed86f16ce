//! HTTP/1.1 request heads and the Engine.IO handshake over them, pure: a buffer in, a
//! checked request or a refusal (with its HTTP status and Engine.IO error code) out.
//!
//! Every HTTP endpoint of the server reads its request head through [`RequestHead::parse`]
//! (at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers, parsed by `httparse`); the
//! listener does the bounded, timed reading and writes the answers this module renders. The
//! WebSocket upgrade is checked here: [`parse_upgrade`] (the Engine.IO path and query) and
//! [`parse_websocket_upgrade`] (any path, for plain WebSocket servers). Both never panic
//! (property-tested, and fuzzed by `fuzz/fuzz_targets/upgrade.rs`).
//!
//! Refusals are `{"code":N,"message":"..."}` JSON with the Engine.IO error codes (0 transport
//! unknown, 1 session id unknown, 2 bad handshake method, 3 bad request, 4 forbidden, 5
//! unsupported protocol version): see [`HandshakeError::response`].

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most headers in a request head; a request with more is refused (400). A browser's
/// long-polling request has about 17, and proxies in front add their own.
pub const MAX_HEADERS: usize = 64;
/// The path Socket.IO clients use by default.
pub const ENGINE_PATH: &str = "/socket.io/";

/// A parsed request head, borrowing from the buffer it was read into.
#[derive(Debug)]
pub struct RequestHead<'b> {
    pub method: &'b str,
    /// The path without its query.
    pub path: &'b str,
    /// The query string (after `?`), empty when there is none.
    pub query: &'b str,
    /// How many bytes of the buffer the head used (what follows is the body or the first
    /// WebSocket frames).
    pub head_len: usize,
    /// The minor version of `HTTP/1.x`.
    pub version: u8,
    headers: [(&'b str, &'b [u8]); MAX_HEADERS],
    count: usize,
}

/// Why a buffer does not hold a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The head has not ended yet (read more, up to [`MAX_HEAD`]).
    Partial,
    /// Not an HTTP/1.x request head, more than [`MAX_HEADERS`] headers, a head two readers
    /// could frame differently (two `Host` headers, differing `Content-Length`s, a line
    /// ended by a bare LF), or an HTTP/1.1 head without `Host` (RFC 9112 3.2).
    Invalid,
}

impl<'b> RequestHead<'b> {
    /// Parses the request head at the start of `buf`.
    pub fn parse(buf: &'b [u8]) -> Result<Self, HeadError> {
        let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut parsed);
        let head_len = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(HeadError::Partial),
            Err(_) => return Err(HeadError::Invalid),
        };
        let target = req.path.unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = [("", &b""[..]); MAX_HEADERS];
        let mut count = 0;
        for (slot, h) in headers.iter_mut().zip(req.headers.iter()) {
            *slot = (h.name, h.value);
            count += 1;
        }
        let version = req.version.unwrap_or(1);
        if ambiguous(&headers[..count])
            || bare_lf(&buf[..head_len])
            || (version == 1
                && !headers[..count]
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("host")))
        {
            return Err(HeadError::Invalid);
        }
        Ok(RequestHead {
            method: req.method.unwrap_or(""),
            path,
            query,
            head_len,
            version,
            headers,
            count,
        })
    }

    /// The first header called `name` (case-insensitive), if its value is UTF-8.
    pub fn header(&self, name: &str) -> Option<&'b str> {
        self.headers[..self.count]
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every value of header `name`, in order (a header that may be sent several times,
    /// such as `X-Forwarded-For`); values that are not UTF-8 are left out.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b str> + 's {
        self.headers[..self.count]
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Whether header `name` lists `token` (comma-separated, case-insensitive), as
    /// `Connection: keep-alive, Upgrade` lists `upgrade`.
    pub fn lists(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// The first query parameter called `name` (a parameter without `=` has an empty value).
    pub fn param(&self, name: &str) -> Option<&'b str> {
        query_param(self.query, name)
    }
}

/// Whether a head could be read as two different requests (RFC 9112 3.2 and 6.3): two
/// `Host` headers, or `Content-Length` values that differ (across headers or in one list).
/// A proxy in front of the server and the server could then frame the bytes differently
/// (request smuggling), so such a head is refused.
fn ambiguous(headers: &[(&str, &[u8])]) -> bool {
    let hosts = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .count();
    let mut lengths = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii);
    let first = lengths.next();
    hosts > 1 || lengths.any(|v| Some(v) != first)
}

/// Whether a head ends a line with a bare LF (no CR before it). `httparse` reads such a
/// line, but a proxy in front may not (RFC 9112 2.2 lets a recipient choose), so the two
/// could frame the bytes differently: refused, as [`ambiguous`] heads are.
fn bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// The first parameter called `name` in a query string (not percent-decoded).
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether `buf` holds the end of a request head (`\r\n\r\n`), a bare LF (a head
/// [`RequestHead::parse`] refuses: no need to wait for more), or is as long as a head may be:
/// reading can stop. Only what starts at `from` or later is looked at (the bytes before were
/// looked at as an earlier read came in); a LF there is checked against the byte before it.
pub fn head_ended(buf: &[u8], from: usize) -> bool {
    buf.len() >= MAX_HEAD || head_complete(buf, from)
}

/// [`head_ended`] whatever the buffer's length: whether what starts at `from` holds the end of
/// a request head, a bare LF or a bare CR (a CR followed by anything but LF: `httparse`
/// refuses it, so there is no need to wait for more either).
pub fn head_complete(buf: &[u8], from: usize) -> bool {
    let from = from.min(buf.len());
    buf[from..].windows(4).any(|w| w == b"\r\n\r\n")
        || (from..buf.len()).any(|i| buf[i] == b'\n' && (i == 0 || buf[i - 1] != b'\r'))
        || buf[from..]
            .windows(2)
            .any(|w| w[0] == b'\r' && w[1] != b'\n')
}

/// A refused handshake: the Engine.IO error code, its message, and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    pub status: u16,
    pub code: u8,
    pub message: &'static str,
}

impl HandshakeError {
    pub const TRANSPORT_UNKNOWN: Self = Self {
        status: 400,
        code: 0,
        message: "Transport unknown",
    };
    pub const SESSION_UNKNOWN: Self = Self {
        status: 400,
        code: 1,
        message: "Session ID unknown",
    };
    pub const BAD_METHOD: Self = Self {
        status: 400,
        code: 2,
        message: "Bad handshake method",
    };
    pub const BAD_REQUEST: Self = Self {
        status: 400,
        code: 3,
        message: "Bad request",
    };
    pub const NOT_FOUND: Self = Self {
        status: 404,
        code: 3,
        message: "Bad request",
    };
    pub const BAD_VERSION: Self = Self {
        status: 400,
        code: 5,
        message: "Unsupported protocol version",
    };
    /// RFC 6455 4.4: a `Sec-WebSocket-Version` we do not speak; answered with the version we
    /// do (`Sec-WebSocket-Version: 13`).
    pub const WEBSOCKET_VERSION: Self = Self {
        status: 426,
        code: 3,
        message: "Unsupported WebSocket version (13 is supported)",
    };
    pub const TOO_MANY: Self = Self {
        status: 429,
        code: 4,
        message: "Too many connections",
    };
    /// A polling request on a session that moved to WebSocket (the Engine.IO reference
    /// answers it 400 code 3 too).
    pub const TRANSPORT_MISMATCH: Self = Self {
        status: 400,
        code: 3,
        message: "Bad request",
    };
    /// A POST body without `Content-Length` (chunked bodies are not read).
    pub const LENGTH_REQUIRED: Self = Self {
        status: 411,
        code: 3,
        message: "Length required",
    };
    /// A POST body over `maxPayload`.
    pub const TOO_LARGE: Self = Self {
        status: 413,
        code: 3,
        message: "Payload too large",
    };
    /// No room for another session (the server's session bound).
    pub const SERVER_FULL: Self = Self {
        status: 503,
        code: 4,
        message: "Too many sessions",
    };
    /// A CORS preflight from an origin not allowed, or a WebSocket upgrade from one (with
    /// the origin check on); the Engine.IO reference's answer to a refused request.
    pub const FORBIDDEN: Self = Self {
        status: 403,
        code: 4,
        message: "Forbidden",
    };

    /// The whole HTTP response: status line, JSON body, `Connection: close`.
    pub fn response(&self) -> String {
        self.response_with("")
    }

    /// [`HandshakeError::response`] with more header lines (`extra`: each `Name: value\r\n`,
    /// the CORS headers of a refused polling request).
    pub fn response_with(&self, extra: &str) -> String {
        let body = serde_json::json!({"code": self.code, "message": self.message}).to_string();
        let status = match self.status {
            403 => "403 Forbidden",
            404 => "404 Not Found",
            411 => "411 Length Required",
            413 => "413 Payload Too Large",
            426 => "426 Upgrade Required",
            429 => "429 Too Many Requests",
            503 => "503 Service Unavailable",
            _ => "400 Bad Request",
        };
        let version = if self.status == 426 {
            "Sec-WebSocket-Version: 13\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{version}{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

/// A valid upgrade request.
#[derive(Debug)]
pub struct Upgrade {
    /// The `Sec-WebSocket-Accept` value answering the client's key.
    pub accept_key: String,
    pub query: String,
    /// How many bytes of the buffer the request head used.
    pub head_len: usize,
    /// The `Origin` header (a browser's page), if any and UTF-8.
    pub origin: Option<String>,
    /// The `Host` header, if any and UTF-8 (what a same-origin page's `Origin` names).
    pub host: Option<String>,
}

impl Upgrade {
    /// The `101 Switching Protocols` response.
    pub fn response(&self) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            self.accept_key
        )
    }
}

/// Longest `sid` looked up; a longer one is unknown without a lookup.
pub const MAX_SID: usize = 64;

/// A checked Engine.IO request (see [`parse_engine_request`]).
#[derive(Debug)]
pub enum EngineRequest {
    /// A WebSocket upgrade without `sid`: a new session over WebSocket.
    WebSocket(Upgrade),
    /// A WebSocket upgrade with `sid`: a polling session moving to WebSocket.
    UpgradeSession { sid: String, upgrade: Upgrade },
    /// A long-polling request.
    Polling(PollRequest),
    /// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    Preflight(Preflight),
}

/// A browser's CORS preflight for a cross-origin request on the Engine.IO path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub origin: String,
    /// `Access-Control-Request-Headers`: the header names the request will carry.
    pub request_headers: Option<String>,
    /// The connection may carry another request (as [`PollRequest::keep_alive`], and no
    /// body announced).
    pub keep_alive: bool,
    /// How many bytes of the buffer the request head used.
    pub head_len: usize,
}

/// A long-polling request: `GET` without `sid` is the handshake, `GET` with one waits for
/// packets, `POST` carries packets in a body of `content_length` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRequest {
    pub method: PollMethod,
    pub sid: Option<String>,
    /// The query string (kept as the session's for a handshake).
    pub query: String,
    /// The body's length (POST; 0 for GET).
    pub content_length: usize,
    /// The connection may carry another request after this one (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// How many bytes of the buffer the request head used.
    pub head_len: usize,
    /// The `Origin` header (a browser's page), if any and UTF-8.
    pub origin: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMethod {
    Get,
    Post,
}

/// Checks any Engine.IO request head: the path (else 404), a CORS preflight (`OPTIONS` with
/// `Origin` and `Access-Control-Request-Method`, whatever its query), `EIO=4`, the transport
/// (`websocket`: the WebSocket headers, with or without `sid`; `polling`: `GET`, or `POST`
/// with a `Content-Length` of at most `max_body`, else 411 or 413). Never panics.
pub fn parse_engine_request(buf: &[u8], max_body: usize) -> Result<EngineRequest, HandshakeError> {
    let head = RequestHead::parse(buf).map_err(|_| HandshakeError::BAD_REQUEST)?;
    if head.path != ENGINE_PATH && head.path != ENGINE_PATH.trim_end_matches('/') {
        return Err(HandshakeError::NOT_FOUND);
    }
    let keep_alive = if head.version == 0 {
        head.lists("connection", "keep-alive")
    } else {
        !head.lists("connection", "close")
    };
    let origin = head.header("origin").map(str::to_owned);
    if head.method == "OPTIONS"
        && let Some(origin) = &origin
        && head.header("access-control-request-method").is_some()
    {
        let has_body = head
            .header("content-length")
            .is_some_and(|v| v.trim() != "0")
            || head.header("transfer-encoding").is_some();
        return Ok(EngineRequest::Preflight(Preflight {
            origin: origin.clone(),
            request_headers: head
                .header("access-control-request-headers")
                .map(str::to_owned),
            keep_alive: keep_alive && !has_body,
            head_len: head.head_len,
        }));
    }
    let transport = head.param("transport");
    if !matches!(transport, Some("websocket" | "polling")) {
        return Err(HandshakeError::TRANSPORT_UNKNOWN);
    }
    if head.param("EIO") != Some("4") {
        return Err(HandshakeError::BAD_VERSION);
    }
    let sid = match head.param("sid") {
        Some(s) if s.is_empty() || s.len() > MAX_SID => {
            return Err(HandshakeError::SESSION_UNKNOWN);
        }
        s => s.map(str::to_owned),
    };
    if transport == Some("websocket") {
        let upgrade = websocket_headers(&head)?;
        return Ok(match sid {
            None => EngineRequest::WebSocket(upgrade),
            Some(sid) => EngineRequest::UpgradeSession { sid, upgrade },
        });
    }
    let method = match head.method {
        "GET" => PollMethod::Get,
        "POST" => PollMethod::Post,
        _ => return Err(HandshakeError::BAD_METHOD),
    };
    let mut content_length = 0;
    if method == PollMethod::Post {
        if sid.is_none() {
            return Err(HandshakeError::SESSION_UNKNOWN);
        }
        if head.header("transfer-encoding").is_some() {
            return Err(HandshakeError::LENGTH_REQUIRED);
        }
        content_length = match head.header("content-length").map(str::trim) {
            None => return Err(HandshakeError::LENGTH_REQUIRED),
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                // More digits than a usize holds is over any limit.
                v.parse::<usize>().unwrap_or(usize::MAX)
            }
            Some(_) => return Err(HandshakeError::BAD_REQUEST),
        };
        if content_length > max_body {
            return Err(HandshakeError::TOO_LARGE);
        }
    }
    Ok(EngineRequest::Polling(PollRequest {
        method,
        sid,
        query: head.query.to_owned(),
        content_length,
        keep_alive,
        head_len: head.head_len,
        origin,
    }))
}

/// The head of a `200 OK` with a `text/plain` body of `len` bytes (a polling answer), the
/// header lines `extra` (each `Name: value\r\n`: the CORS headers), and `Connection: close`
/// unless `keep_alive`.
pub fn text_response_head(len: usize, keep_alive: bool, extra: &str) -> String {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: {len}\r\nCache-Control: no-store\r\n{extra}Connection: {connection}\r\n\r\n"
    )
}

/// Validates a WebSocket upgrade request head for a new Engine.IO session: the path
/// ([`ENGINE_PATH`], with or without its trailing slash, else 404), `EIO=4`,
/// `transport=websocket`, no `sid` (an upgrade of a polling session goes through
/// [`parse_engine_request`]), then the WebSocket headers.
pub fn parse_upgrade(buf: &[u8]) -> Result<Upgrade, HandshakeError> {
    let head = RequestHead::parse(buf).map_err(|_| HandshakeError::BAD_REQUEST)?;
    if head.path != ENGINE_PATH && head.path != ENGINE_PATH.trim_end_matches('/') {
        return Err(HandshakeError::NOT_FOUND);
    }
    if head.param("transport") != Some("websocket") {
        return Err(HandshakeError::TRANSPORT_UNKNOWN);
    }
    if head.param("EIO") != Some("4") {
        return Err(HandshakeError::BAD_VERSION);
    }
    if head.param("sid").is_some() {
        return Err(HandshakeError::SESSION_UNKNOWN);
    }
    websocket_headers(&head)
}

/// Validates a plain WebSocket upgrade on any path (no Engine.IO checks): `GET`, `Upgrade:
/// websocket`, `Connection: upgrade`, version 13 and a key.
pub fn parse_websocket_upgrade(buf: &[u8]) -> Result<Upgrade, HandshakeError> {
    let head = RequestHead::parse(buf).map_err(|_| HandshakeError::BAD_REQUEST)?;
    websocket_headers(&head)
}

fn websocket_headers(head: &RequestHead<'_>) -> Result<Upgrade, HandshakeError> {
    if head.method != "GET" {
        return Err(HandshakeError::BAD_METHOD);
    }
    let upgrade_ok = head
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection_ok = head.lists("connection", "upgrade");
    let version_ok = head.header("sec-websocket-version") == Some("13");
    let key = head
        .header("sec-websocket-key")
        .filter(|k| !k.trim().is_empty());
    if upgrade_ok && connection_ok && !version_ok {
        return Err(HandshakeError::WEBSOCKET_VERSION);
    }
    match (upgrade_ok && connection_ok && version_ok, key) {
        (true, Some(key)) => Ok(Upgrade {
            accept_key: accept_key(key.trim()),
            query: head.query.to_owned(),
            head_len: head.head_len,
            origin: head.header("origin").map(str::to_owned),
            host: head.header("host").map(str::to_owned),
        }),
        _ => Err(HandshakeError::BAD_REQUEST),
    }
}

/// RFC 6455 4.2.2: base64 of the SHA-1 of the client's key and the protocol's GUID.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_that_two_readers_could_frame_differently_is_refused() {
        let parse = |extra: &str| {
            let head = format!("POST /x HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
            RequestHead::parse(head.as_bytes())
                .map(|h| h.header("content-length").map(str::to_owned))
        };
        assert_eq!(parse("Content-Length: 5\r\n"), Ok(Some("5".into())));
        assert_eq!(
            parse("Content-Length: 5\r\ncontent-length: 5\r\n"),
            Ok(Some("5".into()))
        );
        assert_eq!(parse("Content-Length: 5, 5\r\n"), Ok(Some("5, 5".into())));
        assert_eq!(
            parse("Content-Length: 5\r\nContent-Length: 19\r\n"),
            Err(HeadError::Invalid)
        );
        assert_eq!(parse("Content-Length: 5, 19\r\n"), Err(HeadError::Invalid));
        assert_eq!(parse("Host: b\r\n"), Err(HeadError::Invalid));
    }

    #[test]
    fn http_1_1_needs_host_and_lines_end_with_crlf() {
        let parse = |head: &str| RequestHead::parse(head.as_bytes()).map(|h| h.version);
        assert_eq!(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(1));
        assert_eq!(parse("GET / HTTP/1.1\r\nhOST: a\r\n\r\n"), Ok(1));
        assert_eq!(parse("GET / HTTP/1.0\r\n\r\n"), Ok(0));
        assert_eq!(parse("GET / HTTP/1.1\r\n\r\n"), Err(HeadError::Invalid));
        assert_eq!(
            parse("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"),
            Err(HeadError::Invalid)
        );
        assert_eq!(
            parse("GET / HTTP/1.1\nHost: a\n\n"),
            Err(HeadError::Invalid)
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nHost: a\n\r\n"),
            Err(HeadError::Invalid)
        );
        assert_eq!(parse("GET / HTTP/1.0\n\n"), Err(HeadError::Invalid));
        // A bare LF in the body is the body's business.
        let buf = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n\n\n";
        assert_eq!(
            RequestHead::parse(buf).map(|h| h.head_len),
            Ok(buf.len() - 2)
        );
    }

    #[test]
    fn reading_a_head_stops_at_its_end_or_at_a_bare_lf() {
        assert!(!head_ended(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
        assert!(head_ended(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0));
        assert!(head_ended(b"GET / HTTP/1.1\nHost", 0));
        assert!(head_ended(b"\n", 0));
        // Looked at from `from` on: a CRLF split across two reads is not a bare LF, and the
        // end of the head is found where it was split too.
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n";
        assert!(!head_ended(buf, buf.len() - 1));
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(head_ended(buf, buf.len() - 4));
        assert!(!head_ended(buf, buf.len()));
        assert!(head_ended(&[b'a'; MAX_HEAD], MAX_HEAD));
        // A bare CR: stops the reading too, and the head is refused.
        assert!(head_ended(b"GET / HTTP/1.1\rHost", 0));
        assert!(
            !head_ended(b"GET / HTTP/1.1\r", 0),
            "its LF may come in the next read"
        );
        assert_eq!(
            RequestHead::parse(b"GET / HTTP/1.1\rHost: a\r\r").unwrap_err(),
            HeadError::Invalid
        );
    }

    #[test]
    fn heads_expose_method_path_query_and_headers() {
        let buf = b"POST /socket.io/?EIO=4&transport=polling&sid=x&flag HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let head = RequestHead::parse(buf).expect("complete");
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/socket.io/");
        assert_eq!(head.param("sid"), Some("x"));
        assert_eq!(head.param("flag"), Some(""));
        assert_eq!(head.param("nope"), None);
        assert_eq!(head.header("content-length"), Some("5"));
        assert_eq!(&buf[head.head_len..], b"hello");
        assert_eq!(
            RequestHead::parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap_err(),
            HeadError::Partial
        );
        assert_eq!(
            RequestHead::parse(b"\x00\x01 nonsense\r\n\r\n").unwrap_err(),
            HeadError::Invalid
        );
    }

    #[test]
    fn too_many_headers_are_invalid() {
        let mut buf = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..=MAX_HEADERS {
            buf.push_str(&format!("X-{i}: y\r\n"));
        }
        buf.push_str("\r\n");
        assert_eq!(
            RequestHead::parse(buf.as_bytes()).unwrap_err(),
            HeadError::Invalid
        );
    }

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn refusals_render_their_status_and_json() {
        let r = HandshakeError::WEBSOCKET_VERSION.response();
        assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{r}");
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{r}");
        let r = HandshakeError::TOO_MANY.response();
        assert!(r.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{r}");
        assert!(
            r.ends_with(r#"{"code":4,"message":"Too many connections"}"#),
            "{r}"
        );
        assert!(!r.contains("Sec-WebSocket-Version"));
    }

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

    #[test]
    fn a_preflight_is_options_with_an_origin_and_a_requested_method() {
        let asks = "Origin: https://a.example\r\nAccess-Control-Request-Method: POST\r\n";
        let Ok(EngineRequest::Preflight(p)) = poll(
            "OPTIONS",
            "EIO=4&transport=polling&t=1",
            &format!("{asks}Access-Control-Request-Headers: content-type\r\n"),
        ) else {
            panic!("a preflight")
        };
        assert_eq!(p.origin, "https://a.example");
        assert_eq!(p.request_headers.as_deref(), Some("content-type"));
        assert!(p.keep_alive);
        // Whatever the query: the request it precedes is checked on its own.
        assert!(matches!(
            poll("OPTIONS", "", asks),
            Ok(EngineRequest::Preflight(_))
        ));
        let Ok(EngineRequest::Preflight(p)) = poll(
            "OPTIONS",
            "",
            &format!("{asks}Content-Length: 3\r\nConnection: keep-alive\r\n"),
        ) else {
            panic!("a preflight")
        };
        assert!(!p.keep_alive, "a body is never read");
        // Without Origin or without the requested method: no preflight, a bad method.
        let q = "EIO=4&transport=polling";
        let only_origin = poll("OPTIONS", q, "Origin: https://a.example\r\n");
        assert_eq!(only_origin.unwrap_err(), HandshakeError::BAD_METHOD);
        let only_method = poll("OPTIONS", q, "Access-Control-Request-Method: POST\r\n");
        assert_eq!(only_method.unwrap_err(), HandshakeError::BAD_METHOD);
        let elsewhere = "OPTIONS /other HTTP/1.1\r\nHost: a\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: POST\r\n\r\n";
        assert_eq!(
            parse_engine_request(elsewhere.as_bytes(), 100).unwrap_err(),
            HandshakeError::NOT_FOUND
        );
        let r = HandshakeError::FORBIDDEN.response_with("X-A: b\r\n");
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
        assert!(r.contains("\r\nX-A: b\r\nConnection: close\r\n"), "{r}");
        assert!(r.ends_with(r#"{"code":4,"message":"Forbidden"}"#), "{r}");
    }

    fn poll(method: &str, query: &str, extra: &str) -> Result<EngineRequest, HandshakeError> {
        let r = format!("{method} /socket.io/?{query} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        parse_engine_request(r.as_bytes(), 100)
    }

    #[test]
    fn polling_requests_are_routed_and_bounded() {
        let Ok(EngineRequest::Polling(p)) = poll("GET", "EIO=4&transport=polling&t=1", "") else {
            panic!("a handshake")
        };
        assert_eq!(
            (p.method, p.sid, p.keep_alive),
            (PollMethod::Get, None, true)
        );
        let Ok(EngineRequest::Polling(p)) = poll(
            "POST",
            "EIO=4&transport=polling&sid=abc",
            "Content-Length: 100\r\nConnection: close\r\n",
        ) else {
            panic!("a post")
        };
        assert_eq!(p.method, PollMethod::Post);
        assert_eq!(p.sid.as_deref(), Some("abc"));
        assert_eq!((p.content_length, p.keep_alive), (100, false));
        let status = |r: Result<EngineRequest, HandshakeError>| r.unwrap_err().status;
        let q = "EIO=4&transport=polling&sid=abc";
        assert_eq!(status(poll("POST", q, "Content-Length: 101\r\n")), 413);
        assert_eq!(
            status(poll(
                "POST",
                q,
                "Content-Length: 99999999999999999999999\r\n"
            )),
            413
        );
        assert_eq!(status(poll("POST", q, "")), 411);
        assert_eq!(
            status(poll("POST", q, "Transfer-Encoding: chunked\r\n")),
            411
        );
        assert_eq!(status(poll("POST", q, "Content-Length: -1\r\n")), 400);
        let code = |r: Result<EngineRequest, HandshakeError>| r.unwrap_err().code;
        assert_eq!(code(poll("PUT", q, "")), 2);
        assert_eq!(
            code(poll(
                "POST",
                "EIO=4&transport=polling",
                "Content-Length: 1\r\n"
            )),
            1
        );
        assert_eq!(code(poll("GET", "EIO=4&transport=polling&sid=", "")), 1);
        assert_eq!(code(poll("GET", "EIO=3&transport=polling", "")), 5);
        assert_eq!(code(poll("GET", "EIO=4&transport=flash", "")), 0);
        let upgrade = req("/socket.io/?EIO=4&transport=websocket&sid=abc", "");
        assert!(matches!(
            parse_engine_request(upgrade.as_bytes(), 100),
            Ok(EngineRequest::UpgradeSession { sid, .. }) if sid == "abc"
        ));
        let fresh = req("/socket.io/?EIO=4&transport=websocket", "");
        assert!(matches!(
            parse_engine_request(fresh.as_bytes(), 100),
            Ok(EngineRequest::WebSocket(_))
        ));
        let Ok(EngineRequest::Polling(p)) = poll("GET", q, "Origin: https://a.example\r\n") else {
            panic!("a GET")
        };
        assert_eq!(p.origin.as_deref(), Some("https://a.example"));
        let from = req(
            "/socket.io/?EIO=4&transport=websocket",
            "Origin: https://a.example\r\n",
        );
        let Ok(EngineRequest::WebSocket(u)) = parse_engine_request(from.as_bytes(), 100) else {
            panic!("an upgrade")
        };
        assert_eq!(
            (u.origin.as_deref(), u.host.as_deref()),
            (Some("https://a.example"), Some("x"))
        );
        let old = "GET /socket.io/?EIO=4&transport=polling HTTP/1.0\r\n\r\n";
        let Ok(EngineRequest::Polling(p)) = parse_engine_request(old.as_bytes(), 100) else {
            panic!("HTTP/1.0")
        };
        assert!(!p.keep_alive);
        assert!(text_response_head(2, true, "").ends_with(
            "Content-Length: 2\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\n"
        ));
    }
}
