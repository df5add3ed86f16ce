//! `chat-server admin <verb>`: the admin API's client. One HTTP/1.1 request over a plain TCP
//! connection (the admin listener is plain HTTP on a private address), its JSON answer
//! printed on stdout. The token comes from `CHAT_ADMIN_TOKEN` or `--token-file`, never from
//! a flag (which `ps` shows).
//!
//! | verb | request |
//! |---|---|
//! | `users` | `GET /api/users` |
//! | `namespaces` | `GET /api/namespaces` |
//! | `rooms [--namespace NS]` | `GET /api/rooms` |
//! | `kick NICK [--room R] [--namespace NS] [--reason TEXT]` | `POST /api/kick` |
//! | `ban NICK` | `POST /api/ban` |
//! | `notice TEXT [--room R] [--namespace NS]` | `POST /api/notice` |

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Arg, ArgMatches, Command};
use serde_json::{Value, json};

/// The admin listener's address when `--url` is not given (the example config's).
pub const DEFAULT_URL: &str = "http://127.0.0.1:7879";
/// The most of an answer read (a user list of a big server fits).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// The `admin` subcommand and its verbs.
pub fn command() -> Command {
    let namespace = || {
        Arg::new("namespace")
            .long("namespace")
            .value_name("NS")
            .help("The namespace (e.g. /ops).")
    };
    let room = || Arg::new("room").long("room").value_name("ROOM");
    Command::new("admin")
        .about(
            "Call the admin API of a running server (token from CHAT_ADMIN_TOKEN or --token-file).",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("url")
                .long("url")
                .env("CHAT_ADMIN_URL")
                .value_name("URL")
                .default_value(DEFAULT_URL)
                .global(true)
                .help("The admin listener (http://HOST:PORT, its admin_listen)."),
        )
        .arg(
            Arg::new("token_file")
                .long("token-file")
                .env("CHAT_ADMIN_TOKEN_FILE")
                .value_name("PATH")
                .global(true)
                .help("A file holding the admin token (else CHAT_ADMIN_TOKEN)."),
        )
        .subcommand(Command::new("users").about("List connected users and their connections."))
        .subcommand(
            Command::new("namespaces").about("List namespaces with their sockets and rooms."),
        )
        .subcommand(
            Command::new("rooms")
                .about("List chat rooms and their members' count.")
                .arg(namespace()),
        )
        .subcommand(
            Command::new("kick")
                .about("Take a user out of a room (--room), or disconnect them.")
                .arg(Arg::new("nick").required(true).help("The user's nick."))
                .arg(room().help("Only out of this room (announced to it)."))
                .arg(namespace())
                .arg(
                    Arg::new("reason")
                        .long("reason")
                        .value_name("TEXT")
                        .help("Shown to the room with a room kick."),
                ),
        )
        .subcommand(
            Command::new("ban")
                .about("Ban a nick (and its look-alikes) or an address from a room.")
                .arg(
                    Arg::new("target")
                        .required(true)
                        .help("A nick, or an IP address."),
                )
                .arg(room().required(true).help("The room."))
                .arg(namespace())
                .arg(
                    Arg::new("duration_secs")
                        .long("duration-secs")
                        .value_name("SECONDS")
                        .value_parser(clap::value_parser!(u64))
                        .help("For this long only (else until lifted)."),
                )
                .arg(
                    Arg::new("reason")
                        .long("reason")
                        .value_name("TEXT")
                        .help("Shown to the room."),
                ),
        )
        .subcommand(
            Command::new("notice")
                .about("Send a server notice to a room, a namespace, or everyone.")
                .arg(Arg::new("text").required(true).help("The notice."))
                .arg(room().help("Only to this room (of --namespace, default /)."))
                .arg(namespace()),
        )
}

/// Runs the verb in `matches` (the `admin` subcommand's); the answer's JSON, pretty.
pub fn run(matches: &ArgMatches) -> anyhow::Result<String> {
    let url = matches
        .get_one::<String>("url")
        .map_or(DEFAULT_URL, String::as_str);
    let token = token(matches.get_one::<String>("token_file").map(String::as_str))?;
    let (verb, sub) = matches
        .subcommand()
        .ok_or_else(|| anyhow!("no verb (see chat-server admin --help)"))?;
    let get = |k: &str| sub.get_one::<String>(k).cloned();
    let (method, path, body) = match verb {
        "users" => ("GET", "/api/users".to_owned(), None),
        "namespaces" => ("GET", "/api/namespaces".to_owned(), None),
        "rooms" => match get("namespace") {
            Some(ns) => ("GET", format!("/api/rooms?namespace={ns}"), None),
            None => ("GET", "/api/rooms".to_owned(), None),
        },
        "kick" => (
            "POST",
            "/api/kick".to_owned(),
            Some(json!({"nick": get("nick"), "room": get("room"),
                        "namespace": get("namespace"), "reason": get("reason")})),
        ),
        "ban" => (
            "POST",
            "/api/ban".to_owned(),
            Some(json!({"target": get("target"), "room": get("room"),
                        "namespace": get("namespace"), "reason": get("reason"),
                        "duration_secs": sub.get_one::<u64>("duration_secs")})),
        ),
        "notice" => (
            "POST",
            "/api/notice".to_owned(),
            Some(json!({"text": get("text"), "room": get("room"), "namespace": get("namespace")})),
        ),
        other => bail!("unknown verb {other}"),
    };
    let body = body.map(without_nulls);
    let (status, text) = request(url, &token, method, &path, body.as_ref())?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if !(200..300).contains(&status) {
        let message = value["message"].as_str().unwrap_or(text.trim());
        bail!("HTTP {status}: {message}");
    }
    Ok(serde_json::to_string_pretty(&value)?)
}

/// An object without its `null` members (options not given).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        v => v,
    }
}

/// The token: from the file if given, else `CHAT_ADMIN_TOKEN`.
fn token(file: Option<&str>) -> anyhow::Result<String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {path}"))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        None => std::env::var("CHAT_ADMIN_TOKEN").unwrap_or_default(),
    };
    if token.is_empty() {
        bail!("no admin token: set CHAT_ADMIN_TOKEN or pass --token-file");
    }
    Ok(token)
}

/// `host:port` of an `http://host:port[/]` URL.
fn authority(url: &str) -> anyhow::Result<&str> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        anyhow!("--url must be http://HOST:PORT (the admin listener is plain HTTP)")
    })?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() {
        bail!("--url {url} has no host");
    }
    Ok(authority)
}

/// One request; the status and the body.
fn request(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, String)> {
    let authority = authority(url)?;
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve {authority}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("cannot connect to the admin listener at {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .context("no answer from the admin listener")?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("not an HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer"))?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_is_the_host_and_port_of_an_http_url() {
        assert_eq!(
            authority("http://127.0.0.1:7879").ok(),
            Some("127.0.0.1:7879")
        );
        assert_eq!(authority("http://[::1]:7879/").ok(), Some("[::1]:7879"));
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://").is_err());
    }
}
