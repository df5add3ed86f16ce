//! Headless mode (`chat --script FILE`, `-` for stdin): the lines of the script go through
//! the same [`App::update`] as typed lines ([`Event::Line`]); every line the screen would
//! show is printed to stdout instead. Two script-only commands steer it: `/wait <ms>` keeps
//! receiving for a while, `/expect <text>` waits until a shown line contains the text (any
//! line shown since the start that no earlier `/expect` matched; continuation rows see
//! below).
//! Blank lines and lines starting with `#` are skipped; each script line is echoed as
//! `> line`. After each line the runner waits (up to 3 s) for the answers to the requests it
//! made, as a person would look at the screen before typing on.
//!
//! The outcome is `false` (exit code 1) when an expectation is not met in time, when the
//! first namespace refuses the connection, or when the server cannot be reached.
//!
//! # Output format
//!
//! One line per shown line, `[<namespace> <window>] ` then the line:
//!
//! ```text
//! > /join #general                       the script's own line, echoed
//! [/] -- connected to / as alice         a namespace window's line (`--` info, `!!` error)
//! [/ #general] <bob> hello               a message in a room
//! [/ #general] * bob waves               an action (`/me`)
//! [/ @bob] <bob> psst                    a direct message
//!   | and a second line                  a continuation row: the text after a newline
//! !! expectation not met within 5.0 s: x the runner's own verdict
//! ```
//!
//! Everything printed goes through one function (`print_rows`), which makes text from the
//! network harmless ([`crate::sanitize`]): control characters, C1 controls and
//! bidirectional overrides are shown as escapes such as `\u{1b}` or `\u{202e}`, a tab as a
//! space. A newline in a text does not start a line of its own: each row after it is printed
//! as a continuation row, prefixed with [`CONTINUATION`] (`"  | "`), which no other line
//! starts with (they start with `[`, `> ` or `!! `). So a text such as
//! `"hi\n[/ #general] <mallory> yes"` prints
//!
//! ```text
//! [/ #general] <bob> hi
//!   | [/ #general] <mallory> yes
//! ```
//!
//! `/expect` and continuation rows: a continuation row is matched only by an expectation
//! that starts with the marker's `| ` (`/expect | [/ #general] <mallory> yes` matches the row
//! above). Any other `/expect` text looks only at first rows, so a forged continuation
//! never satisfies it as if it were a line of its own. (Within a first row the match is a
//! plain substring, as before, so one message can still quote another's line:
//! `/expect [/ #general] <mallory> yes` is also met by bob's single-line text
//! `[/ #general] <mallory> yes`, shown as `[/ #general] <bob> [/ #general] <mallory> yes`.
//! An `/expect` tells that a text was shown, not who sent it.)

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::{App, Event};
use crate::command::{self, Command, Input};
use crate::net::{NetCommand, NetEvent, NetHandle};
use crate::sanitize;

/// What a continuation row (the text after a newline) starts with.
pub const CONTINUATION: &str = "  | ";
/// The part of [`CONTINUATION`] an `/expect` starts with to match a continuation row.
const CONTINUATION_EXPECT: &str = "| ";

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

/// One printed row: the first row of a shown line, or one of its continuation rows (printed
/// after [`CONTINUATION`]). `text` is already sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    text: String,
    continuation: bool,
}

impl Row {
    /// Whether this row satisfies `/expect <expected>` (see the module doc).
    fn matches(&self, expected: &str) -> bool {
        if self.continuation {
            expected
                .strip_prefix(CONTINUATION_EXPECT)
                .is_some_and(|rest| self.text.contains(rest))
        } else {
            self.text.contains(expected)
        }
    }
}

/// The one print path: writes `line` made harmless ([`sanitize::rows`]), its continuation
/// rows after [`CONTINUATION`], and returns the rows as printed.
fn print_rows<W: Write>(out: &mut W, line: &str) -> std::io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, text) in sanitize::rows(line).into_iter().enumerate() {
        if i == 0 {
            writeln!(out, "{text}")?;
        } else {
            writeln!(out, "{CONTINUATION}{text}")?;
        }
        rows.push(Row {
            text,
            continuation: i > 0,
        });
    }
    Ok(rows)
}

/// The headless runner: the app, the actor's two ends and where output goes.
struct Runner<'a, W: Write> {
    app: App,
    net: NetHandle,
    net_rx: mpsc::UnboundedReceiver<NetEvent>,
    out: &'a mut W,
    /// Every row shown so far (the runner's own echo and verdict lines are not among them).
    shown: Vec<Row>,
    /// Rows that already satisfied an `/expect`: each row satisfies one at most.
    matched: HashSet<usize>,
}

impl<W: Write> Runner<'_, W> {
    /// Sends the outbox and prints new lines.
    fn flush(&mut self) -> std::io::Result<()> {
        for cmd in self.app.take_commands() {
            self.net.send(cmd);
        }
        for line in self.app.take_journal() {
            let rows = print_rows(self.out, &line)?;
            self.shown.extend(rows);
        }
        self.out.flush()
    }

    /// Prints one of the runner's own lines (an echo, a verdict); `/expect` does not see it.
    fn say(&mut self, line: &str) -> std::io::Result<()> {
        print_rows(self.out, line).map(|_| ())
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

    /// Looks for a shown row matching `text` ([`Row::matches`]) that no earlier `/expect`
    /// used. Rows shown before the `/expect` count too, so two clients' events may arrive
    /// in either order.
    fn find(&mut self, text: &str) -> bool {
        let found = self
            .shown
            .iter()
            .enumerate()
            .find(|(i, row)| !self.matched.contains(i) && row.matches(text))
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
            r.say(&format!("!! {why}"))?;
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
        // A password typed in the script is not printed.
        r.say(&format!("> {}", command::redact(trimmed)))?;
        match command::parse(trimmed) {
            Ok(Input::Command(Command::Wait(ms))) => {
                let until = Instant::now() + Duration::from_millis(ms);
                r.pump(until, |_| false).await?;
            }
            Ok(Input::Command(Command::Expect(text))) => {
                let until = Instant::now() + expect_timeout;
                if !r.pump(until, |r| r.find(&text)).await? {
                    if r.app.failure.is_none() {
                        r.say(&format!(
                            "!! expectation not met within {:.1} s: {text}",
                            expect_timeout.as_secs_f64()
                        ))?;
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
