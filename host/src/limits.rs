//! Per-client-address limits, as Postfix's anvil keeps them
//! (`smtpd_client_connection_count_limit`): concurrent connections and
//! concurrent SASL exchanges per address, IPv6 counted per /64 (one host
//! usually holds a whole /64). A client over a limit is refused alone:
//! nobody else's connection or login waits on it. Exempt networks (a
//! proxy, an MTA of the operator's) are not counted.
//!
//! Counts are held by guards: dropping a [`Held`] gives its unit back, so
//! a session that ends by any path, panics included, frees its share.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::penalty::{Network, key};

/// What is counted per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counted {
    Connections,
    Exchanges,
}

impl Counted {
    pub fn as_str(self) -> &'static str {
        match self {
            Counted::Connections => "connections",
            Counted::Exchanges => "exchanges",
        }
    }
}

/// The limits and the live counts.
pub struct ClientLimits {
    /// 0: no limit.
    max_connections: u32,
    max_exchanges: u32,
    exempt: Vec<Network>,
    counts: Mutex<HashMap<(IpAddr, Counted), u32>>,
}

/// One unit of a count, given back on drop.
pub struct Held {
    limits: Arc<ClientLimits>,
    slot: Option<(IpAddr, Counted)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        let mut counts = self.limits.lock();
        if let Some(n) = counts.get_mut(&slot) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&slot);
            }
        }
    }
}

impl ClientLimits {
    pub fn new(max_connections: u32, max_exchanges: u32, exempt: Vec<Network>) -> Arc<Self> {
        Arc::new(ClientLimits {
            max_connections,
            max_exchanges,
            exempt,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// No limits at all (tests, tools).
    pub fn unlimited() -> Arc<Self> {
        Self::new(0, 0, Vec::new())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(IpAddr, Counted), u32>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one unit of `what` for `ip`, or `None` if the address is at
    /// its limit (counted in the metrics).
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, what: Counted) -> Option<Held> {
        let max = match what {
            Counted::Connections => self.max_connections,
            Counted::Exchanges => self.max_exchanges,
        };
        if max == 0 || self.exempt.iter().any(|n| n.contains(ip)) {
            return Some(Held {
                limits: self.clone(),
                slot: None,
            });
        }
        let slot = (key(ip), what);
        let mut counts = self.lock();
        let n = counts.entry(slot).or_insert(0);
        if *n >= max {
            drop(counts);
            crate::metrics::METRICS.client_limit_refused(what.as_str());
            return None;
        }
        *n += 1;
        Some(Held {
            limits: self.clone(),
            slot: Some(slot),
        })
    }

    /// What `ip` holds of `what` now.
    pub fn held(&self, ip: IpAddr, what: Counted) -> u32 {
        self.lock().get(&(key(ip), what)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_is_refused_alone_and_gets_its_share_back() {
        let limits = ClientLimits::new(2, 1, Vec::new());
        let a = ip("192.0.2.1");
        let first = limits.acquire(a, Counted::Connections).unwrap();
        let _second = limits.acquire(a, Counted::Connections).unwrap();
        assert!(limits.acquire(a, Counted::Connections).is_none());
        assert!(
            limits
                .acquire(ip("192.0.2.2"), Counted::Connections)
                .is_some()
        );
        // Exchanges are counted apart from connections.
        let exchange = limits.acquire(a, Counted::Exchanges).unwrap();
        assert!(limits.acquire(a, Counted::Exchanges).is_none());
        drop(exchange);
        assert!(limits.acquire(a, Counted::Exchanges).is_some());
        drop(first);
        assert_eq!(limits.held(a, Counted::Connections), 1);
        assert!(limits.acquire(a, Counted::Connections).is_some());
    }

    #[test]
    fn ipv6_counts_per_64_and_exempt_networks_are_not_counted() {
        let limits = ClientLimits::new(1, 1, vec!["10.0.0.0/8".parse().unwrap()]);
        let _held = limits
            .acquire(ip("2001:db8:1:2::1"), Counted::Connections)
            .unwrap();
        assert!(
            limits
                .acquire(ip("2001:db8:1:2:ffff::9"), Counted::Connections)
                .is_none()
        );
        assert!(
            limits
                .acquire(ip("2001:db8:1:3::1"), Counted::Connections)
                .is_some()
        );
        let mut many = Vec::new();
        for _ in 0..10 {
            many.push(
                limits
                    .acquire(ip("10.1.2.3"), Counted::Connections)
                    .unwrap(),
            );
        }
        assert_eq!(limits.held(ip("10.1.2.3"), Counted::Connections), 0);
        // IPv4-mapped IPv6 is the IPv4 address.
        let _v4 = limits
            .acquire(ip("192.0.2.9"), Counted::Connections)
            .unwrap();
        assert!(
            limits
                .acquire(ip("::ffff:192.0.2.9"), Counted::Connections)
                .is_none()
        );
    }

    #[test]
    fn no_limit_means_no_limit() {
        let limits = ClientLimits::unlimited();
        let held: Vec<_> = (0..1000)
            .map(|_| limits.acquire(ip("192.0.2.1"), Counted::Exchanges).unwrap())
            .collect();
        assert_eq!(held.len(), 1000);
    }
}
