//! The input-line parser: what a typed (or scripted) line means. Pure, no state.
//!
//! A line that starts with `/` is a command; `//text` sends the message `/text`; anything
//! else is a message to the current room. Adding a command: a variant in [`Command`], a row
//! in [`COMMANDS`] (help and Tab completion read it) and an arm in [`parse`].

use thiserror::Error;

/// A parsed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Plain text for the current room (or DM window).
    Message(String),
    Command(Command),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/join <room>`, a leading `#` stripped.
    Join(String),
    /// `/leave [room]`: the current room when absent.
    Leave(Option<String>),
    /// `/ns <namespace> [key]`: connect (if needed) and switch to it.
    Namespace {
        name: String,
        key: Option<String>,
    },
    /// `/nick <nick>`.
    Nick(String),
    /// `/msg <nick> <text>`: a direct message.
    Msg {
        to: String,
        text: String,
    },
    /// `/query <nick> [text]`: open (and switch to) a direct conversation, sending the text
    /// if there is one.
    Query {
        to: String,
        text: Option<String>,
    },
    /// `/close`: close the current window (a room is left).
    Close,
    /// `/whois <nick>`: registered or guest, shared rooms, idle, away.
    Whois(String),
    /// `/away [reason]`: away with a reason, or back without one (`/back` too).
    Away(Option<String>),
    /// `/clear`: empty the current window (here only; nothing is deleted on the server).
    Clear,
    /// `/me <text>`: an action in the current room.
    Me(String),
    /// `/who [room]`.
    Who(Option<String>),
    /// `/rooms`: the rooms of the current namespace.
    Rooms,
    /// `/topic [text]`: show, or set, the current room's topic.
    Topic(Option<String>),
    /// A moderation command in the current room (`/kick`, `/ban`, ...).
    Moderate(Moderate),
    /// `/search <text>` (Ctrl+F): the current window's lines, then the server's history of
    /// the current room (of every room of the namespace from its own window).
    Search(String),
    Help,
    Quit,
    /// Script only: `/wait <ms>`.
    Wait(u64),
    /// Script only: `/expect <text>`, wait until a shown line contains the text (a text
    /// starting with `| ` looks at continuation rows: see [`crate::script`]).
    Expect(String),
}

/// A moderation action on the current room (room operators and server admins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderate {
    /// `/kick <nick> [reason]`.
    Kick {
        nick: String,
        reason: Option<String>,
    },
    /// `/ban <nick|address> [duration] [reason]`: a duration is a number with `s`, `m`, `h`,
    /// `d` or `w` (`10m`, `2h`); without one the ban lasts until lifted.
    Ban {
        target: String,
        duration_secs: Option<u64>,
        reason: Option<String>,
    },
    /// `/unban <nick|address>`.
    Unban(String),
    /// `/mute <nick> [duration] [reason]`.
    Mute {
        nick: String,
        duration_secs: Option<u64>,
        reason: Option<String>,
    },
    /// `/unmute <nick>`.
    Unmute(String),
    /// `/op <nick>`.
    Op(String),
    /// `/deop <nick>`.
    Deop(String),
}

/// Why a line could not be understood; shown in the pane as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("unknown command /{0} (try /help)")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// One row of the command table: name, usage, what it does.
#[derive(Debug, Clone, Copy)]
pub struct CommandInfo {
    pub name: &'static str,
    pub usage: &'static str,
    pub help: &'static str,
    /// Only meaningful in `--script` mode.
    pub script_only: bool,
}

const fn cmd(name: &'static str, usage: &'static str, help: &'static str) -> CommandInfo {
    CommandInfo {
        name,
        usage,
        help,
        script_only: false,
    }
}

/// Every command, in the order `/help` lists them.
pub const COMMANDS: &[CommandInfo] = &[
    cmd(
        "join",
        "/join <room>",
        "join a room (a leading # is optional)",
    ),
    cmd(
        "leave",
        "/leave [room]",
        "leave the current room, or the one named",
    ),
    cmd(
        "ns",
        "/ns <namespace> [key]",
        "connect to a namespace (with its key) and switch to it",
    ),
    cmd("nick", "/nick <nick>", "change your nick"),
    cmd("msg", "/msg <nick> <text>", "send a direct message"),
    cmd(
        "query",
        "/query <nick> [text]",
        "open a direct conversation (and send the text)",
    ),
    cmd(
        "close",
        "/close",
        "close the current window (leaving a room)",
    ),
    cmd(
        "whois",
        "/whois <nick>",
        "who a nick is: registered or guest, shared rooms, idle, away",
    ),
    cmd(
        "away",
        "/away [reason]",
        "mark yourself away (without a reason: back)",
    ),
    cmd("clear", "/clear", "empty the current window (here only)"),
    cmd("me", "/me <text>", "send an action to the current room"),
    cmd("who", "/who [room]", "list the members of a room"),
    cmd("rooms", "/rooms", "list the rooms of the current namespace"),
    cmd(
        "topic",
        "/topic [text]",
        "show or set the current room's topic",
    ),
    cmd(
        "kick",
        "/kick <nick> [reason]",
        "remove a user from the current room (operators)",
    ),
    cmd(
        "ban",
        "/ban <nick|ip> [time]",
        "ban a nick (admins: an address) from the room, for a time (10m, 2h, 1d), a reason after: /ban bob 2h spam",
    ),
    cmd(
        "unban",
        "/unban <nick|ip>",
        "lift a ban in the current room",
    ),
    cmd(
        "mute",
        "/mute <nick> [time]",
        "keep a user from speaking in the room (a time and a reason as for /ban)",
    ),
    cmd("unmute", "/unmute <nick>", "let a muted user speak again"),
    cmd(
        "op",
        "/op <nick>",
        "make a registered nick an operator of the current room",
    ),
    cmd("deop", "/deop <nick>", "take a user's operator status away"),
    cmd(
        "search",
        "/search <text>",
        "find the words in this window, then in the room's history on the server (Ctrl+F)",
    ),
    cmd("help", "/help", "this help"),
    cmd("quit", "/quit", "leave the chat"),
    CommandInfo {
        name: "wait",
        usage: "/wait <ms>",
        help: "pause, still receiving",
        script_only: true,
    },
    CommandInfo {
        name: "expect",
        usage: "/expect <text>",
        help: "wait until a shown line contains the text",
        script_only: true,
    },
];

/// The keys, for `/help`.
pub const KEYS: &[(&str, &str)] = &[
    ("Enter", "send the line"),
    ("Up/Down", "input history"),
    ("Tab", "complete a command, nick or room"),
    ("Alt+1..9", "switch to window 1..9"),
    ("Alt+N", "show or hide the nick list"),
    (
        "Ctrl+F",
        "search (/search); in the results Up/Down choose, Enter jumps, Esc closes",
    ),
    (
        "Alt+Enter",
        "a new line in the message (Shift+Enter too where the terminal tells)",
    ),
    ("Ctrl+N/Ctrl+P", "next/previous window"),
    ("PgUp/PgDn", "scroll the messages (also the mouse wheel)"),
    ("Left/Right Home/End", "move in the input line"),
    (
        "Ctrl+A/E/U/K/W",
        "start, end, delete to start/end, delete word",
    ),
    ("Esc", "clear the input line"),
    ("Ctrl+C", "quit"),
];

/// Parses one input line. Whitespace around a command's arguments is trimmed; a message's
/// text is kept as typed.
pub fn parse(line: &str) -> Result<Input, ParseError> {
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Input::Message(line.to_owned()));
    };
    if rest.starts_with('/') {
        return Ok(Input::Message(rest.to_owned()));
    }
    let (name, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let mut words = args.split_whitespace();
    let name_lc = name.to_lowercase();
    let command = match name_lc.as_str() {
        "join" | "j" => match (words.next(), words.next()) {
            (Some(room), None) => Command::Join(strip_hash(room)),
            _ => return Err(ParseError::Usage("/join <room>")),
        },
        "leave" | "part" => match (words.next(), words.next()) {
            (room, None) => Command::Leave(room.map(strip_hash)),
            _ => return Err(ParseError::Usage("/leave [room]")),
        },
        "ns" => match (words.next(), words.next(), words.next()) {
            (Some(ns), key, None) => Command::Namespace {
                name: if ns.starts_with('/') {
                    ns.to_owned()
                } else {
                    format!("/{ns}")
                },
                key: key.map(str::to_owned),
            },
            _ => return Err(ParseError::Usage("/ns <namespace> [key]")),
        },
        "nick" => match (words.next(), words.next()) {
            (Some(nick), None) => Command::Nick(nick.to_owned()),
            _ => return Err(ParseError::Usage("/nick <nick>")),
        },
        "msg" => {
            let (to, text) = split_first_word(args);
            if to.is_empty() || text.is_empty() {
                return Err(ParseError::Usage("/msg <nick> <text>"));
            }
            Command::Msg {
                to: to.to_owned(),
                text: text.to_owned(),
            }
        }
        "query" | "q" => {
            let (to, text) = split_first_word(args);
            if to.is_empty() {
                return Err(ParseError::Usage("/query <nick> [text]"));
            }
            Command::Query {
                to: to.to_owned(),
                text: (!text.is_empty()).then(|| text.to_owned()),
            }
        }
        "whois" | "wi" => match (words.next(), words.next()) {
            (Some(nick), None) => Command::Whois(nick.to_owned()),
            _ => return Err(ParseError::Usage("/whois <nick>")),
        },
        "away" => Command::Away((!args.is_empty()).then(|| args.to_owned())),
        "back" => Command::Away(None),
        "close" | "wc" => match words.next() {
            None => Command::Close,
            Some(_) => return Err(ParseError::Usage("/close")),
        },
        "clear" => match words.next() {
            None => Command::Clear,
            Some(_) => return Err(ParseError::Usage("/clear")),
        },
        "me" => {
            if args.is_empty() {
                return Err(ParseError::Usage("/me <text>"));
            }
            Command::Me(args.to_owned())
        }
        "who" | "names" => match (words.next(), words.next()) {
            (room, None) => Command::Who(room.map(strip_hash)),
            _ => return Err(ParseError::Usage("/who [room]")),
        },
        "rooms" | "list" => Command::Rooms,
        "topic" => Command::Topic((!args.is_empty()).then(|| args.to_owned())),
        "kick" | "k" => {
            let (nick, reason) = split_first_word(args);
            if nick.is_empty() {
                return Err(ParseError::Usage("/kick <nick> [reason]"));
            }
            Command::Moderate(Moderate::Kick {
                nick: nick.to_owned(),
                reason: (!reason.is_empty()).then(|| reason.to_owned()),
            })
        }
        "ban" | "mute" => {
            let (target, rest) = split_first_word(args);
            if target.is_empty() {
                return Err(ParseError::Usage(if name_lc == "ban" {
                    "/ban <nick|ip> [time] [reason]"
                } else {
                    "/mute <nick> [time] [reason]"
                }));
            }
            let (first, after) = split_first_word(rest);
            let (duration_secs, reason) = match duration(first) {
                Some(secs) => (Some(secs), after),
                None => (None, rest),
            };
            let reason = (!reason.is_empty()).then(|| reason.to_owned());
            Command::Moderate(if name_lc == "ban" {
                Moderate::Ban {
                    target: target.to_owned(),
                    duration_secs,
                    reason,
                }
            } else {
                Moderate::Mute {
                    nick: target.to_owned(),
                    duration_secs,
                    reason,
                }
            })
        }
        "unban" | "unmute" | "op" | "deop" => match (words.next(), words.next()) {
            (Some(nick), None) => Command::Moderate(match name_lc.as_str() {
                "unban" => Moderate::Unban(nick.to_owned()),
                "unmute" => Moderate::Unmute(nick.to_owned()),
                "op" => Moderate::Op(nick.to_owned()),
                _ => Moderate::Deop(nick.to_owned()),
            }),
            _ => {
                return Err(ParseError::Usage(match name_lc.as_str() {
                    "unban" => "/unban <nick|ip>",
                    "unmute" => "/unmute <nick>",
                    "op" => "/op <nick>",
                    _ => "/deop <nick>",
                }));
            }
        },
        "search" | "find" => {
            if args.is_empty() {
                return Err(ParseError::Usage("/search <text>"));
            }
            Command::Search(args.to_owned())
        }
        "help" | "?" => Command::Help,
        "quit" | "exit" => Command::Quit,
        "wait" | "sleep" => match args.parse::<u64>() {
            Ok(ms) => Command::Wait(ms),
            Err(_) => return Err(ParseError::Usage("/wait <ms>")),
        },
        "expect" => {
            if args.is_empty() {
                return Err(ParseError::Usage("/expect <text>"));
            }
            Command::Expect(args.to_owned())
        }
        _ => return Err(ParseError::Unknown(name.to_owned())),
    };
    Ok(Input::Command(command))
}

/// `30s`, `10m`, `2h`, `1d`, `1w` (or plain seconds) in seconds; `None` for anything else.
pub fn duration(word: &str) -> Option<u64> {
    let split = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, unit) = word.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(scale).filter(|s| *s > 0)
}

fn strip_hash(room: &str) -> String {
    room.strip_prefix('#').unwrap_or(room).to_owned()
}

fn split_first_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        match parse(line) {
            Ok(Input::Command(c)) => c,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn moderation_commands() {
        assert_eq!(
            cmd("/kick bob be nice"),
            Command::Moderate(Moderate::Kick {
                nick: "bob".into(),
                reason: Some("be nice".into())
            })
        );
        assert_eq!(
            cmd("/kick bob"),
            Command::Moderate(Moderate::Kick {
                nick: "bob".into(),
                reason: None
            })
        );
        assert_eq!(
            cmd("/ban bob 2h spam links"),
            Command::Moderate(Moderate::Ban {
                target: "bob".into(),
                duration_secs: Some(7200),
                reason: Some("spam links".into())
            })
        );
        assert_eq!(
            cmd("/ban 10.0.0.1 spam"),
            Command::Moderate(Moderate::Ban {
                target: "10.0.0.1".into(),
                duration_secs: None,
                reason: Some("spam".into())
            })
        );
        assert_eq!(
            cmd("/mute eve 30"),
            Command::Moderate(Moderate::Mute {
                nick: "eve".into(),
                duration_secs: Some(30),
                reason: None
            })
        );
        assert_eq!(
            cmd("/unban bob"),
            Command::Moderate(Moderate::Unban("bob".into()))
        );
        assert_eq!(
            cmd("/op carol"),
            Command::Moderate(Moderate::Op("carol".into()))
        );
        assert_eq!(
            cmd("/deop carol"),
            Command::Moderate(Moderate::Deop("carol".into()))
        );
        assert_eq!(
            cmd("/unmute eve"),
            Command::Moderate(Moderate::Unmute("eve".into()))
        );
        assert_eq!(
            parse("/kick"),
            Err(ParseError::Usage("/kick <nick> [reason]"))
        );
        assert_eq!(parse("/op a b"), Err(ParseError::Usage("/op <nick>")));
        assert_eq!(
            parse("/ban"),
            Err(ParseError::Usage("/ban <nick|ip> [time] [reason]"))
        );
        assert_eq!(
            (duration("1d"), duration("0"), duration("5x")),
            (Some(86_400), None, None)
        );
    }

    #[test]
    fn messages() {
        assert_eq!(parse("hello"), Ok(Input::Message("hello".into())));
        assert_eq!(parse("  spaced "), Ok(Input::Message("  spaced ".into())));
        assert_eq!(parse("//slash"), Ok(Input::Message("/slash".into())));
        assert_eq!(parse("héllo 🌍"), Ok(Input::Message("héllo 🌍".into())));
    }

    #[test]
    fn join_and_leave_strip_hash() {
        assert_eq!(cmd("/join #rust"), Command::Join("rust".into()));
        assert_eq!(cmd("/join rust"), Command::Join("rust".into()));
        assert_eq!(cmd("/JOIN  日本語 "), Command::Join("日本語".into()));
        assert_eq!(cmd("/leave"), Command::Leave(None));
        assert_eq!(cmd("/leave #a"), Command::Leave(Some("a".into())));
        assert_eq!(parse("/join"), Err(ParseError::Usage("/join <room>")));
        assert_eq!(parse("/join a b"), Err(ParseError::Usage("/join <room>")));
    }

    #[test]
    fn namespace_with_and_without_key() {
        assert_eq!(
            cmd("/ns /ops s3cret"),
            Command::Namespace {
                name: "/ops".into(),
                key: Some("s3cret".into())
            }
        );
        assert_eq!(
            cmd("/ns ops"),
            Command::Namespace {
                name: "/ops".into(),
                key: None
            }
        );
        assert!(parse("/ns").is_err());
        assert!(parse("/ns a b c").is_err());
    }

    #[test]
    fn msg_me_topic_keep_text() {
        assert_eq!(
            cmd("/msg bob hi  there 😀"),
            Command::Msg {
                to: "bob".into(),
                text: "hi  there 😀".into()
            }
        );
        assert!(parse("/msg bob").is_err());
        assert!(parse("/msg").is_err());
        assert_eq!(cmd("/me waves"), Command::Me("waves".into()));
        assert!(parse("/me").is_err());
        assert_eq!(cmd("/topic"), Command::Topic(None));
        assert_eq!(
            cmd("/topic Rust 2024 talk"),
            Command::Topic(Some("Rust 2024 talk".into()))
        );
    }

    #[test]
    fn simple_commands() {
        assert_eq!(cmd("/nick zoë"), Command::Nick("zoë".into()));
        assert_eq!(cmd("/who"), Command::Who(None));
        assert_eq!(cmd("/who #r"), Command::Who(Some("r".into())));
        assert_eq!(cmd("/rooms"), Command::Rooms);
        assert_eq!(cmd("/help"), Command::Help);
        assert_eq!(cmd("/quit"), Command::Quit);
        assert_eq!(cmd("/wait 250"), Command::Wait(250));
        assert!(parse("/wait soon").is_err());
        assert_eq!(cmd("/expect bob: hi"), Command::Expect("bob: hi".into()));
        assert_eq!(
            cmd("/search  deploy \"went\" "),
            Command::Search("deploy \"went\"".into())
        );
        assert_eq!(parse("/search"), Err(ParseError::Usage("/search <text>")));
    }

    #[test]
    fn unknown_command_is_an_error_not_a_message() {
        assert_eq!(
            parse("/frobnicate x"),
            Err(ParseError::Unknown("frobnicate".into()))
        );
        assert_eq!(
            ParseError::Unknown("x".into()).to_string(),
            "unknown command /x (try /help)"
        );
        assert_eq!(parse("/"), Err(ParseError::Unknown(String::new())));
    }

    #[test]
    fn every_command_is_in_the_table() {
        for info in COMMANDS {
            let line = format!("/{}", info.name);
            assert!(
                !matches!(parse(&line), Err(ParseError::Unknown(_))),
                "{line}"
            );
        }
    }
}
