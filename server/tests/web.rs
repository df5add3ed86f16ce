//! The web chat page served by chat-server at `/`: each file with its content type, a
//! strong ETag and `no-cache` (a cached copy is a 304), the page's Content-Security-Policy
//! on every answer, HEAD without a body, 405 for other methods, 404 for any other path,
//! keep-alive between requests, and nothing at all when the `web` setting is off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::chat::{config, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off `stream`: the status line, the headers (lowercase names) and the
/// body (none for a HEAD or a 304).
async fn response(stream: &mut TcpStream) -> (String, Vec<(String, String)>, Vec<u8>) {
    response_to(stream, false).await
}

async fn response_to(
    stream: &mut TcpStream,
    head_only: bool,
) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed before the head ended: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[head_end..].to_vec();
    while body.len() < len && !head_only && !status.contains(" 304 ") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed in the body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, headers, body)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> &'h str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn request(stream: &mut TcpStream, method: &str, path: &str, extra: &str) {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types_tags_and_policy() {
    let (server, addr) = serve(config()).await;
    // Every file on one kept-alive connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    for (path, kind, start) in [
        ("/", "text/html; charset=utf-8", "<!doctype html>"),
        ("/index.html", "text/html; charset=utf-8", "<!doctype html>"),
        ("/app.js", "text/javascript; charset=utf-8", ""),
        ("/chat.js", "text/javascript; charset=utf-8", ""),
        ("/sio.js", "text/javascript; charset=utf-8", ""),
        ("/style.css", "text/css; charset=utf-8", ""),
    ] {
        request(&mut s, "GET", path, "").await;
        let (status, headers, body) = response(&mut s).await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{path}");
        assert_eq!(header(&headers, "content-type"), kind, "{path}");
        assert_eq!(header(&headers, "cache-control"), "no-cache", "{path}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "connection"), "keep-alive");
        let csp = header(&headers, "content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("default-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!body.is_empty());
        assert!(String::from_utf8_lossy(&body).starts_with(start), "{path}");
        // A cached copy: 304, no body; the tag is the file's.
        let tag = header(&headers, "etag").to_owned();
        assert!(tag.starts_with('"') && tag.len() > 10, "{tag}");
        request(&mut s, "GET", path, &format!("If-None-Match: {tag}\r\n")).await;
        let (status, headers, body) = response(&mut s).await;
        assert_eq!(status, "HTTP/1.1 304 Not Modified", "{path}");
        assert_eq!(header(&headers, "etag"), tag);
        assert!(body.is_empty());
    }
    // HEAD: the same head, no body.
    request(&mut s, "HEAD", "/app.js", "").await;
    let (status, headers, body) = response_to(&mut s, true).await;
    assert!(body.is_empty(), "a HEAD answered with a body");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(header(&headers, "content-length").parse::<usize>().unwrap() > 1000);
    // The Engine.IO path still works on the same connection.
    request(&mut s, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let (status, _, body) = response(&mut s).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        body.starts_with(b"0{\"sid\""),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    request(&mut s, "GET", "/favicon.ico", "").await;
    let (status, _, body) = response(&mut s).await;
    assert_eq!(
        (status.as_str(), body.len()),
        ("HTTP/1.1 204 No Content", 0)
    );
    // Other methods: 405 with Allow; other paths: 404 and the connection closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    request(&mut s, "DELETE", "/", "").await;
    let (status, headers, _) = response(&mut s).await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(header(&headers, "allow"), "GET, HEAD");
    for path in ["/nope", "/../Cargo.toml", "/web/app.js", "/index.html/"] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        request(&mut s, "GET", path, "").await;
        let (status, _, _) = response(&mut s).await;
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{path}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn with_the_web_setting_off_there_is_no_page() {
    let mut off = config();
    off.web = false;
    let (server, addr): (_, SocketAddr) = serve(off).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    request(&mut s, "GET", "/", "").await;
    let (status, _, _) = response(&mut s).await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    server.shutdown().await;
}
