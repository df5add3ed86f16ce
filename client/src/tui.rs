//! The terminal runtime: the one task that owns the terminal. It turns crossterm and network
//! events into [`Event`]s, lets [`App::update`] handle them, drains whatever else is queued,
//! hands the outbox to the network actor (never awaiting it) and draws.
//!
//! The terminal is restored on every way out: normal return, error (a drop guard) and panic
//! (ratatui's hook, plus ours for bracketed paste and mouse capture).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    EventStream,
};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc;

use crate::app::{App, Event};
use crate::net::{NetCommand, NetEvent, NetHandle};
use crate::view::view;

/// Restores the terminal when dropped, whatever the way out.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Whether the terminal is in raw mode on the alternate screen. Restoring twice would
/// leave the alternate screen twice, and the second time moves the cursor back over
/// whatever was printed in between (a panic message, say).
static ACTIVE: AtomicBool = AtomicBool::new(false);

fn restore_terminal() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout();
    let _ = crossterm::execute!(out, DisableMouseCapture, DisableBracketedPaste);
    ratatui::restore();
    let _ = out.flush();
}

/// Raw mode, alternate screen, bracketed paste, mouse capture; panic-safe.
fn init_terminal() -> anyhow::Result<DefaultTerminal> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "the chat client needs a terminal (stdin and stdout); without one, use --script FILE (or - for stdin)"
        );
    }
    // Our hook turns paste and mouse reporting off; `ratatui::init` wraps it with its own,
    // which leaves raw mode and the alternate screen first.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Runs after ratatui's hook has left raw mode and the alternate screen; marking the
        // terminal restored keeps the drop guard from doing it again while unwinding.
        if ACTIVE.swap(false, Ordering::SeqCst) {
            let _ = crossterm::execute!(
                std::io::stdout(),
                DisableMouseCapture,
                DisableBracketedPaste
            );
        }
        previous(info);
    }));
    let terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(e) => {
            ratatui::restore();
            anyhow::bail!("cannot set up the terminal: {e}");
        }
    };
    ACTIVE.store(true, Ordering::SeqCst);
    crossterm::execute!(std::io::stdout(), EnableBracketedPaste, EnableMouseCapture)?;
    Ok(terminal)
}

fn from_crossterm(event: crossterm::event::Event) -> Option<Event> {
    use crossterm::event::Event as C;
    match event {
        C::Key(k) => Some(Event::Key(k)),
        C::Paste(p) => Some(Event::Paste(p)),
        C::Mouse(m) => Some(Event::Mouse(m)),
        C::Resize(w, h) => Some(Event::Resize(w, h)),
        C::FocusGained | C::FocusLost => None,
    }
}

/// Runs the interactive client until `/quit`, Ctrl+C or the end of the input.
pub async fn run(
    mut app: App,
    net: NetHandle,
    mut net_rx: mpsc::UnboundedReceiver<NetEvent>,
) -> anyhow::Result<()> {
    let mut terminal = init_terminal()?;
    let guard = TerminalGuard;
    let result = event_loop(&mut terminal, &mut app, &net, &mut net_rx).await;
    drop(guard);
    net.send(NetCommand::Shutdown);
    result
}

/// Reads the terminal's events into a channel, so the main loop can drain what is queued
/// without polling the stream half-way (a dropped poll loses crossterm's wake-up).
fn spawn_input() -> (
    mpsc::UnboundedReceiver<std::io::Result<crossterm::event::Event>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut input = EventStream::new();
        while let Some(ev) = input.next().await {
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    (rx, task)
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    net: &NetHandle,
    net_rx: &mut mpsc::UnboundedReceiver<NetEvent>,
) -> anyhow::Result<()> {
    let size = terminal.size()?;
    app.update(Event::Resize(size.width, size.height));
    let (mut input, input_task) = spawn_input();
    let result = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut net_open = true;
        let mut title = String::new();
        loop {
            for cmd in app.take_commands() {
                net.send(cmd);
            }
            // The journal is for scripts; the screen shows the same lines.
            app.take_journal();
            if app.quit {
                return Ok(());
            }
            terminal.draw(|frame| view(app, frame))?;
            // The unread counts in the terminal's title, and the bell for a mention or a
            // direct message in a window not shown.
            let now = app.terminal_title();
            if now != title {
                let _ = crossterm::execute!(std::io::stdout(), crossterm::terminal::SetTitle(&now));
                title = now;
            }
            if app.take_bell() {
                let mut out = std::io::stdout();
                let _ = out.write_all(b"\x07").and_then(|()| out.flush());
            }

            tokio::select! {
                // Keys, paste, mouse, resize.
                ev = input.recv() => match ev {
                    Some(ev) => on_terminal_event(app, ev)?,
                    None => return Ok(()),
                },
                // Whatever the network actor reports.
                ev = net_rx.recv(), if net_open => match ev {
                    Some(ev) => app.update(Event::Net(ev)),
                    None => net_open = false,
                },
                // The clock in the status line.
                _ = tick.tick() => app.update(Event::Tick),
            }

            // Drain everything already queued before drawing again, in arrival order per
            // source.
            while let Ok(ev) = input.try_recv() {
                on_terminal_event(app, ev)?;
            }
            while let Ok(ev) = net_rx.try_recv() {
                app.update(Event::Net(ev));
            }
        }
    }
    .await;
    input_task.abort();
    result
}

fn on_terminal_event(
    app: &mut App,
    ev: std::io::Result<crossterm::event::Event>,
) -> anyhow::Result<()> {
    if let Some(ev) = from_crossterm(ev?) {
        app.update(ev);
    }
    Ok(())
}

/// Asks for a password on the terminal without echoing it.
pub fn prompt_password(prompt: &str) -> anyhow::Result<String> {
    use crossterm::event::{self, Event as C, KeyCode, KeyEventKind, KeyModifiers};
    let mut out = std::io::stderr();
    write!(out, "{prompt}")?;
    out.flush()?;
    crossterm::terminal::enable_raw_mode()?;
    let mut password = String::new();
    let result = loop {
        match event::read() {
            Ok(C::Key(k)) if k.kind != KeyEventKind::Release => match k.code {
                KeyCode::Enter => break Ok(()),
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    break Err(anyhow::anyhow!("cancelled"));
                }
                KeyCode::Char(c) => password.push(c),
                KeyCode::Backspace => {
                    password.pop();
                }
                KeyCode::Esc => break Err(anyhow::anyhow!("cancelled")),
                _ => {}
            },
            Ok(_) => {}
            Err(e) => break Err(e.into()),
        }
    };
    crossterm::terminal::disable_raw_mode()?;
    writeln!(out)?;
    result.map(|()| password)
}
