//! What the Redis store does beyond the store contract (`store_contract.rs` runs that on
//! it): the retention cap, several stores (nodes) on one Redis delivering one room's
//! messages in one order with no gap and no duplicate, and a dropped subscription filled
//! from the log. Each test starts its own `redis-server` (skipped, saying so, without one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::events::ChatMessage;
use chat_protocol::search::Phrase;
use chat_server::chat::redis::RedisStore;
use chat_server::chat::store::{NewMessage, RoomLog, SearchQuery, Store};
use chat_server::config::RedisUrl;
use common::redis::{RedisServer, installed};

fn message(from: &str, text: &str, cid: Option<&str>) -> NewMessage {
    NewMessage {
        namespace: "/".into(),
        room: "r".into(),
        from: from.into(),
        text: text.into(),
        action: false,
        cid: cid.map(str::to_owned),
    }
}

async fn store(server: &RedisServer, cap: u64) -> RedisStore {
    RedisStore::connect(&RedisUrl::parse(&server.url()).unwrap(), cap)
        .await
        .unwrap()
}

/// A store whose other nodes' messages are recorded (the delivery hook), attached to "r".
async fn watching(server: &RedisServer) -> (RedisStore, Arc<Mutex<Vec<u64>>>) {
    let s = store(server, 0).await;
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let into = seen.clone();
    s.set_delivery(Arc::new(move |_ns: &str, m: &ChatMessage| {
        into.lock().unwrap().push(m.seq)
    }));
    s.attach("/", "r", None, 0, Box::new(|_| {})).await.unwrap();
    (s, seen)
}

/// Waits (at most 10 s) until `seen` holds `n` seqs.
async fn until(seen: &Arc<Mutex<Vec<u64>>>, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = seen.lock().unwrap().clone();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_keeps_the_newest_messages_and_forgets_their_cids_but_no_seq() {
    if !installed() {
        return;
    }
    let server = RedisServer::start();
    let s = store(&server, 3).await;
    let first = s
        .append(message("ann", "one", Some("c1")), Box::new(|_| {}))
        .await
        .unwrap();
    for i in 2..=5 {
        s.append(message("ann", &i.to_string(), None), Box::new(|_| {}))
            .await
            .unwrap();
    }
    let kept: Vec<u64> = s
        .history("/", "r", None, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(kept, [3, 4, 5]);
    // The first message is gone, and so is its cid: the re-send is a new message, with a
    // new seq (seqs are never reused).
    let again = s
        .append(message("ann", "one", Some("c1")), Box::new(|_| {}))
        .await
        .unwrap();
    assert!(!again.duplicate);
    assert_eq!((first.message.seq, again.message.seq), (1, 6));
    assert_eq!(server.cli(&["zcard", "chat:{/ r}:log"]).trim(), "3");
    assert_eq!(server.cli(&["hlen", "chat:{/ r}:cids"]).trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_at_once_reach_a_third_in_one_order_once() {
    if !installed() {
        return;
    }
    let server = RedisServer::start();
    let (a, b) = (
        Arc::new(store(&server, 0).await),
        Arc::new(store(&server, 0).await),
    );
    let (_c, seen) = watching(&server).await;
    let each = 150;
    let mut tasks = Vec::new();
    for (name, s) in [("a", a.clone()), ("b", b.clone())] {
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                s.append(message(name, &i.to_string(), None), Box::new(|_| {}))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = until(&seen, 2 * each).await;
    assert_eq!(got, (1..=2 * each as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_is_filled_from_the_log() {
    if !installed() {
        return;
    }
    let server = RedisServer::start();
    let a = store(&server, 0).await;
    let (_c, seen) = watching(&server).await;
    for i in 0..3 {
        a.append(message("a", &i.to_string(), None), Box::new(|_| {}))
            .await
            .unwrap();
    }
    assert_eq!(until(&seen, 3).await, [1, 2, 3]);
    // Subscription connections are cut again and again while messages are appended: what is
    // published while the watcher's is down is lost to pub/sub.
    let port = server.port;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                kills += common::redis::cli(port, &["client", "kill", "type", "pubsub"])
                    .trim()
                    .parse::<u32>()
                    .unwrap_or(0);
            }
            kills
        })
    };
    for i in 3..23 {
        a.append(message("a", &i.to_string(), None), Box::new(|_| {}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(killer.join().unwrap() > 0, "subscriptions were cut");
    // The watcher subscribes again and reads what it missed, in order, once, with no newer
    // message to show it the gap.
    assert_eq!(until(&seen, 23).await, (1..=23).collect::<Vec<_>>());
    a.append(message("a", "live", None), Box::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(until(&seen, 24).await, (1..=24).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_claimed_once_across_nodes() {
    if !installed() {
        return;
    }
    let server = RedisServer::start();
    let (a, b) = (store(&server, 0).await, store(&server, 0).await);
    let id = |h: &str| chat_server::chat::store::Identity {
        nick: "Ann".into(),
        password_hash: h.into(),
    };
    let (x, y) = tokio::join!(
        a.create_identity("ann", id("h1")),
        b.create_identity("ann", id("h2"))
    );
    assert!(x.unwrap() ^ y.unwrap(), "exactly one node claims it");
    assert_eq!(
        a.identity("ann").await.unwrap(),
        b.identity("ann").await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_nobody_here_is_in_is_forgotten_and_followed_again_on_the_next_attach() {
    if !installed() {
        return;
    }
    let server = RedisServer::start();
    let a = store(&server, 0).await;
    let (c, seen) = watching(&server).await;
    let occupied = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = occupied.clone();
    c.set_has_members(Arc::new(move |_: &str, _: &str| {
        flag.load(std::sync::atomic::Ordering::SeqCst)
    }));
    let subscribers = || {
        server
            .cli(&["pubsub", "numsub", "chat:{/ r}:msg"])
            .lines()
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert_eq!(subscribers(), "1");
    assert_eq!(c.forget_idle_rooms().await, 0, "the room has a member here");
    occupied.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(c.forget_idle_rooms().await, 1);
    assert_eq!(subscribers(), "0", "unsubscribed");
    // Messages meanwhile are not delivered here (nobody to deliver to)...
    a.append(message("a", "unseen", None), Box::new(|_| {}))
        .await
        .unwrap();
    // ...and the next attach follows the room again from where its log is (the appending
    // store follows the room too now: two subscribers).
    assert_eq!(subscribers(), "1");
    occupied.store(true, std::sync::atomic::Ordering::SeqCst);
    c.attach("/", "r", None, 0, Box::new(|_| {})).await.unwrap();
    assert_eq!(subscribers(), "2");
    a.append(message("a", "seen", None), Box::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(until(&seen, 1).await, [2]);
}

/// A message deleted from a stretch of the log that a node missed (its publishes lost) is
/// passed over when the node fills the gap: the messages around it still arrive, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_in_a_missed_stretch_is_passed_over() {
    if !installed() {
        return;
    }
    let server = RedisServer::start();
    let a = store(&server, 0).await;
    let (_c, seen) = watching(&server).await;
    for i in 1..=3 {
        a.append(message("ann", &i.to_string(), None), Box::new(|_| {}))
            .await
            .unwrap();
    }
    assert_eq!(until(&seen, 3).await, [1, 2, 3]);
    // Seqs 4 to 6 stored without their publishes (a dropped subscription's loss), then 4
    // deleted: the log holds 5 and 6.
    for seq in 4..=6 {
        let entry = format!(
            r#"{{"id":"x{seq}","seq":{seq},"from":"bob","text":"t{seq}","ts":1,"action":false,"c":"","n":"elsewhere","o":"{seq}"}}"#
        );
        server.cli(&["zadd", "chat:{/ r}:log", &seq.to_string(), &entry]);
    }
    server.cli(&["set", "chat:{/ r}:seq", "6"]);
    assert!(a.delete_message("/", "r", 4).await.unwrap().is_some());
    // The next publish shows the node its gap.
    a.append(message("ann", "7", None), Box::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(until(&seen, 6).await, [1, 2, 3, 5, 6, 7]);
    // Search reads the log: the deleted message is not found, its neighbours are.
    let found = |text: &'static str| {
        a.search(SearchQuery {
            namespace: "/".into(),
            rooms: vec!["r".into()],
            phrase: Phrase::new(text).unwrap(),
            before: None,
            limit: 10,
        })
    };
    assert!(found("t4").await.unwrap().messages.is_empty());
    assert_eq!(found("t5").await.unwrap().messages[0].seq, 5);
}

/// `available` (what `/readyz` reads) is false while Redis is down and true again once it
/// is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn available_follows_redis_reachability() {
    if !installed() {
        return;
    }
    let mut server = RedisServer::start();
    let s = store(&server, 0).await;
    let within = |want: bool| {
        let s = &s;
        async move {
            let deadline = Instant::now() + Duration::from_secs(8);
            while s.available() != want && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            s.available() == want
        }
    };
    assert!(within(true).await, "available with Redis up");
    server.kill();
    assert!(
        within(false).await,
        "unavailable within 8 s of Redis going away"
    );
    server.restart();
    assert!(
        within(true).await,
        "available again within 8 s of Redis coming back"
    );
}
