//! Reading and writing HTTP/1.1 on a client's stream, bounded: request heads up to
//! `chat_protocol::http::MAX_HEAD` bytes, bodies up to their `Content-Length` (already checked
//! against `max_payload` by `chat_protocol::http::parse_engine_request`), each within a time
//! limit set by the caller. Parsing is `chat_protocol::http`'s; this module only moves bytes.

use std::time::Duration;

use chat_protocol::http::{HandshakeError, MAX_HEAD, head_ended, text_response_head};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Reads until `buf` holds the end of a request head (or `MAX_HEAD` bytes). Bytes read past
/// the head stay in `buf` (a body, the next request, the first WebSocket frames).
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut chunk = [0u8; 1024];
    // Where the search for the head's end resumes: the bytes before it were searched (less
    // the three a `\r\n\r\n` split across two reads may start in), so a head sent a byte
    // at a time costs its length once, not its length squared.
    let mut searched = 0;
    loop {
        if head_ended(buf, searched) || buf.len() >= MAX_HEAD {
            return Ok(());
        }
        searched = buf.len().saturating_sub(3);
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until `buf` holds `len` bytes (the head was already drained from it), within
/// `limit`; `false` on a timeout, an error or the end of the stream.
pub(crate) async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    len: usize,
    limit: Duration,
) -> bool {
    let read = async {
        let mut chunk = [0u8; 4096];
        while buf.len() < len {
            let want = (len - buf.len()).min(chunk.len());
            let n = stream.read(&mut chunk[..want]).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    matches!(timeout(limit, read).await, Ok(Ok(())))
}

/// Answers with a refusal (its JSON, `Connection: close`) and shuts the stream down, within
/// `limit`.
pub(crate) async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    refusal: &HandshakeError,
    limit: Duration,
) {
    refuse_with(stream, refusal, "", limit).await;
}

/// [`refuse`] with more header lines (`extra`, each `Name: value\r\n`: CORS headers).
pub(crate) async fn refuse_with<S: AsyncWrite + Unpin>(
    stream: &mut S,
    refusal: &HandshakeError,
    extra: &str,
    limit: Duration,
) {
    let _ = timeout(limit, async {
        stream
            .write_all(refusal.response_with(extra).as_bytes())
            .await?;
        stream.shutdown().await
    })
    .await;
}

/// Writes a whole answer and flushes it, within `limit`; `false` when the client did not
/// take it.
pub(crate) async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &[u8],
    limit: Duration,
) -> bool {
    let write = async {
        stream.write_all(response).await?;
        stream.flush().await
    };
    matches!(timeout(limit, write).await, Ok(Ok(())))
}

/// Answers `200 OK` with a `text/plain` body and the header lines `extra` (CORS headers), in
/// one write, within `limit`; `false` when the client did not take it.
pub(crate) async fn answer_text<S: AsyncWrite + Unpin>(
    stream: &mut S,
    body: &str,
    keep_alive: bool,
    extra: &str,
    limit: Duration,
) -> bool {
    let mut response = text_response_head(body.len(), keep_alive, extra);
    response.push_str(body);
    answer(stream, response.as_bytes(), limit).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A head that arrives a byte at a time, its end split across reads, is found once it
    /// ends (and not before); what follows it stays in the buffer.
    #[tokio::test]
    async fn a_head_sent_a_byte_at_a_time_ends_where_it_ends() {
        let (mut client, mut server) = tokio::io::duplex(16);
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        let writer = tokio::spawn(async move {
            for b in request {
                client.write_all(&[*b]).await.unwrap_or_default();
                tokio::task::yield_now().await;
            }
            client
        });
        let mut buf = Vec::new();
        read_head(&mut server, &mut buf).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&buf).into_owned();
        assert!(
            text.starts_with("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            "{text:?}"
        );
        assert!(text.len() <= request.len());
        drop(writer.await);
    }
}
