//! Password hashing cannot be turned against the server: 1,000 parallel wrong-password
//! CONNECTs for a registered nick, from 250 addresses, keep the real binary's peak memory
//! within its baseline plus the hashing pool's share, while two bystanders chat and lose
//! nothing, and the nick's owner logs in from a clean address (see `docs/PROTOCOL.md`,
//! "Passwords"). Its own test binary: the peak is read from the server process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_protocol::socket_io::{Packet, PacketKind};
use common::Client;
use common::bystanders::bystanders;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Argon2id's default memory per hash, 19 MiB.
const HASH_MEMORY: u64 = 19 * 1024 * 1024;
/// Hashing threads the server starts here: one per core, at most four.
fn pool_threads() -> u64 {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4) as u64
}

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("chat.db"))
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
    Server {
        child,
        addr,
        _dir: dir,
    }
}

/// A `/proc/<pid>/status` figure in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"));
    kib * 1024
}

/// The CONNECT answer's error code (`None` when the CONNECT was accepted).
fn refusal_code(p: &Packet) -> Option<String> {
    match p.kind {
        PacketKind::Connect => None,
        _ => Some(
            p.data
                .as_ref()
                .and_then(|d| d["data"]["code"].as_str())
                .unwrap_or("none")
                .to_owned(),
        ),
    }
}

/// Logs in as `nick` from `local`, retrying on `busy` with a growing delay as the terminal
/// client does; returns the number of tries it took.
async fn log_in(addr: SocketAddr, local: IpAddr, nick: &str, password: &str) -> usize {
    let mut delay = Duration::from_millis(100);
    for tries in 1..=30 {
        let mut c = Client::connect_from(addr, local).await;
        let p = c
            .connect_namespace("/", Some(json!({"nick": nick, "password": password})))
            .await;
        match refusal_code(&p).as_deref() {
            None => return tries,
            Some("busy") => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Some(other) => panic!("the owner was refused with {other}: {p:?}"),
        }
    }
    panic!("the owner could not log in in 30 tries");
}

/// One attacker: wrong passwords for `nick` from `local`, a CONNECT after each answer, until
/// `until`. Returns the answers' codes.
async fn attack(addr: SocketAddr, local: IpAddr, nick: String, until: Instant) -> Vec<String> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let Ok(stream) = socket.connect(addr).await else {
        return vec!["tcp".into()];
    };
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(common::url(addr), stream).await else {
        return vec!["upgrade".into()];
    };
    let mut codes = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let auth = json!({"nick": nick, "password": format!("guess-{n}")});
        let frame = Packet::connect("/", Some(auth)).encode_frame();
        if ws.send(Message::text(frame)).await.is_err() {
            codes.push("closed".into());
            break;
        }
        // The answer may take a delay of up to 30 s; the whole attack is bounded by `until`.
        let answer = loop {
            let left = until.saturating_duration_since(Instant::now()) + Duration::from_secs(35);
            match tokio::time::timeout(left, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "2" => {
                    let _ = ws.send(Message::text("3")).await;
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    if let Some(p) = t.strip_prefix('4').and_then(|b| Packet::decode(b).ok())
                        && matches!(p.kind, PacketKind::Connect | PacketKind::ConnectError)
                    {
                        break refusal_code(&p).unwrap_or_else(|| "accepted".into());
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break "closed".into(),
            }
        };
        let busy = answer == "busy";
        codes.push(answer);
        if codes
            .last()
            .is_some_and(|c| c == "closed" || c == "accepted")
        {
            break;
        }
        if busy {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_parallel_wrong_passwords_cost_a_bounded_pool_and_lock_nobody_out() {
    let server = spawn_server();
    let addr = server.addr;
    let owner_ip: IpAddr = [127, 0, 0, 2].into();
    // The owner registers "Owner" (from its own address), then leaves.
    assert_eq!(log_in(addr, owner_ip, "Owner", "correct horse").await, 1);
    let chat = bystanders(addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id();
    let baseline = status_bytes(pid, "VmRSS");

    // 1,000 attackers from 127.0.0.3 .. 127.0.0.252, four per address, for 6 s.
    let until = Instant::now() + Duration::from_secs(6);
    let attackers: Vec<_> = (0..1000u32)
        .map(|i| {
            let local = IpAddr::from([127, 0, 0, 3 + (i % 250) as u8]);
            tokio::spawn(attack(addr, local, "owner".into(), until))
        })
        .collect();
    // The owner logs in during the attack, from a clean address.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let tries = log_in(addr, owner_ip, "owner", "correct horse").await;
    let owner_took = started.elapsed();

    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for a in attackers {
        for code in a.await.unwrap() {
            *counts.entry(code).or_default() += 1;
        }
    }
    let peak = status_bytes(pid, "VmHWM");
    chat.finish().await;

    eprintln!(
        "baseline {} MiB, peak {} MiB, owner in after {tries} tries ({owner_took:?}), answers {counts:?}",
        baseline >> 20,
        peak >> 20
    );
    assert_eq!(
        counts.get("accepted"),
        None,
        "an attacker got in: {counts:?}"
    );
    assert!(
        counts.get("wrong_password").copied().unwrap_or(0) > 0,
        "{counts:?}"
    );
    assert!(counts.get("busy").copied().unwrap_or(0) > 0, "{counts:?}");
    let bound = baseline + pool_threads() * HASH_MEMORY + 32 * 1024 * 1024;
    assert!(
        peak < bound,
        "peak RSS {} MiB over the bound {} MiB",
        peak >> 20,
        bound >> 20
    );
    assert!(
        owner_took < Duration::from_secs(15),
        "the owner waited {owner_took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_delay_their_address_and_registrations_per_address_are_bounded() {
    let server = spawn_server();
    let addr = server.addr;
    let mallory: IpAddr = [127, 0, 0, 40].into();
    assert_eq!(
        log_in(addr, [127, 0, 0, 2].into(), "carol", "pw-carol").await,
        1
    );
    // Three failures in a row from one address: the third waits for the delay of two.
    let mut c = Client::connect_from(addr, mallory).await;
    let mut took = Vec::new();
    for n in 0..3 {
        let started = Instant::now();
        let p = c
            .connect_namespace(
                "/",
                Some(json!({"nick": "carol", "password": format!("x{n}")})),
            )
            .await;
        assert_eq!(refusal_code(&p).as_deref(), Some("wrong_password"));
        took.push(started.elapsed());
    }
    assert!(took[0] < Duration::from_millis(400), "{took:?}");
    assert!(took[2] >= Duration::from_millis(900), "{took:?}");
    // Carol herself is not delayed: her address has no failures.
    let started = Instant::now();
    assert_eq!(
        log_in(addr, [127, 0, 0, 2].into(), "carol", "pw-carol").await,
        1
    );
    assert!(started.elapsed() < Duration::from_millis(400));

    // Ten registrations from one address, then `rate_limited`; another address still can.
    let spammer: IpAddr = [127, 0, 0, 41].into();
    for i in 0..10 {
        assert_eq!(log_in(addr, spammer, &format!("spam{i}"), "pw").await, 1);
    }
    let mut c = Client::connect_from(addr, spammer).await;
    let p = c
        .connect_namespace("/", Some(json!({"nick": "spam10", "password": "pw"})))
        .await;
    assert_eq!(refusal_code(&p).as_deref(), Some("rate_limited"), "{p:?}");
    let data: &Value = p.data.as_ref().unwrap();
    assert!(data["message"].as_str().unwrap().contains("registered"));
    // A guest nick needs no hash and is not limited.
    let p = c
        .connect_namespace("/", Some(json!({"nick": "spam10"})))
        .await;
    assert_eq!(refusal_code(&p), None);
    assert_eq!(log_in(addr, [127, 0, 0, 42].into(), "fresh", "pw").await, 1);
}
