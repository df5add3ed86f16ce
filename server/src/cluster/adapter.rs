//! The fan-out across nodes: [`RedisAdapter`], the engine's [`Adapter`] for cluster mode.
//! Each broadcast is delivered to this node's sockets (an in-memory [`LocalAdapter`]) and
//! published once, as its encoded bytes with its rooms, except set and volatile flag, on its
//! namespace's channel (`chat:{bcast <ns>}`; SPUBLISH on a Redis Cluster), never once per
//! recipient. Every other node delivers it to its own sockets with the same options: rooms
//! as a union (a socket in two of them gets it once), except by room membership (so "all
//! but the sender", whose own-id room is in the except set, holds across nodes).
//! A broadcast marked `local` (the chat's room messages, which reach the other nodes
//! through the Redis store's log, in `seq` order) is not published.
//!
//! The same channel carries the chat's commands to the other nodes (`chat::control`: kicks,
//! a ban's removals, disconnects), as a publication with a command instead of a frame: in
//! order after the broadcasts queued before it, so a room's members on another node get
//! the kick's announcement before its target leaves there.
//!
//! Like Socket.IO's Redis adapter this path is at most once: a broadcast published while a
//! node's subscription is down does not reach that node's sockets. Presence and typing
//! events go this way; chat messages, which must not be lost, go through the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::warn;

use crate::chat::redis::{Conn, RedisStore, Subscriptions};
use crate::engine::{
    Adapter, AdapterContext, BroadcastOptions, EncodedPacket, LocalAdapter, Room, Sid, lock,
};

/// Broadcasts waiting to be published, at most (beyond: dropped, with a warning).
const PUBLISH_QUEUE: usize = 65_536;
/// Broadcasts published in one round trip, at most.
const BATCH: usize = 128;

const CHANNEL_PREFIX: &str = "chat:{bcast ";

fn channel(namespace: &str) -> String {
    format!("{CHANNEL_PREFIX}{namespace}}}")
}

fn namespace_of(channel: &str) -> Option<&str> {
    channel.strip_prefix(CHANNEL_PREFIX)?.strip_suffix('}')
}

/// A broadcast as published.
#[derive(Serialize, Deserialize)]
struct Wire {
    /// The publishing node.
    n: String,
    r: Vec<Room>,
    e: Vec<Room>,
    v: bool,
    /// The encoded Engine.IO text frame.
    t: String,
    /// Binary attachments, base64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    a: Vec<String>,
    /// A command to the other nodes (`chat::control`, JSON) instead of a frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
}

/// Applies a command another node sent (`chat::control`).
pub type OnControl = Arc<dyn Fn(&str) + Send + Sync>;

/// What every namespace's adapter shares: the node's id, the publishing queue and the
/// adapters by namespace (for what other nodes publish).
pub struct Fanout {
    node: String,
    queue: mpsc::Sender<(String, Vec<u8>)>,
    subscriptions: Subscriptions,
    adapters: Mutex<HashMap<String, Weak<RedisAdapter>>>,
    on_control: std::sync::OnceLock<OnControl>,
}

impl Fanout {
    /// Starts the fan-out of a node on the Redis store's connections: a task that publishes
    /// and a task that delivers what other nodes published.
    pub fn start(store: &RedisStore) -> Arc<Fanout> {
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        let conn = store.conn();
        let fanout = Arc::new(Fanout {
            node: store.node().to_owned(),
            queue,
            subscriptions: store.subscriptions().clone(),
            adapters: Mutex::default(),
            on_control: std::sync::OnceLock::new(),
        });
        tokio::spawn(publish(conn, rx));
        if let Some(pushes) = store.take_other_pushes() {
            tokio::spawn(receive(Arc::downgrade(&fanout), pushes));
        }
        fanout
    }

    /// The engine's adapter factory: one [`RedisAdapter`] per namespace.
    pub fn factory(
        self: &Arc<Self>,
    ) -> impl Fn(AdapterContext) -> Arc<dyn Adapter> + Send + Sync + 'static {
        let fanout = self.clone();
        move |ctx| {
            let namespace = ctx.namespace.clone();
            let adapter = Arc::new(RedisAdapter {
                local: LocalAdapter::new(ctx),
                channel: channel(&namespace),
                fanout: Arc::downgrade(&fanout),
            });
            lock(&fanout.adapters).insert(namespace, Arc::downgrade(&adapter));
            let (subscriptions, channel) = (fanout.subscriptions.clone(), adapter.channel.clone());
            tokio::spawn(async move {
                if let Err(e) = subscriptions.subscribe(&channel).await {
                    warn!(error = %e, "cannot subscribe to a namespace's broadcasts");
                }
            });
            adapter as Arc<dyn Adapter>
        }
    }

    /// Where the other nodes' commands go. Set once; until then they are dropped.
    pub fn set_control(&self, on_control: OnControl) {
        let _ = self.on_control.set(on_control);
    }

    /// Publishes a command to the other nodes on `namespace`'s channel, queued after the
    /// broadcasts before it.
    pub fn send_control(&self, namespace: &str, json: String) {
        let wire = Wire {
            n: self.node.clone(),
            r: Vec::new(),
            e: Vec::new(),
            v: false,
            t: String::new(),
            a: Vec::new(),
            c: Some(json),
        };
        match serde_json::to_vec(&wire) {
            Ok(bytes) => {
                if self.queue.try_send((channel(namespace), bytes)).is_err() {
                    warn!("cluster fan-out queue full: a command reaches this node only");
                }
            }
            Err(e) => warn!(error = %e, "a cluster command does not encode"),
        }
    }

    fn adapter(&self, namespace: &str) -> Option<Arc<RedisAdapter>> {
        lock(&self.adapters).get(namespace).and_then(Weak::upgrade)
    }
}

/// One namespace's rooms and fan-out in cluster mode.
pub struct RedisAdapter {
    local: LocalAdapter,
    channel: String,
    fanout: Weak<Fanout>,
}

impl Adapter for RedisAdapter {
    fn join(&self, sid: &Sid, rooms: &[Room]) {
        self.local.join(sid, rooms)
    }

    fn leave(&self, sid: &Sid, room: &str) {
        self.local.leave(sid, room)
    }

    fn leave_all(&self, sid: &Sid) {
        self.local.leave_all(sid)
    }

    fn rooms_of(&self, sid: &Sid) -> Vec<Room> {
        self.local.rooms_of(sid)
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.local.sockets(opts)
    }

    fn rooms(&self) -> Vec<(Room, usize)> {
        self.local.rooms()
    }

    fn broadcast(&self, packet: EncodedPacket, opts: &BroadcastOptions) -> usize {
        if !opts.local
            && let Some(fanout) = self.fanout.upgrade()
        {
            let wire = Wire {
                n: fanout.node.clone(),
                r: opts.rooms.clone(),
                e: opts.except.clone(),
                v: opts.volatile,
                t: packet.text.as_str().to_owned(),
                a: packet
                    .attachments()
                    .iter()
                    .map(|a| BASE64.encode(a))
                    .collect(),
                c: None,
            };
            match serde_json::to_vec(&wire) {
                Ok(bytes) => {
                    if fanout
                        .queue
                        .try_send((self.channel.clone(), bytes))
                        .is_err()
                    {
                        warn!("cluster fan-out queue full: a broadcast reaches this node only");
                    }
                }
                Err(e) => warn!(error = %e, "a broadcast does not encode"),
            }
        }
        self.local.broadcast(packet, opts)
    }
}

/// Publishes the queued broadcasts in order, a batch per round trip.
async fn publish(mut conn: Conn, mut rx: mpsc::Receiver<(String, Vec<u8>)>) {
    let command = if conn.is_cluster() {
        "SPUBLISH"
    } else {
        "PUBLISH"
    };
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let result: redis::RedisResult<()> = if conn.is_cluster() {
            // A pipeline would cross shards: one at a time.
            let mut r = Ok(());
            for (channel, bytes) in &batch {
                r = r.and(
                    redis::cmd(command)
                        .arg(channel)
                        .arg(bytes)
                        .exec_async(&mut conn)
                        .await,
                );
            }
            r
        } else {
            let mut pipe = redis::pipe();
            for (channel, bytes) in &batch {
                pipe.cmd(command).arg(channel).arg(bytes).ignore();
            }
            pipe.exec_async(&mut conn).await
        };
        if let Err(e) = result {
            warn!(error = %e, dropped = batch.len(), "cannot publish broadcasts to the cluster");
        }
        batch.clear();
    }
}

/// Delivers what other nodes published to this node's sockets.
async fn receive(fanout: Weak<Fanout>, mut pushes: mpsc::UnboundedReceiver<PushInfo>) {
    while let Some(push) = pushes.recv().await {
        if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
            continue;
        }
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (push.data.first(), push.data.get(1))
        else {
            continue;
        };
        let Some(fanout) = fanout.upgrade() else {
            return;
        };
        let Some(namespace) = std::str::from_utf8(channel).ok().and_then(namespace_of) else {
            continue;
        };
        let Ok(wire) = serde_json::from_slice::<Wire>(payload) else {
            warn!("a cluster broadcast does not decode");
            continue;
        };
        if wire.n == fanout.node {
            continue;
        }
        if let Some(command) = &wire.c {
            if let Some(apply) = fanout.on_control.get() {
                apply(command);
            }
            continue;
        }
        let Some(adapter) = fanout.adapter(namespace) else {
            continue;
        };
        let mut packet = EncodedPacket::raw(wire.t);
        let attachments: Vec<Bytes> = wire
            .a
            .iter()
            .filter_map(|a| BASE64.decode(a).ok().map(Bytes::from))
            .collect();
        if !attachments.is_empty() {
            packet.attachments = Some(attachments.into());
        }
        let opts = BroadcastOptions {
            rooms: wire.r,
            except: wire.e,
            volatile: wire.v,
            local: true,
        };
        adapter.local.broadcast(packet, &opts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespaces_channel_names_it() {
        assert_eq!(namespace_of(&channel("/a/b")), Some("/a/b"));
        assert_eq!(namespace_of("chat:{/ r}:msg"), None);
    }
}
