//! Headless mode (`chat --script FILE`, `-` for stdin): the lines of the script go through
//! the same [`App::update`] as typed lines ([`Event::Line`]); every line the screen would
//! show is printed to stdout instead. Two script-only commands steer it: `/wait <ms>` keeps
//! receiving for a while, `/expect <text>` waits until a shown line contains the text (any
//! line shown since the start that no earlier `/expect` matched).
//! Blank lines and lines starting with `#` are skipped; each script line is echoed as
//! `> line`. After each line the runner waits (up to 3 s) for the answers to the requests it
//! made, as a person would look at the screen before typing on.
//!
//! The outcome is `false` (exit code 1) when an expectation is not met in time, when the
//! first namespace refuses the connection, or when the server cannot be reached.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::{App, Event};
use crate::command::{self, Command, Input};
use crate::net::{NetCommand, NetEvent, NetHandle};

/// How long a script line (and the end of a script, and `/quit`) waits for the answers to
/// its requests before going on.
const DRAIN: Duration = Duration::from_secs(3);

/// Where the script's lines come from.
pub enum ScriptSource {
    Lines(VecDeque<String>),
    Stdin(tokio::io::Lines<BufReader<tokio::io::Stdin>>),
    /// Lines fed by another task (tests drive a client this way); ends when the sender is
    /// dropped.
    Channel(mpsc::UnboundedReceiver<String>),
}

impl std::fmt::Debug for ScriptSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptSource::Lines(l) => write!(f, "Lines({})", l.len()),
            ScriptSource::Stdin(_) => write!(f, "Stdin"),
            ScriptSource::Channel(_) => write!(f, "Channel"),
        }
    }
}

impl ScriptSource {
    /// `-` is stdin, anything else a file read at once.
    pub fn open(spec: &str) -> anyhow::Result<ScriptSource> {
        if spec == "-" {
            return Ok(ScriptSource::Stdin(
                BufReader::new(tokio::io::stdin()).lines(),
            ));
        }
        let text = std::fs::read_to_string(spec)
            .map_err(|e| anyhow::anyhow!("cannot read script {spec}: {e}"))?;
        Ok(ScriptSource::from_text(&text))
    }

    pub fn from_text(text: &str) -> ScriptSource {
        ScriptSource::Lines(text.lines().map(str::to_owned).collect())
    }

    async fn next_line(&mut self) -> Option<String> {
        match self {
            ScriptSource::Lines(lines) => lines.pop_front(),
            ScriptSource::Stdin(lines) => lines.next_line().await.ok().flatten(),
            ScriptSource::Channel(rx) => rx.recv().await,
        }
    }
}

/// The headless runner: the app, the actor's two ends and where output goes.
struct Runner<'a, W: Write> {
    app: App,
    net: NetHandle,
    net_rx: mpsc::UnboundedReceiver<NetEvent>,
    out: &'a mut W,
    /// Every line shown so far.
    shown: Vec<String>,
    /// Lines that already satisfied an `/expect`: each line satisfies one at most.
    matched: HashSet<usize>,
}

impl<W: Write> Runner<'_, W> {
    /// Sends the outbox and prints new lines.
    fn flush(&mut self) -> std::io::Result<()> {
        for cmd in self.app.take_commands() {
            self.net.send(cmd);
        }
        for line in self.app.take_journal() {
            writeln!(self.out, "{line}")?;
            self.shown.push(line);
        }
        self.out.flush()
    }

    /// Handles network events until `done` holds or the deadline passes. Returns whether
    /// `done` held.
    async fn pump(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> std::io::Result<bool> {
        loop {
            self.flush()?;
            if done(self) {
                return Ok(true);
            }
            if self.app.failure.is_some() {
                return Ok(false);
            }
            tokio::select! {
                ev = self.net_rx.recv() => match ev {
                    Some(ev) => self.app.update(Event::Net(ev)),
                    None => return Ok(false),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.flush()?;
                    return Ok(done(self));
                }
            }
        }
    }

    /// Looks for a shown line with `text` that no earlier `/expect` used. Lines shown
    /// before the `/expect` count too, so two clients' events may arrive in either order.
    fn find(&mut self, text: &str) -> bool {
        let found = self
            .shown
            .iter()
            .enumerate()
            .find(|(i, l)| !self.matched.contains(i) && l.contains(text))
            .map(|(i, _)| i);
        match found {
            Some(i) => {
                self.matched.insert(i);
                true
            }
            None => false,
        }
    }

    /// Waits for the answers to requests already sent.
    async fn drain(&mut self) -> std::io::Result<()> {
        self.pump(Instant::now() + DRAIN, |r| r.app.in_flight == 0)
            .await
            .map(|_| ())
    }
}

/// Runs a script to its end, `/quit` or a failure; returns whether every expectation held.
pub async fn run<W: Write>(
    mut app: App,
    net: NetHandle,
    net_rx: mpsc::UnboundedReceiver<NetEvent>,
    mut source: ScriptSource,
    expect_timeout: Duration,
    out: &mut W,
) -> anyhow::Result<bool> {
    app.set_script_mode();
    let mut r = Runner {
        app,
        net,
        net_rx,
        out,
        shown: Vec::new(),
        matched: HashSet::new(),
    };
    let ok = loop {
        r.flush()?;
        if let Some(why) = r.app.failure.clone() {
            writeln!(r.out, "!! {why}")?;
            break false;
        }
        if r.app.quit {
            break true;
        }
        let line = tokio::select! {
            line = source.next_line() => line,
            ev = r.net_rx.recv() => {
                match ev {
                    Some(ev) => r.app.update(Event::Net(ev)),
                    None => break false,
                }
                continue;
            }
        };
        let Some(line) = line else {
            r.drain().await?;
            break r.app.failure.is_none();
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        writeln!(r.out, "> {trimmed}")?;
        match command::parse(trimmed) {
            Ok(Input::Command(Command::Wait(ms))) => {
                let until = Instant::now() + Duration::from_millis(ms);
                r.pump(until, |_| false).await?;
            }
            Ok(Input::Command(Command::Expect(text))) => {
                let until = Instant::now() + expect_timeout;
                if !r.pump(until, |r| r.find(&text)).await? {
                    if r.app.failure.is_none() {
                        writeln!(
                            r.out,
                            "!! expectation not met within {:.1} s: {text}",
                            expect_timeout.as_secs_f64()
                        )?;
                    }
                    break false;
                }
            }
            Ok(Input::Command(Command::Quit)) => {
                r.drain().await?;
                r.app.update(Event::Line(line));
            }
            _ => {
                r.app.update(Event::Line(line));
                // Like a person watching the screen, wait for the answer before typing on:
                // a message right after `/join` then goes to the joined room.
                r.drain().await?;
            }
        }
    };
    r.flush()?;
    r.net.send(NetCommand::Shutdown);
    Ok(ok)
}
