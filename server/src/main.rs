//! `chat-server`: parses flags (and their environment variables), reads the optional config
//! file, sets up logging, and runs the server until Ctrl-C or SIGTERM. A failure to start is
//! one line on stderr (`chat-server: what failed: why`, never a backtrace, whatever
//! `RUST_BACKTRACE` says) and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chat_server::config::{FileConfig, ServerConfig, Settings, command};
use tracing::{info, warn};

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the runtime")),
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints the error and its causes on one line (`{:#}` leaves the backtrace out).
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("chat-server: {e:#}");
    ExitCode::FAILURE
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (stderr is a pipe whose reader died) is dropped:
        // by default tracing-subscriber reports it with `eprintln!`, which panics on the same
        // broken pipe, in whichever task was logging (a connection, or the shutdown).
        .log_internal_errors(false)
        .init();
    // Every flag, its environment variable and config key: `config::settings`.
    let matches = command().get_matches();
    let file = match matches.get_one::<String>("config") {
        Some(path) => FileConfig::load(&PathBuf::from(path))?,
        None => FileConfig::default(),
    };
    let settings = Settings::new(&matches, file);
    if settings.secret_on_command_line() {
        warn!(
            "--token-secret shows the secret to anyone who can list processes: use CHAT_TOKEN_SECRET or --token-secret-file"
        );
    }
    let config = ServerConfig::resolve(settings)?;
    let server = chat_server::start(config.clone())
        .await
        .context("cannot start")?;
    info!("listening on {}", server.local_addr());
    shutdown_signal().await;
    info!("shutting down");
    server.shutdown().await;
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
