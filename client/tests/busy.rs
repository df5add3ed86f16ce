//! The network actor backs off on `busy` (the server is short of password checks) and tries
//! again by itself, without reporting a refusal: a scripted server on loopback answers the
//! first two CONNECTs with `busy` and the third with success.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;

use chat_client::net::{self, NetCommand, NetConfig, NetEvent};
use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn busy_is_retried_with_a_growing_delay_and_no_refusal_is_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut ws = common::scripted_peer(listener).await;
        // When each CONNECT arrived.
        let mut connects = Vec::new();
        while connects.len() < 3 {
            let text = common::next_text(&mut ws).await;
            if !text.as_str().starts_with("40") {
                continue;
            }
            connects.push(Instant::now());
            let answer = if connects.len() < 3 {
                r#"44{"message":"the server is busy checking passwords: retry in a moment","data":{"code":"busy"}}"#
            } else {
                r#"40{"sid":"n1"}"#
            };
            ws.send(Message::text(answer)).await.unwrap();
        }
        // Keep the connection open until the client has seen the answer.
        tokio::time::sleep(Duration::from_millis(500)).await;
        connects
    });

    let (handle, mut rx, _task) = net::spawn(NetConfig::new(&format!("ws://{addr}"), "ada"));
    handle.send(NetCommand::Connect {
        nsp: "/".into(),
        key: None,
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("connected in time")
            .expect("the actor runs");
        match ev {
            NetEvent::NsConnected { nsp, .. } => {
                assert_eq!(nsp, "/");
                break;
            }
            NetEvent::NsRefused { code, .. } => panic!("busy was reported as a refusal: {code:?}"),
            _ => {}
        }
    }
    let connects = server.await.unwrap();
    let (first, second) = (connects[1] - connects[0], connects[2] - connects[1]);
    // 0.5 s then 1 s, each scaled by a jitter in [0.5, 1]; the actor checks every 250 ms.
    assert!(first >= Duration::from_millis(240), "{first:?}");
    assert!(second >= Duration::from_millis(490), "{second:?}");
    assert!(second < Duration::from_secs(3), "{second:?}");
    handle.send(NetCommand::Shutdown);
}
