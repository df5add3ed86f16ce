//! The real `chat-server` binary when its log output goes nowhere: stderr is a pipe whose
//! reader has gone (a `| tee` killed with the server's terminal, a log collector restarting).
//! Logging into it must neither take a user's connection down nor turn the graceful shutdown
//! into an abrupt exit. And when it cannot start: the reason, naming what failed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame (answering nothing; the test is over well before the first ping).
async fn next_text(ws: &mut Ws) -> String {
    loop {
        match timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.as_str().to_owned(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_broken_log_pipe_drops_neither_users_nor_the_graceful_shutdown() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--listen", "127.0.0.1:0", "--store", "memory"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat-server");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    for _ in 0..50 {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(a) = line.split("listening on ").nth(1) {
            addr = Some(a.trim().parse::<SocketAddr>().expect("address"));
            break;
        }
    }
    let addr = addr.expect("server said where it listens");
    // Nobody reads the server's log from here on: its next line meets a broken pipe.
    drop(stderr);

    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    assert!(next_text(&mut ws).await.starts_with('0'), "open packet");
    // The CONNECT is logged ("user connected"), into the broken pipe.
    ws.send(Message::text(r#"40{"nick":"piper"}"#))
        .await
        .unwrap();
    assert!(
        next_text(&mut ws).await.starts_with("40{"),
        "CONNECT answered"
    );
    // The connection still works after that log line.
    ws.send(Message::text(r#"421["ping",{}]"#)).await.unwrap();
    loop {
        let text = next_text(&mut ws).await;
        if text.starts_with("431[") {
            assert!(text.contains(r#""ok":true"#), "{text}");
            break;
        }
    }

    // SIGINT: "shutting down" goes into the broken pipe too; the client still gets 1001.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let close = loop {
        match timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
}

/// A data file that is not a database, a data path that is a directory, an address in use:
/// exit code 1 and the reason, naming the file or the address; no panic.
#[test]
fn what_keeps_the_server_from_starting_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("chat.db");
    std::fs::write(&garbage, "not a database, not at all").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let cases: [(&[&str], &[String]); 3] = [
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--data",
                garbage.to_str().unwrap(),
            ],
            &[garbage.display().to_string(), "not a database".into()],
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--data",
                dir.path().to_str().unwrap(),
            ],
            &[dir.path().display().to_string()],
        ),
        (
            &["--store", "memory", "--listen", &taken_addr],
            &[format!("cannot listen on {taken_addr}")],
        ),
    ];
    for (args, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run chat-server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for e in expected {
            assert!(
                stderr.contains(e.as_str()),
                "{args:?}: {e:?} not in {stderr}"
            );
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    drop(taken);
}
