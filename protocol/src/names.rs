//! Name rules for namespaces, rooms and nicks. The server enforces them; the client checks
//! them before sending so a typo is explained locally.

use thiserror::Error;
use unicode_normalization::char::is_combining_mark;

pub const NAMESPACE_MAX: usize = 64;
pub const ROOM_MAX: usize = 64;
pub const NICK_MAX: usize = 32;
/// Longest chat message text, in characters.
pub const TEXT_MAX: usize = 4000;
/// Longest room topic, in characters.
pub const TOPIC_MAX: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} contains {ch:?}, which is not allowed")]
    BadChar { what: &'static str, ch: char },
    #[error(
        "{what} mixes scripts or uses characters that can pass for others (UTS #39: at most \
         highly restrictive, such as one script, or Latin with Han and Japanese or Korean)"
    )]
    MixedScript { what: &'static str },
    #[error("{what} must start with {expected}")]
    BadStart {
        what: &'static str,
        expected: &'static str,
    },
}

fn check_len(what: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.chars().count() > max {
        return Err(NameError::TooLong { what, max });
    }
    Ok(())
}

/// A namespace: `/` followed by ASCII letters, digits, `-`, `_`, `.` or `/`; at most 64
/// characters. (A `,` would end the namespace on the wire.)
pub fn validate_namespace(name: &str) -> Result<(), NameError> {
    const WHAT: &str = "namespace";
    check_len(WHAT, name, NAMESPACE_MAX)?;
    if !name.starts_with('/') {
        return Err(NameError::BadStart {
            what: WHAT,
            expected: "/",
        });
    }
    match name[1..]
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    {
        Some(ch) => Err(NameError::BadChar { what: WHAT, ch }),
        None => Ok(()),
    }
}

/// Combining marks in a row at most in a name: Indic clusters and decomposed accents need
/// one or two; more is stacking (text drawn over its neighbours).
pub const MARKS_IN_A_ROW_MAX: usize = 3;

/// The first character of a name's rest that it may not hold: names continue with letters,
/// digits, `-`, `_`, `.` and combining marks that are not enclosing (the vowel signs and
/// viramas of Indic scripts, as in `प्रिया` or `தமிழ்`, and decomposed accents), at most
/// [`MARKS_IN_A_ROW_MAX`] marks in a row.
fn bad_continuation(rest: std::str::Chars<'_>) -> Option<char> {
    let mut marks = 0;
    for c in rest {
        let mark = is_combining_mark(c) && !is_enclosing_mark(c);
        marks = if mark { marks + 1 } else { 0 };
        if marks > MARKS_IN_A_ROW_MAX
            || !(mark || c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Some(c);
        }
    }
    None
}

/// Whether `c` is a combining mark (general category M): it continues the word before it (an
/// Indic vowel sign or virama, an accent), so a nick found right before one is inside a
/// longer word, not a mention.
pub fn is_mark(c: char) -> bool {
    is_combining_mark(c)
}

/// The enclosing marks (general category Me): a circle or a keycap drawn around what
/// precedes them.
fn is_enclosing_mark(c: char) -> bool {
    matches!(c, '\u{0488}'..='\u{0489}' | '\u{1ABE}' | '\u{20DD}'..='\u{20E0}' | '\u{20E2}'..='\u{20E4}' | '\u{A670}'..='\u{A672}')
}

/// A room: starts with a letter or digit (any script), then letters, digits, `-`, `_`, `.`
/// and combining marks that do not enclose (Indic vowel signs and viramas, decomposed
/// accents), at most [`MARKS_IN_A_ROW_MAX`] in a row; at most 64 characters. A room that
/// does not exist yet must also pass [`validate_new_room`]. Rooms are case-sensitive.
/// Clients strip an IRC-style leading `#`.
pub fn validate_room(name: &str) -> Result<(), NameError> {
    const WHAT: &str = "room name";
    check_len(WHAT, name, ROOM_MAX)?;
    let mut chars = name.chars();
    if chars.next().is_some_and(|c| !c.is_alphanumeric()) {
        return Err(NameError::BadStart {
            what: WHAT,
            expected: "a letter or digit",
        });
    }
    match bad_continuation(chars) {
        Some(ch) => Err(NameError::BadChar { what: WHAT, ch }),
        None => Ok(()),
    }
}

/// A room made by this name (the first join of a room nobody is in and nothing is stored
/// for): [`validate_room`], and at most UTS #39's "highly restrictive" level, as nicks
/// ([`validate_nick`]), so a new room cannot pass for another by mixing scripts (`аpple`
/// with a Cyrillic `а` beside `apple`). Rooms made before this rule keep their names.
pub fn validate_new_room(name: &str) -> Result<(), NameError> {
    validate_room(name)?;
    restricted("room name", name)
}

/// UTS #39's "highly restrictive" level: one script (digits and `-_.` go with any), or
/// Latin with Han and Hiragana/Katakana, Bopomofo or Hangul; only characters the General
/// Security Profile allows in identifiers.
fn restricted(what: &'static str, name: &str) -> Result<(), NameError> {
    use unicode_security::{RestrictionLevel, RestrictionLevelDetection};
    if name.check_restriction_level(RestrictionLevel::HighlyRestrictive) {
        Ok(())
    } else {
        Err(NameError::MixedScript { what })
    }
}

/// A nick: starts with a letter (any script), then letters, digits, `-`, `_`, `.` and
/// combining marks as in a room ([`validate_room`]); at most 32 characters; at most UTS
/// #39's "highly restrictive" level (one script, or Latin with Han and Hiragana/Katakana,
/// Bopomofo or Hangul; only characters the General Security Profile allows in
/// identifiers). Nicks are unique without regard to case (see
/// [`nick_key`]) and must not pass for one another (see [`nick_skeletons`]).
pub fn validate_nick(name: &str) -> Result<(), NameError> {
    const WHAT: &str = "nick";
    check_len(WHAT, name, NICK_MAX)?;
    let mut chars = name.chars();
    if chars.next().is_some_and(|c| !c.is_alphabetic()) {
        return Err(NameError::BadStart {
            what: WHAT,
            expected: "a letter",
        });
    }
    if let Some(ch) = bad_continuation(chars) {
        return Err(NameError::BadChar { what: WHAT, ch });
    }
    restricted(WHAT, name)
}

/// The keys under which a nick must not pass for another: its UTS #39 confusable skeleton,
/// lowercased, taken of the nick as written, of its lowercase form and of its uppercase form
/// (so `alice`, `ALICE`, `aIice` with a capital I and `аlice` with a Cyrillic а all share a
/// key, and so do `VICTIM`, the uppercase of a registered `victim`, and `VlCTIM` with a
/// lowercase L). Two nicks are look-alikes when their keys meet and their [`nick_key`]s
/// differ.
pub fn nick_skeletons(nick: &str) -> [String; 3] {
    let skeleton = |s: &str| {
        unicode_security::skeleton(s)
            .collect::<String>()
            .to_lowercase()
    };
    [
        skeleton(nick),
        skeleton(&nick_key(nick)),
        skeleton(&nick.to_uppercase()),
    ]
}

/// The key under which a nick is unique: its lowercase form.
pub fn nick_key(nick: &str) -> String {
    nick.to_lowercase()
}

/// Checks a chat message text: not blank, at most [`TEXT_MAX`] characters, no control
/// character but newline and tab (see [`is_forbidden_in_text`]). Carriage returns are not
/// refused here: the server turns them into newlines first ([`normalize_newlines`]).
pub fn validate_text(text: &str) -> Result<(), NameError> {
    const WHAT: &str = "message text";
    if text.trim().is_empty() {
        return Err(NameError::Empty { what: WHAT });
    }
    if text.chars().count() > TEXT_MAX {
        return Err(NameError::TooLong {
            what: WHAT,
            max: TEXT_MAX,
        });
    }
    match text.chars().find(|&c| is_forbidden_in_text(c)) {
        Some(ch) => Err(NameError::BadChar { what: WHAT, ch }),
        None => Ok(()),
    }
}

/// Checks a room topic: at most [`TOPIC_MAX`] characters, one line, no control character
/// (see [`is_forbidden_in_text`]; newline, tab and the line and paragraph separators
/// U+2028, U+2029 are refused too).
pub fn validate_topic(topic: &str) -> Result<(), NameError> {
    validate_line("topic", topic)
}

/// Checks a reason (a kick's, a ban's, a mute's, an away message) as a topic is checked
/// ([`validate_topic`]), naming it a reason in its error.
pub fn validate_reason(reason: &str) -> Result<(), NameError> {
    validate_line("reason", reason)
}

/// [`validate_topic`]'s rules, for a text called `what` in its errors.
fn validate_line(what: &'static str, text: &str) -> Result<(), NameError> {
    if text.chars().count() > TOPIC_MAX {
        return Err(NameError::TooLong {
            what,
            max: TOPIC_MAX,
        });
    }
    match text
        .chars()
        .find(|&c| is_forbidden_in_text(c) || matches!(c, '\n' | '\t' | '\u{2028}' | '\u{2029}'))
    {
        Some(ch) => Err(NameError::BadChar { what, ch }),
        None => Ok(()),
    }
}

/// Characters no text may hold, because a terminal or a bidi renderer would act on them:
/// the C0 controls but newline and tab (carriage return included), DEL, the C1 controls
/// (U+0080-U+009F), and the bidi embedding, override and isolate controls (U+202A-U+202E,
/// U+2066-U+2069). The marks U+200E and U+200F stay allowed.
pub fn is_forbidden_in_text(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A text with CRLF and lone CR turned into LF (what clients on every platform send as a
/// line break), borrowed when there is none.
pub fn normalize_newlines(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\r') {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether two nicks pass for one another (and are not simply the same nick).
    fn look_alike(a: &str, b: &str) -> bool {
        if nick_key(a) == nick_key(b) {
            return false;
        }
        let (a, b) = (nick_skeletons(a), nick_skeletons(b));
        a.iter().any(|k| b.contains(k))
    }

    #[test]
    fn namespaces() {
        assert!(validate_namespace("/").is_ok());
        assert!(validate_namespace("/team-42").is_ok());
        assert!(validate_namespace("/a/b.c_d").is_ok());
        assert_eq!(
            validate_namespace(""),
            Err(NameError::Empty { what: "namespace" })
        );
        assert!(matches!(
            validate_namespace("admin"),
            Err(NameError::BadStart { .. })
        ));
        assert!(matches!(
            validate_namespace("/a,b"),
            Err(NameError::BadChar { ch: ',', .. })
        ));
        assert!(matches!(
            validate_namespace(&format!("/{}", "a".repeat(64))),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn rooms() {
        assert!(validate_room("general").is_ok());
        assert!(validate_room("日本語").is_ok());
        assert!(validate_room("rust-lang.2").is_ok());
        assert!(matches!(
            validate_room("#rust"),
            Err(NameError::BadStart { .. })
        ));
        assert!(matches!(
            validate_room("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(validate_room(&"r".repeat(64)).is_ok());
        assert!(validate_room(&"r".repeat(65)).is_err());
        // Scripts as for nicks: a room cannot pass for another by mixing them.
        assert!(validate_room("Москва-2").is_ok());
        assert!(validate_room("東京tokyo").is_ok());
        assert!(validate_room("2024").is_ok());
        assert!(validate_new_room("Москва-2").is_ok());
        for mixed in ["аpple", "αpple", "lobbу", "Ｌobby"] {
            assert!(
                matches!(validate_new_room(mixed), Err(NameError::MixedScript { .. })),
                "{mixed:?} should be refused as a new room"
            );
            assert_eq!(
                validate_room(mixed),
                Ok(()),
                "{mixed:?} as an existing room"
            );
        }
    }

    #[test]
    fn nicks() {
        assert!(validate_nick("alice").is_ok());
        assert!(validate_nick("Zoë_2").is_ok());
        assert!(matches!(
            validate_nick("2pac"),
            Err(NameError::BadStart { .. })
        ));
        assert!(matches!(
            validate_nick("a:b"),
            Err(NameError::BadChar { ch: ':', .. })
        ));
        assert_eq!(nick_key("Alice"), "alice");
        // Scripts: one at a time (digits and `-_.` go with any), or Latin with Han and kana.
        assert!(validate_nick("Ольга").is_ok());
        assert!(validate_nick("太郎tarou").is_ok());
        assert!(validate_nick("たろう太郎").is_ok());
        for mixed in ["Аlice", "Αlice", "alicе", "Ａｌｉｃｅ"] {
            assert!(
                matches!(validate_nick(mixed), Err(NameError::MixedScript { .. })),
                "{mixed:?} should be refused"
            );
        }
        // Look-alikes: case, Cyrillic, Greek, fullwidth, I for l, 0 for o.
        assert!(look_alike("ALICE", "AIICE"), "I for L in capitals");
        for other in ["aIice", "Аlice", "Αlice", "Ａｌｉｃｅ", "аlісе"] {
            assert!(look_alike("alice", other), "{other:?} passes for alice");
        }
        assert!(look_alike("bob", "b0b"), "0 for o");
        assert!(look_alike("rn", "m"), "rn and m");
        // Indic names (vowel signs, viramas) and decomposed accents; not stacked or
        // enclosing marks.
        for name in ["प्रिया", "தமிழ்", "ಕನ್ನಡ", "Zoe\u{308}", "Vie\u{302}\u{301}t"]
        {
            assert_eq!(validate_nick(name), Ok(()), "{name:?} as a nick");
            assert_eq!(validate_room(name), Ok(()), "{name:?} as a room");
        }
        for name in ["a\u{301}\u{301}\u{301}\u{301}", "a\u{20DD}"] {
            assert!(
                matches!(validate_nick(name), Err(NameError::BadChar { .. })),
                "{name:?}"
            );
            assert!(
                matches!(validate_room(name), Err(NameError::BadChar { .. })),
                "{name:?}"
            );
        }
        assert!(
            validate_nick("\u{301}a").is_err(),
            "a mark does not start a name"
        );
        // A lowercase l in capitals passes for an I, whichever case the other nick is in.
        assert!(
            look_alike("victim2", "VlCTIM2"),
            "l for I, against the lowercase nick"
        );
        assert!(
            look_alike("VICTIM2", "VlCTIM2"),
            "l for I, against the uppercase nick"
        );
        assert!(!look_alike("alice", "Alice"), "the same nick");
        assert!(!look_alike("alice", "alina"));
        assert!(!look_alike("Ольга", "olga"));
        assert!(validate_text("  ").is_err());
        assert!(validate_text("hi").is_ok());
    }

    #[test]
    fn texts_and_topics_hold_no_controls() {
        assert!(validate_text("two\nlines\tand a tab, \u{200F}marks\u{200E} too").is_ok());
        for bad in [
            "\x1b]0;owned\x07",
            "a\rb",
            "\u{9b}31m",
            "\u{7f}",
            "\u{202E}txt",
            "\u{2066}x",
            "\0",
        ] {
            assert!(
                matches!(validate_text(bad), Err(NameError::BadChar { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(normalize_newlines("a\r\nb\rc\nd"), "a\nb\nc\nd");
        assert!(matches!(
            normalize_newlines("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(validate_topic("Release day \u{1F680}").is_ok());
        assert!(validate_topic("").is_ok());
        for bad in [
            "two\nlines",
            "tab\there",
            "\x1b[2J",
            "\u{202D}x",
            "\u{85}",
            "a\u{2028}b",
            "\u{2029}",
        ] {
            assert!(validate_topic(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic(&"t".repeat(TOPIC_MAX + 1)).is_err());
        // A reason follows the topic's rules, and its errors say "reason".
        let long = validate_reason(&"r".repeat(TOPIC_MAX + 1))
            .unwrap_err()
            .to_string();
        assert!(long.starts_with("reason is longer"), "{long}");
        let bidi = validate_reason("a\u{202e}b").unwrap_err().to_string();
        assert!(bidi.starts_with("reason contains"), "{bidi}");
        assert!(validate_reason("lunch").is_ok());
    }
}
