//! The Redis store: cluster mode (`--store redis`). Every node that shares one Redis (or one
//! Redis Cluster) is one chat: the room logs, topics, identities and waiting direct
//! messages live in Redis, and each room's messages reach every node in one order.
//!
//! - this file: [`RedisStore`] (connect, the [`RoomLog`] side) and its module map;
//! - `conn`: connecting to a server or a cluster, the `appendfsync` check, errors that name
//!   the URL without its password;
//! - `keys`: key and channel names, hash-tagged per room (`{<ns> <room>}`) so a Redis
//!   Cluster keeps a room on one shard;
//! - `script`: the append script (next seq, append, cid, retention cap, publish: one step);
//! - `writer`: runs the script for this node's appends, in the order issued;
//! - `sequencer`: this node's ordering section: delivers every room's messages here in
//!   `seq` order (this node's, with their acks, and other nodes'), reads gaps from the log,
//!   serves attaches;
//! - `events`: what the sequencer is asked to do (by the writer, the subscriber, attaches);
//! - `subscriber`: the room channels this node follows and what arrives on them;
//! - `entry`: a stored message's JSON;
//! - `nicks`: nicks held across the cluster (guests once, look-alikes refused everywhere)
//!   and each node's heartbeat (a dead node's nicks are free again within 6 s);
//! - `roster`: who is in which room on this node, so that another node can tell the rooms
//!   when this one dies (reaped on the heartbeat);
//! - `presence`: this node's users (away, idle, registered, connections) and room counts,
//!   written on the heartbeat for the other nodes' `whois`, `who`, `rooms` and admin API,
//!   and read back from theirs;
//! - `state`: the [`Store`](crate::chat::store::Store) side beside the logs (topics,
//!   identities, direct messages), and `available` (a ping every 0.5 s);
//! - `moderation`: operators, bans and mutes, deleting a message, unregistering and
//!   password resets;
//! - `search`: search as a bounded scan of the rooms' logs, newest first.
//!
//! A message is acknowledged once Redis answered its script: with AOF and
//! `appendfsync always` (checked at start, see [`RedisStore::durability`]) it is then on
//! Redis's disk. Redis down: appends and reads fail with
//! `StoreError::Unavailable` (the client's
//! `unavailable`, retryable) until the connection is back.

mod conn;
mod entry;
mod events;
mod keys;
mod moderation;
mod nicks;
mod presence;
mod roster;
mod script;
mod search;
mod sequencer;
mod state;
mod subscriber;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chat_protocol::events::ChatMessage;
use redis::PushInfo;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) use conn::Conn;
pub use roster::Gone;
pub use search::SCAN_MAX as SEARCH_SCAN_MAX;
pub use sequencer::{Deliver, HasMembers};
pub(crate) use subscriber::Subscriptions;

use crate::chat::presence::SnapshotFn;
use crate::chat::store::{
    AppendDone, Attach, NewMessage, Publish, RoomLog, StoreError, StoreFuture,
};
use crate::config::RedisUrl;
use crate::engine::lock;
use events::Event;
use sequencer::{Sequencer, Wiring};
use writer::{Job, Writer};

/// The chat's data in Redis, shared by every node of the cluster.
pub struct RedisStore {
    conn: Conn,
    url: RedisUrl,
    node: String,
    jobs: UnboundedSender<Job>,
    sequencer: UnboundedSender<Event>,
    deliver: Arc<OnceLock<Deliver>>,
    subscriptions: Subscriptions,
    /// Pushes that are not about room logs (the cluster adapter's channels), until taken.
    other_pushes: Mutex<Option<UnboundedReceiver<PushInfo>>>,
    /// Appends issued and not yet back at the sequencer.
    in_flight: Arc<AtomicUsize>,
    /// This node's room membership changes, to the roster's writer.
    roster: UnboundedSender<roster::Change>,
    gone: Arc<OnceLock<Gone>>,
    /// This node's users and rooms, for the others (`presence`); set once by the chat.
    snapshot: Arc<OnceLock<SnapshotFn>>,
    /// The other nodes' users per namespace, read on each heartbeat (`presence`).
    remote_namespaces: presence::RemoteNamespaces,
    /// The other nodes' room counts, read for `rooms` requests at most every 2 s (`presence`).
    remote_rooms: presence::RemoteRoomCounts,
    has_members: Arc<OnceLock<HasMembers>>,
    durability: Result<(), String>,
    /// The newest messages per room a search reads (`search`).
    scan: u64,
    /// Whether Redis answered the last ping (`Store::available`, `/readyz`).
    reachable: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RedisStore {
    /// Connects to the Redis at `url`, keeping the newest `max_messages` per room (0: all).
    /// Fails at once, naming the URL without its password, when Redis cannot be reached.
    pub async fn connect(url: &RedisUrl, max_messages: u64) -> Result<RedisStore, StoreError> {
        let (push_tx, push_rx) = unbounded_channel();
        let conn::Connections {
            mut commands,
            subscriptions,
        } = conn::connect(url, push_tx).await?;
        let durability = conn::check_appendfsync(&mut commands).await;
        let node = format!("{:016x}", rand::random::<u64>());
        let (jobs, jobs_rx) = unbounded_channel();
        let (sequencer, events) = unbounded_channel();
        let (other_tx, other_rx) = unbounded_channel();
        let deliver: Arc<OnceLock<Deliver>> = Arc::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let gone: Arc<OnceLock<Gone>> = Arc::default();
        let snapshot: Arc<OnceLock<SnapshotFn>> = Arc::default();
        let remote_namespaces = presence::RemoteNamespaces::default();
        let has_members: Arc<OnceLock<HasMembers>> = Arc::default();
        let (roster, roster_rx) = unbounded_channel();
        let subscriptions = Subscriptions::new(subscriptions, url.clone());
        let reachable = Arc::new(AtomicBool::new(true));
        let tasks = vec![
            prober(commands.clone(), reachable.clone()),
            subscriptions.keep_alive(),
            RedisStore::heartbeat(
                commands.clone(),
                node.clone(),
                gone.clone(),
                snapshot.clone(),
                remote_namespaces.clone(),
                roster.clone(),
            ),
            roster::writer(commands.clone(), node.clone(), roster_rx, gone.clone()),
            sweeper(sequencer.clone()),
            tokio::spawn(
                Writer {
                    conn: commands.clone(),
                    url: url.clone(),
                    cap: max_messages,
                    node: node.clone(),
                    jobs: jobs_rx,
                    sequencer: sequencer.clone(),
                }
                .run(),
            ),
            tokio::spawn(
                Sequencer::new(Wiring {
                    conn: commands.clone(),
                    url: url.clone(),
                    node: node.clone(),
                    events,
                    deliver: deliver.clone(),
                    subscriptions: subscriptions.clone(),
                    in_flight: in_flight.clone(),
                    myself: sequencer.clone(),
                    has_members: has_members.clone(),
                })
                .run(),
            ),
            tokio::spawn(subscriber::run(
                push_rx,
                node.clone(),
                sequencer.clone(),
                other_tx,
            )),
        ];
        Ok(RedisStore {
            conn: commands,
            url: url.clone(),
            node,
            jobs,
            sequencer,
            deliver,
            subscriptions,
            other_pushes: Mutex::new(Some(other_rx)),
            in_flight,
            roster,
            gone,
            snapshot,
            remote_namespaces,
            remote_rooms: presence::RemoteRoomCounts::default(),
            has_members,
            durability,
            scan: search::scan_for(max_messages),
            reachable,
            tasks,
        })
    }

    /// Where other nodes' messages go on this node: the room's local sockets. Set once
    /// (the chat sets it when it builds the engine); before, they are only counted as seen.
    pub fn set_delivery(&self, deliver: Deliver) {
        let _ = self.deliver.set(deliver);
    }

    /// Whether a room has sockets on this node (rooms without any are forgotten every 30 s:
    /// their subscription and cursor). Set once; until then none is forgotten.
    pub fn set_has_members(&self, has_members: HasMembers) {
        let _ = self.has_members.set(has_members);
    }

    /// Forgets now the rooms that have no socket here; returns how many.
    pub async fn forget_idle_rooms(&self) -> usize {
        let (done, answer) = oneshot::channel();
        if self
            .sequencer
            .send(Event::Sweep { done: Some(done) })
            .is_err()
        {
            return 0;
        }
        answer.await.unwrap_or(0)
    }

    /// What tells a room's members on every node that a dead node's user is gone, or that a
    /// user of this node is back after it was taken for dead. Set once.
    pub fn set_gone(&self, gone: Gone) {
        let _ = self.gone.set(gone);
    }

    /// What this node tells the others about its users and rooms, taken on each heartbeat
    /// (`presence`). Set once; until then it tells them nothing.
    pub fn set_snapshot(&self, snapshot: SnapshotFn) {
        let _ = self.snapshot.set(snapshot);
    }

    fn note(&self, change: roster::Change) {
        let _ = self.roster.send(change);
    }

    /// `Ok` when an acknowledgement means the message is on Redis's disk (AOF with
    /// `appendfsync always`), else what it means instead, in a sentence for the log.
    pub fn durability(&self) -> &Result<(), String> {
        &self.durability
    }

    /// This node's id in the cluster (random per start).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The Redis URL (its `Display` hides the password).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// The pushes that are not about room logs, once (the cluster adapter reads them).
    pub(crate) fn take_other_pushes(&self) -> Option<UnboundedReceiver<PushInfo>> {
        lock(&self.other_pushes).take()
    }

    pub(crate) fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    fn unavailable(&self, e: &redis::RedisError) -> StoreError {
        conn::unavailable(&self.url, e)
    }

    /// Whether Redis answered this node's last ping (every 0.5 s).
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }
}

/// How often [`prober`] pings Redis.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Pings Redis every [`PROBE_EVERY`] and notes whether it answered (a ping fails at once
/// when Redis refuses connections, or after the 3 s response timeout when it stalls).
fn prober(mut conn: Conn, reachable: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let answered = redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok();
            reachable.store(answered, Ordering::Relaxed);
        }
    })
}

/// Sends the sequencer a sweep every [`sequencer::SWEEP_EVERY`].
fn sweeper(sequencer: UnboundedSender<Event>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(sequencer::SWEEP_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            if sequencer.send(Event::Sweep { done: None }).is_err() {
                return;
            }
        }
    })
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RoomLog for RedisStore {
    fn append_then(&self, message: NewMessage, publish: Publish, done: AppendDone) {
        // A writer that is gone drops the job, whose `done` then reports `Closed`.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _ = self.jobs.send(Job {
            message,
            publish,
            done,
        });
    }

    fn attach(
        &self,
        namespace: &str,
        room: &str,
        after: Option<u64>,
        limit: usize,
        attach: Attach,
    ) -> StoreFuture<'_, ()> {
        let (reply, answer) = oneshot::channel();
        let sent = self.sequencer.send(Event::Attach {
            namespace: namespace.to_owned(),
            room: room.to_owned(),
            after,
            limit,
            attach,
            reply,
        });
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn history(
        &self,
        namespace: &str,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<ChatMessage>> {
        let log = keys::room(namespace, room).log;
        let room = room.to_owned();
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let max = before.map_or("+inf".to_owned(), |b| format!("({b}"));
            let found: Vec<Vec<u8>> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&log)
                .arg(max)
                .arg("-inf")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut self.conn())
                .await
                .map_err(|e| self.unavailable(&e))?;
            let mut out = found
                .iter()
                .map(|e| entry::decode(&room, e))
                .collect::<Result<Vec<_>, _>>()?;
            out.reverse();
            Ok(out)
        })
    }
}
