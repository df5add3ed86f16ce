//! `bench-bare`: the ceiling of our stack on this machine, for `chat-bench`'s raw mode.
//!
//! A WebSocket server with no Socket.IO framing and no chat logic. A client's first text frame
//! names its room (`join:<room>`) and is answered `ok` once the connection is registered; every
//! later text frame is broadcast as-is to the room's other members (sender excluded).
//!
//! It uses the levers the chat server is meant to use, so the gap between the two is the cost
//! of Socket.IO and the chat: the frame is built once and its bytes shared by every receiver
//! (`Utf8Bytes` clones are reference counts); each connection has a bounded queue filled with
//! `try_send` (a full queue closes that connection, never stalls the room); the writer feeds
//! everything queued and flushes once; 4 KiB read buffers; TCP_NODELAY; the std lock over the
//! rooms is never held across an `.await`.
//!
//! Usage: `bench-bare [port] [write-buffer-bytes]` (defaults 3002 and 16384); loopback only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames queued per connection before it counts as a slow consumer and is closed.
const QUEUE: usize = 65_536;
/// Most frames fed before one flush.
const MAX_BATCH: usize = 256;

type Room = HashMap<u64, mpsc::Sender<Message>>;

/// Rooms by name. A std mutex: every section is short and none crosses an `.await`.
#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
}

impl Rooms {
    fn join(&self, room: &str, id: u64, tx: mpsc::Sender<Message>) {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.entry(room.to_owned()).or_default().insert(id, tx);
        }
    }

    fn leave(&self, room: &str, id: u64) {
        if let Ok(mut rooms) = self.rooms.lock()
            && let Some(members) = rooms.get_mut(room)
        {
            members.remove(&id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Queues `msg` for every member but `from`; returns the ids whose queue was full.
    fn broadcast(&self, room: &str, from: u64, msg: &Message) -> Vec<u64> {
        let mut full = Vec::new();
        if let Ok(rooms) = self.rooms.lock()
            && let Some(members) = rooms.get(room)
        {
            for (id, tx) in members {
                if *id != from && tx.try_send(msg.clone()).is_err() {
                    full.push(*id);
                }
            }
        }
        full
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(3002);
    let write_buffer: usize = args.next().and_then(|p| p.parse().ok()).unwrap_or(16_384);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let rooms = Arc::new(Rooms::default());
    let next_id = AtomicU64::new(1);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of file descriptors and the like: keep serving the others.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(stream, id, rooms.clone(), write_buffer));
    }
}

async fn serve(stream: TcpStream, id: u64, rooms: Arc<Rooms>, write_buffer: usize) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(write_buffer);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    // The writer: everything queued is fed, then one flush.
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            let mut n = 1;
            while n < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => {
                        if sink.feed(msg).await.is_err() {
                            return;
                        }
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut room: Option<String> = None;
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = &msg else {
            if msg.is_close() {
                break;
            }
            continue;
        };
        match &room {
            None => {
                let name = text.as_str().strip_prefix("join:").unwrap_or(text.as_str());
                rooms.join(name, id, tx.clone());
                room = Some(name.to_owned());
                if tx.try_send(Message::text("ok")).is_err() {
                    break;
                }
            }
            Some(name) => {
                // Slow consumers are left to their own writer: dropping their sender below
                // is not possible from here, so they are removed from the room instead.
                for slow in rooms.broadcast(name, id, &msg) {
                    rooms.leave(name, slow);
                }
            }
        }
    }
    if let Some(name) = &room {
        rooms.leave(name, id);
    }
    drop(tx);
    let _ = writer.await;
}
