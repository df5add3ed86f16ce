//! Name rules for namespaces, rooms and nicks. The server enforces them; the client checks
//! them before sending so a typo is explained locally.

use thiserror::Error;

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

/// A room: starts with a letter or digit (any script), then letters, digits, `-`, `_`, `.`;
/// at most 64 characters. Rooms are case-sensitive. Clients strip an IRC-style leading `#`.
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
    match chars.find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        Some(ch) => Err(NameError::BadChar { what: WHAT, ch }),
        None => Ok(()),
    }
}

/// A nick: starts with a letter (any script), then letters, digits, `-`, `_`, `.`; at most
/// 32 characters. Nicks are unique without regard to case (see [`nick_key`]).
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
    match chars.find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        Some(ch) => Err(NameError::BadChar { what: WHAT, ch }),
        None => Ok(()),
    }
}

/// The key under which a nick is unique: its lowercase form.
pub fn nick_key(nick: &str) -> String {
    nick.to_lowercase()
}

/// Checks a chat message text: not blank, at most [`TEXT_MAX`] characters.
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(validate_text("  ").is_err());
        assert!(validate_text("hi").is_ok());
    }
}
