//! Server configuration. Precedence, highest first: command-line flag, environment variable,
//! config file (TOML), default. `main.rs` parses flags and environment with clap and calls
//! [`ServerConfig::resolve`]; tests build a [`ServerConfig`] directly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::chat::sqlite::Retention;
use crate::engine::EngineConfig;

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
        };
        if engine.ping_interval.is_zero()
            || engine.ping_timeout.is_zero()
            || engine.max_payload == 0
            || engine.outbox_capacity == 0
            || engine.max_connections == 0
        {
            return Err(ConfigError::Invalid(
                "timings, max_payload, outbox_capacity and max_connections must be positive".into(),
            ));
        }
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
