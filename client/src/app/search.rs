//! Search (`/search text`, Ctrl+F): first the lines loaded in the current window, at once,
//! then the server's history (`search` request) of the current room, or of every room of
//! the namespace from its own window. The hits are a list drawn over the messages
//! ([`SearchView`]); Up/Down choose one, Enter jumps to its line in its window (asking the
//! server for the messages around it when it is not loaded), Esc closes the list. Every hit
//! is also a journal line, `[/ search] #room <nick> text`, for scripts.
//!
//! Words match as the server matches them ([`chat_protocol::search::Phrase`]): the same
//! words in a row, whole words, without regard to case or diacritics.

use chat_protocol::search::Phrase;

use super::*;

/// Messages asked for around a hit that is not loaded: this many after it (the rest of a
/// history page before it).
const JUMP_AFTER: u64 = 10;

/// One hit: where its line is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub nsp: String,
    /// The window the line is (or goes) in.
    pub kind: WindowKind,
    /// A room message's seq.
    pub seq: Option<u64>,
    /// A line of the scrollback without a seq: its index when found.
    pub line: Option<usize>,
    pub from: String,
    pub text: String,
    pub ts: i64,
}

/// The results list of the search in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchView {
    pub nsp: String,
    /// The room searched on the server; `None`: every room of the namespace (or no server
    /// search, from a direct conversation: those are not kept by the server).
    pub room: Option<String>,
    pub text: String,
    /// The window's own hits first (newest first), then the server's (newest first).
    pub hits: Vec<Hit>,
    pub selected: usize,
    /// A server search is on its way.
    pub pending: bool,
    /// The server has more: the `before` of the next page.
    pub next: Option<String>,
    /// Why the server's search failed.
    pub failed: Option<String>,
}

impl SearchView {
    /// The first line of the list: what was searched and how far it got.
    pub fn header(&self) -> String {
        let place = match &self.room {
            Some(room) => format!("#{room}"),
            None => self.nsp.clone(),
        };
        let state = if self.pending {
            " (asking the server...)".to_owned()
        } else if let Some(why) = &self.failed {
            format!(" (the server's search failed: {why})")
        } else if self.next.is_some() {
            " (more: Down at the end) - Enter: go to it, Esc: close".to_owned()
        } else {
            " - Enter: go to it, Esc: close".to_owned()
        };
        format!(
            "found \"{}\" in {place}: {}{state}",
            self.text,
            self.hits.len()
        )
    }
}

/// The `search` request for a room (or every room), a text and a page.
pub fn search_request(room: Option<String>, text: &str, before: Option<String>) -> Request {
    Request::Search(Box::new(events::SearchRequest {
        room,
        text: text.to_owned(),
        before,
        limit: None,
    }))
}

/// Where a hit is, as the list and the journal show it.
pub fn hit_place(hit: &Hit) -> String {
    match &hit.kind {
        WindowKind::Server => hit.nsp.clone(),
        WindowKind::Room(r) => format!("#{r}"),
        WindowKind::Dm(n) => format!("@{n}"),
    }
}

impl App {
    /// `/search text`: the active window's lines at once, then the server.
    pub(super) fn start_search(&mut self, text: &str) {
        let text = text.trim();
        let Some(phrase) = Phrase::new(text) else {
            self.error_active("nothing to search for: give a word or two");
            return;
        };
        let Some(w) = self.active_window() else {
            return;
        };
        let nsp = w.nsp.clone();
        let hits: Vec<Hit> = w
            .lines
            .iter()
            .enumerate()
            .rev()
            .filter_map(|(i, line)| match &line.kind {
                LineKind::Message {
                    from, text, seq, ..
                } if phrase.matches(text) => Some(Hit {
                    nsp: nsp.clone(),
                    kind: w.kind.clone(),
                    seq: *seq,
                    line: seq.is_none().then_some(i),
                    from: from.clone(),
                    text: text.clone(),
                    ts: line.ts,
                }),
                _ => None,
            })
            .collect();
        let (room, ask_server) = match &w.kind {
            WindowKind::Room(room) => (Some(room.clone()), true),
            WindowKind::Server => (None, true),
            WindowKind::Dm(_) => (None, false),
        };
        for hit in &hits {
            self.journal_hit(hit);
        }
        self.search = Some(SearchView {
            nsp: nsp.clone(),
            room: room.clone(),
            text: text.to_owned(),
            hits,
            selected: 0,
            pending: ask_server,
            next: None,
            failed: None,
        });
        if ask_server {
            self.request(&nsp, search_request(room, text, None));
        }
    }

    fn journal_hit(&mut self, hit: &Hit) {
        let line = format!(
            "[{} search] {} <{}> {}",
            hit.nsp,
            hit_place(hit),
            hit.from,
            hit.text
        );
        self.journal.push(line);
    }

    /// The list this request's answer belongs to: the one open, if it asked this.
    fn view_for(&mut self, nsp: &str, asked: &events::SearchRequest) -> Option<&mut SearchView> {
        self.search
            .as_mut()
            .filter(|v| v.nsp == nsp && v.room == asked.room && v.text == asked.text)
    }

    /// The server's page of hits, after those already listed (none twice).
    pub(super) fn on_search_reply(
        &mut self,
        nsp: &str,
        asked: &events::SearchRequest,
        reply: events::SearchReply,
    ) {
        let Some(view) = self.view_for(nsp, asked) else {
            return;
        };
        view.pending = false;
        view.next = reply.next;
        let mut added = Vec::new();
        for m in reply.messages {
            let kind = WindowKind::Room(m.room.clone());
            if view
                .hits
                .iter()
                .any(|h| h.kind == kind && h.seq == Some(m.seq))
            {
                continue;
            }
            let hit = Hit {
                nsp: nsp.to_owned(),
                kind,
                seq: Some(m.seq),
                line: None,
                from: m.from,
                text: m.text,
                ts: m.ts,
            };
            view.hits.push(hit.clone());
            added.push(hit);
        }
        let summary = format!(
            "[{nsp} search] {} found for \"{}\"",
            view.hits.len(),
            view.text
        );
        for hit in &added {
            self.journal_hit(hit);
        }
        self.journal.push(summary);
    }

    pub(super) fn on_search_failed(
        &mut self,
        nsp: &str,
        asked: &events::SearchRequest,
        failure: &Failure,
    ) {
        if let Some(view) = self.view_for(nsp, asked) {
            view.pending = false;
            view.failed = Some(failure.to_string());
            let line = format!("[{nsp} search] the server's search failed: {failure}");
            self.journal.push(line);
        }
    }

    /// Keys while the results list is open; false when the key is not the list's.
    pub(super) fn on_search_key(&mut self, key: &KeyEvent) -> bool {
        let Some(view) = self.search.as_mut() else {
            return false;
        };
        match key.code {
            KeyCode::Esc => self.search = None,
            KeyCode::Up => view.selected = view.selected.saturating_sub(1),
            KeyCode::Down => {
                if view.selected + 1 < view.hits.len() {
                    view.selected += 1;
                } else if let (Some(before), false) = (view.next.clone(), view.pending) {
                    view.pending = true;
                    let request = search_request(view.room.clone(), &view.text, Some(before));
                    let nsp = view.nsp.clone();
                    self.request(&nsp, request);
                }
            }
            KeyCode::Enter if self.input.is_empty() => self.jump_to_selected(),
            _ => return false,
        }
        true
    }

    /// Closes the list and shows the chosen hit's line in its window.
    pub(super) fn jump_to_selected(&mut self) {
        let Some(view) = self.search.take() else {
            return;
        };
        let Some(hit) = view.hits.get(view.selected).cloned() else {
            return;
        };
        let Some(i) = self.find_window(&hit.nsp, &hit.kind) else {
            self.error_active(format!("{} is not open here", hit_place(&hit)));
            return;
        };
        self.switch_to(i);
        let w = &self.windows[i];
        let at = match (hit.seq, hit.line) {
            (Some(seq), _) => w.lines.iter().position(
                |l| matches!(&l.kind, LineKind::Message { seq: Some(s), .. } if *s == seq),
            ),
            (None, Some(line)) => Some(line).filter(|&l| l < w.lines.len()),
            (None, None) => None,
        };
        match (at, hit.seq, &hit.kind) {
            (Some(at), _, _) => self.show_line(i, at),
            (None, Some(seq), WindowKind::Room(room)) => {
                // Not loaded: ask for the messages around it; the reply shows it.
                let request = Request::History {
                    room: room.clone(),
                    before: Some(seq + JUMP_AFTER + 1),
                    limit: HISTORY_PAGE,
                };
                let w = &mut self.windows[i];
                w.jump_to = Some(seq);
                w.history_pending = true;
                self.request(&hit.nsp, request);
            }
            _ => self.error_active("that line is no longer here"),
        }
    }

    /// Scrolls window `i` so that line `at` is in the upper third of the messages, and
    /// marks it.
    pub(super) fn show_line(&mut self, i: usize, at: usize) {
        let areas = self.areas();
        let (width, height) = (areas.messages.width, usize::from(areas.messages.height));
        let style = self.row_style();
        let Some(w) = self.windows.get(i) else {
            return;
        };
        let below = layout::wrapped_rows(&style, &w.lines[at..], None, width).len();
        let scroll = below.saturating_sub(height - height / 3);
        if let Some(w) = self.windows.get_mut(i) {
            w.scroll = scroll;
            w.found = Some(at);
        }
        self.clamp_scroll();
    }
}
