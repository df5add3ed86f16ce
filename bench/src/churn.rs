//! The churn scenario: `concurrency` loops, each connecting (WebSocket, then Socket.IO CONNECT
//! with a nick, or the raw join) and closing again, for `duration` or until `max_cycles`
//! cycles in all. Reports completed connect+disconnect cycles per second. Loops spread over
//! the source addresses, because each closed connection leaves a port in TIME_WAIT.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::conn::{self, Mode, Target};
use crate::procfs;

/// The knobs of one churn run.
#[derive(Debug, Clone)]
pub struct ChurnConfig {
    pub target: Target,
    pub server: String,
    pub server_pid: Option<u32>,
    pub concurrency: usize,
    pub duration: Duration,
    pub max_cycles: u64,
}

/// The outcome, one JSON line in the results file.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnResult {
    pub scenario: &'static str,
    pub server: String,
    pub mode: Mode,
    pub concurrency: usize,
    pub duration_s: f64,
    pub cycles: u64,
    pub failures: u64,
    pub cycles_per_s: f64,
    pub server_cpu_s: f64,
    pub generator_cpu_s: f64,
    pub command: String,
}

/// Runs the churn loops.
pub async fn run(cfg: ChurnConfig) -> anyhow::Result<ChurnResult> {
    let cycles = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let server_cpu0 = procfs::cpu_or_zero(cfg.server_pid);
    let gen_cpu0 = procfs::self_cpu_seconds();
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..cfg.concurrency.max(1) {
        let (target, cycles, failures, next) = (
            cfg.target.clone(),
            cycles.clone(),
            failures.clone(),
            next.clone(),
        );
        let max = cfg.max_cycles;
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max {
                    break;
                }
                let nick = format!("c{}n{n}", std::process::id());
                let src = target.src_for(n as usize);
                let one =
                    tokio::time::timeout_at(deadline.into(), cycle(&target, src, &nick)).await;
                match one {
                    Ok(Ok(())) => cycles.fetch_add(1, Ordering::Relaxed),
                    Ok(Err(_)) => failures.fetch_add(1, Ordering::Relaxed),
                    // Cut off by the end of the run: neither a success nor a failure.
                    Err(_) => break,
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let cycles = cycles.load(Ordering::Relaxed);
    Ok(ChurnResult {
        scenario: "churn",
        server: cfg.server.clone(),
        mode: cfg.target.mode,
        concurrency: cfg.concurrency,
        duration_s: elapsed,
        cycles,
        failures: failures.load(Ordering::Relaxed),
        cycles_per_s: cycles as f64 / elapsed.max(1e-9),
        server_cpu_s: procfs::cpu_or_zero(cfg.server_pid) - server_cpu0,
        generator_cpu_s: procfs::self_cpu_seconds() - gen_cpu0,
        command: crate::command_line(),
    })
}

/// One connect and disconnect: a graceful WebSocket close, waiting for the server's answer.
async fn cycle(target: &Target, src: std::net::IpAddr, nick: &str) -> anyhow::Result<()> {
    let mut ws = conn::connect(target, src, nick).await?;
    if target.mode == Mode::Raw {
        conn::join(&mut ws, Mode::Raw, "churn").await?;
    }
    // Sends the close, then reads until the server's close frame or EOF, so the server did
    // its whole part.
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close()).await;
    Ok(())
}
