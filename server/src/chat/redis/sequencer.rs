//! The sequencer: this node's ordering section for every room, one task. Everything that
//! delivers a room's messages to this node's sockets passes through it, in `seq` order:
//!
//! - the outcomes of this node's own appends (from the writer, in the order issued): for a
//!   new message, `publish` (which delivers to the room's sockets here) then `done` (the ack);
//! - the messages other nodes appended, as the append script published them (through
//!   the subscriber), handed to the delivery hook (the room's sockets here);
//! - attaches: a catch-up read from the log up to what this node has delivered, then the
//!   callback (which joins the socket), so live delivery goes on from there.
//!
//! Per room it keeps the last `seq` delivered here (the cursor) and the messages that came
//! early (`waiting`, by seq). Only the cursor's next seq is delivered; a gap before what
//! waits (a publish missed while the subscription was down, or another node's message not
//! here yet when this node's next one comes back) is read from the log first. A gap entry
//! that this node appended itself while some of its appends are still in flight is not
//! taken from the log: its own outcome (publish, then ack) is on its way and is waited for.
//! Whatever the log no longer has (retention, a deleted message) is skipped: a hole in the
//! log below a message it holds is final, since a message's append is one script. A message at or below the cursor
//! was delivered already and is dropped. The log, not pub/sub, is the truth: pub/sub only
//! makes it fast.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use chat_protocol::events::ChatMessage;
use redis::AsyncCommands;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tracing::warn;

use super::conn::{Conn, unavailable};
use super::entry;
use super::events::Event;
use super::keys;
use super::subscriber::Subscriptions;
use crate::chat::store::{AppendDone, Appended, Attach, Publish, StoreError, catchup};
use crate::config::RedisUrl;

/// Delivers a message of (namespace, its room) to the room's sockets on this node.
pub type Deliver = Arc<dyn Fn(&str, &ChatMessage) + Send + Sync>;

/// Whether (namespace, room) has sockets on this node.
pub type HasMembers = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// How often the rooms nobody here is in are forgotten.
pub(super) const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

type RoomKey = (String, String);

/// A message that came before its turn.
enum Early {
    Own {
        message: ChatMessage,
        publish: Publish,
        done: AppendDone,
    },
    Other(ChatMessage),
    /// This seq up to `to` are not in the log, though a later message is: deleted (or
    /// trimmed by retention). Passed over.
    Gone {
        to: u64,
    },
}

#[derive(Default)]
struct Room {
    /// The last seq delivered here.
    last: u64,
    waiting: BTreeMap<u64, Early>,
}

/// What a sequencer is made with.
pub(super) struct Wiring {
    pub conn: Conn,
    pub url: RedisUrl,
    pub node: String,
    pub events: UnboundedReceiver<Event>,
    pub deliver: Arc<OnceLock<Deliver>>,
    pub subscriptions: Subscriptions,
    /// This node's appends issued and not yet back here.
    pub in_flight: Arc<AtomicUsize>,
    /// The sender of `events`, for retries.
    pub myself: UnboundedSender<Event>,
    pub has_members: Arc<OnceLock<HasMembers>>,
}

pub(super) struct Sequencer {
    conn: Conn,
    url: RedisUrl,
    node: String,
    events: UnboundedReceiver<Event>,
    deliver: Arc<OnceLock<Deliver>>,
    subscriptions: Subscriptions,
    /// This node's appends issued and not yet back here.
    in_flight: Arc<AtomicUsize>,
    rooms: HashMap<RoomKey, Room>,
    /// To send this task an event later (a retry).
    myself: UnboundedSender<Event>,
    /// Set while handling a retry's last attempt: a failed read then skips the gap.
    giving_up: bool,
    has_members: Arc<OnceLock<HasMembers>>,
}

impl Sequencer {
    pub(super) fn new(w: Wiring) -> Sequencer {
        Sequencer {
            conn: w.conn,
            url: w.url,
            node: w.node,
            events: w.events,
            deliver: w.deliver,
            subscriptions: w.subscriptions,
            in_flight: w.in_flight,
            rooms: HashMap::new(),
            myself: w.myself,
            giving_up: false,
            has_members: w.has_members,
        }
    }

    pub(super) async fn run(mut self) {
        while let Some(event) = self.events.recv().await {
            match event {
                Event::Own {
                    namespace,
                    room,
                    outcome,
                    publish,
                    done,
                } => {
                    self.in_flight.fetch_sub(1, Ordering::SeqCst);
                    self.own((namespace, room), outcome, publish, done).await;
                }
                Event::Published {
                    namespace,
                    room,
                    message,
                } => {
                    let key = (namespace, room);
                    // Rooms nobody here follows are not tracked.
                    if let Some(r) = self.rooms.get_mut(&key)
                        && message.seq > r.last
                    {
                        r.waiting.insert(message.seq, Early::Other(message));
                        self.drain(&key).await;
                    }
                }
                Event::Subscribed {
                    namespace,
                    room,
                    attempt,
                } => {
                    let key = (namespace, room);
                    if self.rooms.contains_key(&key) {
                        self.giving_up = attempt == u32::MAX;
                        if !self.giving_up && matches!(self.read_log(&key, None).await, Gap::Failed)
                        {
                            self.again(key, attempt);
                        } else {
                            self.drain(&key).await;
                        }
                        self.giving_up = false;
                    }
                }
                Event::Attach {
                    namespace,
                    room,
                    after,
                    limit,
                    attach,
                    reply,
                } => {
                    let r = self.attach((namespace, room), after, limit, attach).await;
                    let _ = reply.send(r);
                }
                Event::Sweep { done } => {
                    let forgotten = self.sweep().await;
                    if let Some(done) = done {
                        let _ = done.send(forgotten);
                    }
                }
            }
        }
    }

    /// Reads the room's log again in a moment (a read failed), for [`RETRIES`] at most;
    /// after that what waits is delivered over the gap.
    fn again(&self, key: RoomKey, attempt: u32) {
        if attempt >= RETRIES {
            warn!(room = %key.1, "a room's log stayed unreadable: delivering over the gap");
            let tx = self.myself.clone();
            // One more round, which skips the gap.
            let _ = tx.send(Event::Subscribed {
                namespace: key.0,
                room: key.1,
                attempt: u32::MAX,
            });
            return;
        }
        let tx = self.myself.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETRY_AFTER).await;
            let _ = tx.send(Event::Subscribed {
                namespace: key.0,
                room: key.1,
                attempt: attempt + 1,
            });
        });
    }

    /// Forgets the rooms with no socket here and nothing waiting; returns how many.
    async fn sweep(&mut self) -> usize {
        let Some(has_members) = self.has_members.get().cloned() else {
            return 0;
        };
        let idle: Vec<RoomKey> = self
            .rooms
            .iter()
            .filter(|(k, r)| r.waiting.is_empty() && !has_members(&k.0, &k.1))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &idle {
            self.rooms.remove(key);
            self.subscriptions
                .unsubscribe(&keys::room(&key.0, &key.1).channel)
                .await;
        }
        idle.len()
    }

    async fn own(
        &mut self,
        key: RoomKey,
        outcome: Result<(bool, ChatMessage), StoreError>,
        publish: Publish,
        done: AppendDone,
    ) {
        let (duplicate, message) = match outcome {
            Ok(found) => found,
            Err(e) => {
                done.call(Err(e));
                // A gap entry of this node's may have waited for this append: look again.
                let waiting: Vec<RoomKey> = self
                    .rooms
                    .iter()
                    .filter(|(_, r)| !r.waiting.is_empty())
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in waiting {
                    self.drain(&k).await;
                }
                return;
            }
        };
        if duplicate {
            return done.call(Ok(Appended {
                message,
                duplicate: true,
            }));
        }
        if !self.rooms.contains_key(&key) {
            // A room this node appends to is followed from here on.
            let channel = keys::room(&key.0, &key.1).channel;
            if let Err(e) = self.subscriptions.subscribe(&channel).await {
                warn!(error = %e, "cannot subscribe to a room");
            }
            self.rooms.insert(
                key.clone(),
                Room {
                    last: message.seq - 1,
                    waiting: BTreeMap::new(),
                },
            );
        }
        let Some(r) = self.rooms.get_mut(&key) else {
            return;
        };
        if message.seq <= r.last {
            // A read of the log delivered it already (its sender's socket included).
            return done.call(Ok(Appended {
                message,
                duplicate: false,
            }));
        }
        r.waiting.insert(
            message.seq,
            Early::Own {
                message,
                publish,
                done,
            },
        );
        self.drain(&key).await;
    }

    /// Delivers what waits in seq order, reading gaps from the log.
    async fn drain(&mut self, key: &RoomKey) {
        tracing::debug!(room = %key.1, last = ?self.rooms.get(key).map(|r| r.last), waiting = ?self.rooms.get(key).map(|r| r.waiting.keys().copied().collect::<Vec<_>>()), in_flight = self.in_flight.load(Ordering::SeqCst), "drain");
        // Bounded: each round delivers, or reads a gap once and then skips what is missing.
        loop {
            self.deliver_ready(key);
            let Some(r) = self.rooms.get(key) else { return };
            let Some((&first, _)) = r.waiting.first_key_value() else {
                return;
            };
            let last = r.last;
            match self.read_log(key, Some(first)).await {
                Gap::Filled => continue,
                Gap::Waiting => return,
                Gap::Failed if !self.giving_up => {
                    // Read again shortly (a Subscribed event reads and drains).
                    return self.again(key.clone(), 0);
                }
                Gap::Missing | Gap::Failed => {
                    // Removed by retention, or unreadable now: skipped.
                    if let Some(r) = self.rooms.get_mut(key)
                        && r.last == last
                    {
                        r.last = first - 1;
                    }
                }
            }
        }
    }

    /// Delivers the waiting messages that are next in turn.
    fn deliver_ready(&mut self, key: &RoomKey) {
        let Some(r) = self.rooms.get_mut(key) else {
            return;
        };
        while let Some(entry) = r.waiting.first_entry() {
            if *entry.key() != r.last + 1 {
                if *entry.key() <= r.last {
                    entry.remove();
                    continue;
                }
                break;
            }
            match entry.remove() {
                Early::Gone { to } => r.last = to,
                Early::Own {
                    message,
                    publish,
                    done,
                } => {
                    r.last += 1;
                    publish(&message);
                    done.call(Ok(Appended {
                        message,
                        duplicate: false,
                    }));
                }
                Early::Other(m) => {
                    r.last += 1;
                    if let Some(deliver) = self.deliver.get() {
                        deliver(&key.0, &m);
                    }
                }
            }
        }
    }

    /// Reads the log after the cursor (below `below`, if given) into `waiting`.
    async fn read_log(&mut self, key: &RoomKey, below: Option<u64>) -> Gap {
        let Some(last) = self.rooms.get(key).map(|r| r.last) else {
            return Gap::Missing;
        };
        let k = keys::room(&key.0, &key.1);
        let max = below.map_or("+inf".to_owned(), |b| format!("({b}"));
        let found: redis::RedisResult<Vec<Vec<u8>>> = self
            .conn
            .zrangebyscore(&k.log, format!("({last}"), max)
            .await;
        let entries = match found {
            Ok(entries) => entries,
            Err(e) => {
                warn!(error = %unavailable(&self.url, &e), "cannot read a missed range of a room's log");
                return Gap::Failed;
            }
        };
        let mine_in_flight = self.in_flight.load(Ordering::SeqCst) > 0;
        let Some(r) = self.rooms.get_mut(key) else {
            return Gap::Missing;
        };
        let mut expected = last + 1;
        for e in entries {
            let Ok(logged) = entry::decode_logged(&key.1, &e) else {
                continue;
            };
            let seq = logged.message.seq;
            if seq > expected {
                // Not in the log although `seq` is: deleted, or trimmed. An append is one
                // script, so none of them is still to come.
                mark_gone(&mut r.waiting, expected, seq - 1);
                expected = seq;
            }
            if r.waiting.contains_key(&seq) {
                expected += 1;
                continue;
            }
            if logged.node == self.node && mine_in_flight {
                // This node's append, whose outcome is on its way.
                return Gap::Waiting;
            }
            r.waiting.insert(seq, Early::Other(logged.message));
            expected += 1;
        }
        if expected > last + 1 {
            Gap::Filled
        } else {
            Gap::Missing
        }
    }

    async fn attach(
        &mut self,
        key: RoomKey,
        after: Option<u64>,
        limit: usize,
        attach: Attach,
    ) -> Result<(), StoreError> {
        let k = keys::room(&key.0, &key.1);
        if !self.rooms.contains_key(&key) {
            // First socket here in this room: subscribe first, then read where the log is,
            // so every message after that point arrives by the subscription or a gap read.
            self.subscriptions.subscribe(&k.channel).await?;
            let top: Option<u64> = self
                .conn
                .get(&k.seq)
                .await
                .map_err(|e| unavailable(&self.url, &e))?;
            self.rooms.insert(
                key.clone(),
                Room {
                    last: top.unwrap_or(0),
                    waiting: BTreeMap::new(),
                },
            );
        }
        if after.is_some_and(|a| a > self.rooms.get(&key).map_or(0, |r| r.last)) {
            // The socket has seen more than this node delivered (it was on another node):
            // this node catches up first, so the catch-up and live delivery meet.
            self.read_log(&key, None).await;
            self.drain(&key).await;
        }
        let last = self.rooms.get(&key).map_or(0, |r| r.last);
        let min = after.map_or("-inf".to_owned(), |a| format!("({a}"));
        let found: Vec<Vec<u8>> = if limit == 0 || after.is_some_and(|a| a >= last) {
            Vec::new()
        } else {
            redis::cmd("ZREVRANGEBYSCORE")
                .arg(&k.log)
                .arg(last)
                .arg(min)
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut self.conn)
                .await
                .map_err(|e| unavailable(&self.url, &e))?
        };
        let mut messages = found
            .iter()
            .map(|e| entry::decode(&key.1, e))
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        attach(catchup(messages, after, last));
        Ok(())
    }
}

/// Marks `from..=to` as gone in `waiting`, around what waits there already (a message
/// that arrived and was deleted since is still delivered).
fn mark_gone(waiting: &mut BTreeMap<u64, Early>, from: u64, to: u64) {
    let present: Vec<u64> = waiting.range(from..=to).map(|(k, _)| *k).collect();
    let mut start = from;
    for k in present {
        if k > start {
            waiting.insert(start, Early::Gone { to: k - 1 });
        }
        start = k + 1;
    }
    if start <= to {
        waiting.insert(start, Early::Gone { to });
    }
}

/// What a read of a gap found.
enum Gap {
    /// Some of it: deliver and look again.
    Filled,
    /// It starts with this node's own append in flight: wait for its outcome.
    Waiting,
    /// Nothing: removed by retention (or never there).
    Missing,
    /// The read failed (Redis unreachable now).
    Failed,
}

/// Reads of a room's log tried after a failure, at most, [`RETRY_AFTER`] apart.
const RETRIES: u32 = 40;
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(250);
