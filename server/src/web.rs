//! The web chat page (`server/web/`: see its README), compiled into the binary and served at
//! `/` beside the Engine.IO path through the engine's [`HttpRoutes`]: `/` and `/index.html`,
//! `/app.js`, `/chat.js`, `/sio.js`, `/style.css`. Each answer has its content type, a strong
//! `ETag` of its bytes with `Cache-Control: no-cache` (so an upgraded server is picked up at
//! once, and an unchanged file is a `304`), and the page's Content-Security-Policy (no inline
//! script or style, no other origin). `GET` and `HEAD` only (`405` otherwise); `/favicon.ico`
//! is an empty `204`; any other path is the engine's `404`. Switched off with the `web`
//! setting.
//!
//! What it costs an unauthenticated client: a lookup among five names and one write of bytes
//! already in memory, under the per-address connection limit and the head's size and time
//! bounds of every request.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;

use crate::engine::http_routes::{HttpRequest, HttpResponse, HttpRoutes};

/// The page's policy: scripts, styles, images and connections from this origin only (CSP
/// Level 3 counts the same host's `ws:`/`wss:` as `'self'`), no plugins, no framing, no
/// form posts, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";

/// Path, content type and bytes of each file.
const FILES: [(&str, &str, &[u8]); 5] = [
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_bytes!("../web/index.html"),
    ),
    ("/app.js", JS, include_bytes!("../web/app.js")),
    ("/chat.js", JS, include_bytes!("../web/chat.js")),
    ("/sio.js", JS, include_bytes!("../web/sio.js")),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/style.css"),
    ),
];

struct File {
    path: &'static str,
    content_type: &'static str,
    body: Bytes,
    etag: String,
}

/// A strong entity tag of the bytes (the same for the same build's files).
fn etag(body: &[u8]) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}{:08x}\"", hasher.finish(), body.len())
}

/// The routes that serve the page.
pub fn routes() -> HttpRoutes {
    let files: Vec<File> = FILES
        .iter()
        .map(|&(path, content_type, body)| File {
            path,
            content_type,
            body: Bytes::from_static(body),
            etag: etag(body),
        })
        .collect();
    Arc::new(move |request: &HttpRequest<'_>| answer(&files, request))
}

fn answer(files: &[File], request: &HttpRequest<'_>) -> Option<HttpResponse> {
    let path = if request.path == "/" {
        "/index.html"
    } else {
        request.path
    };
    if path == "/favicon.ico" && matches!(request.method, "GET" | "HEAD") {
        // No icon: an empty answer, so browsers do not log a 404 for it.
        return Some(HttpResponse {
            status: 204,
            reason: "No Content",
            headers: vec![("Cache-Control", "max-age=86400".to_owned())],
            body: Bytes::new(),
        });
    }
    let file = files.iter().find(|f| f.path == path)?;
    let mut headers = vec![
        (
            "Content-Security-Policy",
            CONTENT_SECURITY_POLICY.to_owned(),
        ),
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("Referrer-Policy", "no-referrer".to_owned()),
        ("X-Frame-Options", "DENY".to_owned()),
    ];
    if !matches!(request.method, "GET" | "HEAD") {
        headers.push(("Allow", "GET, HEAD".to_owned()));
        return Some(HttpResponse {
            status: 405,
            reason: "Method Not Allowed",
            headers,
            body: Bytes::new(),
        });
    }
    headers.push(("Cache-Control", "no-cache".to_owned()));
    headers.push(("ETag", file.etag.clone()));
    let cached = request.if_none_match.is_some_and(|tags| {
        tags.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == file.etag || t == "*")
    });
    if cached {
        return Some(HttpResponse {
            status: 304,
            reason: "Not Modified",
            headers,
            body: Bytes::new(),
        });
    }
    headers.push(("Content-Type", file.content_type.to_owned()));
    Some(HttpResponse {
        status: 200,
        reason: "OK",
        headers,
        body: file.body.clone(),
    })
}
