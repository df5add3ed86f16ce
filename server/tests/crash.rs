//! Crash test: senders keep sending while the real `chat-server` process is killed with
//! SIGKILL at a random moment; it is restarted on the same SQLite file; each sender re-sends
//! what was not acknowledged with the same client message id (`cid`). Each sender keeps
//! several messages in flight (the server pipelines them), so a kill lands with messages in
//! the writer, committed and not. At the end every
//! acknowledged message is stored exactly once, in each sender's order, with the seq its ack
//! gave. Several rounds; the seed is printed (set `CRASH_SEED` to replay one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_protocol::socket_io::{Packet, PacketKind};
use common::{Client, Seen};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const SENDERS: usize = 4;
/// Messages a sender keeps unacknowledged.
const WINDOW: usize = 8;
const ROUNDS: usize = 4;
const ROOM: &str = "crash";

/// Starts the binary on `db` and returns it with the address it logged.
fn spawn_server(db: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        // No rate limit: the senders go as fast as their acks come back.
        .args([
            "--listen",
            "127.0.0.1:0",
            "--rate-per-sec",
            "0",
            "--store",
            "sqlite",
            "--data",
        ])
        .arg(db)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat-server");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on ").nth(1) {
                let _ = tx.send(addr.trim().parse::<SocketAddr>().expect("address"));
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server said where it listens");
    (child, addr)
}

/// One sender's state across rounds.
struct Sender {
    nick: String,
    /// Next message number to send.
    next: usize,
    /// Sent and not yet acknowledged, in send order (re-sent after a restart).
    unacked: VecDeque<usize>,
    /// cid -> seq from the ack.
    acked: Vec<(String, u64)>,
}

impl Sender {
    fn cid(&self, n: usize) -> String {
        format!("{}-{n}", self.nick)
    }
}

/// Re-sends what is unacknowledged, then keeps `WINDOW` messages in flight until the
/// connection drops or `deadline` (after which it only waits for the acks).
async fn run_sender(addr: SocketAddr, mut s: Sender, deadline: Instant) -> Sender {
    let mut c = Client::connect(addr).await;
    c.join_namespace("/", Some(json!({"nick": s.nick}))).await;
    let mut ack_id = 1000;
    let (_, _) = c.call("/", "join", vec![json!({"room": ROOM})]).await;
    let mut resend: VecDeque<usize> = s.unacked.clone();
    let mut in_flight: HashMap<u64, usize> = HashMap::new();
    loop {
        while in_flight.len() < WINDOW {
            let n = match resend.pop_front() {
                Some(n) => n,
                None if Instant::now() <= deadline => {
                    s.next += 1;
                    s.unacked.push_back(s.next);
                    s.next
                }
                None => break,
            };
            let cid = s.cid(n);
            ack_id += 1;
            let p = Packet::event(
                "/",
                "message",
                vec![json!({"room": ROOM, "text": cid, "cid": cid})],
                Some(ack_id),
            );
            if c.send_packet_checked(&p).await.is_err() {
                return s;
            }
            in_flight.insert(ack_id, n);
        }
        if in_flight.is_empty() {
            break;
        }
        match c.next().await {
            Seen::Close(_) => return s,
            Seen::Binary(_) => {}
            Seen::Text(t) => {
                let Some(p) = t.strip_prefix('4').and_then(|b| Packet::decode(b).ok()) else {
                    continue;
                };
                if p.kind != PacketKind::Ack {
                    continue;
                }
                let Some(n) = p.id.and_then(|id| in_flight.remove(&id)) else {
                    continue;
                };
                let cid = s.cid(n);
                let reply = &p.data.unwrap()[0];
                assert_eq!(reply["ok"], true, "{reply}");
                assert_eq!(reply["message"]["text"], cid);
                assert_eq!(
                    s.unacked.pop_front(),
                    Some(n),
                    "{}'s acks come in send order",
                    s.nick
                );
                s.acked
                    .push((cid, reply["message"]["seq"].as_u64().unwrap()));
            }
        }
    }
    c.close().await;
    s
}

/// Every message of the room, oldest first, through `history` pages.
async fn all_messages(addr: SocketAddr) -> Vec<Value> {
    let mut c = Client::connect(addr).await;
    c.join_namespace("/", Some(json!({"nick": "checker"})))
        .await;
    c.call("/", "join", vec![json!({"room": ROOM})]).await;
    let mut out: Vec<Value> = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut req = json!({"room": ROOM, "limit": 200});
        if let Some(b) = before {
            req["before"] = json!(b);
        }
        let page = c.request("/", "history", req).await;
        let msgs = page["messages"].as_array().unwrap().clone();
        if msgs.is_empty() {
            break;
        }
        before = msgs[0]["seq"].as_u64();
        out.splice(0..0, msgs);
        if before == Some(1) {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_exactly_once_in_order() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("crash test seed: {seed} (replay with CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut senders: Vec<Sender> = (0..SENDERS)
        .map(|i| Sender {
            nick: format!("s{i}"),
            next: 0,
            unacked: VecDeque::new(),
            acked: Vec::new(),
        })
        .collect();

    for round in 0..ROUNDS {
        let (mut child, addr) = spawn_server(&db);
        let kill_after = Duration::from_millis(rng.random_range(150..900));
        let deadline = Instant::now() + Duration::from_secs(5);
        let tasks: Vec<_> = senders
            .drain(..)
            .map(|s| tokio::spawn(run_sender(addr, s, deadline)))
            .collect();
        tokio::time::sleep(kill_after).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        for t in tasks {
            senders.push(t.await.expect("sender task"));
        }
        let acked: usize = senders.iter().map(|s| s.acked.len()).sum();
        println!(
            "round {round}: killed after {kill_after:?}; {acked} messages acknowledged so far"
        );
    }

    // A last clean run: re-send what is still unacknowledged, then check everything.
    let (mut child, addr) = spawn_server(&db);
    let deadline = Instant::now();
    let tasks: Vec<_> = senders
        .drain(..)
        .map(|s| tokio::spawn(run_sender(addr, s, deadline)))
        .collect();
    for t in tasks {
        senders.push(t.await.expect("sender task"));
    }
    let stored = all_messages(addr).await;
    child.kill().expect("stop");
    let _ = child.wait();

    let seqs: Vec<u64> = stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "seq has no gap"
    );
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut seq_of: HashMap<&str, u64> = HashMap::new();
    for m in &stored {
        let text = m["text"].as_str().unwrap();
        *count.entry(text).or_default() += 1;
        seq_of.insert(text, m["seq"].as_u64().unwrap());
    }
    let mut total = 0;
    for s in &senders {
        assert!(
            s.unacked.is_empty(),
            "{} still has unacknowledged messages",
            s.nick
        );
        let mut last = 0;
        for (cid, seq) in &s.acked {
            assert_eq!(
                count.get(cid.as_str()),
                Some(&1),
                "{cid} stored exactly once"
            );
            assert_eq!(seq_of[cid.as_str()], *seq, "{cid} has the seq its ack gave");
            assert!(*seq > last, "{}'s messages are in send order", s.nick);
            last = *seq;
        }
        total += s.acked.len();
    }
    assert_eq!(
        total,
        stored.len(),
        "nothing stored that was not acknowledged in the end"
    );
    println!("{total} acknowledged messages, each stored once, over {ROUNDS} SIGKILLs");
}
