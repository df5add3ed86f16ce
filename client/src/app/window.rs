//! The windows: a namespace's own window, rooms and direct conversations; their lines,
//! unread and mention counts, the read marker, and where output goes.

use std::collections::HashMap;

use super::*;

/// What a window shows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WindowKind {
    /// The namespace itself: notices, errors, command output.
    Server,
    Room(String),
    /// A direct conversation with a nick.
    Dm(String),
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
    /// Members who are away (marked in the nick list), as `who` and presence events tell.
    pub away: std::collections::BTreeSet<String>,
    /// Members who are room operators (marked `@` in the nick list), as `join`, `who` and
    /// `moderation` events tell.
    pub operators: std::collections::BTreeSet<String>,
    /// An older-history request is on its way.
    pub(super) history_pending: bool,
    /// Not (or soon not) a member: a `leave` is on its way, or the namespace was closed. A
    /// `/join` now must go to the server.
    pub(super) leaving: bool,
    /// The server has no older messages for this room.
    pub(super) history_done: bool,
    /// After a reconnect, until the room is rejoined: where the missed messages start.
    pub(super) catch_up_from: Option<usize>,
    /// Room seqs already shown (with the message id), so history replayed after a
    /// reconnect is not shown twice. The id guards against a server that restarted with an
    /// empty store and counts from 1 again: same seq, different id, a new message.
    pub(super) seen: HashMap<u64, String>,
    /// The line a search jumped to (drawn reversed until the window is left).
    pub found: Option<usize>,
    /// A search hit's seq whose messages were asked for: shown when they come.
    pub(super) jump_to: Option<u64>,
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
            away: std::collections::BTreeSet::new(),
            operators: std::collections::BTreeSet::new(),
            history_pending: false,
            history_done: false,
            catch_up_from: None,
            leaving: false,
            seen: HashMap::new(),
            found: None,
            jump_to: None,
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

impl App {
    pub(super) fn ns_order(&self, nsp: &str) -> usize {
        self.namespaces
            .iter()
            .position(|n| n.name == nsp)
            .unwrap_or(usize::MAX)
    }

    pub(super) fn find_window(&self, nsp: &str, kind: &WindowKind) -> Option<usize> {
        self.windows
            .iter()
            .position(|w| w.nsp == nsp && &w.kind == kind)
    }

    /// The index of the window, created (in sorted position) when missing.
    pub(super) fn window(&mut self, nsp: &str, kind: WindowKind) -> usize {
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

    /// A peer's nick changed: every direct conversation with the old nick (in any
    /// namespace: nicks are server-wide) now has the new one, keeping its lines, and says so.
    /// A conversation already open with the new nick takes the old one's lines.
    pub(super) fn rename_dm(&mut self, old: &str, new: &str) {
        let old_key = names::nick_key(old);
        while let Some(i) = self.windows.iter().position(
            |w| matches!(&w.kind, WindowKind::Dm(n) if names::nick_key(n) == old_key && n != new),
        ) {
            let was_active = self.active == i;
            let mut window = self.windows.remove(i);
            if self.active > i {
                self.active -= 1;
            }
            let kind = WindowKind::Dm(new.to_owned());
            let j = match self.find_window(&window.nsp, &kind) {
                Some(j) => {
                    let mut lines = std::mem::take(&mut window.lines);
                    lines.append(&mut self.windows[j].lines);
                    lines.sort_by_key(|l| l.ts);
                    self.windows[j].lines = lines;
                    self.windows[j].unread += window.unread;
                    self.windows[j].mentions += window.mentions;
                    j
                }
                None => {
                    window.kind = kind.clone();
                    let nsp = window.nsp.clone();
                    let j = self.window(&nsp, kind);
                    self.windows[j] = window;
                    j
                }
            };
            if was_active {
                self.active = j;
            }
            self.info(j, format!("{old} is now known as {new}"));
        }
    }

    pub(super) fn remove_window(&mut self, i: usize) {
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
    pub(super) fn enter(&mut self, i: usize) {
        let Some(w) = self.windows.get_mut(i) else {
            return;
        };
        w.marker = (w.read_upto < w.lines.len() && w.unread > 0).then_some(w.read_upto);
        w.found = None;
        w.unread = 0;
        w.mentions = 0;
        w.read_upto = w.lines.len();
    }

    pub(super) fn switch_by(&mut self, delta: isize) {
        let n = self.windows.len() as isize;
        if n == 0 {
            return;
        }
        let next = (self.active as isize + delta).rem_euclid(n);
        self.switch_to(next as usize);
    }

    /// Adds a line to window `i`, counting it as unread when the window is not active (our
    /// own messages never count: sent from another window, they were read as written).
    pub(super) fn push_line(&mut self, i: usize, kind: LineKind, ts: i64) {
        let journal = self.journal_line(i, &kind);
        self.journal.push(journal);
        let active = i == self.active;
        let own_key = names::nick_key(&self.nick);
        let width = self.areas().messages.width;
        let style = RowStyle {
            theme: &self.theme,
            tz: &self.tz,
            now_ms: self.clock.now_ms(),
        };
        let Some(w) = self.windows.get_mut(i) else {
            return;
        };
        if let (LineKind::Message { mention, from, .. }, false) = (&kind, active)
            && names::nick_key(from) != own_key
        {
            w.unread += 1;
            if *mention {
                w.mentions += 1;
                self.bell_due |= self.bell;
            }
        }
        w.lines.push(Line { ts, kind });
        if active {
            w.read_upto = w.lines.len();
            // Keep a scrolled-up view where the reader is; the new rows appear below it.
            if w.scroll > 0 {
                w.scroll += layout::last_line_height(&style, &w.lines, width);
            }
        }
        if w.lines.len() > SCROLLBACK_MAX {
            let drop = w.lines.len() - SCROLLBACK_MAX;
            w.lines.drain(..drop);
            w.read_upto = w.read_upto.saturating_sub(drop);
            w.marker = w.marker.map(|m| m.saturating_sub(drop));
            w.found = w.found.and_then(|f| f.checked_sub(drop));
        }
    }

    pub(super) fn journal_line(&self, i: usize, kind: &LineKind) -> String {
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
            LineKind::Pending { from, text, .. } => format!("{place} <{from}> {text} (sending)"),
            LineKind::Info(text) => format!("{place} -- {text}"),
            LineKind::Error(text) => format!("{place} !! {text}"),
        }
    }

    /// Shows a message of ours at once in window `i`, marked as on its way (not in a
    /// script's output: the server's answer is printed once it comes).
    pub(super) fn push_pending(&mut self, i: usize, text: &str, action: bool) {
        let before = self.journal.len();
        let now = self.clock.now_ms();
        let from = self.nick.clone();
        self.push_line(
            i,
            LineKind::Pending {
                from,
                text: text.to_owned(),
                action,
            },
            now,
        );
        self.journal.truncate(before);
    }

    /// Removes the first line of ours on its way with this text from window `i` (its answer
    /// came, or it was refused).
    pub(super) fn drop_pending(&mut self, i: usize, text: &str) {
        let Some(w) = self.windows.get_mut(i) else {
            return;
        };
        if let Some(at) = w
            .lines
            .iter()
            .position(|l| matches!(&l.kind, LineKind::Pending { text: t, .. } if t == text))
        {
            w.lines.remove(at);
            w.read_upto = w.read_upto.min(w.lines.len());
            if let Some(m) = w.marker.as_mut()
                && *m > at
            {
                *m -= 1;
            }
        }
    }

    pub(super) fn info(&mut self, i: usize, text: impl Into<String>) {
        let now = self.clock.now_ms();
        self.push_line(i, LineKind::Info(text.into()), now);
    }

    pub(super) fn error(&mut self, i: usize, text: impl Into<String>) {
        let now = self.clock.now_ms();
        self.push_line(i, LineKind::Error(text.into()), now);
    }

    pub(super) fn info_active(&mut self, text: impl Into<String>) {
        self.info(self.active, text);
    }

    pub(super) fn error_active(&mut self, text: impl Into<String>) {
        self.error(self.active, text);
    }

    /// Where output about namespace `nsp` (and maybe a room) goes: the room's window when
    /// it is open, else the active window when it is in that namespace, else the
    /// namespace's server window.
    pub(super) fn target(&mut self, nsp: &str, room: Option<&str>) -> usize {
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
    pub(super) fn answer_window(&mut self, nsp: &str, room: &str) -> usize {
        if self.current_ns() == nsp {
            self.active
        } else {
            self.target(nsp, Some(room))
        }
    }

    /// A line in every namespace's server window (and the active window when asked).
    pub(super) fn push_to_servers(&mut self, kind: LineKind, and_active: bool) {
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
}
