//! WebSocket frames written straight to the socket.
//!
//! tungstenite reads a connection (it parses and unmasks frames, checks UTF-8 and sizes, and
//! answers pings and the peer's close), but it never holds the socket's write half: what it
//! writes (pongs, its reply to a close) lands in the connection's [`Control`] buffer. The
//! connection's writer owns the write half and writes a whole batch of queued packets at once
//! ([`gather_frames`], [`write_gathered`]): headers and small payloads gathered into one
//! buffer, large payloads from their shared bytes, in one write. tungstenite's write path
//! copied each frame into a 16 KiB buffer per connection and wrote it out in pieces; this
//! path costs a quarter less server CPU per delivery under fan-out (BENCHMARKS.md). Control
//! bytes go out between batches, never inside a frame.
//!
//! On the read side tungstenite keeps a small buffer ([`READ_BUFFER`] bytes) per connection;
//! the socket is read a [`READ_CHUNK`] at a time into a scratch buffer on the stack, and
//! only what tungstenite has no room for yet is kept, while it waits ([`ReadSide`]). So an
//! idle connection holds a few hundred bytes for reading instead of 4 KiB, and the socket
//! is read with as few system calls as before.
//!
//! Server frames are never masked, fragmented or compressed, so a header is two to ten bytes.

use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::buffers::{CONTROL_MAX, COPY_UP_TO, READ_BUFFER, READ_CHUNK};
use super::lock;

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;

/// Most slices handed to one vectored write (Linux takes at most 1,024).
const MAX_SLICES: usize = 1024;

/// Splits an upgraded stream: the read side for tungstenite (its writes go to the returned
/// [`Control`]), and the write half for the connection's writer.
pub fn split<S>(stream: S) -> (ReadSide<ReadHalf<S>>, WriteHalf<S>, Arc<Control>)
where
    S: AsyncRead + AsyncWrite,
{
    let (read, write) = tokio::io::split(stream);
    let control = Arc::new(Control::default());
    let side = ReadSide {
        read,
        control: control.clone(),
        spill: Vec::new(),
        taken: 0,
    };
    (side, write, control)
}

/// Frames tungstenite wrote, waiting for the writer.
///
/// The writer looks at it on every wake-up; the two flags let it do so without the lock
/// while nothing is there (almost always).
#[derive(Debug, Default)]
pub struct Control {
    bytes: Mutex<Vec<u8>>,
    /// Set (under the lock) when bytes are added, cleared (under the lock) when taken.
    pending: AtomicBool,
    /// More than [`CONTROL_MAX`] bytes waited: the peer is not reading.
    overflow: AtomicBool,
    waker: AtomicWaker,
}

impl Control {
    /// Appends frames tungstenite wrote (dropped past [`CONTROL_MAX`]) and wakes the writer.
    pub(crate) fn push(&self, bytes: &[u8]) {
        let mut waiting = lock(&self.bytes);
        if waiting.len() + bytes.len() > CONTROL_MAX {
            self.overflow.store(true, Ordering::Release);
        } else {
            waiting.extend_from_slice(bytes);
            self.pending.store(true, Ordering::Release);
        }
        drop(waiting);
        self.waker.wake();
    }

    /// Moves the waiting bytes to the end of `out`; `false` when there were none.
    pub fn take(&self, out: &mut Vec<u8>) -> bool {
        if !self.pending.load(Ordering::Acquire) {
            return false;
        }
        let mut waiting = lock(&self.bytes);
        self.pending.store(false, Ordering::Relaxed);
        if waiting.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(&mut *waiting, out);
        } else {
            out.append(&mut waiting);
        }
        true
    }

    /// Like [`Control::take`], but registers the task to be woken when bytes arrive.
    pub fn poll_take(&self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<()> {
        if self.take(out) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // Checked again after registering, so bytes written in between are not missed.
        if self.take(out) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The peer let more than `CONTROL_MAX` control bytes pile up (some were dropped).
    pub fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::Acquire)
    }

    /// Ready once [`Control::overflowed`] (registers the task to be woken by the next push).
    pub fn poll_overflowed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.overflowed() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.overflowed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The read half, given to tungstenite; writes go to the [`Control`] buffer and never block.
///
/// tungstenite keeps one read buffer per connection for the connection's life, sized by
/// [`READ_BUFFER`], which is small; the socket is still read [`READ_CHUNK`] bytes at a time
/// into a scratch buffer on the stack. What tungstenite has no room for yet waits in `spill`,
/// allocated only while such bytes wait and given back as soon as tungstenite has taken them:
/// an idle connection holds no read-ahead at all, a busy one no more than one chunk.
pub struct ReadSide<R> {
    read: R,
    control: Arc<Control>,
    /// Bytes read from the socket and not yet handed to tungstenite: `spill[taken..]`.
    spill: Vec<u8>,
    taken: usize,
}

impl<R> ReadSide<R> {
    /// Bytes read from the socket that tungstenite has not taken yet.
    pub fn spilled(&self) -> usize {
        self.spill.len() - self.taken
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadSide<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.taken < this.spill.len() {
            let n = buf.remaining().min(this.spill.len() - this.taken);
            buf.put_slice(&this.spill[this.taken..this.taken + n]);
            this.taken += n;
            if this.taken == this.spill.len() {
                // Given back at once: nothing is held between bursts.
                this.spill = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut chunk = ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(&mut this.read).poll_read(cx, &mut chunk))?;
        let read = chunk.filled();
        let n = buf.remaining().min(read.len());
        buf.put_slice(&read[..n]);
        if n < read.len() {
            this.spill = read[n..].to_vec();
            this.taken = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: Unpin> AsyncWrite for ReadSide<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.control.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Appends the header of an unmasked, final frame with `len` payload bytes.
pub fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// A close frame with a status code and a reason (cut to fit the 125-byte control payload,
/// at a character boundary).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut frame = Vec::with_capacity(4 + end);
    put_header(&mut frame, OP_CLOSE, 2 + end);
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(&reason.as_bytes()[..end]);
    frame
}

/// Whether these control bytes (whole unmasked frames, as tungstenite writes them) hold a
/// close frame: then the close handshake's answer is already on its way.
pub fn contains_close(mut bytes: &[u8]) -> bool {
    while bytes.len() >= 2 {
        if bytes[0] & 0x0f == OP_CLOSE {
            return true;
        }
        let (header, len): (usize, usize) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (4, usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
            127 if bytes.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&bytes[2..10]);
                (
                    10,
                    usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX),
                )
            }
            126 | 127 => return false,
            n => (2, usize::from(n)),
        };
        bytes = bytes.get(header.saturating_add(len)..).unwrap_or_default();
    }
    false
}

/// Writes `control` and then every frame (opcode, payload), and flushes: [`gather_frames`]
/// then [`GatheredWrite`], as the connection's writer does.
pub async fn write_frames<'a, W, F>(
    w: &mut W,
    gather: &mut Vec<u8>,
    control: &[u8],
    frames: F,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
    F: IntoIterator<Item = (u8, &'a [u8])>,
{
    let mut large = Vec::new();
    gather_frames(gather, control, frames, &mut large);
    let mut write = GatheredWrite::new(w, gather, large);
    std::future::poll_fn(|cx| write.poll(cx)).await
}

/// Puts `control` and every frame (opcode, payload) into `gather` (the caller's, reused from
/// batch to batch so a batch costs no allocation; cleared first): headers and payloads of up
/// to `COPY_UP_TO` bytes are copied, since the kernel copies one long run much faster than
/// many short slices and the shared payload is hot in the cache. A larger payload is not
/// copied: it goes into `large` with the offset in `gather` it is written after.
///
/// Not async, so the frames' iterator is not part of the writer's future (which every
/// connection's task holds).
pub fn gather_frames<'a, F>(
    gather: &mut Vec<u8>,
    control: &[u8],
    frames: F,
    large: &mut Vec<(usize, &'a [u8])>,
) where
    F: IntoIterator<Item = (u8, &'a [u8])>,
{
    gather.clear();
    gather.extend_from_slice(control);
    for (opcode, payload) in frames {
        put_header(gather, opcode, payload.len());
        if payload.len() <= COPY_UP_TO {
            gather.extend_from_slice(payload);
        } else {
            large.push((gather.len(), payload));
        }
    }
}

/// Writes what [`gather_frames`] put together, and flushes: one plain write when nothing is
/// large, else vectored writes of the gathered runs and the large payloads between them.
pub async fn write_gathered<W>(w: &mut W, gather: &[u8], large: &[(usize, &[u8])]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if large.is_empty() {
        // The common case, nothing large: a plain write (no slice list for the kernel).
        w.write_all(gather).await?;
        return w.flush().await;
    }
    let mut slices = Vec::with_capacity((large.len() * 2 + 1).min(MAX_SLICES));
    let mut start = 0;
    for &(end, payload) in large {
        if slices.len() + 2 > MAX_SLICES {
            write_all_vectored(w, &mut slices).await?;
            slices.clear();
        }
        if end > start {
            slices.push(IoSlice::new(&gather[start..end]));
        }
        slices.push(IoSlice::new(payload));
        start = end;
    }
    if gather.len() > start {
        slices.push(IoSlice::new(&gather[start..]));
    }
    write_all_vectored(w, &mut slices).await?;
    w.flush().await
}

/// A batch's gathered bytes being written ([`gather_frames`] put them together), kept as a
/// value the writer polls rather than as a future: its state is a cursor, so a connection's
/// writer is small while a write waits for the socket (the future of [`write_gathered`] is
/// ~220 bytes, kept in every connection's task). A batch with large payloads is written
/// by that future, boxed: rare, and the only case that needs a slice list.
pub enum GatheredWrite<'a, W> {
    /// Nothing large: one buffer, written from `pos` on, then flushed.
    Plain {
        w: &'a mut W,
        bytes: &'a [u8],
        pos: usize,
    },
    /// Large payloads between the gathered runs: vectored writes.
    Vectored(Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>),
}

impl<'a, W> GatheredWrite<'a, W>
where
    W: AsyncWrite + Unpin + Send,
{
    /// The write of `gather` and the `large` payloads between its runs (as
    /// [`gather_frames`] left them), not started yet.
    pub fn new(w: &'a mut W, gather: &'a [u8], large: Vec<(usize, &'a [u8])>) -> Self {
        if large.is_empty() {
            GatheredWrite::Plain {
                w,
                bytes: gather,
                pos: 0,
            }
        } else {
            GatheredWrite::Vectored(Box::pin(
                async move { write_gathered(w, gather, &large).await },
            ))
        }
    }

    /// Writes what the socket takes; ready once everything is written and flushed (or the
    /// write failed). Not to be polled again after that.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            GatheredWrite::Plain { w, bytes, pos } => {
                while *pos < bytes.len() {
                    let n = ready!(Pin::new(&mut **w).poll_write(cx, &bytes[*pos..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    *pos += n;
                }
                Pin::new(&mut **w).poll_flush(cx)
            }
            GatheredWrite::Vectored(write) => write.as_mut().poll(cx),
        }
    }
}

/// Writes every byte of `slices` (which it consumes), continuing after short writes.
async fn write_all_vectored<W>(w: &mut W, slices: &mut [IoSlice<'_>]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut rest = slices;
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// The WebSocket configuration every connection uses: a small read buffer (see the buffer
/// policy, [`super::buffers`], and [`ReadSide`]), no write buffer (tungstenite only writes
/// its pongs and close replies, into the connection's control buffer, which takes them at
/// once; the writer frames everything else, see this module), and the message and frame
/// limits.
pub fn websocket_config(max_message: usize, max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_frame.min(max_message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length_form() {
        for (len, expected) in [
            (0usize, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65_535, vec![0x81, 126, 0xff, 0xff]),
            (65_536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut out = Vec::new();
            put_header(&mut out, OP_TEXT, len);
            assert_eq!(out, expected, "length {len}");
        }
    }

    #[test]
    fn a_close_frame_carries_code_and_a_reason_cut_at_a_character() {
        let frame = close_frame(1008, "slow");
        assert_eq!(frame, [0x88, 6, 0x03, 0xf0, b's', b'l', b'o', b'w']);
        let long = "é".repeat(100);
        let frame = close_frame(1000, &long);
        assert_eq!(frame[1] as usize, frame.len() - 2);
        assert!(frame.len() - 2 <= 125);
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
    }

    #[test]
    fn a_close_is_found_after_other_control_frames() {
        let mut bytes = vec![0x8a, 3, b'a', b'b', b'c'];
        assert!(!contains_close(&bytes));
        bytes.extend(close_frame(1000, ""));
        assert!(contains_close(&bytes));
        assert!(!contains_close(&[0x8a]));
    }

    #[tokio::test]
    async fn frames_arrive_whole_after_short_writes() {
        // A pipe with a 7-byte buffer forces short writes in the middle of headers and payloads.
        let (mut client, mut server) = tokio::io::duplex(7);
        let big = vec![b'x'; 70_000];
        let frames: Vec<(u8, &[u8])> = vec![(OP_TEXT, b"hello"), (OP_BINARY, &big), (OP_TEXT, b"")];
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut all)
                .await
                .map(|_| all)
        });
        let mut gather = b"left from the last batch".to_vec();
        write_frames(&mut server, &mut gather, &[0x8a, 0], frames.iter().copied())
            .await
            .unwrap();
        drop(server);
        let all = reader.await.unwrap().unwrap();
        let mut expected = vec![0x8a, 0, 0x81, 5];
        expected.extend_from_slice(b"hello");
        expected.extend_from_slice(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&[0x81, 0]);
        assert_eq!(all, expected);
    }

    /// A masked client frame, as a browser sends it.
    fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut frame = Vec::new();
        put_header(&mut frame, opcode, payload.len());
        frame[1] |= 0x80;
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        frame
    }

    #[tokio::test]
    async fn frames_cut_anywhere_arrive_whole_and_nothing_stays_spilled() {
        use futures_util::StreamExt;
        use tokio_tungstenite::WebSocketStream;
        use tokio_tungstenite::tungstenite::protocol::Role;

        // Sizes around tungstenite's small buffer, the read chunk and a 16-bit length.
        let messages: Vec<Vec<u8>> = (0..120usize)
            .map(|i| vec![b'a' + (i % 26) as u8; (i * 613) % 70_000])
            .collect();
        let mut bytes = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            bytes.extend(client_frame(OP_BINARY, m, [i as u8, 0x5a, 0xa5, 7]));
        }
        let (mut client, server) = tokio::io::duplex(16 * 1024);
        let feeder = tokio::spawn(async move {
            // Pieces of odd sizes, so frames and headers are cut everywhere.
            let mut rest = &bytes[..];
            for size in [1usize, 7, 300, 4_096, 9_000, 13, 2, READ_CHUNK + 1]
                .iter()
                .cycle()
            {
                if rest.is_empty() {
                    break;
                }
                let (piece, tail) = rest.split_at((*size).min(rest.len()));
                tokio::io::AsyncWriteExt::write_all(&mut client, piece)
                    .await
                    .unwrap();
                rest = tail;
            }
            client
        });
        let (read, _write, _control) = split(server);
        let config = websocket_config(1 << 20, 1 << 20);
        let mut ws = WebSocketStream::from_raw_socket(read, Role::Server, Some(config)).await;
        for (i, expected) in messages.iter().enumerate() {
            let got = ws.next().await.unwrap().unwrap().into_data();
            assert!(got[..] == expected[..], "message {i}: {} bytes", got.len());
        }
        // Everything read was handed over, and the spill's buffer given back.
        assert_eq!(ws.get_ref().spilled(), 0);
        assert_eq!(ws.get_ref().spill.capacity(), 0);
        drop(feeder.await.unwrap());
        assert!(ws.next().await.is_none_or(|r| r.is_err()));
    }

    /// A sync stream for tungstenite: reads `input`, and what tungstenite writes is dropped.
    struct Plain(std::io::Cursor<Vec<u8>>);

    impl std::io::Read for Plain {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl std::io::Write for Plain {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What tungstenite reads from `bytes`, messages then the first error, as strings.
    fn read_plain(bytes: &[u8], config: WebSocketConfig) -> Vec<String> {
        use tokio_tungstenite::tungstenite::WebSocket;
        use tokio_tungstenite::tungstenite::protocol::Role;
        let stream = Plain(std::io::Cursor::new(bytes.to_vec()));
        let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
        let mut out = Vec::new();
        loop {
            match ws.read() {
                Ok(m) => out.push(format!("{m:?}")),
                // tokio-tungstenite's stream ends there instead.
                Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed) => return out,
                Err(e) => {
                    out.push(format!("error: {e}"));
                    return out;
                }
            }
        }
    }

    /// The same through [`ReadSide`], the bytes arriving in pieces of the given sizes.
    async fn read_through_side(
        bytes: &[u8],
        pieces: &[usize],
        config: WebSocketConfig,
    ) -> Vec<String> {
        use futures_util::StreamExt;
        use tokio_tungstenite::WebSocketStream;
        use tokio_tungstenite::tungstenite::protocol::Role;
        let (mut client, server) = tokio::io::duplex(8 * 1024);
        let bytes = bytes.to_vec();
        let pieces = pieces.to_vec();
        let feeder = tokio::spawn(async move {
            let mut rest = &bytes[..];
            for size in pieces.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, tail) = rest.split_at((*size).clamp(1, rest.len()));
                if tokio::io::AsyncWriteExt::write_all(&mut client, piece)
                    .await
                    .is_err()
                {
                    break;
                }
                rest = tail;
            }
        });
        let (read, _write, _control) = split(server);
        let mut ws = WebSocketStream::from_raw_socket(read, Role::Server, Some(config)).await;
        let mut out = Vec::new();
        loop {
            match ws.next().await {
                Some(Ok(m)) => out.push(format!("{m:?}")),
                Some(Err(e)) => {
                    out.push(format!("error: {e}"));
                    break;
                }
                None => break,
            }
        }
        drop(ws);
        feeder.abort();
        out
    }

    #[tokio::test]
    async fn random_client_bytes_read_as_with_a_plain_4_kib_buffer() {
        // Frames valid and not (any opcode, FIN, mask bit, reserved bits, payload, truncated
        // streams, bad UTF-8, control frames too long, sizes over the limits), cut anywhere:
        // read through `ReadSide` and the 256-byte buffer, tungstenite gives the same
        // messages and the same error as over a plain stream with its former 4 KiB buffer.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let limits = websocket_config(20_000, 8_000);
        let plain = limits.read_buffer_size(4096);
        for case in 0..300 {
            let mut bytes = Vec::new();
            for _ in 0..next() % 10 {
                let r = next();
                if r % 11 == 0 {
                    let n = (next() % 40) as usize;
                    bytes.extend((0..n).map(|_| next() as u8));
                    continue;
                }
                let opcode = [0u8, 1, 1, 1, 2, 2, 8, 9, 10, 3][(r >> 8) as usize % 10];
                let len = match (r >> 16) % 6 {
                    0 => (next() % 126) as usize,
                    1 => 126 + (next() % 300) as usize,
                    2 => (next() % 9_000) as usize,
                    3 => (next() % 30_000) as usize,
                    _ => (next() % 16) as usize,
                };
                let mut payload: Vec<u8> = if (r >> 24) % 3 == 0 {
                    (0..len).map(|_| next() as u8).collect()
                } else {
                    "héllo wörld ".bytes().cycle().take(len).collect()
                };
                if opcode == 8 && payload.len() >= 2 && (r >> 28) % 2 == 0 {
                    payload[..2].copy_from_slice(&1000u16.to_be_bytes());
                }
                let mask = (next() as u32).to_be_bytes();
                let mut frame = client_frame(opcode, &payload, mask);
                if (r >> 32) % 5 == 0 {
                    frame[0] &= 0x7f; // not FIN: a fragment
                }
                if (r >> 36) % 17 == 0 {
                    frame[0] |= 0x40; // a reserved bit
                }
                if (r >> 40) % 13 == 0 {
                    // Unmasked: header without the mask bit and key, payload as is.
                    frame.clear();
                    put_header(&mut frame, opcode, payload.len());
                    frame.extend_from_slice(&payload);
                }
                bytes.extend(frame);
            }
            if next() % 4 == 0 && !bytes.is_empty() {
                let keep = (next() as usize) % bytes.len();
                bytes.truncate(keep);
            }
            let pieces: Vec<usize> = (0..1 + next() % 5)
                .map(|_| [1, 2, 7, 100, 255, 256, 257, 4_095, 4_096, 5_000][(next() % 10) as usize])
                .collect();
            let expected = read_plain(&bytes, plain);
            let got = read_through_side(&bytes, &pieces, limits).await;
            assert_eq!(got, expected, "case {case}, pieces {pieces:?}");
        }
    }
}
