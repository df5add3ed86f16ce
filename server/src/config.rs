//! Server configuration. Precedence, highest first: command-line flag, environment variable,
//! config file (TOML), default. `main.rs` parses flags and environment with clap and calls
//! [`ServerConfig::resolve`]; tests build a [`ServerConfig`] directly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::chat::sqlite::Retention;
use crate::engine::EngineConfig;

/// The rate limit's steady rate (events per second per connection) when the server is
/// configured through [`ServerConfig::resolve`] (the binary); the library default is off.
pub const DEFAULT_RATE_PER_SEC: u32 = 100;

/// A namespace declared in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    pub name: String,
    /// When set, a CONNECT must carry this as `key` in its auth payload.
    #[serde(default)]
    pub key: Option<String>,
    /// When true, a CONNECT must carry a signed token (`token`, HS256 with the server's
    /// `token_secret`) whose subject is the connection's nick.
    #[serde(default)]
    pub token: bool,
}

/// Where the chat keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Throw-away: lost when the server stops.
    Memory,
    /// The durable default: one SQLite file.
    Sqlite(PathBuf),
}

/// The default database file: `<data dir>/chat-server/chat.db` (e.g.
/// `~/.local/share/chat-server/chat.db`), or `./chat.db` where there is no data dir.
pub fn default_data_path() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("chat-server"))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("chat.db")
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub engine: EngineConfig,
    /// Declared namespaces (`/` always exists; declare it to give it a key).
    pub namespaces: Vec<NamespaceConfig>,
    /// Whether any other valid namespace name may be connected to (open, created on demand).
    pub dynamic_namespaces: bool,
    /// Messages returned in a `join` ack.
    pub join_history: usize,
    /// Messages kept per room by the in-memory store.
    pub room_capacity: usize,
    /// The store. The library default is memory (tests); the `chat-server` binary defaults
    /// to SQLite at [`default_data_path`].
    pub store: StoreConfig,
    /// Per-room retention for the SQLite store.
    pub retention: Retention,
    /// The HS256 secret for namespaces that require a token.
    pub token_secret: Option<String>,
    /// Most messages sent to a reconnecting client per room; older ones are skipped with a notice.
    pub catchup_limit: usize,
    /// Chat limits checked by the chat handlers (rooms per socket, name and text lengths).
    pub limits: ChatLimits,
    /// Serve `wss://` with this certificate chain and key (PEM files).
    pub tls: Option<TlsConfig>,
}

/// Limits the chat application checks (the engine's own are in [`EngineConfig`]). Each
/// length is in characters and may only lower the protocol's maximum (`chat_protocol::names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLimits {
    /// Chat rooms one socket may be in at once; a `join` beyond it: `too_many_rooms`.
    pub max_rooms_per_socket: usize,
    /// Longest room name (`invalid_name` beyond it).
    pub max_room_len: usize,
    /// Longest nick (`invalid_name` beyond it, or CONNECT_ERROR at connect).
    pub max_nick_len: usize,
    /// Longest message or DM text (`invalid_text` beyond it).
    pub max_text_len: usize,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_rooms_per_socket: 100,
            max_room_len: chat_protocol::names::ROOM_MAX,
            max_nick_len: chat_protocol::names::NICK_MAX,
            max_text_len: chat_protocol::names::TEXT_MAX,
        }
    }
}

impl ChatLimits {
    fn check(what: &str, value: &str, max: usize) -> Result<(), String> {
        if value.chars().count() > max {
            Err(format!("{what} is longer than {max} characters"))
        } else {
            Ok(())
        }
    }

    /// A room name within `max_room_len` (the name rules are checked separately).
    pub fn check_room(&self, room: &str) -> Result<(), String> {
        Self::check("room name", room, self.max_room_len)
    }

    /// A nick within `max_nick_len`.
    pub fn check_nick(&self, nick: &str) -> Result<(), String> {
        Self::check("nick", nick, self.max_nick_len)
    }

    /// A message text within `max_text_len`.
    pub fn check_text(&self, text: &str) -> Result<(), String> {
        Self::check("text", text, self.max_text_len)
    }
}

/// The PEM files for `wss://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            engine: EngineConfig::default(),
            namespaces: Vec::new(),
            dynamic_namespaces: true,
            join_history: 50,
            room_capacity: 1000,
            store: StoreConfig::Memory,
            retention: Retention::default(),
            token_secret: None,
            catchup_limit: 500,
            limits: ChatLimits::default(),
            tls: None,
        }
    }
}

/// The config file's shape. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub ping_interval_ms: Option<u64>,
    pub ping_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub max_payload: Option<usize>,
    pub outbox_capacity: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_frame_size: Option<usize>,
    pub max_namespaces: Option<usize>,
    pub max_namespace_len: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub rate_burst: Option<u32>,
    pub rate_per_sec: Option<u32>,
    pub flood_timeout_ms: Option<u64>,
    pub attachment_timeout_ms: Option<u64>,
    pub max_rooms_per_socket: Option<usize>,
    pub max_room_len: Option<usize>,
    pub max_nick_len: Option<usize>,
    pub max_text_len: Option<usize>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub dynamic_namespaces: Option<bool>,
    pub join_history: Option<usize>,
    pub room_capacity: Option<usize>,
    /// `"sqlite"` (default) or `"memory"`.
    pub store: Option<String>,
    /// The SQLite file.
    pub data: Option<PathBuf>,
    pub token_secret: Option<String>,
    pub catchup_limit: Option<usize>,
    #[serde(default)]
    pub retention: FileRetention,
    #[serde(default, rename = "namespace")]
    pub namespaces: Vec<NamespaceConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    pub max_messages: Option<u64>,
    pub max_age_secs: Option<u64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read(path.display().to_string(), e.to_string()))?;
        let file: FileConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse(path.display().to_string(), e.to_string()))?;
        for ns in &file.namespaces {
            chat_protocol::names::validate_namespace(&ns.name)
                .map_err(|e| ConfigError::Invalid(format!("namespace {:?}: {e}", ns.name)))?;
        }
        Ok(file)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(String, String),
    #[error("invalid config file {0}: {1}")]
    Parse(String, String),
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Values given as flags or environment variables (clap merges those two).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub ping_interval_ms: Option<u64>,
    pub ping_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub max_payload: Option<usize>,
    pub outbox_capacity: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_frame_size: Option<usize>,
    pub max_namespaces: Option<usize>,
    pub max_namespace_len: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub rate_burst: Option<u32>,
    pub rate_per_sec: Option<u32>,
    pub flood_timeout_ms: Option<u64>,
    pub attachment_timeout_ms: Option<u64>,
    pub max_rooms_per_socket: Option<usize>,
    pub max_room_len: Option<usize>,
    pub max_nick_len: Option<usize>,
    pub max_text_len: Option<usize>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub store: Option<String>,
    pub data: Option<PathBuf>,
    pub token_secret: Option<String>,
}

impl ServerConfig {
    /// Flag/env first, then the file, then the default.
    pub fn resolve(flags: Overrides, file: FileConfig) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let ms = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map(Duration::from_millis).unwrap_or(default)
        };
        let engine = EngineConfig {
            ping_interval: ms(
                flags.ping_interval_ms,
                file.ping_interval_ms,
                d.engine.ping_interval,
            ),
            ping_timeout: ms(
                flags.ping_timeout_ms,
                file.ping_timeout_ms,
                d.engine.ping_timeout,
            ),
            connect_timeout: ms(
                flags.connect_timeout_ms,
                file.connect_timeout_ms,
                d.engine.connect_timeout,
            ),
            handshake_timeout: ms(
                flags.handshake_timeout_ms,
                file.handshake_timeout_ms,
                d.engine.handshake_timeout,
            ),
            max_payload: flags
                .max_payload
                .or(file.max_payload)
                .unwrap_or(d.engine.max_payload),
            outbox_capacity: flags
                .outbox_capacity
                .or(file.outbox_capacity)
                .unwrap_or(d.engine.outbox_capacity),
            max_connections: flags
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.engine.max_connections),
            max_frame_size: flags
                .max_frame_size
                .or(file.max_frame_size)
                .unwrap_or(d.engine.max_frame_size),
            max_namespaces: flags
                .max_namespaces
                .or(file.max_namespaces)
                .unwrap_or(d.engine.max_namespaces),
            max_namespace_len: flags
                .max_namespace_len
                .or(file.max_namespace_len)
                .unwrap_or(d.engine.max_namespace_len),
            max_connections_per_ip: flags
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(d.engine.max_connections_per_ip),
            rate_burst: flags
                .rate_burst
                .or(file.rate_burst)
                .unwrap_or(d.engine.rate_burst),
            rate_per_sec: flags
                .rate_per_sec
                .or(file.rate_per_sec)
                .unwrap_or(DEFAULT_RATE_PER_SEC),
            flood_timeout: ms(
                flags.flood_timeout_ms,
                file.flood_timeout_ms,
                d.engine.flood_timeout,
            ),
            attachment_timeout: ms(
                flags.attachment_timeout_ms,
                file.attachment_timeout_ms,
                d.engine.attachment_timeout,
            ),
            max_attachments: d.engine.max_attachments,
        };
        if engine.ping_interval.is_zero()
            || engine.ping_timeout.is_zero()
            || engine.max_payload == 0
            || engine.outbox_capacity == 0
            || engine.max_connections == 0
            || engine.max_frame_size == 0
            || engine.max_namespaces == 0
            || engine.max_namespace_len == 0
            || engine.max_connections_per_ip == 0
            || engine.rate_burst == 0
            || engine.flood_timeout.is_zero()
            || engine.attachment_timeout.is_zero()
        {
            return Err(ConfigError::Invalid(
                "timings, sizes and counts must be positive (only rate_per_sec may be 0: no rate limit)".into(),
            ));
        }
        let limits = ChatLimits {
            max_rooms_per_socket: flags
                .max_rooms_per_socket
                .or(file.max_rooms_per_socket)
                .unwrap_or(d.limits.max_rooms_per_socket),
            max_room_len: flags
                .max_room_len
                .or(file.max_room_len)
                .unwrap_or(d.limits.max_room_len),
            max_nick_len: flags
                .max_nick_len
                .or(file.max_nick_len)
                .unwrap_or(d.limits.max_nick_len),
            max_text_len: flags
                .max_text_len
                .or(file.max_text_len)
                .unwrap_or(d.limits.max_text_len),
        };
        let within = |v: usize, max: usize| (1..=max).contains(&v);
        if limits.max_rooms_per_socket == 0
            || !within(limits.max_room_len, d.limits.max_room_len)
            || !within(limits.max_nick_len, d.limits.max_nick_len)
            || !within(limits.max_text_len, d.limits.max_text_len)
            || !within(engine.max_namespace_len, d.engine.max_namespace_len)
        {
            return Err(ConfigError::Invalid(format!(
                "max_rooms_per_socket must be positive; name and text lengths must be between 1 and the protocol's maximum (room {}, nick {}, namespace {}, text {})",
                d.limits.max_room_len,
                d.limits.max_nick_len,
                d.engine.max_namespace_len,
                d.limits.max_text_len
            )));
        }
        let tls = match (
            flags.tls_cert.or(file.tls_cert),
            flags.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_cert and tls_key must be given together".into(),
                ));
            }
        };
        let store = match flags.store.or(file.store).as_deref().unwrap_or("sqlite") {
            "memory" => StoreConfig::Memory,
            "sqlite" => {
                StoreConfig::Sqlite(flags.data.or(file.data).unwrap_or_else(default_data_path))
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "store must be \"sqlite\" or \"memory\", not {other:?}"
                )));
            }
        };
        let token_secret = flags
            .token_secret
            .or(file.token_secret)
            .filter(|s| !s.is_empty());
        if token_secret.is_none() && file.namespaces.iter().any(|n| n.token) {
            return Err(ConfigError::Invalid(
                "a namespace requires a token but no token_secret is set".into(),
            ));
        }
        Ok(ServerConfig {
            limits,
            tls,
            store,
            token_secret,
            retention: Retention {
                max_messages: file.retention.max_messages,
                max_age: file.retention.max_age_secs.map(Duration::from_secs),
            },
            catchup_limit: file.catchup_limit.unwrap_or(d.catchup_limit).max(1),
            listen: flags.listen.or(file.listen).unwrap_or(d.listen),
            engine,
            namespaces: file.namespaces,
            dynamic_namespaces: file.dynamic_namespaces.unwrap_or(d.dynamic_namespaces),
            join_history: file.join_history.unwrap_or(d.join_history),
            room_capacity: file.room_capacity.unwrap_or(d.room_capacity).max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let file: FileConfig = toml::from_str(
            "listen = \"0.0.0.0:9000\"\nping_interval_ms = 1000\nping_timeout_ms = 500\n[[namespace]]\nname = \"/ops\"\nkey = \"k\"\n",
        )
        .expect("valid toml");
        let flags = Overrides {
            ping_interval_ms: Some(2000),
            ..Default::default()
        };
        let c = ServerConfig::resolve(flags, file).expect("valid");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.engine.ping_interval, Duration::from_millis(2000));
        assert_eq!(c.engine.ping_timeout, Duration::from_millis(500));
        assert_eq!(c.engine.max_payload, 1_000_000);
        assert_eq!(
            c.namespaces,
            vec![NamespaceConfig {
                name: "/ops".into(),
                key: Some("k".into()),
                token: false,
            }]
        );
        assert_eq!(c.store, StoreConfig::Sqlite(default_data_path()));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
        let zero = Overrides {
            max_payload: Some(0),
            ..Default::default()
        };
        assert!(ServerConfig::resolve(zero, FileConfig::default()).is_err());
    }
}
