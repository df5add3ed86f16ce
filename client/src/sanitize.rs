//! Text from the network made harmless for a terminal: the one place that decides which
//! characters are shown as escapes. Both outputs use it: the headless transcript
//! ([`crate::script`]) and the TUI ([`crate::view`]).
//!
//! Anything another user (or the server) chose can arrive here: messages, DMs, notices,
//! topics, nicks, room names, error messages. Printed raw, some characters would act on the
//! terminal or on the reader instead of being read: ESC and C1 controls start escape
//! sequences (an OSC `ESC ] 0;title BEL` retitles the window, U+009B is a one-character
//! CSI), a carriage return moves back over text already printed, bidirectional overrides
//! reorder what follows, and a newline forges a line of its own.
//!
//! The rules ([`clean`]):
//! - A *hostile* character ([`is_hostile`]) is shown as its Rust-style Unicode escape,
//!   lowercase hex: ESC as `\u{1b}`, CR as `\u{d}`, BEL as `\u{7}`, DEL as `\u{7f}`, the CSI
//!   U+009B as `\u{9b}`, RIGHT-TO-LEFT OVERRIDE as `\u{202e}`. Hostile are the C0 controls
//!   except tab and newline, DEL, the C1 controls (U+0080-U+009F), the bidirectional
//!   embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), and the line and
//!   paragraph separators (U+2028, U+2029, which some viewers break lines at).
//! - A tab is shown as one space (as wide as any other separator; nothing to escape).
//! - A newline is kept: the caller shows what follows it as a continuation row that cannot
//!   pose as a line of its own ([`rows`]). CR LF counts as one newline.
//!
//! A backslash is not escaped, so a text that spells `\u{1b}` looks like an escaped ESC: a
//! reader cannot tell them apart, but neither can act on the terminal.

/// A character that must not reach the terminal as itself (see the module doc): what the
/// server refuses in texts (`chat_protocol::names::is_forbidden_in_text`; a server may be
/// older or hostile), and the line and paragraph separators, which some terminals break at.
pub fn is_hostile(c: char) -> bool {
    chat_protocol::names::is_forbidden_in_text(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with every hostile character escaped and tabs made spaces; newlines are kept
/// (CR LF becomes LF).
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\t' => out.push(' '),
            c if is_hostile(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// The rows `text` is shown as: [`clean`], split at its newlines. The first row is the line
/// itself, the others its continuation rows. Never empty.
pub fn rows(text: &str) -> Vec<String> {
    clean(text).split('\n').map(str::to_owned).collect()
}

/// `text` for a place with room for one row only (a title, a list entry): [`clean`], with
/// each newline shown as a space.
pub fn one_line(text: &str) -> String {
    clean(text).replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_c1_and_bidi_keeps_the_rest() {
        assert_eq!(clean("\u{1b}]0;pwned\u{7}hi"), "\\u{1b}]0;pwned\\u{7}hi");
        assert_eq!(clean("secret\roverwrite"), "secret\\u{d}overwrite");
        assert_eq!(clean("\u{9b}31m red"), "\\u{9b}31m red");
        assert_eq!(clean("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(clean("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(clean("del\u{7f} nul\u{0}"), "del\\u{7f} nul\\u{0}");
        assert_eq!(clean("a\tb"), "a b");
        assert_eq!(clean("one\r\ntwo\nthree"), "one\ntwo\nthree");
        assert_eq!(clean("日本語 😀 café \u{200e}"), "日本語 😀 café \u{200e}");
        for c in (0..0x3000u32).filter_map(char::from_u32) {
            let shown = clean(&c.to_string());
            assert!(
                shown.chars().all(|s| s == '\n' || !is_hostile(s)),
                "{c:?} shown as {shown:?}"
            );
            assert!(
                shown.chars().all(|s| s == '\n' || !s.is_control()),
                "{c:?} shown as {shown:?}"
            );
        }
    }

    #[test]
    fn rows_split_at_newlines_and_one_line_flattens() {
        assert_eq!(rows("hi"), vec!["hi"]);
        assert_eq!(rows("a\n\nb\n"), vec!["a", "", "b", ""]);
        assert_eq!(one_line("a\nb\u{1b}"), "a b\\u{1b}");
    }
}
