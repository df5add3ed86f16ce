//! Raw WebSocket for the engine's tests: a hand-made upgrade over TCP, masked client frames
//! written byte by byte, and the server's frames read back whole.

use std::net::SocketAddr;
use std::time::Duration;

/// A masked client frame (the mask is fixed; the server only checks that there is one).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    assert!(payload.len() < 126);
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The server's frames (opcode, payload) in `bytes`, which must hold whole unmasked frames.
pub fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert_eq!(bytes[0] & 0xf0, 0x80, "final frame, no reserved bits");
        assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
        let (start, len) = match bytes[1] & 0x7f {
            126 => (4, u16::from_be_bytes([bytes[2], bytes[3]]) as usize),
            127 => (
                10,
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
            ),
            n => (2, n as usize),
        };
        frames.push((bytes[0] & 0x0f, bytes[start..start + len].to_vec()));
        bytes = &bytes[start + len..];
    }
    frames
}

/// Upgrades a raw TCP connection and returns it with the bytes read past the response head.
pub async fn raw_upgrade(addr: SocketAddr) -> (tokio::net::TcpStream, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed during the upgrade");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    assert!(
        buf.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    (tcp, buf.split_off(end))
}

/// Upgrades a raw connection, writes `frames`, and returns every frame the server sent until
/// it closed the socket (bounded by a timeout).
pub async fn exchange(addr: SocketAddr, frames: &[u8]) -> Vec<(u8, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut tcp, mut seen) = raw_upgrade(addr).await;
    tcp.write_all(frames).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut seen))
        .await
        .expect("the server closes the socket")
        .unwrap();
    server_frames(&seen)
}
