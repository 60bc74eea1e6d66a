//! Brute-force protection across connections, after Dovecot's auth
//! penalty: every failed login from an address doubles the pause before
//! that address's next failure is answered, up to a cap; a success clears
//! it, and so does a quiet spell. Trusted networks are exempt. IPv6
//! addresses count per /64, since one host usually holds a whole /64.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most; beyond it, stale entries are swept first.
const MAX_ENTRIES: usize = 100_000;

/// `ADDR/PREFIX` (or a bare address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or ADDR/PREFIX"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?,
        };
        Ok(Network { addr, prefix })
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.into(), self.prefix, 128) == masked(ip.into(), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - u32::from(prefix))
    }
}

/// IPv4-mapped IPv6 addresses are IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key an address is counted under.
pub(crate) fn key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

struct Entry {
    failures: u32,
    last: Instant,
}

/// The per-address failure record.
pub struct Penalty {
    base: Duration,
    cap: Duration,
    /// A quiet spell this long forgets an address's failures.
    forget: Duration,
    trusted: Vec<Network>,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl Penalty {
    pub fn new(base: Duration, cap: Duration, trusted: Vec<Network>) -> Penalty {
        Penalty {
            base,
            cap,
            forget: Duration::from_secs(15 * 60).max(cap * 4),
            trusted,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed login from `ip`; returns how long to pause before
    /// answering it: `base`, then twice as long for each failure since,
    /// up to `cap`.
    pub fn failure(&self, ip: IpAddr) -> Duration {
        self.failure_at(ip, Instant::now())
    }

    fn failure_at(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.base.is_zero() || self.trusted.iter().any(|n| n.contains(ip)) {
            return Duration::ZERO;
        }
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_ENTRIES {
            let forget = self.forget;
            table.retain(|_, e| now.duration_since(e.last) < forget);
        }
        let entry = table.entry(key(ip)).or_insert(Entry {
            failures: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= self.forget {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        let doublings = (entry.failures - 1).min(16);
        (self.base * 2u32.pow(doublings)).min(self.cap)
    }

    /// A successful login from `ip` clears its record.
    pub fn success(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.remove(&key(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks() {
        let cases = [
            ("127.0.0.0/8", "127.1.2.3", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("10.0.0.1", "10.0.0.1", true),
            ("10.0.0.1", "10.0.0.2", false),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("::1", "::1", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("192.0.2.0/24", "::ffff:192.0.2.7", true),
            ("192.0.2.0/24", "2001:db8::1", false),
        ];
        for (net, addr, want) in cases {
            let net: Network = net.parse().unwrap();
            assert_eq!(net.contains(ip(addr)), want, "{net:?} {addr}");
        }
        for bad in ["", "x", "10.0.0.0/33", "::/129", "10.0.0.0/-1"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn doubling_capped_cleared_and_forgotten() {
        let trusted = vec!["127.0.0.0/8".parse().unwrap()];
        let p = Penalty::new(Duration::from_secs(1), Duration::from_secs(5), trusted);
        let t0 = Instant::now();
        let secs: Vec<u64> = (0..5)
            .map(|i| {
                p.failure_at(ip("192.0.2.1"), t0 + Duration::from_secs(i))
                    .as_secs()
            })
            .collect();
        assert_eq!(secs, [1, 2, 4, 5, 5]);
        // Other addresses are independent; loopback is trusted.
        assert_eq!(p.failure_at(ip("192.0.2.2"), t0), Duration::from_secs(1));
        assert_eq!(p.failure_at(ip("127.0.0.1"), t0), Duration::ZERO);
        // One /64 is one key.
        p.failure_at(ip("2001:db8::1"), t0);
        assert_eq!(p.failure_at(ip("2001:db8::2"), t0), Duration::from_secs(2));
        // Success clears; a quiet spell forgets.
        p.success(ip("192.0.2.1"));
        assert_eq!(p.failure_at(ip("192.0.2.1"), t0), Duration::from_secs(1));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(p.failure_at(ip("192.0.2.2"), later), Duration::from_secs(1));
    }
}
