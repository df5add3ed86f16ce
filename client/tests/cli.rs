//! The `chat` binary's subcommands: `chat completions <shell>` and `chat manpage` print what
//! clap makes from the client's own flags, and take none of the flags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// Runs `chat` with `args` and returns its exit code, stdout and stderr.
fn output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat"))
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
        assert!(stdout.contains("chat"), "{shell}: {stdout}");
        for flag in ["nick", "server", "script"] {
            assert!(stdout.contains(flag), "{shell}: no {flag}:\n{stdout}");
        }
    }
}

#[test]
fn the_man_page_is_roff_with_the_flags() {
    let (code, stdout, stderr) = output(&["manpage"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(".TH chat 1"), "{stdout}");
    // roff escapes each `-` of a flag.
    for flag in [r"\-\-nick", r"\-\-server", r"\-\-expect\-timeout"] {
        assert!(stdout.contains(flag), "no {flag}:\n{stdout}");
    }
}

#[test]
fn a_subcommand_takes_no_flag() {
    let (code, stdout, stderr) = output(&["--nick", "alice", "manpage"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
