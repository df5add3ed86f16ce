//! The input line: text, a cursor kept as a *character* index (never a byte index), the
//! history, and the horizontal scrolling that keeps the cursor visible. Columns are measured
//! as the terminal counts them ([`crate::columns`]), so wide characters (CJK, most emoji) take
//! two cells and a spacing vowel sign (`ா`) one.

/// How many submitted lines the history keeps.
const HISTORY_MAX: usize = 200;

#[derive(Debug, Default, Clone)]
pub struct LineEditor {
    text: String,
    /// Cursor position in characters, `0..=char_count`.
    cursor: usize,
    history: Vec<String>,
    /// Position while browsing the history (`None`: editing a fresh line).
    browsing: Option<usize>,
    /// The fresh line put aside while browsing.
    draft: String,
}

impl LineEditor {
    pub fn new() -> LineEditor {
        LineEditor::default()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor as a character index.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn char_count(&self) -> usize {
        self.text.chars().count()
    }

    /// The byte offset of character index `i` (the end for `i == char_count`).
    fn byte_at(&self, i: usize) -> usize {
        self.text
            .char_indices()
            .nth(i)
            .map_or(self.text.len(), |(b, _)| b)
    }

    /// Replaces the whole line and puts the cursor at its end.
    pub fn set(&mut self, text: &str) {
        self.text = text.to_owned();
        self.cursor = self.char_count();
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
        self.browsing = None;
    }

    /// Takes the line for sending, records it in the history (unless it holds a password:
    /// [`crate::command::redact`]) and clears the editor.
    pub fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        let secret = crate::command::redact(&line) != line;
        if !line.trim().is_empty() && !secret && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_MAX {
                self.history.remove(0);
            }
        }
        line
    }

    pub fn insert_char(&mut self, c: char) {
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    pub fn insert_str(&mut self, s: &str) {
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, s);
        self.cursor += s.chars().count();
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor == 0 {
            return;
        }
        let start = self.byte_at(self.cursor - 1);
        let end = self.byte_at(self.cursor);
        self.text.replace_range(start..end, "");
        self.cursor -= 1;
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor >= self.char_count() {
            return;
        }
        let start = self.byte_at(self.cursor);
        let end = self.byte_at(self.cursor + 1);
        self.text.replace_range(start..end, "");
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.char_count());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.char_count();
    }

    /// Moves to the start of the previous word.
    pub fn word_left(&mut self) {
        let chars: Vec<char> = self.text.chars().collect();
        let mut i = self.cursor;
        while i > 0 && chars[i - 1].is_whitespace() {
            i -= 1;
        }
        while i > 0 && !chars[i - 1].is_whitespace() {
            i -= 1;
        }
        self.cursor = i;
    }

    /// Moves past the end of the next word.
    pub fn word_right(&mut self) {
        let chars: Vec<char> = self.text.chars().collect();
        let mut i = self.cursor;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        self.cursor = i;
    }

    /// Ctrl+W: deletes the word before the cursor.
    pub fn delete_word_before(&mut self) {
        let end = self.cursor;
        self.word_left();
        let (start_b, end_b) = (self.byte_at(self.cursor), self.byte_at(end));
        self.text.replace_range(start_b..end_b, "");
    }

    /// Ctrl+U: deletes from the start of the line to the cursor.
    pub fn delete_to_start(&mut self) {
        let end_b = self.byte_at(self.cursor);
        self.text.replace_range(..end_b, "");
        self.cursor = 0;
    }

    /// Ctrl+K: deletes from the cursor to the end of the line.
    pub fn delete_to_end(&mut self) {
        let start_b = self.byte_at(self.cursor);
        self.text.truncate(start_b);
    }

    /// Up: the previous history entry (keeping the fresh line as a draft).
    pub fn history_prev(&mut self) {
        if self.history.is_empty() {
            return;
        }
        let next = match self.browsing {
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => 0,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        let entry = self.history[next].clone();
        self.set(&entry);
    }

    /// Down: the next history entry, then back to the draft.
    pub fn history_next(&mut self) {
        let Some(i) = self.browsing else {
            return;
        };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            let entry = self.history[i + 1].clone();
            self.set(&entry);
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.set(&draft);
        }
    }

    /// The text before the cursor.
    pub fn before_cursor(&self) -> &str {
        &self.text[..self.byte_at(self.cursor)]
    }

    /// Replaces the characters `start..cursor` (character indices) with `with`.
    pub fn replace_before_cursor(&mut self, start: usize, with: &str) {
        let (sb, eb) = (self.byte_at(start), self.byte_at(self.cursor));
        self.text.replace_range(sb..eb, with);
        self.cursor = start + with.chars().count();
    }

    /// The display column of the cursor from the start of the line (a newline shows as one
    /// column: [`NEWLINE_MARK`]).
    pub fn cursor_column(&self) -> usize {
        self.before_cursor().chars().map(shown_width).sum()
    }

    /// What fits in `width` columns with the cursor visible: the visible text and the
    /// cursor's column inside it. Scrolls so the cursor sits on the right edge when the line
    /// is too long; a wide character is never cut in half.
    pub fn visible(&self, width: usize) -> (String, usize) {
        if width == 0 {
            return (String::new(), 0);
        }
        let cursor_col = self.cursor_column();
        // Leave one column for the cursor itself at the end of the line.
        let need_skip = (cursor_col + 1).saturating_sub(width);
        let mut skipped = 0usize;
        let mut out = String::new();
        let mut col = 0usize;
        for c in self.text.chars() {
            let w = shown_width(c);
            if skipped < need_skip {
                skipped += w;
                continue;
            }
            if col + w > width {
                break;
            }
            out.push(if c == '\n' { NEWLINE_MARK } else { c });
            col += w;
        }
        (out, cursor_col.saturating_sub(skipped))
    }
}

/// How a newline in the input line is shown (Alt+Enter inserts one; the message keeps it).
pub const NEWLINE_MARK: char = '↵';

/// Columns a character of the input takes on screen.
fn shown_width(c: char) -> usize {
    if c == '\n' {
        1
    } else {
        crate::columns::char_columns(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &str) -> LineEditor {
        let mut e = LineEditor::new();
        for c in s.chars() {
            e.insert_char(c);
        }
        e
    }

    #[test]
    fn emoji_and_cjk_editing() {
        let mut e = typed("a😀日本");
        assert_eq!(e.cursor(), 4);
        assert_eq!(e.cursor_column(), 1 + 2 + 2 + 2);
        e.left();
        e.left();
        assert_eq!(e.cursor_column(), 3);
        e.backspace(); // removes the emoji
        assert_eq!(e.text(), "a日本");
        assert_eq!(e.cursor(), 1);
        e.insert_char('é');
        assert_eq!(e.text(), "aé日本");
        e.delete(); // removes 日
        assert_eq!(e.text(), "aé本");
        e.end();
        e.insert_str("🎉x");
        assert_eq!(e.text(), "aé本🎉x");
        assert_eq!(e.cursor(), 5);
        e.home();
        e.delete();
        assert_eq!(e.text(), "é本🎉x");
        e.backspace(); // nothing before the cursor
        assert_eq!(e.text(), "é本🎉x");
    }

    #[test]
    fn combining_and_zwj_do_not_break_utf8() {
        // Family emoji built with zero-width joiners: several chars, each editable.
        let mut e = typed("👨\u{200d}👩x");
        assert_eq!(e.cursor(), 4);
        while !e.is_empty() {
            e.backspace();
        }
        assert_eq!(e.cursor(), 0);
        let mut e = typed("e\u{301}");
        e.left();
        e.delete();
        assert_eq!(e.text(), "e");
    }

    #[test]
    fn word_motions_and_kills() {
        let mut e = typed("hello 世界 wide");
        e.delete_word_before();
        assert_eq!(e.text(), "hello 世界 ");
        e.word_left();
        assert_eq!(e.cursor(), 6);
        e.delete_to_end();
        assert_eq!(e.text(), "hello ");
        e.home();
        e.word_right();
        assert_eq!(e.cursor(), 5);
        e.delete_to_start();
        assert_eq!(e.text(), " ");
    }

    #[test]
    fn a_line_with_a_password_stays_out_of_the_history() {
        let mut e = typed("/msg bob hi");
        e.submit();
        e.set("/resetpass bob hunter2");
        assert_eq!(e.submit(), "/resetpass bob hunter2");
        e.history_prev();
        assert_eq!(e.text(), "/msg bob hi");
    }

    #[test]
    fn history_keeps_the_draft() {
        let mut e = typed("one");
        e.submit();
        e.set("two");
        e.submit();
        e.set("dra");
        e.history_prev();
        assert_eq!(e.text(), "two");
        e.history_prev();
        assert_eq!(e.text(), "one");
        e.history_prev();
        assert_eq!(e.text(), "one");
        e.history_next();
        assert_eq!(e.text(), "two");
        e.history_next();
        assert_eq!(e.text(), "dra");
        assert_eq!(e.cursor(), 3);
    }

    #[test]
    fn visible_window_scrolls_with_wide_chars() {
        let e = typed("日本語のテキスト");
        // 8 wide chars = 16 columns; 10 columns visible, the cursor needs one.
        let (shown, col) = e.visible(10);
        assert_eq!(shown, "テキスト");
        assert_eq!(col, 8);
        let mut e = typed("ab日本");
        e.home();
        let (shown, col) = e.visible(4);
        assert_eq!(shown, "ab日");
        assert_eq!(col, 0);
        let (shown, col) = typed("short").visible(20);
        assert_eq!((shown.as_str(), col), ("short", 5));
    }

    #[test]
    fn replace_before_cursor_for_completion() {
        let mut e = typed("/jo");
        e.replace_before_cursor(0, "/join ");
        assert_eq!(e.text(), "/join ");
        assert_eq!(e.cursor(), 6);
    }
}
