//! The WebSocket under the session: the Engine.IO URL of a server address, opening the
//! connection (TCP, TLS for `wss://`, the WebSocket handshake and the Engine.IO open packet,
//! within [`CONNECT_TIMEOUT`]), sending a frame, and saying why the server closed it.

use std::time::Duration;

use chat_protocol::{engine_io, socket_io};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// How long to wait for the TCP/WebSocket handshake and the Engine.IO open packet.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The Engine.IO WebSocket URL for a server address such as `ws://127.0.0.1:7878`.
pub fn socket_url(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    let server = if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if server.starts_with("ws://") || server.starts_with("wss://") {
        server.to_owned()
    } else {
        format!("ws://{server}")
    };
    format!("{server}/socket.io/?EIO=4&transport=websocket")
}

/// Opens the WebSocket and reads the Engine.IO open packet, within [`CONNECT_TIMEOUT`].
pub(super) async fn connect(
    url: &str,
    tls: Option<tokio_tungstenite::Connector>,
) -> Result<(Ws, engine_io::OpenPayload), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, open(url, tls)).await {
        Ok(opened) => opened,
        Err(_) => Err("timed out".to_owned()),
    }
}

async fn open(
    url: &str,
    tls: Option<tokio_tungstenite::Connector>,
) -> Result<(Ws, engine_io::OpenPayload), String> {
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, tls)
        .await
        .map_err(|e| connect_error(&e))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => match engine_io::Packet::decode(text.as_str()) {
                Ok(engine_io::Packet::Open(open)) => return Ok((ws, open)),
                other => return Err(format!("unexpected first packet: {other:?}")),
            },
            Some(Ok(Message::Close(_))) | None => {
                return Err("closed during the handshake".to_owned());
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("handshake failed: {e}")),
        }
    }
}

/// Why a connection could not be opened, in words a user reads in the status and server
/// windows (not the raw OS error). [`SLOW_DOWN`] marks the server's own refusal of too many
/// connections, after which the client waits longer.
pub(super) fn connect_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use std::io::ErrorKind;
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "the server is not running (connection refused)".into(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                "the connection was reset".into()
            }
            ErrorKind::TimedOut => "no answer from the server".into(),
            ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => {
                "the server's network cannot be reached".into()
            }
            ErrorKind::NotFound => "no such host".into(),
            _ => {
                // "failed to lookup address information: Name or service not known" and the
                // like: the words without the "(os error N)" tail.
                let text = io.to_string();
                match text.find(" (os error") {
                    Some(at) => text[..at].to_owned(),
                    None => text,
                }
            }
        },
        Error::Http(response) if response.status().as_u16() == 429 => {
            format!("{SLOW_DOWN}: too many connections from this address (HTTP 429)")
        }
        Error::Http(response) => format!("the server refused (HTTP {})", response.status()),
        Error::Tls(e) => format!("TLS: {e}"),
        other => format!("cannot connect: {other}"),
    }
}

/// The start of a reason after which the client backs off longer (the server asked it to).
pub(super) const SLOW_DOWN: &str = "the server asks to slow down";

/// Sends one Socket.IO packet as a text frame.
pub(super) async fn send_packet(ws: &mut Ws, packet: &socket_io::Packet) -> Result<(), String> {
    let frame = packet.encode_frame();
    tracing::trace!(frame = loggable(&frame), "send");
    send_text(ws, frame).await
}

/// A frame as the trace log may show it: whole, unless it carries a password (a CONNECT's
/// auth, a `reset_password`), which is never written to a log.
fn loggable(frame: &str) -> &str {
    if frame.contains("\"password\"") {
        "(a frame with a password, not logged)"
    } else {
        frame
    }
}

/// Sends one text frame (an encoded Engine.IO packet).
pub(super) async fn send_text(ws: &mut Ws, frame: String) -> Result<(), String> {
    ws.send(Message::text(frame))
        .await
        .map_err(|e| format!("send failed: {e}"))
}

/// Ends the session politely: the Engine.IO close packet, then the WebSocket close.
pub(super) async fn close(ws: &mut Ws) {
    let _ = ws
        .send(Message::text(engine_io::Packet::Close.encode()))
        .await;
    let _ = ws.close(None).await;
}

/// Why the server closed the WebSocket, in words, from its close frame.
pub(super) fn close_reason(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(f) if u16::from(f.code) == 1001 => "the server is going away".to_owned(),
        Some(f) if !f.reason.is_empty() => {
            format!("closed by the server ({}: {})", u16::from(f.code), f.reason)
        }
        Some(f) => format!("closed by the server ({})", u16::from(f.code)),
        None => "closed by the server".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            socket_url("ws://127.0.0.1:7878"),
            "ws://127.0.0.1:7878/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url("http://h:1/"),
            "ws://h:1/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url("h:2"),
            "ws://h:2/socket.io/?EIO=4&transport=websocket"
        );
    }
}

#[cfg(test)]
mod log_tests {
    use super::loggable;

    #[test]
    fn frames_with_a_password_are_not_logged() {
        assert_eq!(
            loggable(r#"42["message",{"room":"r","text":"hi"}]"#),
            r#"42["message",{"room":"r","text":"hi"}]"#
        );
        for frame in [
            r#"40{"nick":"ann","password":"hunter22"}"#,
            r#"423["reset_password",{"nick":"bob","password":"fresh"}]"#,
        ] {
            assert!(!loggable(frame).contains("hunter22") && !loggable(frame).contains("fresh"));
        }
    }
}
