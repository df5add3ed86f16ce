//! Server configuration: [`ServerConfig`] (what [`crate::start`] takes; tests build one
//! directly) and its parts. [`settings`] declares every setting once and resolves them from
//! flags, environment variables and the config file (`main.rs` calls
//! [`ServerConfig::resolve`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::chat::sqlite::Retention;
use crate::engine::EngineConfig;

pub mod settings;

pub use settings::{FileConfig, Settings, command};

/// The rate limit's steady rate (events per second per connection) when the server is
/// configured through [`ServerConfig::resolve`] (the binary); the library default is off.
pub const DEFAULT_RATE_PER_SEC: u32 = 100;
/// The `chat-server` binary's room joins per second per connection (see
/// [`ChatLimits::joins_per_sec`]).
pub const DEFAULT_JOINS_PER_SEC: u32 = 2;

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
    /// Cluster mode: every node that shares this Redis is one chat (`chat::redis`).
    Redis(RedisConfig),
}

/// The Redis store's settings (`--store redis`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Where Redis is; its password never reaches a log line (see [`RedisUrl`]).
    pub url: RedisUrl,
    /// Messages kept per room (Redis memory is not a disk: a cap by default); 0 keeps all.
    pub max_messages: u64,
}

/// The default of [`RedisConfig::max_messages`].
pub const DEFAULT_REDIS_MAX_MESSAGES: u64 = 10_000;

/// A `redis://` or `rediss://` URL. Its `Display` and `Debug` hide the password
/// (`redis://:***@host:6379`), so printing one can never log it; [`RedisUrl::secret`] is the
/// whole URL, for connecting only.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub(crate) String);

impl RedisUrl {
    /// Checks the scheme and keeps the URL.
    pub fn parse(url: &str) -> Result<RedisUrl, String> {
        let url = url.trim();
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!(
                "{} is not a redis:// or rediss:// URL",
                RedisUrl(url.to_owned())
            ));
        }
        Ok(RedisUrl(url.to_owned()))
    }

    /// The URL with its password, to connect with. Never print it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "***".into();
        };
        // The authority ends at the first '/', '?' or '#'; its user info at the last '@'.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let shown_tail = hide_query_password(tail);
        match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split_once(':').map_or("", |(u, _)| u);
                let hidden = if user_info.contains(':') {
                    format!("{user}:***")
                } else {
                    // `redis://password@host` is read as a password by some clients.
                    "***".to_owned()
                };
                format!("{scheme}://{hidden}@{host}{shown_tail}")
            }
            None => format!("{scheme}://{authority}{shown_tail}"),
        }
    }
}

/// `?password=x` (a form some clients read) shown as `?password=***`.
fn hide_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") =>
            {
                format!("{k}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
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
    /// Serve the web chat page at `/` (see [`crate::web`]).
    pub web: bool,
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
    /// How the `chat-server` binary writes its log lines (`main.rs` installs the subscriber;
    /// [`crate::start`] does not read it).
    pub log_format: LogFormat,
    /// Server admins: registered nicks (connected with their password) who may moderate
    /// every room, claim rooms without operators, delete messages and unregister nicks.
    pub admins: Vec<String>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`, the admin API; see
    /// [`crate::admin`]): off unless set, never the same address as `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// The admin API's bearer token; without one the API is off (the health and metrics
    /// paths are served all the same). At least [`MIN_ADMIN_TOKEN`] bytes.
    pub admin_token: Option<String>,
    /// On SIGTERM, how long the binary keeps serving with `/readyz` false (for a load
    /// balancer to notice) before it closes every connection with 1001.
    pub drain_delay: std::time::Duration,
}

/// The shortest admin token accepted (bytes): a token is a password nobody types.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// The shape of the binary's log lines on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00Z  INFO chat_server: listening on ...`, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, `target`), for a
    /// log collector.
    Json,
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
    /// Room joins (`join`, and each room of a CONNECT's `since`) per second per connection
    /// once its burst (`max_rooms_per_socket` at once) is spent; beyond: `rate_limited`.
    /// 0: no budget (the library's default, like the rate limit; the binary's is
    /// [`DEFAULT_JOINS_PER_SEC`]).
    pub joins_per_sec: u32,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_rooms_per_socket: 100,
            max_room_len: chat_protocol::names::ROOM_MAX,
            max_nick_len: chat_protocol::names::NICK_MAX,
            max_text_len: chat_protocol::names::TEXT_MAX,
            joins_per_sec: 0,
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
            web: true,
            join_history: 50,
            room_capacity: 1000,
            store: StoreConfig::Memory,
            retention: Retention::default(),
            token_secret: None,
            catchup_limit: 500,
            limits: ChatLimits::default(),
            tls: None,
            log_format: LogFormat::Text,
            admins: Vec::new(),
            admin_listen: None,
            admin_token: None,
            drain_delay: std::time::Duration::from_millis(5000),
        }
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

/// The checks on single values: timings, sizes and counts positive (only `rate_per_sec` may
/// be 0), name and text lengths within the protocol's maxima.
fn check_limits(config: &ServerConfig) -> Result<(), ConfigError> {
    let d = ServerConfig::default();
    let engine = &config.engine;
    if engine.ping_interval.is_zero()
        || engine.ping_timeout.is_zero()
        || engine.max_payload == 0
        || engine.outbox_capacity == 0
        || engine.outbox_bytes == 0
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
    let limits = &config.limits;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn resolve(flags: &[&str], file: &str) -> Result<ServerConfig, ConfigError> {
        let mut argv = vec!["chat-server"];
        argv.extend_from_slice(flags);
        let matches = command().try_get_matches_from(argv).expect("valid flags");
        let file = FileConfig::parse(file).expect("valid file");
        ServerConfig::resolve(Settings::new(&matches, file))
    }

    #[test]
    fn flags_beat_file_beat_defaults() {
        let c = resolve(
            &["--ping-interval-ms", "2000"],
            "listen = \"0.0.0.0:9000\"\nping_interval_ms = 1000\nping_timeout_ms = 500\n[[namespace]]\nname = \"/ops\"\nkey = \"k\"\n",
        )
        .expect("valid");
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
        assert_eq!(c.engine.rate_per_sec, DEFAULT_RATE_PER_SEC);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(FileConfig::parse("lisen = \"x\"").is_err());
        assert!(FileConfig::parse("[sqlite]\npth = \"x\"").is_err());
        assert!(resolve(&["--max-payload", "0"], "").is_err());
        assert!(resolve(&["--store", "paper"], "").is_err());
        assert!(resolve(&["--ping-interval-ms", "soon"], "").is_err());
    }

    #[test]
    fn settings_once_file_only_before_are_reachable_by_flag() {
        let c = resolve(
            &[
                "--join-history",
                "7",
                "--catchup-limit",
                "9",
                "--memory-room-capacity",
                "11",
                "--dynamic-namespaces",
                "false",
                "--sqlite-max-messages",
                "100",
                "--sqlite-max-age-secs",
                "60",
            ],
            "",
        )
        .expect("valid");
        assert_eq!(c.join_history, 7);
        assert_eq!(c.catchup_limit, 9);
        assert_eq!(c.room_capacity, 11);
        assert!(!c.dynamic_namespaces);
        assert_eq!(c.retention.max_messages, Some(100));
        assert_eq!(c.retention.max_age, Some(Duration::from_secs(60)));
    }

    #[test]
    fn old_names_keep_working_and_new_ones_win() {
        let c = resolve(
            &["--data", "/tmp/old.db"],
            "room_capacity = 5\n[retention]\nmax_messages = 3\nmax_age_secs = 4\n",
        )
        .expect("valid");
        assert_eq!(c.store, StoreConfig::Sqlite("/tmp/old.db".into()));
        assert_eq!(c.room_capacity, 5);
        assert_eq!(c.retention.max_messages, Some(3));
        assert_eq!(c.retention.max_age, Some(Duration::from_secs(4)));
        let c = resolve(
            &["--data", "/tmp/old.db", "--sqlite-path", "/tmp/new.db"],
            "data = \"/tmp/f-old.db\"\n[sqlite]\npath = \"/tmp/f-new.db\"\n[memory]\nroom_capacity = 6\n",
        )
        .expect("valid");
        assert_eq!(c.store, StoreConfig::Sqlite("/tmp/new.db".into()));
        assert_eq!(c.room_capacity, 6);
        let c = resolve(
            &[],
            "data = \"/tmp/f-old.db\"\n[sqlite]\npath = \"/tmp/f-new.db\"\n",
        )
        .expect("valid");
        assert_eq!(c.store, StoreConfig::Sqlite("/tmp/f-new.db".into()));
    }

    #[test]
    fn secrets_come_from_a_file_and_the_old_flag_is_hidden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").expect("write");
        let flag = path.display().to_string();
        let c = resolve(&["--token-secret-file", &flag], "").expect("valid");
        assert_eq!(c.token_secret.as_deref(), Some("s3cret"));
        let c = resolve(&["--token-secret", "legacy"], "").expect("still read");
        assert_eq!(c.token_secret.as_deref(), Some("legacy"));
        let help = command().render_help().to_string();
        assert!(!help.contains("--token-secret "), "{help}");
        assert!(help.contains("--token-secret-file"), "{help}");
    }

    #[test]
    fn the_log_format_is_text_json_or_an_error() {
        assert_eq!(resolve(&[], "").expect("valid").log_format, LogFormat::Text);
        let c = resolve(&["--log-format", "json"], "").expect("valid");
        assert_eq!(c.log_format, LogFormat::Json);
        let c = resolve(&[], "log_format = \"json\"").expect("valid");
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(resolve(&["--log-format", "xml"], "").is_err());
    }

    #[test]
    fn admins_are_a_list_of_valid_nicks_from_a_flag_or_the_file() {
        assert!(resolve(&[], "").expect("valid").admins.is_empty());
        let c = resolve(&[], "admins = [\"root\", \"Ada\"]").expect("valid");
        assert_eq!(c.admins, ["root", "Ada"]);
        let c = resolve(&["--admins", "root, ada"], "admins = [\"x\"]").expect("valid");
        assert_eq!(c.admins, ["root", "ada"], "the flag wins");
        assert!(resolve(&["--admins", "2pac"], "").is_err(), "not a nick");
        assert!(resolve(&[], "admins = [\"a b\"]").is_err());
    }

    #[test]
    fn cors_origins_are_a_list_or_any_from_a_flag_or_the_file() {
        use crate::engine::CorsOrigins;
        let c = resolve(&[], "").expect("valid");
        assert_eq!(c.engine.cors_origins, CorsOrigins::SameOrigin);
        assert!(!c.engine.check_ws_origin);
        let list = CorsOrigins::List(vec!["https://a.example".into(), "https://b.example".into()]);
        let c = resolve(
            &[
                "--cors-origins",
                "https://a.example, https://b.example",
                "--check-ws-origin",
                "true",
            ],
            "",
        )
        .expect("valid");
        assert_eq!(c.engine.cors_origins, list);
        assert!(c.engine.check_ws_origin);
        let c = resolve(
            &[],
            "cors_origins = [\"https://a.example\", \"https://b.example\"]",
        )
        .expect("valid");
        assert_eq!(c.engine.cors_origins, list);
        let c = resolve(&[], "cors_origins = \"*\"").expect("valid");
        assert_eq!(c.engine.cors_origins, CorsOrigins::Any);
        let c = resolve(&["--cors-origins", ""], "cors_origins = \"*\"").expect("valid");
        assert_eq!(c.engine.cors_origins, CorsOrigins::SameOrigin);
        assert!(resolve(&["--cors-origins", "https://a.example/"], "").is_err());
        assert!(resolve(&["--cors-origins", "*,https://a.example"], "").is_err());
        // An array only for a list; its items are strings without commas.
        assert!(FileConfig::parse("listen = [\"127.0.0.1:1\"]").is_err());
        assert!(FileConfig::parse("cors_origins = [1]").is_err());
        assert!(FileConfig::parse("cors_origins = [\"https://a.example,*\"]").is_err());
    }

    #[test]
    fn help_shows_every_setting_with_its_default_and_key() {
        let help = command().render_long_help().to_string();
        for s in settings::SETTINGS.iter().filter(|s| !s.secret) {
            let flag = format!("--{}", settings::flag_name(s.key));
            assert!(help.contains(&flag), "{flag} missing:\n{help}");
            assert!(help.contains(&format!("[config: {}]", s.key)), "{}", s.key);
            assert!(help.contains(&settings::env_name(s.key)), "{}", s.key);
        }
        assert!(help.contains("[default: 25000]"), "{help}");
        assert!(help.contains("[default: 127.0.0.1:7878]"), "{help}");
    }

    #[test]
    fn redis_store_settings() {
        let url = |c: &ServerConfig| match &c.store {
            StoreConfig::Redis(r) => (r.url.secret().to_owned(), r.max_messages),
            other => panic!("not redis: {other:?}"),
        };
        let c = resolve(
            &["--store", "redis", "--redis-url", "redis://127.0.0.1:1"],
            "",
        )
        .expect("valid");
        assert_eq!(
            url(&c),
            ("redis://127.0.0.1:1".into(), DEFAULT_REDIS_MAX_MESSAGES)
        );
        let c = resolve(
            &["--redis", "rediss://h:2", "--redis-max-messages", "5"],
            "",
        )
        .expect("valid");
        assert_eq!(url(&c), ("rediss://h:2".into(), 5));
        let c = resolve(
            &[],
            "store = \"redis\"\nredis_url = \"redis://f:3\"\nredis_max_messages = 0",
        )
        .expect("valid");
        assert_eq!(url(&c), ("redis://f:3".into(), 0));
        // A redis store with an explicit SQLite file, without a URL, with another scheme,
        // or --redis beside another --store: errors at start.
        for bad in [
            &["--redis", "redis://h:1", "--data", "/tmp/x.db"][..],
            &[
                "--store",
                "redis",
                "--sqlite-path",
                "/tmp/x.db",
                "--redis-url",
                "redis://h",
            ],
            &["--store", "redis"],
            &["--redis", "http://h:1"],
            &["--redis", "redis://h:1", "--store", "memory"],
        ] {
            assert!(resolve(bad, "").is_err(), "{bad:?}");
        }
        // The URL's password is in no error.
        let e = resolve(&["--redis", "http://u:hunter2@h:1"], "").expect_err("bad scheme");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // Without redis nothing changes: SQLite is the default.
        let c = resolve(&["--redis-url", "redis://h:1"], "").expect("valid");
        assert!(matches!(c.store, StoreConfig::Sqlite(_)));
    }

    #[test]
    fn a_redis_url_never_shows_its_password() {
        let shown = |u: &str| RedisUrl::parse(u).expect("valid").to_string();
        assert_eq!(
            shown("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(shown("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(
            shown("rediss://user:p%40w@h:1/2"),
            "rediss://user:***@h:1/2"
        );
        assert_eq!(shown("redis://pw@h"), "redis://***@h");
        assert_eq!(
            shown("redis://a:b:c@d@h/?password=x&db=1"),
            "redis://a:***@h/?password=***&db=1"
        );
        let url = RedisUrl::parse("redis://u:hunter2@h").expect("valid");
        assert!(!format!("{url:?} {url}").contains("hunter2"));
        assert_eq!(url.secret(), "redis://u:hunter2@h");
    }
}
