//! The pure view: draws an [`App`] and changes nothing. `impl Widget for &App` paints the
//! whole screen; [`view`] also places the terminal cursor in the input line.
//!
//! Screen layout (see [`layout`]): a title row (window name and topic), the room list on the
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

use jiff::tz::TimeZone;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::app::{self, App, ConnState, LineKind, NsStatus, Window, WindowKind};
use crate::sanitize;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub title: Rect,
    pub sidebar: Rect,
    pub separator: Rect,
    pub messages: Rect,
    pub status: Rect,
    pub input: Rect,
}

/// Splits the screen. Pure, so `update` uses it too (page size for PgUp/PgDn).
pub fn layout(area: Rect) -> Areas {
    let h = area.height;
    let title = Rect::new(area.x, area.y, area.width, h.min(1));
    let input = Rect::new(area.x, area.y + h.saturating_sub(1), area.width, h.min(1));
    let status = Rect::new(
        area.x,
        area.y + h.saturating_sub(2),
        area.width,
        u16::from(h >= 2),
    );
    let body_h = h.saturating_sub(3);
    let sidebar_w = match area.width {
        w if w >= 100 => 22,
        w if w >= 60 => 18,
        _ => 0,
    };
    let sep_w = u16::from(sidebar_w > 0);
    let body_y = area.y + h.min(1);
    Areas {
        title,
        sidebar: Rect::new(area.x, body_y, sidebar_w, body_h),
        separator: Rect::new(area.x + sidebar_w, body_y, sep_w, body_h),
        messages: Rect::new(
            area.x + sidebar_w + sep_w,
            body_y,
            area.width.saturating_sub(sidebar_w + sep_w),
            body_h,
        ),
        status,
        input,
    }
}

/// Draws the app and puts the cursor at the input position.
pub fn view(app: &App, frame: &mut Frame) {
    let area = frame.area();
    frame.render_widget(app, area);
    if app.pending_paste.is_none() {
        let areas = layout(area);
        let (prompt, _) = input_parts(app, areas.input.width);
        let (_, col) = app
            .input
            .visible(usize::from(areas.input.width).saturating_sub(prompt.width()));
        let x = areas.input.x + (prompt.width() + col).min(usize::from(areas.input.width)) as u16;
        frame.set_cursor_position(Position::new(
            x.min(areas.input.right().saturating_sub(1)),
            areas.input.y,
        ));
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let areas = layout(area);
        render_title(self, areas.title, buf);
        render_sidebar(self, areas.sidebar, buf);
        if areas.separator.width > 0 {
            for y in areas.separator.top()..areas.separator.bottom() {
                buf.set_string(areas.separator.x, y, "│", self.theme.separator);
            }
        }
        render_messages(self, areas.messages, buf);
        render_status(self, areas.status, buf);
        render_input(self, areas.input, buf);
    }
}

/// `HH:MM` of a millisecond timestamp in time zone `tz` (with its offset at that instant).
pub fn hhmm(ts_ms: i64, tz: &TimeZone) -> String {
    let offset = jiff::Timestamp::from_millisecond(ts_ms)
        .map(|t| i64::from(tz.to_offset(t).seconds()))
        .unwrap_or(0);
    let secs = (ts_ms.div_euclid(1000) + offset).rem_euclid(86_400);
    format!("{:02}:{:02}", secs / 3600, (secs / 60) % 60)
}

/// Cuts `s` to at most `width` columns (never halving a wide character).
fn fit(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
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
        let counts_w: usize = counts.iter().map(|s| s.content.width()).sum();
        let name = fit(&sanitize::one_line(&name), width.saturating_sub(counts_w));
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

/// Splits `text` into rows: the first at most `first` columns wide, the rest at most
/// `rest`. Breaks at spaces; a word longer than a row is cut between characters.
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_w = 0usize;
    let limit = |rows: &Vec<String>| if rows.is_empty() { first } else { rest }.max(1);
    for word in text.split(' ') {
        let ww = word.width();
        let sep = usize::from(!cur.is_empty());
        if cur_w + sep + ww <= limit(&rows) {
            if sep == 1 {
                cur.push(' ');
            }
            cur.push_str(word);
            cur_w += sep + ww;
            continue;
        }
        if !cur.is_empty() {
            rows.push(std::mem::take(&mut cur));
            cur_w = 0;
        }
        if ww <= limit(&rows) {
            cur.push_str(word);
            cur_w = ww;
            continue;
        }
        for c in word.chars() {
            let cw = c.width().unwrap_or(0);
            if cur_w + cw > limit(&rows) && !cur.is_empty() {
                rows.push(std::mem::take(&mut cur));
                cur_w = 0;
            }
            cur.push(c);
            cur_w += cw;
        }
    }
    if !cur.is_empty() || rows.is_empty() {
        rows.push(cur);
    }
    rows
}

/// How many rows one line takes in a message pane `width` columns wide.
pub fn line_height(app: &App, line: &app::Line, width: u16) -> usize {
    line_rows(app, line, usize::from(width)).len()
}

/// The rows one line of a window takes at `width` columns.
fn line_rows(app: &App, line: &app::Line, width: usize) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let ts = format!("{} ", hhmm(line.ts, &app.tz));
    let (prefix, prefix_style, text, text_style) = match &line.kind {
        LineKind::Message {
            from,
            text,
            action,
            mention,
            ..
        } => {
            let nick_style = Style::new()
                .fg(theme.nick_color(from))
                .add_modifier(Modifier::BOLD);
            let text_style = if *mention {
                theme.text.add_modifier(Modifier::BOLD)
            } else {
                theme.text
            };
            let from = sanitize::one_line(from);
            if *action {
                (format!("* {from} "), nick_style, text, text_style)
            } else {
                (format!("<{from}> "), nick_style, text, text_style)
            }
        }
        LineKind::Info(text) => ("-- ".to_owned(), theme.info, text, theme.info),
        LineKind::Error(text) => ("!! ".to_owned(), theme.error, text, theme.error),
    };
    // Escaped, and split at its newlines: every row after the first is indented.
    let paragraphs = sanitize::rows(text);
    let pw = ts.width() + prefix.width();
    let indent = if width >= pw + 12 { pw } else { 2.min(width) };
    let first = width.saturating_sub(pw);
    let rest = width.saturating_sub(indent);
    let mut pieces = Vec::new();
    for (p, paragraph) in paragraphs.iter().enumerate() {
        if p > 0 {
            pieces.extend(wrap(paragraph, rest, rest));
        } else if first == 0 {
            pieces.push(String::new());
            pieces.extend(wrap(paragraph, rest, rest));
        } else {
            pieces.extend(wrap(paragraph, first, rest));
        }
    }
    let mut rows = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.into_iter().enumerate() {
        if i == 0 {
            rows.push(Line::from(vec![
                Span::styled(ts.clone(), theme.timestamp),
                Span::styled(prefix.clone(), prefix_style),
                Span::styled(piece, text_style),
            ]));
        } else {
            rows.push(Line::from(vec![
                Span::raw(" ".repeat(indent)),
                Span::styled(piece, text_style),
            ]));
        }
    }
    rows
}

fn marker_row(app: &App, width: usize) -> Line<'static> {
    let label = "── new ";
    let rest = width.saturating_sub(label.width());
    Line::styled(format!("{label}{}", "─".repeat(rest)), app.theme.marker)
}

/// Every row of a window at `width` columns, the read marker included.
pub fn wrapped_rows(app: &App, w: &Window, width: u16) -> Vec<Line<'static>> {
    tail_rows(app, w, width, usize::MAX)
}

/// At least the last `needed` rows of a window (all of them when there are fewer), built
/// from the end so a long scrollback costs only what is shown.
fn tail_rows(app: &App, w: &Window, width: u16, needed: usize) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let mut chunks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut count = 0usize;
    for (i, line) in w.lines.iter().enumerate().rev() {
        let mut rows = line_rows(app, line, width);
        if w.marker == Some(i) {
            rows.insert(0, marker_row(app, width));
        }
        count += rows.len();
        chunks.push(rows);
        if count >= needed {
            break;
        }
    }
    chunks.into_iter().rev().flatten().collect()
}

fn render_messages(app: &App, area: Rect, buf: &mut Buffer) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let Some(w) = app.active_window() else {
        return;
    };
    let height = usize::from(area.height);
    let rows = tail_rows(app, w, area.width, height.saturating_add(w.scroll));
    let scroll = w.scroll.min(rows.len().saturating_sub(height));
    let end = rows.len() - scroll;
    let start = end.saturating_sub(height);
    for (dy, row) in rows[start..end].iter().enumerate() {
        buf.set_line(area.x, area.y + dy as u16, row, area.width);
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
            ConnState::Offline { retry_in, .. } => {
                format!("offline, retry in {:.0} s", retry_in.as_secs_f64().ceil())
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
        format!(
            " {} | {} | ns {}{lag}{typing}{scrolled} | /help",
            conn,
            app.nick,
            app.current_ns()
        )
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
    let prompt = if prompt.width() > usize::from(width) / 3 {
        "> ".to_owned()
    } else {
        prompt
    };
    let (text, _) = app
        .input
        .visible(usize::from(width).saturating_sub(prompt.width()));
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

/// "1 member", "2 members".
pub fn members(n: usize) -> String {
    if n == 1 {
        "1 member".to_owned()
    } else {
        format!("{n} members")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words_and_cuts_long_ones() {
        assert_eq!(wrap("hello world foo", 11, 11), vec!["hello world", "foo"]);
        assert_eq!(wrap("abcdefghij", 4, 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("日本語テキスト", 5, 6), vec!["日本", "語テキ", "スト"]);
        assert_eq!(wrap("", 5, 5), vec![""]);
        assert_eq!(wrap("a b", 1, 1), vec!["a", "b"]);
    }

    #[test]
    fn timestamps_are_hh_mm_in_the_time_zone() {
        let utc = TimeZone::UTC;
        assert_eq!(hhmm(0, &utc), "00:00");
        assert_eq!(hhmm(((13 * 60 + 7) * 60 + 59) * 1000, &utc), "13:07");
        assert_eq!(hhmm(-60_000, &utc), "23:59");
        let fixed = |secs| TimeZone::fixed(jiff::tz::Offset::from_seconds(secs).unwrap());
        assert_eq!(hhmm(0, &fixed(2 * 3600)), "02:00");
        assert_eq!(hhmm(0, &fixed(-(5 * 3600 + 30 * 60))), "18:30");
        // Daylight saving time: the offset of the message's instant, not today's.
        let paris = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let jan = 1_767_268_800_000; // 2026-01-01 12:00 UTC
        let jul = 1_782_907_200_000; // 2026-07-01 12:00 UTC
        assert_eq!(hhmm(jan, &paris), "13:00");
        assert_eq!(hhmm(jul, &paris), "14:00");
    }

    #[test]
    fn layout_fits_80x24() {
        let a = layout(Rect::new(0, 0, 80, 24));
        assert_eq!(a.sidebar.width, 18);
        assert_eq!(a.messages.width, 61);
        assert_eq!(a.messages.height, 21);
        assert_eq!(a.input.y, 23);
        assert_eq!(a.status.y, 22);
        let tiny = layout(Rect::new(0, 0, 10, 2));
        assert_eq!(tiny.sidebar.width, 0);
        assert_eq!(tiny.messages.height, 0);
    }
}
