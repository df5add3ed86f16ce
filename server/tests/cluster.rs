//! Cluster mode with real processes: a `redis-server` (or a three-master Redis Cluster) that
//! the harness starts on a free port, and `chat-server` processes (the built binary) on free
//! ports, all on loopback. Skipped, saying so, where redis-server is not installed.
//!
//! - clients on two nodes chat, in two namespaces, with presence crossing nodes;
//! - a node SIGKILLed while its clients chat: they reconnect to another node with `since`
//!   and catch up with no gap and no duplicate;
//! - Redis restarted mid-chat: no acknowledged message lost, a message sent while it is down
//!   answered `unavailable` (retryable) and stored once when re-sent with its `cid`, live
//!   delivery across nodes resumes (the nodes subscribe again);
//! - Redis unreachable at start, and `--data` beside `--redis`: one clear line, exit 1;
//! - the same chat on a three-master Redis Cluster (sharded pub/sub, hash-tagged keys);
//! - `whois`, `who` (away) and `rooms` (counts) of users on another node; an operator's kick
//!   of a member on another node; the admin API's users (with their node), room counts and
//!   kicks across nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_protocol::events::{ChatMessage, ErrorCode, MessageReply};
use common::Client;
use common::chat::{decode, join, ok, say};
use common::redis::{RedisCluster, RedisServer, free_port, installed};
use serde_json::{Value, json};

/// A `chat-server` process in cluster mode, killed (SIGKILL) on drop.
struct Node {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(redis_url: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--redis", redis_url])
            .args(["--rate-per-sec", "0", "--web", "false"])
            .env("RUST_LOG", "info,chat_server::chat::redis=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("chat-server starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "node did not listen within 15 s: {}",
                std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Node {
            child,
            addr,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self._dir.path().join("node.log")).unwrap_or_default();
            eprintln!("---- log of the node on {} ----\n{log}", self.addr);
        }
    }
}

/// A connection to `nsp` on `addr` as `nick` (with `since`, if given), past its CONNECT.
async fn connect(addr: SocketAddr, nsp: &str, nick: &str, since: Option<Value>) -> Client {
    let mut c = Client::connect(addr).await;
    let mut auth = json!({ "nick": nick });
    if let Some(since) = since {
        auth["since"] = since;
    }
    c.join_namespace(nsp, Some(auth)).await;
    c
}

/// [`connect`], retried (10 s at most) while the nick is refused as in use: the nick of a
/// client whose node died is held until that node's heartbeat expires (as the terminal
/// client does, retrying on `nick_taken` during a reconnect).
async fn connect_when_free(addr: SocketAddr, nick: &str, since: Value) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect(addr).await;
        let auth = json!({ "nick": nick, "since": since });
        let p = c.connect_namespace("/", Some(auth)).await;
        if p.kind == chat_protocol::socket_io::PacketKind::Connect {
            return c;
        }
        assert_eq!(common::chat::refused(&p).1, Some(ErrorCode::NickTaken));
        assert!(Instant::now() < deadline, "{nick} still refused after 10 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `message` events of `room` in `nsp` that arrive until one with seq `until`.
async fn messages_until(c: &mut Client, nsp: &str, room: &str, until: u64) -> Vec<ChatMessage> {
    let mut got = Vec::new();
    for _ in 0..5000 {
        let (ns, name, args) = c.recv_event().await;
        if ns == nsp && name == "message" {
            let m: ChatMessage = decode(&args[0]);
            if m.room == room {
                let seq = m.seq;
                got.push(m);
                if seq >= until {
                    return got;
                }
            }
        }
    }
    panic!("no message {until} in {room}");
}

fn seqs(ms: &[ChatMessage]) -> Vec<u64> {
    ms.iter().map(|m| m.seq).collect()
}

/// Sends a message to `room` of `/`; the messages of that room that arrive before its ack
/// go to `seen`. Returns nothing for the sender (it gets no copy of its own).
async fn say_seen(
    c: &mut Client,
    room: &str,
    text: &str,
    seen: &mut Vec<ChatMessage>,
) -> Vec<ChatMessage> {
    let (reply, events) =
        common::chat::call(c, "/", "message", json!({ "room": room, "text": text })).await;
    ok::<MessageReply>(&reply);
    seen.extend(
        events
            .iter()
            .filter(|(name, _)| name == "message")
            .map(|(_, m)| decode::<ChatMessage>(m))
            .filter(|m| m.room == room),
    );
    Vec::new()
}

/// Sends a message with a cid; returns the whole reply (ok or error).
async fn send(c: &mut Client, nsp: &str, room: &str, text: &str, cid: &str) -> Value {
    c.request(
        nsp,
        "message",
        json!({ "room": room, "text": text, "cid": cid }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_nodes_chat_in_two_namespaces() {
    if !installed() {
        return;
    }
    let redis = RedisServer::start();
    let (a, _b, c) = (
        Node::start(&redis.url()),
        Node::start(&redis.url()),
        Node::start(&redis.url()),
    );
    let mut ann = connect(a.addr, "/", "ann", None).await;
    ann.join_namespace("/two", Some(json!({ "nick": "ann" })))
        .await;
    let mut bob = connect(c.addr, "/", "bob", None).await;
    bob.join_namespace("/two", Some(json!({ "nick": "bob" })))
        .await;
    join(&mut ann, "/", "r").await;
    join(&mut ann, "/two", "r").await;
    join(&mut bob, "/", "r").await;
    // Bob's join (on C) reaches Ann (on A) through the adapter.
    let presence = ann.wait_event("presence").await;
    assert_eq!(
        (presence["nick"].as_str(), presence["action"].as_str()),
        (Some("bob"), Some("join"))
    );
    join(&mut bob, "/two", "r").await;

    // `who` lists the room's members on every node (the other node's once noted in Redis).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let who = ann.request("/", "who", json!({ "room": "r" })).await;
        if who["members"] == json!(["ann", "bob"]) {
            break;
        }
        assert!(Instant::now() < deadline, "who on A: {who}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let who = bob.request("/two", "who", json!({ "room": "r" })).await;
    assert_eq!(who["members"], json!(["ann", "bob"]));
    let hi = say(&mut ann, "/", "r", "hi from A").await;
    assert_eq!(hi.seq, 1);
    let got = messages_until(&mut bob, "/", "r", 1).await;
    assert_eq!(got[0].text, "hi from A");
    // The other namespace's room "r" is another room: its own seqs, its own members.
    let there = say(&mut bob, "/two", "r", "hi from C").await;
    assert_eq!(there.seq, 1);
    let got = messages_until(&mut ann, "/two", "r", 1).await;
    assert_eq!(got[0].text, "hi from C");
    // Many messages both ways, interleaved: each side sees the other's, in seq order, once
    // (those that arrive while waiting for an ack included).
    let (mut at_ann, mut at_bob) = (Vec::new(), Vec::new());
    for i in 0..20 {
        at_bob.extend(say_seen(&mut ann, "r", &format!("a{i}"), &mut at_ann).await);
        at_ann.extend(say_seen(&mut bob, "r", &format!("b{i}"), &mut at_bob).await);
    }
    if at_bob.last().is_none_or(|m| m.seq < 40) {
        at_bob.extend(messages_until(&mut bob, "/", "r", 40).await);
    }
    let texts: Vec<_> = at_bob.iter().map(|m| m.text.clone()).collect();
    assert_eq!(texts, (0..20).map(|i| format!("a{i}")).collect::<Vec<_>>());
    assert_eq!(
        seqs(&at_bob),
        (0..20).map(|i| 2 + 2 * i).collect::<Vec<_>>()
    );
    if at_ann.last().is_none_or(|m| m.seq < 41) {
        at_ann.extend(messages_until(&mut ann, "/", "r", 41).await);
    }
    assert_eq!(
        seqs(&at_ann),
        (0..20).map(|i| 3 + 2 * i).collect::<Vec<_>>()
    );
    // The history is the same from either node.
    let from_a = ann
        .request("/", "history", json!({ "room": "r", "limit": 100 }))
        .await;
    let from_c = bob
        .request("/", "history", json!({ "room": "r", "limit": 100 }))
        .await;
    assert_eq!(from_a["messages"], from_c["messages"]);
    assert_eq!(from_a["messages"].as_array().map(Vec::len), Some(41));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_catch_up_on_another_with_no_gap_and_no_duplicate() {
    if !installed() {
        return;
    }
    let redis = RedisServer::start();
    let (a, mut b, c) = (
        Node::start(&redis.url()),
        Node::start(&redis.url()),
        Node::start(&redis.url()),
    );
    let mut ann = connect(a.addr, "/", "ann", None).await;
    let mut bob = connect(b.addr, "/", "bob", None).await;
    let mut cat = connect(c.addr, "/", "cat", None).await;
    for u in [&mut ann, &mut bob, &mut cat] {
        join(u, "/", "r").await;
    }
    // Bob (on B) chats and sees Ann's messages live.
    for i in 0..5 {
        say(&mut bob, "/", "r", &format!("bob {i}")).await;
        say(&mut ann, "/", "r", &format!("ann {i}")).await;
    }
    let seen = messages_until(&mut bob, "/", "r", 10).await;
    let last_seen = seen.last().unwrap().seq;
    assert_eq!(last_seen, 10);
    b.kill();
    // While Bob is away, Ann and Cat go on.
    for i in 0..10 {
        say(&mut ann, "/", "r", &format!("more {i}")).await;
        say(&mut cat, "/", "r", &format!("cat {i}")).await;
    }
    // Bob reconnects to C with what he has, and gets the rest once, in order.
    let mut bob = connect_when_free(c.addr, "bob", json!({ "r": last_seen })).await;
    let caught = messages_until(&mut bob, "/", "r", 30).await;
    assert_eq!(seqs(&caught), (11..=30).collect::<Vec<_>>());
    // And live delivery goes on from there, from either node.
    say(&mut ann, "/", "r", "after").await;
    let live = messages_until(&mut bob, "/", "r", 31).await;
    assert_eq!(seqs(&live), [31]);
    drop(cat);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_loses_no_acknowledged_message_and_delivery_resumes() {
    if !installed() {
        return;
    }
    let mut redis = RedisServer::start();
    let (a, c) = (Node::start(&redis.url()), Node::start(&redis.url()));
    let mut ann = connect(a.addr, "/", "ann", None).await;
    let mut bob = connect(c.addr, "/", "bob", None).await;
    join(&mut ann, "/", "r").await;
    join(&mut bob, "/", "r").await;
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(say(&mut ann, "/", "r", &format!("before {i}")).await);
    }
    messages_until(&mut bob, "/", "r", 10).await;

    redis.kill();
    // While Redis is down: a retryable refusal, with its documented code.
    let reply = send(&mut ann, "/", "r", "while down", "down-1").await;
    assert_eq!(
        common::chat::code(&reply),
        ErrorCode::Unavailable,
        "while down: {reply}"
    );
    // A CONNECT that needs Redis (the nick's claim) is refused, retryably, with the same code.
    let mut late = Client::connect(a.addr).await;
    let p = late
        .connect_namespace("/", Some(json!({ "nick": "late" })))
        .await;
    assert_eq!(common::chat::refused(&p).1, Some(ErrorCode::Unavailable));
    redis.restart();
    // The client re-sends with its cid until it is stored (bounded: 20 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let reply = send(&mut ann, "/", "r", "while down", "down-1").await;
        if reply["ok"] == json!(true) {
            break ok::<MessageReply>(&reply).message.into_owned();
        }
        assert_eq!(
            common::chat::code(&reply),
            ErrorCode::Unavailable,
            "{reply}"
        );
        assert!(
            Instant::now() < deadline,
            "not stored within 20 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stored.seq, 11, "after every acknowledged message");
    // Sent again with the same cid: the same message, not a second one.
    let again = ok::<MessageReply>(&send(&mut ann, "/", "r", "while down", "down-1").await);
    assert_eq!(again.message.seq, 11);
    // Every acknowledged message survived the restart (AOF, appendfsync always).
    let history = ann
        .request("/", "history", json!({ "room": "r", "limit": 100 }))
        .await;
    let kept: Vec<ChatMessage> = decode(&history["messages"]);
    assert_eq!(kept[..10], acked[..]);
    // Node C subscribed again: Bob gets the new messages live, in order, once.
    say(&mut ann, "/", "r", "after").await;
    let live = messages_until(&mut bob, "/", "r", 12).await;
    assert_eq!(seqs(&live), [11, 12]);
}

/// Runs the binary with `args` and returns (exit success, stderr); bounded to 20 s.
fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chat-server {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unreachable_redis_at_start_is_one_line_naming_the_url_without_its_password() {
    let port = free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{}", free_port());
    // From the environment (where a password belongs): one line.
    let (ok, stderr) = run_binary(
        &["--store", "redis", "--listen", &listen],
        &[("CHAT_REDIS_URL", &url)],
    );
    assert!(!ok);
    assert!(
        stderr.contains(&format!("redis://:***@127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // From a flag: the same error, after a warning that `ps` shows the flag.
    let (ok, stderr) = run_binary(&["--redis", &url, "--listen", &listen], &[]);
    assert!(!ok);
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(
        stderr.contains("shown to anyone who can list processes"),
        "{stderr}"
    );
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("chat-server: cannot start"), "{stderr}");
    let (ok, stderr) = run_binary(
        &["--redis", &url, "--data", "/tmp/x.db", "--listen", &listen],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("cannot be used together"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_chat_on_a_three_master_redis_cluster() {
    if !installed() {
        return;
    }
    let cluster = RedisCluster::start();
    let (a, c) = (Node::start(&cluster.url()), Node::start(&cluster.url()));
    let mut ann = connect(a.addr, "/", "ann", None).await;
    let mut bob = connect(c.addr, "/", "bob", None).await;
    // Several rooms, so they land on several shards.
    let rooms: Vec<String> = (0..6).map(|i| format!("room{i}")).collect();
    for r in &rooms {
        join(&mut ann, "/", r).await;
        join(&mut bob, "/", r).await;
    }
    for r in &rooms {
        for i in 0..3 {
            say(&mut ann, "/", r, &format!("{r} {i}")).await;
        }
    }
    for r in &rooms {
        let got = messages_until(&mut bob, "/", r, 3).await;
        assert_eq!(seqs(&got), [1, 2, 3], "{r}");
    }
    let keys: usize = cluster
        .nodes
        .iter()
        .filter(|n| n.cli(&["dbsize"]).trim().parse::<usize>().unwrap_or(0) > 0)
        .count();
    assert!(keys >= 2, "the rooms are spread over the shards");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_nick_is_one_users_across_nodes_until_its_node_dies() {
    if !installed() {
        return;
    }
    let redis = RedisServer::start();
    let (mut a, b) = (Node::start(&redis.url()), Node::start(&redis.url()));
    let _ann = connect(a.addr, "/", "ann", None).await;
    let _sam = connect(a.addr, "/", "sam", None).await;
    let attempt = |nick: &'static str| async move {
        let mut c = Client::connect(b.addr).await;
        let p = c
            .connect_namespace("/", Some(json!({ "nick": nick })))
            .await;
        (c, p)
    };
    // Held on A: refused on B, as is a nick that passes for one online on A.
    for nick in ["ann", "ANN", "sarn"] {
        let (_c, p) = attempt(nick).await;
        assert_eq!(
            common::chat::refused(&p).1,
            Some(ErrorCode::NickTaken),
            "{nick}"
        );
    }
    // A nick free everywhere is taken on B, and then refused on A.
    let (_bob, p) = attempt("bob").await;
    assert_eq!(p.kind, chat_protocol::socket_io::PacketKind::Connect);
    let mut c = Client::connect(a.addr).await;
    let p = c
        .connect_namespace("/", Some(json!({ "nick": "bob" })))
        .await;
    assert_eq!(common::chat::refused(&p).1, Some(ErrorCode::NickTaken));
    // A dies: within 10 s its nicks are free on B (its heartbeat expired).
    a.kill();
    let died = Instant::now();
    loop {
        let (c, p) = attempt("ann").await;
        if p.kind == chat_protocol::socket_io::PacketKind::Connect {
            drop(c);
            break;
        }
        assert!(
            died.elapsed() < Duration::from_secs(10),
            "ann still held 10 s after A died"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        died.elapsed() >= Duration::from_secs(2),
        "not before the heartbeat expired"
    );
}

/// Two nodes on a fresh Redis: ann connected to the first, bob to the second.
async fn ann_on_a_and_bob_on_b() -> (RedisServer, Node, Node, Client, Client) {
    let redis = RedisServer::start();
    let (a, b) = (Node::start(&redis.url()), Node::start(&redis.url()));
    let ann = connect(a.addr, "/", "ann", None).await;
    let bob = connect(b.addr, "/", "bob", None).await;
    (redis, a, b, ann, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_users_leave_their_rooms_for_everyone_else_within_10_s() {
    if !installed() {
        return;
    }
    let (_redis, mut a, _b, mut ann, mut bob) = ann_on_a_and_bob_on_b().await;
    join(&mut ann, "/", "r").await;
    join(&mut ann, "/", "s").await;
    join(&mut bob, "/", "r").await;
    // Ann left s: no quit for s later.
    ann.request("/", "leave", json!({ "room": "s" })).await;
    join(&mut bob, "/", "s").await;
    // A dies with Ann connected (SIGKILL: no quit of its own).
    a.kill();
    let died = Instant::now();
    // Her `leave` of s may reach B's members late (it crosses nodes): only quits count here.
    let is_quit = |p: &Value| p["action"] == "quit";
    let quits: Vec<Value> =
        presences_until(&mut bob, "ann", 10, |_| {}, |seen| seen.iter().any(is_quit))
            .await
            .into_iter()
            .filter(is_quit)
            .collect();
    drop(ann);
    assert_eq!(quits.len(), 1, "{quits:?}");
    // A's users and room counts went with it.
    let whois = bob.request("/", "whois", json!({ "nick": "ann" })).await;
    assert_eq!(
        common::chat::code(&whois),
        ErrorCode::UserOffline,
        "{whois}"
    );
    let rooms = bob.request("/", "rooms", json!({})).await;
    assert_eq!(
        rooms["rooms"],
        json!([{"room": "r", "members": 1}, {"room": "s", "members": 1}]),
        "{rooms}"
    );
    let quit = &quits[0];
    assert_eq!(
        (quit["room"].as_str(), quit["action"].as_str()),
        (Some("r"), Some("quit"))
    );
    assert!(died.elapsed() < Duration::from_secs(10));
    // Once, and only for the room she was in.
    let rest = common::chat::pending(&mut bob).await;
    assert!(
        !rest
            .iter()
            .any(|(n, a)| n == "presence" && a["nick"] == "ann" && is_quit(a)),
        "{rest:?}"
    );
}

/// A node taken for dead while alive (its heartbeat key gone past its time to live, as when
/// it stalls, and another node reaped it) tells the cluster its users again on its next
/// heartbeat: the rooms see them back, `who` lists them, and when the node really dies they
/// leave again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaped_while_alive_tells_the_cluster_its_users_again() {
    if !installed() {
        return;
    }
    let (redis, mut a, _b, mut ann, mut bob) = ann_on_a_and_bob_on_b().await;
    join(&mut ann, "/", "r").await;
    join(&mut bob, "/", "r").await;
    // A's node id: the node whose presence set holds ann.
    let nodes = redis.cli(&["smembers", "chat:{nicks}:nodes"]);
    let a_id = nodes
        .lines()
        .map(str::trim)
        .find(|id| {
            redis
                .cli(&["smembers", &format!("chat:{{nicks}}:presence:{id}")])
                .contains("ann")
        })
        .unwrap_or_else(|| panic!("no node holds ann: {nodes}"))
        .to_owned();
    // A's heartbeat key vanishes (as if A stalled past its time to live) until B reaps A;
    // A is alive: on its next heartbeat it finds itself reaped and says so. (Both events may
    // come in one read.)
    let del_a = format!("chat:{{nicks}}:node:{a_id}");
    let is = |p: &Value, action: &str| p["action"] == action;
    let seen = presences_until(
        &mut bob,
        "ann",
        30,
        |seen| {
            if !seen.iter().any(|p| is(p, "quit")) {
                redis.cli(&["del", &del_a]);
            }
        },
        |seen| {
            seen.iter()
                .skip_while(|p| !is(p, "quit"))
                .any(|p| is(p, "join"))
        },
    )
    .await;
    let quit = seen.iter().find(|p| is(p, "quit")).unwrap();
    assert_eq!(quit["room"], "r", "{quit}");
    let back = seen
        .iter()
        .skip_while(|p| !is(p, "quit"))
        .find(|p| is(p, "join"))
        .unwrap();
    assert_eq!(
        (back["room"].as_str(), back["reason"].as_str()),
        (Some("r"), Some("its server is back")),
        "{back}"
    );
    let who = bob.request("/", "who", json!({"room": "r"})).await;
    assert_eq!(who["members"], json!(["ann", "bob"]), "{who}");
    // Ann, on A all along, was not told that she quit and joined again.
    let told: Vec<Value> = common::chat::pending(&mut ann)
        .await
        .into_iter()
        .filter(|(n, p)| n == "presence" && p["nick"] == "ann")
        .map(|(_, p)| p)
        .collect();
    assert!(told.is_empty(), "ann was told of herself: {told:?}");
    // Ann chats on as before, and the roster is whole again: when A really dies, she leaves.
    say(&mut ann, "/", "r", "still here").await;
    a.kill();
    presences_until(
        &mut bob,
        "ann",
        10,
        |_| {},
        |seen| seen.iter().any(|p| is(p, "quit")),
    )
    .await;
}

/// The `presence` events `c` gets about `nick`, in order, until `done` says they are enough
/// (within `secs` seconds); `each` runs with those seen so far before every look (every
/// 100 ms).
async fn presences_until(
    c: &mut Client,
    nick: &str,
    secs: u64,
    mut each: impl FnMut(&[Value]),
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        each(&seen);
        seen.extend(
            common::chat::pending(c)
                .await
                .into_iter()
                .filter(|(n, p)| n == "presence" && p["nick"] == nick)
                .map(|(_, p)| p),
        );
        if done(&seen) {
            return seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "not enough presence events for {nick} in {secs} s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nick_registered_on_one_node_keeps_its_look_alikes_out_on_another() {
    if !installed() {
        return;
    }
    let redis = RedisServer::start();
    let (a, b) = (Node::start(&redis.url()), Node::start(&redis.url()));
    // B reads its index of registered nicks now, before the registration on A.
    let _zed = connect(b.addr, "/", "zed", None).await;
    let mut sam = Client::connect(a.addr).await;
    sam.join_namespace(
        "/",
        Some(json!({ "nick": "sam", "password": "correct horse 1" })),
    )
    .await;
    sam.close().await;
    // Sam is offline everywhere once A released the nick.
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.cli(&["exists", "chat:{nicks}:nick:sam"]).trim() != "0" {
        assert!(Instant::now() < deadline, "sam still held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = Client::connect(b.addr).await;
    let p = c
        .connect_namespace("/", Some(json!({ "nick": "sarn" })))
        .await;
    let code = common::chat::refused(&p).1;
    assert!(
        matches!(code, Some(ErrorCode::NickTaken | ErrorCode::NickClaimed)),
        "{code:?}"
    );
}

/// A mute set by an operator on node A holds for its target on node B within the rules
/// refresh (`chat::RULES_REFRESH`, 2 s): B's cached rules of the room are read again from
/// Redis. (In-process nodes: two servers on one redis-server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_set_on_one_node_holds_on_another() {
    use chat_protocol::socket_io::PacketKind;
    use chat_server::config::{DEFAULT_REDIS_MAX_MESSAGES, RedisConfig, RedisUrl, StoreConfig};
    if !installed() {
        return;
    }
    let redis = RedisServer::start();
    let node = || {
        let mut config = common::chat::config();
        config.store = StoreConfig::Redis(RedisConfig {
            url: RedisUrl::parse(&redis.url()).unwrap(),
            max_messages: DEFAULT_REDIS_MAX_MESSAGES,
        });
        chat_server::start(config)
    };
    let (a, b) = (node().await.unwrap(), node().await.unwrap());
    let mut ada = Client::connect(a.local_addr()).await;
    let p = ada
        .connect_namespace("/", Some(json!({"nick": "ada", "password": "pw-ada"})))
        .await;
    assert_eq!(p.kind, PacketKind::Connect, "{p:?}");
    join(&mut ada, "/", "r").await;
    let mut bob = Client::connect(b.local_addr()).await;
    bob.join_namespace("/", Some(json!({"nick": "bob"}))).await;
    join(&mut bob, "/", "r").await;
    say(&mut bob, "/", "r", "before").await;
    let muted = ada
        .request("/", "mute", json!({"room": "r", "nick": "bob"}))
        .await;
    assert_eq!(muted["ok"], true, "{muted}");
    let deadline = Instant::now() + Duration::from_secs(6);
    let refused = loop {
        let reply = bob
            .request("/", "message", json!({"room": "r", "text": "still here?"}))
            .await;
        if reply["ok"] != true || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        common::chat::code(&refused),
        ErrorCode::Muted,
        "muted on B within the refresh: {refused}"
    );
}

/// Two in-process nodes on one redis-server (the second with an admin listener and token).
async fn two_nodes(
    redis: &RedisServer,
) -> (chat_server::RunningServer, chat_server::RunningServer) {
    use chat_server::config::{DEFAULT_REDIS_MAX_MESSAGES, RedisConfig, RedisUrl, StoreConfig};
    let node = |admin: bool| {
        let mut config = common::chat::config();
        config.store = StoreConfig::Redis(RedisConfig {
            url: RedisUrl::parse(&redis.url()).unwrap(),
            max_messages: DEFAULT_REDIS_MAX_MESSAGES,
        });
        if admin {
            config.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            config.admin_token = Some(ADMIN_TOKEN.to_owned());
        }
        chat_server::start(config)
    };
    (node(true).await.unwrap(), node(false).await.unwrap())
}

const ADMIN_TOKEN: &str = "a-test-admin-token-0123456789";

/// One admin API request (`Authorization: Bearer`), its status and JSON body.
async fn admin_api(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the admin listener answers")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `c` is out of `room` within 2 s (its node applies the command after the announcement
/// `c` saw): a message there is refused `not_in_room`.
async fn assert_out_of_room(c: &mut Client, room: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let reply = c
            .request("/", "message", json!({"room": room, "text": "still here?"}))
            .await;
        if reply["ok"] != true {
            assert_eq!(common::chat::code(&reply), ErrorCode::NotInRoom, "{reply}");
            return;
        }
        assert!(Instant::now() < deadline, "still in {room} after 2 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks `c` `event` until `done` holds for the reply (other nodes' presence is written on
/// their heartbeat, every 2 s): at most 8 s.
async fn ask_until(
    c: &mut Client,
    event: &str,
    arg: Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let reply = c.request("/", event, arg.clone()).await;
        if done(&reply) || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `whois`, `who` and `rooms` asked on node A see a user connected only on node B: online,
/// registered, away with its reason, idle, in the shared room; listed as away in the room;
/// counted in the room's members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whois_who_and_rooms_see_the_users_of_another_node() {
    use chat_protocol::socket_io::PacketKind;
    if !installed() {
        return;
    }
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let mut ann = connect(a.local_addr(), "/", "ann", None).await;
    let mut sam = Client::connect(b.local_addr()).await;
    let p = sam
        .connect_namespace("/", Some(json!({"nick": "sam", "password": "pw-of-sam"})))
        .await;
    assert_eq!(p.kind, PacketKind::Connect, "{p:?}");
    join(&mut ann, "/", "r").await;
    join(&mut sam, "/", "r").await;
    join(&mut sam, "/", "only-sam").await;
    let away = sam.request("/", "away", json!({"reason": "lunch"})).await;
    assert_eq!(away["ok"], true, "{away}");

    let whois = ask_until(&mut ann, "whois", json!({"nick": "SAM"}), |r| {
        r["away"] == "lunch"
    })
    .await;
    assert_eq!(whois["online"], true, "{whois}");
    assert_eq!(whois["registered"], true, "{whois}");
    assert_eq!(whois["nick"], "sam", "{whois}");
    assert_eq!(whois["away"], "lunch", "{whois}");
    assert_eq!(
        whois["rooms"],
        json!(["r"]),
        "only the rooms both are in: {whois}"
    );
    assert!(
        whois["idle_secs"].as_u64().is_some_and(|s| s < 60),
        "{whois}"
    );

    let who = ask_until(&mut ann, "who", json!({"room": "r"}), |r| {
        r["away"] == json!(["sam"])
    })
    .await;
    assert_eq!(who["members"], json!(["ann", "sam"]), "{who}");
    assert_eq!(who["away"], json!(["sam"]), "{who}");

    let rooms = ask_until(&mut ann, "rooms", json!({}), |r| {
        r["rooms"].as_array().is_some_and(|l| l.len() == 2)
    })
    .await;
    assert_eq!(
        rooms["rooms"],
        json!([{"room": "only-sam", "members": 1}, {"room": "r", "members": 2}]),
        "{rooms}"
    );
    // The welcome notice counts the namespace's users on every node (B's, as its last
    // heartbeat said, so within a few seconds): ann and sam, and the newcomer on A.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let mut tom = connect(a.local_addr(), "/", "tom", None).await;
        let text = tom.wait_event("notice").await["text"].clone();
        tom.close().await;
        if text == "Welcome to /, tom. 3 users online." {
            break;
        }
        assert!(Instant::now() < deadline, "still {text} after 8 s");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // What B writes about its users does not grow with chat traffic: 40 messages in a row
    // cost at most one write per heartbeat (2 s; of what changed: its user's last activity),
    // not one each.
    let hsets = || {
        redis
            .cli(&["info", "commandstats"])
            .lines()
            .filter_map(|l| {
                l.strip_prefix("cmdstat_hset:calls=")
                    .or_else(|| l.strip_prefix("cmdstat_hmset:calls="))
            })
            .filter_map(|l| l.split(',').next().and_then(|n| n.parse::<u64>().ok()))
            .sum::<u64>()
    };
    let (before, started) = (hsets(), Instant::now());
    for i in 0..40 {
        say(&mut sam, "/", "r", &format!("m{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let beats = started.elapsed().as_secs() / 2 + 1;
    let written = hsets() - before;
    assert!(
        written <= beats,
        "{written} hash writes in {beats} heartbeats for 40 messages"
    );
    // `rooms` reads the other nodes' room counts at most once per heartbeat, however often
    // it is asked: 40 requests in a row cost A one read of B's hash (the heartbeats read
    // only the namespaces' hashes, one per node per beat).
    let hgetalls = || {
        redis
            .cli(&["info", "commandstats"])
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_hgetall:calls="))
            .filter_map(|l| l.split(',').next().and_then(|n| n.parse::<u64>().ok()))
            .sum::<u64>()
    };
    let (before, started) = (hgetalls(), Instant::now());
    for _ in 0..40 {
        let r = ann.request("/", "rooms", json!({})).await;
        assert_eq!(r["rooms"].as_array().map(Vec::len), Some(2), "{r}");
    }
    let beats = started.elapsed().as_secs() / 2 + 1;
    let read = hgetalls() - before;
    assert!(
        read <= 3 * beats,
        "{read} HGETALLs in {beats} heartbeats for 40 rooms requests"
    );
    // Back: no longer away for A either, within a heartbeat.
    sam.request("/", "away", json!({})).await;
    let nobody_away = |r: &Value| r["ok"] == true && r["away"].as_array().is_none_or(Vec::is_empty);
    let who = ask_until(&mut ann, "who", json!({"room": "r"}), nobody_away).await;
    assert!(nobody_away(&who), "{who}");
}

/// An operator on node A kicks a user connected on node B: B's client gets the kick and is
/// out of the room there; the room's members see the kick once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_on_one_node_kicks_a_user_on_another() {
    use chat_protocol::socket_io::PacketKind;
    if !installed() {
        return;
    }
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let mut ada = Client::connect(a.local_addr()).await;
    let p = ada
        .connect_namespace("/", Some(json!({"nick": "ada", "password": "pw-of-ada"})))
        .await;
    assert_eq!(p.kind, PacketKind::Connect, "{p:?}");
    join(&mut ada, "/", "r").await; // the creator: its operator
    let mut bob = connect(b.local_addr(), "/", "bob", None).await;
    let mut cat = connect(b.local_addr(), "/", "cat", None).await;
    let mut dan = connect(a.local_addr(), "/", "dan", None).await;
    join(&mut bob, "/", "r").await;
    join(&mut cat, "/", "r").await;
    join(&mut dan, "/", "r").await;
    // A knows bob is in r (the roster) before the kick.
    ask_until(&mut ada, "who", json!({"room": "r"}), |r| {
        r["members"].as_array().is_some_and(|m| m.len() == 4)
    })
    .await;
    // B lists A's operator as one.
    let who = cat.request("/", "who", json!({"room": "r"})).await;
    assert_eq!(who["operators"], json!(["ada"]), "{who}");
    let kicked = ada
        .request(
            "/",
            "kick",
            json!({"room": "r", "nick": "bob", "reason": "spam"}),
        )
        .await;
    assert_eq!(kicked["ok"], true, "{kicked}");
    assert_eq!(kicked["target"], "bob", "{kicked}");
    let seen = bob.wait_event("moderation").await;
    assert_eq!(
        (seen["action"].as_str(), seen["target"].as_str()),
        (Some("kick"), Some("bob"))
    );
    // Out of r on B: a message there is refused.
    assert_out_of_room(&mut bob, "r").await;
    // Each other member saw the kick once (B's cat, A's dan).
    for c in [&mut cat, &mut dan] {
        let kicks: Vec<Value> = common::chat::pending(c)
            .await
            .into_iter()
            .filter(|(n, e)| n == "moderation" && e["action"] == "kick")
            .map(|(_, e)| e)
            .collect();
        assert_eq!(kicks.len(), 1, "{kicks:?}");
    }
    // And the room's members, from either node, no longer list him.
    let who = ask_until(&mut ada, "who", json!({"room": "r"}), |r| {
        r["members"] == json!(["ada", "cat", "dan"])
    })
    .await;
    assert_eq!(who["members"], json!(["ada", "cat", "dan"]), "{who}");
}

/// The admin API of node A lists node B's users with their node, counts B's members in
/// its rooms, and kicks a user on B out of a room and off the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_lists_and_kicks_the_users_of_every_node() {
    use chat_protocol::socket_io::PacketKind;
    if !installed() {
        return;
    }
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let admin = a.admin_addr().expect("admin listener");
    let mut ann = connect(a.local_addr(), "/", "ann", None).await;
    let mut bob = connect(b.local_addr(), "/", "bob", None).await;
    // In the namespace, in no room.
    let _cat = connect(b.local_addr(), "/", "cat", None).await;
    join(&mut ann, "/", "r").await;
    join(&mut bob, "/", "r").await;

    let deadline = Instant::now() + Duration::from_secs(8);
    let users = loop {
        let (status, users) = admin_api(admin, "GET", "/api/users", None).await;
        assert_eq!(status, 200, "{users}");
        if users["users"].as_array().is_some_and(|u| u.len() == 3) || Instant::now() > deadline {
            break users;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let list = users["users"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{users}");
    assert_eq!(
        (
            list[0]["nick"].as_str(),
            list[1]["nick"].as_str(),
            list[2]["nick"].as_str()
        ),
        (Some("ann"), Some("bob"), Some("cat"))
    );
    assert_eq!(
        list[2]["connections"][0]["namespaces"],
        json!([{"name": "/", "rooms": []}]),
        "a user on another node in no room is still listed in its namespace: {users}"
    );
    let (node_a, node_b) = (
        list[0]["node"].as_str().unwrap(),
        list[1]["node"].as_str().unwrap(),
    );
    assert_ne!(node_a, node_b, "{users}");
    assert_eq!(
        list[1]["connections"][0]["namespaces"],
        json!([{"name": "/", "rooms": ["r"]}]),
        "{users}"
    );
    // `chat-server admin users` prints the same list, each user with its node.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["admin", "--url", &format!("http://{admin}"), "users"])
            .env("CHAT_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes: Vec<&str> = printed["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["node"].as_str())
        .collect();
    assert_eq!(nodes, [node_a, node_b, node_b], "{printed}");
    let (_, rooms) = admin_api(admin, "GET", "/api/rooms", None).await;
    assert_eq!(
        rooms["rooms"],
        json!([{"namespace": "/", "room": "r", "members": 2}]),
        "{rooms}"
    );
    // Namespaces: this node's sockets, every node's users and rooms (B's within a beat).
    let deadline = Instant::now() + Duration::from_secs(8);
    let namespaces = loop {
        let (_, ns) = admin_api(admin, "GET", "/api/namespaces", None).await;
        if ns["namespaces"][0]["users"] == 3 || Instant::now() > deadline {
            break ns;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        namespaces,
        json!({"namespaces": [{"name": "/", "sockets": 1, "users": 3, "rooms": 1}]})
    );

    // Out of r: B's client is told, and is out.
    let (status, kicked) = admin_api(
        admin,
        "POST",
        "/api/kick",
        Some(json!({"nick": "bob", "room": "r", "reason": "spam"})),
    )
    .await;
    assert_eq!(status, 200, "{kicked}");
    assert_eq!(kicked, json!({"ok": true, "sockets": 0, "elsewhere": true}));
    let left = bob.wait_event("presence").await;
    assert_eq!(
        (left["action"].as_str(), left["nick"].as_str()),
        (Some("leave"), Some("bob")),
        "{left}"
    );
    assert_out_of_room(&mut bob, "r").await;

    // A ban through the API: B takes him out again once he is back in r.
    join(&mut bob, "/", "r").await;
    let (status, banned) = admin_api(
        admin,
        "POST",
        "/api/ban",
        Some(json!({"target": "bob", "room": "r"})),
    )
    .await;
    assert_eq!(status, 200, "{banned}");
    let kick = loop {
        let e = bob.wait_event("moderation").await;
        if e["action"] == "kick" {
            break e;
        }
    };
    assert_eq!(kick["target"], "bob", "{kick}");
    assert_out_of_room(&mut bob, "r").await;

    // Off the server: B disconnects him (a Socket.IO DISCONNECT).
    let (status, off) = admin_api(admin, "POST", "/api/kick", Some(json!({"nick": "bob"}))).await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off, json!({"ok": true, "sockets": 0, "elsewhere": true}));
    let mut disconnected = false;
    for _ in 0..20 {
        if bob.recv_packet().await.kind == PacketKind::Disconnect {
            disconnected = true;
            break;
        }
    }
    assert!(disconnected, "bob got a DISCONNECT");
    // Nobody called so, anywhere: 404.
    let (status, none) = admin_api(admin, "POST", "/api/kick", Some(json!({"nick": "zed"}))).await;
    assert_eq!(
        (status, none["error"].as_str()),
        (404, Some("no_such_user"))
    );
}
