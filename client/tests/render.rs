//! Rendering tests: the pure view drawn into ratatui's `TestBackend` and compared with the
//! text snapshots in `tests/snapshots/` (one row per line, `|` marks the right edge).
//! `UPDATE_SNAPSHOTS=1 cargo test -p chat-client --test render` rewrites them; a missing
//! snapshot is written on first run.

use std::time::Duration;

use chat_client::app::{App, Clock, Event};
use chat_client::net::{NetEvent, Reply, Request, ServerEvent};
use chat_client::theme::Theme;
use chat_client::view::view;
use chat_protocol::events::{ChatMessage, DirectMessage, JoinReply};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use unicode_width::UnicodeWidthStr;

const T0: i64 = (9 * 3600 + 30 * 60) * 1000;

fn msg(room: &str, seq: u64, from: &str, text: &str) -> ChatMessage {
    ChatMessage {
        id: format!("{room}-{seq}"),
        room: room.into(),
        seq,
        from: from.into(),
        text: text.into(),
        ts: T0 + seq as i64 * 60_000,
        action: false,
    }
}

fn net(app: &mut App, ev: NetEvent) {
    app.update(Event::Net(ev));
}

fn join(app: &mut App, nsp: &str, room: &str, members: &[&str], history: Vec<ChatMessage>) {
    net(
        app,
        NetEvent::Reply {
            nsp: nsp.into(),
            request: Request::Join { room: room.into() },
            result: Ok(Reply::Join(JoinReply {
                room: room.into(),
                members: members.iter().map(|m| m.to_string()).collect(),
                away: Vec::new(),
                operators: Vec::new(),
                topic: Some("Rust and friends".into()).filter(|_| room == "general"),
                history,
            })),
            automatic: false,
        },
    );
}

/// A client with two namespaces, three rooms, a DM, unread and mention counts.
fn fixture() -> App {
    let namespaces = vec![("/".to_owned(), None), ("/ops".to_owned(), None)];
    let mut app = App::new("ws://127.0.0.1:7878", "alice", &namespaces, Theme::dark());
    app.clock = Clock::Fixed(T0);
    app.take_commands();
    net(&mut app, NetEvent::Up);
    for nsp in ["/", "/ops"] {
        net(
            &mut app,
            NetEvent::NsConnected {
                nsp: nsp.into(),
                resumed: false,
            },
        );
    }
    net(&mut app, NetEvent::Lag(Duration::from_millis(12)));
    join(&mut app, "/ops", "deploy", &["alice", "carol"], vec![]);
    join(&mut app, "/", "random", &["alice", "bob"], vec![]);
    join(
        &mut app,
        "/",
        "general",
        &["alice", "bob", "carol", "李"],
        vec![
            msg("general", 1, "bob", "hello everyone"),
            msg(
                "general",
                2,
                "carol",
                "日本語のテキストも大丈夫 😀 and emoji",
            ),
            msg(
                "general",
                3,
                "bob",
                "a long line that has to wrap across several rows of the message pane, \
                 because the pane is only so wide and words should not be cut",
            ),
        ],
    );
    for (seq, text) in [(1, "deploying now"), (2, "alice: can you check?")] {
        net(
            &mut app,
            NetEvent::Server {
                nsp: "/ops".into(),
                event: ServerEvent::Message(msg("deploy", seq, "carol", text)),
            },
        );
    }
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Dm(DirectMessage {
                id: "d1".into(),
                from: "bob".into(),
                to: "alice".into(),
                text: "psst".into(),
                ts: T0 + 240_000,
                action: false,
            }),
        },
    );
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Message(msg("random", 1, "bob", "anyone here?")),
        },
    );
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Message(ChatMessage {
                action: true,
                ..msg("general", 4, "carol", "waves at 李")
            }),
        },
    );
    app.take_journal();
    app
}

/// The buffer as text: wide characters once, `|` at the right edge of each row.
fn buffer_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut skip = 0;
        for x in area.left()..area.right() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buf[(x, y)].symbol();
            out.push_str(symbol);
            skip = symbol.width().saturating_sub(1);
        }
        out.push_str("|\n");
    }
    out
}

fn assert_snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    match std::fs::read_to_string(&path) {
        Ok(expected) if !update => {
            if expected != actual {
                panic!(
                    "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual}"
                );
            }
        }
        _ => {
            std::fs::create_dir_all(path.parent().expect("snapshot dir")).expect("mkdir");
            std::fs::write(&path, actual).expect("write snapshot");
        }
    }
}

fn draw(app: &App, w: u16, h: u16) -> (String, Terminal<TestBackend>) {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    terminal.draw(|f| view(app, f)).expect("draw");
    let text = buffer_text(terminal.backend().buffer());
    (text, terminal)
}

#[test]
fn screen_80x24() {
    let mut app = fixture();
    app.update(Event::Resize(80, 24));
    let (text, _) = draw(&app, 80, 24);
    assert_snapshot("screen_80x24", &text);
    assert!(text.contains("#general (4 members) - Rust and friends"));
    assert!(text.contains("online | alice | / #general | lag 12 ms"));
}

#[test]
fn screen_120x40() {
    let mut app = fixture();
    app.update(Event::Resize(120, 40));
    app.submit("/help");
    let (text, _) = draw(&app, 120, 40);
    assert_snapshot("screen_120x40", &text);
    assert!(text.contains("/kick <nick> [reason]"), "{text}");
    assert!(text.contains("/search <text>"), "{text}");
}

#[test]
fn resize_redraws_cleanly() {
    let mut app = fixture();
    app.update(Event::Resize(120, 40));
    let (_, mut terminal) = draw(&app, 120, 40);
    app.update(Event::Resize(80, 24));
    terminal.backend_mut().resize(80, 24);
    terminal
        .resize(ratatui::layout::Rect::new(0, 0, 80, 24))
        .expect("resize");
    terminal.draw(|f| view(&app, f)).expect("draw");
    let after = buffer_text(terminal.backend().buffer());
    let (fresh, _) = draw(&app, 80, 24);
    assert_eq!(after, fresh, "a resized screen equals a fresh one");
    assert_snapshot("after_resize_80x24", &after);
    // Tiny terminals do not panic.
    for (w, h) in [(20, 5), (1, 1), (0, 0), (40, 3)] {
        app.update(Event::Resize(w, h));
        let _ = draw(&app, w, h);
    }
}

#[test]
fn any_size_renders_without_panicking() {
    let mut app = fixture();
    app.submit("/help");
    for c in "a very long input line with 日本語 and 😀 in it".chars() {
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
    for w in (0..=130).step_by(7) {
        for h in (0..=40).step_by(3) {
            app.update(Event::Resize(w, h));
            app.update(Event::Key(KeyEvent::new(
                KeyCode::PageUp,
                KeyModifiers::NONE,
            )));
            let _ = draw(&app, w, h);
        }
    }
}

#[test]
fn narrow_terminal_hides_the_room_list() {
    let mut app = fixture();
    app.update(Event::Resize(50, 12));
    let (text, _) = draw(&app, 50, 12);
    assert_snapshot("narrow_50x12", &text);
    assert!(!text.contains('│'), "{text}");
}

#[test]
fn unread_and_mention_counts_in_the_room_list() {
    let app = fixture();
    let (text, _) = draw(&app, 80, 24);
    let rows: Vec<&str> = text.lines().collect();
    let deploy = rows
        .iter()
        .find(|r| r.contains("#deploy"))
        .expect("deploy row");
    assert!(deploy.contains(" 2 @1"), "{deploy}");
    let dm = rows.iter().find(|r| r.contains("@bob")).expect("dm row");
    assert!(dm.contains(" 1 @1"), "{dm}");
    let random = rows.iter().find(|r| r.contains("#random")).expect("row");
    assert!(random.contains(" 1") && !random.contains('@'), "{random}");
}

#[test]
fn read_marker_when_switching_to_a_room_with_unread() {
    let mut app = fixture();
    let deploy = app
        .windows
        .iter()
        .position(|w| w.title() == "#deploy")
        .expect("deploy");
    app.update(Event::Key(KeyEvent::new(
        KeyCode::Char(char::from(b'1' + deploy as u8)),
        KeyModifiers::ALT,
    )));
    assert_eq!(app.active, deploy);
    let (text, _) = draw(&app, 80, 24);
    assert_snapshot("read_marker_80x24", &text);
    let marker = text
        .lines()
        .position(|l| l.contains("── new ─"))
        .expect("marker");
    let first = text
        .lines()
        .position(|l| l.contains("deploying now"))
        .expect("msg");
    assert_eq!(marker + 1, first);
}

#[test]
fn scrollback_with_page_up_and_down() {
    let mut app = fixture();
    for seq in 5..60 {
        net(
            &mut app,
            NetEvent::Server {
                nsp: "/".into(),
                event: ServerEvent::Message(msg("general", seq, "bob", &format!("line {seq}"))),
            },
        );
    }
    app.update(Event::Resize(80, 24));
    let (bottom, _) = draw(&app, 80, 24);
    assert!(bottom.contains("line 59") && !bottom.contains("line 30 "));
    app.update(Event::Key(KeyEvent::new(
        KeyCode::PageUp,
        KeyModifiers::NONE,
    )));
    let (up, _) = draw(&app, 80, 24);
    assert!(!up.contains("line 59"), "{up}");
    assert!(up.contains("scrolled up"));
    for _ in 0..20 {
        app.update(Event::Key(KeyEvent::new(
            KeyCode::PageUp,
            KeyModifiers::NONE,
        )));
    }
    let (top, _) = draw(&app, 80, 24);
    assert!(top.contains("hello everyone"), "{top}");
    for _ in 0..30 {
        app.update(Event::Key(KeyEvent::new(
            KeyCode::PageDown,
            KeyModifiers::NONE,
        )));
    }
    let (back, _) = draw(&app, 80, 24);
    assert_eq!(back, bottom);
}

#[test]
fn input_line_with_emoji_and_cjk_places_the_cursor_by_columns() {
    let mut app = fixture();
    for c in "héllo 日本 😀!".chars() {
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
    let (text, mut terminal) = draw(&app, 80, 24);
    let input_row = text.lines().nth(23).expect("row");
    assert!(
        input_row.starts_with("[#general] héllo 日本 😀!"),
        "{input_row}"
    );
    // "[#general] " = 11 columns, "héllo 日本 😀!" = 6 + 4 + 1 + 2 + 1 = 14.
    let pos = terminal.get_cursor_position().expect("cursor");
    assert_eq!((pos.x, pos.y), (11 + 14, 23));
    // Two steps left: before the emoji; a backspace removes the space before it.
    app.update(Event::Key(KeyEvent::new(KeyCode::Left, KeyModifiers::NONE)));
    app.update(Event::Key(KeyEvent::new(KeyCode::Left, KeyModifiers::NONE)));
    app.update(Event::Key(KeyEvent::new(
        KeyCode::Backspace,
        KeyModifiers::NONE,
    )));
    assert_eq!(app.input.text(), "héllo 日本😀!");
    terminal.draw(|f| view(&app, f)).expect("draw");
    let pos = terminal.get_cursor_position().expect("cursor");
    assert_eq!(pos.x, 11 + 10);
    // A line longer than the row scrolls so the cursor stays visible.
    app.update(Event::Key(KeyEvent::new(KeyCode::End, KeyModifiers::NONE)));
    for _ in 0..40 {
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Char('字'),
            KeyModifiers::NONE,
        )));
    }
    terminal.draw(|f| view(&app, f)).expect("draw");
    let pos = terminal.get_cursor_position().expect("cursor");
    assert!(pos.x < 80 && pos.x >= 77, "{pos:?}");
}

#[test]
fn light_theme_and_nick_colours() {
    let mut app = fixture();
    app.theme = Theme::light();
    let (text, terminal) = draw(&app, 80, 24);
    let buf = terminal.backend().buffer();
    let (x, y) = find(&text, "<bob>").expect("bob's line");
    assert_eq!(buf[(x + 1, y)].fg, app.theme.nick_color("bob"));
    let (x, y) = find(&text, "<carol>").expect("carol's line");
    assert_eq!(buf[(x + 1, y)].fg, app.theme.nick_color("carol"));
}

#[test]
fn multi_line_paste_prompt_in_status_line() {
    let mut app = fixture();
    app.update(Event::Paste("one\ntwo\nthree".into()));
    let (text, _) = draw(&app, 80, 24);
    assert!(text.contains("paste 3 lines into #general? y = send, n = discard"));
}

/// Column and row of `needle` in the text form of a buffer (ASCII rows only).
fn find(text: &str, needle: &str) -> Option<(u16, u16)> {
    text.lines()
        .enumerate()
        .find_map(|(y, l)| l.find(needle).map(|b| (l[..b].width() as u16, y as u16)))
}

/// Received text cannot act on the terminal or forge a row: control characters, C1 controls
/// and bidi overrides are drawn as escapes (in the pane and in the title's topic), and a
/// newline starts an indented continuation row, never one at the left edge with a time.
#[test]
fn hostile_text_is_escaped_and_a_newline_indents() {
    let mut app = fixture();
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Message(msg(
                "general",
                5,
                "bob",
                "hi\u{1b}]0;pwned\u{7}\n09:36 <carol> forged\u{9b}2J\u{202e}x\u{2066}",
            )),
        },
    );
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Topic(chat_protocol::events::TopicChange {
                room: "general".into(),
                topic: Some("calm\u{1b}[2J\u{202e}\nnow".into()),
                by: "bob".into(),
            }),
        },
    );
    let (text, _) = draw(&app, 80, 24);
    let hostile = |c: char| {
        c.is_control() && c != '\n'
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    assert!(!text.chars().any(hostile), "{text:?}");
    let rows: Vec<&str> = text.lines().collect();
    let title = rows[0];
    assert!(
        title.contains("- calm\\u{1b}[2J\\u{202e} now"),
        "the topic, escaped, on one row: {title}"
    );
    // The message pane starts after the room list and its separator (18 + 1 columns).
    let pane = |row: &str| row.chars().skip(19).collect::<String>();
    let first = rows
        .iter()
        .position(|r| r.contains("<bob> hi"))
        .expect("bob's row");
    assert!(
        pane(rows[first]).starts_with("09:35 <bob> hi\\u{1b}]0;pwned\\u{7}"),
        "{}",
        rows[first]
    );
    let forged = pane(rows[first + 1]);
    assert!(
        forged.starts_with("            09:36 <carol> forged\\u{9b}2J\\u{202e}x\\u{2066}"),
        "the continuation is indented like a wrapped row: {forged:?}"
    );
    for row in &rows {
        assert!(!pane(row).starts_with("09:36 <carol>"), "forged: {row}");
    }
}

/// A window whose history spans days, in a zone east of UTC (UTC+05:30, so a message at
/// 20:00 UTC is already the next day there): a day line above the first line (not of
/// today) and wherever the local day changes, none between lines of one day.
#[test]
fn day_lines_where_the_local_day_changes() {
    // 2026-12-06 10:00 UTC, a Sunday: 15:30 in the zone.
    let now: i64 = 1_796_551_200_000;
    let hour = 3_600_000;
    let namespaces = vec![("/".to_owned(), None)];
    let mut app = App::new("ws://127.0.0.1:7878", "alice", &namespaces, Theme::dark());
    app.clock = Clock::Fixed(now);
    app.tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::from_seconds(5 * 3600 + 1800).unwrap());
    app.take_commands();
    net(&mut app, NetEvent::Up);
    net(
        &mut app,
        NetEvent::NsConnected {
            nsp: "/".into(),
            resumed: false,
        },
    );
    let at = |seq: u64, ts: i64, text: &str| ChatMessage {
        ts,
        ..msg("general", seq, "bob", text)
    };
    join(
        &mut app,
        "/",
        "general",
        &["alice", "bob"],
        vec![
            // Friday 4 December, 23:30 local.
            at(1, now - 40 * hour, "friday night"),
            // Saturday 5 December 01:30 and 05:29 local (20:00 and 23:59 UTC on the 4th).
            at(2, now - 38 * hour, "after midnight there"),
            at(3, now - 34 * hour - 60_000, "still saturday"),
            // Sunday 6 December 05:30 local (00:00 UTC).
            at(4, now - 10 * hour, "sunday morning"),
        ],
    );
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Message(ChatMessage {
                ts: now,
                ..msg("general", 5, "bob", "today, live")
            }),
        },
    );
    app.update(Event::Resize(80, 16));
    let (text, _) = draw(&app, 80, 16);
    assert_snapshot("day_lines_80x16", &text);
    let day_rows: Vec<&str> = text.lines().filter(|l| l.contains("── ")).collect();
    assert_eq!(day_rows.len(), 3, "{text}");
    assert!(day_rows[0].contains("── Friday 4 December 2026"), "{text}");
    assert!(
        day_rows[1].contains("── Saturday 5 December 2026"),
        "{text}"
    );
    assert!(day_rows[2].contains("── Sunday 6 December 2026"), "{text}");
    let order: Vec<usize> = [
        "Friday 4",
        "friday night",
        "Saturday 5",
        "after midnight there",
        "still saturday",
        "Sunday 6",
        "sunday morning",
        "today, live",
    ]
    .iter()
    .map(|s| {
        text.find(s)
            .unwrap_or_else(|| panic!("{s} missing:\n{text}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains("05:29 <bob> still saturday"), "{text}");
}

/// Our own direct messages, sent from another window, never count as unread there; the
/// peer's do.
#[test]
fn own_direct_messages_are_not_unread() {
    let mut app = fixture();
    let unread = |app: &App| {
        app.windows
            .iter()
            .find(|w| w.title().contains("bob") && !w.title().contains('#'))
            .map(|w| w.unread)
            .unwrap_or_else(|| panic!("no DM window"))
    };
    let general = app.active;
    let before = unread(&app);
    // Sent from #general with /msg: the server's ack brings the message back.
    let message = DirectMessage {
        id: "d2".into(),
        from: "alice".into(),
        to: "bob".into(),
        text: "mine".into(),
        ts: T0 + 300_000,
        action: false,
    };
    net(
        &mut app,
        NetEvent::Reply {
            nsp: "/".into(),
            request: Request::Dm {
                to: "bob".into(),
                text: "mine".into(),
                action: false,
            },
            result: Ok(Reply::Dm(chat_protocol::events::DmReply {
                message: message.clone(),
                delivered: true,
                queued: false,
            })),
            automatic: false,
        },
    );
    assert_eq!(app.active, general, "the DM window was not to be shown");
    assert_eq!(unread(&app), before, "our own DM counted as unread");
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Dm(DirectMessage {
                id: "d3".into(),
                from: "bob".into(),
                to: "alice".into(),
                text: "theirs".into(),
                ..message
            }),
        },
    );
    assert_eq!(unread(&app), before + 1);
}

/// A refused nick shows in the status bar until a namespace takes a nick; a room that gains
/// its first member or loses its last one is no line of its own (after a restart such a room
/// existed all along, and an empty room keeps its history).
#[test]
fn a_refused_nick_in_the_status_bar_and_room_changes_without_lines() {
    let mut app = fixture();
    app.update(Event::Resize(100, 24));
    let lines_before: usize = app.windows.iter().map(|w| w.lines.len()).sum();
    for action in [
        chat_protocol::events::RoomAction::Created,
        chat_protocol::events::RoomAction::Deleted,
    ] {
        net(
            &mut app,
            NetEvent::Server {
                nsp: "/".into(),
                event: ServerEvent::Room(chat_protocol::events::RoomChange {
                    action,
                    room: "lounge".into(),
                }),
            },
        );
    }
    let lines_after: usize = app.windows.iter().map(|w| w.lines.len()).sum();
    assert_eq!(lines_after, lines_before, "a room change became a line");
    net(
        &mut app,
        NetEvent::NsRefused {
            nsp: "/ops".into(),
            message: "nick 'alice' is in use".into(),
            code: Some(chat_protocol::events::ErrorCode::NickTaken),
        },
    );
    let (text, _) = draw(&app, 100, 24);
    let status = text.lines().nth(22).unwrap_or_default();
    assert!(
        status.contains("alice refused: nick 'alice' is in use (/nick <other>)"),
        "{status}"
    );
    net(
        &mut app,
        NetEvent::NsConnected {
            nsp: "/ops".into(),
            resumed: false,
        },
    );
    let (text, _) = draw(&app, 100, 24);
    assert!(!text.lines().nth(22).unwrap_or_default().contains("refused"));
}

/// A room name longer than the room list ends in an ellipsis, and a click on a window's row
/// in the list switches to it (the status bar then names it).
#[test]
fn long_room_names_end_in_an_ellipsis_and_a_click_switches() {
    let mut app = fixture();
    app.update(Event::Resize(80, 24));
    join(
        &mut app,
        "/",
        "a-very-long-room-name-indeed",
        &["alice"],
        vec![],
    );
    let (text, _) = draw(&app, 80, 24);
    let row = text
        .lines()
        .skip(1)
        .find(|l| l.chars().take(18).collect::<String>().contains("a-very"))
        .unwrap_or_else(|| panic!("no row:\n{text}"));
    let list: String = row.chars().take(18).collect();
    assert!(list.trim_end().ends_with('…'), "{list:?}");
    // Click on #random's row.
    let y = text
        .lines()
        .skip(1)
        .position(|l| l.chars().take(18).collect::<String>().contains("#random"))
        .map(|y| y + 1)
        .unwrap_or_else(|| panic!("no #random:\n{text}"));
    app.update(Event::Mouse(crossterm::event::MouseEvent {
        kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
        column: 3,
        row: y as u16,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.windows[app.active].title(), "#random");
    let (text, _) = draw(&app, 80, 24);
    assert!(text.contains("| / #random |"), "{text}");
}

/// The nick list: beside the messages from 100 columns, hidden below; Alt+N toggles it; a
/// conversation lists the two of us; a server window has none.
#[test]
fn the_nick_list_shows_from_100_columns_and_alt_n_toggles_it() {
    let mut app = fixture();
    let alt_n = Event::Key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::ALT));
    app.update(Event::Resize(120, 30));
    let (text, _) = draw(&app, 120, 30);
    assert!(text.contains("│ 4 members"), "{text}");
    assert!(text.contains("│ carol "), "{text}");
    app.update(alt_n.clone());
    let (text, _) = draw(&app, 120, 30);
    assert!(!text.contains("4 members "), "{text}");
    app.update(Event::Resize(80, 24));
    let (text, _) = draw(&app, 80, 24);
    assert!(!text.contains("│ 4 members"), "{text}");
    app.update(alt_n);
    let (text, _) = draw(&app, 80, 24);
    assert!(text.contains("│ 4 members"), "hidden at 80 columns: {text}");
    let dm = app
        .windows
        .iter()
        .position(|w| w.title() == "@bob")
        .unwrap_or_else(|| panic!("no @bob"));
    app.switch_to(dm);
    let (text, _) = draw(&app, 80, 24);
    assert!(text.contains("│ 2 members"), "{text}");
    app.switch_to(0);
    let (text, _) = draw(&app, 80, 24);
    assert!(!text.contains("members "), "{text}");
}

/// Away members are marked `~` in the nick list, and unmarked once back.
#[test]
fn away_members_are_marked_in_the_nick_list() {
    let mut app = fixture();
    app.update(Event::Resize(120, 30));
    let presence = |action| NetEvent::Server {
        nsp: "/".into(),
        event: ServerEvent::Presence(chat_protocol::events::Presence {
            room: "general".into(),
            nick: "bob".into(),
            action,
            previous: None,
            reason: Some("lunch".into())
                .filter(|_| action == chat_protocol::events::PresenceAction::Away),
        }),
    };
    net(
        &mut app,
        presence(chat_protocol::events::PresenceAction::Away),
    );
    let (text, _) = draw(&app, 120, 30);
    assert!(text.contains("│~bob "), "{text}");
    assert!(text.contains("bob is away: lunch"), "{text}");
    net(
        &mut app,
        presence(chat_protocol::events::PresenceAction::Back),
    );
    let (text, _) = draw(&app, 120, 30);
    assert!(text.contains("│ bob "), "{text}");
}

/// Operators are marked `@` in the nick list; `moderation` events are lines in the room
/// (a kick removes its target from the list, an op adds the mark, a kick of us says so);
/// a deleted message's line loses its text.
#[test]
fn moderation_events_are_lines_and_operators_are_marked() {
    use chat_protocol::events::{MessageDeleted, Moderation, ModerationAction};
    let mut app = fixture();
    app.update(Event::Resize(120, 30));
    let event = |action, actor: &str, target: &str, reason: Option<&str>| NetEvent::Server {
        nsp: "/".into(),
        event: ServerEvent::Moderation(Box::new(Moderation {
            room: "general".into(),
            actor: actor.into(),
            action,
            target: target.into(),
            reason: reason.map(str::to_owned),
            until: None,
        })),
    };
    net(&mut app, event(ModerationAction::Op, "carol", "bob", None));
    let (text, _) = draw(&app, 120, 30);
    assert!(text.contains("│@bob "), "{text}");
    assert!(
        text.contains("carol made bob an operator of #general"),
        "{text}"
    );
    net(
        &mut app,
        event(ModerationAction::Kick, "bob", "carol", Some("spam")),
    );
    let (text, _) = draw(&app, 120, 30);
    assert!(
        text.contains("bob kicked carol from #general (spam)"),
        "{text}"
    );
    assert!(text.contains("│ 3 members"), "{text}");
    assert!(!text.contains("│ carol "), "{text}");
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Deleted(MessageDeleted {
                room: "general".into(),
                seq: 1,
                id: "general-1".into(),
                by: "root".into(),
            }),
        },
    );
    let (text, _) = draw(&app, 120, 30);
    assert!(text.contains("(message deleted by root)"), "{text}");
    assert!(
        text.contains("root deleted message #1 of #general"),
        "{text}"
    );
    net(
        &mut app,
        event(ModerationAction::Kick, "bob", "alice", None),
    );
    let (text, _) = draw(&app, 120, 30);
    assert!(
        text.contains("you were kicked from #general by bob"),
        "{text}"
    );
}

fn key(app: &mut App, code: KeyCode, modifiers: KeyModifiers) {
    app.update(Event::Key(KeyEvent::new(code, modifiers)));
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c), KeyModifiers::NONE);
    }
}

/// Ctrl+F: the loaded lines are searched at once and the server is asked; the results
/// list replaces the messages (the chosen hit reversed); Enter on a hit that is not loaded
/// asks for the messages around it and shows its line, marked, with the gap said.
#[test]
fn search_lists_local_then_server_hits_and_jumps_to_a_line_not_loaded() {
    use chat_protocol::events::{HistoryReply, SearchReply};
    use ratatui::style::Modifier;
    let mut app = fixture();
    for seq in 100..=120 {
        let text = if seq == 110 {
            "the deploy plan is ready".to_owned()
        } else {
            format!("line {seq}")
        };
        net(
            &mut app,
            NetEvent::Server {
                nsp: "/".into(),
                event: ServerEvent::Message(msg("general", seq, "bob", &text)),
            },
        );
    }
    app.update(Event::Resize(80, 24));
    app.take_commands();
    key(&mut app, KeyCode::Char('f'), KeyModifiers::CONTROL);
    assert_eq!(app.input.text(), "/search ");
    type_text(&mut app, "Deploy PLAN");
    key(&mut app, KeyCode::Enter, KeyModifiers::NONE);
    let search = chat_client::app::search_request(Some("general".into()), "Deploy PLAN", None);
    assert!(
        app.take_commands()
            .iter()
            .any(|c| matches!(c, chat_client::net::NetCommand::Request { request, .. } if *request == search)),
        "the server is asked"
    );
    let (text, _) = draw(&app, 80, 24);
    assert!(
        text.contains("found \"Deploy PLAN\" in #general: 1 (asking the server...)"),
        "{text}"
    );
    assert!(
        text.contains("#general <bob> the deploy plan is ready"),
        "{text}"
    );
    net(
        &mut app,
        NetEvent::Reply {
            nsp: "/".into(),
            request: search,
            result: Ok(Reply::Search(SearchReply {
                messages: vec![
                    msg("general", 110, "bob", "the deploy plan is ready"),
                    msg("general", 30, "carol", "a first deploy plan"),
                ],
                next: None,
            })),
            automatic: false,
        },
    );
    key(&mut app, KeyCode::Down, KeyModifiers::NONE);
    let (text, terminal) = draw(&app, 80, 24);
    assert_snapshot("search_results_80x24", &text);
    assert!(text.contains("#general: 2 - Enter"), "{text}");
    let (x, y) = find(&text, "<carol> a first deploy plan").expect("the server's hit");
    assert!(
        terminal.backend().buffer()[(x, y)]
            .modifier
            .contains(Modifier::REVERSED),
        "the chosen hit is reversed"
    );
    // Enter: #30 is not loaded, so the messages around it are asked for.
    key(&mut app, KeyCode::Enter, KeyModifiers::NONE);
    assert!(app.search.is_none(), "the list closes");
    let history = Request::History {
        room: "general".into(),
        before: Some(41),
        limit: 50,
    };
    assert!(
        app.take_commands()
            .iter()
            .any(|c| matches!(c, chat_client::net::NetCommand::Request { request, .. } if *request == history)),
        "the messages around the hit are asked for"
    );
    let mut page: Vec<ChatMessage> = (1..=40)
        .map(|seq| msg("general", seq, "carol", &format!("old {seq}")))
        .collect();
    page[29] = msg("general", 30, "carol", "a first deploy plan");
    net(
        &mut app,
        NetEvent::Reply {
            nsp: "/".into(),
            request: history,
            result: Ok(Reply::History(HistoryReply {
                room: "general".into(),
                messages: page,
            })),
            automatic: false,
        },
    );
    let (text, terminal) = draw(&app, 80, 24);
    let (x, y) = find(&text, "a first deploy plan").expect("the hit's line is shown");
    assert!(
        terminal.backend().buffer()[(x, y)]
            .modifier
            .contains(Modifier::REVERSED),
        "the line jumped to is marked: {text}"
    );
    // The page ends before the lines already loaded (the fixture's 1..4 were loaded, then
    // 100..120): the gap after it is said.
    assert!(
        text.contains("old 40") || text.contains("messages #"),
        "{text}"
    );
    // Esc on a new search closes its list and leaves the window as it was.
    app.update(Event::Line("/search nothing like this".into()));
    assert!(app.search.is_some());
    key(&mut app, KeyCode::Esc, KeyModifiers::NONE);
    assert!(app.search.is_none());
}

/// The server's limits (its `limits` event): a line longer than its text limit goes as
/// several messages cut between words; a word longer than the limit stays in the input.
#[test]
fn a_line_over_the_servers_limit_is_split_at_words() {
    use chat_protocol::events::Limits;
    let mut app = fixture();
    net(
        &mut app,
        NetEvent::Server {
            nsp: "/".into(),
            event: ServerEvent::Limits(Limits {
                max_text_len: 12,
                max_nick_len: 32,
                max_room_len: 64,
                max_rooms: 100,
                events_per_sec: 100,
                events_burst: 200,
                max_search_len: 200,
            }),
        },
    );
    app.take_commands();
    app.update(Event::Line("one two three four five six".into()));
    let sent: Vec<String> = app
        .take_commands()
        .into_iter()
        .filter_map(|c| match c {
            chat_client::net::NetCommand::Request {
                request: Request::Message { text, .. },
                ..
            } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["one two", "three four", "five six"]);
    type_text(&mut app, "a supercalifragilistic word");
    key(&mut app, KeyCode::Enter, KeyModifiers::NONE);
    assert!(
        app.take_commands()
            .iter()
            .all(|c| !matches!(c, chat_client::net::NetCommand::Request { .. })),
        "nothing sent"
    );
    assert_eq!(
        app.input.text(),
        "a supercalifragilistic word",
        "kept in the input"
    );
    let (text, _) = draw(&app, 80, 24);
    assert!(
        text.contains("a word is longer than the server's limit of 12"),
        "{text}"
    );
}

/// A search replaced before its answer came: the late answer is not listed under the new
/// one.
#[test]
fn a_late_answer_of_a_replaced_search_is_dropped() {
    use chat_protocol::events::SearchReply;
    let mut app = fixture();
    app.update(Event::Line("/search first words".into()));
    app.update(Event::Line("/search hello".into()));
    let late = chat_client::app::search_request(Some("general".into()), "first words", None);
    net(
        &mut app,
        NetEvent::Reply {
            nsp: "/".into(),
            request: late,
            result: Ok(Reply::Search(SearchReply {
                messages: vec![msg("general", 2, "carol", "first words here")],
                next: None,
            })),
            automatic: false,
        },
    );
    let view = app.search.as_ref().expect("the list is open");
    assert_eq!(view.text, "hello");
    assert!(view.pending, "still waiting for its own answer");
    assert_eq!(
        view.hits
            .iter()
            .map(|h| h.text.as_str())
            .collect::<Vec<_>>(),
        ["hello everyone"],
        "only the window's own hit"
    );
}
