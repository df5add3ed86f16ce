//! Layout shared by the model and the view: where each part of the screen goes
//! ([`layout`]), the lines a window holds ([`Line`], [`LineKind`]) and how they wrap into
//! rows at a width ([`tail_rows`], [`last_line_height`]). The model (`app`) uses it for scrolling
//! and page sizes, the view (`view`) to draw; neither imports the other for it, so the
//! rows counted when scrolling are the rows drawn.

use crate::columns::{char_columns, columns};
use jiff::tz::TimeZone;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;

use crate::sanitize;
use crate::theme::Theme;

/// One drawn row of the message pane.
pub type Row = ratatui::text::Line<'static>;

/// What a line of a window is.
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
    /// A message of ours on its way: shown as typed, marked, until the server's answer
    /// replaces it (or a refusal removes it).
    Pending {
        from: String,
        text: String,
        action: bool,
    },
    /// A system line: joins, topics, command output.
    Info(String),
    /// Something refused or failed.
    Error(String),
}

/// One line of a window: a message or a notice, with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    pub kind: LineKind,
}

/// What follows a message of ours until the server has it.
pub const PENDING_MARK: &str = "(sending…)";

/// What rows are drawn with: the colours, the time zone of the timestamps, and now (for
/// which day is today).
#[derive(Debug, Clone, Copy)]
pub struct RowStyle<'a> {
    pub theme: &'a Theme,
    pub tz: &'a TimeZone,
    /// Milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub title: Rect,
    pub sidebar: Rect,
    pub separator: Rect,
    pub messages: Rect,
    /// The nick list (zero wide when hidden) and the line left of it.
    pub members_separator: Rect,
    pub members: Rect,
    pub status: Rect,
    pub input: Rect,
}

/// Columns of the nick list, when shown.
pub const MEMBERS_WIDTH: u16 = 18;
/// From this many columns the nick list is shown unless the user hid it (Alt+N).
pub const MEMBERS_FROM: u16 = 100;

/// Splits the screen, with the nick list at the right when `members` (and the screen is
/// wide enough for it beside 40 columns of messages). Pure, so `update` uses it too (page
/// size for PgUp/PgDn).
pub fn layout_with(area: Rect, members: bool) -> Areas {
    let mut areas = layout(area);
    let m = &mut areas.messages;
    if members && m.width >= MEMBERS_WIDTH + 1 + 40 {
        m.width -= MEMBERS_WIDTH + 1;
        areas.members_separator = Rect::new(m.right(), m.y, 1, m.height);
        areas.members = Rect::new(m.right() + 1, m.y, MEMBERS_WIDTH, m.height);
    }
    areas
}

/// Splits the screen, without the nick list.
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
        members_separator: Rect::new(area.right(), body_y, 0, body_h),
        members: Rect::new(area.right(), body_y, 0, body_h),
        status,
        input,
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

/// The local date of a millisecond timestamp in time zone `tz`.
pub fn local_date(ts_ms: i64, tz: &TimeZone) -> jiff::civil::Date {
    jiff::Timestamp::from_millisecond(ts_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
        .date()
}

/// "Sunday 6 December 2026".
pub fn long_date(date: jiff::civil::Date) -> String {
    date.strftime("%A %-d %B %Y").to_string()
}

/// The day line that goes above line `i` of `lines`, if any: where the day changes from the
/// line before, and above the first line when that is not of today. So a window of today's
/// lines has none, and history from earlier days says which day each part is from.
fn day_row(style: &RowStyle, lines: &[Line], i: usize, width: usize) -> Option<Row> {
    let day = local_date(lines.get(i)?.ts, style.tz);
    let before = match i.checked_sub(1) {
        Some(p) => local_date(lines[p].ts, style.tz),
        None => local_date(style.now_ms, style.tz),
    };
    if day == before {
        return None;
    }
    let label = format!("── {} ", long_date(day));
    let rest = width.saturating_sub(columns(&label));
    let mut text = format!("{label}{}", "─".repeat(rest));
    if columns(&label) > width {
        text = text.chars().take(width).collect();
    }
    Some(Row::styled(text, style.theme.info))
}

/// Splits `text` into rows: the first at most `first` columns wide, the rest at most
/// `rest`. Breaks at spaces; a word longer than a row is cut between characters.
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_w = 0usize;
    let limit = |rows: &Vec<String>| if rows.is_empty() { first } else { rest }.max(1);
    for word in text.split(' ') {
        let ww = columns(word);
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
            let cw = char_columns(c);
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

/// How many rows the last line of `lines` takes in a message pane `width` columns wide (its
/// day line included).
pub fn last_line_height(style: &RowStyle, lines: &[Line], width: u16) -> usize {
    let Some(i) = lines.len().checked_sub(1) else {
        return 0;
    };
    let width = usize::from(width);
    line_rows(style, &lines[i], width).len()
        + usize::from(day_row(style, lines, i, width).is_some())
}

/// The rows one line of a window takes at `width` columns.
fn line_rows(style: &RowStyle, line: &Line, width: usize) -> Vec<Row> {
    let theme = style.theme;
    let ts = format!("{} ", hhmm(line.ts, style.tz));
    let pending_text;
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
        LineKind::Pending { from, text, action } => {
            let from = sanitize::one_line(from);
            let prefix = if *action {
                format!("* {from} ")
            } else {
                format!("<{from}> ")
            };
            pending_text = format!("{text} {PENDING_MARK}");
            (prefix, theme.info, &pending_text, theme.info)
        }
        LineKind::Info(text) => ("-- ".to_owned(), theme.info, text, theme.info),
        LineKind::Error(text) => ("!! ".to_owned(), theme.error, text, theme.error),
    };
    // Escaped, and split at its newlines: every row after the first is indented.
    let paragraphs = sanitize::rows(text);
    let pw = columns(&ts) + columns(&prefix);
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
            rows.push(Row::from(vec![
                Span::styled(ts.clone(), theme.timestamp),
                Span::styled(prefix.clone(), prefix_style),
                Span::styled(piece, text_style),
            ]));
        } else {
            rows.push(Row::from(vec![
                Span::raw(" ".repeat(indent)),
                Span::styled(piece, text_style),
            ]));
        }
    }
    rows
}

fn marker_row(style: &RowStyle, width: usize) -> Row {
    let label = "── new ";
    let rest = width.saturating_sub(columns(label));
    Row::styled(format!("{label}{}", "─".repeat(rest)), style.theme.marker)
}

/// Every row of a window's `lines` at `width` columns, the read marker (before line
/// `marker`) and the day lines included.
pub fn wrapped_rows(
    style: &RowStyle,
    lines: &[Line],
    marker: Option<usize>,
    width: u16,
) -> Vec<Row> {
    tail_rows(style, lines, marker, width, usize::MAX)
}

/// At least the last `needed` rows of a window (all of them when there are fewer), built
/// from the end so a long scrollback costs only what is shown.
pub fn tail_rows(
    style: &RowStyle,
    lines: &[Line],
    marker: Option<usize>,
    width: u16,
    needed: usize,
) -> Vec<Row> {
    let width = usize::from(width);
    let mut chunks: Vec<Vec<Row>> = Vec::new();
    let mut count = 0usize;
    for (i, line) in lines.iter().enumerate().rev() {
        let mut rows = line_rows(style, line, width);
        if marker == Some(i) {
            rows.insert(0, marker_row(style, width));
        }
        if let Some(day) = day_row(style, lines, i, width) {
            rows.insert(0, day);
        }
        count += rows.len();
        chunks.push(rows);
        if count >= needed {
            break;
        }
    }
    chunks.into_iter().rev().flatten().collect()
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
