//! The server's metrics, rendered in the Prometheus text format (0.0.4) for the admin
//! listener's `/metrics` (see [`crate::admin`]), through `prometheus-client`.
//!
//! What costs what on the hot path:
//! - the engine's counters ([`EngineStats`]) are relaxed atomics it adds to once per event
//!   (per broadcast, per connection, per refusal), read here only when scraped;
//! - the chat's counters ([`chat`]) are `prometheus-client` counters (an `Arc<AtomicU64>`)
//!   held in a process-wide static: one relaxed add per ack or received message, no lookup;
//!   the error acks by code take a read lock and a hash of the code, once per error ack;
//! - the store's histograms are observed once per committed batch by the writer thread;
//! - the gauges (connections, sockets, namespaces, rooms) are counted from the engine's own
//!   maps when scraped, not kept up to date on the way.
//!
//! No label names a user, a room or an address: every label has a fixed set of values.
//!
//! The chat and store counters are process-wide (one `chat-server` per process; tests that
//! start several servers in one process read them as differences). The engine's are the
//! engine's. `chat_store_up` says whether the store takes writes (in cluster mode, whether
//! Redis is reachable), read when scraped as `/readyz` reads it.

use std::fmt;
use std::sync::{Arc, LazyLock};

use chat_protocol::events::ErrorCode;

use crate::chat::ChatApp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::engine::{Engine, EngineStats};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The chat's own counters (process-wide).
#[derive(Debug)]
pub struct ChatCounters {
    /// `message` and `dm` events received.
    pub messages_received: Counter,
    acks_ok: Counter,
    acks_error: Counter,
    error_acks: Family<CodeLabel, Counter>,
}

/// The SQLite store's histograms (process-wide; the memory store has none).
#[derive(Debug)]
pub struct StoreMetrics {
    /// Seconds from the start of a batch's transaction to its commit (what each append in
    /// it waited for, once its batch began).
    pub append_seconds: Histogram,
    /// Appends per committed batch (group commit).
    pub batch_size: Histogram,
}

static CHAT: LazyLock<ChatCounters> = LazyLock::new(|| ChatCounters {
    messages_received: Counter::default(),
    acks_ok: Counter::default(),
    acks_error: Counter::default(),
    error_acks: Family::default(),
});

static STORE: LazyLock<StoreMetrics> = LazyLock::new(|| StoreMetrics {
    // 100 µs to about 6.5 s.
    append_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 17)),
    // 1 to 1024 (the writer's batches are at most 1024 commands).
    batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
});

/// The chat's counters.
pub fn chat() -> &'static ChatCounters {
    &CHAT
}

/// The store's histograms.
pub fn store() -> &'static StoreMetrics {
    &STORE
}

impl ChatCounters {
    /// An ack sent: `Ok`, or the error's code.
    pub fn ack(&self, outcome: Result<(), ErrorCode>) {
        match outcome {
            Ok(()) => {
                self.acks_ok.inc();
            }
            Err(code) => {
                self.acks_error.inc();
                self.error_acks.get_or_create(&CodeLabel(code)).inc();
            }
        }
    }
}

/// `code="..."`: an error code as it is on the wire (a fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CodeLabel(ErrorCode);

impl EncodeLabelSet for CodeLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        // Its serde name (`rate_limited`), made only when scraped.
        let code = serde_json::to_value(self.0)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        ("code", code.as_str()).encode(encoder.encode_label())
    }
}

/// One server's metrics: its registry (the engine's collector and the process-wide chat and
/// store metrics).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// The metrics of a server running `engine`.
    pub fn new(engine: Engine, app: Arc<ChatApp>) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(EngineCollector { engine }));
        registry.register_collector(Box::new(StoreCollector { app }));
        let chat = chat();
        registry.register(
            "chat_messages_received",
            "Chat messages (message and dm events) received from clients",
            chat.messages_received.clone(),
        );
        registry.register(
            "chat_acks_ok",
            "Acks that answered a request with its reply",
            chat.acks_ok.clone(),
        );
        registry.register(
            "chat_acks_error",
            "Acks that refused a request (see chat_error_acks_total by code)",
            chat.acks_error.clone(),
        );
        registry.register(
            "chat_error_acks",
            "Error acks by error code",
            chat.error_acks.clone(),
        );
        let store = store();
        registry.register_with_unit(
            "chat_store_append_duration",
            "SQLite store: time from a batch's start to its commit",
            Unit::Seconds,
            store.append_seconds.clone(),
        );
        registry.register(
            "chat_store_batch_size",
            "SQLite store: appends per committed batch",
            store.batch_size.clone(),
        );
        Metrics { registry }
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Whether the store takes writes (the SQLite writer alive; in cluster mode, Redis
/// reachable), read when scraped: the same answer `/readyz` gives.
struct StoreCollector {
    app: Arc<ChatApp>,
}

impl fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreCollector")
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        gauge(
            &mut encoder,
            "chat_store_up",
            "1 while the store takes writes (SQLite's writer alive; in cluster mode, Redis reachable), else 0",
            i64::from(self.app.store_available()),
        )
    }
}

/// The engine's state, read when scraped.
struct EngineCollector {
    engine: Engine,
}

impl fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EngineCollector")
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

/// A counter family with one label (`key`) over fixed values.
fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &str,
    values: impl Iterator<Item = (&'static str, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (label, n) in values {
        let labels = [(key, label)];
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let stats: &EngineStats = self.engine.stats();
        {
            let mut family = encoder.encode_descriptor(
                "chat_connections",
                "Open connections by transport (polling: sessions opened by long-polling, upgraded ones too)",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            let websocket = i64::try_from(stats.websocket_connections()).unwrap_or(i64::MAX);
            let polling = as_i64(self.engine.polling_sessions());
            for (transport, n) in [("websocket", websocket), ("polling", polling)] {
                ConstGauge::new(n).encode(family.encode_family(&[("transport", transport)])?)?;
            }
        }
        let namespaces = self.engine.namespaces();
        let sockets: usize = namespaces.iter().map(|ns| ns.sockets().len()).sum();
        // Chat rooms are the engine rooms named `#<room>` (the others are sockets' own).
        let rooms: usize = namespaces
            .iter()
            .map(|ns| {
                ns.adapter()
                    .rooms()
                    .iter()
                    .filter(|(name, _)| name.starts_with('#'))
                    .count()
            })
            .sum();
        gauge(
            &mut encoder,
            "chat_namespaces",
            "Namespaces that exist (declared ones, and dynamic ones with sockets)",
            as_i64(namespaces.len()),
        )?;
        gauge(
            &mut encoder,
            "chat_sockets",
            "Sockets (a connection's membership of one namespace)",
            as_i64(sockets),
        )?;
        gauge(
            &mut encoder,
            "chat_rooms",
            "Chat rooms with at least one member, over all namespaces",
            as_i64(rooms),
        )?;
        counter(
            &mut encoder,
            "chat_messages_delivered",
            "Packets queued to clients by broadcasts, one per recipient (chat messages and room events)",
            stats.messages_delivered(),
        )?;
        counter(
            &mut encoder,
            "chat_rate_limited_events",
            "Events and CONNECTs refused by the per-connection rate limit",
            stats.rate_limited_events(),
        )?;
        counters(
            &mut encoder,
            "chat_connections_refused",
            "Connections and namespace CONNECTs refused, by reason",
            "reason",
            stats.refusals(),
        )?;
        counters(
            &mut encoder,
            "chat_disconnects",
            "Ended sessions by reason (slow_consumer, flood, ping_timeout, shutdown, ...)",
            "reason",
            stats.disconnects(),
        )?;
        // Cluster mode's Redis reachability is `chat_store_up` (StoreCollector).
        Ok(())
    }
}
