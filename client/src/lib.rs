//! `chat-client`: the terminal chat client `chat` (a ratatui/crossterm TUI) and its headless
//! script mode, speaking Socket.IO v5 over one WebSocket to `chat-server`.
//!
//! Structure: The Elm Architecture. One [`app::Event`] enum (key, paste, mouse, resize,
//! network, script line, tick); [`app::App::update`] changes state only; [`view`] draws it
//! and changes nothing; the network is an actor ([`net`]) behind a handle, so no key
//! handler ever awaits the network.
//!
//! Module map:
//! - [`config`]: command-line flags and the TOML config file, merged into `Settings`.
//! - [`command`]: the input-line parser (`/join`, `/msg`, ...) and the command/key table.
//! - [`input`]: the line editor (character-index cursor, history, terminal columns).
//! - [`app`]: the model and `update` (keys, scrolling, paste); `app/window.rs` the windows,
//!   unread/mention counts and read marker; `app/commands.rs` typed lines and Tab
//!   completion; `app/network.rs` network events, with room history de-duplicated by
//!   `(namespace, room, seq)`; `app/search.rs` `/search` (Ctrl+F): the results list and
//!   the jump to a hit.
//! - [`layout`]: where each part of the screen goes, a window's lines and how they wrap
//!   into rows; the model (scrolling, page size) and the view both use it.
//! - [`view`]: the pure view; [`theme`]: dark and light colours; [`columns`]: the columns a
//!   terminal gives text (every width the layout, the view and the input measure).
//! - [`split`]: a line over the server's text limit cut into messages at word boundaries.
//! - [`sanitize`]: text from the network made harmless for a terminal (control characters
//!   and bidirectional overrides shown as escapes, newlines as continuation rows); both the
//!   view and the headless output use it.
//! - [`net`]: the network actor (Engine.IO heartbeat, namespaces, acks, reconnect), one idea
//!   per file: `net/mod.rs` the public side (`NetHandle`, `NetCommand`, `NetEvent`,
//!   `spawn`); `net/session.rs` the actor, the task that owns the connection (reconnect
//!   loop, one `select!` per session, a handler per packet kind); `net/namespace.rs` each
//!   namespace's connect state machine and the CONNECT auth; `net/acks.rs` the requests in
//!   flight; `net/request.rs` requests and replies; `net/server_event.rs` pushed events;
//!   `net/reconnect.rs` the backoff and retry delays; `net/transport.rs` the WebSocket and
//!   `net/tls.rs` the rustls setup; `net/seen_ids.rs`, `net/random.rs` small helpers.
//! - [`tui`]: the terminal runtime; [`script`]: the headless runtime.
//!
//! Where to add things: a command goes in `command` (parser + table) and `run_command` in
//! `app/commands.rs`; a server event in `net::ServerEvent` (`net/server_event.rs`) and
//! `on_server_event` in `app/network.rs`; a request in `net::Request` (+ `Reply`, both in
//! `net/request.rs`) and `on_reply` there too;
//! anything on screen in `view` (text that came over the network through `sanitize`).

pub mod app;
pub mod columns;
pub mod command;
pub mod config;
pub mod input;
pub mod layout;
pub mod net;
pub mod sanitize;
pub mod script;
pub mod split;
pub mod theme;
pub mod tui;
pub mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::app::App;
use crate::config::{Args, Settings};
use crate::net::NetConfig;
use crate::theme::Theme;

/// The log file: `--log`, else `<state dir or cache dir>/chat/chat.log`.
fn log_path(settings: &Settings) -> Option<PathBuf> {
    settings.log.clone().or_else(|| {
        dirs::state_dir()
            .or_else(dirs::cache_dir)
            .map(|d| d.join("chat").join("chat.log"))
    })
}

/// Logs go to a file, never to the screen. `CHAT_LOG` (or `RUST_LOG`) sets the filter.
fn init_logging(settings: &Settings) {
    let Some(path) = log_path(settings) else {
        return;
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return;
    };
    let filter = std::env::var("CHAT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        // A failed log write is dropped, not reported on stderr (that is the chat screen).
        .log_internal_errors(false)
        .try_init();
}

/// Runs the client as the command line says: the TUI, or a script when `--script` is given.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = config::load_file(args.config.as_ref())?;
    let mut settings = config::resolve(args, file)?;
    init_logging(&settings);
    if settings.password.as_deref() == Some("") {
        if settings.script.as_deref() == Some("-") {
            anyhow::bail!("--password needs a value when the script comes from stdin");
        }
        settings.password =
            Some(tui::prompt_password("password: ").context("reading the password")?);
    }
    tracing::info!(server = %settings.server, nick = %settings.nick, "starting");

    if net::socket_url(&settings.server).starts_with("wss://") {
        net::tls_connector(settings.ca_file.as_deref()).map_err(anyhow::Error::msg)?;
    }
    let mut net_config = NetConfig::new(&settings.server, &settings.nick);
    net_config.password = settings.password.clone();
    net_config.ca_file = settings.ca_file.clone();
    net_config.token = settings.token.clone();
    let (net, net_rx, net_task) = net::spawn(net_config);
    let mut app = App::new(
        &settings.server,
        &settings.nick,
        &settings.namespaces,
        Theme::new(settings.theme),
    );
    // Local time: the TZ variable, else the system's zone (UTC if neither can be read).
    app.tz = jiff::tz::TimeZone::system();
    app.highlights = settings.highlights.clone();
    app.bell = settings.bell;

    let code = match &settings.script {
        Some(spec) => {
            let source = script::ScriptSource::open(spec)?;
            let mut stdout = std::io::stdout();
            let ok = script::run(
                app,
                net,
                net_rx,
                source,
                settings.expect_timeout,
                &mut stdout,
            )
            .await?;
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => {
            tui::run(app, net, net_rx).await?;
            ExitCode::SUCCESS
        }
    };
    // Give the actor a moment to close the connection politely.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), net_task).await;
    Ok(code)
}
