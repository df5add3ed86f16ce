//! `trusted_proxies`: a listed peer's `X-Forwarded-For` names the client for the
//! per-address limits (sessions per address here, the chat's registrations per address),
//! an unlisted peer's is ignored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};

use chat_protocol::events::{ConnectErrorData, ErrorCode};
use chat_protocol::socket_io::PacketKind;
use chat_server::EngineConfig;
use chat_server::engine::TrustedProxies;
use common::Client;
use common::chat::{config, serve};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROXY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const STRANGER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A WebSocket upgrade from `local` with `X-Forwarded-For: xff`; the answer's status line
/// (the stream is kept open with the answer, so an accepted session stays counted).
async fn upgrade(addr: SocketAddr, local: IpAddr, xff: &str) -> (tokio::net::TcpStream, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: {xff}\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(common::RECV_TIMEOUT, s.read(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    let status = text.lines().next().unwrap_or_default().to_owned();
    (s, status)
}

fn one_session_per_address(proxies: &str) -> chat_server::ServerConfig {
    let mut c = config();
    c.engine = EngineConfig {
        max_connections_per_ip: 1,
        trusted_proxies: TrustedProxies::parse(proxies).unwrap(),
        ..EngineConfig::default()
    };
    c
}

#[tokio::test]
async fn a_listed_proxys_header_names_the_client_for_the_per_address_limit() {
    let (_server, addr) = serve(one_session_per_address("127.0.0.1")).await;
    let (_a, status) = upgrade(addr, PROXY, "203.0.113.1").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    // Another client behind the same proxy: another address.
    let (_b, status) = upgrade(addr, PROXY, "6.6.6.6, 203.0.113.2").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    // The first client again: its one session is taken. The rightmost hop counts, not what
    // the client wrote further left.
    let (_c, status) = upgrade(addr, PROXY, "203.0.113.2, 203.0.113.1").await;
    assert!(status.starts_with("HTTP/1.1 429"), "{status}");
    // An unlisted peer's header is ignored: it is its own address.
    let (_d, status) = upgrade(addr, STRANGER, "203.0.113.3").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let (_e, status) = upgrade(addr, STRANGER, "203.0.113.4").await;
    assert!(status.starts_with("HTTP/1.1 429"), "{status}");
}

#[tokio::test]
async fn without_the_setting_the_header_counts_for_nothing() {
    let (_server, addr) = serve(one_session_per_address("")).await;
    let (_a, status) = upgrade(addr, PROXY, "203.0.113.1").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let (_b, status) = upgrade(addr, PROXY, "203.0.113.2").await;
    assert!(status.starts_with("HTTP/1.1 429"), "{status}");
}

/// The chat sees the forwarded address too: registrations per address (10 an hour) are
/// counted per client behind the proxy.
#[tokio::test]
async fn the_chat_counts_registrations_per_forwarded_address() {
    let mut c = config();
    c.engine.trusted_proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
    let (_server, addr) = serve(c).await;
    let register = |xff: &'static str, nick: String| async move {
        let mut client = Client::connect_with_header(addr, PROXY, "x-forwarded-for", xff).await;
        let answer = client
            .connect_namespace("/", Some(json!({"nick": nick, "password": "pw-12345"})))
            .await;
        match answer.kind {
            PacketKind::Connect => None,
            _ => answer
                .data
                .and_then(|d| serde_json::from_value::<ConnectErrorData>(d["data"].clone()).ok())
                .map(|d| d.code),
        }
    };
    for i in 0..10 {
        assert_eq!(register("198.51.100.7", format!("first{i}")).await, None);
    }
    assert_eq!(
        register("198.51.100.7", "first10".into()).await,
        Some(ErrorCode::RateLimited),
        "the eleventh from that client"
    );
    assert_eq!(
        register("198.51.100.8", "second0".into()).await,
        None,
        "another client behind the same proxy"
    );
}
