//! The model and `update` of The Elm Architecture: [`App`] is all the client's state, an
//! [`Event`] is everything that can happen to it, and [`App::update`] changes the state and
//! nothing else. Work for the network is queued as [`NetCommand`]s in an outbox that the
//! runtime drains ([`App::take_commands`]); every line shown in a window is also written to a
//! journal that the headless mode prints ([`App::take_journal`]).
//!
//! The same `update` serves the terminal (keys, paste, mouse) and scripts
//! ([`Event::Line`]), so a script exercises exactly the code a person does.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chat_protocol::events::{self, PresenceAction, RoomAction};
use chat_protocol::names;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};

use crate::command::{self, Command, Input};
use crate::input::LineEditor;
use crate::net::{Failure, NetCommand, NetEvent, Reply, Request, ServerEvent};
use crate::theme::Theme;
use crate::view;

/// Lines kept per window; older ones are dropped.
const SCROLLBACK_MAX: usize = 5000;
/// How often "typing" is sent while typing, and how long another's typing is shown.
const TYPING_EVERY_MS: i64 = 3000;
const TYPING_SHOWN_MS: i64 = 5000;
/// Messages asked for per older-history request.
const HISTORY_PAGE: u32 = 50;
/// Rows the mouse wheel scrolls.
const WHEEL_ROWS: usize = 3;

/// Everything that can happen to the client.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    /// A bracketed paste.
    Paste(String),
    Mouse(MouseEvent),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    Net(NetEvent),
    /// A line from a script, handled exactly like a typed line followed by Enter.
    Line(String),
    /// Once a second.
    Tick,
}

/// What a window shows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WindowKind {
    /// The namespace itself: notices, errors, command output.
    Server,
    Room(String),
    /// A direct conversation with a nick.
    Dm(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    Message {
        from: String,
        text: String,
        action: bool,
        /// Set for room messages: the de-duplication key.
        seq: Option<u64>,
        /// Mentions our nick (or is a DM to us).
        mention: bool,
    },
    /// A system line: joins, topics, command output.
    Info(String),
    /// Something refused or failed.
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    pub kind: LineKind,
}

#[derive(Debug, Clone)]
pub struct Window {
    pub nsp: String,
    pub kind: WindowKind,
    pub lines: Vec<Line>,
    /// Messages not yet seen.
    pub unread: usize,
    /// Of those, the ones mentioning us.
    pub mentions: usize,
    /// Lines already read when the window was last left.
    pub read_upto: usize,
    /// Where the read-marker line is drawn (index into `lines`), while active.
    pub marker: Option<usize>,
    /// Rows scrolled up from the bottom.
    pub scroll: usize,
    pub topic: Option<String>,
    pub members: Vec<String>,
    /// An older-history request is on its way.
    history_pending: bool,
    /// A `leave` for this room is on its way (a `/join` now must go to the server).
    leaving: bool,
    /// The server has no older messages for this room.
    history_done: bool,
    /// Room seqs already shown (with the message id), so history replayed after a
    /// reconnect is not shown twice. The id guards against a server that restarted with an
    /// empty store and counts from 1 again: same seq, different id, a new message.
    seen: HashMap<u64, String>,
}

impl Window {
    fn new(nsp: &str, kind: WindowKind) -> Window {
        Window {
            nsp: nsp.to_owned(),
            kind,
            lines: Vec::new(),
            unread: 0,
            mentions: 0,
            read_upto: 0,
            marker: None,
            scroll: 0,
            topic: None,
            members: Vec::new(),
            history_pending: false,
            history_done: false,
            leaving: false,
            seen: HashMap::new(),
        }
    }

    /// The window's name: `/ops`, `#general`, `@bob`.
    pub fn title(&self) -> String {
        match &self.kind {
            WindowKind::Server => self.nsp.clone(),
            WindowKind::Room(r) => format!("#{r}"),
            WindowKind::Dm(n) => format!("@{n}"),
        }
    }

    pub fn room(&self) -> Option<&str> {
        match &self.kind {
            WindowKind::Room(r) => Some(r),
            _ => None,
        }
    }
}

/// The state of one namespace, as far as the screen cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsStatus {
    Connecting,
    Connected,
    Refused(String),
    Closed,
}

#[derive(Debug, Clone)]
pub struct NsInfo {
    pub name: String,
    pub status: NsStatus,
    /// Rooms that exist in the namespace (from `/rooms` and `room` events), for completion.
    pub rooms: BTreeSet<String>,
}

/// The WebSocket connection, for the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting { attempt: u32 },
    Online,
    Offline { reason: String, retry_in: Duration },
}

/// Where time comes from: the system clock, or a fixed instant in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed(i64),
}

impl Clock {
    pub fn now_ms(self) -> i64 {
        match self {
            Clock::Fixed(t) => t,
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default(),
        }
    }
}

/// Someone typing in a room, shown until `until` (ms since the epoch).
#[derive(Debug, Clone)]
struct Typist {
    nsp: String,
    room: String,
    nick: String,
    until: i64,
}

/// Tab completion in progress: repeated Tabs cycle through the candidates.
#[derive(Debug, Clone)]
struct Completion {
    /// Character index where the completed word starts.
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

#[derive(Debug)]
pub struct App {
    pub nick: String,
    pub server: String,
    pub conn: ConnState,
    pub lag: Option<Duration>,
    pub namespaces: Vec<NsInfo>,
    /// Sorted by namespace (in connection order), then server/room/DM, then name.
    pub windows: Vec<Window>,
    pub active: usize,
    pub input: LineEditor,
    pub theme: Theme,
    /// A multi-line paste waiting for y/n.
    pub pending_paste: Option<String>,
    /// The terminal size (columns, rows), for page scrolling.
    pub size: (u16, u16),
    pub clock: Clock,
    /// Set by `/quit` or Ctrl+C.
    pub quit: bool,
    /// Why a script must fail (refused first namespace, no connection at all).
    pub failure: Option<String>,
    /// Requests sent and not yet answered (scripts wait for them before exiting).
    pub in_flight: usize,
    completion: Option<Completion>,
    /// Others typing (from `typing` events), pruned on each tick.
    typing: Vec<Typist>,
    /// When we last sent `typing`.
    last_typing: i64,
    outbox: Vec<NetCommand>,
    journal: Vec<String>,
    /// The namespace whose refusal ends a script (the first one asked for).
    first_ns: String,
    script: bool,
}

impl App {
    /// A fresh client that will connect to `namespaces` (the first becomes active). The
    /// CONNECT commands are queued in the outbox.
    pub fn new(
        server: &str,
        nick: &str,
        namespaces: &[(String, Option<String>)],
        theme: Theme,
    ) -> App {
        let mut app = App {
            nick: nick.to_owned(),
            server: server.to_owned(),
            conn: ConnState::Connecting { attempt: 0 },
            lag: None,
            namespaces: Vec::new(),
            windows: Vec::new(),
            active: 0,
            input: LineEditor::new(),
            theme,
            pending_paste: None,
            size: (80, 24),
            clock: Clock::System,
            quit: false,
            failure: None,
            in_flight: 0,
            completion: None,
            typing: Vec::new(),
            last_typing: i64::MIN / 2,
            outbox: Vec::new(),
            journal: Vec::new(),
            first_ns: namespaces
                .first()
                .map_or_else(|| "/".to_owned(), |(n, _)| n.clone()),
            script: false,
        };
        let list: Vec<(String, Option<String>)> = if namespaces.is_empty() {
            vec![("/".to_owned(), None)]
        } else {
            namespaces.to_vec()
        };
        for (name, key) in list {
            app.open_namespace(&name, key);
        }
        app.active = 0;
        app
    }

    /// Marks this client as script-driven: refusals of the first namespace and failure to
    /// connect end it with an error.
    pub fn set_script_mode(&mut self) {
        self.script = true;
    }

    /// Commands for the network actor, oldest first.
    pub fn take_commands(&mut self) -> Vec<NetCommand> {
        std::mem::take(&mut self.outbox)
    }

    /// The plain-text form of every line shown since the last call.
    pub fn take_journal(&mut self) -> Vec<String> {
        std::mem::take(&mut self.journal)
    }

    pub fn active_window(&self) -> Option<&Window> {
        self.windows.get(self.active)
    }

    /// The namespace of the active window.
    pub fn current_ns(&self) -> &str {
        self.active_window().map_or("/", |w| w.nsp.as_str())
    }

    pub fn ns_info(&self, name: &str) -> Option<&NsInfo> {
        self.namespaces.iter().find(|n| n.name == name)
    }

    // ---- update ----

    /// The one place state changes.
    pub fn update(&mut self, event: Event) {
        match event {
            Event::Key(key) => self.on_key(key),
            Event::Paste(text) => self.on_paste(text),
            Event::Mouse(mouse) => self.on_mouse(mouse),
            Event::Resize(w, h) => {
                self.size = (w, h);
                self.clamp_scroll();
            }
            Event::Net(ev) => self.on_net(ev),
            Event::Line(line) => self.submit(&line),
            Event::Tick => {
                let now = self.clock.now_ms();
                self.typing.retain(|t| t.until > now);
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if key.code != KeyCode::Tab && key.code != KeyCode::BackTab {
            self.completion = None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if let Some(paste) = self.pending_paste.take() {
            match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    for line in paste.lines().filter(|l| !l.trim().is_empty()) {
                        self.send_text(line, false);
                    }
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.info_active("paste discarded");
                }
                _ => self.pending_paste = Some(paste),
            }
            return;
        }
        match key.code {
            KeyCode::Char('c') if ctrl => self.request_quit(),
            KeyCode::Char('n') if ctrl => self.switch_by(1),
            KeyCode::Char('p') if ctrl => self.switch_by(-1),
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char('u') if ctrl => self.input.delete_to_start(),
            KeyCode::Char('k') if ctrl => self.input.delete_to_end(),
            KeyCode::Char('w') if ctrl => self.input.delete_word_before(),
            KeyCode::Char(c) if alt && c.is_ascii_digit() && c != '0' => {
                self.switch_to(c as usize - '1' as usize);
            }
            KeyCode::Char(_) if ctrl || alt => {}
            KeyCode::Char(c) => {
                self.input.insert_char(c);
                self.typed();
            }
            KeyCode::Enter => {
                let line = self.input.submit();
                self.submit(&line);
            }
            KeyCode::Backspace if ctrl || alt => self.input.delete_word_before(),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left if ctrl || alt => self.input.word_left(),
            KeyCode::Right if ctrl || alt => self.input.word_right(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            KeyCode::Up => self.input.history_prev(),
            KeyCode::Down => self.input.history_next(),
            KeyCode::PageUp => self.scroll_by(self.page_rows() as isize),
            KeyCode::PageDown => self.scroll_by(-(self.page_rows() as isize)),
            KeyCode::Tab => self.complete(true),
            KeyCode::BackTab => self.complete(false),
            KeyCode::Esc => self.input.clear(),
            _ => {}
        }
    }

    /// Tells the room we are typing, at most every few seconds, and never for commands.
    fn typed(&mut self) {
        let Some(w) = self.active_window() else {
            return;
        };
        let Some(room) = w.room() else {
            return;
        };
        if self.input.text().starts_with('/') {
            return;
        }
        let now = self.clock.now_ms();
        if now - self.last_typing < TYPING_EVERY_MS {
            return;
        }
        let cmd = NetCommand::Typing {
            nsp: w.nsp.clone(),
            room: room.to_owned(),
        };
        self.last_typing = now;
        self.outbox.push(cmd);
    }

    /// The nicks typing in the active room, for the status line.
    pub fn typing_here(&self) -> Vec<&str> {
        let Some(w) = self.active_window() else {
            return Vec::new();
        };
        self.typing
            .iter()
            .filter(|t| t.nsp == w.nsp && w.room() == Some(t.room.as_str()))
            .map(|t| t.nick.as_str())
            .collect()
    }

    fn on_paste(&mut self, text: String) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let trimmed = text.trim_end_matches('\n');
        if trimmed.contains('\n') {
            self.pending_paste = Some(trimmed.to_owned());
        } else {
            self.input.insert_str(trimmed);
        }
    }

    fn on_mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.scroll_by(WHEEL_ROWS as isize),
            MouseEventKind::ScrollDown => self.scroll_by(-(WHEEL_ROWS as isize)),
            _ => {}
        }
    }

    fn request_quit(&mut self) {
        self.quit = true;
        self.outbox.push(NetCommand::Shutdown);
    }

    fn page_rows(&self) -> usize {
        let areas = view::layout(ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1));
        usize::from(areas.messages.height.saturating_sub(1)).max(1)
    }

    fn scroll_by(&mut self, rows: isize) {
        let Some(w) = self.windows.get_mut(self.active) else {
            return;
        };
        let before = w.scroll;
        w.scroll = w.scroll.saturating_add_signed(rows);
        self.clamp_scroll();
        // Scrolling up against the top of a room asks the server for older messages.
        if rows > 0
            && self
                .windows
                .get(self.active)
                .is_some_and(|w| w.scroll == before)
        {
            self.fetch_older();
        }
    }

    /// Requests the messages before the oldest one shown in the active room.
    fn fetch_older(&mut self) {
        let Some(w) = self.windows.get_mut(self.active) else {
            return;
        };
        let (Some(room), false, false) = (w.room(), w.history_pending, w.history_done) else {
            return;
        };
        let Some(oldest) = w.seen.keys().min().copied() else {
            return;
        };
        if oldest <= 1 {
            w.history_done = true;
            return;
        }
        let request = Request::History {
            room: room.to_owned(),
            before: Some(oldest),
            limit: HISTORY_PAGE,
        };
        w.history_pending = true;
        let nsp = w.nsp.clone();
        self.request(&nsp, request);
    }

    /// Puts older messages above everything in a room window (they are not news: no
    /// unread count, no journal line).
    fn prepend_history(&mut self, nsp: &str, reply: events::HistoryReply) {
        let Some(i) = self.find_window(nsp, &WindowKind::Room(reply.room.clone())) else {
            return;
        };
        let nick = self.nick.clone();
        let w = &mut self.windows[i];
        w.history_pending = false;
        if reply.messages.len() < HISTORY_PAGE as usize {
            w.history_done = true;
        }
        let mut older = Vec::new();
        for m in reply.messages {
            if w.seen.get(&m.seq) == Some(&m.id) {
                continue;
            }
            w.seen.insert(m.seq, m.id.clone());
            let mention = m.from != nick && mentions(&m.text, &nick);
            older.push(Line {
                ts: m.ts,
                kind: LineKind::Message {
                    from: m.from,
                    text: m.text,
                    action: m.action,
                    seq: Some(m.seq),
                    mention,
                },
            });
        }
        let n = older.len();
        w.lines.splice(0..0, older);
        w.read_upto += n;
        w.marker = w.marker.map(|m| m + n);
    }

    fn clamp_scroll(&mut self) {
        let areas = view::layout(ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1));
        let (width, height) = (areas.messages.width, areas.messages.height);
        let Some(w) = self.windows.get(self.active) else {
            return;
        };
        let total = view::wrapped_rows(self, w, width).len();
        let max = total.saturating_sub(usize::from(height));
        if let Some(w) = self.windows.get_mut(self.active) {
            w.scroll = w.scroll.min(max);
        }
    }

    // ---- windows ----

    fn ns_order(&self, nsp: &str) -> usize {
        self.namespaces
            .iter()
            .position(|n| n.name == nsp)
            .unwrap_or(usize::MAX)
    }

    fn find_window(&self, nsp: &str, kind: &WindowKind) -> Option<usize> {
        self.windows
            .iter()
            .position(|w| w.nsp == nsp && &w.kind == kind)
    }

    /// The index of the window, created (in sorted position) when missing.
    fn window(&mut self, nsp: &str, kind: WindowKind) -> usize {
        if let Some(i) = self.find_window(nsp, &kind) {
            return i;
        }
        let order = self.ns_order(nsp);
        let at = self
            .windows
            .iter()
            .position(|w| {
                let o = self.ns_order(&w.nsp);
                o > order || (o == order && w.kind > kind)
            })
            .unwrap_or(self.windows.len());
        self.windows.insert(at, Window::new(nsp, kind));
        if at <= self.active && self.windows.len() > 1 {
            self.active += 1;
        }
        at
    }

    fn remove_window(&mut self, i: usize) {
        if i >= self.windows.len() {
            return;
        }
        let was_active = self.active == i;
        let nsp = self.windows.remove(i).nsp;
        if self.active > i {
            self.active -= 1;
        }
        if was_active && !self.windows.is_empty() {
            // The window being read is gone: go to its namespace's server window.
            let target = self.find_window(&nsp, &WindowKind::Server).unwrap_or(0);
            self.active = target;
            self.enter(target);
        }
    }

    /// Makes window `i` active, moving the read marker.
    pub fn switch_to(&mut self, i: usize) {
        if i >= self.windows.len() {
            return;
        }
        if let Some(old) = self.windows.get_mut(self.active) {
            old.read_upto = old.lines.len();
            old.marker = None;
        }
        self.active = i;
        self.enter(i);
    }

    /// Marks window `i` as being read: the marker goes above its first unread line.
    fn enter(&mut self, i: usize) {
        let Some(w) = self.windows.get_mut(i) else {
            return;
        };
        w.marker = (w.read_upto < w.lines.len() && w.unread > 0).then_some(w.read_upto);
        w.unread = 0;
        w.mentions = 0;
        w.read_upto = w.lines.len();
    }

    fn switch_by(&mut self, delta: isize) {
        let n = self.windows.len() as isize;
        if n == 0 {
            return;
        }
        let next = (self.active as isize + delta).rem_euclid(n);
        self.switch_to(next as usize);
    }

    /// Adds a line to window `i`, counting it as unread when the window is not active.
    fn push_line(&mut self, i: usize, kind: LineKind, ts: i64) {
        let journal = self.journal_line(i, &kind);
        self.journal.push(journal);
        let active = i == self.active;
        let line = Line { ts, kind };
        // Rows the new line takes, to keep a scrolled-up view still.
        let scrolled = self.windows.get(i).is_some_and(|w| w.scroll > 0);
        let rows = if active && scrolled {
            let areas = view::layout(ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1));
            view::line_height(self, &line, areas.messages.width)
        } else {
            0
        };
        let Some(w) = self.windows.get_mut(i) else {
            return;
        };
        let kind = &line.kind;
        if let (LineKind::Message { mention, .. }, false) = (kind, active) {
            w.unread += 1;
            if *mention {
                w.mentions += 1;
            }
        }
        w.lines.push(line);
        if active {
            w.read_upto = w.lines.len();
            // Keep the view where the reader is; the new rows appear below it.
            w.scroll += rows;
        }
        if w.lines.len() > SCROLLBACK_MAX {
            let drop = w.lines.len() - SCROLLBACK_MAX;
            w.lines.drain(..drop);
            w.read_upto = w.read_upto.saturating_sub(drop);
            w.marker = w.marker.map(|m| m.saturating_sub(drop));
        }
    }

    fn journal_line(&self, i: usize, kind: &LineKind) -> String {
        let place = self
            .windows
            .get(i)
            .map_or_else(String::new, |w| match &w.kind {
                WindowKind::Server => format!("[{}]", w.nsp),
                _ => format!("[{} {}]", w.nsp, w.title()),
            });
        match kind {
            LineKind::Message {
                from, text, action, ..
            } => {
                if *action {
                    format!("{place} * {from} {text}")
                } else {
                    format!("{place} <{from}> {text}")
                }
            }
            LineKind::Info(text) => format!("{place} -- {text}"),
            LineKind::Error(text) => format!("{place} !! {text}"),
        }
    }

    fn info(&mut self, i: usize, text: impl Into<String>) {
        let now = self.clock.now_ms();
        self.push_line(i, LineKind::Info(text.into()), now);
    }

    fn error(&mut self, i: usize, text: impl Into<String>) {
        let now = self.clock.now_ms();
        self.push_line(i, LineKind::Error(text.into()), now);
    }

    fn info_active(&mut self, text: impl Into<String>) {
        self.info(self.active, text);
    }

    fn error_active(&mut self, text: impl Into<String>) {
        self.error(self.active, text);
    }

    /// Where output about namespace `nsp` (and maybe a room) goes: the room's window when
    /// it is open, else the active window when it is in that namespace, else the
    /// namespace's server window.
    fn target(&mut self, nsp: &str, room: Option<&str>) -> usize {
        if let Some(i) =
            room.and_then(|room| self.find_window(nsp, &WindowKind::Room(room.to_owned())))
        {
            return i;
        }
        if self.current_ns() == nsp {
            return self.active;
        }
        self.window(nsp, WindowKind::Server)
    }

    /// Where the answer to a command about `room` goes: the active window when it is in
    /// that namespace (where it was asked), else the room's window or the server window.
    fn answer_window(&mut self, nsp: &str, room: &str) -> usize {
        if self.current_ns() == nsp {
            self.active
        } else {
            self.target(nsp, Some(room))
        }
    }

    fn open_namespace(&mut self, name: &str, key: Option<String>) {
        if self.ns_info(name).is_none() {
            self.namespaces.push(NsInfo {
                name: name.to_owned(),
                status: NsStatus::Connecting,
                rooms: BTreeSet::new(),
            });
        } else if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == name) {
            ns.status = NsStatus::Connecting;
        }
        self.window(name, WindowKind::Server);
        self.outbox.push(NetCommand::Connect {
            nsp: name.to_owned(),
            key,
        });
    }

    fn request(&mut self, nsp: &str, request: Request) {
        self.in_flight += 1;
        self.outbox.push(NetCommand::Request {
            nsp: nsp.to_owned(),
            request,
        });
    }

    // ---- typed lines ----

    /// Handles one line as typed: a command or a message for the active window.
    pub fn submit(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        match command::parse(line) {
            Err(e) => self.error_active(e.to_string()),
            Ok(Input::Message(text)) => self.send_text(&text, false),
            Ok(Input::Command(cmd)) => self.run_command(cmd),
        }
    }

    /// Sends text to the active room or DM partner.
    fn send_text(&mut self, text: &str, action: bool) {
        if let Err(e) = names::validate_text(text) {
            self.error_active(e.to_string());
            return;
        }
        let Some(w) = self.active_window() else {
            return;
        };
        let nsp = w.nsp.clone();
        match w.kind.clone() {
            WindowKind::Room(room) => self.request(
                &nsp,
                Request::Message {
                    room,
                    text: text.to_owned(),
                    action,
                },
            ),
            WindowKind::Dm(to) => self.request(
                &nsp,
                Request::Dm {
                    to,
                    text: text.to_owned(),
                    action,
                },
            ),
            WindowKind::Server => {
                self.error_active("this window is not a room: /join <room> first (or /help)");
            }
        }
    }

    fn run_command(&mut self, cmd: Command) {
        let nsp = self.current_ns().to_owned();
        let current_room = self
            .active_window()
            .and_then(|w| w.room())
            .map(str::to_owned);
        match cmd {
            Command::Join(room) => match names::validate_room(&room) {
                Err(e) => self.error_active(e.to_string()),
                Ok(()) => match self.find_window(&nsp, &WindowKind::Room(room.clone())) {
                    Some(i) if !self.windows[i].leaving => self.switch_to(i),
                    _ => self.request(&nsp, Request::Join { room }),
                },
            },
            Command::Leave(room) => match room.or(current_room) {
                Some(room) => {
                    if let Some(i) = self.find_window(&nsp, &WindowKind::Room(room.clone())) {
                        self.windows[i].leaving = true;
                    }
                    self.request(&nsp, Request::Leave { room });
                }
                None => {
                    if matches!(
                        self.active_window().map(|w| &w.kind),
                        Some(WindowKind::Dm(_))
                    ) {
                        // Closing a conversation is local.
                        self.remove_window(self.active);
                    } else {
                        self.error_active("which room? /leave <room>");
                    }
                }
            },
            Command::Namespace { name, key } => {
                if let Err(e) = names::validate_namespace(&name) {
                    self.error_active(e.to_string());
                    return;
                }
                let status = self.ns_info(&name).map(|n| n.status.clone());
                match status {
                    Some(NsStatus::Connected | NsStatus::Connecting) => {}
                    _ => {
                        self.open_namespace(&name, key);
                        let i = self.window(&name, WindowKind::Server);
                        self.info(i, format!("connecting to {name}..."));
                    }
                }
                let i = self.window(&name, WindowKind::Server);
                self.switch_to(i);
            }
            Command::Nick(nick) => {
                if let Err(e) = names::validate_nick(&nick) {
                    self.error_active(e.to_string());
                    return;
                }
                let connected = self
                    .namespaces
                    .iter()
                    .find(|n| n.status == NsStatus::Connected)
                    .map(|n| n.name.clone());
                match connected {
                    Some(c) => {
                        let on = if self.ns_info(&nsp).map(|n| &n.status)
                            == Some(&NsStatus::Connected)
                        {
                            nsp
                        } else {
                            c
                        };
                        self.request(&on, Request::Nick { nick });
                    }
                    None => {
                        // Not connected anywhere: use it for the next CONNECT.
                        self.info_active(format!("you will connect as {nick}"));
                        self.nick = nick.clone();
                        for ns in &mut self.namespaces {
                            if matches!(ns.status, NsStatus::Refused(_)) {
                                ns.status = NsStatus::Connecting;
                            }
                        }
                        self.outbox.push(NetCommand::SetNick(nick));
                    }
                }
            }
            Command::Msg { to, text } => {
                if let Err(e) = names::validate_nick(&to).and(names::validate_text(&text)) {
                    self.error_active(e.to_string());
                    return;
                }
                self.request(
                    &nsp,
                    Request::Dm {
                        to,
                        text,
                        action: false,
                    },
                );
            }
            Command::Me(text) => self.send_text(&text, true),
            Command::Who(room) => match room.or(current_room) {
                Some(room) => self.request(&nsp, Request::Who { room }),
                None => self.error_active("which room? /who <room>"),
            },
            Command::Rooms => self.request(&nsp, Request::Rooms),
            Command::Topic(topic) => match current_room {
                Some(room) => self.request(&nsp, Request::Topic { room, topic }),
                None => self.error_active("/topic works in a room window"),
            },
            Command::Help => self.show_help(),
            Command::Quit => self.request_quit(),
            Command::Wait(_) | Command::Expect(_) => {
                self.error_active("/wait and /expect only work in --script mode");
            }
        }
    }

    fn show_help(&mut self) {
        self.info_active("commands:");
        for c in command::COMMANDS {
            let tail = if c.script_only { " (scripts)" } else { "" };
            self.info_active(format!("  {:<22} {}{tail}", c.usage, c.help));
        }
        self.info_active("keys:");
        for (key, what) in command::KEYS {
            self.info_active(format!("  {key:<22} {what}"));
        }
        self.info_active("  //text sends a line that starts with /");
    }

    // ---- Tab completion ----

    fn complete(&mut self, forward: bool) {
        if let Some(c) = &mut self.completion {
            let n = c.candidates.len();
            c.index = if forward {
                (c.index + 1) % n
            } else {
                (c.index + n - 1) % n
            };
            let (start, word) = (c.start, c.candidates[c.index].clone());
            self.input.replace_before_cursor(start, &word);
            return;
        }
        let before = self.input.before_cursor().to_owned();
        let start_byte = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let word = &before[start_byte..];
        let start = before[..start_byte].chars().count();
        let first_word = start == 0;
        let candidates = self.candidates(word, first_word, &before);
        if candidates.is_empty() {
            return;
        }
        self.input.replace_before_cursor(start, &candidates[0]);
        if candidates.len() > 1 {
            self.completion = Some(Completion {
                start,
                candidates,
                index: 0,
            });
        }
    }

    fn candidates(&self, word: &str, first_word: bool, line: &str) -> Vec<String> {
        let lower = word.to_lowercase();
        let mut out: Vec<String> = Vec::new();
        if first_word && word.starts_with('/') {
            for c in command::COMMANDS.iter().filter(|c| !c.script_only) {
                let full = format!("/{} ", c.name);
                if full.starts_with(&lower) {
                    out.push(full);
                }
            }
            return out;
        }
        let nsp = self.current_ns();
        let mut rooms: BTreeSet<String> = self
            .ns_info(nsp)
            .map(|n| n.rooms.clone())
            .unwrap_or_default();
        for w in self.windows.iter().filter(|w| w.nsp == nsp) {
            if let Some(r) = w.room() {
                rooms.insert(r.to_owned());
            }
        }
        let wants_room = word.starts_with('#')
            || line.starts_with("/join ")
            || line.starts_with("/leave ")
            || line.starts_with("/who ");
        if wants_room {
            let bare = lower.trim_start_matches('#');
            for r in &rooms {
                if r.to_lowercase().starts_with(bare) {
                    out.push(if word.starts_with('#') {
                        format!("#{r} ")
                    } else {
                        format!("{r} ")
                    });
                }
            }
            return out;
        }
        // Nicks seen anywhere in this namespace: members, DM partners, recent senders.
        let mut nicks: BTreeSet<String> = BTreeSet::new();
        for w in self.windows.iter().filter(|w| w.nsp == nsp) {
            nicks.extend(w.members.iter().cloned());
            if let WindowKind::Dm(n) = &w.kind {
                nicks.insert(n.clone());
            }
            for l in w.lines.iter().rev().take(200) {
                if let LineKind::Message { from, .. } = &l.kind {
                    nicks.insert(from.clone());
                }
            }
        }
        nicks.remove(&self.nick);
        for n in nicks {
            if n.to_lowercase().starts_with(&lower) {
                out.push(if first_word {
                    format!("{n}: ")
                } else {
                    format!("{n} ")
                });
            }
        }
        out
    }

    // ---- network events ----

    fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Connecting { attempt } => {
                self.conn = ConnState::Connecting { attempt };
                if attempt > 0 {
                    self.push_to_servers(
                        LineKind::Info(format!("reconnecting to {} ...", self.server)),
                        false,
                    );
                }
            }
            NetEvent::Up => self.conn = ConnState::Online,
            NetEvent::Down {
                reason,
                ever_connected,
                retry_in,
            } => {
                let was_online = self.conn == ConnState::Online;
                self.conn = ConnState::Offline {
                    reason: reason.clone(),
                    retry_in,
                };
                self.lag = None;
                for ns in &mut self.namespaces {
                    if ns.status == NsStatus::Connected {
                        ns.status = NsStatus::Connecting;
                    }
                }
                if self.script && !ever_connected {
                    self.failure = Some(format!("cannot connect to {}: {reason}", self.server));
                }
                let text = format!(
                    "{} ({reason}); retrying in {:.1} s",
                    if was_online {
                        "disconnected from the server"
                    } else {
                        "no connection"
                    },
                    retry_in.as_secs_f64()
                );
                // Losing the connection is news everywhere; another failed retry only in
                // the server windows (the status line shows the state too).
                self.push_to_servers(LineKind::Error(text), was_online);
            }
            NetEvent::NsConnected { nsp, resumed } => {
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    ns.status = NsStatus::Connected;
                }
                let i = self.window(&nsp, WindowKind::Server);
                let text = if resumed {
                    format!("reconnected to {nsp} as {}", self.nick)
                } else {
                    format!("connected to {nsp} as {}", self.nick)
                };
                self.info(i, text.clone());
                if resumed && self.active != i && self.current_ns() == nsp {
                    // The journal already has this line once.
                    let before = self.journal.len();
                    self.info(self.active, text);
                    self.journal.truncate(before);
                }
            }
            NetEvent::NsRefused { nsp, message, code } => {
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    ns.status = NsStatus::Refused(message.clone());
                }
                let i = self.window(&nsp, WindowKind::Server);
                let hint = match code.as_deref() {
                    Some("nick_taken") => " (choose another with /nick <nick>)",
                    Some("forbidden") => " (a key: /ns <namespace> <key>)",
                    Some("wrong_password" | "nick_claimed") => {
                        " (a registered nick: start with --password, or /nick <other>)"
                    }
                    Some("token_required" | "token_invalid" | "token_expired") => {
                        " (start with --token <token>)"
                    }
                    _ => "",
                };
                self.error(i, format!("{nsp} refused the connection: {message}{hint}"));
                if self.script && nsp == self.first_ns {
                    self.failure = Some(format!("{nsp} refused the connection: {message}"));
                }
            }
            NetEvent::NsClosed { nsp } => {
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    ns.status = NsStatus::Closed;
                }
                let i = self.window(&nsp, WindowKind::Server);
                self.error(i, format!("the server disconnected you from {nsp}"));
            }
            NetEvent::Lag(rtt) => self.lag = Some(rtt),
            NetEvent::Reply {
                nsp,
                request,
                result,
                automatic,
            } => {
                if !automatic {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                match result {
                    Ok(reply) => self.on_reply(&nsp, reply, automatic),
                    Err(failure) => self.on_failure(&nsp, &request, &failure),
                }
            }
            NetEvent::Server { nsp, event } => self.on_server_event(&nsp, event),
        }
    }

    /// A line in every namespace's server window (and the active window when asked).
    fn push_to_servers(&mut self, kind: LineKind, and_active: bool) {
        let now = self.clock.now_ms();
        let mut targets: Vec<usize> = self
            .windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.kind == WindowKind::Server)
            .map(|(i, _)| i)
            .collect();
        if and_active && !targets.contains(&self.active) {
            targets.push(self.active);
        }
        let Some((&first, rest)) = targets.split_first() else {
            return;
        };
        self.push_line(first, kind.clone(), now);
        for &i in rest {
            // One journal line is enough for a script.
            let before = self.journal.len();
            self.push_line(i, kind.clone(), now);
            self.journal.truncate(before);
        }
    }

    fn on_failure(&mut self, nsp: &str, request: &Request, failure: &Failure) {
        let (what, room) = match request {
            Request::Join { room } => (format!("cannot join #{room}"), None),
            Request::Leave { room } => {
                if let Some(i) = self.find_window(nsp, &WindowKind::Room(room.clone())) {
                    self.windows[i].leaving = false;
                }
                (format!("cannot leave #{room}"), Some(room.as_str()))
            }
            Request::Message { room, .. } => {
                (format!("message to #{room} not sent"), Some(room.as_str()))
            }
            Request::Dm { to, .. } => (format!("message to {to} not sent"), None),
            Request::Nick { nick } => (format!("cannot change nick to {nick}"), None),
            Request::Rooms => ("cannot list rooms".to_owned(), None),
            Request::Who { room } => (format!("cannot list #{room}"), Some(room.as_str())),
            Request::Topic { room, .. } => {
                (format!("topic of #{room} unchanged"), Some(room.as_str()))
            }
            Request::History { room, .. } => {
                if let Some(i) = self.find_window(nsp, &WindowKind::Room(room.clone())) {
                    self.windows[i].history_pending = false;
                }
                (format!("no older messages of #{room}"), Some(room.as_str()))
            }
            Request::Ping => return,
        };
        let i = self.target(nsp, room);
        self.error(i, format!("{what}: {failure}"));
    }

    fn on_reply(&mut self, nsp: &str, reply: Reply, automatic: bool) {
        match reply {
            Reply::Join(j) => self.on_joined(nsp, j, automatic),
            Reply::Leave(l) => {
                if let Some(i) = self.find_window(nsp, &WindowKind::Room(l.room.clone())) {
                    self.remove_window(i);
                }
                let i = self.window(nsp, WindowKind::Server);
                self.info(i, format!("you left #{}", l.room));
            }
            Reply::Message(m) => {
                let i = self.window(nsp, WindowKind::Room(m.message.room.clone()));
                self.show_message(i, m.message);
            }
            Reply::Dm(d) => {
                let i = self.window(nsp, WindowKind::Dm(d.message.to.clone()));
                let ts = d.message.ts;
                self.push_line(
                    i,
                    LineKind::Message {
                        from: d.message.from,
                        text: d.message.text,
                        action: d.message.action,
                        seq: None,
                        mention: false,
                    },
                    ts,
                );
                if !d.delivered {
                    self.info(
                        i,
                        format!("{} is offline; it will wait for them", d.message.to),
                    );
                }
            }
            Reply::Nick(n) => {
                let old = std::mem::replace(&mut self.nick, n.nick.clone());
                self.info_active(format!("you are now known as {} (was {old})", n.nick));
            }
            Reply::Rooms(r) => {
                let i = self.target(nsp, None);
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    ns.rooms = r.rooms.iter().map(|r| r.room.clone()).collect();
                }
                if r.rooms.is_empty() {
                    self.info(i, format!("no rooms in {nsp} yet"));
                }
                for room in r.rooms {
                    let topic = room.topic.map(|t| format!(": {t}")).unwrap_or_default();
                    self.info(
                        i,
                        format!("#{} ({} members){topic}", room.room, room.members),
                    );
                }
            }
            Reply::Who(w) => {
                if let Some(r) = self.find_window(nsp, &WindowKind::Room(w.room.clone())) {
                    self.windows[r].members = w.members.clone();
                }
                let i = self.answer_window(nsp, &w.room);
                self.info(
                    i,
                    format!(
                        "#{} has {} members: {}",
                        w.room,
                        w.members.len(),
                        w.members.join(", ")
                    ),
                );
            }
            Reply::Topic(t) => {
                if let Some(r) = self.find_window(nsp, &WindowKind::Room(t.room.clone())) {
                    self.windows[r].topic = t.topic.clone();
                }
                let i = self.answer_window(nsp, &t.room);
                let text = match &t.topic {
                    Some(topic) if !topic.is_empty() => {
                        format!("topic of #{}: {topic}", t.room)
                    }
                    _ => format!("#{} has no topic", t.room),
                };
                self.info(i, text);
            }
            Reply::History(h) => self.prepend_history(nsp, h),
            Reply::Pong { rtt } => self.lag = Some(rtt),
        }
    }

    fn on_joined(&mut self, nsp: &str, j: events::JoinReply, automatic: bool) {
        let kind = WindowKind::Room(j.room.clone());
        let existed = self.find_window(nsp, &kind).is_some();
        let i = self.window(nsp, kind);
        if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
            ns.rooms.insert(j.room.clone());
        }
        if let Some(w) = self.windows.get_mut(i) {
            w.members = j.members.clone();
            w.topic = j.topic.clone();
        }
        let fresh: Vec<events::ChatMessage> = {
            let w = &self.windows[i];
            j.history
                .into_iter()
                .filter(|m| w.seen.get(&m.seq) != Some(&m.id))
                .collect()
        };
        if automatic || existed {
            if !fresh.is_empty() {
                self.info(
                    i,
                    format!("{} new message(s) while you were away", fresh.len()),
                );
            }
        } else {
            // A room the user asked for becomes the active window before its history is
            // shown, so that history does not count as unread.
            self.switch_to(i);
            self.info(
                i,
                format!("you joined #{} ({} members)", j.room, j.members.len()),
            );
            if let Some(topic) = &j.topic {
                self.info(i, format!("topic: {topic}"));
            }
        }
        for m in fresh {
            self.show_message(i, m);
        }
    }

    /// Shows a room message once: a (namespace, room, seq) already shown is skipped.
    fn show_message(&mut self, i: usize, m: events::ChatMessage) {
        let Some(w) = self.windows.get_mut(i) else {
            return;
        };
        if w.seen.get(&m.seq) == Some(&m.id) {
            return;
        }
        w.seen.insert(m.seq, m.id.clone());
        let mention = m.from != self.nick && mentions(&m.text, &self.nick);
        self.push_line(
            i,
            LineKind::Message {
                from: m.from,
                text: m.text,
                action: m.action,
                seq: Some(m.seq),
                mention,
            },
            m.ts,
        );
    }

    fn on_server_event(&mut self, nsp: &str, event: ServerEvent) {
        match event {
            ServerEvent::Message(m) => {
                self.typing
                    .retain(|t| !(t.nsp == nsp && t.room == m.room && t.nick == m.from));
                let i = self.window(nsp, WindowKind::Room(m.room.clone()));
                self.show_message(i, m);
            }
            ServerEvent::Dm(d) => {
                let i = self.window(nsp, WindowKind::Dm(d.from.clone()));
                self.push_line(
                    i,
                    LineKind::Message {
                        from: d.from,
                        text: d.text,
                        action: d.action,
                        seq: None,
                        mention: true,
                    },
                    d.ts,
                );
            }
            ServerEvent::Presence(p) => {
                let Some(i) = self.find_window(nsp, &WindowKind::Room(p.room.clone())) else {
                    return;
                };
                let w = &mut self.windows[i];
                let text = match p.action {
                    PresenceAction::Join => {
                        if !w.members.contains(&p.nick) {
                            w.members.push(p.nick.clone());
                            w.members.sort();
                        }
                        format!("{} joined #{}", p.nick, p.room)
                    }
                    PresenceAction::Leave | PresenceAction::Quit => {
                        w.members.retain(|m| m != &p.nick);
                        if p.action == PresenceAction::Leave {
                            format!("{} left #{}", p.nick, p.room)
                        } else {
                            format!("{} quit", p.nick)
                        }
                    }
                    PresenceAction::Nick => {
                        let old = p.previous.clone().unwrap_or_default();
                        w.members.retain(|m| m != &old);
                        if !w.members.contains(&p.nick) {
                            w.members.push(p.nick.clone());
                            w.members.sort();
                        }
                        format!("{old} is now known as {}", p.nick)
                    }
                };
                self.info(i, text);
            }
            ServerEvent::Room(r) => {
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    match r.action {
                        RoomAction::Created => {
                            ns.rooms.insert(r.room.clone());
                        }
                        RoomAction::Deleted => {
                            ns.rooms.remove(&r.room);
                        }
                    }
                }
                let i = self.window(nsp, WindowKind::Server);
                let what = match r.action {
                    RoomAction::Created => "created",
                    RoomAction::Deleted => "deleted",
                };
                self.info(i, format!("room #{} {what}", r.room));
            }
            ServerEvent::Topic(t) => {
                let i = self.window(nsp, WindowKind::Room(t.room.clone()));
                self.windows[i].topic = t.topic.clone();
                let text = match &t.topic {
                    Some(topic) if !topic.is_empty() => {
                        format!("{} set the topic of #{}: {topic}", t.by, t.room)
                    }
                    _ => format!("{} cleared the topic of #{}", t.by, t.room),
                };
                self.info(i, text);
            }
            ServerEvent::Notice(n) => {
                let i = self.target(nsp, None);
                self.info(i, format!("notice: {}", n.text));
            }
            ServerEvent::Typing(t) => {
                if t.nick != self.nick {
                    let until = self.clock.now_ms() + TYPING_SHOWN_MS;
                    self.typing
                        .retain(|x| !(x.nsp == nsp && x.room == t.room && x.nick == t.nick));
                    self.typing.push(Typist {
                        nsp: nsp.to_owned(),
                        room: t.room,
                        nick: t.nick,
                        until,
                    });
                }
            }
            ServerEvent::Unknown(what) => {
                let i = self.window(nsp, WindowKind::Server);
                self.info(i, format!("unknown event: {what}"));
            }
        }
    }
}

/// Does `text` mention `nick` as a whole word (case-insensitive)?
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let nick = nick.to_lowercase();
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(&nick).any(|(at, m)| {
        !is_word(text[..at].chars().next_back()) && !is_word(text[at + m.len()..].chars().next())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        let mut app = App::new("ws://x", "alice", &[], Theme::dark());
        app.clock = Clock::Fixed(0);
        app.take_commands();
        app.update(Event::Net(NetEvent::Up));
        app.update(Event::Net(NetEvent::NsConnected {
            nsp: "/".into(),
            resumed: false,
        }));
        app
    }

    fn msg(room: &str, seq: u64, from: &str, text: &str) -> events::ChatMessage {
        events::ChatMessage {
            id: format!("m{seq}"),
            room: room.into(),
            seq,
            from: from.into(),
            text: text.into(),
            ts: 0,
            action: false,
        }
    }

    fn joined(app: &mut App, room: &str, history: Vec<events::ChatMessage>, automatic: bool) {
        app.update(Event::Net(NetEvent::Reply {
            nsp: "/".into(),
            request: Request::Join { room: room.into() },
            result: Ok(Reply::Join(events::JoinReply {
                room: room.into(),
                members: vec!["alice".into(), "bob".into()],
                topic: None,
                history,
            })),
            automatic,
        }));
    }

    #[test]
    fn join_creates_and_activates_the_room() {
        let mut app = app();
        app.submit("/join #rust");
        assert_eq!(
            app.take_commands(),
            vec![NetCommand::Request {
                nsp: "/".into(),
                request: Request::Join {
                    room: "rust".into()
                }
            }]
        );
        joined(&mut app, "rust", vec![msg("rust", 1, "bob", "hi")], false);
        assert_eq!(app.active_window().map(Window::title), Some("#rust".into()));
        let journal = app.take_journal();
        assert!(
            journal.contains(&"[/ #rust] <bob> hi".to_owned()),
            "{journal:?}"
        );
    }

    #[test]
    fn rejoin_history_is_deduplicated_by_seq() {
        let mut app = app();
        joined(&mut app, "r", vec![msg("r", 1, "bob", "one")], false);
        app.update(Event::Net(NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Message(msg("r", 2, "bob", "two")),
        }));
        app.take_journal();
        joined(
            &mut app,
            "r",
            vec![
                msg("r", 1, "bob", "one"),
                msg("r", 2, "bob", "two"),
                msg("r", 3, "bob", "three"),
            ],
            true,
        );
        let journal = app.take_journal();
        assert_eq!(
            journal,
            vec![
                "[/ #r] -- 1 new message(s) while you were away".to_owned(),
                "[/ #r] <bob> three".to_owned()
            ]
        );
    }

    #[test]
    fn unknown_commands_and_refusals_are_shown_not_fatal() {
        let mut app = app();
        app.submit("/bogus");
        app.submit("hello");
        app.update(Event::Net(NetEvent::NsRefused {
            nsp: "/ops".into(),
            message: "wrong key".into(),
            code: Some("forbidden".into()),
        }));
        let journal = app.take_journal();
        assert_eq!(
            journal[journal.len() - 3],
            "[/] !! unknown command /bogus (try /help)"
        );
        assert!(journal[journal.len() - 2].contains("not a room"));
        assert!(journal[journal.len() - 1].contains("/ops refused the connection: wrong key"));
        assert!(app.failure.is_none());
    }

    #[test]
    fn script_fails_when_first_namespace_is_refused() {
        let mut app = App::new("ws://x", "alice", &[], Theme::dark());
        app.set_script_mode();
        app.update(Event::Net(NetEvent::NsRefused {
            nsp: "/".into(),
            message: "nick 'alice' is in use".into(),
            code: Some("nick_taken".into()),
        }));
        assert!(app.failure.is_some());
    }

    #[test]
    fn unread_mentions_and_read_marker() {
        let mut app = app();
        joined(&mut app, "a", vec![], false);
        joined(&mut app, "b", vec![], false);
        // Active is #b; messages in #a are unread.
        for (seq, text) in [(1, "hello"), (2, "hey alice!")] {
            app.update(Event::Net(NetEvent::Server {
                nsp: "/".into(),
                event: ServerEvent::Message(msg("a", seq, "bob", text)),
            }));
        }
        let a = app
            .windows
            .iter()
            .position(|w| w.title() == "#a")
            .unwrap_or_default();
        assert_eq!((app.windows[a].unread, app.windows[a].mentions), (2, 1));
        app.switch_to(a);
        let w = &app.windows[a];
        assert_eq!((w.unread, w.mentions), (0, 0));
        assert_eq!(w.marker, Some(w.lines.len() - 2));
    }

    #[test]
    fn keys_switch_windows_and_edit() {
        let mut app = app();
        joined(&mut app, "a", vec![], false);
        let key = |c, m| Event::Key(KeyEvent::new(c, m));
        app.update(key(KeyCode::Char('1'), KeyModifiers::ALT));
        assert_eq!(app.active, 0);
        app.update(key(KeyCode::Char('n'), KeyModifiers::CONTROL));
        assert_eq!(app.active, 1);
        app.update(key(KeyCode::Char('p'), KeyModifiers::CONTROL));
        assert_eq!(app.active, 0);
        for c in "日本😀".chars() {
            app.update(key(KeyCode::Char(c), KeyModifiers::NONE));
        }
        app.update(key(KeyCode::Left, KeyModifiers::NONE));
        app.update(key(KeyCode::Backspace, KeyModifiers::NONE));
        assert_eq!(app.input.text(), "日😀");
        app.update(key(KeyCode::Esc, KeyModifiers::NONE));
        assert_eq!(app.input.text(), "");
    }

    #[test]
    fn tab_completes_commands_nicks_and_rooms() {
        let mut app = app();
        joined(&mut app, "rust", vec![], false);
        let key = |c| Event::Key(KeyEvent::new(c, KeyModifiers::NONE));
        app.input.set("/jo");
        app.update(key(KeyCode::Tab));
        assert_eq!(app.input.text(), "/join ");
        app.input.set("/join ru");
        app.update(key(KeyCode::Tab));
        assert_eq!(app.input.text(), "/join rust ");
        app.input.set("b");
        app.update(key(KeyCode::Tab));
        assert_eq!(app.input.text(), "bob: ");
        app.input.set("hi #r");
        app.update(key(KeyCode::Tab));
        assert_eq!(app.input.text(), "hi #rust ");
        // From the server window too, for /msg.
        app.switch_to(0);
        app.input.set("/msg b");
        app.update(key(KeyCode::Tab));
        assert_eq!(app.input.text(), "/msg bob ");
    }

    #[test]
    fn multi_line_paste_asks_first() {
        let mut app = app();
        joined(&mut app, "r", vec![], false);
        app.take_commands();
        app.update(Event::Paste("one\ntwo\n".into()));
        assert!(app.pending_paste.is_some());
        assert!(app.take_commands().is_empty());
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Char('y'),
            KeyModifiers::NONE,
        )));
        assert_eq!(app.take_commands().len(), 2);
        app.update(Event::Paste("single".into()));
        assert_eq!(app.input.text(), "single");
    }

    #[test]
    fn leaving_a_room_keeps_or_moves_the_active_window_sensibly() {
        let mut app = app();
        joined(&mut app, "a", vec![], false);
        joined(&mut app, "b", vec![], false);
        let title = |app: &App| app.active_window().map(Window::title);
        assert_eq!(title(&app), Some("#b".into()));
        let left = |app: &mut App, room: &str| {
            app.update(Event::Net(NetEvent::Reply {
                nsp: "/".into(),
                request: Request::Leave { room: room.into() },
                result: Ok(Reply::Leave(events::LeaveReply { room: room.into() })),
                automatic: false,
            }));
        };
        // Leaving another room keeps #b active.
        left(&mut app, "a");
        assert_eq!(title(&app), Some("#b".into()));
        // Leaving the active room goes to the namespace window.
        left(&mut app, "b");
        assert_eq!(title(&app), Some("/".into()));
        assert_eq!(app.windows.len(), 1);
    }

    #[test]
    fn mouse_wheel_scrolls_and_new_lines_keep_the_view() {
        let mut app = app();
        joined(&mut app, "r", vec![], false);
        for seq in 1..50 {
            app.update(Event::Net(NetEvent::Server {
                nsp: "/".into(),
                event: ServerEvent::Message(msg("r", seq, "bob", "text")),
            }));
        }
        let wheel = |kind| {
            Event::Mouse(MouseEvent {
                kind,
                column: 30,
                row: 5,
                modifiers: KeyModifiers::NONE,
            })
        };
        app.update(wheel(MouseEventKind::ScrollUp));
        assert_eq!(app.windows[app.active].scroll, WHEEL_ROWS);
        app.update(Event::Net(NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Message(msg("r", 50, "bob", "new")),
        }));
        assert_eq!(app.windows[app.active].scroll, WHEEL_ROWS + 1);
        app.update(wheel(MouseEventKind::ScrollDown));
        app.update(wheel(MouseEventKind::ScrollDown));
        assert_eq!(app.windows[app.active].scroll, 0);
    }

    #[test]
    fn scrolling_past_the_top_fetches_older_history() {
        let mut app = app();
        app.update(Event::Resize(80, 24));
        let history = (60..70).map(|seq| msg("r", seq, "bob", "recent")).collect();
        joined(&mut app, "r", history, false);
        app.take_commands();
        app.update(Event::Key(KeyEvent::new(
            KeyCode::PageUp,
            KeyModifiers::NONE,
        )));
        assert_eq!(
            app.take_commands(),
            vec![NetCommand::Request {
                nsp: "/".into(),
                request: Request::History {
                    room: "r".into(),
                    before: Some(60),
                    limit: HISTORY_PAGE
                }
            }]
        );
        // A second PgUp while waiting does not ask again.
        app.update(Event::Key(KeyEvent::new(
            KeyCode::PageUp,
            KeyModifiers::NONE,
        )));
        assert!(app.take_commands().is_empty());
        app.update(Event::Net(NetEvent::Reply {
            nsp: "/".into(),
            request: Request::History {
                room: "r".into(),
                before: Some(60),
                limit: HISTORY_PAGE,
            },
            result: Ok(Reply::History(events::HistoryReply {
                room: "r".into(),
                messages: (1..60).map(|seq| msg("r", seq, "bob", "old")).collect(),
            })),
            automatic: false,
        }));
        let w = &app.windows[app.active];
        let seqs: Vec<u64> = w
            .lines
            .iter()
            .filter_map(|l| match &l.kind {
                LineKind::Message { seq, .. } => *seq,
                _ => None,
            })
            .collect();
        assert_eq!(seqs, (1..70).collect::<Vec<u64>>());
        assert_eq!(w.unread, 0);
        // Seq 1 is there: nothing older to ask for.
        app.update(Event::Key(KeyEvent::new(
            KeyCode::PageUp,
            KeyModifiers::NONE,
        )));
        for _ in 0..40 {
            app.update(Event::Key(KeyEvent::new(
                KeyCode::PageUp,
                KeyModifiers::NONE,
            )));
        }
        assert!(app.take_commands().is_empty());
    }

    #[test]
    fn join_right_after_leave_goes_to_the_server() {
        let mut app = app();
        joined(&mut app, "r", vec![], false);
        app.take_commands();
        app.submit("/leave");
        app.submit("/join r");
        let cmds = app.take_commands();
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        app.update(Event::Net(NetEvent::Reply {
            nsp: "/".into(),
            request: Request::Leave { room: "r".into() },
            result: Ok(Reply::Leave(events::LeaveReply { room: "r".into() })),
            automatic: false,
        }));
        joined(&mut app, "r", vec![], false);
        assert_eq!(app.active_window().map(Window::title), Some("#r".into()));
    }

    #[test]
    fn typing_is_throttled_and_shown_until_it_expires() {
        let mut app = app();
        joined(&mut app, "r", vec![], false);
        app.take_commands();
        let key = |c| Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        app.update(key('h'));
        app.update(key('i'));
        assert_eq!(
            app.take_commands(),
            vec![NetCommand::Typing {
                nsp: "/".into(),
                room: "r".into()
            }]
        );
        app.clock = Clock::Fixed(TYPING_EVERY_MS);
        app.update(key('!'));
        assert_eq!(app.take_commands().len(), 1);
        app.update(Event::Net(NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Typing(events::Typing {
                room: "r".into(),
                nick: "bob".into(),
            }),
        }));
        assert_eq!(app.typing_here(), vec!["bob"]);
        app.clock = Clock::Fixed(TYPING_EVERY_MS + TYPING_SHOWN_MS + 1);
        app.update(Event::Tick);
        assert!(app.typing_here().is_empty());
    }

    #[test]
    fn mention_rules() {
        assert!(mentions("hey Alice!", "alice"));
        assert!(mentions("alice: hi", "alice"));
        assert!(!mentions("malice", "alice"));
        assert!(!mentions("alice_2", "alice"));
    }
}
