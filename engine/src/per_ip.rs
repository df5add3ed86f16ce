//! Counts per remote address, in two tables of this one type: open Engine.IO sessions
//! (the `max_connections_per_ip` limit) and open TCP connections (a looser bound,
//! [`CONNECTIONS_PER_SESSION`] times that). An address is an IPv4 address (an IPv4-mapped
//! IPv6 one too) or an IPv6 /64: one host usually holds a whole /64, so counting each of its
//! 2^64 addresses apart would bound nothing.
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
        let ip = address_key(ip);
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

/// The address a place is counted under: IPv4 as is (an IPv4-mapped IPv6 address as its
/// IPv4 one), IPv6 by its /64.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_slash_64_counts_as_one_address() {
        let table = Arc::new(PerIp::default());
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let (_a, within) = PerIp::enter(&table, a, 1);
        assert!(within);
        let (_b, within) = PerIp::enter(&table, b, 1);
        assert!(!within, "another address of the same /64 is the same address");
        let (_c, within) = PerIp::enter(&table, other, 1);
        assert!(within, "another /64 is another address");
        let mapped: IpAddr = "::ffff:127.0.0.9".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let (_m, _) = PerIp::enter(&table, mapped, 1);
        let (_v4, within) = PerIp::enter(&table, IpAddr::from([127, 0, 0, 9]), 1);
        assert!(!within, "an IPv4-mapped address is its IPv4 address");
    }
}
