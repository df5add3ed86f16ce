//! Engine.IO long-polling: the handshake, Socket.IO over held GETs and POSTs (events, acks,
//! binary attachments as `b` + base64), the held GET's wake-ups (a broadcast, a ping), the
//! upgrade to WebSocket with nothing lost, duplicated or reordered, and every bound a hostile
//! client meets (413, unknown sids, concurrent requests, garbage bodies, slow heads, sessions
//! never polled, never answering pings or answering them blind, the per-IP and session limits). Timer tests run on
//! tokio's paused clock.

mod common;

use std::time::Duration;

use chat_protocol::socket_io::Packet;
use chat_server::engine::EngineConfig;
use common::engine_app::{client, start, start_default};
use common::polling::{Http, PollingClient, decode_payload, engine_path};
use common::{RECV_TIMEOUT, Seen};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// A polling client connected to `/` that has consumed its `hello`.
async fn polling_client(addr: std::net::SocketAddr) -> PollingClient {
    let mut p = PollingClient::connect(addr).await;
    p.join_namespace("/").await;
    p.wait_event("hello").await;
    p
}

/// Pings every 300 ms, answered within 200 ms (on the paused clock of the timer tests).
fn quick_pings() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        ..Default::default()
    }
}

/// The session is over: a GET gets the close packet (the session ended while it waited) or
/// 400 code 1 (it ended before), and the registry lets it go.
async fn assert_closed(p: &mut PollingClient, s: &common::engine_app::TestServer) {
    let path = p.path();
    let r = p.get.request("GET", &path, None).await;
    match r.status {
        200 => assert_eq!(decode_payload(&r.body).last(), Some(&Ok("1".to_owned()))),
        _ => assert_eq!(
            r.json(),
            json!({"code": 1, "message": "Session ID unknown"})
        ),
    }
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    while s.server.engine().polling_sessions() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "session not reaped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_handshake_answers_the_open_packet_with_the_websocket_upgrade() {
    let s = start_default().await;
    let mut http = Http::connect(s.addr()).await;
    let r = http.request("GET", &engine_path(None), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.head
            .contains("Content-Type: text/plain; charset=UTF-8\r\n"),
        "{r:?}"
    );
    let open: Value = serde_json::from_str(r.body.strip_prefix('0').unwrap()).unwrap();
    let keys: Vec<&String> = open.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "sid",
            "upgrades",
            "pingInterval",
            "pingTimeout",
            "maxPayload"
        ]
    );
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["sid"].as_str().unwrap().len(), 20);
    assert_eq!(s.server.engine().polling_sessions(), 1);
    // The same connection carries the next request (keep-alive): a second handshake.
    let r = http.request("GET", &engine_path(None), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.server.engine().polling_sessions(), 2);
}

#[tokio::test]
async fn a_namespace_an_event_and_an_ack_round_trip_over_polling() {
    let s = start_default().await;
    let mut p = PollingClient::connect(s.addr()).await;
    let sid = p.join_namespace("/").await;
    assert_eq!(sid.len(), 20);
    assert_eq!(p.wait_event("hello").await["tag"], "root");
    let args = p.call("/", "echo-ack", vec![json!({"n": 1})]).await;
    assert_eq!(args, [json!({"n": 1})]);
    // A WebSocket client and a polling one meet in the same broadcast.
    let (mut w, _) = client(s.addr()).await;
    w.call(
        "/",
        "broadcast",
        vec![json!({"event": "news", "data": "from ws"})],
    )
    .await;
    assert_eq!(p.wait_event("news").await, "from ws");
    p.call(
        "/",
        "broadcast",
        vec![json!({"event": "news", "data": "from polling"})],
    )
    .await;
    assert_eq!(w.wait_event("news").await, "from polling");
}

#[tokio::test]
async fn a_held_get_returns_on_a_broadcast() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    let path = p.path();
    p.get.send("GET", &path, None).await;
    // Held: nothing to send yet.
    let early = tokio::time::timeout(Duration::from_millis(200), p.get.try_response()).await;
    assert!(early.is_err(), "answered at once: {early:?}");
    let (mut w, _) = client(s.addr()).await;
    w.call("/", "broadcast", vec![json!({"event": "news", "data": 7})])
        .await;
    let r = p.get.response().await;
    let parts = decode_payload(&r.body);
    assert_eq!(parts, [Ok(r#"42["news",7]"#.to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn a_held_get_returns_with_the_ping_and_a_pong_keeps_the_session() {
    let s = start(quick_pings()).await;
    let mut p = polling_client(s.addr()).await;
    p.auto_pong = false;
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        assert_eq!(p.poll().await, [Ok("2".to_owned())]);
        assert!(started.elapsed() >= Duration::from_millis(250));
        p.send("3").await;
    }
    assert_eq!(s.server.engine().polling_sessions(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_session_that_polls_but_never_answers_pings_is_closed_at_the_ping_timeout() {
    let s = start(quick_pings()).await;
    let mut p = polling_client(s.addr()).await;
    p.auto_pong = false;
    let started = tokio::time::Instant::now();
    assert_eq!(p.poll().await, [Ok("2".to_owned())]);
    // The next GET is held until the session closes: then the close packet.
    assert_eq!(p.poll().await, [Ok("1".to_owned())]);
    assert!(started.elapsed() >= Duration::from_millis(480));
    assert_eq!(s.server.engine().polling_sessions(), 0);
    let r = p.get.request("GET", &p.path(), None).await;
    assert_eq!(
        r.json(),
        json!({"code": 1, "message": "Session ID unknown"})
    );
}

#[tokio::test(start_paused = true)]
async fn pongs_sent_blind_do_not_keep_a_session_that_never_polls() {
    let s = start(quick_pings()).await;
    let mut p = polling_client(s.addr()).await;
    // No GET from here on: the pings stay queued, and a pong every 100 ms answers none.
    let started = tokio::time::Instant::now();
    let mut refused = None;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = p.post_raw(b"3").await;
        if r.status != 200 {
            refused = Some(r.json());
            break;
        }
    }
    assert_eq!(
        refused,
        Some(json!({"code": 1, "message": "Session ID unknown"})),
        "the session outlived 3 s of blind pongs"
    );
    // Closed at the first ping's timeout (300 + 200 ms), not later.
    assert!(
        started.elapsed() <= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.server.engine().polling_sessions(), 0);
}

#[tokio::test]
async fn binary_attachments_travel_as_base64_both_ways() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    p.send_parts(&[
        Ok(r#"451-["echo",{"_placeholder":true,"num":0}]"#),
        Err(&[0, 1, 2, 255]),
    ])
    .await;
    assert_eq!(
        p.recv_text().await,
        r#"451-["echo-back",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(p.next().await, Err(vec![0, 1, 2, 255]));
    // An attachment split from its packet across two POSTs is joined too.
    p.send(r#"451-["echo",{"_placeholder":true,"num":0}]"#)
        .await;
    p.send_parts(&[Err(b"later")]).await;
    p.recv_text().await;
    assert_eq!(p.next().await, Err(b"later".to_vec()));
}

#[tokio::test]
async fn a_close_packet_ends_the_session_and_the_held_get_gets_a_noop() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    // A GET is held when the client's `1` comes: it answers a noop (the reference server's
    // answer, which the official test-suite checks), not the close packet.
    let path = p.path();
    p.get.send("GET", &path, None).await;
    let early = tokio::time::timeout(Duration::from_millis(100), p.get.try_response()).await;
    assert!(early.is_err(), "answered at once: {early:?}");
    p.send("1").await;
    let r = p.get.response().await;
    assert_eq!((r.status, r.body.as_str()), (200, "6"), "{r:?}");
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    while s.server.engine().polling_sessions() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "session not closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = p.get.request("GET", &path, None).await;
    assert_eq!(
        r.json(),
        json!({"code": 1, "message": "Session ID unknown"})
    );
}

/// The WebSocket side of an upgrade, connected with `sid`.
async fn upgrade_socket(
    addr: std::net::SocketAddr,
    sid: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&sid={sid}");
    let (ws, _) = tokio::time::timeout(RECV_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("upgrade accepted");
    ws
}

async fn ws_text<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(RECV_TIMEOUT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_upgrade_loses_duplicates_and_reorders_nothing() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    assert_eq!(p.call("/", "transport", vec![]).await, [json!("Polling")]);
    let (mut w, _) = client(s.addr()).await;
    let mut sent = 0;
    let send = async |w: &mut common::Client, n: &mut i32, count: i32| {
        for _ in 0..count {
            w.call("/", "broadcast", vec![json!({"event": "seq", "data": *n})])
                .await;
            *n += 1;
        }
    };
    let mut seen: Vec<i64> = Vec::new();
    let collect = |seen: &mut Vec<i64>, text: &str| {
        if let Some(body) = text.strip_prefix('4') {
            let p = Packet::decode(body).unwrap();
            if p.event_name() == Some("seq") {
                seen.push(p.data.unwrap()[1].as_i64().unwrap());
            }
        }
    };
    // Some arrive over polling before the probe.
    send(&mut w, &mut sent, 5).await;
    for part in p.poll().await {
        collect(&mut seen, &part.unwrap());
    }
    // A GET is held while the WebSocket probes; more are broadcast meanwhile.
    let path = p.path();
    p.get.send("GET", &path, None).await;
    let mut ws = upgrade_socket(s.addr(), &p.sid).await;
    send(&mut w, &mut sent, 5).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(ws_text(&mut ws).await, "3probe");
    send(&mut w, &mut sent, 5).await;
    // The held GET answers, ending with a noop; later GETs answer at once until the upgrade.
    let mut noop = false;
    for _ in 0..20 {
        let r = p.get.response().await;
        for part in decode_payload(&r.body) {
            let part = part.unwrap();
            noop |= part == "6";
            collect(&mut seen, &part);
        }
        if noop {
            break;
        }
        p.get.send("GET", &path, None).await;
    }
    assert!(noop, "the GET got its noop");
    send(&mut w, &mut sent, 5).await;
    ws.send(Message::text("5")).await.unwrap();
    send(&mut w, &mut sent, 5).await;
    for _ in 0..1000 {
        if seen.len() as i32 >= sent {
            break;
        }
        let t = ws_text(&mut ws).await;
        if t == "2" {
            ws.send(Message::text("3")).await.unwrap();
        }
        collect(&mut seen, &t);
    }
    assert_eq!(seen, (0..sent as i64).collect::<Vec<_>>());
    // The session's events flow over the WebSocket both ways now.
    ws.send(Message::text(r#"420["echo-ack","up"]"#))
        .await
        .unwrap();
    assert_eq!(ws_text(&mut ws).await, r#"430["up"]"#);
    ws.send(Message::text(r#"422["transport"]"#)).await.unwrap();
    assert_eq!(ws_text(&mut ws).await, r#"432["WebSocket"]"#);
    // HTTP with the sid: 400; a second WebSocket with it: accepted, then closed at once.
    let r = p.get.request("GET", &path, None).await;
    assert_eq!(r.status, 400, "{r:?}");
    let mut post = Http::connect(s.addr()).await;
    let r = post.request("POST", &path, Some(b"6")).await;
    assert_eq!(r.status, 400, "{r:?}");
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&sid={}",
        s.addr(),
        p.sid
    );
    let (mut second, _) = tokio::time::timeout(RECV_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("the handshake is accepted");
    let first = tokio::time::timeout(RECV_TIMEOUT, second.next())
        .await
        .expect("closed in time");
    let Some(Ok(Message::Close(Some(frame)))) = first else {
        panic!("a close frame, got {first:?}");
    };
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1008, "transport mismatch")
    );
    // Still one session, still alive.
    assert_eq!(s.server.engine().polling_sessions(), 1);
    ws.send(Message::text(r#"421["echo-ack","still"]"#))
        .await
        .unwrap();
    assert_eq!(ws_text(&mut ws).await, r#"431["still"]"#);
}

#[tokio::test]
async fn a_failed_probe_leaves_the_session_polling() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    let mut ws = upgrade_socket(s.addr(), &p.sid).await;
    ws.send(Message::text("2nope")).await.unwrap();
    drop(ws);
    let args = p.call("/", "echo-ack", vec![json!("polling")]).await;
    assert_eq!(args, [json!("polling")]);
}

#[tokio::test]
async fn a_post_over_max_payload_gets_413_and_ends_the_session() {
    let s = start(EngineConfig {
        max_payload: 1000,
        ..Default::default()
    })
    .await;
    let mut p = polling_client(s.addr()).await;
    let big = format!(r#"42["echo-ack","{}"]"#, "x".repeat(1000));
    let r = p.post_raw(big.as_bytes()).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_closed(&mut p, &s).await;
}

#[tokio::test]
async fn unknown_and_guessed_sids_get_400_code_1() {
    let s = start_default().await;
    let real = polling_client(s.addr()).await;
    let mut http = Http::connect(s.addr()).await;
    let mut guess = real.sid.clone();
    guess.replace_range(19.., if real.sid.ends_with('A') { "B" } else { "A" });
    for sid in ["nope", guess.as_str(), &"A".repeat(20), &"x".repeat(65)] {
        let r = http.request("GET", &engine_path(Some(sid)), None).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(
            r.json(),
            json!({"code": 1, "message": "Session ID unknown"})
        );
        // A refusal closes the connection.
        assert!(http.closed().await);
        http = Http::connect(s.addr()).await;
    }
    let r = http
        .request("POST", &engine_path(Some("nope")), Some(b"6"))
        .await;
    assert_eq!(r.json()["code"], 1);
}

#[tokio::test]
async fn a_second_concurrent_get_gets_400_and_closes_the_session() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    let path = p.path();
    p.get.send("GET", &path, None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = Http::connect(s.addr()).await;
    let r = second.request("GET", &path, None).await;
    assert_eq!(r.status, 400, "{r:?}");
    // The first GET learns the session is closed.
    let r = p.get.response().await;
    assert_eq!(decode_payload(&r.body).last(), Some(&Ok("1".to_owned())));
    assert_closed(&mut p, &s).await;
}

#[tokio::test]
async fn a_second_concurrent_post_gets_400_and_closes_the_session() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    let path = p.path();
    // A POST whose body is still coming...
    p.post
        .tcp
        .write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n42").as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...and another one.
    let mut second = Http::connect(s.addr()).await;
    let r = second.request("POST", &path, Some(b"6")).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_closed(&mut p, &s).await;
}

#[tokio::test]
async fn a_garbage_post_body_gets_400_and_closes_the_session() {
    for body in [&b"b!!!"[..], b"", b"4\x1e\x1e4", b"\xff\xfe"] {
        let s = start_default().await;
        let mut p = polling_client(s.addr()).await;
        let r = p.post_raw(body).await;
        assert_eq!(r.status, 400, "{body:?}: {r:?}");
        assert_closed(&mut p, &s).await;
    }
    // A payload that decodes but whose packet does not: answered `ok`, then the session
    // closes like a WebSocket one would.
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    let r = p.post_raw(b"9nonsense").await;
    assert_eq!(r.status, 200);
    assert_closed(&mut p, &s).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_sent_one_byte_a_second_is_dropped_at_the_head_timeout() {
    let s = start(EngineConfig {
        handshake_timeout: Duration::from_secs(3),
        ..Default::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    let mut http = Http::connect(s.addr()).await;
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", engine_path(None));
    let mut dropped = false;
    for byte in request.as_bytes() {
        if http.tcp.write_all(&[*byte]).await.is_err() {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let _ = dropped;
    assert!(http.try_response().await.is_none(), "no answer");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(s.server.engine().polling_sessions(), 0);
    // The next request on a kept-alive connection has the same bound.
    let mut http = Http::connect(s.addr()).await;
    let r = http.request("GET", &engine_path(None), None).await;
    assert_eq!(r.status, 200);
    let started = tokio::time::Instant::now();
    http.tcp.write_all(b"GET /socket.io/").await.unwrap();
    assert!(http.try_response().await.is_none());
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_thousand_handshakes_never_polled_are_reaped_while_a_steady_client_chats() {
    let s = start(EngineConfig {
        max_connections_per_ip: 2000,
        ..quick_pings()
    })
    .await;
    let mut steady = polling_client(s.addr()).await;
    let mut http = Http::connect(s.addr()).await;
    for _ in 0..1000 {
        let r = http.request("GET", &engine_path(None), None).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(s.server.engine().polling_sessions(), 1001);
    // The steady client keeps polling (and answering pings) for a few intervals.
    let started = tokio::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let args = steady.call("/", "echo-ack", vec![json!(n)]).await;
        assert_eq!(args, [json!(n)]);
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.server.engine().polling_sessions(), 1);
    let args = steady.call("/", "echo-ack", vec![json!("still")]).await;
    assert_eq!(args, [json!("still")]);
}

#[tokio::test]
async fn sessions_count_per_ip_from_the_handshake_and_in_all() {
    let s = start(EngineConfig {
        max_connections_per_ip: 2,
        ..Default::default()
    })
    .await;
    let mut a = polling_client(s.addr()).await;
    let _b = polling_client(s.addr()).await;
    let mut http = Http::connect(s.addr()).await;
    let r = http.request("GET", &engine_path(None), None).await;
    assert_eq!(r.status, 429, "{r:?}");
    // The sessions' own requests are not connections that count: they go on.
    let args = a.call("/", "echo-ack", vec![json!(1)]).await;
    assert_eq!(args, [json!(1)]);
    let s = start(EngineConfig {
        max_connections: 3,
        ..Default::default()
    })
    .await;
    let mut http = Http::connect(s.addr()).await;
    for _ in 0..3 {
        assert_eq!(
            http.request("GET", &engine_path(None), None).await.status,
            200
        );
    }
    let r = http.request("GET", &engine_path(None), None).await;
    assert_eq!(r.status, 503, "{r:?}");
}

#[tokio::test]
async fn a_websocket_session_still_opens_without_upgrades() {
    let s = start_default().await;
    let (c, _) = client(s.addr()).await;
    assert_eq!(c.open["upgrades"], json!([]));
    // Nor can a WebSocket session's sid be used to poll.
    let mut http = Http::connect(s.addr()).await;
    let sid = c.open["sid"].as_str().unwrap();
    let r = http.request("GET", &engine_path(Some(sid)), None).await;
    assert_eq!(r.json()["code"], 1);
    let _ = Seen::Text(String::new());
}

#[tokio::test]
async fn connections_count_per_ip_apart_from_sessions() {
    let s = start(EngineConfig {
        max_connections_per_ip: 1,
        ..Default::default()
    })
    .await;
    // One session on two connections (GET and POST).
    let mut p = polling_client(s.addr()).await;
    // A third connection is allowed (a client's WebSocket for the upgrade), but no second
    // session on it.
    let mut third = Http::connect(s.addr()).await;
    let r = third.request("GET", &engine_path(None), None).await;
    assert_eq!(r.status, 429, "{r:?}");
    // Idle connections count too: beyond three per allowed session, refused.
    let _a = Http::connect(s.addr()).await;
    let _b = Http::connect(s.addr()).await;
    let mut fourth = Http::connect(s.addr()).await;
    let r = fourth.request("GET", &p.path(), None).await;
    assert_eq!(
        r.json(),
        json!({"code": 4, "message": "Too many connections"})
    );
    // The session itself is unaffected.
    assert_eq!(p.call("/", "echo-ack", vec![json!(1)]).await, [json!(1)]);
}

#[tokio::test]
async fn shutdown_answers_the_held_get_and_waits_for_every_session() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    let path = p.path();
    p.get.send("GET", &path, None).await;
    // A second session, never polled, and an idle kept-alive connection.
    let mut idle = Http::connect(s.addr()).await;
    assert_eq!(
        idle.request("GET", &engine_path(None), None).await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let common::engine_app::TestServer { server, .. } = s;
    tokio::time::timeout(RECV_TIMEOUT, server.shutdown())
        .await
        .expect("shutdown waits for no client");
    let r = p.get.response().await;
    assert_eq!(decode_payload(&r.body).last(), Some(&Ok("1".to_owned())));
    assert!(idle.closed().await);
}

#[tokio::test]
async fn an_upgrade_waits_for_a_post_under_way_and_keeps_its_packets_first() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    let path = p.path();
    let body = br#"420["echo-ack","first"]"#;
    p.post
        .tcp
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    p.post.tcp.write_all(&body[..5]).await.unwrap();
    let mut ws = upgrade_socket(s.addr(), &p.sid).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(ws_text(&mut ws).await, "3probe");
    ws.send(Message::text("5")).await.unwrap();
    ws.send(Message::text(r#"421["echo-ack","second"]"#))
        .await
        .unwrap();
    // Nothing moves while the POST is under way...
    let early = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
    assert!(early.is_err(), "{early:?}");
    // ...then its packet is handled first, and the WebSocket's after it.
    p.post.tcp.write_all(&body[5..]).await.unwrap();
    let r = p.post.response().await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    assert_eq!(ws_text(&mut ws).await, r#"430["first"]"#);
    assert_eq!(ws_text(&mut ws).await, r#"431["second"]"#);
}

#[tokio::test]
async fn a_client_that_hangs_up_on_its_held_get_ends_the_session() {
    let s = start_default().await;
    let mut p = polling_client(s.addr()).await;
    let path = p.path();
    p.get.send("GET", &path, None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(std::mem::replace(&mut p.get, Http::connect(s.addr()).await));
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    while s.server.engine().polling_sessions() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "session not closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_closed(&mut p, &s).await;
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_holds_over_polling_across_one_post() {
    let s = start(EngineConfig {
        rate_burst: 2,
        rate_per_sec: 1,
        ..Default::default()
    })
    .await;
    let mut p = polling_client(s.addr()).await;
    // The CONNECT took one token; of three events in one POST, the first has the other, the
    // second is refused, and the third waits for the next token (reading pauses).
    p.send_parts(&[
        Ok(r#"420["echo-ack","a"]"#),
        Ok(r#"421["echo-ack","b"]"#),
        Ok(r#"422["echo-ack","c"]"#),
    ])
    .await;
    let mut acks = Vec::new();
    while acks.len() < 3 {
        acks.push(p.recv_text().await);
    }
    assert_eq!(
        acks,
        [
            r#"430["a"]"#,
            r#"431[{"error":"rate limit exceeded"}]"#,
            r#"432["c"]"#
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_that_never_connects_a_namespace_is_closed_at_the_connect_timeout() {
    let s = start(EngineConfig {
        connect_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut p = PollingClient::connect(s.addr()).await;
    let started = tokio::time::Instant::now();
    assert_eq!(p.poll().await, [Ok("1".to_owned())]);
    assert!(started.elapsed() >= Duration::from_millis(280));
    assert_closed(&mut p, &s).await;
}
