//! The connections scenario: N idle connections held open (Socket.IO: connected to `/` with a
//! nick, nothing joined; raw: joined to one room), and the server's resident memory read
//! before and after, giving RSS per connection.
//!
//! The connections are spread over `procs` worker processes (this same binary, run as
//! `chat-bench hold`), each on its own loopback source addresses: a process may have 20,000
//! open files here and a source address ~28,000 ephemeral ports. A worker prints
//! `READY <ok> <failed>` once its share is up, holds them (answering pings) until its stdin
//! closes or `hold` runs out, and exits.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::conn::{self, Mode, Target, Transport};
use crate::procfs;
use crate::ws::Msg;

/// The knobs of one connections run.
#[derive(Debug, Clone)]
pub struct ConnectionsConfig {
    pub target: Target,
    pub server: String,
    pub server_pid: Option<u32>,
    pub count: usize,
    pub procs: usize,
    pub connect_concurrency: usize,
    /// Longest time for the workers to connect their share.
    pub setup_limit: Duration,
}

/// The outcome, one JSON line in the results file.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsResult {
    pub scenario: &'static str,
    pub server: String,
    pub mode: Mode,
    pub requested: usize,
    pub held: u64,
    pub failed: u64,
    pub procs: usize,
    pub setup_s: f64,
    pub connects_per_s: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub rss_per_connection_kib: f64,
    pub server_cpu_s: f64,
    pub generator_cpu_s: f64,
    pub command: String,
}

/// Runs the workers, waits until they hold their connections, reads the server's memory.
pub async fn run(cfg: ConnectionsConfig) -> anyhow::Result<ConnectionsResult> {
    let pid = cfg.server_pid;
    crate::fanout::settle(pid.as_slice(), Duration::from_secs(5)).await;
    let rss_before = pid.and_then(procfs::rss_kib).unwrap_or(0);
    let server_cpu0 = procfs::cpu_or_zero(pid);
    let exe = std::env::current_exe()?;
    let procs = cfg.procs.max(1);
    let started = Instant::now();
    let mut children = Vec::new();
    for p in 0..procs {
        let share = cfg.count / procs + usize::from(p < cfg.count % procs);
        let mode = match cfg.target.mode {
            Mode::Sio => "sio",
            Mode::Raw => "raw",
        };
        let transport = match cfg.target.transport {
            Transport::Websocket => "websocket",
            Transport::Polling => "polling",
        };
        let mut child = Command::new(&exe)
            .arg("hold")
            .args(["--addr", &cfg.target.addr.to_string()])
            .args(["--mode", mode])
            .args(["--transport", transport])
            .args(["--count", &share.to_string()])
            .args(["--worker", &p.to_string()])
            .args(["--src-addrs", &cfg.target.src_addrs.to_string()])
            .args([
                "--src-base",
                &(p * usize::from(cfg.target.src_addrs)).to_string(),
            ])
            .args(["--concurrency", &cfg.connect_concurrency.to_string()])
            .args(["--hold-secs", &(cfg.setup_limit.as_secs() + 30).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start a hold worker")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no worker stdout"))?;
        children.push((child, BufReader::new(stdout)));
    }
    let (mut held, mut failed) = (0u64, 0u64);
    let deadline = started + cfg.setup_limit;
    for (_, out) in &mut children {
        let mut line = String::new();
        tokio::time::timeout_at(deadline.into(), out.read_line(&mut line))
            .await
            .map_err(|_| anyhow!("a worker was not ready within {:?}", cfg.setup_limit))??;
        let mut words = line.split_whitespace();
        anyhow::ensure!(words.next() == Some("READY"), "worker said {line:?}");
        held += words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        failed += words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    }
    let setup_s = started.elapsed().as_secs_f64();
    // Let the server finish what the connects started before reading its memory.
    crate::fanout::settle(pid.as_slice(), Duration::from_secs(5)).await;
    let rss_after = pid.and_then(procfs::rss_kib).unwrap_or(0);
    let server_cpu_s = procfs::cpu_or_zero(pid) - server_cpu0;
    let mut generator_cpu_s = procfs::self_cpu_seconds();
    // Closing stdin tells the workers to let go; then they exit.
    for (mut child, mut out) in children {
        drop(child.stdin.take());
        let mut rest = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), out.read_to_string(&mut rest)).await;
        if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            if !status.success() {
                eprintln!("a hold worker exited with {status}");
            }
        } else {
            let _ = child.kill().await;
        }
        if let Some(cpu) = rest.lines().find_map(|l| l.strip_prefix("CPU ")) {
            generator_cpu_s += cpu.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(ConnectionsResult {
        scenario: "connections",
        server: cfg.server.clone(),
        mode: cfg.target.mode,
        requested: cfg.count,
        held,
        failed,
        procs,
        setup_s,
        connects_per_s: held as f64 / setup_s.max(1e-9),
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_kib: if held == 0 {
            0.0
        } else {
            rss_after.saturating_sub(rss_before) as f64 / held as f64
        },
        server_cpu_s,
        generator_cpu_s,
        command: crate::command_line(),
    })
}

/// The worker side (`chat-bench hold`): connects `count` sockets, prints `READY ok failed`,
/// keeps them (answering pings) until stdin closes or `hold` passed, then prints `CPU <s>`.
pub async fn hold(
    target: Target,
    worker: usize,
    count: usize,
    concurrency: usize,
    hold: Duration,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let failed = Arc::new(AtomicU64::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(1024);
    let stop = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();
    let run_id = std::process::id();
    for i in 0..count {
        let (target, permits, ready, mut stop) = (
            target.clone(),
            permits.clone(),
            ready_tx.clone(),
            stop.1.clone(),
        );
        tasks.spawn(async move {
            let ws = {
                let _permit = permits.acquire().await;
                let nick = format!("h{run_id}w{worker}n{i}");
                let opened = async {
                    let mut ws = conn::connect(&target, target.src_for(i), &nick).await?;
                    if target.mode == Mode::Raw {
                        conn::join(&mut ws, Mode::Raw, "idle").await?;
                    }
                    anyhow::Ok(ws)
                }
                .await;
                let _ = ready.send(opened.is_ok()).await;
                match opened {
                    Ok(ws) => ws,
                    Err(_) => return,
                }
            };
            drop(ready);
            idle(ws, target.mode, &mut stop).await;
        });
    }
    drop(ready_tx);
    let mut ok = 0u64;
    let deadline = Instant::now() + hold;
    while let Ok(Some(up)) = tokio::time::timeout_at(deadline.into(), ready_rx.recv()).await {
        if up {
            ok += 1;
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    println!("READY {ok} {}", failed.load(Ordering::Relaxed));
    // Hold until the parent closes our stdin (or the time bound).
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout_at(deadline.into(), async {
        while let Ok(n) = stdin.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    let _ = stop.0.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    println!("CPU {}", procfs::self_cpu_seconds());
    Ok(())
}

/// Keeps an idle connection: answers pings, ignores everything else, closes on `stop`.
async fn idle(mut ws: conn::Client, mode: Mode, stop: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            msg = ws.next() => match msg {
                Ok(Some(Msg::Text(t))) => {
                    if conn::answer_ping(&mut ws, mode, &t).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Msg::Binary(_))) => {}
                Ok(Some(Msg::Close(_)) | None) | Err(_) => return,
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close()).await;
}
