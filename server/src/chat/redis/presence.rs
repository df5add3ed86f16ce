//! This node's users and room counts for the other nodes, and theirs for this one
//! (`chat::presence`). Each node keeps three hashes, written on its heartbeat with the
//! heartbeat's time to live (so a dead node's vanish with it):
//!
//! - `chat:{nicks}:users:<node>`: nick key -> [`UserPresence`] JSON;
//! - `chat:{nicks}:rooms:<node>`: `<ns>\n<room>` -> member count;
//! - `chat:{nicks}:namespaces:<node>`: namespace -> users connected to it there.
//!
//! After writing, a beat reads the other live nodes' namespace hashes (one small `HGETALL`
//! each) into [`RemoteNamespaces`], so the welcome notice's "N users online" counts every
//! node without a Redis read per connection. A `rooms` request reads the other nodes' room
//! hashes, at most once per 2 s however many ask ([`RemoteRoomCounts`]).
//!
//! A beat writes only the fields that changed since the last (one `HSET` and one `HDEL` per
//! hash, in chunks), then renews the time to live; a hash found gone (Redis restarted, or a
//! write failed) is written whole on the next beat. So an idle node writes two `PEXPIRE`s
//! per beat, and a busy one at most one write per changed user per beat, never one per
//! chat message: idle times and away reasons seen from another node are at most a
//! heartbeat (2 s) old.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::Conn;
use std::time::{Duration, Instant};

use super::keys::{namespaces_key, node_key, room, rooms_key, users_key};
use super::roster::{NODES, presence_key};
use crate::chat::presence::{RemoteUser, Snapshot, UserPresence};

/// Fields written per command, at most.
const CHUNK: usize = 500;

fn room_field(namespace: &str, room: &str) -> String {
    format!("{namespace}\n{room}")
}

/// What this node last wrote to one of its hashes (`None`: unknown, write it whole).
#[derive(Default)]
pub(super) struct Written(Option<HashMap<String, String>>);

/// What this node last wrote: its users, its rooms and its namespaces' user counts.
#[derive(Default)]
pub(super) struct Published {
    users: Written,
    rooms: Written,
    namespaces: Written,
}

/// The other live nodes' users per namespace, summed, as of the last heartbeat.
pub(super) type RemoteNamespaces = std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>>;

/// Writes what changed in this node's snapshot since the last beat; the hashes live `ttl`.
pub(super) async fn publish(
    conn: &mut Conn,
    node: &str,
    snapshot: Snapshot,
    last: &mut Published,
    ttl: Duration,
) {
    let users: HashMap<String, String> = snapshot
        .users
        .into_iter()
        .filter_map(|(key, p)| serde_json::to_string(&p).ok().map(|json| (key, json)))
        .collect();
    let rooms: HashMap<String, String> = snapshot
        .rooms
        .into_iter()
        .map(|(ns, room, n)| (room_field(&ns, &room), n.to_string()))
        .collect();
    let namespaces: HashMap<String, String> = snapshot
        .namespaces
        .into_iter()
        .map(|(ns, n)| (ns, n.to_string()))
        .collect();
    sync(conn, &users_key(node), users, &mut last.users, ttl).await;
    sync(conn, &rooms_key(node), rooms, &mut last.rooms, ttl).await;
    sync(
        conn,
        &namespaces_key(node),
        namespaces,
        &mut last.namespaces,
        ttl,
    )
    .await;
}

/// Reads the other live nodes' users per namespace into `into` (left as it was when Redis
/// does not answer).
pub(super) async fn refresh_namespaces(conn: &mut Conn, me: &str, into: &RemoteNamespaces) {
    let read = async {
        let mut sums: HashMap<String, usize> = HashMap::new();
        for node in live_nodes(conn, me).await? {
            let all: HashMap<String, usize> = conn.hgetall(namespaces_key(&node)).await?;
            for (ns, n) in all {
                *sums.entry(ns).or_default() += n;
            }
        }
        redis::RedisResult::Ok(sums)
    };
    match read.await {
        Ok(sums) => *crate::engine::lock(into) = sums,
        Err(e) => tracing::warn!(error = %e, "cannot read the other nodes' user counts"),
    }
}

/// Makes the hash at `key` hold `now`, writing the difference from `last`.
async fn sync(
    conn: &mut Conn,
    key: &str,
    now: HashMap<String, String>,
    last: &mut Written,
    ttl: Duration,
) {
    let r = write(conn, key, &now, last.0.as_ref(), ttl).await;
    last.0 = match r {
        Ok(true) => Some(now),
        // Gone while this node thought it held something: written whole next beat.
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the cluster this node's users and rooms");
            None
        }
    };
}

/// Writes the changes; false when the hash was found missing though not empty.
async fn write(
    conn: &mut Conn,
    key: &str,
    now: &HashMap<String, String>,
    last: Option<&HashMap<String, String>>,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let empty = HashMap::new();
    let before = match last {
        Some(l) => l,
        None => {
            let _: () = conn.del(key).await?;
            &empty
        }
    };
    let changed: Vec<(&String, &String)> = now
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .collect();
    let gone: Vec<&String> = before.keys().filter(|k| !now.contains_key(*k)).collect();
    for chunk in changed.chunks(CHUNK) {
        let _: () = conn.hset_multiple(key, chunk).await?;
    }
    for chunk in gone.chunks(CHUNK) {
        let _: () = conn.hdel(key, chunk).await?;
    }
    if now.is_empty() {
        return Ok(true);
    }
    let kept: bool = conn.pexpire(key, ttl.as_millis() as i64).await?;
    Ok(kept)
}

/// The other nodes whose heartbeat is alive.
async fn live_nodes(conn: &mut Conn, me: &str) -> redis::RedisResult<Vec<String>> {
    let nodes: Vec<String> = conn.smembers(NODES).await?;
    let mut live = Vec::new();
    for node in nodes.into_iter().filter(|n| n != me) {
        let up: bool = conn.exists(node_key(&node)).await?;
        if up {
            live.push(node);
        }
    }
    live.sort();
    Ok(live)
}

fn decode(json: &str) -> Option<UserPresence> {
    serde_json::from_str(json).ok()
}

/// `nick_key` on each other live node, with those of `rooms` (of `namespace`) it is in.
pub(super) async fn user(
    conn: &mut Conn,
    me: &str,
    nick_key: &str,
    namespace: &str,
    rooms: &[String],
) -> redis::RedisResult<Vec<RemoteUser>> {
    let mut out = Vec::new();
    for node in live_nodes(conn, me).await? {
        let found: Option<String> = conn.hget(users_key(&node), nick_key).await?;
        let Some(presence) = found.as_deref().and_then(decode) else {
            continue;
        };
        let mut shared = Vec::new();
        let member = format!("{node}\n{}", presence.nick);
        for r in rooms {
            let inside: bool = conn.sismember(room(namespace, r).members, &member).await?;
            if inside {
                shared.push((namespace.to_owned(), r.clone()));
            }
        }
        out.push(RemoteUser {
            node,
            presence,
            rooms: shared,
        });
    }
    Ok(out)
}

/// Every user of every other live node, with all its rooms there (from the roster).
pub(super) async fn users(conn: &mut Conn, me: &str) -> redis::RedisResult<Vec<RemoteUser>> {
    let mut out = Vec::new();
    for node in live_nodes(conn, me).await? {
        let all: HashMap<String, String> = conn.hgetall(users_key(&node)).await?;
        let memberships: Vec<String> = conn.smembers(presence_key(&node)).await?;
        let mut rooms_of: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for m in &memberships {
            let mut parts = m.splitn(3, '\n');
            if let (Some(ns), Some(room), Some(nick)) = (parts.next(), parts.next(), parts.next()) {
                rooms_of
                    .entry(nick)
                    .or_default()
                    .push((ns.to_owned(), room.to_owned()));
            }
        }
        for json in all.values() {
            let Some(presence) = decode(json) else {
                continue;
            };
            let mut rooms = rooms_of.remove(presence.nick.as_str()).unwrap_or_default();
            rooms.sort();
            out.push(RemoteUser {
                node: node.clone(),
                presence,
                rooms,
            });
        }
    }
    Ok(out)
}

/// The nicks of a room on other live nodes who are away there.
pub(super) async fn away(
    conn: &mut Conn,
    me: &str,
    namespace: &str,
    room_name: &str,
) -> redis::RedisResult<Vec<String>> {
    let members: Vec<String> = conn.smembers(room(namespace, room_name).members).await?;
    let mut by_node: HashMap<&str, Vec<String>> = HashMap::new();
    for m in &members {
        if let Some((node, nick)) = m.split_once('\n')
            && node != me
        {
            by_node
                .entry(node)
                .or_default()
                .push(chat_protocol::names::nick_key(nick));
        }
    }
    let mut out = Vec::new();
    for (node, keys) in by_node {
        for chunk in keys.chunks(CHUNK) {
            let found: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(users_key(node))
                .arg(chunk)
                .query_async(conn)
                .await?;
            out.extend(
                found
                    .iter()
                    .flatten()
                    .filter_map(|j| decode(j))
                    .filter(|p| p.away.is_some())
                    .map(|p| p.nick),
            );
        }
    }
    Ok(out)
}

/// How long the other nodes' room counts, once read, answer `rooms` requests: their hashes
/// change only on their heartbeat (2 s), so a fresher read would tell nothing more.
const ROOM_COUNTS_FRESH: Duration = Duration::from_secs(2);

/// The other live nodes' room member counts (namespace -> room -> members), read from Redis
/// at most once per [`ROOM_COUNTS_FRESH`] however many `rooms` requests come (requests
/// meanwhile wait for the one read), so a client sending `rooms` at its event rate costs
/// Redis nothing more.
#[derive(Default)]
pub(super) struct RemoteRoomCounts(tokio::sync::Mutex<Option<(Instant, RoomCountsByNamespace)>>);

type RoomCountsByNamespace = HashMap<String, HashMap<String, usize>>;

impl RemoteRoomCounts {
    /// The rooms of `namespace` with their members on the other live nodes.
    pub(super) async fn of(
        &self,
        conn: &mut Conn,
        me: &str,
        namespace: &str,
    ) -> redis::RedisResult<Vec<(String, usize)>> {
        let mut cached = self.0.lock().await;
        if !matches!(&*cached, Some((at, _)) if at.elapsed() < ROOM_COUNTS_FRESH) {
            *cached = Some((Instant::now(), all_room_counts(conn, me).await?));
        }
        Ok(cached
            .as_ref()
            .and_then(|(_, by_ns)| by_ns.get(namespace))
            .map(|rooms| rooms.iter().map(|(r, n)| (r.clone(), *n)).collect())
            .unwrap_or_default())
    }
}

/// Every room of the other live nodes with its members there, by namespace.
async fn all_room_counts(conn: &mut Conn, me: &str) -> redis::RedisResult<RoomCountsByNamespace> {
    let mut sums = RoomCountsByNamespace::new();
    for node in live_nodes(conn, me).await? {
        let all: HashMap<String, usize> = conn.hgetall(rooms_key(&node)).await?;
        for (field, n) in all {
            if let Some((namespace, room)) = field.split_once('\n') {
                *sums
                    .entry(namespace.to_owned())
                    .or_default()
                    .entry(room.to_owned())
                    .or_default() += n;
            }
        }
    }
    Ok(sums)
}
