//! `chat-server`: parses flags (and their environment variables), reads the optional config
//! file, sets up logging, and runs the server until SIGTERM or Ctrl-C. A failure to start is
//! one line on stderr (`chat-server: what failed: why`, never a backtrace, whatever
//! `RUST_BACKTRACE` says) and exit code 1.
//!
//! Stopping: SIGTERM drains: `/readyz` answers 503 at once, the server keeps serving for
//! `drain_delay_ms` (for a load balancer to take it out), then stops accepting and closes
//! every connection with 1001 and exits 0. Ctrl-C (SIGINT) does the same without the delay.
//! A second SIGTERM or Ctrl-C meanwhile exits at once, with code 1.
//!
//! The command line ([`chat_server::cli`]) is the server's flags, or one subcommand instead
//! of them: `chat-server completions <shell>` prints a completion script and
//! `chat-server manpage` the man page, each built from the same clap command, so they list
//! every flag there is; `chat-server admin <verb>` calls a running server's admin API. A
//! subcommand takes none of the server's flags (clap's `args_conflicts_with_subcommands`),
//! runs, and exits; no subcommand runs the server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chat_server::cli::{self, Action};
use chat_server::config::{FileConfig, LogFormat, ServerConfig, Settings};
use tracing::{info, warn};

fn main() -> ExitCode {
    let matches = match Action::from(cli::command().get_matches()) {
        Action::Serve(matches) => matches,
        Action::Completions(shell) => {
            let written = cli::write_completions(
                cli::command(),
                "chat-server",
                shell,
                &mut std::io::stdout(),
            );
            return done(written, "cannot write the completions");
        }
        Action::Manpage => {
            let written = cli::write_manpage(cli::command(), &mut std::io::stdout());
            return done(written, "cannot write the man page");
        }
        Action::Admin(matches) => {
            return match chat_server::admin::client::run(&matches) {
                Ok(answer) => {
                    println!("{answer}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.context("admin")),
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the runtime")),
    };
    match runtime.block_on(run(matches)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// A subcommand's exit: success, or its error on one line. A reader that stopped early
/// (`chat-server manpage | head`) is not an error.
fn done(written: std::io::Result<()>, what: &'static str) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&anyhow::Error::new(e).context(what)),
    }
}

/// Prints the error and its causes on one line (`{:#}` leaves the backtrace out).
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("chat-server: {e:#}");
    ExitCode::FAILURE
}

async fn run(matches: clap::ArgMatches) -> anyhow::Result<()> {
    // Every flag, its environment variable and config key: `config::settings`.
    let file = match matches.get_one::<String>("config") {
        Some(path) => FileConfig::load(&PathBuf::from(path))?,
        None => FileConfig::default(),
    };
    let settings = Settings::new(&matches, file);
    let secret_on_command_line = settings.secret_on_command_line();
    let redis_password_on_command_line = settings.redis_password_on_command_line();
    let config = ServerConfig::resolve(settings)?;
    init_logging(config.log_format);
    if secret_on_command_line {
        warn!(
            "--token-secret shows the secret to anyone who can list processes: use CHAT_TOKEN_SECRET or --token-secret-file"
        );
    }
    if redis_password_on_command_line {
        warn!(
            "a password in --redis-url (or --redis) is shown to anyone who can list processes: use CHAT_REDIS_URL or redis_url in the config file"
        );
    }
    let mut signals = Signals::new()?;
    let drain_delay = config.drain_delay;
    let server = chat_server::start(config.clone())
        .await
        .context("cannot start")?;
    info!("listening on {}", server.local_addr());
    if let Some(admin) = server.admin_addr() {
        info!("admin listener on {admin}");
    }
    let first = signals.next().await;
    server.drain();
    if first == Stop::Term && !drain_delay.is_zero() {
        info!(
            "draining: /readyz is 503; closing every connection in {} ms",
            drain_delay.as_millis()
        );
        tokio::select! {
            () = tokio::time::sleep(drain_delay) => {}
            _ = signals.next() => return exit_now(),
        }
    }
    info!("shutting down");
    tokio::select! {
        () = server.shutdown() => {}
        _ = signals.next() => return exit_now(),
    }
    info!("stopped");
    Ok(())
}

/// A second signal while draining or closing: out at once, without waiting for anyone.
fn exit_now() -> anyhow::Result<()> {
    warn!("second signal: exiting now");
    std::process::exit(1)
}

/// Log lines go to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON.
fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr is a pipe whose reader died) is dropped:
        // by default tracing-subscriber reports it with `eprintln!`, which panics on the same
        // broken pipe, in whichever task was logging (a connection, or the shutdown).
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Which signal asked the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM (a service manager, `kill`): drain first.
    Term,
    /// Ctrl-C: stop without the drain delay.
    Interrupt,
}

/// SIGTERM and Ctrl-C, listened for from [`Signals::new`] on (not from the first poll):
/// made before the server says where it listens, so a SIGTERM sent as soon as it does (a
/// service manager, a test) is handled instead of killing it by the signal's default
/// action. Each call of [`Signals::next`] waits for the next one.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => Stop::Interrupt,
                _ = self.term.recv() => Stop::Term,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Stop::Interrupt
        }
    }
}
