//! What a cluster's Redis did for the chat messages of a run (`fanout --redis ADDR`): its
//! `INFO commandstats` (calls per command) and its process's CPU seconds from `/proc` (Redis
//! runs on this machine; `INFO server` names its `process_id`), read at the edges of an idle
//! window and of the publishing window, with the size of its append-only file (`INFO
//! persistence`, `aof_current_size`). The idle window's rates (the nodes' 0.5 s pings and
//! 2 s heartbeats) are taken off the publishing window's counts, so what is left is what the
//! messages cost: Redis commands in all and by command, Redis CPU and AOF bytes, per message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde::Serialize;

use crate::procfs;

/// Every read of Redis has this long at most.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the Redis under test, and its process id when it told.
pub struct RedisProbe {
    conn: redis::aio::MultiplexedConnection,
    pid: Option<u32>,
}

/// Redis's counters at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    /// Calls so far by command (`evalsha`, `client|setinfo`, ...), the probe's own `info` left out.
    pub calls: BTreeMap<String, u64>,
    /// The redis-server process's user + system CPU seconds so far (0 when unknown).
    pub cpu_s: f64,
    /// The append-only file's size, bytes (0 without AOF).
    pub aof_bytes: u64,
}

/// What the chat messages of one window cost Redis, net of the idle rate; one object in the
/// fan-out result.
#[derive(Debug, Clone, Serialize)]
pub struct RedisWork {
    /// Messages sent (by the publishers) in the window.
    pub messages: u64,
    /// The window: publishing and draining, seconds.
    pub window_s: f64,
    /// Commands in the window, less what the idle rate would have made in as long.
    pub commands: f64,
    pub commands_per_message: f64,
    /// The same by command (only the commands the messages caused: 0.01 per message or more).
    pub calls_per_message: BTreeMap<String, f64>,
    /// Commands per second while the nodes were idle (pings, heartbeats).
    pub idle_commands_per_s: f64,
    /// Redis CPU seconds in the window, less the idle rate's share.
    pub cpu_s: f64,
    pub cpu_us_per_message: f64,
    /// Redis's CPU while idle, cores (0.01 is 1% of one core).
    pub idle_cpu_cores: f64,
    /// Bytes the append-only file grew by per message, less the idle rate's (0 without AOF;
    /// a rewrite of the file in the window makes it meaningless, which a run this short does
    /// not reach).
    pub aof_bytes_per_message: f64,
}

impl RedisProbe {
    /// Connects to the Redis at `addr` and asks for its process id.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RedisProbe> {
        let client = redis::Client::open(format!("redis://{addr}/"))?;
        let mut conn =
            tokio::time::timeout(READ_TIMEOUT, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| anyhow!("connecting to Redis at {addr} timed out"))?
                .with_context(|| format!("connect to Redis at {addr}"))?;
        let server = info(&mut conn, "server").await?;
        Ok(RedisProbe {
            conn,
            pid: parse_process_id(&server),
        })
    }

    /// Waits until Redis runs at most 20 + 10 × `nodes` commands a second, measured over
    /// half a second, or `limit` passed. After the joins the nodes keep writing rooms'
    /// members to Redis for a while (one at a time, each waiting for its fsync), with their
    /// own CPU idle; an idle window taken then would hold that tail. An idle node runs about
    /// 6.5 a second (a ping every 0.5 s, its heartbeat and roster every 2 s).
    pub async fn settle(&mut self, nodes: usize, limit: Duration) -> anyhow::Result<()> {
        let quiet = (20 + 10 * nodes) as f64;
        let deadline = Instant::now() + limit;
        let mut last = self.snapshot().await?;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.snapshot().await?;
            let calls: u64 = calls_between(&last, &now).values().sum();
            if calls as f64 / now.at.duration_since(last.at).as_secs_f64() <= quiet {
                return Ok(());
            }
            last = now;
        }
        Ok(())
    }

    /// Redis's counters now.
    pub async fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        let text = info(&mut self.conn, "commandstats").await?;
        let persistence = info(&mut self.conn, "persistence").await?;
        Ok(Snapshot {
            at: Instant::now(),
            calls: parse_commandstats(&text),
            cpu_s: procfs::cpu_or_zero(self.pid),
            aof_bytes: parse_field(&persistence, "aof_current_size").unwrap_or(0),
        })
    }
}

/// `INFO <section>`, bounded in time.
async fn info(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
) -> anyhow::Result<String> {
    tokio::time::timeout(
        READ_TIMEOUT,
        redis::cmd("INFO").arg(section).query_async::<String>(conn),
    )
    .await
    .map_err(|_| anyhow!("INFO {section} timed out"))?
    .with_context(|| format!("INFO {section}"))
}

/// `process_id:<n>` from `INFO server`.
pub fn parse_process_id(text: &str) -> Option<u32> {
    parse_field(text, "process_id")
}

/// The number in the `<name>:<n>` line of an `INFO` answer.
fn parse_field<T: std::str::FromStr>(text: &str, name: &str) -> Option<T> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Calls by command from `INFO commandstats` (`cmdstat_<name>:calls=<n>,usec=...`), leaving
/// out `info` (the probe's own reads).
pub fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))?
                .parse()
                .ok()?;
            (name != "info").then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// The calls of each command between two snapshots.
fn calls_between(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, u64> {
    after
        .calls
        .iter()
        .map(|(name, &n)| {
            let was = before.calls.get(name).copied().unwrap_or(0);
            (name.clone(), n.saturating_sub(was))
        })
        .collect()
}

/// What `messages` cost Redis in the window `window.0..window.1`, net of the rates seen in
/// the idle window `idle.0..idle.1`.
pub fn work(
    idle: (&Snapshot, &Snapshot),
    window: (&Snapshot, &Snapshot),
    messages: u64,
) -> RedisWork {
    let idle_s = idle.1.at.duration_since(idle.0.at).as_secs_f64().max(1e-3);
    let window_s = window.1.at.duration_since(window.0.at).as_secs_f64();
    let idle_calls = calls_between(idle.0, idle.1);
    let per_message = |x: f64| {
        if messages == 0 {
            0.0
        } else {
            x / messages as f64
        }
    };
    let mut commands = 0.0;
    let mut calls_per_message = BTreeMap::new();
    for (name, n) in calls_between(window.0, window.1) {
        let idle_rate = idle_calls.get(&name).copied().unwrap_or(0) as f64 / idle_s;
        let net = (n as f64 - idle_rate * window_s).max(0.0);
        commands += net;
        if per_message(net) >= 0.01 {
            calls_per_message.insert(name, round3(per_message(net)));
        }
    }
    let idle_cpu_cores = (idle.1.cpu_s - idle.0.cpu_s).max(0.0) / idle_s;
    let cpu_s = (window.1.cpu_s - window.0.cpu_s - idle_cpu_cores * window_s).max(0.0);
    let growth = |a: &Snapshot, b: &Snapshot| b.aof_bytes.saturating_sub(a.aof_bytes) as f64;
    let aof_bytes =
        (growth(window.0, window.1) - growth(idle.0, idle.1) / idle_s * window_s).max(0.0);
    RedisWork {
        messages,
        window_s,
        commands,
        commands_per_message: per_message(commands),
        calls_per_message,
        idle_commands_per_s: idle_calls.values().sum::<u64>() as f64 / idle_s,
        cpu_s,
        cpu_us_per_message: per_message(cpu_s * 1e6),
        idle_cpu_cores,
        aof_bytes_per_message: per_message(aof_bytes),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "# Commandstats\r\n\
        cmdstat_evalsha:calls=120,usec=900,usec_per_call=7.50,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_ping:calls=40,usec=10,usec_per_call=0.25,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_client|setinfo:calls=2,usec=1,usec_per_call=0.5,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_info:calls=9,usec=90,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n";

    #[test]
    fn reads_commandstats_and_the_process_id() {
        let calls = parse_commandstats(STATS);
        assert_eq!(calls.get("evalsha"), Some(&120));
        assert_eq!(calls.get("ping"), Some(&40));
        assert_eq!(calls.get("client|setinfo"), Some(&2));
        assert_eq!(
            calls.get("info"),
            None,
            "the probe's own reads are left out"
        );
        assert_eq!(calls.len(), 3);
        assert_eq!(
            parse_process_id("# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n"),
            Some(4242)
        );
        assert_eq!(parse_process_id("# Server\r\n"), None);
        let persistence =
            "# Persistence\r\naof_enabled:1\r\naof_current_size:123456\r\naof_current_size_x:7\r\n";
        assert_eq!(
            parse_field::<u64>(persistence, "aof_current_size"),
            Some(123456)
        );
    }

    fn snapshot(at: Instant, cpu_s: f64, calls: &[(&str, u64)]) -> Snapshot {
        Snapshot {
            at,
            cpu_s,
            // The AOF: 50 bytes per ping (the idle rate's), 500 per evalsha (a message's).
            aof_bytes: calls_of(calls, "ping") * 50 + calls_of(calls, "evalsha") * 500,
            calls: calls.iter().map(|&(n, c)| (n.to_owned(), c)).collect(),
        }
    }

    fn calls_of(calls: &[(&str, u64)], name: &str) -> u64 {
        calls
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |&(_, c)| c)
    }

    #[test]
    fn the_idle_rate_is_taken_off_the_window() {
        let t = Instant::now();
        let s = Duration::from_secs;
        // Idle for 2 s: 4 pings (2/s), 0.1 s of CPU (0.05 cores).
        let idle0 = snapshot(t, 1.0, &[("ping", 10)]);
        let idle1 = snapshot(t + s(2), 1.1, &[("ping", 14)]);
        // Then 10 s with 100 messages: 100 evalsha, 3 zrangebyscore, 20 pings (the idle
        // rate), 0.5 + 0.3 s of CPU (0.5 of it the idle rate).
        let w0 = snapshot(t + s(3), 1.2, &[("ping", 16)]);
        let w1 = snapshot(
            t + s(13),
            2.0,
            &[("ping", 36), ("evalsha", 100), ("zrangebyscore", 3)],
        );
        let work = work((&idle0, &idle1), (&w0, &w1), 100);
        assert!((work.commands_per_message - 1.03).abs() < 1e-9, "{work:?}");
        assert_eq!(work.calls_per_message.get("evalsha"), Some(&1.0));
        assert_eq!(work.calls_per_message.get("zrangebyscore"), Some(&0.03));
        assert_eq!(work.calls_per_message.get("ping"), None);
        assert!((work.idle_commands_per_s - 2.0).abs() < 1e-9);
        assert!((work.idle_cpu_cores - 0.05).abs() < 1e-9);
        assert!((work.cpu_us_per_message - 3000.0).abs() < 1e-6, "{work:?}");
        assert_eq!(work.window_s, 10.0);
        assert!(
            (work.aof_bytes_per_message - 500.0).abs() < 1e-9,
            "{work:?}"
        );
    }

    #[test]
    fn no_messages_costs_nothing_per_message() {
        let t = Instant::now();
        let a = snapshot(t, 0.0, &[]);
        let b = snapshot(t + Duration::from_secs(1), 0.0, &[("ping", 2)]);
        let work = work((&a, &b), (&a, &b), 0);
        assert_eq!(work.commands_per_message, 0.0);
        assert_eq!(work.cpu_us_per_message, 0.0);
    }
}
