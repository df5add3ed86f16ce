//! Headless mode against an in-process server: the same command parser and `update` as the
//! TUI, driven by script lines; plus the real `chat` binary's `--script` exit codes.

mod common;

use std::time::Duration;

use common::{Client, Proxy, closed_port, start_server, start_server_at, start_server_with};

fn url(addr: std::net::SocketAddr) -> String {
    format!("ws://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_broadcast_dm_and_leave() {
    let server = start_server(&[]).await;
    let server_url = url(server.local_addr());
    let alice = Client::start(&server_url, "alice", &[]);
    let bob = Client::start(&server_url, "bob", &[]);

    alice.line("/join #general");
    alice.wait_for("[/ #general] -- you joined #general").await;
    bob.line("/join general");
    alice.wait_for("bob joined #general").await;
    alice.line("hello bob 日本 😀");
    bob.wait_for("[/ #general] <alice> hello bob 日本 😀").await;
    bob.line("/me waves");
    alice.wait_for("[/ #general] * bob waves").await;
    bob.line("/msg alice psst");
    alice.wait_for("[/ @bob] <bob> psst").await;
    bob.wait_for("[/ @alice] <bob> psst").await;
    alice.line("/who");
    alice.wait_for("#general has 2 members: alice, bob").await;
    bob.line("/topic Rust talk");
    alice
        .wait_for("bob set the topic of #general: Rust talk")
        .await;
    bob.line("/rooms");
    bob.wait_for("#general (2 members): Rust talk").await;
    bob.line("/nick robert");
    bob.wait_for("you are now known as robert (was bob)").await;
    alice.wait_for("bob is now known as robert").await;
    bob.line("/leave");
    bob.wait_for("[/] -- you left #general").await;
    alice.wait_for("robert left #general").await;
    alice.line("/frobnicate");
    alice
        .wait_for("!! unknown command /frobnicate (try /help)")
        .await;
    alice.line("/join #bad room");
    alice.wait_for("!! usage: /join <room>").await;
    // A search from the namespace's window: every room alice is in, on the server.
    alice.line("/search HELLO bob");
    alice
        .wait_for("[/ search] #general <alice> hello bob 日本 😀")
        .await;
    alice.wait_for("[/ search] 1 found for \"HELLO bob\"").await;

    let (ok_a, _) = alice.finish().await;
    let (ok_b, out_b) = bob.finish().await;
    assert!(ok_a && ok_b, "{out_b}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_multiplexed_and_protected_namespace_refused_then_accepted() {
    let server = start_server(&[("/ops", Some("s3cret"))]).await;
    let server_url = url(server.local_addr());
    let alice = Client::start(&server_url, "alice", &[]);
    alice.wait_for("connected to / as alice").await;
    alice.line("/ns /ops");
    alice
        .wait_for("[/ops] !! /ops refused the connection")
        .await;
    // A refusal of a later namespace is shown, not fatal.
    alice.line("/ns /ops wrong");
    alice.wait_for("wrong key").await;
    alice.line("/ns /ops s3cret");
    alice.wait_for("[/ops] -- connected to /ops as alice").await;
    alice.line("/join deploy");
    alice.wait_for("[/ops #deploy] -- you joined #deploy").await;
    alice.line("/ns /");
    alice.line("/join deploy");
    alice.wait_for("[/ #deploy] -- you joined #deploy").await;
    alice.line("same room name, other namespace");
    let (ok, out) = alice.finish().await;
    assert!(ok, "{out}");
    assert!(out.contains("[/ #deploy] <alice> same room name, other namespace"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_first_namespace_fails_the_script() {
    let server = start_server(&[]).await;
    let server_url = url(server.local_addr());
    let first = Client::start(&server_url, "alice", &[]);
    first.wait_for("connected to / as alice").await;
    let clash = Client::start(&server_url, "alice", &[]);
    clash.line("/wait 3000");
    let (ok, out) = clash.finish().await;
    assert!(!ok, "{out}");
    assert!(out.contains("is in use"), "{out}");
    let (ok, _) = first.finish().await;
    assert!(ok);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_the_script() {
    let client = Client::start(&url(closed_port()), "alice", &[]);
    client.line("/wait 3000");
    let (ok, out) = client.finish().await;
    assert!(!ok, "{out}");
    assert!(out.contains("!! cannot connect"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmet_expectation_fails_the_script() {
    let server = start_server(&[]).await;
    let client = Client::start(&url(server.local_addr()), "alice", &[]);
    client.line("/expect something that never comes");
    let (ok, out) = client.finish().await;
    assert!(!ok, "{out}");
    assert!(out.contains("!! expectation not met within 5.0 s"), "{out}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_server_restart_and_rejoins() {
    let server = start_server(&[]).await;
    let addr = server.local_addr();
    let alice = Client::start(&url(addr), "alice", &[]);
    let bob = Client::start(&url(addr), "bob", &[]);
    alice.line("/join lobby");
    alice.wait_for("you joined #lobby").await;
    bob.line("/join lobby");
    alice.wait_for("bob joined #lobby").await;

    server.shutdown().await;
    alice
        .wait_for("disconnected from the server (the server is going away)")
        .await;
    bob.wait_for("disconnected from the server").await;
    let server = start_server_at(addr, &[]).await;
    alice.wait_for("reconnected to / as alice").await;
    bob.wait_for("reconnected to / as bob").await;
    // Both rejoined #lobby by themselves.
    alice.wait_for("bob joined #lobby").await;
    alice.line("back again");
    bob.wait_for("[/ #lobby] <alice> back again").await;
    let (ok_a, out_a) = alice.finish().await;
    let (ok_b, _) = bob.finish().await;
    assert!(ok_a && ok_b, "{out_a}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_after_a_lost_connection_without_duplicates() {
    let server = start_server(&[]).await;
    let proxy = Proxy::start(server.local_addr()).await;
    let alice = Client::start(&url(proxy.addr), "alice", &[]);
    let bob = Client::start(&url(server.local_addr()), "bob", &[]);
    alice.line("/join r");
    alice.wait_for("you joined #r").await;
    bob.line("/join r");
    alice.wait_for("bob joined #r").await;
    bob.line("one");
    alice.wait_for("<bob> one").await;

    proxy.cut();
    alice.wait_for("disconnected from the server").await;
    bob.wait_for("alice quit").await;
    bob.line("two");
    bob.line("three");
    bob.wait_for("[/ #r] <bob> three").await;
    // Typed while offline: queued, sent once the connection is back.
    alice.line("typed while offline");
    proxy.resume();
    // The missed messages arrive in the rejoin's history (announced as "2 new message(s)
    // while you were away") or, from a server that honours `since`, as events; either way
    // exactly once (checked below).
    alice.wait_for("reconnected to / as alice").await;
    alice
        .wait_for("[/ #r] -- 2 new message(s) while you were away")
        .await;
    alice.wait_for("<bob> two").await;
    alice.wait_for("<bob> three").await;
    bob.wait_for("[/ #r] <alice> typed while offline").await;
    alice.wait_for("[/ #r] <alice> typed while offline").await;
    bob.line("four");
    alice.wait_for("<bob> four").await;

    let (ok, out) = alice.finish().await;
    assert!(ok, "{out}");
    for text in ["one", "two", "three", "four"] {
        let n = out
            .lines()
            .filter(|l| *l == format!("[/ #r] <bob> {text}"))
            .count();
        assert_eq!(n, 1, "{text} shown {n} times:\n{out}");
    }
    let (_, out_b) = bob.finish().await;
    let n = out_b
        .lines()
        .filter(|l| *l == "[/ #r] <alice> typed while offline")
        .count();
    assert_eq!(n, 1, "{out_b}");
    server.shutdown().await;
}

/// The real binary: `--script FILE` exits 0 when every expectation holds, 1 otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_script_exit_codes() {
    let server = start_server(&[]).await;
    let dir = std::env::temp_dir().join(format!("chat-headless-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let script = dir.join("ok.chat");
    std::fs::write(
        &script,
        "# a comment\n/join #lobby\n/expect you joined #lobby\nhello\n/expect <carol> hello\n/quit\n",
    )
    .expect("write script");
    let run = |server: String, script: std::path::PathBuf| {
        let log = dir.join("chat.log");
        async move {
            tokio::time::timeout(
                Duration::from_secs(20),
                tokio::process::Command::new(env!("CARGO_BIN_EXE_chat"))
                    .args(["--server", &server, "--nick", "carol", "--script"])
                    .arg(&script)
                    .arg("--log")
                    .arg(log)
                    .arg("--expect-timeout")
                    .arg("5s")
                    .output(),
            )
            .await
            .expect("chat ended in time")
            .expect("chat ran")
        }
    };
    let out = run(url(server.local_addr()), script.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("> /join #lobby"));
    assert!(stdout.contains("[/ #lobby] <carol> hello"));

    let out = run(url(closed_port()), script.clone()).await;
    assert_eq!(out.status.code(), Some(1));

    std::fs::write(&script, "/expect never\n").expect("write script");
    let out = run(url(server.local_addr()), script).await;
    assert_eq!(out.status.code(), Some(1));

    // `--script -` reads the lines from stdin.
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["--server", &url(server.local_addr()), "--nick", "dave"])
        .args(["--script", "-", "--log"])
        .arg(dir.join("stdin.log"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn chat");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"/join #piped\n/expect you joined #piped\n")
        .await
        .expect("write stdin");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("chat ended in time")
        .expect("chat ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("[/ #piped] -- you joined #piped"),
        "{stdout}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The TUI without a terminal (piped stdin and stdout, as under cron or `ssh` without `-t`):
/// a clear error and exit code 2, not a panic.
#[tokio::test]
async fn the_tui_without_a_terminal_says_so() {
    let dir = std::env::temp_dir().join(format!("chat-notty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chat"))
            .args(["--server", &url(closed_port()), "--nick", "erin", "--log"])
            .arg(dir.join("chat.log"))
            .stdin(std::process::Stdio::piped())
            .output(),
    )
    .await
    .expect("chat ended in time")
    .expect("chat ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs a terminal"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The Engine.IO heartbeat: the client answers pings (it stays connected across many), and a
/// server that goes silent is detected by the client's own watchdog and reconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_pongs_and_silent_server_detection() {
    let server = start_server_with("127.0.0.1:0".parse().expect("addr"), &[], |c| {
        c.engine.ping_interval = Duration::from_millis(100);
        c.engine.ping_timeout = Duration::from_millis(200);
    })
    .await;
    let proxy = Proxy::start(server.local_addr()).await;
    let alice = Client::start(&url(proxy.addr), "alice", &[]);
    alice.line("/join r");
    alice.wait_for("you joined #r").await;
    // Ten ping intervals later, still connected: every ping got its pong.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !alice.output().contains("disconnected"),
        "{}",
        alice.output()
    );

    // The connection goes silent (no close, no data): the watchdog notices.
    proxy.freeze();
    alice
        .wait_for("disconnected from the server (ping timeout: the server went silent)")
        .await;
    alice.wait_for("reconnected to / as alice").await;
    alice.line("still here");
    alice.wait_for("[/ #r] <alice> still here").await;
    let (ok, out) = alice.finish().await;
    assert!(ok, "{out}");
    server.shutdown().await;
}

/// A Socket.IO DISCONNECT from the server: that namespace is not reconnected by itself, the
/// others go on, and `/ns` connects it again on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_disconnect_of_a_namespace_is_not_reconnected() {
    let server = start_server(&[]).await;
    let alice = Client::start(
        &url(server.local_addr()),
        "alice",
        &[("/", None), ("/ops", None)],
    );
    alice.wait_for("connected to / as alice").await;
    alice.wait_for("connected to /ops as alice").await;
    alice.line("/ns /ops");
    alice.line("/join deploy");
    alice.wait_for("[/ops #deploy] -- you joined #deploy").await;
    let ops = server.engine().get_namespace("/ops").expect("/ops exists");
    for socket in ops.sockets() {
        socket.disconnect().await;
    }
    alice
        .wait_for("the server disconnected you from /ops")
        .await;
    alice
        .wait_for("[/ops #deploy] !! you are no longer in #deploy (/ops was closed)")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = alice.output();
    assert_eq!(
        out.matches("connected to /ops as alice").count(),
        1,
        "{out}"
    );
    // `/` is untouched.
    alice.line("/ns /");
    alice.line("/join lobby");
    alice.wait_for("you joined #lobby").await;
    // And /ops can be connected again.
    alice.line("/ns /ops");
    alice.wait_for("[/ops] -- connecting to /ops...").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alice.output().matches("connected to /ops as alice").count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{}", alice.output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its room window is still there, and /join really joins again.
    alice.line("/join deploy");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alice
        .output()
        .matches("[/ops #deploy] -- you joined #deploy")
        .count()
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "{}", alice.output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ok, out) = alice.finish().await;
    assert!(ok, "{out}");
    server.shutdown().await;
}

/// Moderation from the terminal client: the registered creator of a room kicks and bans;
/// the room and the target see the lines; the banned user's `/join` is refused; a guest's
/// `/kick` is refused with the server's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_kicks_and_bans_and_a_guest_cannot() {
    let server = start_server(&[]).await;
    let server_url = url(server.local_addr());
    let ada = Client::start_with(&server_url, "ada", &[], Some("pw-ada"));
    ada.line("/join lobby");
    ada.wait_for("you joined #lobby").await;
    let bob = Client::start(&server_url, "bob", &[]);
    bob.line("/join lobby");
    ada.wait_for("bob joined #lobby").await;
    bob.line("/kick ada");
    bob.wait_for("!! kick of ada refused: only operators of lobby")
        .await;
    ada.line("/kick bob too loud");
    ada.wait_for("[/ #lobby] -- ada kicked bob from #lobby (too loud)")
        .await;
    bob.wait_for("[/ #lobby] !! you were kicked from #lobby by ada (too loud)")
        .await;
    // Kicked, not banned: back at once.
    bob.line("/join lobby");
    bob.line("/who");
    bob.wait_for("#lobby has 2 members: ada, bob").await;
    ada.line("/ban bob 1h spam");
    ada.wait_for("ada banned bob from #lobby for").await;
    bob.wait_for("you were kicked from #lobby by ada (spam)")
        .await;
    bob.line("/join lobby");
    bob.wait_for("cannot join #lobby: you are banned from lobby for")
        .await;
    ada.line("/who");
    ada.wait_for("#lobby has 1 member: ada").await;
    // After a restart (a memory store: the ban is gone), bob does not rejoin the room he
    // was removed from; ada does.
    let addr = server.local_addr();
    server.shutdown().await;
    let server = start_server_at(addr, &[]).await;
    bob.wait_for("reconnected to / as bob").await;
    // Handled after any rejoin of bob's (his CONNECT's `since`, his automatic joins).
    bob.line("/whois bob");
    bob.wait_for("bob: a guest").await;
    assert!(
        !bob.output().contains("in #lobby with you"),
        "{}",
        bob.output()
    );
    let (ok_a, out_a) = ada.finish().await;
    let (ok_b, out_b) = bob.finish().await;
    assert!(ok_a && ok_b, "{out_a}\n{out_b}");
    server.shutdown().await;
}

/// A server admin from the terminal client: `/delete` by nick and words removes the message
/// (the room is told), `/resetpass` changes a password without showing it, `/unregister` frees the
/// nick; a user who is no admin is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_deletes_a_message_resets_a_password_and_unregisters_a_nick() {
    let server = start_server_with("127.0.0.1:0".parse().expect("addr"), &[], |c| {
        c.admins = vec!["root".into()];
    })
    .await;
    let server_url = url(server.local_addr());
    let bob = Client::start_with(&server_url, "bob", &[], Some("old-pw"));
    bob.line("/join lobby");
    bob.wait_for("you joined #lobby").await;
    bob.line("buy cheap pills");
    bob.line("hello all");
    bob.wait_for("<bob> hello all").await;
    bob.line("/unregister root");
    bob.wait_for("!! root not unregistered:").await;
    let root = Client::start_with(&server_url, "root", &[], Some("pw-root"));
    root.line("/join lobby");
    root.wait_for("<bob> hello all").await;
    root.line("/delete bob CHEAP");
    root.wait_for("-- root deleted message #1 of #lobby").await;
    bob.wait_for("-- root deleted message #1 of #lobby").await;
    root.line("/resetpass bob new-pw");
    root.wait_for("password of bob reset").await;
    let (ok, out) = bob.finish().await;
    assert!(ok, "{out}");
    let old = Client::start_with(&server_url, "bob", &[], Some("old-pw"));
    old.wait_for("wrong password for 'bob'").await;
    old.finish().await;
    let new = Client::start_with(&server_url, "bob", &[], Some("new-pw"));
    new.line("/whois bob");
    new.wait_for("bob: registered").await;
    new.finish().await;
    root.line("/unregister bob");
    root.wait_for("bob is no longer registered").await;
    let guest = Client::start_with(&server_url, "bob", &[], None);
    guest.line("/whois bob");
    guest.wait_for("bob: a guest").await;
    guest.finish().await;
    let (ok, out) = root.finish().await;
    assert!(ok, "{out}");
    assert!(out.contains("> /resetpass bob ***"), "{out}");
    assert!(!out.contains("new-pw"), "{out}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_nick_needs_its_password_and_gets_waiting_direct_messages_once() {
    let server = start_server(&[]).await;
    let server_url = url(server.local_addr());
    // bob registers his nick by connecting with a password.
    let bob = Client::start_with(&server_url, "bob", &[], Some("hunter2"));
    bob.line("/join #lobby");
    bob.wait_for("you joined #lobby").await;
    bob.finish().await;
    // Without the password the nick is refused, with the server's reason.
    let eve = Client::start_with(&server_url, "bob", &[], None);
    eve.wait_for("'bob' is registered: a password is required")
        .await;
    let (ok, _) = eve.finish().await;
    assert!(!ok, "a refused first namespace fails the script");
    let eve = Client::start_with(&server_url, "bob", &[], Some("guess"));
    eve.wait_for("wrong password for 'bob'").await;
    eve.finish().await;
    // A direct message to bob while he is away waits for him.
    let alice = Client::start(&server_url, "alice", &[]);
    alice.line("/msg bob see you at noon");
    alice
        .wait_for("bob is offline; it will wait for them")
        .await;
    // bob is back: the message is shown once, and acknowledged.
    let bob = Client::start_with(&server_url, "bob", &[], Some("hunter2"));
    bob.wait_for("<alice> see you at noon").await;
    bob.line("/wait 300");
    let (_, out) = bob.finish().await;
    assert_eq!(out.matches("see you at noon").count(), 1, "{out}");
    // Next time it is gone (removal follows the ack: allow a few tries, bounded).
    let mut seen_again = true;
    for _ in 0..20 {
        let bob = Client::start_with(&server_url, "bob", &[], Some("hunter2"));
        bob.line("/join #lobby");
        bob.wait_for("you joined #lobby").await;
        let (_, out) = bob.finish().await;
        seen_again = out.contains("see you at noon");
        if !seen_again {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !seen_again,
        "an acknowledged direct message is not delivered again"
    );
    alice.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_over_wss_when_the_ca_file_is_trusted() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    let config = chat_server::ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: Some(chat_server::config::TlsConfig {
            cert: cert.clone(),
            key,
        }),
        ..chat_server::ServerConfig::default()
    };
    let server = chat_server::start(config).await.expect("TLS server");
    let wss = format!("wss://localhost:{}", server.local_addr().port());
    let trusting = |nick: &str| {
        let mut c = chat_client::net::NetConfig::new(&wss, nick);
        c.ca_file = Some(cert.clone());
        c.backoff_base = Duration::from_millis(100);
        c
    };
    let alice = Client::start_config(trusting("alice"), &[]);
    let bob = Client::start_config(trusting("bob"), &[]);
    alice.line("/join #tls");
    alice.wait_for("you joined #tls").await;
    bob.line("/join #tls");
    alice.wait_for("bob joined #tls").await;
    alice.line("over wss");
    bob.wait_for("<alice> over wss").await;
    // Without the CA file the certificate is not trusted: no connection.
    let mut plain = chat_client::net::NetConfig::new(&wss, "eve");
    plain.backoff_base = Duration::from_millis(100);
    let eve = Client::start_config(plain, &[]);
    eve.wait_for("cannot connect").await;
    eve.line("/quit");
    let (_, out) = eve.finish().await;
    assert!(
        out.contains("certificate") || out.contains("Certificate"),
        "{out}"
    );
    alice.finish().await;
    bob.finish().await;
}

/// A character that must never reach the terminal raw from the headless output: C0 controls
/// but the newline (a tab too: it is shown as a space), DEL, C1 controls, bidirectional
/// embeddings, overrides and isolates, and the line and paragraph separators.
fn raw_control(c: char) -> bool {
    (c.is_control() && c != '\n')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
        || c == '\u{2028}'
        || c == '\u{2029}'
}

fn assert_no_raw_controls(out: &str) {
    for (n, line) in out.lines().enumerate() {
        let bad: Vec<char> = line.chars().filter(|&c| raw_control(c)).collect();
        assert!(
            bad.is_empty(),
            "line {n} has raw {bad:?}: {line:?}\n{out:?}"
        );
    }
}

/// Sends `request` on a bare network actor (no app, so no client-side text checks) and
/// waits for its answer.
async fn ask(
    net: &chat_client::net::NetHandle,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<chat_client::net::NetEvent>,
    request: chat_client::net::Request,
) -> Result<chat_client::net::Reply, chat_client::net::Failure> {
    use chat_client::net::{NetCommand, NetEvent};
    net.send(NetCommand::Request {
        nsp: "/".into(),
        request: request.clone(),
    });
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("an answer in time")
            .expect("the actor is running");
        if let NetEvent::Reply {
            request: r, result, ..
        } = ev
            && r == request
        {
            return result;
        }
    }
}

/// "Text cannot attack a terminal": another user sends an OSC title sequence, a CR
/// overwrite, a C1 CSI, a bidi override, and a newline followed by a line forged to look
/// like someone else's message (in a room message, a topic and a DM). The headless output
/// has no raw control character, shows them as escapes, and the forged line is only ever a
/// continuation row that a plain `/expect` for it does not match. (Should the server refuse
/// the control characters, the sends fail and only the newline cases are exercised here;
/// `forged_events_are_escaped_without_a_server` covers the rest without a server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_texts_are_escaped_and_cannot_forge_a_line() {
    use chat_client::net::{self, NetCommand, NetConfig, NetEvent, Request};
    let server = start_server(&[]).await;
    let server_url = url(server.local_addr());
    let alice = Client::start(&server_url, "alice", &[]);
    alice.line("/join r");
    alice.wait_for("you joined #r").await;

    let mut config = NetConfig::new(&server_url, "mallory");
    config.backoff_base = Duration::from_millis(100);
    let (mallory, mut rx, _task) = net::spawn(config);
    mallory.send(NetCommand::Connect {
        nsp: "/".into(),
        key: None,
    });
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("mallory connects in time")
            .expect("the actor is running");
        if matches!(ev, NetEvent::NsConnected { .. }) {
            break;
        }
    }
    ask(&mallory, &mut rx, Request::Join { room: "r".into() })
        .await
        .expect("mallory joins");
    alice.wait_for("mallory joined #r").await;

    let message = |text: &str| Request::Message {
        room: "r".into(),
        text: text.into(),
        action: false,
    };
    // (what mallory sends, how alice's output shows it)
    let attacks = [
        (
            message("\u{1b}]0;pwned\u{7}title"),
            "<mallory> \\u{1b}]0;pwned\\u{7}title",
        ),
        // The server turns a CR into a newline: a continuation row, not an overwrite.
        (
            message("secret\roverwritten"),
            "<mallory> secret\n  | overwritten\n",
        ),
        (message("\u{9b}2Jcsi"), "<mallory> \\u{9b}2Jcsi"),
        (message("abc\u{202e}fed"), "<mallory> abc\\u{202e}fed"),
        (
            message("hi\n[/ #r] <carol> forged yes"),
            "\n  | [/ #r] <carol> forged yes\n",
        ),
        (
            Request::Topic {
                room: "r".into(),
                topic: Some("calm\n[/ #r] <carol> forged topic".into()),
            },
            "\n  | [/ #r] <carol> forged topic\n",
        ),
        (
            Request::Dm {
                to: "alice".into(),
                text: "psst\n[/ @carol] <carol> forged dm".into(),
                action: false,
            },
            "<mallory> psst\n  | [/ @carol] <carol> forged dm\n",
        ),
    ];
    let mut delivered = Vec::new();
    for (request, shown) in attacks {
        if ask(&mallory, &mut rx, request).await.is_ok() {
            delivered.push(shown);
        }
    }
    ask(&mallory, &mut rx, message("end of attacks"))
        .await
        .expect("a plain message is sent");
    alice.wait_for("<mallory> end of attacks").await;
    // Newlines stay allowed in messages: that forgery at least arrived.
    assert!(
        delivered.contains(&"\n  | [/ #r] <carol> forged yes\n"),
        "{delivered:?}"
    );

    // A plain `/expect` for the forged line is not satisfied by the continuation row.
    alice.line("/expect [/ #r] <carol> forged yes");
    let (ok, out) = alice.finish().await;
    assert!(!ok, "the forged continuation satisfied /expect:\n{out}");
    assert!(
        out.contains("!! expectation not met within 5.0 s: [/ #r] <carol> forged yes"),
        "{out}"
    );
    assert_no_raw_controls(&out);
    for shown in delivered {
        assert!(out.contains(shown), "{shown:?} not in:\n{out}");
    }
    for line in out.lines() {
        assert!(!line.starts_with("[/ #r] <carol>"), "forged: {line:?}");
        assert!(!line.starts_with("[/ @carol]"), "forged: {line:?}");
    }
    mallory.send(NetCommand::Shutdown);
    server.shutdown().await;
}

/// The client's own defence, without a server (which may refuse such texts): forged events
/// straight into a script's app: a room message (as an event and in a join's history), a
/// DM, a notice, a topic, a presence with a hostile nick, a refusal and an error with
/// hostile messages. Nothing raw reaches the output, every newline starts a continuation
/// row, and only an `/expect` that starts with the marker's `| ` matches such a row.
#[tokio::test]
async fn forged_events_are_escaped_without_a_server() {
    use chat_client::app::App;
    use chat_client::net::{Failure, NetEvent, NetHandle, Reply, Request, ServerEvent};
    use chat_client::script::{self, ScriptSource};
    use chat_client::theme::Theme;
    use chat_protocol::events::{
        ChatMessage, DirectMessage, ErrorBody, ErrorCode, JoinReply, Notice, Presence,
        PresenceAction, TopicChange,
    };

    const FORGED: &str = "[/ #r] <carol> forged yes";
    let hostile = format!("\u{1b}]0;pwned\u{7}a\rb\u{9b}c\u{202e}d\u{2066}\u{7f}\u{0}\n{FORGED}");
    let message = |seq: u64| ChatMessage {
        id: format!("m{seq}"),
        room: "r".into(),
        seq,
        from: "mallory".into(),
        text: hostile.clone(),
        ts: 0,
        action: false,
    };
    let server = |event| NetEvent::Server {
        nsp: "/".into(),
        event,
    };
    let events = vec![
        NetEvent::Up,
        NetEvent::NsConnected {
            nsp: "/".into(),
            resumed: false,
        },
        NetEvent::Reply {
            nsp: "/".into(),
            request: Request::Join { room: "r".into() },
            result: Ok(Reply::Join(JoinReply {
                room: "r".into(),
                members: vec!["alice".into(), "mallory".into()],
                away: Vec::new(),
                operators: Vec::new(),
                topic: Some(hostile.clone()),
                history: vec![message(1)],
            })),
            automatic: false,
        },
        server(ServerEvent::Message(message(2))),
        server(ServerEvent::Dm(DirectMessage {
            id: "d1".into(),
            from: "mallory".into(),
            to: "alice".into(),
            text: hostile.clone(),
            ts: 0,
            action: false,
        })),
        server(ServerEvent::Notice(Notice {
            text: hostile.clone(),
        })),
        server(ServerEvent::Topic(TopicChange {
            room: "r".into(),
            topic: Some(hostile.clone()),
            by: "mallory".into(),
        })),
        server(ServerEvent::Presence(Presence {
            room: "r".into(),
            nick: format!("eve\u{1b}[1A\n{FORGED}"),
            action: PresenceAction::Join,
            previous: None,
            reason: None,
        })),
        NetEvent::NsRefused {
            nsp: "/x".into(),
            message: hostile.clone(),
            code: None,
        },
        NetEvent::Reply {
            nsp: "/".into(),
            request: Request::Rooms,
            result: Err(Failure::Server(ErrorBody {
                code: ErrorCode::Internal,
                message: hostile.clone(),
            })),
            automatic: false,
        },
    ];
    let run = |script: &str| {
        let script = script.to_owned();
        let events = events.clone();
        async move {
            let app = App::new("ws://127.0.0.1:1", "alice", &[], Theme::dark());
            let (net, _commands) = NetHandle::detached();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            for ev in events {
                tx.send(ev).expect("send event");
            }
            let mut out = Vec::new();
            let ok = script::run(
                app,
                net,
                rx,
                ScriptSource::from_text(&script),
                Duration::from_millis(300),
                &mut out,
            )
            .await
            .expect("script ran");
            drop(tx);
            (ok, String::from_utf8(out).expect("utf-8 output"))
        }
    };

    // A plain `/expect` for the forged line: not met, though it was shown many times.
    let (ok, out) = run(&format!("/expect {FORGED}")).await;
    assert!(!ok, "the forged continuation satisfied /expect:\n{out}");
    assert_no_raw_controls(&out);
    let escaped = "\\u{1b}]0;pwned\\u{7}a\\u{d}b\\u{9b}c\\u{202e}d\\u{2066}\\u{7f}\\u{0}\n  | [/ #r] <carol> forged yes\n";
    for shown in [
        format!("[/ #r] <mallory> {escaped}"),
        format!("[/ @mallory] <mallory> {escaped}"),
        format!("-- notice: {escaped}"),
        format!("-- topic: {escaped}"),
        format!("-- mallory set the topic of #r: {escaped}"),
        format!("[/ #r] -- eve\\u{{1b}}[1A\n  | {FORGED} joined #r\n"),
        format!("[/x] !! /x refused the connection: {escaped}"),
        format!("!! cannot list rooms: {escaped}"),
    ] {
        assert!(out.contains(&shown), "{shown:?} not in:\n{out}");
    }
    for line in out.lines() {
        assert!(!line.starts_with("[/ #r] <carol>"), "forged: {line:?}");
    }
    // Both room messages (history and event) were shown, each with its continuation.
    assert_eq!(out.matches("[/ #r] <mallory> ").count(), 2, "{out}");
    assert_eq!(out.matches(&format!("\n  | {FORGED}")).count(), 9, "{out}");

    // An `/expect` that starts with the marker's `| ` looks at continuation rows (at the
    // text after the marker).
    let script = format!("/expect | {FORGED}\n/expect | {FORGED}\n/expect | hmm {FORGED}\n");
    let (ok, out) = run(&script).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "!! expectation not met within 0.3 s: | hmm {FORGED}"
        )),
        "{out}"
    );
    let (ok, out) = run(&format!(
        "/expect | {FORGED}\n/expect <mallory> \\u{{1b}}]0;"
    ))
    .await;
    assert!(ok, "{out}");
}

/// `/query` opens an empty conversation (and sends a text when given one); the window
/// follows its peer's nick change, so sending from it reaches the renamed peer; a message
/// that cannot be sent keeps its text; `/clear` and `/close` act on any window, a second
/// namespace's included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_follow_nick_changes_and_windows_close() {
    let server = start_server(&[]).await;
    let server_url = url(server.local_addr());
    let alice = Client::start(&server_url, "alice", &[]);
    let bob = Client::start(&server_url, "bob", &[]);
    alice.line("/join #general");
    alice.wait_for("[/ #general] -- you joined #general").await;
    bob.line("/join #general");
    alice.wait_for("bob joined #general").await;
    alice.line("/query bob");
    alice.line("hello from the query window");
    bob.wait_for("[/ @alice] <alice> hello from the query window")
        .await;
    bob.line("/nick robert");
    alice
        .wait_for("[/ @robert] -- bob is now known as robert")
        .await;
    // Still the active window, now with robert.
    alice.line("are you robert now?");
    bob.wait_for("[/ @alice] <alice> are you robert now?").await;
    alice.line("/query carol where are you");
    alice
        .wait_for("[/ @carol] !! message to carol not sent")
        .await;
    alice.wait_for("(it is back in the input line)").await;
    alice.line("/clear");
    alice.line("/close");
    alice.line("/ns /side");
    alice
        .wait_for("[/side] -- connected to /side as alice")
        .await;
    alice.line("/close");
    alice.wait_for("[/] -- you closed /side").await;
    alice.line("/close");
    alice
        .wait_for("!! the last namespace stays open: /quit to leave the chat")
        .await;
    alice.line("/query robert");
    alice.line("/msg robert the end");
    bob.wait_for("[/ @alice] <alice> the end").await;
    let (ok_a, out_a) = alice.finish().await;
    let (ok_b, _) = bob.finish().await;
    assert!(ok_a && ok_b, "{out_a}");
    let renamed = out_a.find("is now known as robert").unwrap_or(0);
    assert!(
        !out_a[renamed..].contains("[/ @bob]"),
        "a stale @bob window: {out_a}"
    );
    server.shutdown().await;
}

/// With the default reconnect delays (capped at 3 s, jittered), a server that comes back
/// after several seconds is rejoined within about 3 s of its return, and the lost
/// connection is one line however many attempts fail meanwhile (the status line counts
/// them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_rejoined_within_about_three_seconds_with_one_line() {
    let server = start_server(&[]).await;
    let addr = server.local_addr();
    let alice = Client::start_exactly(chat_client::net::NetConfig::new(&url(addr), "alice"), &[]);
    alice.line("/join lobby");
    alice.wait_for("you joined #lobby").await;
    server.shutdown().await;
    alice.wait_for("disconnected from the server").await;
    // Down long enough for the delays to reach their cap.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let server = start_server_at(addr, &[]).await;
    let back = std::time::Instant::now();
    alice.wait_for("reconnected to / as alice").await;
    let took = back.elapsed();
    assert!(
        took < Duration::from_millis(3600),
        "rejoined after {took:?}"
    );
    let (ok, out) = alice.finish().await;
    assert!(ok, "{out}");
    assert_eq!(
        out.matches("disconnected from the server").count(),
        1,
        "{out}"
    );
    assert!(!out.contains("no connection"), "{out}");
    assert!(!out.contains("os error"), "{out}");
    server.shutdown().await;
}

/// `/away` tells the rooms and marks the nick list, `/whois` answers in one line, `/back`
/// (or `/away` alone) is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_and_whois_in_the_client() {
    let server = start_server(&[]).await;
    let server_url = url(server.local_addr());
    let alice = Client::start(&server_url, "alice", &[]);
    let bob = Client::start(&server_url, "bob", &[]);
    alice.line("/join #general");
    alice.wait_for("[/ #general] -- you joined #general").await;
    bob.line("/join #general");
    alice.wait_for("bob joined #general").await;
    alice.line("/away lunch");
    alice.wait_for("-- you are away: lunch").await;
    bob.wait_for("[/ #general] -- alice is away: lunch").await;
    bob.line("/whois alice");
    bob.wait_for("-- alice: a guest; idle ").await;
    bob.wait_for("; in #general with you; away: lunch").await;
    alice.line("/back");
    alice.wait_for("-- you are back").await;
    bob.wait_for("[/ #general] -- alice is back").await;
    bob.line("/whois nobody");
    bob.wait_for("!! no whois for nobody: nobody is called 'nobody'")
        .await;
    let (ok_a, out_a) = alice.finish().await;
    let (ok_b, out_b) = bob.finish().await;
    assert!(ok_a && ok_b, "{out_a}\n{out_b}");
    server.shutdown().await;
}
