//! The chat's messages: acked to the sender and broadcast to the room, membership and text
//! rules, the action flag, one `seq` order without gaps for concurrent senders, joins and
//! leaves racing live traffic (no message missed after a join, none arriving after a leave),
//! and direct messages (to the recipient only, to its sender's namespace else `/`).
//!
//! A real server on `127.0.0.1:0` in this process, driven by the raw Socket.IO client of
//! `tests/common`; every receive has a timeout. To prove that an event did NOT arrive, a test
//! makes a `ping` round trip on that client and looks at the packets skipped on the way
//! (`common::chat::pending`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chat_protocol::events::{
    self, ChatMessage, DmReply, ErrorCode, HistoryReply, JoinReply, MessageReply,
};
use common::chat::{call, code, count, decode, join, ok, pending, say, start, user, user_in};
use common::{Client, RECV_TIMEOUT};
use serde_json::{Value, json};

#[tokio::test]
async fn messages_are_acked_to_the_sender_and_broadcast_to_the_room() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    let mut carol = user(addr, "carol").await; // in the namespace, not in the room
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    let before = now_ms();
    let mut sent = Vec::new();
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let m = say(&mut alice, "/", "r", text).await;
        assert_eq!(m.seq, i as u64 + 1);
        assert_eq!((m.room.as_str(), m.from.as_str()), ("r", "alice"));
        assert_eq!(m.text, text);
        assert!(!m.action);
        assert!(
            m.ts >= before - 1000 && m.ts <= now_ms() + 1000,
            "ts {}",
            m.ts
        );
        sent.push(m);
    }
    let ids: std::collections::HashSet<&str> = sent.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "ids are unique");

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(decode::<ChatMessage>(
            &bob.wait_event(events::server::MESSAGE).await,
        ));
    }
    assert_eq!(got, sent);
    // The sender gets its messages in the acks only; a non-member gets nothing.
    assert_eq!(
        count(&pending(&mut alice).await, events::server::MESSAGE),
        0
    );
    assert_eq!(
        count(&pending(&mut carol).await, events::server::MESSAGE),
        0
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[tokio::test]
async fn a_message_needs_membership_of_its_room() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut bob, "/", "r").await;
    let send = json!({ "room": "r", "text": "hi" });
    assert_eq!(
        code(&alice.request("/", "message", send.clone()).await),
        ErrorCode::NotInRoom
    );
    join(&mut alice, "/", "r").await;
    assert_eq!(say(&mut alice, "/", "r", "hi").await.seq, 1);
    let _: Value = ok(&alice.request("/", "leave", json!({ "room": "r" })).await);
    assert_eq!(
        code(&alice.request("/", "message", send).await),
        ErrorCode::NotInRoom
    );
    // The refused messages were not stored or sent.
    let events = pending(&mut bob).await;
    let texts: Vec<ChatMessage> = events
        .iter()
        .filter(|(n, _)| n == events::server::MESSAGE)
        .map(|(_, a)| decode(a))
        .collect();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].seq, 1);
}

#[tokio::test]
async fn message_text_must_be_non_blank_and_at_most_4000_characters() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    join(&mut alice, "/", "r").await;
    for text in [String::new(), "   ".into(), "\n\t".into(), "x".repeat(4001)] {
        let reply = alice
            .request("/", "message", json!({ "room": "r", "text": text }))
            .await;
        assert_eq!(code(&reply), ErrorCode::InvalidText, "{} chars", text.len());
    }
    // Characters, not bytes.
    let long = "é".repeat(4000);
    let m = say(&mut alice, "/", "r", &long).await;
    assert_eq!((m.seq, m.text), (1, long));
}

#[tokio::test]
async fn the_action_flag_is_kept() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    join(&mut alice, "/", "r").await;
    join(&mut bob, "/", "r").await;
    let reply = alice
        .request(
            "/",
            "message",
            json!({ "room": "r", "text": "waves", "action": true }),
        )
        .await;
    let acked = ok::<MessageReply>(&reply).message.into_owned();
    assert!(acked.action);
    let event = bob.wait_event(events::server::MESSAGE).await;
    assert_eq!(event["action"], json!(true));
    assert_eq!(decode::<ChatMessage>(&event), acked);
    // A plain message says nothing about actions on the wire.
    say(&mut alice, "/", "r", "plain").await;
    let plain = bob.wait_event(events::server::MESSAGE).await;
    assert!(
        plain.get("action").is_none_or(|a| a == &json!(false)),
        "{plain}"
    );
    let history: HistoryReply = ok(&bob.request("/", "history", json!({ "room": "r" })).await);
    let flags: Vec<bool> = history.messages.iter().map(|m| m.action).collect();
    assert_eq!(flags, vec![true, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_are_seen_in_seq_order_without_gaps() {
    const PER_SENDER: usize = 100;
    let (_server, addr) = start().await;
    let mut carol = user(addr, "carol").await;
    join(&mut carol, "/", "r").await;
    let mut senders = Vec::new();
    for nick in ["alice", "bob"] {
        let mut c = user(addr, nick).await;
        join(&mut c, "/", "r").await;
        senders.push((nick, c));
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(nick, mut c)| {
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..PER_SENDER {
                    seqs.push(say(&mut c, "/", "r", &format!("{nick} {i}")).await.seq);
                }
                (seqs, c)
            })
        })
        .collect();

    let mut received = Vec::new();
    while received.len() < 2 * PER_SENDER {
        let (_, name, args) = carol.recv_event().await;
        if name == events::server::MESSAGE {
            received.push(decode::<ChatMessage>(&args[0]));
        }
    }
    let mut acked = Vec::new();
    for task in tasks {
        let (seqs, _client) = tokio::time::timeout(RECV_TIMEOUT, task)
            .await
            .expect("sender finished")
            .expect("sender task");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "own acks increase");
        acked.extend(seqs);
    }
    acked.sort_unstable();
    let all: Vec<u64> = (1..=(2 * PER_SENDER) as u64).collect();
    assert_eq!(acked, all, "every seq acked exactly once");
    let seqs: Vec<u64> = received.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, all, "the receiver sees 1, 2, 3, ... in order");
    for nick in ["alice", "bob"] {
        let texts: Vec<&str> = received
            .iter()
            .filter(|m| m.from == nick)
            .map(|m| m.text.as_str())
            .collect();
        let expected: Vec<String> = (0..PER_SENDER).map(|i| format!("{nick} {i}")).collect();
        assert_eq!(texts, expected, "{nick}'s messages in sending order");
    }
}

/// Keeps `c` (a member of `room`) sending until `stop` is set; the task returns the count.
fn keep_sending(
    mut c: Client,
    room: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            sent += 1;
            say(&mut c, "/", room, &format!("m{sent}")).await;
        }
        sent
    })
}

async fn stop_sending(stop: &AtomicBool, traffic: tokio::task::JoinHandle<u64>) -> u64 {
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(RECV_TIMEOUT, traffic)
        .await
        .expect("sender stops")
        .expect("sender task")
}

/// The `seq`s of the `message` events among `events`.
fn message_seqs(events: &[(String, Value)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(n, _)| n == events::server::MESSAGE)
        .map(|(_, a)| decode::<ChatMessage>(a).seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_during_traffic_misses_no_message() {
    const JOINS: usize = 300;
    let (_server, addr) = start().await;
    let mut sender = user(addr, "sender").await;
    join(&mut sender, "/", "r").await;
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = keep_sending(sender, "r", stop.clone());
    let mut joiner = user(addr, "joiner").await;
    let mut gaps = Vec::new();
    for _ in 0..JOINS {
        let (reply, early) = call(&mut joiner, "/", "join", json!({ "room": "r" })).await;
        let joined: JoinReply = ok(&reply);
        // What the joiner has: the history, the messages that came before the ack, and the
        // first one after it. Without history the room's first message is 1. (Sorted and
        // deduplicated: a message of the previous membership may arrive late, see
        // `no_message_arrives_after_leaving_a_room`.)
        let mut seqs: Vec<u64> = joined.history.iter().map(|m| m.seq).collect();
        if seqs.is_empty() {
            seqs.push(0);
        }
        seqs.extend(message_seqs(&early));
        seqs.push(decode::<ChatMessage>(&joiner.wait_event(events::server::MESSAGE).await).seq);
        seqs.sort_unstable();
        seqs.dedup();
        if !seqs.windows(2).all(|w| w[1] == w[0] + 1) {
            gaps.push(seqs[seqs.len().saturating_sub(4)..].to_vec());
        }
        let _: Value = ok(&joiner.request("/", "leave", json!({ "room": "r" })).await);
        pending(&mut joiner).await;
    }
    let sent = stop_sending(&stop, traffic).await;
    assert!(
        gaps.is_empty(),
        "{} of {JOINS} joins (during {sent} messages) missed a message: {gaps:?}",
        gaps.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_arrives_after_leaving_a_room() {
    let (_server, addr) = start().await;
    let mut sender = user(addr, "sender").await;
    join(&mut sender, "/", "r").await;
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = keep_sending(sender, "r", stop.clone());
    let mut joiner = user(addr, "joiner").await;
    let mut late = Vec::new();
    // The window is small: a few in a thousand cycles hit it (about 6 s in a debug build).
    for _ in 0..2000 {
        join(&mut joiner, "/", "r").await;
        joiner.wait_event(events::server::MESSAGE).await;
        let _: Value = ok(&joiner.request("/", "leave", json!({ "room": "r" })).await);
        late.extend(message_seqs(&pending(&mut joiner).await));
    }
    let sent = stop_sending(&stop, traffic).await;
    assert!(
        late.is_empty(),
        "messages arrived after the leave ack (of {sent}): {late:?}"
    );
}

#[tokio::test]
async fn a_dm_reaches_its_recipient_only() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "Bob").await;
    let mut carol = user(addr, "carol").await;
    let reply = alice
        .request("/", "dm", json!({ "to": "bob", "text": "psst" }))
        .await;
    let DmReply {
        message, delivered, ..
    } = ok(&reply);
    assert!(delivered);
    assert_eq!(
        (
            message.from.as_str(),
            message.to.as_str(),
            message.text.as_str()
        ),
        ("alice", "Bob", "psst")
    );
    let got: events::DirectMessage = decode(&bob.wait_event(events::server::DM).await);
    assert_eq!(got, message);
    assert_eq!(count(&pending(&mut carol).await, events::server::DM), 0);
    assert_eq!(count(&pending(&mut alice).await, events::server::DM), 0);
}

#[tokio::test]
async fn a_dm_to_an_offline_nick_fails() {
    let (_server, addr) = start().await;
    let mut alice = user(addr, "alice").await;
    let reply = alice
        .request("/", "dm", json!({ "to": "nobody", "text": "hello?" }))
        .await;
    assert_eq!(code(&reply), ErrorCode::UserOffline);
    let reply = alice
        .request("/", "dm", json!({ "to": "alice", "text": "" }))
        .await;
    assert_eq!(code(&reply), ErrorCode::InvalidText);
    let reply = alice
        .request("/", "dm", json!({ "to": "2pac", "text": "x" }))
        .await;
    assert_eq!(code(&reply), ErrorCode::InvalidName);
}

#[tokio::test]
async fn a_dm_goes_to_the_senders_namespace_else_to_slash() {
    let (_server, addr) = start().await;
    let mut bob = user(addr, "bob").await;
    bob.join_namespace("/other", None).await;
    bob.wait_event(events::server::NOTICE).await;
    let mut alice = user_in(addr, "/other", "alice").await;
    alice.join_namespace("/x", None).await;
    let send = json!({ "to": "bob", "text": "here" });
    let reply: DmReply = ok(&alice.request("/other", "dm", send).await);
    assert!(reply.delivered);
    let (nsp, name, args) = bob.recv_event().await;
    assert_eq!(
        (nsp.as_str(), name.as_str()),
        ("/other", events::server::DM)
    );
    assert_eq!(args[0]["text"], "here");
    // bob is not in /x: the DM goes to his `/` socket.
    let send = json!({ "to": "bob", "text": "there" });
    let _: DmReply = ok(&alice.request("/x", "dm", send).await);
    let (nsp, name, args) = bob.recv_event().await;
    assert_eq!((nsp.as_str(), name.as_str()), ("/", events::server::DM));
    assert_eq!(args[0]["text"], "there");
}
