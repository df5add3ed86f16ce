//! The model and `update` of The Elm Architecture: [`App`] is all the client's state, an
//! [`Event`] is everything that can happen to it, and [`App::update`] changes the state and
//! nothing else. Work for the network is queued as [`NetCommand`]s in an outbox that the
//! runtime drains ([`App::take_commands`]); every line shown in a window is also written to a
//! journal that the headless mode prints ([`App::take_journal`]).
//!
//! The same `update` serves the terminal (keys, paste, mouse) and scripts
//! ([`Event::Line`]), so a script exercises exactly the code a person does.
//!
//! Files: this one holds the state, `update` and the keys; `window` the windows (rooms,
//! DMs, namespace windows), their lines, unread counts and read marker; `commands` what a
//! typed line does (and Tab completion, and long lines split to the server's limit);
//! `network` what the network actor reports; `search` the search results and the jump to
//! a hit.

mod commands;
mod network;
mod search;
mod window;

pub use crate::layout::{Line, LineKind};
pub use search::{Hit, SearchView, hit_place, search_request};
pub use window::{Window, WindowKind};

use std::collections::BTreeSet;
use std::time::Duration;

use chat_protocol::events::{self, PresenceAction, RoomAction};
use chat_protocol::names;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};

use crate::command::{self, Command, Input};
use crate::input::LineEditor;
use crate::layout::{self, Areas, RowStyle};
use crate::net::{Failure, NetCommand, NetEvent, Reply, Request, ServerEvent};
use crate::theme::Theme;

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
// One event at a time goes through the loop (moved, never stored in bulk), so a network
// event's size (a `join` reply's five lists inline) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
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
    /// The zone times are shown in: UTC unless the caller sets one (the binary: the system's).
    pub tz: jiff::tz::TimeZone,
    /// Set by `/quit` or Ctrl+C.
    pub quit: bool,
    /// The results of `/search` (Ctrl+F), drawn over the messages while open.
    pub search: Option<SearchView>,
    /// The server's longest message text (its `limits` event); longer lines are split.
    pub max_text_len: Option<usize>,
    /// Why a script must fail (refused first namespace, no connection at all).
    pub failure: Option<String>,
    /// Requests sent and not yet answered (scripts wait for them before exiting).
    pub in_flight: usize,
    /// The windows were told the connection is down (retries say nothing more until it is
    /// back).
    loss_reported: bool,
    /// Why the server refused our nick (shown in the status bar until a namespace takes it).
    pub nick_refused: Option<String>,
    /// Words that count as mentions besides the nick (`--highlight`, `highlights`).
    pub highlights: Vec<String>,
    /// The nick list, as toggled with Alt+N (`None`: shown from 100 columns).
    pub show_members: Option<bool>,
    /// Ring the terminal bell on a mention or direct message in a window not shown.
    pub bell: bool,
    /// A bell is due (the terminal runtime takes it: [`App::take_bell`]).
    bell_due: bool,
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
            tz: jiff::tz::TimeZone::UTC,
            quit: false,
            search: None,
            max_text_len: None,
            failure: None,
            in_flight: 0,
            loss_reported: false,
            nick_refused: None,
            highlights: Vec::new(),
            show_members: None,
            bell: true,
            bell_due: false,
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
                // One message, its lines kept (the server takes newlines in a text).
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.send_text(&paste, false);
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.info_active("paste discarded");
                }
                _ => self.pending_paste = Some(paste),
            }
            return;
        }
        if self.on_search_key(&key) {
            return;
        }
        match key.code {
            KeyCode::Char('c') if ctrl => self.request_quit(),
            // Search: the text typed so far, or start typing one.
            KeyCode::Char('f') if ctrl => {
                let typed = self.input.text().trim().to_owned();
                if typed.is_empty() || typed.starts_with('/') {
                    self.input.set("/search ");
                } else {
                    self.input.clear();
                    self.start_search(&typed);
                }
            }
            KeyCode::Char('n') if ctrl => self.switch_by(1),
            KeyCode::Char('p') if ctrl => self.switch_by(-1),
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char('u') if ctrl => self.input.delete_to_start(),
            KeyCode::Char('k') if ctrl => self.input.delete_to_end(),
            KeyCode::Char('w') if ctrl => self.input.delete_word_before(),
            KeyCode::Char('n') if alt => self.toggle_members(),
            KeyCode::Char(c) if alt && c.is_ascii_digit() && c != '0' => {
                self.switch_to(c as usize - '1' as usize);
            }
            KeyCode::Char(_) if ctrl || alt => {}
            KeyCode::Char(c) => {
                self.input.insert_char(c);
                self.typed();
            }
            // Alt+Enter (and Shift+Enter where the terminal tells them apart) starts a new
            // line of the same message.
            KeyCode::Enter if alt || key.modifiers.contains(KeyModifiers::SHIFT) => {
                self.input.insert_char('\n');
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
            // A click on a window's row in the room list switches to it.
            MouseEventKind::Down(crossterm::event::MouseButton::Left) => {
                let list = self.areas().sidebar;
                let inside = mouse.column >= list.x
                    && mouse.column < list.x + list.width
                    && mouse.row >= list.y
                    && mouse.row < list.y + list.height;
                let i = usize::from(mouse.row.saturating_sub(list.y));
                if inside && i < self.windows.len() {
                    self.switch_to(i);
                }
            }
            _ => {}
        }
    }

    fn request_quit(&mut self) {
        self.quit = true;
        self.outbox.push(NetCommand::Shutdown);
    }

    /// Whether the terminal bell is due (a mention or direct message arrived in a window not
    /// shown since the last call).
    pub fn take_bell(&mut self) -> bool {
        std::mem::take(&mut self.bell_due)
    }

    /// The terminal's title: the nick, and the unread messages and mentions of every window
    /// (`chat: alice (3 unread, 1 mention)`).
    pub fn terminal_title(&self) -> String {
        let unread: usize = self.windows.iter().map(|w| w.unread).sum();
        let mentions: usize = self.windows.iter().map(|w| w.mentions).sum();
        let nick = crate::sanitize::one_line(&self.nick);
        match (unread, mentions) {
            (0, 0) => format!("chat: {nick}"),
            (u, 0) => format!("chat: {nick} ({u} unread)"),
            (u, m) => format!(
                "chat: {nick} ({u} unread, {m} mention{})",
                if m == 1 { "" } else { "s" }
            ),
        }
    }

    /// Does this text mention us (our nick or a highlight word)?
    pub(super) fn mentions_us(&self, text: &str) -> bool {
        mentions(text, &self.nick) || self.highlights.iter().any(|w| mentions(text, w))
    }

    /// Where each part of the screen goes at the current terminal size (the nick list for a
    /// room or a conversation when shown).
    pub fn areas(&self) -> Areas {
        self.areas_in(ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1))
    }

    /// [`App::areas`] for a screen of that size (what the view draws in).
    pub fn areas_in(&self, area: ratatui::layout::Rect) -> Areas {
        let members = self.members_shown()
            && self
                .active_window()
                .is_some_and(|w| w.kind != WindowKind::Server);
        layout::layout_with(area, members)
    }

    /// Whether the nick list is shown: as the user toggled it (Alt+N), else from
    /// [`layout::MEMBERS_FROM`] columns.
    pub fn members_shown(&self) -> bool {
        self.show_members
            .unwrap_or(self.size.0 >= layout::MEMBERS_FROM)
    }

    fn toggle_members(&mut self) {
        self.show_members = Some(!self.members_shown());
    }

    /// The colours and time zone lines are drawn with.
    pub fn row_style(&self) -> RowStyle<'_> {
        RowStyle {
            theme: &self.theme,
            tz: &self.tz,
            now_ms: self.clock.now_ms(),
        }
    }

    fn page_rows(&self) -> usize {
        let areas = self.areas();
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
        // A page fetched around a search hit may end well before the loaded lines.
        let first_loaded = w.lines.iter().find_map(|l| match l.kind {
            LineKind::Message { seq: Some(s), .. } => Some(s),
            _ => None,
        });
        let newest_older = older.iter().rev().find_map(|l| match l.kind {
            LineKind::Message { seq: Some(s), .. } => Some(s),
            _ => None,
        });
        if let (Some(newest), Some(first)) = (newest_older, first_loaded)
            && newest + 1 < first
        {
            let ts = older.last().map_or(0, |l| l.ts);
            older.push(Line {
                ts,
                kind: LineKind::Info(format!(
                    "messages #{} to #{} are not loaded",
                    newest + 1,
                    first - 1
                )),
            });
        }
        let n = older.len();
        w.lines.splice(0..0, older);
        w.read_upto += n;
        w.marker = w.marker.map(|m| m + n);
        w.found = w.found.map(|f| f + n);
        if let Some(seq) = w.jump_to.take() {
            let at = w.lines.iter().position(
                |l| matches!(&l.kind, LineKind::Message { seq: Some(s), .. } if *s == seq),
            );
            match at {
                Some(at) => self.show_line(i, at),
                None => self.error(i, format!("message #{seq} is no longer kept")),
            }
        }
    }

    fn clamp_scroll(&mut self) {
        let areas = self.areas();
        let (width, height) = (areas.messages.width, areas.messages.height);
        let Some(w) = self.windows.get(self.active) else {
            return;
        };
        let total = layout::wrapped_rows(&self.row_style(), &w.lines, w.marker, width).len();
        let max = total.saturating_sub(usize::from(height));
        if let Some(w) = self.windows.get_mut(self.active) {
            w.scroll = w.scroll.min(max);
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
    let is_word = |c: Option<char>| {
        c.is_some_and(|c| c.is_alphanumeric() || c == '_' || chat_protocol::names::is_mark(c))
    };
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
                away: Vec::new(),
                operators: Vec::new(),
                topic: None,
                history,
            })),
            automatic,
        }));
    }

    #[test]
    fn highlight_words_mention_us_and_ring_the_bell_for_a_window_not_shown() {
        let mut app = app();
        app.highlights = vec!["deploy".into()];
        joined(&mut app, "ops", vec![], false);
        joined(&mut app, "chat", vec![], false);
        // #chat is shown; #ops is not.
        let server = |app: &mut App, room: &str, seq: u64, text: &str| {
            app.update(Event::Net(NetEvent::Server {
                nsp: "/".into(),
                event: ServerEvent::Message(msg(room, seq, "bob", text)),
            }));
        };
        server(&mut app, "ops", 1, "nothing for you");
        assert!(!app.take_bell());
        server(&mut app, "chat", 1, "alice: in the shown window");
        assert!(!app.take_bell(), "no bell for the window being read");
        server(&mut app, "ops", 2, "Deploy is done");
        assert!(app.take_bell());
        assert!(!app.take_bell(), "taken once");
        let ops = app
            .find_window("/", &WindowKind::Room("ops".into()))
            .unwrap();
        assert_eq!((app.windows[ops].unread, app.windows[ops].mentions), (2, 1));
        assert_eq!(app.terminal_title(), "chat: alice (2 unread, 1 mention)");
        app.bell = false;
        server(&mut app, "ops", 3, "alice, redeploy");
        assert!(!app.take_bell(), "the bell is off");
        // Not a word of its own: no mention.
        server(&mut app, "ops", 4, "redeployment");
        assert_eq!(app.windows[ops].mentions, 2);
        app.switch_to(ops);
        assert_eq!(app.terminal_title(), "chat: alice");
    }

    #[test]
    fn admin_commands_name_the_message_and_never_show_a_password() {
        let mut app = app();
        joined(
            &mut app,
            "r",
            vec![
                msg("r", 1, "bob", "buy cheap pills"),
                msg("r", 2, "carol", "bob: buy what?"),
                msg("r", 3, "Bob", "BUY NOW"),
                msg("r", 4, "bob", "sorry"),
            ],
            false,
        );
        app.take_commands();
        let kinds = |app: &App| -> Vec<LineKind> {
            app.active_window()
                .map(|w| w.lines.iter().map(|l| l.kind.clone()).collect())
                .unwrap_or_default()
        };
        let delete = |seq| NetCommand::Request {
            nsp: "/".into(),
            request: Request::Delete {
                room: "r".into(),
                seq,
            },
        };
        // The newest shown message of the nick (any case) holding the words.
        app.submit("/delete BOB buy");
        assert_eq!(app.take_commands(), vec![delete(3)]);
        app.submit("/delete 1");
        assert_eq!(app.take_commands(), vec![delete(1)]);
        app.submit("/delete carol pills");
        assert!(app.take_commands().is_empty());
        assert!(
            matches!(kinds(&app).last(), Some(LineKind::Error(e)) if e.contains("no message of carol")),
            "{:?}",
            kinds(&app).last()
        );
        app.take_journal();
        app.submit("/resetpass dave hunter2");
        let sent = app.take_commands();
        let [NetCommand::Request { request, .. }] = &sent[..] else {
            panic!("{sent:?}");
        };
        assert_eq!(request.payload()["password"], "hunter2");
        for result in [
            Ok(Reply::PasswordReset(events::ResetPasswordReply {
                nick: "dave".into(),
            })),
            Err(Failure::Server(events::ErrorBody {
                code: events::ErrorCode::NotRegistered,
                message: "dave is not registered".into(),
            })),
        ] {
            app.update(Event::Net(NetEvent::Reply {
                nsp: "/".into(),
                request: request.clone(),
                result,
                automatic: false,
            }));
        }
        let shown = format!("{:?}", kinds(&app));
        assert!(shown.contains("password of dave reset"), "{shown}");
        assert!(
            shown.contains("password of dave not reset: dave is not registered"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{:?}", app.take_journal()).contains("hunter2"));
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
                "[/ #r] <bob> three".to_owned(),
                "[/ #r] -- 1 new message(s) while you were away".to_owned(),
            ]
        );
        // On screen the announcement sits above the missed message.
        let w = &app.windows[app.active];
        let n = w.lines.len();
        assert!(
            matches!(&w.lines[n - 2].kind, LineKind::Info(t) if t.contains("while you were away"))
        );
    }

    #[test]
    fn messages_replayed_after_a_reconnect_are_announced_as_missed() {
        let mut app = app();
        joined(&mut app, "r", vec![msg("r", 1, "bob", "one")], false);
        app.update(Event::Net(NetEvent::Down {
            reason: "gone".into(),
            ever_connected: true,
            retry_in: Duration::from_millis(100),
        }));
        app.update(Event::Net(NetEvent::NsConnected {
            nsp: "/".into(),
            resumed: true,
        }));
        // A server honouring `since` replays as events, then the rejoin answer repeats them.
        for (seq, text) in [(2, "two"), (3, "three")] {
            app.update(Event::Net(NetEvent::Server {
                nsp: "/".into(),
                event: ServerEvent::Message(msg("r", seq, "bob", text)),
            }));
        }
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
        assert_eq!(
            app.take_journal(),
            vec!["[/ #r] -- 2 new message(s) while you were away".to_owned()]
        );
        let w = &app.windows[app.active];
        let texts: Vec<String> = w
            .lines
            .iter()
            .map(|l| match &l.kind {
                LineKind::Message { text, .. } => text.clone(),
                LineKind::Pending { text, .. } => format!("pending {text}"),
                LineKind::Info(t) | LineKind::Error(t) => format!("-- {t}"),
            })
            .collect();
        let at = texts
            .iter()
            .position(|t| t.contains("while you were away"))
            .unwrap_or_default();
        assert_eq!(texts[at + 1..], ["two".to_owned(), "three".to_owned()]);
    }

    #[test]
    fn unknown_commands_and_refusals_are_shown_not_fatal() {
        let mut app = app();
        app.submit("/bogus");
        app.submit("hello");
        app.update(Event::Net(NetEvent::NsRefused {
            nsp: "/ops".into(),
            message: "wrong key".into(),
            code: Some(events::ErrorCode::Forbidden),
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
            code: Some(events::ErrorCode::NickTaken),
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
        // One message, its lines kept.
        let sent = app.take_commands();
        assert!(
            matches!(
                sent.as_slice(),
                [NetCommand::Request { request: Request::Message { text, .. }, .. }] if text == "one\ntwo"
            ),
            "{sent:?}"
        );
        app.update(Event::Paste("single".into()));
        assert_eq!(app.input.text(), "single");
    }

    #[test]
    fn a_line_typed_while_offline_shows_at_once_as_pending_then_as_sent() {
        let mut app = app();
        joined(&mut app, "r", vec![], false);
        app.update(Event::Net(NetEvent::Down {
            reason: "the server is not running".into(),
            ever_connected: true,
            retry_in: Duration::from_secs(1),
        }));
        app.take_journal();
        app.submit("typed while offline");
        let kinds = |app: &App| -> Vec<LineKind> {
            app.active_window()
                .map(|w| w.lines.iter().map(|l| l.kind.clone()).collect())
                .unwrap_or_default()
        };
        assert!(
            matches!(kinds(&app).last(), Some(LineKind::Pending { text, .. }) if text == "typed while offline")
        );
        assert!(
            app.take_journal().is_empty(),
            "a script prints the sent line only"
        );
        app.update(Event::Net(NetEvent::Reply {
            nsp: "/".into(),
            request: Request::Message {
                room: "r".into(),
                text: "typed while offline".into(),
                action: false,
            },
            result: Ok(Reply::Message(events::MessageReply {
                message: std::borrow::Cow::Owned(msg("r", 7, "alice", "typed while offline")),
            })),
            automatic: false,
        }));
        let lines = kinds(&app);
        assert!(!lines.iter().any(|k| matches!(k, LineKind::Pending { .. })));
        let sent = lines
            .iter()
            .filter(
                |k| matches!(k, LineKind::Message { text, .. } if text == "typed while offline"),
            )
            .count();
        assert_eq!(sent, 1);
    }

    #[test]
    fn a_text_over_the_limit_goes_back_to_the_input_line() {
        let mut app = app();
        joined(&mut app, "r", vec![], false);
        app.take_commands();
        // Words are split into several messages (`render.rs`); one word cannot be.
        let words = "word ".repeat(900);
        app.input.set(&words);
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Enter,
            KeyModifiers::NONE,
        )));
        assert_eq!(app.take_commands().len(), 2, "sent as two messages");
        let long = "w".repeat(4500);
        app.input.set(&long);
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Enter,
            KeyModifiers::NONE,
        )));
        assert!(app.take_commands().is_empty(), "sent anyway");
        assert_eq!(app.input.text(), long, "the text was lost");
        let last = app
            .active_window()
            .and_then(|w| w.lines.last())
            .map(|l| l.kind.clone());
        assert!(
            matches!(&last, Some(LineKind::Error(e)) if e.contains("back in the input line")),
            "{last:?}"
        );
    }

    #[test]
    fn alt_enter_starts_a_new_line_of_the_same_message() {
        let key = |c| Event::Key(KeyEvent::new(c, KeyModifiers::NONE));
        let mut app = app();
        joined(&mut app, "r", vec![], false);
        app.take_commands();
        for c in "first".chars() {
            app.update(key(KeyCode::Char(c)));
        }
        app.update(Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)));
        for c in "second".chars() {
            app.update(key(KeyCode::Char(c)));
        }
        assert!(
            app.take_commands()
                .iter()
                .all(|c| !matches!(c, NetCommand::Request { .. }))
        );
        assert_eq!(app.input.visible(40).0, "first↵second");
        app.update(key(KeyCode::Enter));
        let sent = app.take_commands();
        assert!(
            sent.iter().any(|c| matches!(
                c,
                NetCommand::Request { request: Request::Message { text, .. }, .. } if text == "first\nsecond"
            )),
            "{sent:?}"
        );
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
        // A vowel sign or virama continues the word: தம is not mentioned in தமிழ்.
        assert!(!mentions("வணக்கம் தமிழ் நண்பர்களே", "தம"));
        assert!(mentions("வணக்கம் தமிழ் நண்பர்களே", "தமிழ்"));
    }
}
