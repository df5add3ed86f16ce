//! The `chat-server` binary's start failures: one line on stderr naming what failed and why
//! (and, for a taken port, what to do), exit code 1, and no backtrace even with
//! `RUST_BACKTRACE` set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::Command;

/// Runs `chat-server` with `args` and returns its exit code and stderr.
fn start(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(args)
        .env("RUST_BACKTRACE", "full")
        .env("RUST_LOG", "warn")
        .env_remove("CHAT_LISTEN")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    assert!(lines[0].starts_with("chat-server: "), "{stderr}");
    lines[0]
}

#[test]
fn a_taken_port_is_one_line_that_says_what_to_do() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = start(&["--store", "memory", "--listen", &addr]);
    assert_eq!(code, Some(1));
    assert_eq!(
        one_line(&stderr),
        format!(
            "chat-server: cannot start: cannot listen on {addr} (in use): choose another with --listen"
        )
    );
}

#[test]
fn a_missing_config_file_and_a_toml_typo_are_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let (code, stderr) = start(&["--config", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let line = one_line(&stderr);
    assert!(
        line.contains("cannot read config file") && line.contains("missing.toml"),
        "{line}"
    );

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "listen = \"127.0.0.1:0\"\nmax_payload = [\n").unwrap();
    let (code, stderr) = start(&["--config", typo.to_str().unwrap(), "--store", "memory"]);
    assert_eq!(code, Some(1));
    assert!(one_line(&stderr).contains("typo.toml"), "{stderr}");
}

/// Runs `chat-server` with `args` and returns its exit code, stdout and stderr.
fn output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = output(&["completions", shell]);
        assert_eq!(code, Some(0), "{shell}: {stderr}");
        assert!(stdout.contains("chat-server"), "{shell}: {stdout}");
        for flag in ["listen", "sqlite-path", "log-format"] {
            assert!(stdout.contains(flag), "{shell}: no {flag}:\n{stdout}");
        }
        // Hidden flags are not offered: the secret's (nobody should type a secret where
        // `ps` shows it) and the old names (which only the help lines mention).
        let offered = stdout.replace("token-secret-file", "");
        assert!(!offered.contains("token-secret"), "{shell}:\n{stdout}");
    }
}

#[test]
fn the_man_page_is_roff_with_every_flag() {
    let (code, stdout, stderr) = output(&["manpage"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(".TH chat-server 1"), "{stdout}");
    // roff escapes each `-` of a flag.
    for flag in [r"\-\-listen", r"\-\-log\-format", r"\-\-sqlite\-path"] {
        assert!(stdout.contains(flag), "no {flag}:\n{stdout}");
    }
    assert!(stdout.contains("completions"), "the subcommands are listed");
}

#[test]
fn a_subcommand_takes_no_server_flag() {
    let (code, stdout, stderr) = output(&["--store", "memory", "manpage"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

/// `--log-format json`: every line on stderr is one JSON object with a level and a message,
/// from the first ("listening on") to the last ("stopped").
#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--log-format", "json", "--store", "memory"])
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut messages = Vec::new();
    let mut stopped = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let level = object["level"].as_str().unwrap_or_default();
        assert!(["ERROR", "WARN", "INFO"].contains(&level), "{line}");
        assert!(object["timestamp"].is_string(), "{line}");
        let message = object["fields"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no fields.message: {line}"))
            .to_owned();
        if message.starts_with("listening on ") {
            // Up: stop it (SIGTERM, as systemd does) and read the lines to the end.
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        stopped |= message == "stopped";
        messages.push(message);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {messages:?}");
    assert!(stopped, "{messages:?}");
    assert!(
        messages[0].starts_with("listening on 127.0.0.1:"),
        "{messages:?}"
    );
}

/// `chat-server manpage | head`: the reader goes away early, and that is no error.
#[test]
fn a_reader_that_stops_early_is_no_error() {
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("manpage")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before a byte is read: the write meets a broken pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
