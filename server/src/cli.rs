//! The `chat-server` command line as a whole: the server's flags ([`config::command`], one
//! per setting) and the subcommands beside them. With no subcommand the binary runs the
//! server; a subcommand does one thing and exits, and takes none of the server's flags
//! (`args_conflicts_with_subcommands`), so `chat-server --listen ... manpage` is an error
//! rather than a flag silently ignored.
//!
//! Subcommands: `completions <shell>`, `manpage`, and `admin <verb>` (the admin API's client,
//! [`crate::admin::client`]). Adding one: a [`Command::subcommand`] in [`command`], a
//! variant of [`Action`] and its arm in `Action::from`; `main.rs` runs it.

use std::io::Write;

use clap::{Arg, ArgMatches, Command, value_parser};
use clap_complete::Shell;

use crate::config;

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    /// Run the server with these matches (read by [`config::Settings::new`]).
    Serve(ArgMatches),
    /// Print the completion script for this shell.
    Completions(Shell),
    /// Print the man page (roff).
    Manpage,
    /// Call the admin API (the `admin` subcommand's matches: its verb and options).
    Admin(ArgMatches),
}

/// The whole `chat-server` command: the server's flags and the subcommands.
pub fn command() -> Command {
    config::command()
        .args_conflicts_with_subcommands(true)
        .subcommand(
            Command::new("completions")
                .about("Print a shell completion script (e.g. chat-server completions bash > /usr/share/bash-completion/completions/chat-server).")
                .arg(
                    Arg::new("shell")
                        .required(true)
                        .value_parser(value_parser!(Shell))
                        .help("The shell to complete for."),
                ),
        )
        .subcommand(
            Command::new("manpage")
                .about("Print the man page in roff (e.g. chat-server manpage > chat-server.1)."),
        )
        .subcommand(crate::admin::client::command())
}

impl From<ArgMatches> for Action {
    /// What `matches` (from [`command`]) ask for.
    fn from(matches: ArgMatches) -> Action {
        match matches.subcommand() {
            Some(("completions", sub)) => Action::Completions(
                sub.get_one::<Shell>("shell")
                    .copied()
                    .unwrap_or(Shell::Bash),
            ),
            Some(("manpage", _)) => Action::Manpage,
            Some(("admin", sub)) => Action::Admin(sub.clone()),
            _ => Action::Serve(matches),
        }
    }
}

/// Writes the completion script of `cmd` (named `bin`) for `shell`.
pub fn write_completions(
    cmd: Command,
    bin: &'static str,
    shell: Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    // `generate` panics on a write error; a closed pipe (`| head`) is an error here instead.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut without_hidden(&cmd, bin), bin, &mut buf);
    out.write_all(&buf)?;
    out.flush()
}

/// `cmd` without its hidden flags, which the shells' completions would otherwise offer (the
/// old names, and the secret's flag that nobody should type).
/// (What the completions use of the command is its name, its flags and its subcommands.)
fn without_hidden(cmd: &Command, bin: &'static str) -> Command {
    let mut visible = Command::new(bin);
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        visible = visible.arg(arg.clone());
    }
    for sub in cmd.get_subcommands() {
        visible = visible.subcommand(sub.clone());
    }
    visible
}

/// Writes the man page of `cmd` in roff, its subcommands listed in it.
pub fn write_manpage(cmd: Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)?;
    out.flush()
}
