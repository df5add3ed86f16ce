//! The admin API's routes (behind the bearer token, checked by the caller): JSON in, JSON
//! out. Every refusal is `{"error": code, "message": text}` with its HTTP status.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /api/namespaces` | | `{"namespaces":[{"name","sockets","users","rooms"}]}` (`sockets`: this node's; `users` and `rooms`: every node's) |
//! | `GET /api/rooms[?namespace=/ns]` | | `{"rooms":[{"namespace","room","members"}]}` |
//! | `GET /api/users` | | `{"users":[{"nick","node"?,"authenticated","away"?,"connections":[...]}]}` |
//! | `POST /api/kick` | `{"nick", "room"?, "namespace"?, "reason"?}` | `{"ok":true,"sockets":N,"elsewhere":bool}`; 404 `no_such_user` / `not_in_room` |
//! | `POST /api/ban` | `{"target", "room", "namespace"?, "duration_secs"?, "reason"?}` | `{"ok":true,"moderation":{...}}` (the event the room saw); 404 `no_such_namespace`; 400 with the chat's error code |
//! | `POST /api/notice` | `{"text", "room"?, "namespace"?}` | `{"ok":true,"delivered":N}` |
//!
//! With a `room`, a kick takes the user out of that room (announced to the room); without,
//! it disconnects the user. A notice goes to the room (of `namespace`, default `/`), to one
//! namespace, or, with neither, to every socket of every namespace. In cluster mode the
//! users and room counts are every node's (each user with its `node`; other nodes' as
//! their last heartbeat told), and kicks and bans reach every node.

use chat_protocol::http::query_param;
use serde::Deserialize;
use serde_json::json;

use super::{AdminState, Answer, Request};
use crate::chat::Failure;
use crate::chat::admin::{KickError, notice};
use crate::chat::moderation::Actor;

/// `POST /api/kick`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kick {
    nick: String,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/notice`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeRequest {
    text: String,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// `POST /api/ban`: a ban by nick (as the chat compares nicks) or by address, in one room,
/// made by the server admin "admin api" through the chat's moderation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ban {
    target: String,
    room: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    duration_secs: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

/// The longest kick reason kept (characters).
const MAX_REASON: usize = 200;

pub(super) async fn route(request: &Request<'_>, state: &AdminState) -> Answer {
    let path = request.path.trim_end_matches('/');
    match (request.method, path) {
        ("GET", "/api/namespaces") => namespaces(state).await,
        ("GET", "/api/rooms") => rooms(state, query_param(request.query, "namespace")).await,
        ("GET", "/api/users") => Answer::json(200, &json!({"users": state.app.list_users().await})),
        ("POST", "/api/kick") => match body::<Kick>(request.body) {
            Ok(kick) => self::kick(state, kick).await,
            Err(answer) => answer,
        },
        ("POST", "/api/ban") => match body::<Ban>(request.body) {
            Ok(ban) => self::ban(state, ban).await,
            Err(answer) => answer,
        },
        ("POST", "/api/notice") => match body::<NoticeRequest>(request.body) {
            Ok(n) => send_notice(state, n),
            Err(answer) => answer,
        },
        (_, "/api/namespaces" | "/api/rooms" | "/api/users") => Answer {
            extra: "Allow: GET, HEAD\r\n",
            ..Answer::error(405, "method_not_allowed", "use GET")
        },
        (_, "/api/kick" | "/api/ban" | "/api/notice") => Answer {
            extra: "Allow: POST\r\n",
            ..Answer::error(405, "method_not_allowed", "use POST")
        },
        _ => Answer::error(404, "not_found", "no such API path"),
    }
}

/// The JSON body as `T`, or the 400 that says what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(bytes)
        .map_err(|e| Answer::error(400, "bad_request", &format!("bad JSON body: {e}")))
}

async fn namespaces(state: &AdminState) -> Answer {
    let mut list = Vec::new();
    for ns in state.engine.namespaces() {
        let rooms = match state.app.room_counts(&ns).await {
            Ok(c) => c.len(),
            Err(e) => return Answer::error(503, "unavailable", &e.to_string()),
        };
        list.push(json!({
            "name": ns.name(),
            "sockets": ns.sockets().len(),
            "users": state.app.namespace_users(ns.name()),
            "rooms": rooms,
        }));
    }
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Answer::json(200, &json!({ "namespaces": list }))
}

async fn rooms(state: &AdminState, namespace: Option<&str>) -> Answer {
    let namespaces = match namespace {
        Some(name) => match state.engine.get_namespace(name) {
            Some(ns) => vec![ns],
            None => return Answer::error(404, "no_such_namespace", "no such namespace"),
        },
        None => state.engine.namespaces(),
    };
    let mut list = Vec::new();
    for ns in &namespaces {
        let counts = match state.app.room_counts(ns).await {
            Ok(c) => c,
            Err(e) => return Answer::error(503, "unavailable", &e.to_string()),
        };
        for (room, members) in counts {
            list.push(json!({"namespace": ns.name(), "room": room, "members": members}));
        }
    }
    list.sort_by(|a, b| {
        (a["namespace"].as_str(), a["room"].as_str())
            .cmp(&(b["namespace"].as_str(), b["room"].as_str()))
    });
    Answer::json(200, &json!({ "rooms": list }))
}

async fn kick(state: &AdminState, kick: Kick) -> Answer {
    let reason: String = kick
        .reason
        .as_deref()
        .unwrap_or("no reason given")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect();
    let namespace = kick.namespace.as_deref();
    let done = match kick.room.as_deref() {
        Some(room) => {
            state
                .app
                .kick_from_room(&state.engine, &kick.nick, namespace, room, &reason)
                .await
        }
        None => state.app.kick_off(&kick.nick, namespace).await,
    };
    match done {
        Ok(kicked) => {
            tracing::info!(nick = %kick.nick, room = ?kick.room, %reason, "admin kick");
            Answer::json(
                200,
                &json!({"ok": true, "sockets": kicked.sockets, "elsewhere": kicked.elsewhere}),
            )
        }
        Err(KickError::NoSuchUser) => {
            Answer::error(404, "no_such_user", "nobody with that nick is connected")
        }
        Err(KickError::NotInRoom) => {
            Answer::error(404, "not_in_room", "the user is not in that room")
        }
    }
}

async fn ban(state: &AdminState, ban: Ban) -> Answer {
    let namespace = ban.namespace.as_deref().unwrap_or("/");
    let Some(ns) = state.engine.get_namespace(namespace) else {
        return Answer::error(404, "no_such_namespace", "no such namespace");
    };
    let actor = Actor::admin("admin api");
    let reason = ban.reason.map(|r| {
        r.chars()
            .filter(|c| !c.is_control())
            .take(MAX_REASON)
            .collect::<String>()
    });
    match state
        .app
        .ban(
            &ns,
            &actor,
            &ban.room,
            &ban.target,
            ban.duration_secs,
            reason,
        )
        .await
    {
        Ok(moderation) => {
            tracing::info!(target = %ban.target, room = %ban.room, namespace, "admin ban");
            Answer::json(200, &json!({"ok": true, "moderation": moderation}))
        }
        Err(Failure(code, message)) => {
            let code = serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "internal".to_owned());
            let status = if code == "internal" { 500 } else { 400 };
            Answer::error(status, &code, &message)
        }
    }
}

fn send_notice(state: &AdminState, n: NoticeRequest) -> Answer {
    let length = n.text.chars().count();
    if n.text.trim().is_empty() || length > state.max_text_len {
        return Answer::error(
            400,
            "invalid_text",
            &format!("text must be 1 to {} characters", state.max_text_len),
        );
    }
    let namespace = match (&n.namespace, &n.room) {
        (Some(ns), _) => Some(ns.as_str()),
        (None, Some(_)) => Some("/"),
        (None, None) => None,
    };
    if let Some(ns) = namespace
        && state.engine.get_namespace(ns).is_none()
    {
        return Answer::error(404, "no_such_namespace", "no such namespace");
    }
    let delivered = notice(&state.engine, namespace, n.room.as_deref(), &n.text);
    tracing::info!(room = ?n.room, namespace = ?namespace, delivered, "admin notice");
    Answer::json(200, &json!({"ok": true, "delivered": delivered}))
}
