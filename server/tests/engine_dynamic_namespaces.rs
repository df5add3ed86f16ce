//! A dynamic namespace's life: it exists while it has sockets and comes back working, refused
//! CONNECTs to thousands of dynamic names leave nothing behind, a panicking disconnect handler
//! still frees it, and concurrent connects (and churn) on one new name share one instance.
//!
//! A real server on `127.0.0.1:0` in this process running the engine's test app
//! (`common::engine_app`), driven by the raw client of `tests/common`.

mod common;

use std::time::{Duration, Instant};

use chat_server::engine::Engine;
use common::Client;
use common::engine_app::{client, start_default};
use serde_json::json;

/// Waits (up to 5 s) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sockets in the registered namespace of that name (0 when it is not registered).
fn registered_sockets(engine: &Engine, nsp: &str) -> usize {
    engine
        .get_namespace(nsp)
        .map_or(0, |namespace| namespace.sockets().len())
}

#[tokio::test]
async fn refused_connects_to_dynamic_names_leave_no_namespace_behind() {
    let s = start_default().await;
    let engine = s.server.engine().clone();
    let statics = engine.namespaces().len();
    let mut c = Client::connect(s.addr()).await;
    // 3,000 distinct names the pattern matches and the middleware refuses, in batches (so
    // the answers never fill the connection's queue).
    const BATCH: usize = 250;
    for batch in 0..12 {
        let names = (batch * BATCH..(batch + 1) * BATCH).map(|i| format!("/locked-{i}"));
        for nsp in names.clone() {
            c.send(&format!("40{nsp},")).await;
        }
        for nsp in names {
            let p = c.recv_packet().await;
            assert_eq!(p.encode(), format!(r#"4{nsp},{{"message":"locked"}}"#));
        }
    }
    assert_eq!(
        engine.namespaces().len(),
        statics,
        "refused names were kept"
    );
    assert!(engine.get_namespace("/locked-7").is_none());

    // Admitted, the namespace exists while its socket does, and works.
    c.join_namespace("/locked-7", Some(json!({"key": "open"})))
        .await;
    assert_eq!(c.wait_event("hello").await["tag"], "locked");
    assert_eq!(registered_sockets(&engine, "/locked-7"), 1);
    assert_eq!(engine.namespaces().len(), statics + 1);
    c.call("/locked-7", "echo-ack", vec![json!(1)]).await;
    c.send("41/locked-7,").await;
    eventually("/locked-7 removed", || {
        engine.get_namespace("/locked-7").is_none()
    })
    .await;
    assert_eq!(engine.namespaces().len(), statics);
}

#[tokio::test]
async fn a_dynamic_namespace_lives_while_it_has_sockets_and_comes_back() {
    let s = start_default().await;
    let engine = s.server.engine().clone();
    let statics = engine.namespaces().len();
    let [mut a, mut b] = [
        Client::connect(s.addr()).await,
        Client::connect(s.addr()).await,
    ];
    for c in [&mut a, &mut b] {
        c.join_namespace("/team-7", None).await;
        c.wait_event("hello").await;
    }
    assert_eq!(registered_sockets(&engine, "/team-7"), 2);
    assert_eq!(engine.namespaces().len(), statics + 1);
    // A client DISCONNECT: b is still there, so is the namespace.
    a.send("41/team-7,").await;
    eventually("a left /team-7", || {
        registered_sockets(&engine, "/team-7") == 1
    })
    .await;
    // The last socket leaves with its connection: the namespace goes.
    b.close().await;
    eventually("/team-7 removed", || {
        engine.get_namespace("/team-7").is_none()
    })
    .await;
    assert_eq!(engine.namespaces().len(), statics);

    // Connecting again makes it again; rooms and broadcasts work in the new one.
    let mut c = Client::connect(s.addr()).await;
    for c in [&mut a, &mut c] {
        c.join_namespace("/team-7", None).await;
        c.wait_event("hello").await;
        c.call("/team-7", "join", vec![json!({"room": "r"})]).await;
    }
    assert_eq!(registered_sockets(&engine, "/team-7"), 2);
    a.call(
        "/team-7",
        "broadcast-room",
        vec![json!({"room": "r", "event": "in-r", "data": 1})],
    )
    .await;
    assert_eq!(c.wait_event("in-r").await, json!(1));
    let (_, before_ack) = a
        .call(
            "/team-7",
            "to-rooms",
            vec![json!({"rooms": [], "event": "to-all", "data": 2})],
        )
        .await;
    assert!(
        before_ack
            .iter()
            .any(|p| p.nsp == "/team-7" && p.event_name() == Some("to-all"))
    );
    assert_eq!(c.wait_event("to-all").await, json!(2));
    // A server-side disconnect and a client DISCONNECT empty it: gone again.
    c.call("/team-7", "kick", vec![]).await;
    assert_eq!(c.recv_text().await, "41/team-7,");
    a.send("41/team-7,").await;
    eventually("/team-7 removed again", || {
        engine.get_namespace("/team-7").is_none()
    })
    .await;
    assert_eq!(engine.namespaces().len(), statics);
}

#[tokio::test]
async fn a_panicking_disconnect_handler_still_frees_the_namespace() {
    let s = start_default().await;
    let engine = s.server.engine().clone();
    let statics = engine.namespaces().len();
    let (mut c, _) = client(s.addr()).await;
    c.join_namespace("/fragile-1", None).await;
    c.wait_event("hello").await;
    assert_eq!(registered_sockets(&engine, "/fragile-1"), 1);
    c.send("41/fragile-1,").await;
    // The connection survives its handler's panic, and the socket left all the same.
    c.call("/", "echo-ack", vec![json!(1)]).await;
    assert!(engine.get_namespace("/fragile-1").is_none());
    // And on a connection close.
    c.join_namespace("/fragile-1", None).await;
    c.wait_event("hello").await;
    c.close().await;
    eventually("/fragile-1 removed", || {
        engine.get_namespace("/fragile-1").is_none()
    })
    .await;
    assert_eq!(engine.namespaces().len(), statics);
}

#[tokio::test]
async fn concurrent_connects_to_one_new_dynamic_name_share_one_namespace() {
    let s = start_default().await;
    let engine = s.server.engine().clone();
    let statics = engine.namespaces().len();
    // Eight connections connect to a new name at once: one namespace holds them all.
    let joining: Vec<_> = (0..8)
        .map(|_| {
            let addr = s.addr();
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let sid = c.join_namespace("/team-500", None).await;
                c.wait_event("hello").await;
                (c, sid)
            })
        })
        .collect();
    let mut clients = Vec::new();
    for j in joining {
        clients.push(j.await.unwrap());
    }
    let namespace = engine.get_namespace("/team-500").expect("registered");
    assert_eq!(namespace.sockets().len(), 8);
    for (_, sid) in &clients {
        assert!(
            namespace.socket(sid).is_some(),
            "a socket outside the registered one"
        );
    }
    clients[0]
        .0
        .call(
            "/team-500",
            "broadcast",
            vec![json!({"event": "hi-all", "data": 3})],
        )
        .await;
    for (c, _) in &mut clients[1..] {
        assert_eq!(c.wait_event("hi-all").await, json!(3));
    }

    // Churn on one name: the namespace empties and comes back while connections keep
    // joining and leaving it; every socket must land in the registered instance.
    let churners: Vec<_> = (0..4)
        .map(|_| {
            let addr = s.addr();
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                for _ in 0..40 {
                    let sid = c.join_namespace("/team-501", None).await;
                    c.wait_event("hello").await;
                    let inside = engine
                        .get_namespace("/team-501")
                        .is_some_and(|namespace| namespace.socket(&sid).is_some());
                    assert!(
                        inside,
                        "a connected socket outside the registered namespace"
                    );
                    c.send("41/team-501,").await;
                }
                c.close().await;
            })
        })
        .collect();
    for task in churners {
        task.await.unwrap();
    }
    for (c, _) in clients {
        c.close().await;
    }
    for nsp in ["/team-500", "/team-501"] {
        eventually(&format!("{nsp} removed"), || {
            engine.get_namespace(nsp).is_none()
        })
        .await;
    }
    assert_eq!(engine.namespaces().len(), statics);
}
