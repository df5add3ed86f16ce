//! Who is in which room on this node, kept in Redis so that when this node dies another
//! tells the rooms' members on every node that its users are gone. Each node keeps a set
//! `chat:{nicks}:presence:<node>` of `<ns>\n<room>\n<nick>` (written in order by one task) and
//! is listed in `chat:{nicks}:nodes`; on every heartbeat each node looks for listed nodes
//! whose heartbeat key expired, and the first to take a node's reaping lock hands each entry
//! to the gone hook (a `quit` presence to the room, published to every node), then forgets
//! the dead node.
//!
//! A node taken for dead while it was alive (its heartbeat stalled past the key's time to
//! live, and another node reaped it) finds itself no longer listed on its next heartbeat:
//! it writes every membership again and tells each room its users are back (the back hook:
//! a `join` presence), so the cluster's view of it heals within a heartbeat.

use std::sync::{Arc, OnceLock};

use redis::AsyncCommands;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::Conn;

/// Tells a room's members that `nick`, a user of `node`, is gone (`false`: `node` was
/// reaped) or back (`true`: `node` found itself reaped while alive): (namespace, room, nick,
/// node, back). Every node but `node` tells its own members.
pub type Gone = Arc<dyn Fn(&str, &str, &str, &str, bool) + Send + Sync>;

/// What the roster's writer is told, in order.
pub(super) enum Change {
    /// This node's room membership changed: (namespace, room, nick, inside).
    Member(String, String, String, bool),
    /// This node was reaped while alive: write every membership again, and tell the rooms.
    Rewrite,
}

pub(super) const NODES: &str = "chat:{nicks}:nodes";

pub(super) fn presence_key(node: &str) -> String {
    format!("chat:{{nicks}}:presence:{node}")
}

/// A member of a room's `members` set: `<node>\n<nick>`.
fn room_member(node: &str, nick: &str) -> String {
    format!("{node}\n{nick}")
}

/// The nicks in a room on live nodes other than `me`.
pub(super) async fn remote_members(
    conn: &mut Conn,
    me: &str,
    namespace: &str,
    room: &str,
) -> redis::RedisResult<Vec<String>> {
    let all: Vec<String> = conn
        .smembers(super::keys::room(namespace, room).members)
        .await?;
    let mut alive: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for m in all {
        let Some((node, nick)) = m.split_once('\n') else {
            continue;
        };
        if node == me {
            continue;
        }
        if !alive.contains_key(node) {
            let up: bool = conn.exists(super::keys::node_key(node)).await?;
            alive.insert(node.to_owned(), up);
        }
        if alive.get(node).copied().unwrap_or(false) {
            out.push(nick.to_owned());
        }
    }
    Ok(out)
}

fn entry(namespace: &str, room: &str, nick: &str) -> String {
    format!("{namespace}\n{room}\n{nick}")
}

/// Writes this node's membership changes, in the order made, and all of them again when the
/// node finds it was reaped ([`Change::Rewrite`]; the back hook then tells each room).
pub(super) fn writer(
    conn: Conn,
    node: String,
    mut changes: UnboundedReceiver<Change>,
    back: Arc<OnceLock<Gone>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut conn = conn;
        let key = presence_key(&node);
        // What this node has written: its memberships now.
        let mut held: std::collections::HashSet<(String, String, String)> = Default::default();
        while let Some(change) = changes.recv().await {
            let (ns, room, nick, inside) = match change {
                Change::Member(ns, room, nick, inside) => (ns, room, nick, inside),
                Change::Rewrite => {
                    info!(
                        memberships = held.len(),
                        "this node was taken for dead: telling the cluster its users again"
                    );
                    for (ns, room, nick) in &held {
                        if let Err(e) = note(&mut conn, &node, &key, ns, room, nick, true).await {
                            warn!(error = %e, "cannot note a room member in the cluster");
                        }
                        if let Some(back) = back.get() {
                            back(ns, room, nick, &node, true);
                        }
                    }
                    continue;
                }
            };
            if let Err(e) = note(&mut conn, &node, &key, &ns, &room, &nick, inside).await {
                warn!(error = %e, "cannot note a room member in the cluster");
            }
            let entry = (ns, room, nick);
            if inside {
                held.insert(entry);
            } else {
                held.remove(&entry);
            }
        }
    })
}

/// Writes one membership (or its end) to this node's presence set and the room's members.
async fn note(
    conn: &mut Conn,
    node: &str,
    key: &str,
    ns: &str,
    room: &str,
    nick: &str,
    inside: bool,
) -> redis::RedisResult<()> {
    let member = entry(ns, room, nick);
    let in_room = room_member(node, nick);
    let room_key = super::keys::room(ns, room).members;
    if inside {
        let () = conn.sadd(key, member).await?;
        conn.sadd(&room_key, in_room).await
    } else {
        let () = conn.srem(key, member).await?;
        conn.srem(&room_key, in_room).await
    }
}

/// The lock a reaper takes on `node` (for 30 s: one reaper per death).
pub(super) fn reap_lock(node: &str) -> String {
    format!("chat:{{nicks}}:reap:{node}")
}

/// Looks for dead nodes and reaps each once (whichever live node takes its lock first).
pub(super) async fn reap(conn: &mut Conn, me: &str, gone: &Arc<OnceLock<Gone>>) {
    let nodes: Vec<String> = match conn.smembers(NODES).await {
        Ok(n) => n,
        Err(_) => return,
    };
    for node in nodes.iter().filter(|n| n.as_str() != me) {
        let alive: bool = conn
            .exists(super::keys::node_key(node))
            .await
            .unwrap_or(true);
        if alive {
            continue;
        }
        let lock: Option<String> = redis::cmd("SET")
            .arg(reap_lock(node))
            .arg(me)
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .query_async(conn)
            .await
            .unwrap_or(None);
        if lock.is_none() {
            continue;
        }
        let members: Vec<String> = conn.smembers(presence_key(node)).await.unwrap_or_default();
        info!(
            node,
            users = members.len(),
            "a node is gone: its users leave their rooms"
        );
        let gone = gone.get();
        {
            for m in &members {
                let mut parts = m.splitn(3, '\n');
                if let (Some(ns), Some(room), Some(nick)) =
                    (parts.next(), parts.next(), parts.next())
                {
                    if let Some(gone) = gone {
                        gone(ns, room, nick, node, false);
                    }
                    let _: redis::RedisResult<()> = conn
                        .srem(super::keys::room(ns, room).members, room_member(node, nick))
                        .await;
                }
            }
        }
        let _: redis::RedisResult<()> = conn.del(presence_key(node)).await;
        // Their presence and room counts expire with the heartbeat; gone now in any case.
        let _: redis::RedisResult<()> = conn.del(super::keys::users_key(node)).await;
        let _: redis::RedisResult<()> = conn.del(super::keys::rooms_key(node)).await;
        let _: redis::RedisResult<()> = conn.del(super::keys::namespaces_key(node)).await;
        let _: redis::RedisResult<()> = conn.srem(NODES, node).await;
    }
}
