//! The files in `packaging/`, checked against the server so they cannot drift from it: the
//! example config holds every key the server accepts and no other, each at its default; the
//! systemd unit's `ExecStart` is a command line the binary accepts, writing where the unit
//! lets it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use chat_server::cli::{self, Action};
use chat_server::config::settings::SETTINGS;
use chat_server::config::{FileConfig, ServerConfig, Settings, StoreConfig};

fn packaging(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(packaging(file)).unwrap()
}

/// The command line with no flags (the environment still counts, the same for both sides).
fn no_flags() -> clap::ArgMatches {
    cli::command()
        .try_get_matches_from(["chat-server"])
        .unwrap()
}

/// The example with its commented-out keys (`#key = value`, `#[[namespace]]`) put back;
/// comments (`# ...`) stay.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The setting keys of a config file (`a.b` for key `b` of table `[a]`), namespaces aside.
fn keys(text: &str) -> BTreeSet<String> {
    let table: toml::Table = toml::from_str(text).unwrap();
    let mut keys = BTreeSet::new();
    for (key, value) in table {
        match value {
            _ if key == "namespace" => {}
            toml::Value::Table(inner) => keys.extend(inner.keys().map(|k| format!("{key}.{k}"))),
            _ => {
                keys.insert(key);
            }
        }
    }
    keys
}

#[test]
fn the_example_config_has_every_key_and_no_other() {
    let text = uncommented(&read("config.example.toml"));
    let expected: BTreeSet<String> = SETTINGS.iter().map(|s| s.key.to_owned()).collect();
    let found = keys(&text);
    let missing: Vec<_> = expected.difference(&found).collect();
    let unknown: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "packaging/config.example.toml: missing {missing:?}, unknown (or an old name) {unknown:?}"
    );
    // Every key, the commented ones too, is one the server reads (and the namespace valid).
    let file = FileConfig::parse(&text).unwrap();
    assert_eq!(file.namespaces.len(), 1);
    // Each key (or group of keys: tls_cert and tls_key) has a comment above it.
    let original = read("config.example.toml");
    let lines: Vec<&str> = original.lines().collect();
    for (i, line) in lines.iter().enumerate().skip(1) {
        let is_key = line.contains(" = ") && !line.starts_with("# ");
        assert!(
            !is_key || !lines[i - 1].trim().is_empty(),
            "no comment above {line:?}"
        );
    }
}

#[test]
fn the_example_config_as_it_is_resolves_to_the_defaults() {
    let path = packaging("config.example.toml");
    let file = FileConfig::load(&path).unwrap();
    assert!(file.namespaces.is_empty(), "the namespace is an example");
    let example = ServerConfig::resolve(Settings::new(&no_flags(), file)).unwrap();
    let defaults =
        ServerConfig::resolve(Settings::new(&no_flags(), FileConfig::default())).unwrap();
    // Every value written in it is the default (ServerConfig has no PartialEq: its parts'
    // Debug is compared).
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    // The secrets are commented out.
    let text = read("config.example.toml");
    for s in SETTINGS.iter().filter(|s| s.secret) {
        assert!(
            !text.lines().any(|l| l.starts_with(s.key)),
            "{} is set in the example",
            s.key
        );
    }
}

/// A directive's values in the unit (`Key=value` lines, comments aside).
fn directives<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_starts_a_command_line_the_server_accepts() {
    let unit = read("chat-server.service");
    let exec = directives(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "{exec:?}");
    assert!(!exec[0].contains(['"', '\'', '%', '$']), "plain words only");
    let mut argv: Vec<&str> = exec[0].split_whitespace().collect();
    assert_eq!(argv[0], "/usr/local/bin/chat-server");
    argv[0] = "chat-server";
    let matches = cli::command().try_get_matches_from(&argv).unwrap();
    let Action::Serve(matches) = Action::from(matches) else {
        panic!("{argv:?} is not the server");
    };
    assert_eq!(
        matches.get_one::<String>("config").map(String::as_str),
        Some("/etc/chat-server/config.toml")
    );
    // The database is in the unit's state directory, the one place it may write.
    let config = ServerConfig::resolve(Settings::new(&matches, FileConfig::default())).unwrap();
    let state = directives(&unit, "StateDirectory");
    assert_eq!(state, ["chat-server"]);
    let StoreConfig::Sqlite(db) = config.store else {
        panic!("{:?}", config.store)
    };
    assert_eq!(
        db.parent(),
        Some(PathBuf::from("/var/lib").join(state[0]).as_path())
    );

    assert_eq!(directives(&unit, "Restart"), ["on-failure"]);
    assert_eq!(directives(&unit, "KillSignal"), ["SIGTERM"]);
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
    ] {
        assert!(
            directives(&unit, key).contains(&value),
            "no {key}={value} in the unit"
        );
    }
}
