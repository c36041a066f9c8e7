//! Who may call: IP allow and block lists (CIDR, IPv4 and IPv6), and which
//! address is the client's when trusted proxies stand in front.
//!
//! Lists are parsed once per revision ([`IpList`]); the request path only
//! compares addresses.

use std::net::IpAddr;

use ipnet::IpNet;

/// A parsed list of networks (a bare address is a /32 or /128).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList(Vec<IpNet>);

impl IpList {
    /// Parses every entry; the first that does not parse is the error
    /// (its index and why).
    pub fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| parse_net(e).map_err(|why| (i, why)))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// One network: `10.0.0.0/8`, `2001:db8::/32`, or a bare address.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("\"{text}\" is not an IP address or a CIDR network (e.g. 203.0.113.0/24, 2001:db8::/32)")
    })
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy;
/// then the last address of `X-Forwarded-For` that is not a trusted proxy
/// (walking from the right, as each proxy appends), or the first one when
/// they all are. An unreadable header is not believed.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&[u8]>,
    trusted: &IpList,
) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    if trusted.is_empty() || !trusted.contains(peer) {
        return Some(peer);
    }
    let Some(header) = forwarded_for.and_then(|v| std::str::from_utf8(v).ok()) else {
        return Some(peer);
    };
    let hops: Option<Vec<IpAddr>> = header
        .split(',')
        .map(|h| h.trim().parse::<IpAddr>().ok().map(canonical))
        .collect();
    let Some(hops) = hops.filter(|h| !h.is_empty()) else {
        return Some(peer);
    };
    Some(
        hops.iter()
            .rev()
            .find(|ip| !trusted.contains(**ip))
            .copied()
            .unwrap_or(hops[0]),
    )
}

/// The access rules of one route: the gateway's lists and the route's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Networks refused (the gateway's and the route's).
    pub block: IpList,
    /// When not empty, only these (the gateway's list).
    pub allow_global: IpList,
    /// When not empty, only these (the route's list).
    pub allow_route: IpList,
}

impl Access {
    /// Whether `ip` may call. Without an address (unknown peer) only a
    /// route without allow lists admits the call.
    pub fn admits(&self, ip: Option<IpAddr>) -> bool {
        match ip {
            Some(ip) => {
                !self.block.contains(ip)
                    && (self.allow_global.is_empty() || self.allow_global.contains(ip))
                    && (self.allow_route.is_empty() || self.allow_route.contains(ip))
            }
            None => self.allow_global.is_empty() && self.allow_route.is_empty(),
        }
    }

    /// Whether any rule applies.
    pub fn is_open(&self) -> bool {
        self.block.is_empty() && self.allow_global.is_empty() && self.allow_route.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> IpList {
        IpList::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn lists_hold_networks_and_addresses_v4_and_v6() {
        let l = list(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]);
        assert!(l.contains(ip("10.1.2.3")));
        assert!(l.contains(ip("::ffff:10.9.9.9")));
        assert!(l.contains(ip("2001:db8::1")));
        assert!(l.contains(ip("192.0.2.7")));
        assert!(!l.contains(ip("192.0.2.8")));
        assert!(!l.contains(ip("2001:db9::1")));
        let (i, why) = IpList::parse(&["10.0.0.0/8".into(), "10.0.0.0/33".into()]).unwrap_err();
        assert_eq!(i, 1);
        assert!(why.contains("10.0.0.0/33"));
        assert!(IpList::parse(&["example.com".into()]).is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = list(&["10.0.0.0/8"]);
        let xff = Some(&b"203.0.113.9, 10.0.0.2"[..]);
        // From a trusted proxy: the last untrusted hop.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), xff, &trusted),
            Some(ip("203.0.113.9"))
        );
        // A client forging the header from outside is the peer.
        assert_eq!(
            client_ip(Some(ip("198.51.100.1")), xff, &trusted),
            Some(ip("198.51.100.1"))
        );
        // A forged first hop behind a trusted proxy does not win over the real one.
        let forged = Some(&b"1.1.1.1, 203.0.113.9"[..]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), forged, &trusted),
            Some(ip("203.0.113.9"))
        );
        // Garbage is not believed; nobody trusted, the peer.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some(b"nope"), &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), xff, &IpList::default()),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn block_wins_and_both_allow_lists_must_admit() {
        let a = Access {
            block: list(&["10.0.0.5"]),
            allow_global: list(&["10.0.0.0/8"]),
            allow_route: list(&["10.0.0.0/24"]),
        };
        assert!(a.admits(Some(ip("10.0.0.4"))));
        assert!(!a.admits(Some(ip("10.0.0.5"))));
        assert!(!a.admits(Some(ip("10.0.1.4"))));
        assert!(!a.admits(None));
        assert!(Access::default().admits(None));
    }
}
