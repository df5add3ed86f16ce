//! Command-line arguments and the config file, merged into [`Settings`]. Flags win over the
//! file, the file over the defaults.
//!
//! Besides the flags, `chat completions <shell>` and `chat manpage` ([`Action`]) print a
//! completion script or the man page, made from [`Args`] itself, and exit; they take none of
//! the flags (`args_conflicts_with_subcommands`).
//!
//! The file is TOML, by default `<config dir>/chat/config.toml` (`dirs::config_dir()`):
//!
//! ```toml
//! server = "ws://127.0.0.1:7878"
//! nick = "alice"
//! theme = "light"   # "auto" (the default: from COLORFGBG), "dark" or "light"
//! highlights = ["deploy", "release"]   # mentions besides your nick
//! bell = false      # no terminal bell on a mention or DM in a window not shown
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use serde::Deserialize;

use crate::theme::ThemeName;

pub const DEFAULT_SERVER: &str = "ws://127.0.0.1:7878";

/// `chat`: a terminal client for the chat server (Socket.IO over WebSocket).
#[derive(Debug, Clone, Parser)]
#[command(name = "chat", version, about, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Instead of chatting: print a completion script or the man page.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Server address [default: ws://127.0.0.1:7878]
    #[arg(long, value_name = "ws://HOST:PORT")]
    pub server: Option<String>,
    /// Your nick [default: the config file's, else $USER]
    #[arg(long)]
    pub nick: Option<String>,
    /// Password for your nick; `--password` alone asks for it
    #[arg(
        long,
        env = "CHAT_PASSWORD",
        hide_env_values = true,
        num_args = 0..=1,
        default_missing_value = ""
    )]
    pub password: Option<String>,
    /// Signed token for namespaces that require one
    #[arg(long)]
    pub token: Option<String>,
    /// For wss:// servers: a PEM file of CA certificates to trust besides the system's
    #[arg(long, value_name = "FILE", env = "CHAT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Namespace to open at start (repeatable; `/ops=KEY` gives its key) [default: /]
    #[arg(long = "ns", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Config file [default: chat/config.toml in the user config dir]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Colours: auto (light where the terminal says its background is light, through COLORFGBG; else dark), dark or light
    #[arg(long, value_enum)]
    pub theme: Option<ThemeName>,
    /// Headless: run the lines of FILE (`-` for stdin) and print events as plain lines
    #[arg(long, value_name = "FILE")]
    pub script: Option<String>,
    /// How long a script's `/expect` waits (e.g. 5s, 500ms)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub expect_timeout: Duration,
    /// Log file [default: chat/chat.log in the user state or cache dir]
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// A word that counts as a mention besides your nick (repeatable; added to the config
    /// file's `highlights`)
    #[arg(long = "highlight", value_name = "WORD")]
    pub highlights: Vec<String>,
    /// No terminal bell on a mention or direct message in a window not shown (the config
    /// file's `bell = false`)
    #[arg(long)]
    pub no_bell: bool,
}

/// What `chat` can do instead of chatting (`main.rs` runs it and exits).
#[derive(Debug, Clone, Subcommand)]
pub enum Action {
    /// Print a shell completion script (e.g. chat completions bash > ~/.local/share/bash-completion/completions/chat)
    Completions {
        /// The shell to complete for
        shell: Shell,
    },
    /// Print the man page in roff (e.g. chat manpage > chat.1)
    Manpage,
}

impl Action {
    /// Writes the completion script or the man page, made from [`Args`].
    pub fn write(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        match self {
            Action::Completions { shell } => {
                // `generate` panics on a write error (`| head`): write the whole script here.
                let mut buf = Vec::new();
                clap_complete::generate(*shell, &mut Args::command(), "chat", &mut buf);
                out.write_all(&buf)?;
            }
            Action::Manpage => clap_mangen::Man::new(Args::command()).render(out)?,
        }
        out.flush()
    }
}

/// The config file's keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<String>,
    pub nick: Option<String>,
    pub theme: Option<ThemeName>,
    pub ca_file: Option<PathBuf>,
    /// Words that count as mentions besides the nick.
    #[serde(default)]
    pub highlights: Vec<String>,
    /// The terminal bell on a mention or direct message in a window not shown (default on).
    pub bell: Option<bool>,
}

/// Everything the client runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: String,
    pub nick: String,
    /// `Some("")` means: ask on the terminal.
    pub password: Option<String>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub namespaces: Vec<(String, Option<String>)>,
    pub theme: ThemeName,
    pub script: Option<String>,
    pub expect_timeout: Duration,
    pub log: Option<PathBuf>,
    /// Words that count as mentions besides the nick (the file's, then the flags').
    pub highlights: Vec<String>,
    pub bell: bool,
}

/// `5s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 5s or 500ms)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(value * mult))
}

/// The default config file path.
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("chat").join("config.toml"))
}

/// Reads the config file: the one named (which must exist), else the default one if present.
pub fn load_file(path: Option<&PathBuf>) -> anyhow::Result<FileConfig> {
    let (path, required) = match path {
        Some(p) => (p.clone(), true),
        None => match default_config_path() {
            Some(p) => (p, false),
            None => return Ok(FileConfig::default()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("in {}", path.display())),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Merges flags, file and defaults.
/// Refuses a server address that could never connect, at start rather than by retrying
/// forever: a scheme other than `ws://`, `wss://` and their aliases `http://` and `https://`
/// (the URLs a browser or the JavaScript client uses), no host, or a port that is not one.
fn check_server(server: &str) -> anyhow::Result<()> {
    let trimmed = server.trim();
    let rest = match trimmed.split_once("://") {
        Some((scheme, rest)) => {
            if !["ws", "wss", "http", "https"].contains(&scheme.to_ascii_lowercase().as_str()) {
                bail!(
                    "--server {server:?}: unknown scheme {scheme:?}: use ws://, wss://, http:// or https://"
                );
            }
            rest
        }
        None => trimmed,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // `[::1]:7878`, `host:7878`, `host`.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.contains(':') => (authority, None),
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() || host == "[]" {
        bail!("--server {server:?}: no host (e.g. ws://127.0.0.1:7878)");
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        bail!("--server {server:?}: {port:?} is not a port");
    }
    Ok(())
}

pub fn resolve(args: Args, file: FileConfig) -> anyhow::Result<Settings> {
    let nick = args
        .nick
        .or(file.nick)
        .or_else(|| {
            std::env::var("USER")
                .ok()
                .filter(|u| chat_protocol::names::validate_nick(u).is_ok())
        })
        .unwrap_or_else(|| "guest".to_owned());
    if let Err(e) = chat_protocol::names::validate_nick(&nick) {
        bail!("--nick {nick:?}: {e}");
    }
    let mut namespaces = Vec::new();
    for spec in &args.namespaces {
        let (name, key) = match spec.split_once('=') {
            Some((n, k)) => (n, Some(k.to_owned())),
            None => (spec.as_str(), None),
        };
        let name = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("/{name}")
        };
        if let Err(e) = chat_protocol::names::validate_namespace(&name) {
            bail!("--ns {spec:?}: {e}");
        }
        namespaces.push((name, key));
    }
    if namespaces.is_empty() {
        namespaces.push(("/".to_owned(), None));
    }
    let server = args
        .server
        .or(file.server)
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    check_server(&server)?;
    Ok(Settings {
        server,
        nick,
        password: args.password,
        token: args.token,
        ca_file: args.ca_file.or(file.ca_file),
        namespaces,
        theme: args.theme.or(file.theme).unwrap_or_default(),
        script: args.script,
        expect_timeout: args.expect_timeout,
        log: args.log,
        highlights: file
            .highlights
            .into_iter()
            .chain(args.highlights)
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .collect(),
        bell: !args.no_bell && file.bell.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        let mut v = vec!["chat"];
        v.extend_from_slice(list);
        Args::parse_from(v)
    }

    #[test]
    fn server_addresses_are_checked_at_start() {
        for good in [
            "ws://127.0.0.1:7878",
            "wss://chat.example:443/",
            "http://127.0.0.1:7878",
            "HTTPS://chat.example",
            "127.0.0.1:7878",
            "ws://[::1]:7878",
            "[::1]:7878",
        ] {
            let s = resolve(args(&["--server", good]), FileConfig::default());
            assert!(s.is_ok(), "{good}: {:?}", s.err());
        }
        for (bad, says) in [
            ("foo://h:1", "unknown scheme \"foo\""),
            ("ftp://h", "unknown scheme"),
            ("ws://", "no host"),
            ("ws://:7878", "no host"),
            ("ws://h:port", "\"port\" is not a port"),
            ("h:99999", "is not a port"),
        ] {
            match resolve(args(&["--server", bad]), FileConfig::default()) {
                Ok(_) => panic!("{bad} accepted"),
                Err(e) => assert!(e.to_string().contains(says), "{bad}: {e}"),
            }
        }
    }

    #[test]
    fn highlights_add_up_and_the_bell_can_be_turned_off() {
        let file: FileConfig =
            toml::from_str("highlights = [\"deploy\", \" \"]\nbell = true\n").unwrap_or_default();
        let s = resolve(args(&["--highlight", "release"]), file.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.highlights, ["deploy", "release"]);
        assert!(s.bell);
        let s = resolve(args(&["--no-bell"]), file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.bell);
        let off: FileConfig = toml::from_str("bell = false\n").unwrap_or_default();
        assert!(
            !resolve(args(&[]), off)
                .unwrap_or_else(|e| panic!("{e}"))
                .bell
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let file: FileConfig =
            toml::from_str("server = \"ws://h:1\"\nnick = \"filenick\"\ntheme = \"light\"\n")
                .unwrap_or_default();
        let s = resolve(args(&["--nick", "bob"]), file.clone()).map_err(|e| e.to_string());
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.nick, "bob");
        assert_eq!(s.server, "ws://h:1");
        assert_eq!(s.theme, ThemeName::Light);
        assert_eq!(s.namespaces, vec![("/".to_owned(), None)]);
        let s = resolve(
            args(&["--ns", "ops=k", "--ns", "/x", "--theme", "dark"]),
            file,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.namespaces,
            vec![
                ("/ops".to_owned(), Some("k".to_owned())),
                ("/x".to_owned(), None)
            ]
        );
        assert_eq!(s.theme, ThemeName::Dark);
    }

    #[test]
    fn bad_names_are_refused_early() {
        assert!(resolve(args(&["--nick", "2bad"]), FileConfig::default()).is_err());
        assert!(resolve(args(&["--ns", "/a,b"]), FileConfig::default()).is_err());
    }

    #[test]
    fn config_file_is_read_and_a_missing_named_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("chat-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("config.toml");
        std::fs::write(&path, "server = \"ws://x:1\"\ntheme = \"light\"\n").unwrap_or_default();
        let file = load_file(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.server.as_deref(), Some("ws://x:1"));
        assert_eq!(file.theme, Some(ThemeName::Light));
        std::fs::write(&path, "colour = 1\n").unwrap_or_default();
        assert!(load_file(Some(&path)).is_err(), "unknown keys are refused");
        assert!(load_file(Some(&dir.join("missing.toml"))).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn password_flag_alone_means_prompt() {
        assert_eq!(args(&["--password"]).password, Some(String::new()));
        assert_eq!(args(&["--password", "pw"]).password, Some("pw".into()));
    }
}
