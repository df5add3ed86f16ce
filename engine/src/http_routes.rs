//! The application's own HTTP routes beside the Engine.IO path (the chat serves its web page
//! there): a request for any other path is handed to [`HttpRoutes`], a function the
//! application sets, and the engine writes its answer. No request body is ever read for
//! them: a request that announces one is answered and its connection closed.

use std::sync::Arc;

use bytes::Bytes;

/// What a route sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path without its query.
    pub path: &'a str,
    pub query: &'a str,
    /// The `If-None-Match` header, for answering 304 to a cached copy.
    pub if_none_match: Option<&'a str>,
}

/// A route's answer. `Content-Length` and `Connection` are the engine's to add.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

/// The application's routes: `None` for a path it does not serve (then 404, as before).
pub type HttpRoutes = Arc<dyn Fn(&HttpRequest<'_>) -> Option<HttpResponse> + Send + Sync>;

impl HttpResponse {
    /// The bytes on the wire: the status line, the headers, `Content-Length`, `Connection`,
    /// and the body unless the request was a HEAD.
    pub(crate) fn encode(&self, head_only: bool, keep_alive: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        let connection = if keep_alive { "keep-alive" } else { "close" };
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_carries_its_length_and_no_body_for_head() {
        let r = HttpResponse {
            status: 200,
            reason: "OK",
            headers: vec![("Content-Type", "text/plain".into())],
            body: Bytes::from_static(b"hello"),
        };
        let full = String::from_utf8(r.encode(false, true)).unwrap_or_default();
        assert_eq!(
            full,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"
        );
        let head = String::from_utf8(r.encode(true, false)).unwrap_or_default();
        assert!(
            head.ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
    }
}
