//! The subscriber: this node's subscriptions to the channels of the rooms it follows
//! (SUBSCRIBE on a single Redis, sharded SSUBSCRIBE on a Redis Cluster, where a room's
//! channel lives on its shard), and the task that turns what arrives into sequencer events.
//! The connection makes the subscriptions again after a reconnect; each confirmation that
//! arrives makes the sequencer read what the room's log got meanwhile.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use super::conn::{Conn, unavailable};
use super::entry;
use super::events::Event;
use super::keys;
use crate::chat::store::StoreError;
use crate::config::RedisUrl;
use crate::engine::lock;

/// How often the subscription connection is checked (see [`Subscriptions::keep_alive`]).
const KEEP_ALIVE: Duration = Duration::from_millis(500);

/// Subscribes this node to room channels (each once).
#[derive(Clone)]
pub(crate) struct Subscriptions {
    conn: Conn,
    url: RedisUrl,
    done: Arc<Mutex<HashSet<String>>>,
}

impl Subscriptions {
    pub(super) fn new(conn: Conn, url: RedisUrl) -> Subscriptions {
        Subscriptions {
            conn,
            url,
            done: Arc::default(),
        }
    }

    /// Pings the subscription connection every [`KEEP_ALIVE`]: a connection that dropped
    /// (Redis restarted) is made again, with its subscriptions, within about that long even
    /// when nothing else is sent on it. Aborted with the store.
    pub(super) fn keep_alive(&self) -> JoinHandle<()> {
        let mut conn = self.conn.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEEP_ALIVE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _: redis::RedisResult<()> = redis::cmd("PING").exec_async(&mut conn).await;
            }
        })
    }

    /// Subscribes to `channel` unless subscribed already; resolves once Redis confirmed.
    pub(crate) async fn subscribe(&self, channel: &str) -> Result<(), StoreError> {
        if lock(&self.done).contains(channel) {
            return Ok(());
        }
        let result = match self.conn.clone() {
            Conn::Single(mut c) => c.subscribe(channel).await,
            Conn::Cluster(mut c) => c.ssubscribe(channel).await,
        };
        result.map_err(|e| unavailable(&self.url, &e))?;
        lock(&self.done).insert(channel.to_owned());
        Ok(())
    }
}

impl Subscriptions {
    /// Unsubscribes from `channel` (a room nobody here is in any more).
    pub(crate) async fn unsubscribe(&self, channel: &str) {
        if !lock(&self.done).remove(channel) {
            return;
        }
        let result = match self.conn.clone() {
            Conn::Single(mut c) => c.unsubscribe(channel).await,
            Conn::Cluster(mut c) => c.sunsubscribe(channel).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %unavailable(&self.url, &e), "cannot unsubscribe from a room");
        }
    }
}

/// Turns pushes into sequencer events: messages other nodes' scripts published, and
/// subscription confirmations (after a reconnect too). Another subscriber of the same
/// pushes (the cluster adapter's) gets them through `also`.
pub(super) async fn run(
    mut pushes: UnboundedReceiver<PushInfo>,
    node: String,
    sequencer: UnboundedSender<Event>,
    also: UnboundedSender<PushInfo>,
) {
    while let Some(push) = pushes.recv().await {
        let channel = push.data.first().and_then(text);
        let room = channel.as_deref().and_then(keys::parse_channel);
        let Some((namespace, room)) = room else {
            let _ = also.send(push);
            continue;
        };
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let Some(Value::BulkString(payload)) = push.data.get(1) else {
                    continue;
                };
                let Some((from, json)) = entry::split_published(payload) else {
                    continue;
                };
                // This node's own appends reach the sequencer from the writer.
                if from == node.as_bytes() {
                    continue;
                }
                if let Ok(message) = entry::decode(&room, json) {
                    let _ = sequencer.send(Event::Published {
                        namespace,
                        room,
                        message,
                    });
                }
            }
            PushKind::Subscribe | PushKind::SSubscribe => {
                let _ = sequencer.send(Event::Subscribed {
                    namespace,
                    room,
                    attempt: 0,
                });
            }
            _ => {}
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
