//! Open Engine.IO sessions per remote IP address (and, before a request says which session
//! it belongs to, the TCP connection carrying it): the `max_connections_per_ip` count.
//!
//! A WebSocket session is its TCP connection, so the connection's place is the session's. A
//! long-polling session takes a place of its own at the handshake and keeps it until it ends,
//! whatever TCP connections its requests arrive on; a connection that carries polling
//! requests gives its own place back once its first request is read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::lock;

/// The count per address; an [`IpSlot`] gives its place back on drop.
#[derive(Default)]
pub(crate) struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted place, given back on drop.
pub(crate) struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Counts one more from `ip`; the second value says whether it is within `max`. The map
    /// holds only addresses with places taken, so it is bounded by the open connections and
    /// sessions.
    pub(crate) fn enter(table: &Arc<PerIp>, ip: IpAddr, max: usize) -> (IpSlot, bool) {
        let mut counts = lock(&table.counts);
        let n = counts.entry(ip).or_insert(0);
        *n += 1;
        let within = *n <= max;
        drop(counts);
        (
            IpSlot {
                table: table.clone(),
                ip,
            },
            within,
        )
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.table.counts);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
