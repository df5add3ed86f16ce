//! Helpers for the chat application's tests: a server on `127.0.0.1:0`, users past their
//! welcome notice, requests with typed replies, and `pending` to prove what did NOT arrive
//! (a `ping` round trip: everything queued for the client before the ack arrives first).

use std::net::SocketAddr;

use chat_protocol::events::{
    self, ChatMessage, ConnectErrorData, ErrorBody, ErrorCode, JoinReply, MessageReply,
};
use chat_protocol::socket_io::{Packet, PacketKind};
use chat_server::{RunningServer, ServerConfig};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Client;

/// The default configuration on an ephemeral port.
pub fn config() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServerConfig::default()
    }
}

pub async fn serve(config: ServerConfig) -> (RunningServer, SocketAddr) {
    let server = chat_server::start(config).await.expect("server starts");
    let addr = server.local_addr();
    (server, addr)
}

pub async fn start() -> (RunningServer, SocketAddr) {
    serve(config()).await
}

/// A new connection, connected to `nsp` as `nick`, past its welcome notice.
pub async fn user_in(addr: SocketAddr, nsp: &str, nick: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.join_namespace(nsp, Some(json!({ "nick": nick }))).await;
    let notice = c.wait_event(events::server::NOTICE).await;
    assert!(
        notice["text"].as_str().expect("notice text").contains(nick),
        "welcome notice should greet {nick}: {notice}"
    );
    c
}

/// A new connection to `/` as `nick`.
pub async fn user(addr: SocketAddr, nick: &str) -> Client {
    user_in(addr, "/", nick).await
}

/// Asserts an `{ok:true}` ack and decodes it.
pub fn ok<T: DeserializeOwned>(reply: &Value) -> T {
    match events::parse_reply::<T>(reply) {
        Ok(v) => v,
        Err(e) => panic!("expected an ok reply, got {reply} ({e:?})"),
    }
}

/// Asserts an `{ok:false}` ack; returns its error.
pub fn failure(reply: &Value) -> ErrorBody {
    assert_eq!(
        reply["ok"],
        json!(false),
        "expected an error reply, got {reply}"
    );
    serde_json::from_value(reply["error"].clone()).expect("error body")
}

pub fn code(reply: &Value) -> ErrorCode {
    failure(reply).code
}

/// Asserts a CONNECT_ERROR; returns its message and the chat's error code, if any.
pub fn refused(p: &Packet) -> (String, Option<ErrorCode>) {
    assert_eq!(
        p.kind,
        PacketKind::ConnectError,
        "expected a refusal, got {p:?}"
    );
    let data = p.data.as_ref().expect("CONNECT_ERROR data");
    let message = data["message"]
        .as_str()
        .expect("CONNECT_ERROR message")
        .to_owned();
    let code = data.get("data").map(|d| {
        serde_json::from_value::<ConnectErrorData>(d.clone())
            .expect("CONNECT_ERROR data.code")
            .code
    });
    (message, code)
}

pub fn decode<T: DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("cannot decode {v}: {e}"))
}

pub async fn join(c: &mut Client, nsp: &str, room: &str) -> JoinReply {
    ok(&c.request(nsp, "join", json!({ "room": room })).await)
}

pub async fn say(c: &mut Client, nsp: &str, room: &str, text: &str) -> ChatMessage {
    ok::<MessageReply>(
        &c.request(nsp, "message", json!({ "room": room, "text": text }))
            .await,
    )
    .message
    .into_owned()
}

/// Sends a request and returns its reply with the events (name, first arg) that came first.
pub async fn call(
    c: &mut Client,
    nsp: &str,
    event: &str,
    arg: Value,
) -> (Value, Vec<(String, Value)>) {
    let (mut args, skipped) = c.call(nsp, event, vec![arg]).await;
    assert_eq!(args.len(), 1, "one reply object expected");
    (args.remove(0), named(skipped))
}

pub fn named(packets: Vec<Packet>) -> Vec<(String, Value)> {
    packets
        .into_iter()
        .filter_map(|p| {
            let name = p.event_name()?.to_owned();
            let arg = p
                .data
                .and_then(|d| d.get(1).cloned())
                .unwrap_or(Value::Null);
            Some((name, arg))
        })
        .collect()
}

/// Every event queued for `c` so far (name, first arg), proved by a `ping` round trip.
pub async fn pending(c: &mut Client) -> Vec<(String, Value)> {
    c.drain("/", "ping")
        .await
        .into_iter()
        .map(|(_, name, arg)| (name, arg))
        .collect()
}

pub fn count(events: &[(String, Value)], name: &str) -> usize {
    events.iter().filter(|(n, _)| n == name).count()
}

/// The texts of the `notice` events among `events`, in order.
pub fn notices(events: &[(String, Value)]) -> Vec<&str> {
    events
        .iter()
        .filter(|(n, _)| n == "notice")
        .filter_map(|(_, v)| v["text"].as_str())
        .collect()
}
