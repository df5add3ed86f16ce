//! `chat-bench`: parses the subcommand and its flags, runs it, prints the result as one JSON
//! line (and appends it to `--out`). See the library for what each scenario does.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chat_bench::conn::{Mode, Target, Transport};
use chat_bench::{churn, connections, fanout, report};
use clap::{Args, Parser, Subcommand};

/// Load generator for chat-server and its peers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the server is and how to reach it.
#[derive(Debug, Args)]
struct TargetArgs {
    /// The server's address (loopback). `fanout` takes several (repeated, or a comma list:
    /// the nodes of a cluster) and spreads its connections over them round-robin.
    #[arg(long, default_value = "127.0.0.1:7878", value_delimiter = ',')]
    addr: Vec<SocketAddr>,
    /// Socket.IO (`sio`) or bare WebSocket frames (`raw`, the bare peer).
    #[arg(long, value_enum, default_value = "sio")]
    mode: Mode,
    /// The Engine.IO transport of every client (`sio` mode): a WebSocket from the start, or
    /// HTTP long-polling only (no upgrade).
    #[arg(long, value_enum, default_value = "websocket")]
    transport: Transport,
    /// How many loopback source addresses (127.0.0.2, ...) to spread connections over.
    #[arg(long, default_value_t = 4)]
    src_addrs: u8,
    /// First source address index (127.0.0.(2 + base)).
    #[arg(long, default_value_t = 0)]
    src_base: u8,
    /// The server's name in the results.
    #[arg(long, default_value = "chat-server")]
    server: String,
    /// The server's process id, for its RSS and CPU from /proc; `fanout` takes one per node
    /// (repeated, or a comma list) and sums them.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Append the JSON result line to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        Target {
            addr: self.addr[0],
            mode: self.mode,
            transport: self.transport,
            src_addrs: self.src_addrs,
            src_base: self.src_base,
        }
    }

    /// The one server of a scenario that does not spread over nodes, and its process.
    fn single(&self, scenario: &str) -> anyhow::Result<(Target, Option<u32>)> {
        anyhow::ensure!(
            self.addr.len() == 1 && self.server_pid.len() <= 1,
            "{scenario} takes one --addr and at most one --server-pid"
        );
        Ok((self.target(), self.server_pid.first().copied()))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rooms of members, publishers at a fixed rate; deliveries, loss, order, latency.
    Fanout {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Publishers in all, spread over the rooms.
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        /// Messages per second, all publishers together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Publish at full speed instead of at `--rate`: each publisher keeps this many
        /// messages unacknowledged (e.g. 16).
        #[arg(long)]
        window: Option<usize>,
        #[arg(long, default_value_t = 5.0)]
        duration_secs: f64,
        /// Longest wait after publishing for the last deliveries.
        #[arg(long, default_value_t = 5.0)]
        drain_secs: f64,
        /// Payload bytes (the text field).
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Connections being set up at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Label stored with the result (`ladder`, `p99`, `smoke`).
        #[arg(long, default_value = "ladder")]
        tag: String,
        /// A step keeps up when its last delivery arrives within this long after publishing
        /// (the ladder uses 1); without it any arrival within `--drain-secs` counts.
        #[arg(long)]
        keep_up_secs: Option<f64>,
        /// Exit with status 3 unless every expected delivery arrived exactly once, in order
        /// (and within `--keep-up-secs` of the end of publishing, when given).
        #[arg(long)]
        strict: bool,
        /// With `--strict`: reordering alone does not fail the run (it is still reported).
        #[arg(long)]
        allow_reorder: bool,
        /// The cluster's Redis (`127.0.0.1:PORT`): its commands and CPU per message are read
        /// from `INFO commandstats` and /proc around the publishing, after 2 s of idle rates.
        #[arg(long)]
        redis: Option<SocketAddr>,
    },
    /// N idle connections held by worker processes; the server's RSS per connection.
    Connections {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Worker processes sharing the connections.
        #[arg(long, default_value_t = 2)]
        procs: usize,
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        /// Longest time to get all connections up.
        #[arg(long, default_value_t = 120)]
        setup_secs: u64,
        /// Exit with status 3 unless every connection was held.
        #[arg(long)]
        strict: bool,
    },
    /// Connect+disconnect cycles per second.
    Churn {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        duration_secs: f64,
        #[arg(long, default_value_t = 200_000)]
        max_cycles: u64,
    },
    /// (internal) A connections worker: holds its share until stdin closes.
    Hold {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, value_enum)]
        mode: Mode,
        #[arg(long, value_enum, default_value = "websocket")]
        transport: Transport,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        worker: usize,
        #[arg(long, default_value_t = 4)]
        src_addrs: u8,
        #[arg(long, default_value_t = 0)]
        src_base: u8,
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        #[arg(long, default_value_t = 300)]
        hold_secs: u64,
    },
    /// Writes the generated part of BENCHMARKS.md and the SVG chart from a results file.
    Report {
        #[arg(long)]
        results: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        doc: PathBuf,
        #[arg(long, default_value = "bench/latency.svg")]
        chart: PathBuf,
        /// The chart's path as linked from the document.
        #[arg(long, default_value = "bench/latency.svg")]
        chart_link: String,
        #[arg(long, default_value = "unknown")]
        commit: String,
        #[arg(long, default_value = "")]
        date: String,
    },
}

fn emit(out: Option<&PathBuf>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let line = serde_json::to_string(value)?;
    println!("{line}");
    if let Some(path) = out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Fanout {
            target,
            rooms,
            members,
            publishers,
            rate,
            window,
            duration_secs,
            drain_secs,
            payload,
            concurrency,
            tag,
            keep_up_secs,
            strict,
            allow_reorder,
            redis,
        } => {
            let result = fanout::run(fanout::FanoutConfig {
                target: target.target(),
                nodes: target.addr.clone(),
                server: target.server.clone(),
                server_pids: target.server_pid.clone(),
                redis,
                rooms,
                members,
                publishers,
                rate,
                window,
                duration: Duration::from_secs_f64(duration_secs),
                drain: Duration::from_secs_f64(drain_secs),
                payload,
                connect_concurrency: concurrency,
                settle: Duration::from_secs(20),
                keep_up: keep_up_secs.map(Duration::from_secs_f64),
            })
            .await?;
            let mut value = serde_json::to_value(&result)?;
            value["tag"] = tag.into();
            emit(target.out.as_ref(), &value)?;
            eprintln!(
                "{} ({:?}{}) rate {} msg/s: drain {:.2} s, {}/{} delivered ({:.3}%), lost {} dup {} reordered {} unexpected {}, {:.0} deliveries/s, p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms, server CPU {:.2} s ({:.2} per M deliveries), generator CPU {:.2} s, server RSS {} -> {} (joined) -> {} KiB (peak): {:.2} / {:.2} KiB per connection",
                result.server,
                result.transport,
                result
                    .window
                    .map(|w| format!(", {w} in flight"))
                    .unwrap_or_default(),
                result.rate,
                result.drain_s,
                result.delivered,
                result.expected,
                result.delivered_ratio * 100.0,
                result.lost,
                result.duplicates,
                result.reordered,
                result.unexpected,
                result.deliveries_per_s,
                result.p50_us as f64 / 1000.0,
                result.p99_us as f64 / 1000.0,
                result.p999_us as f64 / 1000.0,
                result.server_cpu_s,
                result.server_cpu_s_per_million,
                result.generator_cpu_s,
                result.rss_start_kib,
                result.rss_joined_kib,
                result.rss_peak_kib,
                result.rss_per_connection_joined_kib,
                result.rss_per_connection_peak_kib
            );
            if result.nodes > 1 {
                eprintln!(
                    "{} nodes: {} deliveries on the publisher's node p50 {:.2} ms p99 {:.2} ms, {} on another node p50 {:.2} ms p99 {:.2} ms",
                    result.nodes,
                    result.delivered_same_node,
                    result.p50_same_node_us as f64 / 1000.0,
                    result.p99_same_node_us as f64 / 1000.0,
                    result.delivered_other_node,
                    result.p50_other_node_us as f64 / 1000.0,
                    result.p99_other_node_us as f64 / 1000.0,
                );
            }
            if let Some(redis) = &result.redis {
                eprintln!(
                    "redis: {:.2} commands per message {:?}, {:.1} µs CPU per message ({:.1} idle commands/s)",
                    redis.commands_per_message,
                    redis.calls_per_message,
                    redis.cpu_us_per_message,
                    redis.idle_commands_per_s,
                );
            }
            if strict && !(result.complete && result.kept_up && (result.in_order || allow_reorder))
            {
                eprintln!("not clean: see lost, dup, reordered and drain above");
                std::process::exit(3);
            }
        }
        Command::Connections {
            target,
            count,
            procs,
            concurrency,
            setup_secs,
            strict,
        } => {
            let (one, server_pid) = target.single("connections")?;
            let result = connections::run(connections::ConnectionsConfig {
                target: one,
                server: target.server.clone(),
                server_pid,
                count,
                procs,
                connect_concurrency: concurrency,
                setup_limit: Duration::from_secs(setup_secs),
            })
            .await?;
            emit(target.out.as_ref(), &result)?;
            eprintln!(
                "{}: held {}/{} ({} failed), RSS {} -> {} KiB, {:.2} KiB per connection",
                result.server,
                result.held,
                result.requested,
                result.failed,
                result.rss_before_kib,
                result.rss_after_kib,
                result.rss_per_connection_kib
            );
            if strict && result.held as usize != result.requested {
                eprintln!("not every connection was held");
                std::process::exit(3);
            }
        }
        Command::Churn {
            target,
            concurrency,
            duration_secs,
            max_cycles,
        } => {
            let (one, server_pid) = target.single("churn")?;
            let result = churn::run(churn::ChurnConfig {
                target: one,
                server: target.server.clone(),
                server_pid,
                concurrency,
                duration: Duration::from_secs_f64(duration_secs),
                max_cycles,
            })
            .await?;
            emit(target.out.as_ref(), &result)?;
            eprintln!(
                "{}: {} cycles ({} failed), {:.0}/s",
                result.server, result.cycles, result.failures, result.cycles_per_s
            );
        }
        Command::Hold {
            addr,
            mode,
            transport,
            count,
            worker,
            src_addrs,
            src_base,
            concurrency,
            hold_secs,
        } => {
            let target = Target {
                addr,
                mode,
                transport,
                src_addrs,
                src_base,
            };
            connections::hold(
                target,
                worker,
                count,
                concurrency,
                Duration::from_secs(hold_secs),
            )
            .await?;
        }
        Command::Report {
            results,
            doc,
            chart,
            chart_link,
            commit,
            date,
        } => {
            let results = report::read_results(&results)?;
            let generated = report::render(&report::ReportInput {
                results: results.clone(),
                commit,
                date,
                chart_link,
            });
            let existing = std::fs::read_to_string(&doc).unwrap_or_default();
            std::fs::write(&doc, report::splice(&existing, &generated))
                .with_context(|| format!("write {}", doc.display()))?;
            std::fs::write(&chart, report::chart(&results))
                .with_context(|| format!("write {}", chart.display()))?;
            eprintln!("wrote {} and {}", doc.display(), chart.display());
        }
    }
    Ok(())
}
