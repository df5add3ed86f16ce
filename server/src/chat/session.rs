//! A connected user's session: its nick, whether it proved it, its sockets (one per
//! namespace), the slots of its `message`s waiting for their commit, and its budgets of
//! room joins and searches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::budget::Budget;
use crate::engine::{Socket, lock};

/// Most `message`s one connection may have waiting for their commit (see `handlers`); the
/// connection's next `message` waits for a slot, so its reads pause.
pub(crate) const MESSAGES_IN_FLIGHT: usize = 16;

/// One connected user: a connection and its sockets, one per namespace. Shared by those
/// sockets through the connection's extensions.
pub struct Session {
    pub(super) nick: Mutex<String>,
    /// Proved a claimed nick with its password.
    pub(super) authenticated: AtomicBool,
    /// Why the user is away (`away`), if they are.
    pub(super) away: Mutex<Option<String>>,
    /// When the user last sent a message or direct message or joined a room (`whois`'s
    /// idle time): milliseconds since `started` (an atomic: it is written on every message).
    last_active_ms: AtomicU64,
    started: Instant,
    /// `started` as milliseconds since the Unix epoch, for [`Session::active_at_ms`].
    started_at_ms: i64,
    /// The waiting direct messages were sent on this connection (once per connection: a
    /// namespace left and CONNECTed again does not read them again).
    dms_sent: AtomicBool,
    pub(super) sockets: Mutex<Vec<Socket>>,
    /// A permit per `message` slot; a message not yet acknowledged holds one.
    in_flight: tokio::sync::Semaphore,
    /// The room-join budget: at most `join_burst`, refilled at `joins_per_sec` (0: no
    /// budget). Each `join`, and each room a CONNECT's `since` rejoins, takes one. The burst
    /// is the rooms-per-socket limit, so a reconnect rejoins every room at once; what joins
    /// cost the server (store attaches, room events to the namespace) is then bounded per
    /// connection, however often it CONNECTs and DISCONNECTs a namespace.
    joins: Budget,
    /// The search budget ([`super::search`]): a search costs the store more than a message.
    searches: Budget,
}

impl Session {
    /// `join_burst`: the room joins allowed at once (the rooms-per-socket limit), refilled at
    /// `joins_per_sec` (0: unlimited).
    pub(super) fn new(
        nick: &str,
        authenticated: bool,
        join_burst: usize,
        joins_per_sec: u32,
    ) -> Arc<Session> {
        Arc::new(Session {
            nick: Mutex::new(nick.to_owned()),
            authenticated: AtomicBool::new(authenticated),
            dms_sent: AtomicBool::new(false),
            away: Mutex::new(None),
            last_active_ms: AtomicU64::new(0),
            started: Instant::now(),
            started_at_ms: super::store::now_ms(),
            sockets: Mutex::new(Vec::new()),
            in_flight: tokio::sync::Semaphore::new(MESSAGES_IN_FLIGHT),
            joins: Budget::new(join_burst, f64::from(joins_per_sec)),
            searches: Budget::new(super::search::SEARCH_BURST, super::search::SEARCHES_PER_SEC),
        })
    }

    /// Takes one room join from the budget; false when it is spent (the join is refused).
    pub(crate) fn take_join(&self) -> bool {
        self.joins.take()
    }

    /// Takes one search from the budget; false when it is spent (the search is refused).
    pub(crate) fn take_search(&self) -> bool {
        self.searches.take()
    }

    /// Waits for a `message` slot and takes it; [`Session::release_message`] gives it back.
    pub(crate) async fn reserve_message(&self) {
        if let Ok(permit) = self.in_flight.acquire().await {
            permit.forget();
        }
    }

    pub(crate) fn release_message(&self) {
        self.in_flight.add_permits(1);
    }

    /// Waits until every `message` of this connection has been answered.
    pub(crate) async fn settled(&self) {
        if self.in_flight.available_permits() < MESSAGES_IN_FLIGHT {
            // The permits are given back at once: this only waits for them.
            let _ = self.in_flight.acquire_many(MESSAGES_IN_FLIGHT as u32).await;
        }
    }

    /// True the first time it is called on this connection: the waiting direct messages
    /// are to be sent now.
    pub(crate) fn first_dm_delivery(&self) -> bool {
        !self.dms_sent.swap(true, Ordering::AcqRel)
    }

    /// The user did something (sent, joined): not idle.
    pub(crate) fn active(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn idle_secs(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)) / 1000
    }

    /// When the user was last active, milliseconds since the Unix epoch, to the second (so
    /// it changes only when they act: what a node tells the others, `presence`).
    pub(crate) fn active_at_ms(&self) -> i64 {
        let at = self.started_at_ms + self.last_active_ms.load(Ordering::Relaxed) as i64;
        at - at.rem_euclid(1000)
    }

    pub(crate) fn away(&self) -> Option<String> {
        lock(&self.away).clone()
    }

    pub fn nick(&self) -> String {
        lock(&self.nick).clone()
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    pub(crate) fn sockets(&self) -> Vec<Socket> {
        lock(&self.sockets).clone()
    }
}
