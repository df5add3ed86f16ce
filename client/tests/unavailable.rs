//! A chat message answered `unavailable` (in cluster mode, the server's Redis is down for a
//! moment) is sent again by the network actor, with the same `cid`, after a short delay and
//! on the same connection, and the application hears only the final answer: a scripted
//! server on loopback answers the first two sends `unavailable` and the third with the
//! stored message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;

use chat_client::net::{self, NetCommand, NetConfig, NetEvent, Request};
use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_message_answered_unavailable_is_sent_again_with_its_cid() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut ws = common::scripted_peer(listener).await;
        // (when, cid) of each `message` received.
        let mut sends: Vec<(Instant, String)> = Vec::new();
        let mut connects = 0;
        while sends.len() < 3 {
            let text = common::next_text(&mut ws).await;
            let text = text.as_str();
            if text.starts_with("40") {
                connects += 1;
                ws.send(Message::text(r#"40{"sid":"n1"}"#)).await.unwrap();
                continue;
            }
            let Some(rest) = text.strip_prefix("42") else {
                continue;
            };
            let split = rest.find('[').unwrap();
            let (id, body) = rest.split_at(split);
            let body: Value = serde_json::from_str(body).unwrap();
            if body[0] != "message" {
                continue;
            }
            sends.push((Instant::now(), body[1]["cid"].as_str().unwrap().to_owned()));
            let answer = if sends.len() < 3 {
                r#"[{"ok":false,"error":{"code":"unavailable","message":"storage unavailable: retry in a moment"}}]"#.to_owned()
            } else {
                r#"[{"ok":true,"message":{"id":"m1","room":"r","seq":7,"from":"ada","text":"hi","ts":1}}]"#.to_owned()
            };
            ws.send(Message::text(format!("43{id}{answer}")))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        (sends, connects)
    });

    let (handle, mut rx, _task) = net::spawn(NetConfig::new(&format!("ws://{addr}"), "ada"));
    handle.send(NetCommand::Connect {
        nsp: "/".into(),
        key: None,
    });
    handle.send(NetCommand::Request {
        nsp: "/".into(),
        request: Request::Message {
            room: "r".into(),
            text: "hi".into(),
            action: false,
        },
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("answered in time")
            .expect("the actor runs");
        if let NetEvent::Reply {
            request: Request::Message { .. },
            result,
            ..
        } = ev
        {
            assert!(
                result.is_ok(),
                "only the final answer is reported: {result:?}"
            );
            break;
        }
    }
    let (sends, connects) = server.await.unwrap();
    assert_eq!(connects, 1, "no reconnect");
    assert!(
        sends.iter().all(|(_, cid)| *cid == sends[0].1),
        "the same cid: {sends:?}"
    );
    let (first, second) = (sends[1].0 - sends[0].0, sends[2].0 - sends[1].0);
    // 0.5 s then 1 s, each scaled by a jitter in [0.5, 1]; the actor checks every 250 ms.
    assert!(first >= Duration::from_millis(240), "{first:?}");
    assert!(second >= Duration::from_millis(490), "{second:?}");
    handle.send(NetCommand::Shutdown);
}
