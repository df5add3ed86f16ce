//! `wss://`: the server with `tls` set (what `--tls-cert`/`--tls-key` give), a certificate
//! made at test time with rcgen, and a rustls client that trusts only that certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_server::config::TlsConfig;
use chat_server::{EngineConfig, RunningServer, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
use tokio_tungstenite::tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Pki {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
fn pki() -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Pki {
        _dir: dir,
        cert,
        key,
        der: ck.cert.der().clone(),
    }
}

async fn serve(pki: &Pki, engine: EngineConfig) -> (RunningServer, SocketAddr) {
    let config = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        engine,
        tls: Some(TlsConfig {
            cert: pki.cert.clone(),
            key: pki.key.clone(),
        }),
        ..ServerConfig::default()
    };
    let server = chat_server::start(config).await.expect("server starts");
    let addr = server.local_addr();
    (server, addr)
}

fn connector(trusted: &CertificateDer<'static>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

async fn connect_wss(addr: SocketAddr, trusted: &CertificateDer<'static>) -> Wss {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(TIMEOUT, connector(trusted).connect(name, tcp))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake");
    let url = format!(
        "wss://localhost:{}/socket.io/?EIO=4&transport=websocket",
        addr.port()
    );
    let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    ws
}

async fn recv(ws: &mut Wss) -> String {
    loop {
        match tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.unwrap();
            }
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// Receives until a frame starts with `prefix`.
async fn recv_until(ws: &mut Wss, prefix: &str) -> String {
    for _ in 0..50 {
        let t = recv(ws).await;
        if t.starts_with(prefix) {
            return t;
        }
    }
    panic!("no frame starting with {prefix}");
}

#[tokio::test]
async fn chat_over_wss() {
    let pki = pki();
    let (server, addr) = serve(&pki, EngineConfig::default()).await;
    let mut alice = connect_wss(addr, &pki.der).await;
    let mut bob = connect_wss(addr, &pki.der).await;
    for (ws, nick) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        let open = recv(ws).await;
        assert!(open.starts_with("0{\"sid\""), "{open}");
        ws.send(Message::text(format!("40{{\"nick\":\"{nick}\"}}")))
            .await
            .unwrap();
        recv_until(ws, "40{\"sid\"").await;
        ws.send(Message::text("421[\"join\",{\"room\":\"tls\"}]"))
            .await
            .unwrap();
        let ack = recv_until(ws, "431[").await;
        assert!(ack.contains("\"ok\":true"), "{ack}");
    }
    alice
        .send(Message::text(
            "422[\"message\",{\"room\":\"tls\",\"text\":\"over TLS\"}]",
        ))
        .await
        .unwrap();
    let ack = recv_until(&mut alice, "432[").await;
    assert!(ack.contains("\"ok\":true"), "{ack}");
    let event = recv_until(&mut bob, "42[\"message\"").await;
    let v: Value = serde_json::from_str(&event[2..]).unwrap();
    assert_eq!(v[1]["text"], "over TLS");
    assert_eq!(v[1]["from"], "alice");
    server.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_by_the_client() {
    let pki = pki();
    let other = self::pki();
    let (server, addr) = serve(&pki, EngineConfig::default()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let result = tokio::time::timeout(TIMEOUT, connector(&other.der).connect(name, tcp))
        .await
        .expect("answer in time");
    assert!(
        result.is_err(),
        "a certificate it does not trust was accepted"
    );
    // The server is unharmed.
    let mut ws = connect_wss(addr, &pki.der).await;
    assert!(recv(&mut ws).await.starts_with('0'));
    server.shutdown().await;
}

#[tokio::test]
async fn plain_text_and_stalled_handshakes_on_the_tls_port_are_dropped() {
    let pki = pki();
    let (server, addr) = serve(
        &pki,
        EngineConfig {
            handshake_timeout: Duration::from_millis(500),
            ..EngineConfig::default()
        },
    )
    .await;
    // Plain HTTP on the TLS port: not a TLS record, the connection is closed.
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let plain = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("answer in time");
    assert!(plain.is_err());
    // A client that opens TCP and never starts TLS is dropped after the handshake timeout.
    let started = Instant::now();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(TIMEOUT, idle.read(&mut buf))
        .await
        .expect("dropped in time");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(started.elapsed() >= Duration::from_millis(400));
    let mut ws = connect_wss(addr, &pki.der).await;
    assert!(recv(&mut ws).await.starts_with('0'));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_pem_files_are_reported_with_their_path() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a pem file").unwrap();
    for (cert, key, named) in [
        (garbage.clone(), pki.key.clone(), &garbage),
        (pki.cert.clone(), garbage.clone(), &garbage),
        (
            pki.cert.clone(),
            dir.path().join("missing.pem"),
            &dir.path().join("missing.pem"),
        ),
    ] {
        let config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: Some(TlsConfig { cert, key }),
            ..ServerConfig::default()
        };
        let err = chat_server::start(config).await.err().expect("refused");
        assert!(
            err.to_string().contains(&named.display().to_string()),
            "{err}"
        );
    }
}
