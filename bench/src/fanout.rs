//! The fan-out scenario: R rooms of M members; P publishers (the first members of each room)
//! send at a fixed total rate for a fixed time; every other member of the room must receive
//! each message exactly once and in order.
//!
//! Each payload is `b|<publisher>|<seq>|<intended send time, µs>|xxx...` padded to the payload
//! size. The time is when the message was *due* (publisher start + seq × period), not when it
//! left, so a stalled publisher shows as latency instead of hiding it (no coordinated
//! omission). Every receiver keeps a bitset of the seqs it got per publisher: a second copy is
//! a duplicate, a seq below the highest seen is a reordering, and what is missing at the end
//! is a loss, so a loss and a duplicate can never cancel out.
//!
//! With a `window` the publishers do not keep a rate: each sends as fast as its acks come
//! back, with `window` messages unacknowledged at most (the single publisher at full speed of
//! `just bench`), and a message's due time is when it was sent.
//!
//! Lifecycle, each step bounded in time: connect and join every member (at most
//! `connect_concurrency` at once), wait for the server's CPU to settle (joins make the chat
//! server announce presence), publish for `duration`, drain until every expected delivery
//! arrived or `drain` ran out, then close everything. The server's RSS is read before the
//! first connection, once every member has joined and the server is idle, and every 100 ms
//! while publishing and draining (the peak), so memory per connection is known at rest and
//! while the room is busy.
//!
//! Several servers (the nodes of a cluster): member `m` of room `r` connects to node
//! `(r + m) % nodes.len()`, so every room's members are spread evenly over the nodes (and its
//! first member, a publisher, is on a different node for each room), and the same clients run
//! against one node or three. A receiver knows its node and its publisher's, so latency is
//! also kept apart for deliveries on the publisher's node and on another node: the difference
//! is what crossing nodes adds. With `redis`, the cluster's Redis is read before and after
//! ([`crate::redis_stats`]): commands, CPU and AOF bytes per message. The servers' CPU and
//! memory are the sums over `server_pids`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::conn::{self, Mode, Target, Transport};
use crate::procfs;
use crate::redis_stats::{self, RedisProbe, RedisWork};
use crate::ws::Msg;

/// The knobs of one fan-out run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// How to connect; its `addr` is replaced per connection by one of `nodes`.
    pub target: Target,
    /// The servers, at least one: member `m` of room `r` goes to `nodes[(r + m) % len]`.
    pub nodes: Vec<SocketAddr>,
    pub server: String,
    /// The servers' processes (every node's), for CPU and RSS summed over them; may be empty.
    pub server_pids: Vec<u32>,
    /// The cluster's Redis, read for commands and CPU per message (`None`: not read).
    pub redis: Option<SocketAddr>,
    pub rooms: usize,
    pub members: usize,
    /// Publishers in all; spread evenly over the rooms (at least one per room).
    pub publishers: usize,
    /// Messages per second, all publishers together (unused with a `window`).
    pub rate: f64,
    /// Publish as fast as acks allow, this many unacknowledged per publisher (`None`: at
    /// `rate`).
    pub window: Option<usize>,
    pub duration: Duration,
    pub drain: Duration,
    pub payload: usize,
    pub connect_concurrency: usize,
    /// Most time to wait for the server to go idle after the joins.
    pub settle: Duration,
    /// A step kept up when its backlog drained within this long after publishing ended
    /// (`None`: any drain within `drain` counts).
    pub keep_up: Option<Duration>,
}

/// The outcome of one run, one JSON line in the results file.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    pub scenario: &'static str,
    pub server: String,
    pub mode: Mode,
    pub transport: Transport,
    /// How many servers the members were spread over.
    pub nodes: usize,
    pub rooms: usize,
    pub members: usize,
    pub publishers: usize,
    pub rate: f64,
    /// Messages in flight per publisher, when publishing at full speed.
    pub window: Option<usize>,
    pub duration_s: f64,
    pub payload: usize,
    pub sent: u64,
    pub acks_ok: u64,
    pub acks_failed: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub unexpected: u64,
    pub connection_errors: u64,
    /// Joins sent twice because the first got no ack within 5 s (see `conn::JOIN_RETRY_AFTER`).
    pub join_retries: u64,
    pub deliveries_per_s: f64,
    pub delivered_ratio: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Deliveries to a receiver on its publisher's node and on another node, and the latency
    /// of each (0 when there were none); with one node every delivery is on the same node.
    pub delivered_same_node: u64,
    pub delivered_other_node: u64,
    pub p50_same_node_us: u64,
    pub p99_same_node_us: u64,
    pub p50_other_node_us: u64,
    pub p99_other_node_us: u64,
    /// What the messages cost the cluster's Redis, with `--redis`.
    pub redis: Option<RedisWork>,
    pub setup_s: f64,
    pub drain_s: f64,
    pub server_cpu_s: f64,
    pub generator_cpu_s: f64,
    pub server_cpu_s_per_million: f64,
    /// The kernel's part of `server_cpu_s` (system time), seconds.
    pub server_sys_s: f64,
    /// Server RSS before the first connection, with every member joined and the server idle,
    /// and the highest sample (every 100 ms) while publishing and draining, KiB; 0 unknown.
    pub rss_start_kib: u64,
    pub rss_joined_kib: u64,
    pub rss_peak_kib: u64,
    /// (joined - start) / connections and (peak - start) / connections, KiB.
    pub rss_per_connection_joined_kib: f64,
    pub rss_per_connection_peak_kib: f64,
    /// With `--transport polling`: the HTTP GETs and POSTs answered, and the TCP
    /// connections opened, while publishing and draining (all 0 over WebSocket).
    pub polling_gets: u64,
    pub polling_posts: u64,
    pub polling_connects: u64,
    /// True when every expected delivery arrived exactly once and nothing else did
    /// (order is `in_order`'s business).
    pub complete: bool,
    /// True when no receiver saw a publisher's seqs out of order.
    pub in_order: bool,
    /// True when the last delivery arrived within `keep_up` after publishing ended: the
    /// server kept pace instead of building a backlog. A clean ladder step needs both.
    pub kept_up: bool,
    pub command: String,
}

/// What a connection task is told.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Setup,
    Publish(Instant),
    Stop,
}

/// Counters every connection task adds to.
struct Shared {
    epoch: Instant,
    sent: AtomicU64,
    delivered: AtomicU64,
    /// Latencies of deliveries on the publisher's node ([`SAME_NODE`]) and on another one.
    hist: [Mutex<Histogram<u64>>; 2],
}

/// Index of the same-node histogram in [`Shared::hist`]; the other node's is `1`.
const SAME_NODE: usize = 0;

/// The node room `room`'s member `member` connects to: round-robin over the `nodes` within
/// the room, each room starting one node further (a room of every `nodes`-th connection would
/// otherwise sit on one node when the count of rooms is a multiple of the count of nodes).
fn node_of(room: usize, member: usize, nodes: usize) -> usize {
    (room + member) % nodes.max(1)
}

/// What one connection saw, returned by its task.
#[derive(Debug, Default)]
struct ConnStats {
    delivered: u64,
    duplicates: u64,
    reordered: u64,
    unexpected: u64,
    acks_ok: u64,
    acks_failed: u64,
    sent: u64,
    error: bool,
}

/// Per-publisher receive state of one member: which seqs arrived, and the highest.
#[derive(Debug, Default)]
struct Seen {
    bits: Vec<u64>,
    highest: Option<u64>,
}

impl Seen {
    /// Marks `seq`; returns (was a duplicate, arrived out of order).
    fn mark(&mut self, seq: u64) -> (bool, bool) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        let dup = self.bits[word] & (1 << bit) != 0;
        self.bits[word] |= 1 << bit;
        let reordered = !dup && self.highest.is_some_and(|h| seq < h);
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        (dup, reordered)
    }
}

/// The fields of a payload: (publisher, seq, due time in µs since the run's epoch).
pub fn parse_tag(text: &str) -> Option<(usize, u64, u64)> {
    // The tag's "b|": each '|' found with memchr (a one-byte search), then the byte before it
    // checked; `str::find("b|")` cost the generator a tenth of its time on Socket.IO frames,
    // where the tag sits after the JSON envelope.
    let bytes = text.as_bytes();
    let mut from = 0;
    let start = loop {
        let bar = from + text[from..].find('|')?;
        if bar > 0 && bytes[bar - 1] == b'b' {
            break bar + 1;
        }
        from = bar + 1;
    };
    let mut fields = text[start..].splitn(4, '|');
    let publisher = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let due = fields.next()?.parse().ok()?;
    Some((publisher, seq, due))
}

/// A payload of about `size` bytes for (publisher, seq) due at `due_us`.
pub fn make_payload(publisher: usize, seq: u64, due_us: u64, size: usize) -> String {
    let mut text = format!("b|{publisher}|{seq}|{due_us}|");
    while text.len() < size {
        text.push('x');
    }
    text
}

/// Runs one fan-out measurement.
pub async fn run(cfg: FanoutConfig) -> anyhow::Result<FanoutResult> {
    anyhow::ensure!(
        cfg.rooms >= 1 && cfg.members >= 2,
        "need rooms >= 1, members >= 2"
    );
    anyhow::ensure!(cfg.rate > 0.0, "rate must be > 0");
    anyhow::ensure!(
        cfg.window.is_none() || cfg.target.mode == Mode::Sio,
        "--window counts acks: Socket.IO mode only (the bare peer does not ack)"
    );
    anyhow::ensure!(cfg.window != Some(0), "--window must be >= 1");
    anyhow::ensure!(!cfg.nodes.is_empty(), "need at least one server address");
    let per_room = cfg.publishers.div_ceil(cfg.rooms).clamp(1, cfg.members);
    let publishers = per_room * cfg.rooms;
    let period = Duration::from_secs_f64(publishers as f64 / cfg.rate);
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() % 1_000_000_000)
        .unwrap_or(0);
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        sent: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        hist: [
            Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
            Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        ],
    });
    let cfg = Arc::new(cfg);
    let rss_start = procfs::rss_sum_kib(&cfg.server_pids);
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let (ready_tx, mut ready_rx) = mpsc::channel::<anyhow::Result<()>>(1024);
    let permits = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let setup_started = Instant::now();
    let total = cfg.rooms * cfg.members;
    for i in 0..total {
        let (room, member) = (i % cfg.rooms, i / cfg.rooms);
        let publisher = (member < per_room).then_some(room * per_room + member);
        let node = node_of(room, member, cfg.nodes.len());
        let task = Task {
            target: Target {
                addr: cfg.nodes[node],
                ..cfg.target.clone()
            },
            node,
            cfg: cfg.clone(),
            shared: shared.clone(),
            room,
            room_name: format!("bench-{run_id}-{room}"),
            nick: format!("b{run_id}r{room}m{member}"),
            src: cfg.target.src_for(i),
            publisher,
            per_room,
            publishers,
            period,
        };
        let (permits, ready, phase) = (permits.clone(), ready_tx.clone(), phase_rx.clone());
        tasks.spawn(async move { task.run(permits, ready, phase).await });
    }
    drop(ready_tx);
    // Every member connected and joined, or the run fails.
    let setup_deadline = Instant::now() + Duration::from_secs(120);
    for n in 0..total {
        let ready = tokio::time::timeout_at(setup_deadline.into(), ready_rx.recv())
            .await
            .map_err(|_| anyhow!("setup timed out after {n} of {total} members"))?
            .ok_or_else(|| anyhow!("setup ended after {n} of {total} members"))?;
        ready.with_context(|| format!("member {n} of {total}"))?;
    }
    settle(&cfg.server_pids, cfg.settle).await;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let rss_joined = procfs::rss_sum_kib(&cfg.server_pids);
    // Redis's idle rates (the nodes' pings and heartbeats), to take off the window's counts.
    let mut redis = match cfg.redis {
        Some(addr) => {
            let mut probe = RedisProbe::connect(addr).await?;
            probe.settle(cfg.nodes.len(), cfg.settle).await?;
            let idle0 = probe.snapshot().await?;
            tokio::time::sleep(REDIS_IDLE).await;
            let idle1 = probe.snapshot().await?;
            Some((probe, idle0, idle1))
        }
        None => None,
    };
    let redis_window0 = match &mut redis {
        Some((probe, ..)) => Some(probe.snapshot().await?),
        None => None,
    };
    let mut rss_peak = rss_joined;
    let mut rss_sampled = Instant::now();

    let server_cpu0 = procfs::cpu_sum(&cfg.server_pids);
    let server_sys0 = system_sum(&cfg.server_pids);
    let gen_cpu0 = procfs::self_cpu_seconds();
    let requests0 = crate::polling::requests();
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + cfg.duration;
    let _ = phase_tx.send(Phase::Publish(start));
    let sample_rss = |peak: &mut u64| {
        *peak = (*peak).max(procfs::rss_sum_kib(&cfg.server_pids));
    };
    while Instant::now() < end + period {
        tokio::time::sleep_until((Instant::now() + RSS_EVERY).min(end + period).into()).await;
        sample_rss(&mut rss_peak);
    }
    // Publishers stop at `end`; what they sent is final once they passed it.
    let drain_started = Instant::now();
    let drain_deadline = drain_started + cfg.drain;
    let receivers_per_msg = (cfg.members - 1) as u64;
    loop {
        let expected = shared.sent.load(Ordering::Relaxed) * receivers_per_msg;
        if shared.delivered.load(Ordering::Relaxed) >= expected || Instant::now() >= drain_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if rss_sampled.elapsed() >= RSS_EVERY {
            rss_sampled = Instant::now();
            sample_rss(&mut rss_peak);
        }
    }
    let drain_s = drain_started.elapsed().as_secs_f64();
    let server_cpu_s = procfs::cpu_sum(&cfg.server_pids) - server_cpu0;
    let server_sys_s = system_sum(&cfg.server_pids) - server_sys0;
    let redis_window1 = match &mut redis {
        Some((probe, ..)) => Some(probe.snapshot().await?),
        None => None,
    };
    let generator_cpu_s = procfs::self_cpu_seconds() - gen_cpu0;
    let requests = crate::polling::requests();
    let _ = phase_tx.send(Phase::Stop);

    let mut stats = ConnStats::default();
    let join_deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(joined)) =
        tokio::time::timeout_at(join_deadline.into(), tasks.join_next()).await
    {
        let s = joined.unwrap_or(ConnStats {
            error: true,
            ..ConnStats::default()
        });
        stats.delivered += s.delivered;
        stats.duplicates += s.duplicates;
        stats.reordered += s.reordered;
        stats.unexpected += s.unexpected;
        stats.acks_ok += s.acks_ok;
        stats.acks_failed += s.acks_failed;
        stats.sent += s.sent;
        stats.error |= s.error;
    }
    let connection_errors = tasks.len() as u64;
    tasks.abort_all();
    let expected = stats.sent * receivers_per_msg;
    let lock = |h: &Mutex<Histogram<u64>>| {
        h.lock()
            .map(|h| h.clone())
            .map_err(|_| anyhow!("histogram lock poisoned"))
    };
    let same = lock(&shared.hist[SAME_NODE])?;
    let other = lock(&shared.hist[1 - SAME_NODE])?;
    let mut hist = same.clone();
    hist.add(&other)?;
    let redis = match (&redis, &redis_window0, &redis_window1) {
        (Some((_, idle0, idle1)), Some(w0), Some(w1)) => {
            Some(redis_stats::work((idle0, idle1), (w0, w1), stats.sent))
        }
        _ => None,
    };
    let complete = stats.delivered == expected
        && stats.duplicates == 0
        && stats.unexpected == 0
        && stats.acks_failed == 0
        && connection_errors == 0
        && !stats.error;
    Ok(FanoutResult {
        scenario: "fanout",
        server: cfg.server.clone(),
        mode: cfg.target.mode,
        transport: cfg.target.transport,
        nodes: cfg.nodes.len(),
        rooms: cfg.rooms,
        members: cfg.members,
        publishers,
        rate: cfg.rate,
        window: cfg.window,
        duration_s: cfg.duration.as_secs_f64(),
        payload: cfg.payload,
        sent: stats.sent,
        acks_ok: stats.acks_ok,
        acks_failed: stats.acks_failed,
        expected,
        delivered: stats.delivered,
        lost: expected.saturating_sub(stats.delivered),
        duplicates: stats.duplicates,
        reordered: stats.reordered,
        unexpected: stats.unexpected,
        connection_errors,
        join_retries: conn::join_retries(),
        // Over the publishing time plus the drain: a backlog lowers the rate.
        deliveries_per_s: stats.delivered as f64 / (cfg.duration.as_secs_f64() + drain_s),
        delivered_ratio: if expected == 0 {
            0.0
        } else {
            stats.delivered as f64 / expected as f64
        },
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        delivered_same_node: same.len(),
        delivered_other_node: other.len(),
        p50_same_node_us: same.value_at_quantile(0.5),
        p99_same_node_us: same.value_at_quantile(0.99),
        p50_other_node_us: other.value_at_quantile(0.5),
        p99_other_node_us: other.value_at_quantile(0.99),
        redis,
        setup_s,
        drain_s,
        server_cpu_s,
        generator_cpu_s,
        server_cpu_s_per_million: if stats.delivered == 0 {
            0.0
        } else {
            server_cpu_s / stats.delivered as f64 * 1e6
        },
        polling_gets: requests.0 - requests0.0,
        polling_posts: requests.1 - requests0.1,
        polling_connects: requests.2 - requests0.2,
        server_sys_s,
        rss_start_kib: rss_start,
        rss_joined_kib: rss_joined,
        rss_peak_kib: rss_peak,
        rss_per_connection_joined_kib: per_connection(rss_start, rss_joined, total),
        rss_per_connection_peak_kib: per_connection(rss_start, rss_peak, total),
        complete,
        in_order: stats.reordered == 0,
        kept_up: complete
            && cfg
                .keep_up
                .is_none_or(|k| Duration::from_secs_f64(drain_s) <= k),
        command: crate::command_line(),
    })
}

/// How often the server's RSS is sampled while publishing and draining.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// How long Redis is watched with the nodes idle, for the rates taken off the window's counts.
const REDIS_IDLE: Duration = Duration::from_secs(2);

/// The system CPU seconds of the processes in `pids` together (0 for one that is unknown).
fn system_sum(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|&p| procfs::cpu_user_system(p))
        .map(|(_, system)| system)
        .sum()
}

/// `(after - before) / n`, 0 when a reading is missing.
fn per_connection(before: u64, after: u64, n: usize) -> f64 {
    if before == 0 || after == 0 || n == 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 / n as f64
}

/// Waits until the servers together used less than 5% of a core over 200 ms, or `limit`
/// passed (200 ms when no server is known).
pub async fn settle(pids: &[u32], limit: Duration) {
    if pids.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    }
    let deadline = Instant::now() + limit;
    let mut last = procfs::cpu_sum(pids);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = procfs::cpu_sum(pids);
        if now - last < 0.01 {
            return;
        }
        last = now;
    }
}

/// One member: connects, joins, reports ready, then receives (and publishes, when it is a
/// publisher) until told to stop.
struct Task {
    /// Where this member connects: its node's address.
    target: Target,
    /// Its node's index in `cfg.nodes`.
    node: usize,
    cfg: Arc<FanoutConfig>,
    shared: Arc<Shared>,
    room: usize,
    room_name: String,
    nick: String,
    src: std::net::IpAddr,
    publisher: Option<usize>,
    per_room: usize,
    publishers: usize,
    period: Duration,
}

/// Latencies buffered by a task before it takes the histogram lock.
const LATENCY_BATCH: usize = 128;

impl Task {
    async fn run(
        self,
        permits: Arc<Semaphore>,
        ready: mpsc::Sender<anyhow::Result<()>>,
        phase: watch::Receiver<Phase>,
    ) -> ConnStats {
        let mode = self.cfg.target.mode;
        let ws = {
            let _permit = permits.acquire().await;
            let joined = async {
                let mut ws = conn::connect(&self.target, self.src, &self.nick).await?;
                conn::join(&mut ws, mode, &self.room_name).await?;
                anyhow::Ok(ws)
            }
            .await;
            match joined {
                Ok(ws) => {
                    let _ = ready.send(Ok(())).await;
                    ws
                }
                Err(e) => {
                    let _ = ready.send(Err(e)).await;
                    return ConnStats {
                        error: true,
                        ..ConnStats::default()
                    };
                }
            }
        };
        drop(ready);
        self.serve(ws, phase).await
    }

    async fn serve(&self, mut ws: conn::Client, phase: watch::Receiver<Phase>) -> ConnStats {
        let mode = self.cfg.target.mode;
        let mut stats = ConnStats::default();
        let mut seen: Vec<Seen> = (0..self.publishers).map(|_| Seen::default()).collect();
        let mut latencies = Vec::with_capacity(LATENCY_BATCH);
        // Publishing state: the ticker (staggered per publisher), the first due time, the end.
        let mut ticker: Option<tokio::time::Interval> = None;
        let mut first_due = Instant::now();
        let mut end = Instant::now();
        let mut seq: u64 = 0;
        // Full speed (`window`): sending is open between the start and the end, and this many
        // messages await their ack.
        let window = self.cfg.window.filter(|_| self.publisher.is_some());
        let mut full_speed = false;
        let mut in_flight = 0usize;
        // The phase's next change, awaited by one future across frames (a fresh `changed()`
        // per frame registered and dropped a waiter each time).
        let mut next_phase = Box::pin(phase_change(phase));
        loop {
            tokio::select! {
                // In this order, without the random start: the phase, a due message, frames.
                biased;
                // The run moves on: start publishing, or stop.
                (phase, changed) = &mut next_phase => {
                    if !changed {
                        break;
                    }
                    let now_phase = *phase.borrow();
                    next_phase.set(phase_change(phase));
                    match now_phase {
                        Phase::Setup => {}
                        Phase::Publish(start) => {
                            end = start + self.cfg.duration;
                            if window.is_some() {
                                // One tick, at the start: it opens the window.
                                let mut t = tokio::time::interval_at(start.into(), Duration::from_secs(3600));
                                t.set_missed_tick_behavior(MissedTickBehavior::Skip);
                                ticker = Some(t);
                            } else if let Some(p) = self.publisher {
                                let offset = self.period.mul_f64(p as f64 / self.publishers as f64);
                                first_due = start + offset;
                                let mut t = tokio::time::interval_at(first_due.into(), self.period);
                                t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                                ticker = Some(t);
                            }
                        }
                        Phase::Stop => break,
                    }
                }
                // A publisher's tick: send the message that is due.
                _ = tick(&mut ticker), if ticker.is_some() => {
                    if window.is_some() {
                        ticker = None;
                        full_speed = true;
                        continue;
                    }
                    let due = first_due + self.period.mul_f64(seq as f64);
                    if due >= end {
                        ticker = None;
                        continue;
                    }
                    let due_us = due.duration_since(self.shared.epoch).as_micros() as u64;
                    let publisher = self.publisher.unwrap_or(0);
                    let text = make_payload(publisher, seq, due_us, self.cfg.payload);
                    let frame = conn::publish_frame(mode, &self.room_name, &text, seq + 100);
                    if ws.send_text(&frame).await.is_err() {
                        stats.error = true;
                        break;
                    }
                    seq += 1;
                    stats.sent += 1;
                    self.shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                // Full speed: the window has room.
                () = std::future::ready(()), if full_speed && in_flight < window.unwrap_or(0) => {
                    let now = Instant::now();
                    if now >= end {
                        full_speed = false;
                        continue;
                    }
                    let due_us = now.duration_since(self.shared.epoch).as_micros() as u64;
                    let text = make_payload(self.publisher.unwrap_or(0), seq, due_us, self.cfg.payload);
                    let frame = conn::publish_frame(mode, &self.room_name, &text, seq + 100);
                    if ws.send_text(&frame).await.is_err() {
                        stats.error = true;
                        break;
                    }
                    seq += 1;
                    in_flight += 1;
                    stats.sent += 1;
                    self.shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                // A frame from the server.
                msg = ws.next() => {
                    let text = match msg {
                        Ok(Some(Msg::Text(t))) => t,
                        Ok(Some(Msg::Close(_)) | None) | Err(_) => {
                            stats.error = true;
                            break;
                        }
                        Ok(Some(Msg::Binary(_))) => continue,
                    };
                    let text = text.as_str();
                    if conn::answer_ping(&mut ws, mode, text).await.unwrap_or(false) {
                        continue;
                    }
                    if mode == Mode::Sio {
                        if text.starts_with("43") {
                            in_flight = in_flight.saturating_sub(1);
                            if text.contains("\"ok\":false") {
                                stats.acks_failed += 1;
                            } else {
                                stats.acks_ok += 1;
                            }
                            continue;
                        }
                        // Other events (presence, room notices) are not part of the count.
                        if !text.starts_with("42") {
                            continue;
                        }
                    }
                    let Some((from, s, due_us)) = parse_tag(text) else {
                        // An event without a tag (presence, a room notice) is not counted.
                        if mode == Mode::Raw {
                            stats.unexpected += 1;
                        }
                        continue;
                    };
                    if from >= self.publishers || from / self.per_room != self.room || Some(from) == self.publisher {
                        stats.unexpected += 1;
                        continue;
                    }
                    let (dup, reordered) = seen[from].mark(s);
                    if dup {
                        stats.duplicates += 1;
                        continue;
                    }
                    stats.delivered += 1;
                    stats.reordered += u64::from(reordered);
                    self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                    let now_us = self.shared.epoch.elapsed().as_micros() as u64;
                    latencies.push((now_us.saturating_sub(due_us).max(1), self.is_other_node(from)));
                    if latencies.len() >= LATENCY_BATCH {
                        self.flush_latencies(&mut latencies);
                    }
                }
            }
        }
        self.flush_latencies(&mut latencies);
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close()).await;
        stats
    }

    /// Whether publisher `from` (of this member's room) is on another node than this member.
    fn is_other_node(&self, from: usize) -> bool {
        let (room, member) = (from / self.per_room, from % self.per_room);
        node_of(room, member, self.cfg.nodes.len()) != self.node
    }

    fn flush_latencies(&self, latencies: &mut Vec<(u64, bool)>) {
        let [same, other] = &self.shared.hist;
        if let (Ok(mut same), Ok(mut other)) = (same.lock(), other.lock()) {
            for (l, is_other) in latencies.drain(..) {
                if is_other {
                    other.saturating_record(l);
                } else {
                    same.saturating_record(l);
                }
            }
        }
    }
}

/// Waits for the phase to change; gives the receiver back, and false when the sender is gone.
async fn phase_change(mut phase: watch::Receiver<Phase>) -> (watch::Receiver<Phase>, bool) {
    let changed = phase.changed().await.is_ok();
    (phase, changed)
}

/// The next tick, or never when there is no ticker (its branch is disabled then anyway).
async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let p = make_payload(7, 42, 123_456, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(parse_tag(&p), Some((7, 42, 123_456)));
        let wrapped = format!(r#"42["message",{{"room":"r","text":"{p}"}}]"#);
        assert_eq!(parse_tag(&wrapped), Some((7, 42, 123_456)));
        let with_bars = format!(r#"42["message",{{"room":"a|b","from":"x|","text":"{p}"}}]"#);
        assert_eq!(parse_tag(&with_bars), Some((7, 42, 123_456)));
        assert_eq!(parse_tag(r#"42["presence",{"room":"a|b"}]"#), None);
        assert_eq!(parse_tag("|b|"), None);
    }

    #[test]
    fn duplicates_and_reordering_are_told_apart() {
        let mut seen = Seen::default();
        assert_eq!(seen.mark(0), (false, false));
        assert_eq!(seen.mark(2), (false, false));
        assert_eq!(seen.mark(1), (false, true));
        assert_eq!(seen.mark(2), (true, false));
        assert_eq!(seen.mark(200), (false, false));
    }

    #[test]
    fn members_of_every_room_spread_over_the_nodes() {
        // 2 rooms of 4 on 2 nodes: each room has two members on each node (a plain round-robin
        // over connections numbered room by room put each room on one node).
        let members = |room, nodes| (0..4).map(|m| node_of(room, m, nodes)).collect::<Vec<_>>();
        assert_eq!(members(0, 2), [0, 1, 0, 1]);
        assert_eq!(members(1, 2), [1, 0, 1, 0]);
        // 3 nodes: the rooms' first members (the publishers) on different nodes.
        assert_eq!(members(0, 3), [0, 1, 2, 0]);
        assert_eq!(members(1, 3), [1, 2, 0, 1]);
        assert_eq!(members(2, 3), [2, 0, 1, 2]);
        // One node: everyone on it.
        assert!((0..4).all(|r| members(r, 1) == [0, 0, 0, 0]));
    }
}
