//! Cross-origin access to the Engine.IO path (`cors_origins`) and the `Origin` check of
//! WebSocket upgrades (`check_ws_origin`): preflights answered for an allowed origin and
//! refused (403 code 4) for any other; `*` without credentials and never the request's
//! origin echoed; a listed origin with credentials; polling answers (refusals too) carrying
//! the headers for an allowed origin only; requests without `Origin` unaffected; WebSocket
//! upgrades refused from other origins only with the check on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chat_server::engine::{CorsOrigins, EngineConfig};
use common::engine_app::{TestServer, start};
use common::polling::{Http, Response, engine_path};
use serde_json::json;

const LISTED: &str = "https://a.example";
const OTHER: &str = "https://evil.example";

async fn server(cors_origins: &str, check_ws_origin: bool) -> TestServer {
    start(EngineConfig {
        cors_origins: CorsOrigins::parse(cors_origins).unwrap(),
        check_ws_origin,
        ..Default::default()
    })
    .await
}

/// A browser's preflight for a POST with `content-type` and `x-token`.
async fn preflight(http: &mut Http, origin: &str) -> Response {
    http.request_with(
        "OPTIONS",
        &engine_path(None),
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type, x-token"),
        ],
        None,
    )
    .await
}

/// A handshake GET from `origin` (none: no `Origin` header); returns the answer and the sid.
async fn handshake(http: &mut Http, origin: Option<&str>) -> (Response, String) {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    let r = http
        .request_with("GET", &engine_path(None), &headers, None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let open: serde_json::Value = serde_json::from_str(&r.body[1..]).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    (r, sid)
}

/// A WebSocket upgrade request (a new session, or the upgrade of `sid`) from `origin`.
async fn upgrade(s: &TestServer, sid: Option<&str>, origin: Option<&str>) -> Response {
    let mut http = Http::connect(s.addr()).await;
    let path = match sid {
        Some(sid) => format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
        None => "/socket.io/?EIO=4&transport=websocket".to_owned(),
    };
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    headers.extend(origin.map(|o| ("Origin", o)));
    http.request_with("GET", &path, &headers, None).await
}

fn assert_forbidden(r: &Response) {
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json(), json!({"code": 4, "message": "Forbidden"}));
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
}

#[tokio::test]
async fn a_preflight_from_a_listed_origin_is_answered_with_credentials() {
    let s = server("https://a.example, https://b.example", false).await;
    let mut http = Http::connect(s.addr()).await;
    let r = preflight(&mut http, LISTED).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(LISTED));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, OPTIONS")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-token")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert!(r.head.contains("\r\nVary: Origin\r\n"), "{r:?}");
    assert_eq!(r.body, "");
    // Kept alive: the request it was for follows on the same connection.
    let (r, _) = handshake(&mut http, Some(LISTED)).await;
    assert_eq!(r.header("access-control-allow-origin"), Some(LISTED));
}

#[tokio::test]
async fn a_preflight_from_another_origin_is_forbidden() {
    let s = server(LISTED, false).await;
    let mut http = Http::connect(s.addr()).await;
    assert_forbidden(&preflight(&mut http, OTHER).await);
    assert!(http.closed().await);
    // Same origin only (the default): every preflight is refused.
    let s = server("", false).await;
    let mut http = Http::connect(s.addr()).await;
    assert_forbidden(&preflight(&mut http, LISTED).await);
}

#[tokio::test]
async fn any_origin_gets_a_star_without_credentials_and_never_its_own_origin() {
    let s = server("*", false).await;
    let mut http = Http::connect(s.addr()).await;
    let r = preflight(&mut http, OTHER).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None, "{r:?}");
    assert!(!r.head.contains("evil.example"), "{r:?}");
    let (r, _) = handshake(&mut http, Some(OTHER)).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None, "{r:?}");
    assert!(!r.head.contains("evil.example"), "{r:?}");
}

#[tokio::test]
async fn polling_answers_carry_the_headers_for_an_allowed_origin_only() {
    let s = server(LISTED, false).await;
    let listed = [("Origin", LISTED)];
    let mut get = Http::connect(s.addr()).await;
    let mut post = Http::connect(s.addr()).await;
    let (r, sid) = handshake(&mut get, Some(LISTED)).await;
    assert_eq!(r.header("access-control-allow-origin"), Some(LISTED));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let path = engine_path(Some(&sid));
    let r = post.request_with("POST", &path, &listed, Some(b"40")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(LISTED));
    let r = get.request_with("GET", &path, &listed, None).await;
    assert!(r.body.starts_with("40{"), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(LISTED));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    // Another origin is served, without CORS headers: its page cannot read the answer.
    let r = post
        .request_with("POST", &path, &[("Origin", OTHER)], Some(b"3"))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
    let mut other = Http::connect(s.addr()).await;
    let (r, _) = handshake(&mut other, Some(OTHER)).await;
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
    // A refusal is readable by the allowed origin's page.
    let mut http = Http::connect(s.addr()).await;
    let r = http
        .request_with("GET", &engine_path(Some("nope")), &listed, None)
        .await;
    assert_eq!(
        r.json(),
        json!({"code": 1, "message": "Session ID unknown"})
    );
    assert_eq!(r.header("access-control-allow-origin"), Some(LISTED));
    let mut http = Http::connect(s.addr()).await;
    let r = http
        .request_with("GET", "/socket.io/?EIO=3&transport=polling", &listed, None)
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(LISTED));
}

#[tokio::test]
async fn requests_without_an_origin_are_unaffected() {
    let s = server(LISTED, true).await;
    let mut http = Http::connect(s.addr()).await;
    let (r, _) = handshake(&mut http, None).await;
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
    assert_eq!(r.header("vary"), None, "{r:?}");
    // OPTIONS without Origin is no preflight: refused as any other method.
    let r = http
        .request_with(
            "OPTIONS",
            &engine_path(None),
            &[("Access-Control-Request-Method", "POST")],
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["code"], 2);
    // A WebSocket without Origin, with the check on.
    assert_eq!(upgrade(&s, None, None).await.status, 101);
    common::Client::connect(s.addr()).await;
}

#[tokio::test]
async fn the_websocket_origin_is_checked_only_when_asked() {
    // Off (the default): any origin upgrades.
    let s = server(LISTED, false).await;
    assert_eq!(upgrade(&s, None, Some(OTHER)).await.status, 101);
    // On: a listed origin, the server's own host (`Host: test`) and no Origin upgrade; any
    // other origin gets 403, for a new session and for the upgrade of a polling one.
    let s = server(LISTED, true).await;
    assert_eq!(upgrade(&s, None, Some(LISTED)).await.status, 101);
    assert_eq!(upgrade(&s, None, Some("http://test")).await.status, 101);
    assert_eq!(upgrade(&s, None, None).await.status, 101);
    assert_forbidden(&upgrade(&s, None, Some(OTHER)).await);
    let mut http = Http::connect(s.addr()).await;
    let (_, sid) = handshake(&mut http, None).await;
    assert_forbidden(&upgrade(&s, Some(&sid), Some(OTHER)).await);
    // With `*` every origin is allowed.
    let s = server("*", true).await;
    assert_eq!(upgrade(&s, None, Some(OTHER)).await.status, 101);
}
