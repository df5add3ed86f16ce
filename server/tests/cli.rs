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
