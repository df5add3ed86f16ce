//! Counts per remote IP address, in two tables of this one type: open Engine.IO sessions
//! (the `max_connections_per_ip` limit) and open TCP connections (a looser bound,
//! [`CONNECTIONS_PER_SESSION`] times that).
//!
//! A WebSocket session takes its place when its upgrade request is read and keeps it while
//! its connection is open. A long-polling session takes its place at the handshake and keeps
//! it until it ends, whatever TCP connections its requests arrive on. The connections
//! themselves are counted apart, so that connections kept alive between polling requests (or
//! that never send a request, within the handshake timeout) cannot pile up from one address
//! either.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::lock;

/// TCP connections one address may hold per session it may open: a polling client uses one
/// for its held GET, one for its POSTs and one for the WebSocket it upgrades to.
pub(crate) const CONNECTIONS_PER_SESSION: usize = 3;

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
