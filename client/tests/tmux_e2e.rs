//! End to end in a real terminal (among the steps: a search with Ctrl+F and the jump to
//! its hit): the `chat` binary runs inside tmux (a private server
//! socket, `tmux -L <unique>`), keys are typed with `send-keys`, the screen is read with
//! `capture-pane -p`. A headless client in this process is the other side of the chat.
//! Skipped, with a printed reason, when tmux is not installed.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, start_server};

/// A tmux server of our own, killed on drop whatever happens.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn new() -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Tmux {
            socket: format!("chat-e2e-{}-{nanos}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-u", "-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn start(&self, width: u16, height: u16, command: &str) {
        let out = self.run(&[
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(out.status.success(), "tmux: {out:?}");
        // Keep the pane after the program exits, to read the restored screen.
        self.run(&["set-option", "-t", "chat", "remain-on-exit", "on"]);
    }

    /// Types text literally (no key names).
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]);
    }

    /// Presses keys by name (`Enter`, `M-1`, `PageUp`, ...).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "chat"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "chat"]).stdout)
            .into_owned()
    }

    fn display(&self, format: &str) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["display-message", "-p", "-t", "chat", format])
                .stdout,
        )
        .trim()
        .to_owned()
    }

    /// Polls the screen until `pred` holds; panics with the screen after the deadline.
    async fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                let pane =
                    self.display("dead=#{pane_dead} status=#{pane_dead_status} pid=#{pane_pid}");
                panic!("screen never showed {what} ({pane}):\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_text(&self, text: &str) -> String {
        self.wait_screen(text, |s| s.contains(text)).await
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_in_a_real_terminal() {
    if !Tmux::available() {
        println!("SKIPPED chat_in_a_real_terminal: tmux is not installed");
        return;
    }
    let server = start_server(&[("/ops", Some("s3cret"))]).await;
    let url = format!("ws://{}", server.local_addr());
    let bob = Client::start(&url, "bob", &[]);
    bob.line("/join lobby");
    bob.wait_for("you joined #lobby").await;

    let log = std::env::temp_dir().join(format!("chat-e2e-{}.log", std::process::id()));
    let tmux = Tmux::new();
    let status_file = std::env::temp_dir().join(format!("chat-e2e-{}.status", std::process::id()));
    let _ = std::fs::remove_file(&status_file);
    // The shell records the exit status (tmux's own #{pane_dead_status} is not reliable).
    let command = format!(
        "{} --server {url} --nick alice --log {}; echo $? > {}",
        env!("CARGO_BIN_EXE_chat"),
        log.display(),
        status_file.display()
    );
    tmux.start(100, 30, &command);

    // Connected; the status line says so.
    tmux.wait_text("connected to / as alice").await;
    tmux.wait_text("online | alice | ns /").await;

    // /join shows the room in the list and as the title.
    tmux.line("/join #lobby");
    let screen = tmux.wait_text("you joined #lobby (2 members)").await;
    assert!(screen.contains(" #lobby (2 members)"), "{screen}");
    assert!(screen.contains("2  #lobby"), "{screen}");

    // A message with wide characters goes out; bob receives it.
    tmux.line("hello from tmux 日本 😀");
    tmux.wait_text("<alice> hello from tmux 日本 😀").await;
    bob.wait_for("[/ #lobby] <alice> hello from tmux 日本 😀")
        .await;

    // A long line and its Enter in one burst (what a paste gives where the terminal has no
    // bracketed paste): past the 1,024 bytes crossterm reads at a time, so the line's tail
    // and the Enter come in a later read, which must not wait for the next key.
    let long = "0123456789".repeat(150);
    tmux.type_text(&format!("{long}\r"));
    bob.wait_for(&format!("[/ #lobby] <alice> {long}")).await;

    // Bob answers; it appears on the screen.
    bob.line("hi alice, welcome");
    tmux.wait_text("<bob> hi alice, welcome").await;

    // Editing with cursor keys over wide characters: type, move left over the emoji,
    // delete the CJK character before it, send.
    tmux.type_text("ab日😀");
    tmux.keys(&["Left", "BSpace", "Enter"]);
    bob.wait_for("<alice> ab😀").await;

    // /msg: a direct message to bob.
    tmux.line("/msg bob psst");
    bob.wait_for("[/ @alice] <alice> psst").await;
    tmux.wait_text("@bob").await;

    // /ns: a protected namespace is refused without its key, then connected with it.
    tmux.line("/ns /ops");
    tmux.wait_text("/ops refused the connection").await;
    tmux.line("/ns /ops s3cret");
    let screen = tmux.wait_text("connected to /ops as alice").await;
    assert!(screen.contains("ns /ops"), "{screen}");

    // While /ops is shown, bob mentions alice in #lobby: the room list counts it.
    bob.line("alice: look at this");
    tmux.wait_screen("an unread mention for #lobby", |s| {
        s.lines()
            .any(|l| l.contains("2  #lobby") && l.contains(" 1 @1"))
    })
    .await;

    // Alt+2 switches back to #lobby (window 2 in the list): the read marker sits above
    // the unread message and the count is gone.
    tmux.keys(&["M-2"]);
    let screen = tmux
        .wait_screen("#lobby as the active window, drawn", |s| {
            // The whole frame: a capture can land while the terminal is still being drawn.
            s.lines().next().is_some_and(|l| l.contains("#lobby"))
                && s.contains("<bob> alice: look at this")
                && s.contains("online | alice | / #lobby ")
        })
        .await;
    let rows: Vec<&str> = screen.lines().collect();
    let marker = rows.iter().position(|l| l.contains("── new ─"));
    let unread = rows
        .iter()
        .position(|l| l.contains("<bob> alice: look at this"));
    assert!(
        marker.is_some() && marker.map(|m| m + 1) == unread,
        "{screen}"
    );
    assert!(!screen.contains(" 1 @1"), "{screen}");

    // Bob's next message while #lobby is active.
    bob.line("bye now");
    tmux.wait_text("<bob> bye now").await;

    // Ctrl+F: a search of #lobby, the window's lines then the server's history; the hit
    // found in both is listed once, and Enter goes back to the room.
    tmux.keys(&["C-f"]);
    tmux.wait_text("[#lobby] /search").await;
    tmux.line("FROM tmux");
    let screen = tmux
        .wait_text("found \"FROM tmux\" in #lobby: 1 - Enter")
        .await;
    assert!(
        screen.contains("#lobby <alice> hello from tmux 日本 😀"),
        "{screen}"
    );
    assert!(
        !screen.contains("<bob> bye now"),
        "the list is over the messages:\n{screen}"
    );
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("scrolled up (PgDn)").await;
    assert!(!screen.contains("found \""), "{screen}");
    assert!(screen.contains("<alice> hello from tmux"), "{screen}");
    // The line jumped to is drawn reversed (SGR 7).
    let escaped =
        String::from_utf8_lossy(&tmux.run(&["capture-pane", "-p", "-e", "-t", "chat"]).stdout)
            .into_owned();
    assert!(
        escaped
            .lines()
            .any(|l| l.contains("hello from tmux") && l.contains("\u{1b}[7m")),
        "{escaped:?}"
    );

    // Then /quit ends the program cleanly.
    tmux.line("/quit");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match std::fs::read_to_string(&status_file) {
            Ok(s) if !s.trim().is_empty() => break s.trim().to_owned(),
            _ if Instant::now() > deadline => panic!("chat did not exit:\n{}", tmux.screen()),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(
        status,
        "0",
        "exit status; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The terminal was restored: the chat screen (alternate screen) is gone.
    let after = tmux.screen();
    assert!(
        !after.contains("online | alice") && !after.contains("[#lobby]"),
        "{after}"
    );

    let (ok, out) = bob.finish().await;
    assert!(ok, "{out}");
    server.shutdown().await;
    let _ = std::fs::remove_file(log);
    let _ = std::fs::remove_file(status_file);
}

/// A POSIX `TZ` whose local time is about `seconds_to_midnight` before midnight now (a fixed
/// offset within twelve hours of UTC), so a test sees the local day change.
fn zone_just_before_midnight(seconds_to_midnight: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut offset = (86_400 - seconds_to_midnight - now.rem_euclid(86_400)).rem_euclid(86_400);
    if offset > 43_200 {
        offset -= 86_400;
    }
    // POSIX writes the offset west of UTC: `XXX-5:30` is five and a half hours east.
    let sign = if offset >= 0 { '-' } else { '+' };
    let o = offset.abs();
    format!("XXX{sign}{}:{:02}:{:02}", o / 3600, (o / 60) % 60, o % 60)
}

/// The staples in a real terminal, in a time zone other than UTC: the local day changes
/// between two messages and a day line says so; a conversation follows its peer's nick
/// change; Alt+Enter makes a message of two lines; the nick list shows away members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_change_a_renamed_conversation_and_a_multi_line_message() {
    if !Tmux::available() {
        println!(
            "SKIPPED a_day_change_a_renamed_conversation_and_a_multi_line_message: tmux is not installed"
        );
        return;
    }
    let server = start_server(&[]).await;
    let url = format!("ws://{}", server.local_addr());
    let bob = Client::start(&url, "bob", &[]);
    bob.line("/join lobby");
    bob.wait_for("you joined #lobby").await;

    let log = std::env::temp_dir().join(format!("chat-e2e2-{}.log", std::process::id()));
    let tmux = Tmux::new();
    // Midnight comes about 8 s from now in this zone.
    let tz = zone_just_before_midnight(8);
    let command = format!(
        "TZ='{tz}' {} --server {url} --nick alice --log {}",
        env!("CARGO_BIN_EXE_chat"),
        log.display(),
    );
    tmux.start(120, 32, &command);
    tmux.wait_text("connected to / as alice").await;
    tmux.line("/join #lobby");
    tmux.wait_text("you joined #lobby (2 members)").await;
    // The nick list, from 100 columns.
    tmux.wait_text("│ 2 members").await;

    bob.line("before midnight");
    tmux.wait_text("<bob> before midnight").await;
    // Past midnight in alice's zone (bounded: the zone was set 8 s ahead).
    tokio::time::sleep(Duration::from_secs(9)).await;
    bob.line("after midnight");
    let screen = tmux.wait_text("<bob> after midnight").await;
    let rows: Vec<&str> = screen.lines().collect();
    let before = rows
        .iter()
        .position(|l| l.contains("<bob> before midnight"));
    // The last day line (the first line's own day has one too, now that it is yesterday).
    let day = rows
        .iter()
        .rposition(|l| l.contains("── ") && l.contains(" 20"));
    let after = rows.iter().position(|l| l.contains("<bob> after midnight"));
    assert!(
        matches!((before, day, after), (Some(b), Some(d), Some(a)) if b < d && d < a),
        "no day line between the two messages:\n{screen}"
    );
    assert!(screen.contains("23:59 <bob> before midnight"), "{screen}");
    assert!(screen.contains("00:00 <bob> after midnight"), "{screen}");

    // A message of two lines: Alt+Enter between them.
    tmux.type_text("first line");
    tmux.keys(&["M-Enter"]);
    tmux.type_text("second line");
    tmux.keys(&["Enter"]);
    bob.wait_for("[/ #lobby] <alice> first line").await;
    bob.wait_for("  | second line").await;
    let screen = tmux.wait_text("second line").await;
    let first = screen
        .lines()
        .position(|l| l.contains("<alice> first line"));
    let second = screen
        .lines()
        .position(|l| l.contains("second line") && !l.contains("<alice>"));
    assert!(
        matches!((first, second), (Some(f), Some(s)) if s == f + 1),
        "the second line is not a continuation row:\n{screen}"
    );

    // A conversation with bob; bob becomes robert; the window follows and still works.
    tmux.line("/query bob");
    tmux.wait_text("[@bob]").await;
    bob.line("/nick robert");
    tmux.wait_text("bob is now known as robert").await;
    let screen = tmux.wait_text("@robert").await;
    assert!(!screen.contains("@bob"), "a stale @bob window:\n{screen}");
    tmux.line("are you still there?");
    bob.wait_for("[/ @alice] <alice> are you still there?")
        .await;

    // Away: robert's mark in alice's nick list.
    bob.line("/away lunch");
    tmux.line("/join #lobby");
    tmux.wait_text("robert is away: lunch").await;
    tmux.wait_text("│~robert").await;

    tmux.line("/quit");
    let (ok, out) = bob.finish().await;
    assert!(ok, "{out}");
    server.shutdown().await;
}

/// A server, and `chat` as alice in #lobby in a 100 x 16 tmux pane.
async fn alice_in_lobby() -> (chat_server::RunningServer, String, Tmux) {
    let server = start_server(&[]).await;
    let url = format!("ws://{}", server.local_addr());
    let tmux = Tmux::new();
    tmux.start(
        100,
        16,
        &format!("{} --server {url} --nick alice", env!("CARGO_BIN_EXE_chat")),
    );
    tmux.wait_text("connected to / as alice").await;
    tmux.line("/join #lobby");
    tmux.wait_text("you joined #lobby").await;
    (server, url, tmux)
}

/// An Indic nick in the member list, then gone: tmux holds `ரவி` as three cells (`ர`, `வ`,
/// the vowel sign `ி`) and erases them one at a time, so the view splits such clusters into
/// cells of one column (`view::align_to_terminal`); drawn as one wide cell, its vowel sign was
/// left on screen when the nick left the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indic_nick_leaves_nothing_behind_in_the_member_list() {
    if !Tmux::available() {
        println!(
            "SKIPPED an_indic_nick_leaves_nothing_behind_in_the_member_list: tmux is not installed"
        );
        return;
    }
    let (server, url, tmux) = alice_in_lobby().await;
    let ravi = Client::start(&url, "ரவி", &[]);
    ravi.line("/join lobby");
    ravi.wait_for("you joined #lobby").await;
    ravi.line("hello from ravi");
    tmux.wait_text("hello from ravi").await;
    tmux.wait_text(" 2 members").await;
    let (ok, out) = ravi.finish().await;
    assert!(ok, "{out}");
    let screen = tmux.wait_text(" 1 member").await;
    // Every vowel sign on screen is inside the nick (its message, its quit line).
    assert_eq!(
        screen.matches('\u{0BBF}').count(),
        screen.matches("ரவி").count(),
        "a vowel sign was left behind:\n{screen}"
    );
    server.shutdown().await;
}

/// Spacing vowel signs that unicode-width counts as no column (Tamil `ா`, Bengali `া`) take
/// one in tmux: the view moves what follows them one column right and gives back a blank, so
/// the nick list's border stays in its column on the message's rows, and nothing is left
/// behind when the message area is drawn over (the search overlay here). Counted ratatui's
/// way, the row ran one column per sign into the border and kept its last letters on screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spacing_vowel_signs_keep_their_columns_in_a_real_terminal() {
    if !Tmux::available() {
        println!(
            "SKIPPED spacing_vowel_signs_keep_their_columns_in_a_real_terminal: tmux is not installed"
        );
        return;
    }
    let (server, url, tmux) = alice_in_lobby().await;
    let nadu = Client::start(&url, "nadu", &[]);
    nadu.line("/join lobby");
    nadu.wait_for("you joined #lobby").await;
    // Six spacing signs, and a line long enough to wrap under its first row.
    let text = "நாடு காலை வாழ்க বাংলা ভাষা ಕೂಡ end of the first line and then some more words to wrap it";
    nadu.line(text);
    let screen = tmux.wait_text("some more words").await;
    // The terminal column of each row's second border (the nick list's), in the
    // terminal's count.
    let border = |screen: &str| -> Vec<usize> {
        screen
            .lines()
            .skip(1)
            .take(12)
            .map(|row| {
                let at: Vec<usize> = row.match_indices('\u{2502}').map(|(i, _)| i).collect();
                at.get(1)
                    .map_or(0, |&i| chat_client::columns::columns(&row[..i]))
            })
            .collect()
    };
    let columns = border(&screen);
    assert!(
        columns.iter().all(|&c| c == columns[0] && c > 0),
        "the nick list's border moved: {columns:?}\n{screen}"
    );
    assert!(screen.contains("நாடு காலை"), "{screen}");
    // Drawn over: the search overlay takes the message area.
    tmux.keys(&["C-f"]);
    tmux.type_text("zzz");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("zzz").await;
    for sign in ['\u{0BBE}', '\u{09BE}', '\u{0CC2}'] {
        assert!(!screen.contains(sign), "{sign:?} left behind:\n{screen}");
    }
    let (ok, out) = nadu.finish().await;
    assert!(ok, "{out}");
    server.shutdown().await;
}
