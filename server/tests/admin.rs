//! The admin listener (`admin_listen`): health and readiness, `/metrics` as Prometheus
//! reads it, the admin API behind its bearer token (list, kick, ban, notice), the bounds an
//! attacker on that port meets, and `chat-server admin <verb>` against it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chat_protocol::events::{self, ErrorCode};
use chat_protocol::socket_io::PacketKind;
use chat_server::config::{FileConfig, ServerConfig, Settings};
use chat_server::{RunningServer, cli};
use common::Client;
use common::chat::{call, code, config, failure, join, say, user};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const TOKEN: &str = "a-test-admin-token-0123456789";

async fn serve(token: Option<&str>, tweak: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    let mut config = config();
    config.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.admin_token = token.map(str::to_owned);
    tweak(&mut config);
    chat_server::start(config).await.expect("server starts")
}

/// An HTTP answer: status, head (lowercase), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// Sends `raw` as is and reads the answer until the server closes.
async fn raw(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the admin listener answers and closes")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, request.as_bytes()).await
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    http(addr, "GET", path, None, None).await
}

/// A metric's value in a `/metrics` text (the line `name value`, labels included in `name`).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn healthz_is_up_and_readyz_turns_503_when_draining() {
    let server = serve(None, |_| {}).await;
    let admin = server.admin_addr().expect("admin listener");
    let h = get(admin, "/healthz").await;
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let r = get(admin, "/readyz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    server.drain();
    let r = get(admin, "/readyz").await;
    assert_eq!((r.status, r.body.as_str()), (503, "draining\n"));
    // Still alive, and the chat still serves its users while draining.
    assert_eq!(get(admin, "/healthz").await.status, 200);
    let mut c = user(server.local_addr(), "late").await;
    let pong = c.request("/", "ping", json!({})).await;
    assert_eq!(pong["ok"], true, "{pong}");
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_connections_rooms_messages_acks_refusals_and_rate_limits() {
    let server = serve(None, |c| {
        c.engine.max_connections_per_ip = 3;
        c.engine.rate_burst = 8;
        c.engine.rate_per_sec = 1;
    })
    .await;
    let (addr, admin) = (server.local_addr(), server.admin_addr().unwrap());
    let before = get(admin, "/metrics").await.body;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut alice, "/", "general").await;
    join(&mut bob, "/", "general").await;
    say(&mut alice, "/", "general", "hello").await;
    let _ = bob.wait_event(events::server::MESSAGE).await;
    // An error ack: a message to a room bob is not in.
    let (reply, _) = bob
        .call(
            "/",
            "message",
            vec![json!({"room": "elsewhere", "text": "x"})],
        )
        .await;
    assert_eq!(failure(&reply[0]).code, ErrorCode::NotInRoom);
    // Over the per-IP limit (3 sessions): the fourth is refused with 429.
    let _third = Client::connect(addr).await;
    let fourth = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/socket.io/?EIO=4&transport=websocket"
    ))
    .await;
    assert!(fourth.is_err(), "the fourth session is refused");

    let answer = get(admin, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .head
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        answer.head
    );
    let m = answer.body;
    assert_eq!(metric(&m, "chat_connections{transport=\"websocket\"}"), 3.0);
    assert_eq!(metric(&m, "chat_connections{transport=\"polling\"}"), 0.0);
    assert_eq!(metric(&m, "chat_sockets"), 2.0);
    assert_eq!(metric(&m, "chat_namespaces"), 1.0);
    assert_eq!(metric(&m, "chat_rooms"), 1.0);
    assert_eq!(metric(&m, "chat_store_up"), 1.0);
    // Deliveries: alice's join seen by bob... at least the message to bob.
    assert!(metric(&m, "chat_messages_delivered_total") >= 1.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "chat_connections_refused_total{reason=\"too_many_per_ip\"}"
        ),
        1.0
    );
    // The chat's counters are process-wide (other tests run in this process): differences.
    let diff = |name: &str| metric(&m, name) - metric(&before, name);
    assert!(diff("chat_messages_received_total") >= 2.0);
    assert!(diff("chat_acks_ok_total") >= 3.0, "two joins and a message");
    assert!(diff("chat_acks_error_total") >= 1.0);
    assert!(metric(&m, "chat_error_acks_total{code=\"not_in_room\"}") >= 1.0);
    for name in [
        "chat_store_append_duration_seconds",
        "chat_store_batch_size",
    ] {
        assert!(
            m.contains(&format!("# TYPE {name} histogram")),
            "{name} in\n{m}"
        );
    }
    // No label names a user or a room.
    assert!(!m.contains("alice") && !m.contains("general"), "{m}");

    // The rate limit (burst 8, 1/s): a flurry of events is refused after the burst.
    for _ in 0..12 {
        bob.send_packet(&chat_protocol::socket_io::Packet::event(
            "/",
            "typing",
            vec![json!({"room": "general"})],
            None,
        ))
        .await;
    }
    let mut limited = 0.0;
    for _ in 0..50 {
        limited = metric(
            &get(admin, "/metrics").await.body,
            "chat_rate_limited_events_total",
        );
        if limited >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(limited >= 1.0, "rate-limited events counted");

    // A disconnect is counted by its reason once the session ended.
    alice.close().await;
    let mut closed = 0.0;
    for _ in 0..100 {
        closed = metric(
            &get(admin, "/metrics").await.body,
            "chat_disconnects_total{reason=\"client_close\"}",
        );
        if closed >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(closed, 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_polling_session_counts_under_its_transport_until_it_ends() {
    let server = serve(None, |_| {}).await;
    let (addr, admin) = (server.local_addr(), server.admin_addr().unwrap());
    let mut polling = common::polling::PollingClient::connect(addr).await;
    polling.send(r#"40{"nick":"paul"}"#).await;
    let _ = polling.wait_event(events::server::NOTICE).await;
    let m = get(admin, "/metrics").await.body;
    assert_eq!(metric(&m, "chat_connections{transport=\"polling\"}"), 1.0);
    assert_eq!(metric(&m, "chat_connections{transport=\"websocket\"}"), 0.0);
    assert_eq!(metric(&m, "chat_sockets"), 1.0);
    // The client's own close ends the session.
    polling.send("1").await;
    let mut open = 1.0;
    for _ in 0..100 {
        open = metric(
            &get(admin, "/metrics").await.body,
            "chat_connections{transport=\"polling\"}",
        );
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open, 0.0);
    server.shutdown().await;
}

#[tokio::test]
async fn the_api_wants_the_token_and_the_rest_does_not() {
    let server = serve(Some(TOKEN), |_| {}).await;
    let admin = server.admin_addr().unwrap();
    let none = http(admin, "GET", "/api/users", None, None).await;
    assert_eq!(none.status, 401, "{none:?}");
    assert!(none.head.contains("www-authenticate: bearer"), "{none:?}");
    assert_eq!(none.json()["error"], "unauthorized");
    let wrong = http(
        admin,
        "GET",
        "/api/users",
        Some("a-test-admin-token-0123456780"),
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);
    let short = http(admin, "GET", "/api/users", Some("a"), None).await;
    assert_eq!(short.status, 401);
    let basic = raw(
        admin,
        format!("GET /api/users HTTP/1.1\r\nHost: a\r\nAuthorization: Basic {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(basic.status, 401);
    let right = http(admin, "GET", "/api/users", Some(TOKEN), None).await;
    assert_eq!(right.status, 200, "{right:?}");
    assert_eq!(right.json(), json!({"users": []}));
    // Health and metrics need no token; an unknown path is 404, with or without one.
    assert_eq!(get(admin, "/metrics").await.status, 200);
    assert_eq!(get(admin, "/readyz").await.status, 200);
    assert_eq!(get(admin, "/nope").await.status, 404);
    assert_eq!(
        http(admin, "GET", "/api/nope", Some(TOKEN), None)
            .await
            .status,
        404
    );
    // The wrong method.
    let post = http(admin, "POST", "/metrics", None, None).await;
    assert_eq!(post.status, 405);
    let get_kick = http(admin, "GET", "/api/kick", Some(TOKEN), None).await;
    assert_eq!(get_kick.status, 405);
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_token_the_api_is_off() {
    let server = serve(None, |_| {}).await;
    let admin = server.admin_addr().unwrap();
    let a = http(admin, "GET", "/api/users", Some(TOKEN), None).await;
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.json()["error"], "api_off");
    assert_eq!(get(admin, "/metrics").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn what_an_attacker_can_send_is_bounded() {
    let server = serve(Some(TOKEN), |_| {}).await;
    let admin = server.admin_addr().unwrap();
    // A head over 8 KiB: 431, and nothing more is read.
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 9000));
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(raw(admin, &huge).await.status, 431);
    // A body over 16 KiB: 413 before it is read.
    let big = format!(
        "POST /api/notice HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n\r\n"
    );
    assert_eq!(raw(admin, big.as_bytes()).await.status, 413);
    // Chunked: 411.
    let chunked = format!(
        "POST /api/notice HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    assert_eq!(raw(admin, chunked.as_bytes()).await.status, 411);
    // Not HTTP at all: 400.
    assert_eq!(raw(admin, b"\x16\x03\x01garbage\r\n\r\n").await.status, 400);
    // HTTP/1.1 without Host, and a line ended by a bare LF: 400 (a bare LF used to be read
    // on, waiting for a CRLF CRLF, until the 5 s timeout closed the connection unanswered).
    let no_host = format!("GET /api/users HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    assert_eq!(raw(admin, no_host.as_bytes()).await.status, 400);
    let bare_lf = format!("GET /api/users HTTP/1.1\nHost: a\nAuthorization: Bearer {TOKEN}\n");
    assert_eq!(raw(admin, bare_lf.as_bytes()).await.status, 400);
    // Bad JSON: 400 saying so.
    let bad = raw(
        admin,
        format!("POST /api/kick HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 3\r\n\r\n{{x}}").as_bytes(),
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    // A client that sends nothing is dropped after the timeout (5 s), with no answer.
    let started = std::time::Instant::now();
    let mut idle = TcpStream::connect(admin).await.unwrap();
    let mut out = Vec::new();
    let read = timeout(Duration::from_secs(10), idle.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "closed within the bound");
    assert!(out.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(4));
    // More than 32 connections at once: the extra ones are closed at once; the server
    // still answers afterwards.
    let mut held = Vec::new();
    for _ in 0..32 {
        held.push(TcpStream::connect(admin).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(admin).await.unwrap();
    let mut buf = [0u8; 1];
    let n = timeout(Duration::from_secs(2), extra.read(&mut buf))
        .await
        .expect("the extra connection is closed at once");
    assert!(matches!(n, Ok(0) | Err(_)));
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(admin, "/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn the_api_lists_kicks_and_sends_notices() {
    let server = serve(Some(TOKEN), |_| {}).await;
    let (addr, admin) = (server.local_addr(), server.admin_addr().unwrap());
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut alice, "/", "general").await;
    join(&mut bob, "/", "general").await;
    let _ = alice.wait_event(events::server::PRESENCE).await;

    let users = http(admin, "GET", "/api/users", Some(TOKEN), None)
        .await
        .json();
    let nicks: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["nick"].as_str().unwrap())
        .collect();
    assert_eq!(nicks, ["alice", "bob"]);
    let conn = &users["users"][0]["connections"][0];
    assert_eq!(conn["transport"], "websocket");
    assert!(conn["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(
        conn["namespaces"],
        json!([{"name": "/", "rooms": ["general"]}])
    );
    let rooms = http(admin, "GET", "/api/rooms", Some(TOKEN), None)
        .await
        .json();
    assert_eq!(
        rooms,
        json!({"rooms": [{"namespace": "/", "room": "general", "members": 2}]})
    );
    let ns = http(admin, "GET", "/api/namespaces", Some(TOKEN), None)
        .await
        .json();
    assert_eq!(
        ns,
        json!({"namespaces": [{"name": "/", "sockets": 2, "users": 2, "rooms": 1}]})
    );

    // A notice to the room reaches both.
    let sent = http(
        admin,
        "POST",
        "/api/notice",
        Some(TOKEN),
        Some(json!({"room": "general", "text": "maintenance at noon"})),
    )
    .await;
    assert_eq!(sent.json(), json!({"ok": true, "delivered": 2}));
    for c in [&mut alice, &mut bob] {
        let notice = c.wait_event(events::server::NOTICE).await;
        assert_eq!(notice["text"], "maintenance at noon");
    }
    let empty = http(
        admin,
        "POST",
        "/api/notice",
        Some(TOKEN),
        Some(json!({"text": " "})),
    )
    .await;
    assert_eq!(empty.status, 400);

    // Kick bob out of the room: both see it, and bob is out.
    let kicked = http(
        admin,
        "POST",
        "/api/kick",
        Some(TOKEN),
        Some(json!({"nick": "BOB", "room": "general", "reason": "spam"})),
    )
    .await;
    assert_eq!(
        kicked.json(),
        json!({"ok": true, "sockets": 1, "elsewhere": false})
    );
    for c in [&mut alice, &mut bob] {
        let p = c.wait_event(events::server::PRESENCE).await;
        assert_eq!(p["nick"], "bob");
        assert_eq!(p["action"], "leave");
        assert_eq!(p["reason"], "kicked by an admin: spam");
    }
    let (reply, _) = bob
        .call(
            "/",
            "message",
            vec![json!({"room": "general", "text": "x"})],
        )
        .await;
    assert_eq!(failure(&reply[0]).code, ErrorCode::NotInRoom);
    let again = http(
        admin,
        "POST",
        "/api/kick",
        Some(TOKEN),
        Some(json!({"nick": "bob", "room": "general"})),
    )
    .await;
    assert_eq!(
        (again.status, again.json()["error"].clone()),
        (404, json!("not_in_room"))
    );
    let nobody = http(
        admin,
        "POST",
        "/api/kick",
        Some(TOKEN),
        Some(json!({"nick": "carol"})),
    )
    .await;
    assert_eq!(
        (nobody.status, nobody.json()["error"].clone()),
        (404, json!("no_such_user"))
    );

    // Kick bob off the server: a Socket.IO DISCONNECT.
    let off = http(
        admin,
        "POST",
        "/api/kick",
        Some(TOKEN),
        Some(json!({"nick": "bob"})),
    )
    .await;
    assert_eq!(
        off.json(),
        json!({"ok": true, "sockets": 1, "elsewhere": false})
    );
    let mut disconnected = false;
    for _ in 0..20 {
        let p = bob.recv_packet().await;
        if p.kind == PacketKind::Disconnect {
            disconnected = true;
            break;
        }
    }
    assert!(disconnected, "bob got a DISCONNECT");

    // A ban through the chat's moderation: alice (a guest) is taken out and refused a rejoin.
    let ban = http(
        admin,
        "POST",
        "/api/ban",
        Some(TOKEN),
        Some(json!({"target": "alice", "room": "general", "reason": "spam"})),
    )
    .await;
    assert_eq!(ban.status, 200, "{:?}", ban.json());
    assert_eq!(ban.json()["moderation"]["action"], "ban");
    assert_eq!(ban.json()["moderation"]["target"], "alice");
    let again = call(&mut alice, "/", "join", json!({"room": "general"})).await;
    assert_eq!(code(&again.0), ErrorCode::Banned);
    let nowhere = http(
        admin,
        "POST",
        "/api/ban",
        Some(TOKEN),
        Some(json!({"target": "alice", "room": "general", "namespace": "/nope"})),
    )
    .await;
    assert_eq!(nowhere.status, 404);
    server.shutdown().await;
}

/// `chat-server admin <verb>`, the binary, against a server's admin listener.
#[tokio::test]
async fn the_admin_subcommands_call_the_api() {
    let server = serve(Some(TOKEN), |_| {}).await;
    let (addr, admin) = (server.local_addr(), server.admin_addr().unwrap());
    let mut alice = user(addr, "alice").await;
    join(&mut alice, "/", "general").await;
    let run = |args: Vec<String>, token: Option<&'static str>| {
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"));
            cmd.arg("admin").args(["--url", &format!("http://{admin}")]);
            cmd.args(&args).env_remove("CHAT_ADMIN_TOKEN");
            if let Some(t) = token {
                cmd.env("CHAT_ADMIN_TOKEN", t);
            }
            cmd.output().unwrap()
        })
    };
    let out = run(vec!["users".into()], Some(TOKEN)).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let users: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users["users"][0]["nick"], "alice");
    let out = run(
        vec![
            "notice".into(),
            "hi all".into(),
            "--room".into(),
            "general".into(),
        ],
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        alice.wait_event(events::server::NOTICE).await["text"],
        "hi all"
    );
    let out = run(
        vec!["rooms".into(), "--namespace".into(), "/".into()],
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"general\""),
        "{out:?}"
    );
    // Refusals: exit 1 and the reason on stderr.
    let out = run(
        vec![
            "ban".into(),
            "alice".into(),
            "--room".into(),
            "general".into(),
        ],
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"ban\""),
        "{out:?}"
    );
    let out = run(
        vec!["ban".into(), "alice".into(), "--room".into(), "#bad".into()],
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 400"),
        "{out:?}"
    );
    let out = run(vec!["users".into()], Some("not-the-token-at-all"))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 401"),
        "{out:?}"
    );
    let out = run(vec!["users".into()], None).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CHAT_ADMIN_TOKEN"),
        "{out:?}"
    );
    let out = run(vec!["kick".into(), "alice".into()], Some(TOKEN))
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    server.shutdown().await;
}

fn resolve(args: &[&str]) -> Result<ServerConfig, String> {
    let matches = cli::command()
        .try_get_matches_from(std::iter::once("chat-server").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    ServerConfig::resolve(Settings::new(&matches, FileConfig::default())).map_err(|e| e.to_string())
}

#[test]
fn the_admin_address_is_never_the_listen_address_and_the_token_is_long() {
    let err = resolve(&[
        "--listen",
        "127.0.0.1:7000",
        "--admin-listen",
        "127.0.0.1:7000",
    ])
    .unwrap_err();
    assert!(err.contains("admin_listen"), "{err}");
    let ok = resolve(&[
        "--listen",
        "127.0.0.1:7000",
        "--admin-listen",
        "127.0.0.1:7001",
    ])
    .unwrap();
    assert_eq!(ok.admin_listen, Some("127.0.0.1:7001".parse().unwrap()));
    // The token: never a visible flag, at least 16 bytes, from a file too.
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let err = resolve(&["--admin-token-file", short.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("admin_token"), "{err}");
    let long = dir.path().join("long");
    std::fs::write(&long, format!("{TOKEN}\n")).unwrap();
    let ok = resolve(&["--admin-token-file", long.to_str().unwrap()]).unwrap();
    assert_eq!(ok.admin_token.as_deref(), Some(TOKEN));
    let help = cli::command().render_help().to_string();
    assert!(
        help.contains("--admin-token-file") && !help.contains("--admin-token "),
        "{help}"
    );
}

/// In cluster mode `/readyz` follows Redis: 503 "store unavailable" while it is down (so a
/// balancer sends users to nodes that can serve them), 200 again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_clusters_redis_is_down() {
    use chat_server::config::{DEFAULT_REDIS_MAX_MESSAGES, RedisConfig, RedisUrl, StoreConfig};
    if !common::redis::installed() {
        return;
    }
    let mut redis = common::redis::RedisServer::start();
    let url = RedisUrl::parse(&redis.url()).unwrap();
    let server = serve(None, |c| {
        c.store = StoreConfig::Redis(RedisConfig {
            url,
            max_messages: DEFAULT_REDIS_MAX_MESSAGES,
        })
    })
    .await;
    let admin = server.admin_addr().expect("admin listener");
    let status_within = |want: u16| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        loop {
            let r = get(admin, "/readyz").await;
            if r.status == want || tokio::time::Instant::now() > deadline {
                return (r.status, r.body);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(status_within(200).await, (200, "ready\n".to_owned()));
    let store_up = || async move { metric(&get(admin, "/metrics").await.body, "chat_store_up") };
    assert_eq!(store_up().await, 1.0);
    redis.kill();
    assert_eq!(
        status_within(503).await,
        (503, "store unavailable\n".to_owned())
    );
    assert_eq!(store_up().await, 0.0);
    redis.restart();
    assert_eq!(status_within(200).await, (200, "ready\n".to_owned()));
    assert_eq!(store_up().await, 1.0);
}
