//! Benchmark of acknowledged durable messages per second: the chat over its SQLite store
//! (WAL, synchronous FULL, group commit), driven by many concurrent senders, each sending a
//! `message` and waiting for its ack before the next (as a real client does; `--window N` lets
//! each keep up to N messages unacknowledged, as a bot or a bridge posting a burst does). By default every
//! sender has a room of its own, so the number measures the durable path, not fan-out (and
//! the store's worst case: no two messages of a batch share a room); `--rooms N` spreads the
//! senders over N rooms instead, and each message is then also delivered to its room.
//!
//! `cargo run --release -p chat-bench --example durable_bench -- --senders 256 --seconds 10`
//! prints acked messages/s, messages per commit, where the writer thread's time went, ack
//! latency percentiles, and the CPU per acked message of the server (its runtime and the store
//! writer) and of the senders (a runtime of their own), which share the machine's cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_bench::ws::{Msg, Ws};
use chat_protocol::socket_io::{Packet, PacketKind};
use chat_server::chat::sqlite::{IndexLimits, Retention, SqliteStore};
use chat_server::config::{ServerConfig, StoreConfig};
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Concurrent senders (one connection each).
    #[arg(long, default_value_t = 256)]
    senders: usize,
    /// Rooms the senders are spread over (sender i is in room i mod rooms). Default: one room
    /// per sender, the store's worst case (no two messages of a batch share a room's pages);
    /// fewer rooms share pages but every message is also delivered to its room's members.
    #[arg(long)]
    rooms: Option<usize>,
    /// Messages each sender may have sent and not yet seen acknowledged (1: send, wait for the
    /// ack, send the next).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    window: u32,
    /// How long to measure, after a one-second warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Index the log at this many unindexed messages (the store's default when absent).
    #[arg(long)]
    index_rows: Option<usize>,
    /// Index the log once the oldest unindexed message is this many milliseconds old.
    #[arg(long)]
    index_age_ms: Option<u64>,
    /// The database file (default: a fresh temporary file).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Every message's text (default: 100 ASCII digits). A text in another script measures
    /// what its indexing costs (the full-text index is given its words).
    #[arg(long)]
    text: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile_dir()?;
    let path = args.data.clone().unwrap_or_else(|| dir.join("bench.db"));
    let mut limits = IndexLimits::default();
    limits.rows = args.index_rows.unwrap_or(limits.rows);
    if let Some(ms) = args.index_age_ms {
        limits.age = Duration::from_millis(ms);
    }
    let store = Arc::new(SqliteStore::open_with(&path, Retention::default(), limits)?);
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        ..ServerConfig::default()
    };
    config.store = StoreConfig::Sqlite(path.clone());
    config.engine.max_connections = args.senders + 16;
    config.engine.max_connections_per_ip = args.senders + 16;
    let engine = chat_server::chat::build_with_store(&config, store.clone());
    let server = chat_server::serve_engine(engine, config.listen).await?;
    let addr = server.local_addr();

    let start = Instant::now();
    let warm = start + Duration::from_secs(1);
    let end = warm + Duration::from_secs(args.seconds);
    let rooms = args
        .rooms
        .unwrap_or(args.senders)
        .clamp(1, args.senders.max(1));
    // The senders run on a runtime of their own, so their CPU is told apart from the server's.
    let senders = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-sender")
        .enable_all()
        .build()?;
    let mut tasks = Vec::new();
    for i in 0..args.senders {
        let room = format!("bench-{}", i % rooms);
        let window = args.window as usize;
        let text = args.text.clone().unwrap_or_else(|| "0123456789".repeat(10));
        tasks.push(
            senders.spawn(async move { sender(i, room, text, addr, window, warm, end).await }),
        );
    }
    // CPU used during the measured window (warm-up excluded).
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(warm.into()).await;
        let first = cpu_ns();
        tokio::time::sleep_until(end.into()).await;
        let last = cpu_ns();
        last.since(&first)
    });
    let mut latencies = Vec::new();
    let mut acked = 0usize;
    for t in tasks {
        let (n, lat) = t.await??;
        acked += n;
        latencies.extend(lat);
    }
    let stats_end = store.stats();
    let cpu = cpu.await?;
    senders.shutdown_background();
    server.shutdown().await;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!("senders            {}", args.senders);
    println!("rooms              {rooms}");
    println!(
        "window             {} unacked message(s) per sender",
        args.window
    );
    println!("measured           {} s (after 1 s warm-up)", args.seconds);
    println!(
        "acked messages/s   {:.0}",
        acked as f64 / args.seconds as f64
    );
    println!(
        "messages/commit    {:.1} on average over the run ({} commits, largest batch {})",
        stats_end.appends as f64 / stats_end.commits.max(1) as f64,
        stats_end.commits,
        stats_end.largest_batch
    );
    println!(
        "writer time        statements {:.2?}, commits {:.2?}, replies+publish {:.2?} (whole run)",
        stats_end.write_time, stats_end.commit_time, stats_end.finish_time
    );
    println!(
        "indexing           {} passes of {:.0} messages on average, {:.2?} in all",
        stats_end.index_passes,
        stats_end.indexed as f64 / stats_end.index_passes.max(1) as f64,
        stats_end.index_time
    );
    println!(
        "ack latency        p50 {:?}  p99 {:?}  p99.9 {:?}",
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
    if cpu.all > 0 {
        let per = |ns: u64| ns as f64 / 1000.0 / acked.max(1) as f64;
        println!(
            "CPU per acked msg  {:.1} us in all: server {:.1} (of which the store writer {:.1}), senders {:.1}",
            per(cpu.all),
            per(cpu.all - cpu.senders),
            per(cpu.writer),
            per(cpu.senders)
        );
    }
    println!("database           {}", path.display());
    if args.data.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// CPU time (ns) of this process, of its `store-writer` thread and of the senders' threads.
#[derive(Default)]
struct Cpu {
    all: u64,
    writer: u64,
    senders: u64,
}

impl Cpu {
    fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            all: self.all - earlier.all,
            writer: self.writer - earlier.writer,
            senders: self.senders - earlier.senders,
        }
    }
}

/// CPU time so far, from Linux's per-thread schedstat (zeros elsewhere).
fn cpu_ns() -> Cpu {
    let mut cpu = Cpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        else {
            continue;
        };
        cpu.all += ns;
        match std::fs::read_to_string(path.join("comm")) {
            Ok(name) if name.trim() == "store-writer" => cpu.writer += ns,
            Ok(name) if name.starts_with("bench-sender") => cpu.senders += ns,
            _ => {}
        }
    }
    cpu
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("durable-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Reads until the ack with this id (answering pings on the way).
async fn wait_ack(ws: &mut Ws, id: u64) -> anyhow::Result<()> {
    let acked = next_ack(ws).await?;
    anyhow::ensure!(acked == id, "expected the ack of {id}, got {acked}");
    Ok(())
}

/// Reads until the next ack and returns its id (answering pings on the way).
async fn next_ack(ws: &mut Ws) -> anyhow::Result<u64> {
    loop {
        let msg = ws.next().await;
        if let Some(id) = ack_of(ws, msg)? {
            return Ok(id);
        }
    }
}

/// The next ack already received, if any: acks that came in one read are answered with one
/// write, as a client pipelining its messages would.
fn buffered_ack(ws: &mut Ws) -> anyhow::Result<Option<u64>> {
    loop {
        match ws.buffered()? {
            None => return Ok(None),
            msg => {
                if let Some(id) = ack_of(ws, Ok(msg))? {
                    return Ok(Some(id));
                }
            }
        }
    }
}

/// The id of an ok ack; `None` for anything else to skip (a ping is answered with the next
/// flush); an error for a refusal or the end of the connection.
fn ack_of(ws: &mut Ws, msg: anyhow::Result<Option<Msg>>) -> anyhow::Result<Option<u64>> {
    match msg {
        Ok(Some(Msg::Text(t))) if t == "2" => ws.queue_text("3"),
        Ok(Some(Msg::Text(t))) => {
            let packet = t.strip_prefix('4').and_then(|b| Packet::decode(b).ok());
            if let Some(Packet {
                kind: PacketKind::Ack,
                id: Some(id),
                data,
                ..
            }) = packet
            {
                // A refusal is not an acknowledged message.
                let ok = data.as_ref().and_then(|d| d.get(0)?.get("ok")?.as_bool());
                anyhow::ensure!(ok == Some(true), "ack {id} is not ok: {data:?}");
                return Ok(Some(id));
            }
        }
        Ok(Some(Msg::Binary(_))) => {}
        other => anyhow::bail!("connection ended: {other:?}"),
    }
    Ok(None)
}

/// One sender: connect, join its room, then keep `window` messages in flight (each ack lets
/// the next one go) until `end`. Returns how many acks arrived between `warm` and `end`, and
/// their latencies (ack arrival minus send).
async fn sender(
    i: usize,
    room: String,
    text: String,
    addr: std::net::SocketAddr,
    window: usize,
    warm: Instant,
    end: Instant,
) -> anyhow::Result<(usize, Vec<Duration>)> {
    // The load generator's own WebSocket client (chat-bench's), lighter than tungstenite's on
    // the cores it shares with the server.
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut ws = Ws::handshake(tcp, addr, "/socket.io/?EIO=4&transport=websocket").await?;
    ws.queue_text(&Packet::connect("/", Some(json!({"nick": format!("b{i}")}))).encode_frame());
    ws.queue_text(&Packet::event("/", "join", vec![json!({"room": room})], Some(0)).encode_frame());
    ws.flush().await?;
    wait_ack(&mut ws, 0).await?;
    // Every message carries a client id, as the terminal client's do (the store looks it up
    // to keep a re-sent message once).
    let cid_prefix = format!("{:x}-", (i as u64) << 32 | u64::from(std::process::id()));
    let frame = MessageFrame::new(&room, &text, &cid_prefix)?;
    let mut latencies = Vec::new();
    // Sent and not yet acked, oldest first: the server acks one connection's messages in order.
    let mut in_flight: std::collections::VecDeque<(u64, Instant)> = Default::default();
    let mut id = 0;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while in_flight.len() < window {
            id += 1;
            ws.queue_text(&frame.with_id(id));
            in_flight.push_back((id, Instant::now()));
        }
        ws.flush().await?;
        let mut acked = Some(next_ack(&mut ws).await?);
        let now = Instant::now();
        while let Some(id) = acked {
            let Some((first, sent)) = in_flight.pop_front() else {
                anyhow::bail!("ack {id} with nothing in flight");
            };
            anyhow::ensure!(first == id, "ack {id} arrived before the ack of {first}");
            if now >= warm && now < end {
                latencies.push(now - sent);
            }
            acked = buffered_ack(&mut ws)?;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close()).await;
    Ok((latencies.len(), latencies))
}

/// A sender's `message` event, written around its ack id without building a JSON value each
/// time; checked once against `chat-protocol`'s own encoding.
struct MessageFrame {
    /// `["message",{"cid":"<prefix>` and `","room":...,"text":...}]`, split where the id goes.
    head: String,
    tail: String,
}

impl MessageFrame {
    fn new(room: &str, text: &str, cid_prefix: &str) -> anyhow::Result<MessageFrame> {
        let frame = MessageFrame {
            // The prefix is hex digits and a dash: nothing to escape.
            head: format!(r#"["message",{{"cid":"{cid_prefix}"#),
            tail: format!(
                r#"","room":{},"text":{}}}]"#,
                serde_json::to_string(room)?,
                serde_json::to_string(text)?
            ),
        };
        let reference = Packet::event(
            "/",
            "message",
            vec![json!({"room": room, "text": text, "cid": format!("{cid_prefix}7")})],
            Some(7),
        );
        let ours = frame.with_id(7);
        let decoded = ours.strip_prefix('4').and_then(|p| Packet::decode(p).ok());
        anyhow::ensure!(
            decoded.as_ref() == Some(&reference),
            "message frame {ours:?} is not {reference:?}"
        );
        Ok(frame)
    }

    /// The Engine.IO frame of the event with ack id (and client id suffix) `id`.
    fn with_id(&self, id: u64) -> String {
        format!("42{id}{}{id}{}", self.head, self.tail)
    }
}
