//! A connected user's session: its nick, whether it proved it, its sockets (one per
//! namespace), and the slots of its `message`s waiting for their commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
    pub(super) sockets: Mutex<Vec<Socket>>,
    /// A permit per `message` slot; a message not yet acknowledged holds one.
    in_flight: tokio::sync::Semaphore,
}

impl Session {
    pub(super) fn new(nick: &str, authenticated: bool) -> Arc<Session> {
        Arc::new(Session {
            nick: Mutex::new(nick.to_owned()),
            authenticated: AtomicBool::new(authenticated),
            sockets: Mutex::new(Vec::new()),
            in_flight: tokio::sync::Semaphore::new(MESSAGES_IN_FLIGHT),
        })
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
