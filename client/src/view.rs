//! The pure view: draws an [`App`] and changes nothing. `impl Widget for &App` paints the
//! whole screen; [`view`] also places the terminal cursor in the input line.
//!
//! Screen layout (see [`crate::layout`]): a title row (window name and topic), the room list on the
//! left beside the message pane, a status row, the input row. The room list is hidden on
//! very narrow terminals.
//!
//! Text that came over the network (messages, topics, nicks, room names, errors) is drawn
//! through [`crate::sanitize`]: control characters, C1 controls and bidirectional overrides
//! appear as escapes (`\u{1b}`, `\u{202e}`), a tab as a space. A newline in a message
//! starts an indented continuation row, like a wrapped row: only a line's first row starts
//! at the left edge with its time, so no text can draw a row that looks like a message of
//! its own. One-row places (the title, the room list, the status line) show a newline as a
//! space.

use std::time::Duration;

use ratatui::Frame;
use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::Widget;
use unicode_width::UnicodeWidthStr;

use crate::app::{App, ConnState, NsStatus, SearchView, Window, WindowKind, hit_place};
use crate::columns::{char_columns, columns};
use crate::layout::{members, tail_rows, wrapped_rows};
use crate::sanitize;

/// Draws the app and puts the cursor at the input position.
pub fn view(app: &App, frame: &mut Frame) {
    let area = frame.area();
    frame.render_widget(app, area);
    let areas = app.areas_in(area);
    align_to_terminal(
        frame.buffer_mut(),
        &[
            areas.title,
            areas.sidebar,
            areas.messages,
            areas.members,
            areas.status,
            areas.input,
        ],
    );
    if app.pending_paste.is_none() {
        let (prompt, _) = input_parts(app, areas.input.width);
        let (_, col) = app
            .input
            .visible(usize::from(areas.input.width).saturating_sub(columns(&prompt)));
        let x = areas.input.x + (columns(&prompt) + col).min(usize::from(areas.input.width)) as u16;
        frame.set_cursor_position(Position::new(
            x.min(areas.input.right().saturating_sub(1)),
            areas.input.y,
        ));
    }
}

/// Moves ratatui's cells to the columns the terminal will put them in, row by row inside
/// each of `areas`. A cluster that holds a combining mark and takes more than one column,
/// on screen or in ratatui's count, becomes cells of one terminal column each (a base
/// character and the zero-width marks after it):
/// - a consonant and its vowel sign (`வி`), a conjunct (`प्रि`): terminals that measure text a
///   code point at a time (tmux, xterm and most others) hold it as that many cells and erase
///   them one at a time, where ratatui holds one wide cell and, when it changes, writes only
///   its first column (a vowel sign stayed on screen after its nick left the member list);
/// - a consonant and a spacing vowel sign that unicode-width counts as no column (`நா`,
///   `বা`, see [`crate::columns`]): the terminal gives it one more column than ratatui, so
///   what follows moves one column right, and the row gives back a blank cell (its last
///   blank after the cluster; the layout measured the text in terminal columns, so there is
///   one), or, if none, its last cell.
///
/// Clusters whose pieces are not one column each (a CJK character, an emoji) are left as
/// they are: terminals hold those as one wide cell, as ratatui does.
pub fn align_to_terminal(buf: &mut Buffer, areas: &[Rect]) {
    let whole = buf.area;
    for area in areas.iter().map(|a| a.intersection(whole)) {
        for y in area.top()..area.bottom() {
            align_row(buf, area.left(), area.right(), y);
        }
    }
}

/// One row of [`align_to_terminal`], from column `left` up to `right`.
fn align_row(buf: &mut Buffer, left: u16, right: u16, y: u16) {
    let width = usize::from(right - left);
    // The row's cells as the terminal will hold them, each marked when it is a blank that
    // may be given back; built only once a cluster needs splitting.
    let mut row: Option<Vec<(Cell, bool)>> = None;
    // Where the first split cluster starts in `row`: blanks are given back after it.
    let mut first_split = 0;
    let mut x = left;
    while x < right {
        let cell = &buf[(x, y)];
        let symbol = cell.symbol();
        let wide = symbol.width().max(1);
        let pieces = (symbol.chars().count() > 1
            && symbol.chars().any(chat_protocol::names::is_mark)
            && (wide > 1 || columns(symbol) > wide))
            .then(|| cluster_pieces(symbol))
            .filter(|p| p.len() == columns(symbol) && p.iter().all(|piece| columns(piece) == 1));
        match (pieces, &mut row) {
            (Some(pieces), _) => {
                let cells = row.get_or_insert_with(|| {
                    first_split = usize::from(x - left);
                    (left..x).map(|x| (buf[(x, y)].clone(), false)).collect()
                });
                let style = cell.style();
                for piece in pieces {
                    let mut one = Cell::default();
                    one.set_symbol(&piece).set_style(style);
                    cells.push((one, false));
                }
            }
            (None, Some(cells)) => {
                for i in 0..wide as u16 {
                    if x + i < right {
                        let c = buf[(x + i, y)].clone();
                        let blank = wide == 1 && c.symbol() == " ";
                        cells.push((c, blank));
                    }
                }
            }
            (None, None) => {}
        }
        x = x.saturating_add(wide as u16);
    }
    let Some(mut cells) = row else {
        return;
    };
    // Give back blanks after the first split cluster, the last ones first; then cut.
    let mut i = cells.len();
    while cells.len() > width && i > first_split {
        i -= 1;
        if cells[i].1 {
            cells.remove(i);
        }
    }
    cells.truncate(width);
    // A wide cell whose second column was cut off is a blank.
    for (i, (cell, _)) in cells.iter_mut().enumerate() {
        if i + cell.symbol().width().max(1) > width {
            cell.set_symbol(" ");
        }
    }
    while cells.len() < width {
        cells.push((Cell::default(), true));
    }
    for (i, (cell, _)) in cells.into_iter().enumerate() {
        buf[(left + i as u16, y)] = cell;
    }
}

/// A cluster cut before each character that takes a terminal column: each piece one such
/// character and the zero-width ones after it.
fn cluster_pieces(cluster: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    for c in cluster.chars() {
        match pieces.last_mut() {
            Some(last) if char_columns(c) == 0 => last.push(c),
            _ => pieces.push(c.to_string()),
        }
    }
    pieces
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let areas = self.areas_in(area);
        render_title(self, areas.title, buf);
        render_sidebar(self, areas.sidebar, buf);
        if areas.separator.width > 0 {
            for y in areas.separator.top()..areas.separator.bottom() {
                buf.set_string(areas.separator.x, y, "│", self.theme.separator);
            }
        }
        render_messages(self, areas.messages, buf);
        if areas.members.width > 0 {
            for y in areas.members_separator.top()..areas.members_separator.bottom() {
                buf.set_string(areas.members_separator.x, y, "│", self.theme.separator);
            }
            render_members(self, areas.members, buf);
        }
        render_status(self, areas.status, buf);
        render_input(self, areas.input, buf);
    }
}

/// Cuts `s` to at most `width` columns, ending in `…` when something was cut.
fn fit_ellipsis(s: &str, width: usize) -> String {
    if columns(s) <= width {
        return s.to_owned();
    }
    let mut out = fit(s, width.saturating_sub(1));
    if width > 0 {
        out.push('…');
    }
    out
}

/// Cuts `s` to at most `width` columns (never halving a wide character).
fn fit(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = char_columns(c);
        if w + cw > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out
}

fn fill_row(buf: &mut Buffer, area: Rect, style: Style) {
    if area.height > 0 {
        buf.set_style(Rect::new(area.x, area.y, area.width, 1), style);
    }
}

fn render_title(app: &App, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    fill_row(buf, area, app.theme.title);
    let Some(w) = app.active_window() else {
        return;
    };
    let text = match &w.kind {
        WindowKind::Server => {
            let state = match app.ns_info(&w.nsp).map(|n| &n.status) {
                Some(NsStatus::Connected) => "connected".to_owned(),
                Some(NsStatus::Connecting) | None => "connecting...".to_owned(),
                Some(NsStatus::Refused(why)) => format!("refused: {why}"),
                Some(NsStatus::Closed) => "closed by the server".to_owned(),
            };
            format!(" namespace {} - {state}", w.nsp)
        }
        WindowKind::Room(room) => {
            let topic = w
                .topic
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| format!(" - {t}"))
                .unwrap_or_default();
            format!(" #{room} ({}){topic}", members(w.members.len()))
        }
        WindowKind::Dm(nick) => format!(" direct messages with {nick}"),
    };
    buf.set_string(
        area.x,
        area.y,
        fit(&sanitize::one_line(&text), usize::from(area.width)),
        app.theme.title,
    );
}

fn render_sidebar(app: &App, area: Rect, buf: &mut Buffer) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let width = usize::from(area.width);
    for (i, w) in app
        .windows
        .iter()
        .enumerate()
        .take(usize::from(area.height))
    {
        let y = area.y + i as u16;
        let number = if i < 9 {
            char::from(b'1' + i as u8)
        } else {
            ' '
        };
        let (name, base) = match &w.kind {
            WindowKind::Server => {
                let mark = match app.ns_info(&w.nsp).map(|n| &n.status) {
                    Some(NsStatus::Connected) => "",
                    Some(NsStatus::Connecting) | None => " …",
                    Some(NsStatus::Refused(_) | NsStatus::Closed) => " ✗",
                };
                (format!("{number} {}{mark}", w.nsp), app.theme.sidebar_ns)
            }
            _ => (format!("{number}  {}", w.title()), app.theme.sidebar),
        };
        let mut counts: Vec<Span> = Vec::new();
        if w.unread > 0 {
            counts.push(Span::styled(format!(" {}", w.unread), app.theme.unread));
        }
        if w.mentions > 0 {
            counts.push(Span::styled(format!(" @{}", w.mentions), app.theme.mention));
        }
        let counts_w: usize = counts.iter().map(|s| columns(&s.content)).sum();
        let name = fit_ellipsis(&sanitize::one_line(&name), width.saturating_sub(counts_w));
        let active = i == app.active;
        let style = if active {
            app.theme.sidebar_active
        } else {
            base
        };
        if active {
            fill_row(buf, Rect::new(area.x, y, area.width, 1), style);
        }
        buf.set_string(area.x, y, &name, style);
        // Counts flush right (cut on a very narrow list).
        let mut x = area.x + width.saturating_sub(counts_w) as u16;
        for span in counts {
            let s = if active {
                span.style.patch(style)
            } else {
                span.style
            };
            if x >= area.right() {
                break;
            }
            let room = usize::from(area.right() - x);
            buf.set_stringn(x, y, span.content.as_ref(), room, s);
            x = x.saturating_add(span.content.width() as u16);
        }
    }
}

/// The nick list of the active room (its members, ours in bold) or conversation (the two
/// of us); names that do not fit end in an ellipsis, and a last row says how many are not
/// shown.
fn render_members(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(w) = app.active_window() else {
        return;
    };
    let names: Vec<String> = match &w.kind {
        WindowKind::Room(_) => w.members.clone(),
        WindowKind::Dm(peer) => vec![app.nick.clone(), peer.clone()],
        WindowKind::Server => return,
    };
    let width = usize::from(area.width);
    let height = usize::from(area.height);
    if height == 0 {
        return;
    }
    buf.set_string(
        area.x,
        area.y,
        fit(&format!(" {}", members(names.len())), width),
        app.theme.sidebar_ns,
    );
    let rows = height - 1;
    let shown = if names.len() > rows {
        rows.saturating_sub(1)
    } else {
        names.len()
    };
    let own = chat_protocol::names::nick_key(&app.nick);
    for (i, name) in names.iter().take(shown).enumerate() {
        // Away members are dimmed and marked `~`.
        let away = w.away.contains(name);
        let style = if away {
            app.theme.info
        } else if chat_protocol::names::nick_key(name) == own {
            app.theme.sidebar_active
        } else {
            Style::new().fg(app.theme.nick_color(name))
        };
        // Operators are marked `@` (IRC's mark), before away's `~`.
        let mark = if w.operators.contains(name) {
            '@'
        } else if away {
            '~'
        } else {
            ' '
        };
        let text = fit_ellipsis(&format!("{mark}{}", sanitize::one_line(name)), width);
        buf.set_string(area.x, area.y + 1 + i as u16, text, style);
    }
    if shown < names.len() && rows > 0 {
        let more = format!(" and {} more", names.len() - shown);
        buf.set_string(
            area.x,
            area.y + 1 + shown as u16,
            fit(&more, width),
            app.theme.info,
        );
    }
}

fn render_messages(app: &App, area: Rect, buf: &mut Buffer) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    if let Some(search) = &app.search {
        return render_search(app, search, area, buf);
    }
    let Some(w) = app.active_window() else {
        return;
    };
    let height = usize::from(area.height);
    let style = app.row_style();
    let rows = tail_rows(
        &style,
        &w.lines,
        w.marker,
        area.width,
        height.saturating_add(w.scroll),
    );
    let scroll = w.scroll.min(rows.len().saturating_sub(height));
    let end = rows.len() - scroll;
    let start = end.saturating_sub(height);
    for (dy, row) in rows[start..end].iter().enumerate() {
        buf.set_line(area.x, area.y + dy as u16, row, area.width);
    }
    // The line a search jumped to, reversed (its rows counted from the end).
    if let Some(at) = w.found.filter(|&at| at < w.lines.len()) {
        let after = wrapped_rows(&style, &w.lines[at + 1..], None, area.width).len();
        let own = wrapped_rows(&style, &w.lines[at..=at], None, area.width).len();
        let last = rows.len().saturating_sub(after);
        for r in last.saturating_sub(own)..last {
            if (start..end).contains(&r) {
                let y = area.y + (r - start) as u16;
                buf.set_style(Rect::new(area.x, y, area.width, 1), app.theme.found);
            }
        }
    }
}

/// The search results over the messages: what was searched, then one row per hit (where,
/// who, the text on one row), the chosen one reversed and kept in view.
fn render_search(app: &App, search: &SearchView, area: Rect, buf: &mut Buffer) {
    let width = usize::from(area.width);
    buf.set_string(
        area.x,
        area.y,
        fit_ellipsis(&sanitize::one_line(&search.header()), width),
        app.theme.info,
    );
    let rows = usize::from(area.height).saturating_sub(1);
    if rows == 0 {
        return;
    }
    let first = search.selected.saturating_sub(rows - 1);
    for (dy, (i, hit)) in search
        .hits
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .enumerate()
    {
        let y = area.y + 1 + dy as u16;
        let text = format!(
            "{} {} <{}> {}",
            crate::layout::hhmm(hit.ts, &app.tz),
            hit_place(hit),
            hit.from,
            hit.text
        );
        let style = if i == search.selected {
            app.theme.found
        } else {
            app.theme.text
        };
        buf.set_string(
            area.x,
            y,
            fit_ellipsis(&sanitize::one_line(&text), width),
            style,
        );
    }
}

fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    fill_row(buf, area, app.theme.status);
    let text = if let Some(paste) = &app.pending_paste {
        let where_ = app.active_window().map(Window::title).unwrap_or_default();
        format!(
            " paste {} lines into {where_}? y = send, n = discard",
            paste.lines().count()
        )
    } else {
        let conn = match &app.conn {
            ConnState::Online => "online".to_owned(),
            ConnState::Connecting { attempt: 0 } => "connecting...".to_owned(),
            ConnState::Connecting { attempt } => format!("reconnecting (try {})", attempt + 1),
            ConnState::Offline { retry_in, reason } => {
                format!(
                    "offline ({reason}), retry in {:.0} s",
                    retry_in.as_secs_f64().ceil()
                )
            }
        };
        let lag = match app.lag {
            Some(d) if d < Duration::from_millis(1) => " | lag <1 ms".to_owned(),
            Some(d) => format!(" | lag {} ms", d.as_millis()),
            None => String::new(),
        };
        let typing = match app.typing_here().as_slice() {
            [] => String::new(),
            [one] => format!(" | {one} is typing"),
            many => format!(" | {} are typing", many.join(", ")),
        };
        let scrolled = match app.active_window() {
            Some(w) if w.scroll > 0 => " | scrolled up (PgDn)",
            _ => "",
        };
        let nick = match &app.nick_refused {
            Some(why) => format!("{} refused: {why} (/nick <other>)", app.nick),
            None => app.nick.clone(),
        };
        // Where the input goes: the namespace and the room or conversation.
        let place = match app.active_window() {
            Some(w) if w.kind != WindowKind::Server => format!("{} {}", w.nsp, w.title()),
            _ => format!("ns {}", app.current_ns()),
        };
        format!(" {conn} | {nick} | {place}{lag}{typing}{scrolled} | /help")
    };
    buf.set_string(
        area.x,
        area.y,
        fit(&sanitize::one_line(&text), usize::from(area.width)),
        app.theme.status,
    );
}

/// The prompt and the visible input text for an input row of `width` columns.
fn input_parts(app: &App, width: u16) -> (String, String) {
    let prompt = match app.active_window() {
        Some(w) => format!("[{}] ", sanitize::one_line(&w.title())),
        None => "> ".to_owned(),
    };
    // A long window name must not eat the input line.
    let prompt = if columns(&prompt) > usize::from(width) / 3 {
        "> ".to_owned()
    } else {
        prompt
    };
    let (text, _) = app
        .input
        .visible(usize::from(width).saturating_sub(columns(&prompt)));
    (prompt, text)
}

fn render_input(app: &App, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let (prompt, text) = input_parts(app, area.width);
    buf.set_string(area.x, area.y, &prompt, app.theme.prompt);
    let x = area.x + prompt.width() as u16;
    if x < area.right() {
        buf.set_string(
            x,
            area.y,
            fit(&text, usize::from(area.right() - x)),
            Style::new(),
        );
    }
}
