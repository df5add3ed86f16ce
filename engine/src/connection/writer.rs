//! The writer task: drains the connection's outbox (and the control bytes tungstenite
//! wrote) into the socket as vectored writes, and closes it within a grace. Between batches
//! it holds no buffer of its own: the batch's packets and its gathered frames are in buffers
//! lent for the batch (`batch_pool`).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tracing::debug;

use crate::batch_pool;
use crate::buffers::{KEEP_CONTROL, MAX_BATCH};
use crate::outbox::{CloseReason, EncodedPacket, Next, OutboxReceiver};
use crate::wire::{self, Control};

/// How long the writer may spend sending the close frame to a peer that is not reading (it
/// must first drain what the kernel already buffered for it).
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The pause after a batch that ends with a packet queued to go out alone (a CONNECT answer)
/// before the next write: two writes a few microseconds apart still reach a client in one
/// TCP read, and a client that handles one frame per read (the official test-suite's `ws`
/// 8.5) loses the second. Once per CONNECT, so it costs a connecting client this much
/// latency per namespace and nothing else.
const ALONE_GAP: std::time::Duration = std::time::Duration::from_millis(2);

/// Drains the queue into the socket: everything queued (and any control bytes tungstenite
/// wrote) goes out as one run of vectored writes. On close it finishes the batch being
/// written, writes what is still queued (unless the peer is a slow consumer), then the close
/// frame (tungstenite's answer to the peer's close, else its own), each step bounded by
/// [`CLOSE_GRACE`], and shuts the socket down.
pub(crate) async fn write_loop<W>(mut w: W, mut rx: OutboxReceiver, control: Arc<Control>)
where
    W: AsyncWrite + Unpin + Send,
{
    // The packets taken for a batch, and where their frames are gathered: borrowed from the
    // thread's spare pair (see `batch_pool`) at a take and given back at the next wait (a
    // busy writer borrows them once for a run of batches), so a waiting writer holds neither.
    let mut lent = batch_pool::Lent::default();
    let mut control_bytes = Vec::new();
    loop {
        // The close is seen through the queue's own flag (one lock with the batch), not the
        // close token, whose check takes a lock of its own on every wake-up.
        let next = poll_fn(|cx| {
            batch_pool::borrow_into(&mut lent);
            let packets = rx.poll_next_batch(cx, &mut lent.packets, MAX_BATCH);
            if packets == Poll::Ready(Next::Closed) {
                return Poll::Ready(Next::Closed);
            }
            let control = control.poll_take(cx, &mut control_bytes);
            if control.is_ready() || packets.is_ready() {
                Poll::Ready(Next::Packets)
            } else {
                // Waiting: the buffers go back to the thread's spare meanwhile.
                batch_pool::give_back(&mut lent);
                Poll::Pending
            }
        })
        .await;
        if next == Next::Closed {
            break;
        }
        if control.overflowed() {
            rx.close(CloseReason::SLOW_CONSUMER);
        }
        // tungstenite's answer to the peer's close may arrive before the connection is marked
        // closed: it must be the last frame, so it waits for the close path below.
        let peer_closed = wire::contains_close(&control_bytes);
        let control_now: &[u8] = if peer_closed { &[] } else { &control_bytes };
        let mut large = Vec::new();
        wire::gather_frames(
            &mut lent.gather,
            control_now,
            lent.packets.iter().flat_map(packet_frames),
            &mut large,
        );
        let (result, closing) = {
            // A cursor over the gathered bytes, not a nested future: this is what every
            // connection's writer holds while its socket is full.
            let mut write = wire::GatheredWrite::new(&mut w, &lent.gather, large);
            let finished = poll_fn(|cx| {
                if let Poll::Ready(result) = write.poll(cx) {
                    return Poll::Ready(Some(result));
                }
                // Closed while the socket does not take the batch, or pongs piling up past
                // the bound meanwhile (a peer that pings and does not read).
                if rx.poll_closed(cx).is_ready() || control.poll_overflowed(cx).is_ready() {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            })
            .await;
            match finished {
                Some(result) => (result, peer_closed),
                // Closed mid-batch: the batch is finished first (a frame cut short would
                // garble the close frame after it), within the grace.
                None => {
                    if control.overflowed() {
                        rx.close(CloseReason::SLOW_CONSUMER);
                    }
                    // Boxed: rare, and inline every connection's writer would carry it.
                    let mut grace = Box::pin(tokio::time::sleep(CLOSE_GRACE));
                    let result = poll_fn(|cx| {
                        if let Poll::Ready(result) = write.poll(cx) {
                            return Poll::Ready(result);
                        }
                        grace
                            .as_mut()
                            .poll(cx)
                            .map(|()| Err(std::io::ErrorKind::TimedOut.into()))
                    })
                    .await;
                    (result, true)
                }
            }
        };
        // A burst's queue buffer goes back once it is written and nothing more is queued.
        rx.trim_drained(lent.packets.len());
        // Written (or failed): the buffers are kept for the next take; they go back at the
        // next wait.
        lent.packets.clear();
        if !peer_closed {
            control_bytes.clear();
        }
        // A burst (of pongs, of packets) does not keep its buffer for the connection's life.
        control_bytes.shrink_to(KEEP_CONTROL);
        if let Err(e) = result {
            debug!(error = %e, "write failed");
            rx.close(CloseReason {
                code: 1006,
                reason: "transport error",
            });
            return;
        }
        if closing {
            break;
        }
        if rx.ended_alone() {
            // Boxed: once per CONNECT; inline, the timer would sit in every writer.
            Box::pin(tokio::time::sleep(ALONE_GAP)).await;
        }
    }
    // Boxed: the close's state is as large as the batch's and lives only at the end; inline,
    // every connection's writer would carry it.
    batch_pool::give_back(&mut lent);
    Box::pin(close(w, rx, control, control_bytes)).await;
}

/// The writer's end: what is still queued (not for a slow consumer), the close frame, the
/// shutdown, each within [`CLOSE_GRACE`].
async fn close<W>(
    mut w: W,
    mut rx: OutboxReceiver,
    control: Arc<Control>,
    mut control_bytes: Vec<u8>,
) where
    W: AsyncWrite + Unpin,
{
    let mut batch = VecDeque::new();
    let mut gather = Vec::new();
    let reason = rx.reason().unwrap_or(CloseReason::NORMAL);
    if reason.code != 1006 {
        let _ = timeout(CLOSE_GRACE, async {
            // What was queued before the close goes out first (an answer, a last error), but
            // not to a slow consumer: its queue is full because it does not read.
            if reason != CloseReason::SLOW_CONSUMER {
                while rx.take_queued(&mut batch, MAX_BATCH) {
                    write_batch(&mut w, &mut gather, &[], &batch).await?;
                    batch.clear();
                }
            }
            control.take(&mut control_bytes);
            if !wire::contains_close(&control_bytes) {
                control_bytes.extend(wire::close_frame(reason.code, reason.reason));
            }
            w.write_all(&control_bytes).await?;
            w.flush().await
        })
        .await;
    }
    let _ = timeout(CLOSE_GRACE, w.shutdown()).await;
}

/// A packet's frames: its text, then its attachments as binary frames. (Functions, not
/// closures: the writer's future must be `Send` for every lifetime of the batch it borrows.)
fn packet_frames(packet: &EncodedPacket) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::once((wire::OP_TEXT, packet.text.as_bytes()))
        .chain(packet.attachments().iter().map(attachment_frame))
}

fn attachment_frame(attachment: &bytes::Bytes) -> (u8, &[u8]) {
    (wire::OP_BINARY, &attachment[..])
}

/// Writes the control bytes, then every packet of the batch (its text frame, then its
/// attachments as binary frames).
async fn write_batch<W>(
    w: &mut W,
    gather: &mut Vec<u8>,
    control: &[u8],
    batch: &VecDeque<EncodedPacket>,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut large = Vec::new();
    wire::gather_frames(
        gather,
        control,
        batch.iter().flat_map(packet_frames),
        &mut large,
    );
    wire::write_gathered(w, gather, &large).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Outbox, outbox};

    /// The frames (opcode, payload) in `bytes`, which must hold whole unmasked frames.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while bytes.len() >= 2 {
            let len = usize::from(bytes[1] & 0x7f);
            assert!(len < 126, "small frames only here");
            out.push((bytes[0] & 0x0f, bytes[2..2 + len].to_vec()));
            bytes = &bytes[2 + len..];
        }
        assert!(bytes.is_empty(), "a cut frame at the end");
        out
    }

    #[tokio::test]
    async fn a_close_reply_taken_with_a_batch_goes_out_last_and_alone() {
        // The reader's close reply can reach the writer together with packets, before the
        // connection is marked closed: the packets go first, the reply last, and no second
        // close frame follows.
        let (tx, rx) = outbox(16);
        for n in 0..3 {
            tx.send(EncodedPacket::raw(format!("4{n}")), false).unwrap();
        }
        let control = Arc::new(Control::default());
        control.push(&wire::close_frame(1000, ""));
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(write_loop(server, rx, control.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tx.close(CloseReason::NORMAL);
        let mut seen = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut seen),
        )
        .await
        .expect("the writer shuts the stream down")
        .unwrap();
        writer.await.unwrap();
        let frames = frames(&seen);
        let ops: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
        assert_eq!(ops, [1, 1, 1, 8], "{frames:?}");
        assert_eq!(frames[3].1, 1000u16.to_be_bytes());
    }

    #[tokio::test]
    async fn pongs_piling_up_behind_a_blocked_write_close_the_connection() {
        let (tx, rx) = outbox(16);
        tx.send(EncodedPacket::raw("4".repeat(1000)), false)
            .unwrap();
        let control = Arc::new(Control::default());
        // The peer never reads: the write of the packet blocks on a 16-byte pipe.
        let (_client, server) = tokio::io::duplex(16);
        let writer = tokio::spawn(write_loop(server, rx, control.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!tx.is_closed());
        let pong = [0x8a, 125]
            .into_iter()
            .chain([b'p'; 125])
            .collect::<Vec<u8>>();
        for _ in 0..600 {
            control.push(&pong);
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while !tx.is_closed() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "closed while the write is blocked"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tokio::time::timeout(CLOSE_GRACE * 2, writer)
            .await
            .expect("the writer gives up within the grace")
            .unwrap();
    }

    /// A write call: when it came and its bytes.
    type Write = (tokio::time::Instant, Vec<u8>);

    /// Records each write call.
    #[derive(Default, Clone)]
    struct Recorder(Arc<std::sync::Mutex<Vec<Write>>>);

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0
                .lock()
                .unwrap()
                .push((tokio::time::Instant::now(), buf.to_vec()));
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connect_answer_goes_out_in_a_write_of_its_own_and_a_pause_follows() {
        let (tx, rx) = outbox(16);
        tx.send(EncodedPacket::raw("0{}".into()), false).unwrap();
        tx.send_alone(EncodedPacket::raw("40{}".into())).unwrap();
        tx.send(EncodedPacket::raw("42[\"hello\"]".into()), false)
            .unwrap();
        tx.send(EncodedPacket::raw("42[\"again\"]".into()), false)
            .unwrap();
        let recorder = Recorder::default();
        let writer = tokio::spawn(write_loop(
            recorder.clone(),
            rx,
            Arc::new(Control::default()),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tx.close(CloseReason::NORMAL);
        tokio::time::timeout(CLOSE_GRACE * 2, writer)
            .await
            .expect("the writer ends")
            .unwrap();
        let writes = recorder.0.lock().unwrap().clone();
        // What follows the CONNECT answer waits, so the two do not reach a client in one
        // TCP read.
        assert!(writes[1].0 - writes[0].0 >= ALONE_GAP, "no pause");
        let texts: Vec<Vec<String>> = writes
            .iter()
            .map(|(_, w)| {
                frames(w)
                    .into_iter()
                    .map(|(_, p)| String::from_utf8_lossy(&p).into_owned())
                    .collect()
            })
            .collect();
        assert_eq!(texts[0], ["0{}", "40{}"], "{texts:?}");
        assert_eq!(texts[1], ["42[\"hello\"]", "42[\"again\"]"], "{texts:?}");
    }

    #[test]
    fn the_writer_holds_its_state_not_a_write_future() {
        // Every connection's writer task holds this future for the connection's life: with
        // the batch's write as nested futures (and timers inline) it was 632 bytes.
        let (_client, server) = tokio::io::duplex(64);
        let (_read, write) = tokio::io::split(server);
        let (_tx, rx) = outbox(4);
        let writer = write_loop(write, rx, Arc::new(Control::default()));
        let size = std::mem::size_of_val(&writer);
        assert!(size <= 320, "the writer's future is {size} bytes");
    }

    /// Runs the writer into a pipe of `size` bytes; the reader task returns every byte that
    /// came through until the writer shut the pipe down.
    fn write_through_pipe(
        rx: OutboxReceiver,
        size: usize,
    ) -> (
        tokio::task::JoinHandle<()>,
        tokio::task::JoinHandle<Vec<u8>>,
    ) {
        let (mut client, server) = tokio::io::duplex(size);
        let writer = tokio::spawn(write_loop(server, rx, Arc::new(Control::default())));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut all)
                .await
                .unwrap();
            all
        });
        (writer, reader)
    }

    /// Closes the queue and returns every byte the writer of [`write_through_pipe`] wrote
    /// before it shut the pipe down (within 5 s).
    async fn close_and_read(
        tx: &Outbox,
        writer: tokio::task::JoinHandle<()>,
        reader: tokio::task::JoinHandle<Vec<u8>>,
    ) -> Vec<u8> {
        tx.close(CloseReason::NORMAL);
        let all = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("the writer shuts the stream down")
            .unwrap();
        writer.await.unwrap();
        all
    }

    #[tokio::test]
    async fn the_writer_gives_a_bursts_buffers_back_once_it_has_written_them() {
        // A join storm's presence bursts: once written, an idle member holds no grown queue
        // (before, it kept two buffers of the burst's size until its next packet).
        let (tx, rx) = outbox(1024);
        let (writer, reader) = write_through_pipe(rx, 1 << 20);
        for burst in 0..2 {
            for n in 0..200 {
                tx.send(EncodedPacket::raw(format!("4{burst}{n}")), false)
                    .unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let held = tx.queue_capacity();
        let all = close_and_read(&tx, writer, reader).await;
        let frames = frames(&all);
        assert_eq!(frames.len(), 401, "every packet, then the close");
        assert_eq!(frames[399].1, b"41199");
        assert!(
            held <= crate::buffers::SMALL_BATCH,
            "the queue holds {held}"
        );
    }

    #[tokio::test]
    async fn between_batches_the_writer_holds_no_batch_buffer() {
        // The test's runtime has one thread, so the writer borrows this thread's spare. Once
        // a batch is written, its buffer is the spare again, not kept by the waiting writer
        // (before, the writer kept a batch buffer and the queue another, swapped at each
        // take: an idle member of a room held both).
        let (tx, rx) = outbox(16);
        let (writer, reader) = write_through_pipe(rx, 1 << 16);
        for n in 0..3 {
            tx.send(EncodedPacket::raw(format!("4{n}")), false).unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (packets, gather) = batch_pool::spare_capacities();
        assert!(packets >= 3, "the writer holds its batch buffer");
        assert!(gather > 0, "the writer holds its gather buffer");
        // The queue keeps its own buffer, so the next packets cost no allocation.
        assert!(tx.queue_capacity() >= 3);
        tx.send(EncodedPacket::raw("43".into()), false).unwrap();
        let all = close_and_read(&tx, writer, reader).await;
        let texts: Vec<Vec<u8>> = frames(&all).into_iter().map(|(_, p)| p).collect();
        assert_eq!(texts[..4], [b"40", b"41", b"42", b"43"]);
        assert_eq!(texts.len(), 5, "the packets, then the close");
    }

    #[tokio::test]
    async fn a_batch_with_a_large_payload_arrives_whole_through_short_writes() {
        // The vectored path (payloads over COPY_UP_TO) and the plain one, through a 7-byte pipe.
        let (tx, rx) = outbox(16);
        let big = format!("42[\"{}\"]", "x".repeat(70_000));
        tx.send(EncodedPacket::raw("40{}".into()), false).unwrap();
        tx.send(EncodedPacket::raw(big.clone()), false).unwrap();
        let (writer, reader) = write_through_pipe(rx, 7);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tx.send(EncodedPacket::raw("42[\"after\"]".into()), false)
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let all = close_and_read(&tx, writer, reader).await;
        // 40{} (2+4 bytes), the big frame (10-byte header), the small one, the close.
        assert_eq!(&all[..6], [0x81, 4, b'4', b'0', b'{', b'}']);
        assert_eq!(all[6], 0x81);
        assert_eq!(all[7], 127);
        let payload = &all[16..16 + big.len()];
        assert_eq!(payload, big.as_bytes());
        let rest = &all[16 + big.len()..];
        assert_eq!(frames(rest)[0], (1, b"42[\"after\"]".to_vec()));
        assert_eq!(frames(rest)[1].0, 8);
    }
}
