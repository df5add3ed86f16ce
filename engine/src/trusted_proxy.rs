//! Clients behind a reverse proxy or load balancer: every connection comes from the proxy's
//! address, so per-address limits, the failed-password delay and the logs would all see one
//! client. With `trusted_proxies` (addresses or CIDR blocks), a request whose TCP peer is one
//! of them is taken to come from the address its `X-Forwarded-For` names: the rightmost
//! entry that is not itself a trusted proxy (each proxy appends the address it saw, so
//! entries left of the first untrusted one could have been written by anyone). A peer not
//! listed is its own address whatever headers it sends, so a client cannot choose its
//! address by sending the header itself.
//!
//! The address found has no port (port 0 in the `SocketAddr` the rest of the engine sees).
//! A header that is missing, unreadable, or names only trusted proxies leaves the peer's own
//! address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// An address block: an address and how many leading bits count (all for a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`, `::1`.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an address or address/prefix"))?,
        );
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// A comma-separated list of addresses and blocks (empty: none).
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Cidr>, String>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Who sent a request: `peer` itself unless it is a trusted proxy; then the rightmost
    /// address of the `X-Forwarded-For` values (in header order) that is not a trusted
    /// proxy, with port 0.
    pub fn client<'a>(
        &self,
        peer: SocketAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Unreadable: nothing left of it can be believed either.
                return peer;
            };
            if !self.trusts(ip) {
                return SocketAddr::new(canonical(ip), 0);
            }
        }
        peer
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(Cidr::to_string).collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    #[test]
    fn blocks_parse_and_contain() {
        let proxies =
            TrustedProxies::parse("10.0.0.0/8, 192.0.2.7,2001:db8::/32").unwrap_or_default();
        assert_eq!(proxies.to_string(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32");
        assert!(proxies.trusts([10, 1, 2, 3].into()));
        assert!(proxies.trusts("::ffff:10.9.9.9".parse().unwrap_or([0u8; 4].into())));
        assert!(!proxies.trusts([11, 0, 0, 1].into()));
        assert!(proxies.trusts("2001:db8:ff::1".parse().unwrap_or([0u8; 4].into())));
        assert!(!proxies.trusts("2001:db9::1".parse().unwrap_or([0u8; 4].into())));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(TrustedProxies::parse("").unwrap_or_default().is_empty());
    }

    #[test]
    fn the_rightmost_untrusted_hop_from_a_trusted_peer_only() {
        let proxies = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").unwrap_or_default();
        let proxy = addr("127.0.0.1:5000");
        // The client wrote a fake first entry; the proxies appended what they saw.
        let header = ["6.6.6.6, 203.0.113.9, 10.1.1.1"];
        assert_eq!(proxies.client(proxy, header), addr("203.0.113.9:0"));
        // Several headers count in order.
        assert_eq!(
            proxies.client(proxy, ["6.6.6.6", "203.0.113.9:4711"]),
            addr("203.0.113.9:0")
        );
        assert_eq!(
            proxies.client(proxy, ["[2001:db8::5]:80"]),
            addr("[2001:db8::5]:0")
        );
        // An untrusted peer's header is ignored.
        let stranger = addr("192.0.2.50:6000");
        assert_eq!(proxies.client(stranger, header), stranger);
        // Missing, garbled, or only proxies: the peer itself.
        assert_eq!(proxies.client(proxy, []), proxy);
        assert_eq!(proxies.client(proxy, ["not an address"]), proxy);
        assert_eq!(proxies.client(proxy, ["10.2.2.2"]), proxy);
    }
}
