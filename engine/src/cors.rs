//! Cross-origin access to the Engine.IO path (CORS), and the `Origin` check of WebSocket
//! upgrades. Pure: the policy ([`CorsOrigins`], `EngineConfig::cors_origins`) and a request's
//! `Origin` in, header lines or a whole answer out; the listener and the polling requests
//! write them.
//!
//! - Same origin only (the default): no CORS header is ever sent, so a page from another
//!   origin cannot read a long-polling answer, and its preflight gets 403.
//! - `*`: any origin, without credentials: `Access-Control-Allow-Origin: *`, never the
//!   request's own `Origin` echoed back and never `Access-Control-Allow-Credentials` (a
//!   page that sends cookies is refused by the browser).
//! - A list: those origins, with credentials: the origin itself,
//!   `Access-Control-Allow-Credentials: true`, `Vary: Origin`.
//!
//! A request without `Origin` (a non-browser client; a browser's same-origin GET) gets no
//! CORS header and is served as before. A polling request from an origin not allowed is
//! served too, without CORS headers: the browser keeps the answer from its page (and the
//! handshake's sid, which every later request needs, with it).
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an allowed
//! origin gets `204` with the methods (GET, POST, OPTIONS), the headers it asked for (each
//! a valid header name, at most [`MAX_ALLOWED_HEADERS`], `content-type` always) and a max-age
//! of [`MAX_AGE_SECS`]; from any other origin, `403 {"code":4,"message":"Forbidden"}` (a
//! refusal one sees in the browser's network panel, rather than an answer without headers).
//! Its cost to an unauthenticated client: a request head (bounded as every head) and an
//! answer from memory, nothing kept; the answer's size is bounded by the cap on echoed
//! headers.
//!
//! With `check_ws_origin`, a WebSocket upgrade whose `Origin` is neither allowed by the same
//! list nor the server's own `Host` gets 403. Off by default: the chat's credentials travel
//! in the CONNECT payload, which a page from elsewhere does not have, not in cookies that a
//! browser would attach for it.

use std::fmt;

use chat_protocol::http::{HandshakeError, Preflight};

/// How long a browser may keep a preflight's answer, in seconds.
pub const MAX_AGE_SECS: u32 = 600;
/// Most header names a preflight's answer allows (the rest of what was asked is left out,
/// and the browser refuses the request that needed them).
pub const MAX_ALLOWED_HEADERS: usize = 16;
/// Longest header name a preflight's answer allows.
const MAX_HEADER_NAME: usize = 64;

/// Which browser origins may use the Engine.IO path from a page of their own (the
/// `cors_origins` setting).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No cross-origin access: no CORS header is sent.
    #[default]
    SameOrigin,
    /// Any origin, without credentials (`Access-Control-Allow-Origin: *`).
    Any,
    /// These origins (`scheme://host[:port]`, lowercase), with credentials.
    List(Vec<String>),
}

/// What an allowed origin gets.
enum Allowed<'a> {
    Any,
    Listed(&'a str),
}

impl CorsOrigins {
    /// A comma-separated list of origins (`https://a.example, http://localhost:8080`), `*`
    /// for any, or nothing for same origin only. An origin is `scheme://host[:port]` with no
    /// path (no trailing slash), as browsers send it; compared without regard to case.
    pub fn parse(text: &str) -> Result<CorsOrigins, String> {
        let entries: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(CorsOrigins::SameOrigin);
        }
        if entries.contains(&"*") {
            return match entries.len() {
                1 => Ok(CorsOrigins::Any),
                _ => Err("* stands alone: it allows every origin".into()),
            };
        }
        let mut list = Vec::with_capacity(entries.len());
        for entry in entries {
            if !is_origin(entry) {
                return Err(format!(
                    "{entry:?} is not an origin: scheme://host[:port], without a path or a trailing slash"
                ));
            }
            let origin = entry.to_ascii_lowercase();
            if !list.contains(&origin) {
                list.push(origin);
            }
        }
        Ok(CorsOrigins::List(list))
    }

    fn allowed<'a>(&'a self, origin: &str) -> Option<Allowed<'a>> {
        match self {
            CorsOrigins::SameOrigin => None,
            CorsOrigins::Any => Some(Allowed::Any),
            CorsOrigins::List(list) => list
                .iter()
                .find(|o| o.eq_ignore_ascii_case(origin))
                .map(|o| Allowed::Listed(o)),
        }
    }

    /// Whether a page of `origin` may use the Engine.IO path.
    pub fn allows(&self, origin: &str) -> bool {
        self.allowed(origin).is_some()
    }

    /// The CORS header lines (each `Name: value\r\n`) of an answer to a request with this
    /// `Origin`: none without one, or for an origin not allowed.
    pub fn answer_headers(&self, origin: Option<&str>) -> String {
        match origin.and_then(|o| self.allowed(o)) {
            None => String::new(),
            Some(allowed) => allow_origin(&allowed),
        }
    }

    /// The whole answer to a preflight: `204` with the CORS headers (keep-alive as the
    /// request allows), or the refusal for an origin not allowed.
    pub fn preflight(&self, preflight: &Preflight) -> Result<String, HandshakeError> {
        let allowed = self
            .allowed(&preflight.origin)
            .ok_or(HandshakeError::FORBIDDEN)?;
        let connection = if preflight.keep_alive {
            "keep-alive"
        } else {
            "close"
        };
        Ok(format!(
            "HTTP/1.1 204 No Content\r\n{}Access-Control-Allow-Methods: GET, POST, OPTIONS\r\nAccess-Control-Allow-Headers: {}\r\nAccess-Control-Max-Age: {MAX_AGE_SECS}\r\nVary: Access-Control-Request-Headers\r\nConnection: {connection}\r\n\r\n",
            allow_origin(&allowed),
            allowed_headers(preflight.request_headers.as_deref()),
        ))
    }

    /// Whether a WebSocket upgrade with this `Origin` and `Host` may proceed when origins are
    /// checked: no `Origin` (not a browser), an allowed one, or the server's own host.
    pub fn allows_websocket(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let own = origin.split_once("://").is_some_and(|(_, authority)| {
            host.is_some_and(|h| authority.eq_ignore_ascii_case(h.trim()))
        });
        own || self.allows(origin)
    }
}

/// The list as the setting is written: empty, `*`, or origins joined by commas.
impl fmt::Display for CorsOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorsOrigins::SameOrigin => Ok(()),
            CorsOrigins::Any => f.write_str("*"),
            CorsOrigins::List(list) => f.write_str(&list.join(",")),
        }
    }
}

fn allow_origin(allowed: &Allowed<'_>) -> String {
    match allowed {
        Allowed::Any => "Access-Control-Allow-Origin: *\r\nVary: Origin\r\n".to_owned(),
        Allowed::Listed(origin) => format!(
            "Access-Control-Allow-Origin: {origin}\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
        ),
    }
}

/// `content-type` and the names asked for that are header names (RFC 9110 tokens, at most
/// [`MAX_HEADER_NAME`] bytes), lowercase, once each, at most [`MAX_ALLOWED_HEADERS`].
fn allowed_headers(requested: Option<&str>) -> String {
    let mut names = vec!["content-type".to_owned()];
    for name in requested.unwrap_or("").split(',').map(str::trim) {
        if names.len() >= MAX_ALLOWED_HEADERS {
            break;
        }
        if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.bytes().all(is_tchar) {
            continue;
        }
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

/// RFC 9110 5.6.2: a token character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `scheme://host[:port]`: a scheme (a letter, then letters, digits, `+`, `-`, `.`), and an
/// authority without user info, path, query or fragment.
fn is_origin(text: &str) -> bool {
    let Some((scheme, authority)) = text.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let authority_ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b));
    scheme_ok && authority_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight(origin: &str, headers: Option<&str>) -> Preflight {
        Preflight {
            origin: origin.to_owned(),
            request_headers: headers.map(str::to_owned),
            keep_alive: true,
            head_len: 0,
        }
    }

    #[test]
    fn the_setting_parses_a_list_any_or_nothing() {
        assert_eq!(CorsOrigins::parse(""), Ok(CorsOrigins::SameOrigin));
        assert_eq!(CorsOrigins::parse(" , "), Ok(CorsOrigins::SameOrigin));
        assert_eq!(CorsOrigins::parse(" * "), Ok(CorsOrigins::Any));
        let list = CorsOrigins::parse("https://A.example, http://localhost:8080,https://a.example")
            .unwrap();
        assert_eq!(
            list,
            CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:8080".into()
            ])
        );
        assert_eq!(list.to_string(), "https://a.example,http://localhost:8080");
        assert_eq!(CorsOrigins::Any.to_string(), "*");
        assert_eq!(CorsOrigins::SameOrigin.to_string(), "");
        for bad in [
            "*, https://a.example",
            "https://a.example/",
            "https://a.example/path",
            "a.example",
            "null",
            "https://",
            "https://user@a.example",
            "1http://a.example",
        ] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_carry_headers_only_for_an_allowed_origin() {
        let list = CorsOrigins::parse("https://a.example").unwrap();
        assert_eq!(
            list.answer_headers(Some("https://A.example")),
            "Access-Control-Allow-Origin: https://a.example\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
        );
        assert_eq!(list.answer_headers(Some("https://b.example")), "");
        assert_eq!(list.answer_headers(None), "");
        let any = CorsOrigins::Any.answer_headers(Some("https://b.example"));
        assert_eq!(any, "Access-Control-Allow-Origin: *\r\nVary: Origin\r\n");
        assert_eq!(CorsOrigins::Any.answer_headers(None), "");
        assert_eq!(
            CorsOrigins::SameOrigin.answer_headers(Some("https://a.example")),
            ""
        );
    }

    #[test]
    fn a_preflight_echoes_valid_header_names_within_a_bound() {
        let list = CorsOrigins::parse("https://a.example").unwrap();
        let r = list
            .preflight(&preflight(
                "https://a.example",
                Some("X-Token, content-type, bad header, x\u{e9}, , Authorization"),
            ))
            .unwrap();
        assert!(r.starts_with("HTTP/1.1 204 No Content\r\n"), "{r}");
        assert!(
            r.contains(
                "\r\nAccess-Control-Allow-Headers: content-type, x-token, authorization\r\n"
            ),
            "{r}"
        );
        assert!(
            r.contains("Access-Control-Allow-Credentials: true\r\n"),
            "{r}"
        );
        let many: Vec<String> = (0..40).map(|i| format!("x-h{i}")).collect();
        let r = list
            .preflight(&preflight("https://a.example", Some(&many.join(","))))
            .unwrap();
        let line = r
            .lines()
            .find(|l| l.starts_with("Access-Control-Allow-Headers: "))
            .unwrap();
        assert_eq!(line.split(", ").count(), MAX_ALLOWED_HEADERS, "{line}");
        assert_eq!(
            list.preflight(&preflight("https://b.example", None)),
            Err(HandshakeError::FORBIDDEN)
        );
        assert_eq!(
            CorsOrigins::SameOrigin.preflight(&preflight("https://a.example", None)),
            Err(HandshakeError::FORBIDDEN)
        );
    }

    #[test]
    fn websocket_origins_are_the_list_or_the_servers_own_host() {
        let none = CorsOrigins::SameOrigin;
        assert!(none.allows_websocket(None, Some("chat.example")));
        assert!(none.allows_websocket(Some("https://chat.example"), Some("Chat.example")));
        assert!(none.allows_websocket(Some("http://127.0.0.1:7878"), Some("127.0.0.1:7878")));
        assert!(!none.allows_websocket(Some("http://127.0.0.1:7878"), Some("127.0.0.1:7879")));
        assert!(!none.allows_websocket(Some("https://evil.example"), Some("chat.example")));
        assert!(!none.allows_websocket(Some("https://evil.example"), None));
        let list = CorsOrigins::parse("https://a.example").unwrap();
        assert!(list.allows_websocket(Some("https://a.example"), Some("chat.example")));
        assert!(!list.allows_websocket(Some("https://b.example"), Some("chat.example")));
        assert!(CorsOrigins::Any.allows_websocket(Some("https://b.example"), None));
    }
}
