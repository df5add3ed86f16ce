//! Two clients chatting while a hostile test runs, and the small helpers they use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::Client;

/// A connection to `/` as `nick`, past its welcome notice.
pub async fn user(addr: SocketAddr, nick: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.join_namespace("/", Some(json!({ "nick": nick }))).await;
    c.wait_event("notice").await;
    c
}

pub async fn join(c: &mut Client, room: &str) -> Value {
    c.request("/", "join", json!({ "room": room })).await
}

/// Two clients chatting in `lobby` while a test runs: `alice` sends a message every 50 ms
/// (each acknowledged), `bob` reads everything. [`Bystanders::finish`] proves that every
/// message arrived at bob, in order.
pub struct Bystanders {
    stop: Arc<AtomicBool>,
    sender: JoinHandle<usize>,
    reader: JoinHandle<Vec<String>>,
}

pub async fn bystanders(addr: SocketAddr) -> Bystanders {
    let mut alice = user(addr, "alice").await;
    let mut bob = user(addr, "bob").await;
    assert_eq!(join(&mut alice, "lobby").await["ok"], true);
    assert_eq!(join(&mut bob, "lobby").await["ok"], true);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        // Bounded: at most 60 s of chatting.
        while !flag.load(Ordering::Relaxed) && sent < 3000 {
            sent += 1;
            let reply = alice
                .request(
                    "/",
                    "message",
                    json!({"room": "lobby", "text": format!("m{sent}")}),
                )
                .await;
            assert_eq!(reply["ok"], true, "bystander message refused: {reply}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reply = alice
            .request("/", "message", json!({"room": "lobby", "text": "end"}))
            .await;
        assert_eq!(reply["ok"], true);
        sent
    });
    let reader = tokio::spawn(async move {
        let mut texts = Vec::new();
        loop {
            let p = bob.recv_packet().await;
            if p.event_name() != Some("message") {
                continue;
            }
            let text = p.data.as_ref().and_then(|d| d[1]["text"].as_str()).unwrap();
            if text == "end" {
                return texts;
            }
            texts.push(text.to_owned());
        }
    });
    Bystanders {
        stop,
        sender,
        reader,
    }
}

impl Bystanders {
    pub async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.await.expect("bystander sender");
        let texts = self.reader.await.expect("bystander reader");
        let expected: Vec<String> = (1..=sent).map(|i| format!("m{i}")).collect();
        assert_eq!(texts, expected, "a bystander message was lost or reordered");
        assert!(sent > 0);
    }
}
