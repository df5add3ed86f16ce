//! Every setting of `chat-server`, declared once ([`SETTINGS`]): its config key, and from it
//! its flag (`--ping-interval-ms`) and environment variable (`CHAT_PING_INTERVAL_MS`), its
//! help line, its default (read from [`ServerConfig::default`], so it is written nowhere
//! else) and the field it sets. The flags and `--help` ([`command`]), the config file's keys
//! ([`FileConfig`]) and the resolution ([`ServerConfig::resolve`]) all come from that table.
//!
//! Precedence, highest first: flag, environment variable, config file, default. A key may sit
//! in a table of the file named for its prefix (`sqlite.path` is `path` under `[sqlite]`).
//! Store options belong to their store kind (`sqlite.*`, `memory.*`); the names they had
//! before (`--data`, `CHAT_DATA`, `data`, `room_capacity`, `[retention]`) are aliases that keep
//! working. Secrets (`token_secret`) come from the environment or a file
//! (`token_secret_file`), never from a flag that `ps` shows (the old `--token-secret` is still
//! read, hidden, with a warning). The `[[namespace]]` tables are file-only.
//!
//! Adding a setting: a field in [`ServerConfig`] (or what it holds) with its default there,
//! then one [`Setting`] line here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

use super::{
    ConfigError, LogFormat, NamespaceConfig, RedisConfig, RedisUrl, ServerConfig, StoreConfig,
    TlsConfig,
};
use crate::engine::{CorsOrigins, TrustedProxies};

/// One setting: its key and the one place it lands.
pub struct Setting {
    /// The config key (`a.b` is key `b` of table `[a]`); the flag and the environment
    /// variable are made from it.
    pub key: &'static str,
    /// Older names that still work (as key, flag and environment variable).
    pub aliases: &'static [&'static str],
    pub help: &'static str,
    /// A secret: no visible flag (see the module doc).
    pub secret: bool,
    field: Field,
}

/// Where a setting's value goes, and how it is parsed and shown.
enum Field {
    Addr(fn(&mut Draft) -> &mut SocketAddr),
    MaybeAddr(fn(&mut Draft) -> &mut Option<SocketAddr>),
    Usize(fn(&mut Draft) -> &mut usize),
    U32(fn(&mut Draft) -> &mut u32),
    U64(fn(&mut Draft) -> &mut u64),
    Millis(fn(&mut Draft) -> &mut Duration),
    Bool(fn(&mut Draft) -> &mut bool),
    Path(fn(&mut Draft) -> &mut PathBuf),
    MaybePath(fn(&mut Draft) -> &mut Option<PathBuf>),
    MaybeU64(fn(&mut Draft) -> &mut Option<u64>),
    MaybeSecs(fn(&mut Draft) -> &mut Option<Duration>),
    MaybeString(fn(&mut Draft) -> &mut Option<String>),
    /// One of these words.
    Choice(fn(&mut Draft) -> &mut String, &'static [&'static str]),
    /// A list of browser origins, or `*`: comma-separated in a flag or variable, a string or
    /// an array of strings in the file.
    Origins(fn(&mut Draft) -> &mut CorsOrigins),
    /// A list of nicks: comma-separated in a flag or variable, an array of strings in the
    /// file; each must be a valid nick.
    Nicks(fn(&mut Draft) -> &mut Vec<String>),
    /// A list of addresses and CIDR blocks: comma-separated in a flag or variable, a string
    /// or an array of strings in the file.
    Proxies(fn(&mut Draft) -> &mut TrustedProxies),
}

/// The configuration being resolved: the binary's defaults, then each value given.
struct Draft {
    config: ServerConfig,
    store: String,
    /// Whether `store` was given (not the default), to tell `--redis` from a conflict.
    store_given: bool,
    sqlite_path: PathBuf,
    /// Whether `sqlite.path` (`--data`) was given: an error beside the Redis store.
    sqlite_path_given: bool,
    redis_url: Option<String>,
    /// `--redis URL`: the Redis store at that URL.
    redis_shorthand: Option<String>,
    redis_max_messages: u64,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    token_secret: Option<String>,
    token_secret_file: Option<PathBuf>,
    log_format: String,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
}

impl Draft {
    /// What the `chat-server` binary starts from: the library's defaults with the rate limit
    /// on and the SQLite store at [`super::default_data_path`].
    fn binary_defaults() -> Draft {
        let mut config = ServerConfig::default();
        config.engine.rate_per_sec = super::DEFAULT_RATE_PER_SEC;
        config.limits.joins_per_sec = super::DEFAULT_JOINS_PER_SEC;
        Draft {
            config,
            store: "sqlite".into(),
            store_given: false,
            sqlite_path: super::default_data_path(),
            sqlite_path_given: false,
            redis_url: None,
            redis_shorthand: None,
            redis_max_messages: super::DEFAULT_REDIS_MAX_MESSAGES,
            tls_cert: None,
            tls_key: None,
            token_secret: None,
            token_secret_file: None,
            log_format: "text".into(),
            admin_token: None,
            admin_token_file: None,
        }
    }
}

const fn setting(key: &'static str, help: &'static str, field: Field) -> Setting {
    Setting {
        key,
        aliases: &[],
        help,
        secret: false,
        field,
    }
}

const fn alias(mut s: Setting, aliases: &'static [&'static str]) -> Setting {
    s.aliases = aliases;
    s
}

const fn secret(mut s: Setting) -> Setting {
    s.secret = true;
    s
}

/// Every setting (the `[[namespace]]` tables aside).
pub static SETTINGS: &[Setting] = &[
    setting(
        "listen",
        "Address to listen on.",
        Field::Addr(|d| &mut d.config.listen),
    ),
    setting(
        "ping_interval_ms",
        "Milliseconds between server pings.",
        Field::Millis(|d| &mut d.config.engine.ping_interval),
    ),
    setting(
        "ping_timeout_ms",
        "Milliseconds a client has to answer a ping.",
        Field::Millis(|d| &mut d.config.engine.ping_timeout),
    ),
    setting(
        "connect_timeout_ms",
        "Milliseconds a new connection has to connect to a namespace.",
        Field::Millis(|d| &mut d.config.engine.connect_timeout),
    ),
    setting(
        "handshake_timeout_ms",
        "Milliseconds a client has to send its HTTP upgrade request.",
        Field::Millis(|d| &mut d.config.engine.handshake_timeout),
    ),
    setting(
        "max_payload",
        "Largest message in bytes (larger ones close the connection with code 1009).",
        Field::Usize(|d| &mut d.config.engine.max_payload),
    ),
    setting(
        "outbox_capacity",
        "Packets queued per connection before a slow client is disconnected.",
        Field::Usize(|d| &mut d.config.engine.outbox_capacity),
    ),
    setting(
        "outbox_bytes",
        "Bytes queued per connection before a slow client is disconnected.",
        Field::Usize(|d| &mut d.config.engine.outbox_bytes),
    ),
    setting(
        "max_connections",
        "Open connections at most (and, apart, open long-polling sessions).",
        Field::Usize(|d| &mut d.config.engine.max_connections),
    ),
    setting(
        "max_frame_size",
        "Largest single WebSocket frame in bytes (larger ones close the connection with 1009).",
        Field::Usize(|d| &mut d.config.engine.max_frame_size),
    ),
    setting(
        "max_namespaces",
        "Namespaces one connection may join at once (beyond it: CONNECT_ERROR).",
        Field::Usize(|d| &mut d.config.engine.max_namespaces),
    ),
    setting(
        "max_namespace_len",
        "Longest namespace name, in characters (at most 64).",
        Field::Usize(|d| &mut d.config.engine.max_namespace_len),
    ),
    setting(
        "max_connections_per_ip",
        "Open sessions (WebSocket or long-polling) from one IP address at most, and three times as many TCP connections (beyond: HTTP 429).",
        Field::Usize(|d| &mut d.config.engine.max_connections_per_ip),
    ),
    setting(
        "rate_burst",
        "Rate limit: events a connection may send in a burst.",
        Field::U32(|d| &mut d.config.engine.rate_burst),
    ),
    setting(
        "rate_per_sec",
        "Rate limit: steady events per second per connection (0: no limit).",
        Field::U32(|d| &mut d.config.engine.rate_per_sec),
    ),
    setting(
        "flood_timeout_ms",
        "Milliseconds over the rate limit before a flooding connection is closed.",
        Field::Millis(|d| &mut d.config.engine.flood_timeout),
    ),
    setting(
        "attachment_timeout_ms",
        "Milliseconds the binary attachments of a packet may take to arrive.",
        Field::Millis(|d| &mut d.config.engine.attachment_timeout),
    ),
    setting(
        "max_rooms_per_socket",
        "Chat rooms one socket may be in at once.",
        Field::Usize(|d| &mut d.config.limits.max_rooms_per_socket),
    ),
    setting(
        "joins_per_sec",
        "Room joins (join, and each room of a reconnect's since) per second per connection once a burst of max_rooms_per_socket is spent (0: no limit).",
        Field::U32(|d| &mut d.config.limits.joins_per_sec),
    ),
    setting(
        "max_room_len",
        "Longest room name, in characters (at most 64).",
        Field::Usize(|d| &mut d.config.limits.max_room_len),
    ),
    setting(
        "max_nick_len",
        "Longest nick, in characters (at most 32).",
        Field::Usize(|d| &mut d.config.limits.max_nick_len),
    ),
    setting(
        "max_text_len",
        "Longest message text, in characters (at most 4000).",
        Field::Usize(|d| &mut d.config.limits.max_text_len),
    ),
    setting(
        "tls_cert",
        "Serve wss:// with this PEM certificate chain (needs tls_key).",
        Field::MaybePath(|d| &mut d.tls_cert),
    ),
    setting(
        "tls_key",
        "The PEM private key for tls_cert.",
        Field::MaybePath(|d| &mut d.tls_key),
    ),
    setting(
        "web",
        "Whether to serve the web chat page at / (true or false).",
        Field::Bool(|d| &mut d.config.web),
    ),
    setting(
        "cors_origins",
        "Browser origins whose pages may use long-polling from elsewhere: a comma-separated list (https://a.example,https://b.example, with credentials) or * (any, without credentials) [default: none, same origin only].",
        Field::Origins(|d| &mut d.config.engine.cors_origins),
    ),
    setting(
        "trusted_proxies",
        "Reverse proxies or load balancers (addresses or CIDR blocks, comma-separated: 127.0.0.1,10.0.0.0/8) whose X-Forwarded-For names the client, for per-address limits, the failed-password delay and the logs [default: none].",
        Field::Proxies(|d| &mut d.config.engine.trusted_proxies),
    ),
    setting(
        "check_ws_origin",
        "Refuse WebSocket upgrades from origins neither in cors_origins nor the server's own host (true or false).",
        Field::Bool(|d| &mut d.config.engine.check_ws_origin),
    ),
    setting(
        "dynamic_namespaces",
        "Whether any other valid namespace name may be connected to (true or false).",
        Field::Bool(|d| &mut d.config.dynamic_namespaces),
    ),
    setting(
        "join_history",
        "Messages returned in a join reply.",
        Field::Usize(|d| &mut d.config.join_history),
    ),
    setting(
        "catchup_limit",
        "Most messages replayed per room to a reconnecting client (since).",
        Field::Usize(|d| &mut d.config.catchup_limit),
    ),
    setting(
        "store",
        "Where messages are kept: sqlite (durable, one node), memory (lost on exit) or redis (several nodes as one chat; needs redis_url).",
        Field::Choice(|d| &mut d.store, &["sqlite", "memory", "redis"]),
    ),
    setting(
        "redis_url",
        "The Redis of the cluster (redis:// or rediss://; a password in it is never logged).",
        Field::MaybeString(|d| &mut d.redis_url),
    ),
    setting(
        "redis",
        "Shorthand for --store redis --redis-url URL.",
        Field::MaybeString(|d| &mut d.redis_shorthand),
    ),
    setting(
        "redis_max_messages",
        "Redis retention: keep the newest N messages per room (0: all; Redis memory is not a disk).",
        Field::U64(|d| &mut d.redis_max_messages),
    ),
    alias(
        setting(
            "sqlite.path",
            "The SQLite database file.",
            Field::Path(|d| &mut d.sqlite_path),
        ),
        &["data"],
    ),
    alias(
        setting(
            "sqlite.max_messages",
            "SQLite retention: keep the newest N messages per room [default: all].",
            Field::MaybeU64(|d| &mut d.config.retention.max_messages),
        ),
        &["retention.max_messages"],
    ),
    alias(
        setting(
            "sqlite.max_age_secs",
            "SQLite retention: remove messages older than this many seconds [default: never].",
            Field::MaybeSecs(|d| &mut d.config.retention.max_age),
        ),
        &["retention.max_age_secs"],
    ),
    alias(
        setting(
            "memory.room_capacity",
            "Messages kept per room by the memory store.",
            Field::Usize(|d| &mut d.config.room_capacity),
        ),
        &["room_capacity"],
    ),
    secret(setting(
        "token_secret",
        "Secret for HS256 tokens (namespaces declared with token = true).",
        Field::MaybeString(|d| &mut d.token_secret),
    )),
    setting(
        "token_secret_file",
        "A file holding the HS256 token secret (instead of CHAT_TOKEN_SECRET).",
        Field::MaybePath(|d| &mut d.token_secret_file),
    ),
    setting(
        "admins",
        "Server admins: registered nicks, comma-separated, who may moderate every room, delete messages and unregister nicks [default: none].",
        Field::Nicks(|d| &mut d.config.admins),
    ),
    setting(
        "log_format",
        "Log lines on stderr: text (for people) or json (one object per line, for collectors).",
        Field::Choice(|d| &mut d.log_format, &["text", "json"]),
    ),
    setting(
        "admin_listen",
        "Address of the admin listener (/metrics, /healthz, /readyz, the admin API); off unless set, never the listen address.",
        Field::MaybeAddr(|d| &mut d.config.admin_listen),
    ),
    secret(setting(
        "admin_token",
        "Bearer token of the admin API, at least 16 bytes (from CHAT_ADMIN_TOKEN or admin_token_file; without one the API is off).",
        Field::MaybeString(|d| &mut d.admin_token),
    )),
    setting(
        "admin_token_file",
        "A file holding the admin API's bearer token (instead of CHAT_ADMIN_TOKEN).",
        Field::MaybePath(|d| &mut d.admin_token_file),
    ),
    setting(
        "drain_delay_ms",
        "On SIGTERM, milliseconds to keep serving with /readyz false before closing every connection (1001).",
        Field::Millis(|d| &mut d.config.drain_delay),
    ),
];

/// `ping_interval_ms` -> `ping-interval-ms`, `sqlite.path` -> `sqlite-path`.
pub fn flag_name(key: &str) -> String {
    key.replace(['_', '.'], "-")
}

/// `ping_interval_ms` -> `CHAT_PING_INTERVAL_MS`.
pub fn env_name(key: &str) -> String {
    format!("CHAT_{}", key.replace('.', "_").to_ascii_uppercase())
}

fn leak(s: String) -> &'static str {
    // Once per setting for the life of the process (the command is built once).
    Box::leak(s.into_boxed_str())
}

impl Setting {
    fn apply(&self, draft: &mut Draft, value: &str) -> Result<(), String> {
        fn num<T: std::str::FromStr>(v: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse::<T>().map_err(|e| e.to_string())
        }
        match &self.field {
            Field::Addr(f) => *f(draft) = num(value)?,
            Field::MaybeAddr(f) => *f(draft) = Some(num(value)?),
            Field::Usize(f) => *f(draft) = num(value)?,
            Field::U32(f) => *f(draft) = num(value)?,
            Field::U64(f) => *f(draft) = num(value)?,
            Field::Millis(f) => *f(draft) = Duration::from_millis(num(value)?),
            Field::Bool(f) => *f(draft) = num(value)?,
            Field::Path(f) => *f(draft) = PathBuf::from(value),
            Field::MaybePath(f) => *f(draft) = Some(PathBuf::from(value)),
            Field::MaybeU64(f) => *f(draft) = Some(num(value)?),
            Field::MaybeSecs(f) => *f(draft) = Some(Duration::from_secs(num(value)?)),
            Field::MaybeString(f) => *f(draft) = Some(value.to_owned()),
            Field::Choice(f, words) => {
                if !words.contains(&value) {
                    return Err(format!("must be one of {}", words.join(", ")));
                }
                *f(draft) = value.to_owned();
            }
            Field::Origins(f) => *f(draft) = CorsOrigins::parse(value)?,
            Field::Nicks(f) => {
                let mut nicks = Vec::new();
                for nick in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    chat_protocol::names::validate_nick(nick)
                        .map_err(|e| format!("{nick:?}: {e}"))?;
                    nicks.push(nick.to_owned());
                }
                *f(draft) = nicks;
            }

            Field::Proxies(f) => {
                *f(draft) = TrustedProxies::parse(value)?;
            }
        }
        Ok(())
    }

    /// The default, as `--help` shows it (`None`: no default).
    fn default_text(&self, draft: &mut Draft) -> Option<String> {
        Some(match &self.field {
            Field::Addr(f) => f(draft).to_string(),
            Field::Usize(f) => f(draft).to_string(),
            Field::U32(f) => f(draft).to_string(),
            Field::U64(f) => f(draft).to_string(),
            Field::Millis(f) => f(draft).as_millis().to_string(),
            Field::Bool(f) => f(draft).to_string(),
            Field::Path(f) => f(draft).display().to_string(),
            Field::Choice(f, _) => f(draft).clone(),
            Field::Origins(f) => match f(draft) {
                CorsOrigins::SameOrigin => return None,
                origins => origins.to_string(),
            },
            Field::Nicks(f) if f(draft).is_empty() => return None,
            Field::Nicks(f) => f(draft).join(","),
            Field::Proxies(f) => match f(draft) {
                proxies if proxies.is_empty() => return None,
                proxies => proxies.to_string(),
            },
            Field::MaybePath(_)
            | Field::MaybeAddr(_)
            | Field::MaybeU64(_)
            | Field::MaybeSecs(_)
            | Field::MaybeString(_) => return None,
        })
    }

    fn by_name(name: &str) -> Option<&'static Setting> {
        SETTINGS
            .iter()
            .find(|s| s.key == name || s.aliases.contains(&name))
    }
}

impl Field {
    /// Whether the file may give the value as an array (joined by commas for parsing).
    fn is_list(&self) -> bool {
        matches!(
            self,
            Field::Origins(_) | Field::Nicks(_) | Field::Proxies(_)
        )
    }

    /// What `--help` calls the value.
    fn value_name(&self) -> &'static str {
        match self {
            Field::Addr(_) | Field::MaybeAddr(_) => "ADDR",
            Field::Usize(_) | Field::U32(_) | Field::U64(_) | Field::MaybeU64(_) => "N",
            Field::Millis(_) => "MS",
            Field::Bool(_) => "BOOL",
            Field::Path(_) | Field::MaybePath(_) => "PATH",
            Field::MaybeSecs(_) => "SECS",
            Field::MaybeString(_) => "TEXT",
            Field::Choice(..) => "KIND",
            Field::Origins(_) => "ORIGINS",
            Field::Nicks(_) => "NICKS",
            Field::Proxies(_) => "ADDRS",
        }
    }
}

/// The id of the clap argument of an alias (its flag and environment variable).
fn alias_id(alias: &str) -> String {
    format!("alias:{alias}")
}

/// The `chat-server` command line: `--config` and one flag per setting, each with its
/// environment variable, help line, default and config key.
pub fn command() -> Command {
    let mut cmd = Command::new("chat-server")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A Socket.IO v5 compatible chat server.")
        .arg(
            Arg::new("config")
                .long("config")
                .env("CHAT_CONFIG")
                .value_name("FILE")
                .help("TOML config file (namespaces, keys, limits; every setting below as a key)."),
        );
    let mut draft = Draft::binary_defaults();
    for s in SETTINGS {
        let mut help = s.help.to_owned();
        if let Some(d) = s.default_text(&mut draft) {
            help.push_str(&format!(" [default: {d}]"));
        }
        help.push_str(&format!(" [config: {}]", s.key));
        if !s.aliases.is_empty() {
            let old: Vec<String> = s
                .aliases
                .iter()
                .map(|a| format!("--{}, {}", flag_name(a), env_name(a)))
                .collect();
            help.push_str(&format!(" (also {})", old.join(", ")));
        }
        let mut arg = Arg::new(s.key)
            .long(leak(flag_name(s.key)))
            .env(leak(env_name(s.key)))
            .value_name(s.field.value_name())
            .help(help);
        if s.secret {
            // Read for compatibility, never shown: a flag's value is visible to `ps`.
            arg = arg.hide(true).hide_env_values(true);
        }
        cmd = cmd.arg(arg);
        for a in s.aliases {
            cmd = cmd.arg(
                Arg::new(leak(alias_id(a)))
                    .long(leak(flag_name(a)))
                    .env(leak(env_name(a)))
                    .value_name("VALUE")
                    .hide(true),
            );
        }
    }
    cmd
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
}

/// The values given, by setting key, with where each came from; and the file's namespaces.
#[derive(Debug, Default)]
pub struct Settings {
    values: HashMap<&'static str, (String, Source)>,
    pub namespaces: Vec<NamespaceConfig>,
}

impl Settings {
    /// Flags and environment (from [`command`]'s matches) over the config file.
    pub fn new(matches: &ArgMatches, file: FileConfig) -> Settings {
        let mut values: HashMap<&'static str, (String, Source)> = HashMap::new();
        for (key, value) in file.values {
            values.insert(key, (value, Source::File));
        }
        let given = |id: &str| {
            let value = matches.get_one::<String>(id)?;
            let source = match matches.value_source(id)? {
                ValueSource::CommandLine => Source::Flag,
                ValueSource::EnvVariable => Source::Env,
                _ => return None,
            };
            Some((value.clone(), source))
        };
        for s in SETTINGS {
            // The setting's own name, then its old names; a flag beats any variable.
            let mut found: Vec<(String, Source)> = given(s.key).into_iter().collect();
            found.extend(s.aliases.iter().filter_map(|a| given(&alias_id(a))));
            found.sort_by_key(|(_, source)| *source != Source::Flag);
            if let Some(v) = found.into_iter().next() {
                values.insert(s.key, v);
            }
        }
        Settings {
            values,
            namespaces: file.namespaces,
        }
    }

    /// Whether a Redis URL with a password was given as a flag (`--redis-url`, `--redis`),
    /// which `ps` shows; `main` warns.
    pub fn redis_password_on_command_line(&self) -> bool {
        ["redis_url", "redis"].iter().any(|k| {
            self.values.get(k).is_some_and(|(v, src)| {
                *src == Source::Flag && RedisUrl(v.clone()).redacted().contains("***")
            })
        })
    }

    /// Whether a secret was given as a flag (shown by `ps`; `main` warns).
    pub fn secret_on_command_line(&self) -> bool {
        SETTINGS.iter().any(|s| {
            s.secret
                && self
                    .values
                    .get(s.key)
                    .is_some_and(|(_, src)| *src == Source::Flag)
        })
    }
}

/// The config file: each key's value as text (keys checked against [`SETTINGS`]), and the
/// `[[namespace]]` tables.
#[derive(Debug, Default)]
pub struct FileConfig {
    values: Vec<(&'static str, String)>,
    pub namespaces: Vec<NamespaceConfig>,
}

/// A TOML error on one line: where (line and column, 1-based) and what, without the
/// excerpt and caret the error's `Display` draws over several lines.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read(path.display().to_string(), e.to_string()))?;
        FileConfig::parse(&text).map_err(|why| ConfigError::Parse(path.display().to_string(), why))
    }

    /// Parses a config file's text: every key must be a setting (or an old name of one).
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let namespaces = match table.remove("namespace") {
            Some(v) => v
                .try_into::<Vec<NamespaceConfig>>()
                .map_err(|e| format!("[[namespace]]: {}", e.message().trim_end()))?,
            None => Vec::new(),
        };
        for ns in &namespaces {
            chat_protocol::names::validate_namespace(&ns.name)
                .map_err(|e| format!("namespace {:?}: {e}", ns.name))?;
        }
        let mut flat = Vec::new();
        for (key, value) in table {
            match value {
                toml::Value::Table(inner) => {
                    for (k, v) in inner {
                        flat.push((format!("{key}.{k}"), v));
                    }
                }
                v => flat.push((key, v)),
            }
        }
        let mut values = Vec::new();
        for (key, value) in flat {
            let setting = Setting::by_name(&key).ok_or_else(|| format!("unknown key {key:?}"))?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) if setting.field.is_list() => items
                    .into_iter()
                    .map(|item| match item {
                        toml::Value::String(s) if !s.contains(',') => Ok(s),
                        other => Err(format!("{key}: {other} is not an item of this list")),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                other => {
                    return Err(format!(
                        "{key}: {} is not a value this key takes",
                        other.type_str()
                    ));
                }
            };
            // The new name beats an old one given in the same file.
            if key == setting.key || !values.iter().any(|(k, _)| *k == setting.key) {
                values.retain(|(k, _)| *k != setting.key);
                values.push((setting.key, text));
            }
        }
        Ok(FileConfig { values, namespaces })
    }
}

impl ServerConfig {
    /// Each setting from its highest source (flag, environment, file), else its default.
    pub fn resolve(settings: Settings) -> Result<ServerConfig, ConfigError> {
        let mut draft = Draft::binary_defaults();
        for s in SETTINGS {
            if let Some((value, source)) = settings.values.get(s.key) {
                let from = match source {
                    Source::Flag => format!("--{}", flag_name(s.key)),
                    Source::Env => env_name(s.key),
                    Source::File => format!("config key {}", s.key),
                };
                s.apply(&mut draft, value).map_err(|why| {
                    // The URL settings may hold a password: shown redacted.
                    let shown = match s.key {
                        "redis_url" | "redis" => RedisUrl(value.clone()).redacted(),
                        _ => value.clone(),
                    };
                    ConfigError::Invalid(format!("{from} = {shown:?}: {why}"))
                })?;
                match s.key {
                    "store" => draft.store_given = true,
                    "sqlite.path" => draft.sqlite_path_given = true,
                    _ => {}
                }
            }
        }
        finish(draft, settings.namespaces)
    }
}

/// The store settings, before their checks.
struct StoreDraft {
    store: String,
    store_given: bool,
    sqlite_path: PathBuf,
    sqlite_path_given: bool,
    redis_url: Option<String>,
    redis_shorthand: Option<String>,
    redis_max_messages: u64,
}

/// The store: `--redis URL` is `--store redis --redis-url URL`; the Redis store and an
/// explicit SQLite file (`--data`) are an error together, and so are `--redis` and another
/// `--store`.
fn store_config(d: StoreDraft) -> Result<StoreConfig, ConfigError> {
    let invalid = |why: &str| Err(ConfigError::Invalid(why.to_owned()));
    let mut store = d.store;
    let mut url = d.redis_url;
    if let Some(short) = d.redis_shorthand {
        if d.store_given && store != "redis" {
            return invalid(&format!(
                "redis (--redis) is the redis store, but store is {store}: give one of them"
            ));
        }
        if url.as_ref().is_some_and(|u| *u != short) {
            return invalid(
                "redis (--redis) and redis_url (--redis-url) name different URLs: give one of them",
            );
        }
        store = "redis".into();
        url = Some(short);
    }
    match store.as_str() {
        "memory" => Ok(StoreConfig::Memory),
        "redis" => {
            if d.sqlite_path_given {
                return invalid(
                    "the redis store and an SQLite file (sqlite.path, --data) cannot be used together: a cluster keeps everything in Redis (drop --data, or drop --store redis / --redis)",
                );
            }
            let Some(url) = url else {
                return invalid("the redis store needs redis_url (--redis-url, CHAT_REDIS_URL)");
            };
            let url = RedisUrl::parse(&url).map_err(ConfigError::Invalid)?;
            Ok(StoreConfig::Redis(RedisConfig {
                url,
                max_messages: d.redis_max_messages,
            }))
        }
        _ => Ok(StoreConfig::Sqlite(d.sqlite_path)),
    }
}

/// A secret read from its file (`*_file` settings), its trailing newline dropped.
fn secret_file(path: Option<PathBuf>) -> Result<Option<String>, ConfigError> {
    let Some(path) = path else {
        return Ok(None);
    };
    Ok(Some(
        std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::Read(path.display().to_string(), e.to_string()))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    ))
}

/// The checks across settings, and the parts built from several.
fn finish(draft: Draft, namespaces: Vec<NamespaceConfig>) -> Result<ServerConfig, ConfigError> {
    let Draft {
        mut config,
        store,
        store_given,
        sqlite_path,
        sqlite_path_given,
        redis_url,
        redis_shorthand,
        redis_max_messages,
        tls_cert,
        tls_key,
        token_secret,
        token_secret_file,
        log_format,
        admin_token,
        admin_token_file,
    } = draft;
    super::check_limits(&config)?;
    config.tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key must be given together".into(),
            ));
        }
    };
    config.store = store_config(StoreDraft {
        store,
        store_given,
        sqlite_path,
        sqlite_path_given,
        redis_url,
        redis_shorthand,
        redis_max_messages,
    })?;
    let from_file = secret_file(token_secret_file)?;
    config.token_secret = token_secret.or(from_file).filter(|s| !s.is_empty());
    let from_file = secret_file(admin_token_file)?;
    config.admin_token = admin_token.or(from_file).filter(|s| !s.is_empty());
    if config
        .admin_token
        .as_ref()
        .is_some_and(|t| t.len() < super::MIN_ADMIN_TOKEN)
    {
        return Err(ConfigError::Invalid(format!(
            "admin_token is shorter than {} bytes: make a long random one (e.g. openssl rand -hex 32)",
            super::MIN_ADMIN_TOKEN
        )));
    }
    if config.admin_listen == Some(config.listen) && config.listen.port() != 0 {
        return Err(ConfigError::Invalid(format!(
            "admin_listen ({}) must not be the listen address: the admin listener is never the public port",
            config.listen
        )));
    }
    if config.token_secret.is_none() && namespaces.iter().any(|n| n.token) {
        return Err(ConfigError::Invalid(
            "a namespace requires a token but no token_secret is set".into(),
        ));
    }
    config.log_format = match log_format.as_str() {
        "json" => LogFormat::Json,
        _ => LogFormat::Text,
    };
    config.catchup_limit = config.catchup_limit.max(1);
    config.room_capacity = config.room_capacity.max(1);
    config.namespaces = namespaces;
    Ok(config)
}
